//! Finite elements against global collocation on long forced Van der Pol records: for
//! m ∈ {1, 10, 100}, t ∈ [0, 15·m] with N = 200·m uniform observations (noise 0.1), tested on
//! the next 15 time units, network [2, 32, 2] tanh. Finite elements: N/4 elements of 5
//! Legendre–Gauss–Lobatto points (N + 1 points, block-arrow KKT solver); global Chebyshev
//! collocation with N points where it is feasible (N ≤ 1000). Prints build time, pre-fit,
//! IPOPT time, iterations, time per iteration, peak memory (RSS) and fit/test errors. Each case
//! runs in its own process, so the peak RSS is the case's own. Windows longer than 150 time
//! units (m = 100) use the defect continuation `defect_penalties = [1e2, 1e4, 1e6]` with θ
//! scaled by 30 for IPOPT (`parameter_scaling`), as `problems/vanderpol-long.toml` does; IPOPT
//! time and iterations include its stages. m = 10 runs with and without θ scaled by 10 (m = 100
//! unscaled takes ~130 s more and is left out). The θ-scaled cases run with and without IPOPT's
//! unperturbed trial factorization skipped after repeated wrong inertia
//! (`skip_unperturbed_trial`, on by default; `vanderpol-long.toml` turns it off), so that the
//! per-iteration times of m = 10 and m = 100 can be compared under the same settings. Like the
//! `colloc` binary, each case keeps freed memory for reuse (`retain_freed_memory`).
//!
//! `cargo run --release --example finite_elements_bench [-- 1,10,100]`

use colloc::problem::{self, Formulation};
use colloc::training::collocation;
use std::process::Command;

/// The problem file of one case.
fn problem_toml(m: usize, finite_elements: bool, theta_scaling: f64, skip: bool) -> String {
    let (n, t1) = (200 * m, 15 * m);
    let grid = if finite_elements {
        format!(
            "elements = {}\npoints_per_element = 5\nnodes = \"legendre-gauss-lobatto\"",
            n / 4
        )
    } else {
        format!("points = {n}\nnodes = \"chebyshev\"")
    };
    format!(
        r#"name = "vanderpol-m{m}"
seed = 0
[data]
system = "vanderpol"
parameters = {{ mu = 1.0, a = 1.0, omega = 1.0 }}
initial_state = [0.0, 1.0]
noise = 0.1
[train]
t0 = 0.0
t1 = {t1}.0
points = {n}
sampling = "uniform"
[test]
t1 = {test}.0
points = 200
[collocation]
{grid}
[model]
layers = [2, 32, 2]
activation = "tanh"
[loss]
lambda = 1e-3
[bounds]
parameters = 100.0
[solver]
formulation = "reduced"
prefit = true
parameter_scaling = {theta_scaling:?}
{continuation}
[solver.ipopt]
tol = 1e-4
max_iter = 500
mu_strategy = "adaptive"
skip_unperturbed_trial = {skip}
"#,
        test = t1 + 15,
        continuation = if t1 > 150 {
            "defect_penalties = [1e2, 1e4, 1e6]"
        } else {
            ""
        }
    )
}

/// Peak resident memory of this process in MB (Linux `VmHWM`).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs one case and prints its table row.
fn run_case(
    m: usize,
    finite_elements: bool,
    theta_scaling: f64,
    skip: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    colloc::solvers::ipopt::set_blas_threads(1);
    let path = std::env::temp_dir().join(format!(
        "colloc-fe-bench-{m}-{}-{}.toml",
        finite_elements,
        std::process::id()
    ));
    std::fs::write(&path, problem_toml(m, finite_elements, theta_scaling, skip))?;
    let loaded = problem::load(&path);
    std::fs::remove_file(&path)?;
    let p = loaded?;
    let run = collocation::train(&p, Formulation::Reduced, None, &mut |_| true)?;
    let s = &run.solution.stats;
    let totals = run.grid_totals();
    let (seconds, iterations, factorizations) =
        (totals.solve_s, totals.iterations, totals.kkt_factorizations);
    let per_stage = if run.stages.is_empty() {
        String::new()
    } else {
        let each: Vec<String> = run
            .stages
            .iter()
            .map(|t| t.iterations)
            .chain([s.iterations])
            .map(|i| i.to_string())
            .collect();
        format!(" ({})", each.join("+"))
    };
    let f = |v: Option<f64>| v.map_or("-".into(), |x| format!("{x:.4}"));
    println!(
        "| {m} | {}{} | {} | {} | {} | {:.2} | {:.2} | {:.1} | {}{} | {} | {:.3} | {:.0} | {} | {} |",
        match (finite_elements, theta_scaling == 1.0) {
            (false, _) => "global".to_string(),
            (true, true) => "elements".to_string(),
            (true, false) => format!("elements, θ × {theta_scaling}"),
        },
        if skip { "" } else { ", no skip" },
        p.nodes.len(),
        run.dims.nnz_jac,
        run.solution.status,
        run.build_s,
        run.prefit_s,
        seconds,
        iterations,
        per_stage,
        factorizations,
        seconds / iterations.max(1) as f64,
        peak_rss_mb().unwrap_or(f64::NAN),
        f(run.evaluation.fit_mse),
        f(run.evaluation.test_mse_clean),
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The BLAS kernels (and their rounding) of the `colloc` binary, see docs/platform.md, "BLAS".
    colloc::solvers::ipopt::rerun_with_detected_blas_core();
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 6 && args[1] == "--case" {
        colloc::solvers::ipopt::retain_freed_memory();
        let m = args[2].parse()?;
        return run_case(
            m,
            args[3] == "elements",
            args[4].parse()?,
            args[5] == "skip",
        );
    }
    let scales: Vec<usize> = match args.get(1) {
        Some(s) => s
            .split(',')
            .map(|v| v.trim().parse())
            .collect::<Result<_, _>>()?,
        None => vec![1, 10, 100],
    };
    println!("| m | grid | points | nnz_jac | status | build s | pre-fit s | IPOPT s | iter | KKT fact. | s/iter | peak RSS MB | fit_mse | test_mse_clean |");
    println!("|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let exe = std::env::current_exe()?;
    for &m in &scales {
        // (grid, θ scaling, skipped trials): global where feasible; finite elements unscaled,
        // and from m = 10 on also with the θ scaling measured to help (10 at N = 2001, 30 at
        // 20,001), with and without skipped unperturbed trials.
        let mut kinds = Vec::new();
        if 200 * m <= 1000 {
            kinds.push(("global", 1.0, "skip"));
        }
        kinds.push(("elements", 1.0, "skip"));
        match m {
            10 => kinds.extend([("elements", 10.0, "skip"), ("elements", 10.0, "no-skip")]),
            100 => kinds = vec![("elements", 30.0, "skip"), ("elements", 30.0, "no-skip")],
            _ => {}
        }
        for (kind, theta_scaling, skip) in kinds {
            let out = Command::new(&exe)
                .args([
                    "--case",
                    &m.to_string(),
                    kind,
                    &theta_scaling.to_string(),
                    skip,
                ])
                .output()?;
            print!("{}", String::from_utf8_lossy(&out.stdout));
            if !out.status.success() {
                println!(
                    "| {m} | {kind} | failed: {} |",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
    }
    Ok(())
}
