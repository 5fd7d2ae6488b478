//! Collocation-training benchmark on the paper's forced Van der Pol data: for networks
//! [2, 8, 2] and [2, 32, 2], both formulations and N ∈ {100, 200, 400} collocation points,
//! prints build, pre-fit, IPOPT and evaluation times, iterations and fit/test errors.
//! The data stay the same 200 noisy observations (at N ≠ 200 they lie off the grid and the
//! loss interpolates).
//!
//! `cargo run --release --example collocation_bench [-- N1,N2,…]`

use colloc::collocation::Nodes;
use colloc::problem::{self, Formulation};
use colloc::training::collocation;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The BLAS kernels (and their rounding) of the `colloc` binary, see docs/platform.md, "BLAS".
    colloc::solvers::ipopt::rerun_with_detected_blas_core();
    colloc::solvers::ipopt::set_blas_threads(1);
    let sizes: Vec<usize> = match std::env::args().nth(1) {
        Some(s) => s
            .split(',')
            .map(|v| v.trim().parse())
            .collect::<Result<_, _>>()?,
        None => vec![100, 200, 400],
    };
    let base = problem::load("problems/vanderpol.toml".as_ref())?;
    println!("| model | formulation | N | status | iter | build s | pre-fit s | IPOPT s | eval s | eval % | fit_mse | train_mse_clean | test_mse_clean |");
    println!("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for hidden in [8, 32] {
        for formulation in [Formulation::Reduced, Formulation::Full] {
            for &n in &sizes {
                let mut p = base.clone();
                p.model.layers = vec![2, hidden, 2];
                p.nodes = Nodes::new(p.nodes.kind, n, p.t0, p.t1)?;
                let run = collocation::train(&p, formulation, None, &mut |_| true)?;
                let s = &run.solution.stats;
                let f = |v: Option<f64>| v.map_or("-".into(), |x| format!("{x:.4}"));
                println!(
                    "| [2, {hidden}, 2] | {formulation:?} | {n} | {} | {} | {:.3} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} | {} |",
                    run.solution.status,
                    s.iterations,
                    run.build_s,
                    run.prefit_s,
                    s.wall_s,
                    s.eval_s,
                    100.0 * s.eval_s / s.wall_s,
                    f(run.evaluation.fit_mse),
                    f(run.evaluation.train_mse_clean),
                    f(run.evaluation.test_mse_clean),
                );
            }
        }
    }
    Ok(())
}
