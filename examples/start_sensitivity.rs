//! How much of an extrapolation error is decided by the simulation's starting state: trains a
//! problem by collocation (as `colloc solve` does), then simulates the learned ODE over the
//! train and test windows again from perturbed starts `y₀ + σ·ξ` (ξ standard normal, seeded),
//! `y₀` the fitted state at `t0` that `colloc solve` starts from. For each σ the table gives the
//! distribution of `test_mse_clean` over the draws; rows for the true initial state and for the
//! first (noisy) observation follow, when the data were generated.
//!
//! `cargo run --release --example start_sensitivity [-- PROBLEM.toml [DRAWS]]`
//! (default `problems/vanderpol.toml`, 100 draws per σ)

use colloc::collocation::interpolation_matrix;
use colloc::problem;
use colloc::training::collocation::{self, simulate_and_score, Evaluation};
use colloc_models::Mlp;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// test_mse_clean of the model simulated from `y0` (NaN when the simulation fails or the data
/// have no clean trajectory).
fn test_error(problem: &problem::Problem, model: &Mlp, y0: &[f64]) -> f64 {
    simulate_and_score(problem, model, problem.t0, y0, Evaluation::default())
        .test_mse_clean
        .unwrap_or(f64::NAN)
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = 1.0 - rng.gen::<f64>();
    let v: f64 = rng.gen();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// The q-quantile (0..=1) of sorted values, by the nearest rank.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let k = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[k]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The BLAS set up as the `colloc` binary does, so the numbers are those of its runs.
    colloc::solvers::ipopt::rerun_with_detected_blas_core();
    colloc::solvers::ipopt::set_blas_threads(1);
    let args: Vec<String> = std::env::args().collect();
    let file = args
        .get(1)
        .map_or("problems/vanderpol.toml", String::as_str);
    let draws: usize = match args.get(2) {
        Some(s) => s
            .parse()
            .map_err(|_| format!("DRAWS must be a count, got {s}"))?,
        None => 100,
    };
    let problem = problem::load(std::path::Path::new(file))?;
    let run = collocation::train(&problem, problem.formulation, None, &mut |_| true)?;
    let d = problem.data.dim();
    // The fitted state at t0, as the evaluation of `colloc solve` takes it.
    let l0 = interpolation_matrix(&problem.nodes, &[problem.t0])?;
    let y0: Vec<f64> = (0..d)
        .map(|i| l0.mul_vec(&run.states.iter().map(|y| y[i]).collect::<Vec<_>>())[0])
        .collect();
    println!(
        "{file}: {} IPOPT iterations, test_mse_clean {:.4} from the fitted start {y0:.4?}",
        run.solution.stats.iterations,
        run.evaluation.test_mse_clean.unwrap_or(f64::NAN)
    );
    println!();
    println!("| start | draws | mean | 10 % | median | 90 % | min | max |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut rng = ChaCha8Rng::seed_from_u64(problem.seed);
    for sigma in [0.001, 0.01, 0.1] {
        let mut errors: Vec<f64> = (0..draws)
            .map(|_| {
                let start: Vec<f64> = y0.iter().map(|v| v + sigma * normal(&mut rng)).collect();
                test_error(&problem, &run.model, &start)
            })
            .filter(|e| e.is_finite())
            .collect();
        if errors.is_empty() {
            println!("| fitted + {sigma}·ξ | 0 | — | — | — | — | — | — |");
            continue;
        }
        errors.sort_by(f64::total_cmp);
        let mean = errors.iter().sum::<f64>() / errors.len() as f64;
        println!(
            "| fitted + {sigma}·ξ | {} | {mean:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            errors.len(),
            quantile(&errors, 0.1),
            quantile(&errors, 0.5),
            quantile(&errors, 0.9),
            errors[0],
            errors[errors.len() - 1]
        );
    }
    let first = (0..problem.data.t.len()).find(|&k| problem.data.t[k] >= problem.t0);
    if let (Some(k), Some(clean)) = (first, &problem.data.clean) {
        if (problem.data.t[k] - problem.t0).abs() < 1e-12 {
            let e = test_error(&problem, &run.model, &clean[k]);
            println!("| true state {:.4?} | 1 | {e:.3} | | | | | |", clean[k]);
        }
        let e = test_error(&problem, &run.model, &problem.data.y[k]);
        println!(
            "| first observation {:.4?} | 1 | {e:.3} | | | | | |",
            problem.data.y[k]
        );
    }
    Ok(())
}
