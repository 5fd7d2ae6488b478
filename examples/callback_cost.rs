//! Cost of the NLP callbacks IPOPT calls once per iteration — constraint values, Jacobian and
//! Hessian of the Lagrangian — on a problem file's collocation NLP (default
//! `problems/vanderpol.toml`, reduced formulation), near the starting point (moved a little
//! before each round, as between iterates: quantities the three share are computed once per
//! round, in the first) with random multipliers. Prints the median of repeated calls twice: with warm caches, and after
//! overwriting 32 MB of memory before each call, as IPOPT's factorization does between two
//! evaluations (the figure that matters inside a solve).
//!
//! `cargo run --release --example callback_cost [-- problems/FILE.toml [repeats]]`

use colloc::problem::{self, Formulation};
use colloc::solvers::NlpEvaluator;
use colloc::training::collocation;
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "problems/vanderpol.toml".into());
    let repeats: usize = match std::env::args().nth(2) {
        Some(r) => r.parse()?,
        None => 301,
    };
    let problem = problem::load(file.as_ref())?;
    let mut built = collocation::build(&problem, Formulation::Reduced, None)?;
    let nlp = &mut built.nlp;
    let dims = nlp.dims();
    let mut x = vec![0.0; dims.n_vars];
    nlp.initial_point(&mut x);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let lambda: Vec<f64> = (0..dims.n_cons).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let mut g = vec![0.0; dims.n_cons];
    let mut jac = vec![0.0; dims.nnz_jac];
    let mut hess = vec![0.0; dims.nnz_hess];
    let mut evict = vec![0u8; 32 << 20];
    println!(
        "{file}: {} variables, {} constraints, {} Jacobian and {} Hessian nonzeros; median of {repeats} calls, ms",
        dims.n_vars, dims.n_cons, dims.nnz_jac, dims.nnz_hess
    );
    println!("| caches | constraints | Jacobian | Hessian | sum |");
    println!("|---|---:|---:|---:|---:|");
    for cold in [false, true] {
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        for rep in 0..repeats {
            // A new point each round, as at each IPOPT iterate.
            x[rep % dims.n_vars] += 1e-9;
            let mut timed = |k: usize, f: &mut dyn FnMut()| {
                if cold {
                    evict
                        .iter_mut()
                        .for_each(|b| *b = b.wrapping_add(rep as u8 | 1));
                }
                let t = Instant::now();
                f();
                times[k].push(t.elapsed().as_secs_f64() * 1e3);
            };
            timed(0, &mut || nlp.constraints(&x, &mut g).expect("finite"));
            timed(1, &mut || {
                nlp.jacobian_values(&x, &mut jac).expect("finite")
            });
            timed(2, &mut || {
                nlp.hessian_values(&x, 1.0, &lambda, &mut hess)
                    .expect("finite")
            });
        }
        let [c, j, h] = times.map(median);
        println!(
            "| {} | {c:.3} | {j:.3} | {h:.3} | {:.3} |",
            if cold { "cold" } else { "warm" },
            c + j + h
        );
    }
    std::hint::black_box(&evict);
    Ok(())
}
