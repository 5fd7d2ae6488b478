//! ADMM consensus against the single model, over data seeds: `problems/vanderpol-admm.toml`
//! (forced Van der Pol observed at 300 noisy points of [0, 30], tested on (30, 45]) trained
//! once by `colloc admm` (two batches of 150 points, ρ = 30, 300 iterations, as in the file;
//! then again with `momentum = true`) and once by `colloc solve` (one model on all 300 points),
//! for seeds 0, 1, …, S−1 — each seed draws new noise and a new start. The table gives the
//! simulated train and test MSE (against the noisy observations, as the issue compares them),
//! ADMM's final dual residual and the wall seconds of each run.
//!
//! `cargo run --release --example admm_vs_single_seeds [-- S]` (default S = 5; about 1 minute
//! per seed on 2 cores)

use colloc::problem::{self, Problem};
use colloc::training::{admm, collocation};
use std::time::Instant;

/// One ADMM run: (train MSE, test MSE, dual residual, seconds).
fn run_admm(problem: &Problem, momentum: bool) -> Result<[f64; 4], Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut settings = problem
        .admm
        .clone()
        .ok_or("the problem has no [admm] section")?;
    settings.momentum = momentum;
    let batches = admm::make_batches(problem, &settings)?;
    let state = admm::initial_state(problem, &settings, &batches)?;
    let run = admm::run(
        problem,
        &settings,
        &batches,
        state,
        admm::FaultInjection::default(),
        &mut |_| Ok(()),
        &mut |_| true,
    )?;
    let dual = run.state.history.last().map_or(f64::NAN, |r| r.dual);
    Ok([
        run.evaluation.train_mse.unwrap_or(f64::NAN),
        run.evaluation.test_mse.unwrap_or(f64::NAN),
        dual,
        started.elapsed().as_secs_f64(),
    ])
}

/// The single model: (train MSE, test MSE, seconds).
fn run_single(problem: &Problem) -> Result<[f64; 3], Box<dyn std::error::Error>> {
    let started = Instant::now();
    let run = collocation::train(problem, problem.formulation, None, &mut |_| true)?;
    Ok([
        run.evaluation.train_mse.unwrap_or(f64::NAN),
        run.evaluation.test_mse.unwrap_or(f64::NAN),
        started.elapsed().as_secs_f64(),
    ])
}

/// The problem ADMM's consensus aims at, solved as one NLP: the batches' sub-problems (each its
/// window, grid and initial state) with one θ and no proximal terms
/// ([`collocation::train_joint`]); scored as ADMM's consensus is, simulated over the whole
/// problem from batch 0's fitted start. (train MSE, test MSE, seconds).
fn run_joint(problem: &Problem) -> Result<[f64; 3], Box<dyn std::error::Error>> {
    let started = Instant::now();
    let settings = problem
        .admm
        .clone()
        .ok_or("the problem has no [admm] section")?;
    // As in ADMM, the batches keep their grids (no refinement).
    let batches: Vec<Problem> = admm::make_batches(problem, &settings)?
        .into_iter()
        .map(|b| Problem {
            refinement: None,
            ..b.problem
        })
        .collect();
    let runs = collocation::train_joint(&batches, problem.formulation, None, &mut |_| true)?;
    let first = &runs[0];
    let ev = collocation::simulate_and_score(
        problem,
        &first.model,
        first.evaluation.start_time,
        &first.evaluation.start_state,
        collocation::Evaluation::default(),
    );
    Ok([
        ev.train_mse.unwrap_or(f64::NAN),
        ev.test_mse.unwrap_or(f64::NAN),
        started.elapsed().as_secs_f64(),
    ])
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The BLAS set up as the `colloc` binary does, so the numbers are those of its runs.
    colloc::solvers::ipopt::rerun_with_detected_blas_core();
    colloc::solvers::ipopt::set_blas_threads(1);
    let seeds: u64 = match std::env::args().nth(1) {
        Some(s) => s
            .parse()
            .map_err(|_| format!("S must be a number of seeds, got {s}"))?,
        None => 5,
    };
    let base = problem::load(std::path::Path::new("problems/vanderpol-admm.toml"))?;
    println!("| seed | ADMM train / test | dual | s | ADMM + momentum train / test | dual | s | joint over the batches train / test | s | single train / test | s |");
    println!("|---:|---|---:|---:|---|---:|---:|---|---:|---|---:|");
    let mut tests: [Vec<f64>; 4] = Default::default();
    for seed in 0..seeds {
        // A new seed is a new noise draw and a new start: reload the file with it.
        let text = std::fs::read_to_string(&base.path)?;
        if !text.contains("\nseed = 0\n") {
            return Err("problems/vanderpol-admm.toml no longer sets `seed = 0`".into());
        }
        let path = std::env::temp_dir().join(format!(
            "colloc-admm-seeds-{seed}-{}.toml",
            std::process::id()
        ));
        std::fs::write(
            &path,
            text.replace("\nseed = 0\n", &format!("\nseed = {seed}\n")),
        )?;
        let problem = problem::load(&path);
        std::fs::remove_file(&path)?;
        let problem = problem?;
        let plain = run_admm(&problem, false)?;
        let fast = run_admm(&problem, true)?;
        let joint = run_joint(&problem)?;
        let single = run_single(&problem)?;
        println!(
            "| {seed} | {:.3} / {:.3} | {:.1e} | {:.1} | {:.3} / {:.3} | {:.1e} | {:.1} | {:.3} / {:.3} | {:.1} | {:.3} / {:.3} | {:.1} |",
            plain[0], plain[1], plain[2], plain[3], fast[0], fast[1], fast[2], fast[3], joint[0],
            joint[1], joint[2], single[0], single[1], single[2]
        );
        tests[0].push(plain[1]);
        tests[1].push(fast[1]);
        tests[2].push(single[1]);
        tests[3].push(joint[1]);
    }
    let [a, f, s, j] = &mut tests;
    // Paired per seed, before the medians sort the columns.
    let better = a.iter().zip(s.iter()).filter(|(x, y)| x <= y).count();
    println!();
    println!(
        "test MSE, median over seeds: ADMM {:.3}, ADMM + momentum {:.3}, joint over the batches {:.3}, single {:.3}",
        median(a),
        median(f),
        median(j),
        median(s)
    );
    println!(
        "seeds where the ADMM consensus tests no worse than the single model: {better} of {}",
        a.len()
    );
    Ok(())
}
