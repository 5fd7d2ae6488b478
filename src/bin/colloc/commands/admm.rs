//! `colloc admm FILE`: consensus training over batches of collocation sub-problems.

use crate::Failure;
use colloc::report::{self, AdmmSummary, RunSummary};
use colloc::training::admm::{self, AdmmError, AdmmState, FaultInjection, IterationRecord};
use colloc::training::collocation::TrainError;
use colloc_models::write_atomic;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `colloc admm`.
#[derive(clap::Args, Debug)]
pub struct AdmmArgs {
    /// Problem file (TOML) with an `[admm]` section.
    pub file: PathBuf,
    /// Output folder (default: runs/<problem name>-admm/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from the checkpoint in the output folder.
    #[arg(long)]
    pub resume: bool,
    /// Make sub-problem BATCH fail in ADMM iteration ITER (testing the failure policy).
    #[arg(long, value_name = "BATCH:ITER", hide = true)]
    pub inject_failure: Option<String>,
    /// `--seed`, `--normalize`.
    #[command(flatten)]
    pub overrides: super::ProblemOverrides,
    /// Stop after the ADMM iteration during which this many seconds (wall time from the
    /// start of the command) have passed; results and checkpoint are written (continue with
    /// --resume) and the exit code is 1.
    #[arg(long)]
    pub time_limit: Option<f64>,
    /// No progress lines.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs the command.
pub fn run(args: AdmmArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let stop = super::Stop::new(started, args.time_limit)?;
    let problem = super::load_problem(&args.file, &args.overrides)?;
    let settings = problem.admm.clone().ok_or_else(|| {
        Failure::input(format!(
            "{}: no [admm] section (batch windows and settings)",
            args.file.display()
        ))
    })?;
    let fault = match &args.inject_failure {
        None => FaultInjection::default(),
        Some(s) => {
            let parsed = s
                .split_once(':')
                .and_then(|(b, i)| Some((b.parse().ok()?, i.parse().ok()?)));
            FaultInjection {
                fail: Some(parsed.ok_or_else(|| {
                    Failure::input(format!("--inject-failure: expected BATCH:ITER, got `{s}`"))
                })?),
                fail_warm: None,
            }
        }
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-admm", problem.name)));
    let input_or_run = |e: TrainError| match e {
        TrainError::Network(_) | TrainError::Unsupported(_) | TrainError::Problem(_) => {
            Failure::input(e)
        }
        other => Failure::run(other),
    };
    let batches = admm::make_batches(&problem, &settings).map_err(input_or_run)?;
    let checkpoint_path = out.join("checkpoint.json");
    let state = if args.resume {
        let text = std::fs::read_to_string(&checkpoint_path)
            .map_err(|e| Failure::input(format!("--resume: {}: {e}", checkpoint_path.display())))?;
        serde_json::from_str::<AdmmState>(&text)
            .map_err(|e| Failure::input(format!("--resume: {}: {e}", checkpoint_path.display())))?
    } else {
        admm::initial_state(&problem, &settings, &batches).map_err(input_or_run)?
    };
    let _output_folder = super::create_output_folder(&out)?;

    if !args.quiet {
        eprintln!(
            "colloc admm {}: {} batches {:?}, model {:?} {}{}, ρ {} ({}), {} iterations at most{}",
            problem.name,
            batches.len(),
            batches.iter().map(|b| b.window).collect::<Vec<_>>(),
            problem.model.layers,
            problem.model.activation,
            if problem.collocation_normalize() {
                " in standardized coordinates"
            } else {
                ""
            },
            settings.rho,
            if settings.adaptive_rho {
                "adaptive"
            } else {
                "fixed"
            },
            settings.max_iter,
            if args.resume {
                format!(", resuming after iteration {}", state.iteration)
            } else {
                String::new()
            }
        );
        eprintln!(
            "{:>4} {:>10} {:>10} {:>10} {:>9} {:>7} {:>10}  per batch: objective / IPOPT iterations",
            "iter", "primal", "dual", "rho", "time s", "seq s", "train MSE"
        );
    }
    let mut save = |s: &AdmmState| -> Result<(), String> {
        let json = serde_json::to_string(s).map_err(|e| e.to_string())?;
        write_atomic(&checkpoint_path, json.as_bytes())
            .map_err(|e| format!("{}: {e}", checkpoint_path.display()))
    };
    let quiet = args.quiet;
    let watch = stop.clone();
    let mut observer = move |r: &IterationRecord| {
        if !quiet {
            let per: Vec<String> = r
                .batches
                .iter()
                .map(|b| {
                    format!(
                        "{:.4e}/{}{}",
                        b.objective,
                        b.iterations,
                        if b.accepted { "" } else { " FAILED" }
                    )
                })
                .collect();
            let mse = r
                .consensus_train_mse
                .map_or("-".to_string(), |v| format!("{v:.3e}"));
            eprintln!(
                "{:>4} {:>10.3e} {:>10.3e} {:>10.3e} {:>9.3} {:>7.3} {:>10}  {}",
                r.iteration,
                r.primal,
                r.dual,
                r.rho,
                r.seconds,
                r.sequential_seconds,
                mse,
                per.join("  ")
            );
        }
        watch.keep_going()
    };
    let solve_started = Instant::now();
    let run = admm::run(
        &problem,
        &settings,
        &batches,
        state,
        fault,
        &mut save,
        &mut observer,
    )
    .map_err(|e| match e {
        AdmmError::Train(t) => input_or_run(t),
        AdmmError::Resume(_) => Failure::input(e),
        other => Failure::run(other),
    })?;
    let solve_s = solve_started.elapsed().as_secs_f64();
    let history = &run.state.history;
    let last = history.last();
    let solves = |warm: bool| {
        let its: Vec<usize> = history
            .iter()
            .flat_map(|h| h.batches.iter())
            .filter(|b| b.warm == warm && b.accepted)
            .map(|b| b.iterations)
            .collect();
        (!its.is_empty()).then(|| its.iter().sum::<usize>() as f64 / its.len() as f64)
    };
    let ev = &run.evaluation;
    let summary = AdmmSummary {
        run: RunSummary {
            problem: &problem.name,
            method: "admm",
            status: match (run.converged, stop.timed_out()) {
                (true, _) => "converged".into(),
                (false, Some(limit)) => format!(
                    "time limit ({limit} s) reached after iteration {}",
                    run.state.iteration
                ),
                (false, None) => run.stop_reason.clone(),
            },
            success: run.converged,
            iterations: history
                .iter()
                .flat_map(|h| h.batches.iter())
                .map(|b| b.iterations)
                .sum(),
            wall_s: started.elapsed().as_secs_f64(),
            solve_s,
            eval_s: history.iter().map(|h| h.sequential_seconds).sum(),
            objective: last.map_or(f64::NAN, |h| {
                h.batches.iter().map(|b| b.objective).sum::<f64>() / h.batches.len().max(1) as f64
            }),
            scores: ev,
            size: colloc_solvers::NlpDims {
                n_vars: run.model.n_params(),
                ..Default::default()
            },
            seed: problem.seed,
            platform: colloc::report::Platform::current(),
            normalization: run.model.normalization.as_ref(),
        },
        formulation: problem.formulation,
        admm_iterations: run.state.iteration,
        primal_residual: last.map_or(f64::NAN, |h| h.primal),
        dual_residual: last.map_or(f64::NAN, |h| h.dual),
        eps_primal: last.map_or(f64::NAN, |h| h.eps_primal),
        eps_dual: last.map_or(f64::NAN, |h| h.eps_dual),
        rho: run.state.rho,
        batches: run.batches,
        mean_warm_iterations: solves(true),
        mean_cold_iterations: solves(false),
        iterations_s: history.iter().map(|h| h.seconds).sum(),
    };
    report::write_admm(&out, &problem, &run, &summary).map_err(Failure::run)?;

    println!("{:<18} {}", "status", summary.run.status);
    println!(
        "{:<18} {} ADMM, {} IPOPT (mean per solve: cold {}, warm {})",
        "iterations",
        summary.admm_iterations,
        summary.run.iterations,
        summary
            .mean_cold_iterations
            .map_or("-".into(), |v| format!("{v:.1}")),
        summary
            .mean_warm_iterations
            .map_or("-".into(), |v| format!("{v:.1}"))
    );
    println!(
        "{:<18} primal {:.3e} (tol {:.3e}), dual {:.3e} (tol {:.3e}), ρ {}",
        "residuals",
        summary.primal_residual,
        summary.eps_primal,
        summary.dual_residual,
        summary.eps_dual,
        summary.rho
    );
    println!(
        "{:<18} {:.3} s (ADMM {:.3} s: iterations {:.3} s, where the sub-problems one after \
         another would take {:.3} s — ratio {:.2}; scoring the consensus and checkpoints {:.3} s)",
        "wall time",
        summary.run.wall_s,
        summary.run.solve_s,
        summary.iterations_s,
        summary.run.eval_s,
        summary.iterations_s / summary.run.eval_s,
        summary.run.solve_s - summary.iterations_s
    );
    super::print_scores(ev);
    super::print_results_folder(ev, &out);
    if stop.interrupted() {
        return Err(Failure::run(format!(
            "interrupted; results and checkpoint written to {} (continue with --resume)",
            out.display()
        )));
    }
    if !summary.run.success {
        return Err(Failure::run(format!(
            "ADMM did not converge: {}",
            summary.run.status
        )));
    }
    Ok(())
}
