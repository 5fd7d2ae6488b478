//! How a joint solve of several trajectories scales with their number, per KKT solver: Van der
//! Pol, [2, 8, 2] (`problems/vanderpol-small.toml` without its forcing, `a = 0`, so that one
//! autonomous network can serve trajectories from different starts: 200 Chebyshev points on
//! [0, 15] per trajectory), with K trajectories started from K initial states on the unit
//! circle (the first is the file's (0, 1)), each its own noise draw. For K ∈ {1, 2, 4} (or the list given)
//! and each linear solver — `auto` (K = 1: the dense LDLᵀ; K > 1: the block-arrow solver, one
//! block per trajectory), `dense` (LDLᵀ of the whole KKT matrix) and `mumps` — it prints
//! IPOPT's iterations, KKT factorizations, IPOPT time, time per factorization (the whole
//! IPOPT time divided by them), the objective and the pooled test_mse_clean. One run each: on
//! a noisy machine compare the rows of one table, not tables of different runs.
//!
//! `cargo run --release --example joint_trajectories_bench [-- 1,2,4]`

use colloc::problem::{self, Formulation};
use colloc::training::collocation;
use std::path::{Path, PathBuf};

/// Writes the main file (the small Van der Pol problem listing `k − 1` further trajectories)
/// and the further trajectory files into `dir`; returns the main file.
fn write_files(dir: &Path, k: usize) -> Result<PathBuf, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let base = std::fs::read_to_string("problems/vanderpol-small.toml")?;
    let names: Vec<String> = (1..k).map(|j| format!("\"start{j}.toml\"")).collect();
    let main = base
        .replacen(
            "\nseed = ",
            &format!("\ntrajectories = [{}]\nseed = ", names.join(", ")),
            1,
        )
        .replacen("mu = 1.0, a = 1.0,", "mu = 1.0, a = 0.0,", 1);
    if !main.contains("trajectories = [") || !main.contains("a = 0.0,") {
        return Err(
            "problems/vanderpol-small.toml has no top-level `seed` line or no forcing `a = 1.0`"
                .into(),
        );
    }
    for j in 1..k {
        // The file's start is (0, 1); the others go round the unit circle.
        let angle = std::f64::consts::FRAC_PI_2 + 2.0 * std::f64::consts::PI * j as f64 / k as f64;
        std::fs::write(
            dir.join(format!("start{j}.toml")),
            format!(
                "[data]\ninitial_state = [{:.6}, {:.6}]\n",
                angle.cos(),
                angle.sin()
            ),
        )?;
    }
    let path = dir.join("main.toml");
    std::fs::write(&path, main)?;
    Ok(path)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The BLAS kernels (and their rounding) of the `colloc` binary, see docs/platform.md, "BLAS".
    colloc::solvers::ipopt::rerun_with_detected_blas_core();
    // One BLAS thread, as `colloc` runs (the block-arrow solver runs two BLAS calls at once).
    if std::env::var_os("OPENBLAS_NUM_THREADS").is_none() {
        colloc::solvers::ipopt::set_blas_threads(1);
    }
    let counts: Vec<usize> = match std::env::args().nth(1) {
        Some(s) => s
            .split(',')
            .map(|v| v.trim().parse::<usize>().map_err(|e| format!("`{v}`: {e}")))
            .collect::<Result<_, _>>()?,
        None => vec![1, 2, 4],
    };
    if counts.contains(&0) {
        return Err("the numbers of trajectories must be positive".into());
    }
    let dir = std::env::temp_dir().join(format!("colloc-joint-bench-{}", std::process::id()));
    println!(
        "| trajectories | KKT rows | solver | status | iterations | factorizations | IPOPT s | ms per factorization | objective | pooled test_mse_clean |"
    );
    println!("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|");
    for &k in &counts {
        let main = write_files(&dir.join(format!("k{k}")), k)?;
        for solver in ["auto", "dense", "mumps"] {
            let mut p = problem::load(&main)?;
            p.ipopt.linear_solver = solver.into();
            let problems = p.with_trajectories()?;
            let runs =
                collocation::train_joint(&problems, Formulation::Reduced, None, &mut |_| true)?;
            let first = &runs[0];
            let stats = &first.solution.stats;
            let evaluations: Vec<&collocation::Evaluation> =
                runs.iter().map(|r| &r.evaluation).collect();
            let pooled = collocation::pooled_scores(&problems, &evaluations);
            println!(
                "| {k} | {} | {solver} | {:?} | {} | {} | {:.2} | {:.1} | {:.6e} | {:.4e} |",
                first.dims.n_vars + first.dims.n_cons,
                first.solution.status,
                stats.iterations,
                stats.kkt_factorizations,
                stats.wall_s,
                1e3 * stats.wall_s / stats.kkt_factorizations.max(1) as f64,
                first.solution.objective,
                pooled.test_mse_clean.unwrap_or(f64::NAN),
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
