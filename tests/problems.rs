//! Every problem file shipped in `problems/` loads and validates, and generation is
//! deterministic with the seed.

use colloc::problem::{self, Split};

#[test]
fn every_problem_file_loads() {
    let mut n = 0;
    for entry in std::fs::read_dir("problems").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let p = problem::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                !p.data.indices(Split::Train).is_empty(),
                "{}",
                path.display()
            );
            n += 1;
        }
    }
    assert!(n >= 2, "expected the shipped problem files, found {n}");
}

#[test]
fn the_paper_case_is_reproduced_and_deterministic() {
    let a = problem::load("problems/vanderpol.toml".as_ref()).unwrap();
    let b = problem::load("problems/vanderpol.toml".as_ref()).unwrap();
    assert_eq!(a.data, b.data);
    assert_eq!(a.data.indices(Split::Train).len(), 200);
    assert_eq!(a.data.indices(Split::Test).len(), 200);
    assert_eq!((a.t0, a.t1, a.nodes.len()), (0.0, 15.0, 200));
    // Training observations sit at the Chebyshev collocation points.
    let train = a.data.indices(Split::Train);
    for (k, &i) in train.iter().enumerate() {
        assert!((a.data.t[i] - a.nodes.times[k]).abs() < 1e-12);
    }
    // Noise σ = 0.1: the residuals against the clean trajectory have about that spread.
    let clean = a.data.clean.as_ref().unwrap();
    let r: Vec<f64> = a
        .data
        .y
        .iter()
        .zip(clean)
        .flat_map(|(y, c)| y.iter().zip(c).map(|(a, b)| a - b))
        .collect();
    let sd = (r.iter().map(|v| v * v).sum::<f64>() / r.len() as f64).sqrt();
    assert!((sd - 0.1).abs() < 0.01, "noise sd {sd}");
    assert_eq!(a.data.y[0][0], b.data.y[0][0]);
}
