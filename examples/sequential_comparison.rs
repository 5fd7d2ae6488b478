//! The homotopy paper's benchmark on colloc's problem files: vanilla, homotopy and multiple
//! shooting trained on the same data (same seed: same noise draw and same initial network),
//! with the interpolation (train) and extrapolation (test) MSE of the best model, its epoch,
//! right-hand-side evaluations, time per epoch and training time — and beside them the
//! simultaneous method (`colloc solve` on the same file and seed: one IPOPT solve, its
//! iterations in the epochs column), scored the same way (the learned ODE simulated from the
//! fitted start). Then the acceptance ratios of the sequential-solver issue, per seed and on
//! the means over seeds (as the homotopy paper's Table 5 reports its figures).
//!
//! ```text
//! cargo run --release --example sequential_comparison -- \
//!     [--problems problems/lotka_volterra.toml,problems/lorenz.toml] [--seeds 10,20,30] \
//!     [--epochs N]      # shorter runs, for timing only
//!     [--sweep]         # select each method's hyper-parameters first (below)
//!     [--learn-initial-state]  # every sequential method learns its start too
//!     [--no-collocation]       # the sequential methods only
//!     [--normalize true|false] # replaces every file's `[model] normalize`
//! ```
//!
//! With `--sweep`, each method's hyper-parameters are selected as the homotopy paper did
//! (Appendix F): every combination of the file's `[sequential.sweep]` lists is trained on the
//! first seed given, the lowest training MSE is kept, and all seeds are then trained with the
//! selected values. Without it, the file's values are used (the paper's selected values).

use colloc::problem;
use colloc::sequential::TrainMethod;
use colloc::training::{collocation, sequential, sweep};
use std::path::Path;

struct Row {
    best_epoch: usize,
    epochs: usize,
    train: f64,
    test: f64,
    nfe: usize,
    ms_per_epoch: f64,
    seconds: f64,
}

fn parse_list(args: &[String], flag: &str) -> Option<Vec<String>> {
    let at = args.iter().position(|a| a == flag)?;
    Some(
        args.get(at + 1)?
            .split(',')
            .map(|s| s.trim().to_string())
            .collect(),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The BLAS kernels of the `colloc` binary (see `rerun_with_detected_blas_core`).
    colloc::solvers::ipopt::rerun_with_detected_blas_core();
    let args: Vec<String> = std::env::args().collect();
    let problems = parse_list(&args, "--problems").unwrap_or_else(|| {
        vec![
            "problems/lotka_volterra.toml".into(),
            "problems/lotka_volterra_long.toml".into(),
            "problems/lorenz.toml".into(),
        ]
    });
    let seeds: Vec<u64> = parse_list(&args, "--seeds")
        .unwrap_or_else(|| vec!["10".into(), "20".into(), "30".into()])
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let epochs: Option<usize> = parse_list(&args, "--epochs")
        .map(|v| v[0].parse())
        .transpose()?;
    let select = args.iter().any(|a| a == "--sweep");
    let learn_start = args.iter().any(|a| a == "--learn-initial-state");
    let with_collocation = !args.iter().any(|a| a == "--no-collocation");
    let normalize: Option<bool> = parse_list(&args, "--normalize")
        .map(|v| v[0].parse())
        .transpose()?;
    let load = |file: &str, seed: u64| -> Result<problem::Problem, Box<dyn std::error::Error>> {
        let mut p = problem::load_with_seed(Path::new(file), Some(seed))?;
        if let Some(n) = normalize {
            p.set_normalize(n)?;
        }
        Ok(p)
    };

    if learn_start {
        println!("(every sequential method learns its start: --learn-initial-state)\n");
    }
    println!("| problem | seed | method | best epoch | epochs | interp. MSE | extrap. MSE | NFE | ms/epoch | s |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for file in &problems {
        // The settings each method trains with: the file's, or those a sweep on the first
        // seed selects.
        let base = load(file, seeds[0])?;
        let mut chosen = Vec::new();
        for method in TrainMethod::ALL {
            let mut settings = base.sequential.clone();
            settings.method = method;
            settings.learn_initial_state |= learn_start;
            if let Some(e) = epochs {
                settings.epochs = e;
                settings.homotopy.epochs_per_step = e.div_ceil(settings.homotopy.steps).max(1);
            }
            if select {
                let started = std::time::Instant::now();
                let outcome = sweep::sweep(
                    std::slice::from_ref(&base),
                    &settings,
                    None,
                    None,
                    &|_, _| true,
                    &|_, _, _| {},
                )?;
                let t = &outcome.trials[outcome.selected];
                eprintln!(
                    "{} {method}: sweep on seed {} selected {} (train MSE {:.4e}, lowest of {}; {:.1} s)",
                    base.name,
                    seeds[0],
                    t.describe(),
                    t.train_mse,
                    outcome.trials.len(),
                    started.elapsed().as_secs_f64()
                );
                settings = outcome.settings;
            }
            chosen.push(settings);
        }
        let mut all: Vec<Vec<Row>> = Vec::new();
        let mut collocation_rows: Vec<(f64, f64, f64)> = Vec::new();
        for &seed in &seeds {
            let p = load(file, seed)?;
            let mut rows = Vec::new();
            for (method, settings) in TrainMethod::ALL.iter().zip(&chosen) {
                let run = sequential::train(&p, settings, None, None, &mut |_| true)?;
                let r = &run.report;
                let row = Row {
                    best_epoch: r.best_epoch,
                    epochs: r.curve.len(),
                    train: run.evaluation.train_mse.unwrap_or(f64::NAN),
                    test: run.evaluation.test_mse.unwrap_or(f64::NAN),
                    nfe: r.nfe,
                    ms_per_epoch: 1e3 * run.train_s / r.curve.len().max(1) as f64,
                    seconds: run.train_s,
                };
                println!(
                    "| {} | {seed} | {} | {} | {} | {:.4e} | {:.4e} | {} | {:.3} | {:.2} |",
                    p.name,
                    method,
                    row.best_epoch,
                    row.epochs,
                    row.train,
                    row.test,
                    row.nfe,
                    row.ms_per_epoch,
                    row.seconds
                );
                rows.push(row);
            }
            all.push(rows);
            if !with_collocation {
                continue;
            }
            // The simultaneous method on the same data and start.
            let started = std::time::Instant::now();
            let run = collocation::train(&p, p.formulation, None, &mut |_| true)?;
            let seconds = started.elapsed().as_secs_f64();
            let e = &run.evaluation;
            let (train, test) = (
                e.train_mse.unwrap_or(f64::NAN),
                e.test_mse.unwrap_or(f64::NAN),
            );
            println!(
                "| {} | {seed} | collocation | – | {} | {train:.4e} | {test:.4e} | – | – | {seconds:.2} |",
                p.name, run.solution.stats.iterations
            );
            collocation_rows.push((train, test, seconds));
        }
        // Ratios against vanilla, per seed and for the means over seeds.
        let mean = |m: usize, f: &dyn Fn(&Row) -> f64| {
            all.iter().map(|rows| f(&rows[m])).sum::<f64>() / all.len() as f64
        };
        println!();
        println!("{file}: ratios to vanilla (homotopy, shooting)");
        for (k, rows) in all.iter().enumerate() {
            let v = &rows[0];
            println!(
                "  seed {:>3}: best epoch {:.3}, {:.3}; interp. {:.3}, {:.3}; extrap. {:.3}, {:.3}",
                seeds[k],
                rows[1].best_epoch as f64 / v.best_epoch.max(1) as f64,
                rows[2].best_epoch as f64 / v.best_epoch.max(1) as f64,
                rows[1].train / v.train,
                rows[2].train / v.train,
                rows[1].test / v.test,
                rows[2].test / v.test,
            );
        }
        for (m, method) in TrainMethod::ALL.iter().enumerate() {
            println!(
                "  mean {:<9} best epoch {:>7.1}  interp. {:.4e}  extrap. {:.4e}  {:.3} ms/epoch  {:.0} NFE/epoch  {:.2} s",
                method.name(),
                mean(m, &|r| r.best_epoch as f64),
                mean(m, &|r| r.train),
                mean(m, &|r| r.test),
                mean(m, &|r| r.ms_per_epoch),
                mean(m, &|r| r.nfe as f64 / r.epochs.max(1) as f64),
                mean(m, &|r| r.seconds),
            );
        }
        // The paper's Table 5 reports means over the seeds: the same ratios on the means.
        let ratio = |m: usize, f: &dyn Fn(&Row) -> f64| mean(m, f) / mean(0, f);
        println!(
            "  ratio of the means (homotopy, shooting): best epoch {:.3}, {:.3}; interp. {:.3}, {:.3}; extrap. {:.3}, {:.3}",
            ratio(1, &|r| r.best_epoch as f64),
            ratio(2, &|r| r.best_epoch as f64),
            ratio(1, &|r| r.train),
            ratio(2, &|r| r.train),
            ratio(1, &|r| r.test),
            ratio(2, &|r| r.test),
        );
        let k = collocation_rows.len() as f64;
        if k > 0.0 {
            println!(
                "  mean {:<9} interp. {:.4e}  extrap. {:.4e}  {:.2} s per solve",
                "collocation",
                collocation_rows.iter().map(|r| r.0).sum::<f64>() / k,
                collocation_rows.iter().map(|r| r.1).sum::<f64>() / k,
                collocation_rows.iter().map(|r| r.2).sum::<f64>() / k,
            );
        }
        println!();
    }
    Ok(())
}
