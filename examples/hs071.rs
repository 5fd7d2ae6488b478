//! Solves Hock–Schittkowski problem 71 (the Ipopt documentation's example) with the modeling
//! layer and IPOPT, and prints the status, the objective and x.
//!
//! `cargo run --release --example hs071`

use colloc::nlp::hock_schittkowski;
use colloc::solvers::ipopt::{IpoptSettings, IpoptSolver};
use colloc::solvers::NlpEvaluator;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The BLAS kernels of the `colloc` binary (see `rerun_with_detected_blas_core`).
    colloc::solvers::ipopt::rerun_with_detected_blas_core();
    let mut problem = hock_schittkowski::hs071()?;
    let dims = problem.nlp.dims();
    let solver = IpoptSolver::new(IpoptSettings::default())?;
    let solution = solver.solve(&mut problem.nlp)?;
    println!(
        "hs071: {} variables, {} constraints, {} Jacobian and {} Hessian nonzeros",
        dims.n_vars, dims.n_cons, dims.nnz_jac, dims.nnz_hess
    );
    println!(
        "status:     {} ({})",
        solution.status,
        solution.status.message()
    );
    println!(
        "objective:  {:.7} (published 17.0140173)",
        solution.objective
    );
    println!("x:          {:?}", solution.x);
    println!(
        "iterations: {}, wall {:.2} ms, in function evaluations {:.2} ms",
        solution.stats.iterations,
        solution.stats.wall_s * 1e3,
        solution.stats.eval_s * 1e3
    );
    Ok(())
}
