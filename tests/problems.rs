//! Every problem file shipped in `problems/` loads and validates, and generation is
//! deterministic with the seed.

mod common;

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
            // Its further trajectories load and fit its model.
            let further = p
                .load_trajectories(&p.trajectories, "trajectories")
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(further.len(), p.trajectories.len());
            n += 1;
        }
    }
    assert!(n >= 2, "expected the shipped problem files, found {n}");
    // The experiment files in problems/experiments/ that no main file lists (loaded above,
    // completed by their main file) are problems of their own.
    let listed: Vec<std::path::PathBuf> = std::fs::read_dir("problems")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .flat_map(|p| {
            let trajectories = problem::load(&p).unwrap().trajectories;
            trajectories
                .into_iter()
                .map(|t| std::path::Path::new("problems").join(t))
        })
        .collect();
    for entry in std::fs::read_dir("problems/experiments").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") && !listed.contains(&path) {
            problem::load(&path).unwrap_or_else(|e| panic!("{e}"));
        }
    }
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

#[test]
fn the_double_pendulum_reader_takes_the_papers_windows() {
    let p = problem::load("problems/double_pendulum.toml".as_ref()).unwrap();
    assert_eq!(p.data.dim(), 4);
    assert_eq!(p.data.indices(Split::Train).len(), 100);
    assert_eq!(p.data.indices(Split::Test).len(), 100);
    assert_eq!(p.data.t[0], 0.0);
    // First row of trajectory 0: θ1, θ2, ω1, ω2.
    assert_eq!(
        p.data.y[0],
        vec![
            -1.1336150169372559,
            -1.3008047342300415,
            -0.5385388135910034,
            -6.15505838394165
        ]
    );
    let second = problem::load("problems/double_pendulum_second_order.toml".as_ref()).unwrap();
    assert_eq!(second.model.structure.name(), "second-order");
    assert_eq!(second.data, p.data);
}

/// Rows of a measurement file outside the windows are counted (before `train.t0`, after the
/// last window), so that the CLI can say they are not used; a file whose rows are all inside
/// has none. The double pendulum's file holds more than the paper's 200 rows.
#[test]
fn measurement_rows_outside_the_windows_are_counted() {
    let d = common::TempDir::new("unused-rows");
    let rows: String = (0..20)
        .map(|k| format!("{},{},{}\n", k as f64 * 0.5, k, 2 * k))
        .collect();
    d.write("m.csv", &format!("t,a,b\n{rows}"));
    let base = "[data]\ncsv = \"m.csv\"\n[collocation]\npoints = 10\n[model]\nlayers = [2, 4, 2]\n";
    for (windows, before, after, end, has_test) in [
        ("[train]\nt1 = 6.0\n", 0, 7, 6.0, false),
        (
            "[train]\nt0 = 1.0\nt1 = 6.0\n[test]\nt1 = 8.0\n",
            2,
            3,
            8.0,
            true,
        ),
    ] {
        let (_, p) = d.load_problem("m", &format!("{base}{windows}"));
        let u = p.unused_rows.expect("rows outside the windows");
        assert_eq!(
            (u.before, u.after, u.window_end, u.has_test, u.last_time),
            (before, after, end, has_test, 9.5),
            "{windows}"
        );
        assert_eq!(p.data.t.len(), 20 - before - after);
        assert!(u.file.ends_with("m.csv"));
    }
    let (_, all) = d.load_problem("all", &format!("{base}[train]\nt1 = 9.5\n"));
    assert_eq!(all.unused_rows, None);
    let generated = problem::load("problems/vanderpol.toml".as_ref()).unwrap();
    assert_eq!(generated.unused_rows, None);
    let pendulum = problem::load("problems/double_pendulum.toml".as_ref()).unwrap();
    let u = pendulum.unused_rows.expect("the file has more rows");
    assert_eq!(u.before, 0);
    assert!(u.after > 0 && u.has_test);
}

#[test]
fn bad_measurement_files_name_the_line() {
    let d = common::TempDir::new("sl");
    for (name, text, needle) in [
        (
            "short",
            "% o1 o2 w1 w2\n0 0 1 2 3\n",
            "line 2: need at least 6 columns",
        ),
        (
            "nan",
            "% x\n0 0 1 2 3 4\n0 0.1 1 NaN 3 4\n",
            "line 3: column 4",
        ),
        (
            "time",
            "0 0 1 2 3 4\n0 0.2 1 2 3 4\n0 0.1 1 2 3 4\n",
            "line 3: time 0.1 does not increase",
        ),
        (
            "traj",
            "1 0 1 2 3 4\n1 0.1 1 2 3 4\n",
            "trajectory 0 has 0 rows (trajectories in the file: 1)",
        ),
    ] {
        let f = d.join(format!("{name}.txt"));
        std::fs::write(&f, text).unwrap();
        let e = problem::read_schmidt_lipson(&f, 0).unwrap_err().to_string();
        assert!(
            e.contains(needle) && e.contains(&format!("{name}.txt")),
            "{name}: {e}"
        );
    }
}

/// The chemical-kinetics files are solved by collocation to the noise level (their clean test
/// MSE far below the noise variance: 5 % of the mean for the Brusselator, 0.02² = 4e-4 for
/// the reactions).
#[test]
fn the_chemical_kinetics_files_are_learned_by_collocation() {
    use colloc::training::collocation;
    for (file, bound) in [
        ("problems/consecutive_reactions.toml", 1e-3),
        ("problems/brusselator.toml", 1e-2),
    ] {
        let p = problem::load(std::path::Path::new(file)).unwrap();
        let run = collocation::train(&p, p.formulation, None, &mut |_| true).unwrap();
        assert!(run.solution.is_success(), "{file}: {}", run.solution.status);
        let clean = run.evaluation.test_mse_clean.unwrap();
        assert!(clean < bound, "{file}: test_mse_clean {clean}");
    }
}

/// A problem without further trajectories has none, without reading its file again: a file
/// loaded and then removed (a temporary copy) still makes batches and joint solves.
#[test]
fn no_trajectories_need_no_file() {
    let text = std::fs::read_to_string("problems/vanderpol-small.toml").unwrap();
    let path = std::env::temp_dir().join(format!("colloc-no-traj-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let p = problem::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(p.trajectories.is_empty());
    assert!(p
        .load_trajectories(&p.trajectories, "trajectories")
        .unwrap()
        .is_empty());
}

/// `[solver.ipopt] tol` defaults to the training tolerance 1e-4 (not IPOPT's 1e-8), in a main
/// file and in a further trajectory completed by it; a given `tol` is kept, in either.
#[test]
fn the_ipopt_tolerance_defaults_to_the_training_one() {
    use colloc::problem::schema::TRAINING_TOL;
    assert_eq!(TRAINING_TOL, 1e-4);
    let d = common::TempDir::new("training-tol");
    let base = "[data]\nsystem = \"vanderpol\"\ninitial_state = [0.0, 1.0]\n[train]\nt1 = 5.0\npoints = 20\n\
                [collocation]\npoints = 20\n[model]\nlayers = [2, 4, 2]\n";
    d.write("run2.toml", "[data]\ninitial_state = [1.0, 0.0]\n");
    for (extra, tol) in [
        ("", 1e-4),
        ("[solver]\nprefit = true\n", 1e-4),
        ("[solver.ipopt]\nmax_iter = 50\n", 1e-4),
        ("[solver.ipopt]\ntol = 1e-7\n", 1e-7),
    ] {
        let text = format!("trajectories = [\"run2.toml\"]\n{base}{extra}");
        let (_, p) = d.load_problem("main", &text);
        assert_eq!(p.ipopt.tol, tol, "{extra}");
        let further = p
            .load_trajectories(&p.trajectories, "trajectories")
            .unwrap();
        assert_eq!(further[0].ipopt.tol, tol, "{extra}");
    }
    // A further trajectory's own tol.
    d.write(
        "run3.toml",
        "[data]\ninitial_state = [1.0, 0.0]\n[solver.ipopt]\ntol = 1e-6\n",
    );
    let (_, p) = d.load_problem("own", &format!("trajectories = [\"run3.toml\"]\n{base}"));
    let further = p
        .load_trajectories(&p.trajectories, "trajectories")
        .unwrap();
    assert_eq!((p.ipopt.tol, further[0].ipopt.tol), (1e-4, 1e-6));
    // The modeling layer keeps IPOPT's own default.
    assert_eq!(colloc_solvers::ipopt::IpoptSettings::default().tol, 1e-8);
}
