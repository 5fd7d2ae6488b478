//! `colloc train FILE`: sequential training (vanilla, homotopy, multiple shooting).

use crate::Failure;
use colloc::problem;
use colloc::report::{self, RunSummary, SequentialSummary, SweepSummary};
use colloc::sequential::{EpochRecord, TrainMethod};
use colloc::training::sequential::{self, SequentialRunError};
use colloc::training::sweep::{self, SweepError, SweepTrial};
use colloc_models::{BasisKind, Mlp, TimeBasis};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `colloc train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Problem file (TOML).
    pub file: PathBuf,
    /// Trainer, overriding `[sequential] method`: vanilla, homotopy, shooting, or polyweight
    /// (vanilla with time-dependent weights: `[model.time_basis]`, `--time-basis`, or
    /// Legendre of degree 3).
    #[arg(long)]
    pub method: Option<String>,
    /// Time-dependent weights `KIND:DEGREE` (e.g. `legendre:3`, `monomial:2`) over the
    /// training window, overriding `[model.time_basis]`; `none` removes them.
    #[arg(long)]
    pub time_basis: Option<String>,
    /// Start from a saved model (e.g. the `model.json` of `colloc solve`).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Epochs, overriding `[sequential] epochs`; for homotopy the total over its steps
    /// (`epochs_per_step` becomes ⌈N / steps⌉).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Stop after this many seconds of training (the best model so far is kept).
    #[arg(long)]
    pub time_limit: Option<f64>,
    /// Learn the initial state with the network (`[sequential] learn_initial_state = true`):
    /// the trajectory starts from the first observation (or --start) plus a trained correction.
    #[arg(long)]
    pub learn_initial_state: bool,
    /// The state the trajectory starts from at the first training time, comma-separated
    /// (default: the first observation), e.g. the `start_state` of a `colloc solve` run's
    /// summary.json with `--init` from its model; with --learn-initial-state, where the
    /// learned start begins.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub start: Option<Vec<f64>>,
    /// Select hyper-parameters first: train every combination of the method's
    /// `[sequential.sweep]` lists and keep the lowest training MSE (the homotopy paper's
    /// Appendix F); writes `sweep.csv` beside the selected run's files.
    #[arg(long)]
    pub sweep: bool,
    /// Output folder (default: runs/<problem name>-<method>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// `--seed`, `--normalize`.
    #[command(flatten)]
    pub overrides: super::ProblemOverrides,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs the command.
pub fn run(args: TrainArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let mut problem = super::load_problem(&args.file, &args.overrides)?;
    let mut settings = problem.sequential.clone();
    let mut method_name = None;
    if let Some(m) = &args.method {
        if m == "polyweight" {
            settings.method = TrainMethod::Vanilla;
            method_name = Some("polyweight");
            if problem.model.time_basis.is_none() {
                problem.model.time_basis = Some(TimeBasis {
                    kind: BasisKind::Legendre,
                    degree: 3,
                    t0: problem.t0,
                    t1: problem.t1,
                });
            }
        } else {
            settings.method = m.parse().map_err(|e: String| {
                Failure::input(format!(
                    "--method: {}",
                    e.replace("shooting)", "shooting, polyweight)")
                ))
            })?;
        }
    }
    if let Some(b) = &args.time_basis {
        problem.model.time_basis = parse_time_basis(b, problem.t0, problem.t1)
            .map_err(|e| Failure::input(format!("--time-basis: {e}")))?;
    }
    if let Some(e) = args.epochs {
        if e == 0 {
            return Err(Failure::input("--epochs: must be at least 1"));
        }
        settings.epochs = e;
        // Homotopy trains `steps × epochs_per_step` epochs: the budget is spread over its steps.
        if settings.method == TrainMethod::Homotopy {
            let steps = settings.homotopy.steps.max(1);
            settings.homotopy.epochs_per_step = e.div_ceil(steps);
        }
    }
    if args.learn_initial_state {
        settings.learn_initial_state = true;
    }
    if let Some(y) = &args.start {
        let d = problem.data.dim();
        if y.len() != d || y.iter().any(|v| !v.is_finite()) {
            return Err(Failure::input(format!(
                "--start: the data have {d} states, so give {d} finite comma-separated values; got {y:?}"
            )));
        }
    }
    // Further experiments (`trajectories`): one network for all, each its own trajectory.
    let problems = problem.with_trajectories().map_err(Failure::input)?;
    let stop = super::Stop::new(started, args.time_limit)?;
    let init = args
        .init
        .as_deref()
        .map(Mlp::load)
        .transpose()
        .map_err(Failure::input)?;
    let method = settings.method;
    let method_name = method_name.unwrap_or(method.name());
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-{}", problem.name, method_name)));
    let _output_folder = super::create_output_folder(&out)?;

    let total = settings.total_epochs();
    let pretrain = if settings.pretrain_fraction > 0.0 {
        settings.pretrain_epochs
    } else {
        0
    };
    if !args.quiet {
        eprintln!(
            "colloc train {}: {} method, {} states, {} training points{}, model {:?} {} {}{}, {} epochs{}",
            problem.name,
            method_name,
            problem.data.dim(),
            problem.data.indices(problem::Split::Train).len(),
            match problems.len() {
                1 => String::new(),
                n => format!(
                    " (+ {} in {} further trajectories)",
                    problems[1..]
                        .iter()
                        .map(|p| p.data.indices(problem::Split::Train).len())
                        .sum::<usize>(),
                    n - 1
                ),
            },
            problem.model.layers,
            problem.model.activation,
            problem.model.structure.name(),
            problem
                .model
                .time_basis
                .as_ref()
                .map_or(String::new(), |b| format!(
                    " with {:?} degree-{} weights",
                    b.kind, b.degree
                )),
            total,
            if pretrain > 0 {
                format!(
                    " after {pretrain} pre-training epochs on the first {:.0} %",
                    100.0 * settings.pretrain_fraction
                )
            } else {
                String::new()
            }
        );
    }
    let keep_going = || stop.keep_going();
    let mut sweep_summary = None;
    let runs = if args.sweep {
        let quiet = args.quiet;
        let on_trial = |k: usize, n: usize, t: &SweepTrial| {
            if !quiet {
                eprintln!(
                    "sweep {:>3}/{n}  {:<50} train MSE {:.4e}  test MSE {:.4e}  best epoch {:>5}/{}  {:.1} s{}",
                    k + 1,
                    t.describe(),
                    t.train_mse,
                    t.test_mse,
                    t.best_epoch,
                    t.epochs,
                    t.train_s,
                    t.stopped.as_deref().map_or(String::new(), |w| format!("  ({w})"))
                );
            }
        };
        if !quiet {
            let n = settings.sweep.candidates(&settings).len();
            eprintln!(
                "sweeping {n} combinations of [sequential.sweep], {} at a time; the lowest training MSE is kept",
                rayon::current_num_threads().min(n)
            );
        }
        let outcome = sweep::sweep(
            &problems,
            &settings,
            init.as_ref(),
            args.start.as_deref(),
            &|_, _| keep_going(),
            &on_trial,
        )
        .map_err(|e| match e {
            SweepError::NoGrid(..)
            | SweepError::Trial {
                source: SequentialRunError::Network(_) | SequentialRunError::Coordinates(_),
                ..
            } => Failure::input(format!("{}: {e}", args.file.display())),
            other => Failure::run(other),
        })?;
        let chosen = &outcome.trials[outcome.selected];
        if !args.quiet {
            eprintln!(
                "sweep: selected {} (train MSE {:.4e}, lowest of {}{})",
                chosen.describe(),
                chosen.train_mse,
                outcome.trials.len(),
                if outcome.complete {
                    ""
                } else {
                    ", sweep stopped early"
                }
            );
        }
        report::write_sweep(&out, &outcome.trials, outcome.selected).map_err(Failure::run)?;
        sweep_summary = Some(SweepSummary {
            trials: outcome.trials.len(),
            complete: outcome.complete,
            selected: chosen.values.iter().copied().collect(),
        });
        outcome.runs
    } else {
        let mut progress = Progress::new(args.quiet, total, pretrain);
        let mut observer = |r: &EpochRecord| {
            progress.show(r);
            keep_going()
        };
        sequential::train_trajectories(
            &problems,
            &settings,
            init.as_ref(),
            args.start.as_deref(),
            &mut observer,
        )
        .map_err(|e| match e {
            SequentialRunError::Network(_) | SequentialRunError::Coordinates(_) => {
                Failure::input(e)
            }
            other => Failure::run(other),
        })?
    };
    if !args.quiet && std::io::stderr().is_terminal() {
        eprintln!();
    }
    let run = &runs[0];
    let report = &run.report;
    let ev = &run.evaluation;
    let epochs = report.curve.len();
    let nfe = report.nfe + run.pretrain.as_ref().map_or(0, |p| p.nfe);
    let best = report.curve.get(report.best_epoch);
    let status = match (&report.stopped, stop.timed_out()) {
        (_, Some(limit)) => format!("time limit ({limit} s) reached"),
        (Some(why), None) => why.clone(),
        (None, None) => "completed".to_string(),
    };
    let success = report.stopped.is_none() || stop.timed_out().is_some();
    let platform = colloc::report::Platform::current();
    let summary_of = |j: usize| {
        let (p, r) = (&problems[j], &runs[j]);
        SequentialSummary {
            run: RunSummary {
                problem: &p.name,
                method: method_name,
                status: status.clone(),
                success,
                iterations: epochs,
                wall_s: started.elapsed().as_secs_f64(),
                solve_s: run.train_s,
                eval_s: run.train_s,
                objective: best.map_or(f64::NAN, |b| b.loss),
                scores: &r.evaluation,
                size: colloc_solvers::NlpDims {
                    n_vars: report.best.n_params(),
                    ..Default::default()
                },
                seed: p.seed,
                platform: platform.clone(),
                normalization: report.best.normalization.as_ref(),
            },
            structure: problem.model.structure.name(),
            time_basis: problem
                .model
                .time_basis
                .as_ref()
                .map(|b| format!("{:?}:{}", b.kind, b.degree).to_lowercase()),
            epochs,
            best_epoch: report.best_epoch,
            nfe,
            epoch_ms: 1e3 * run.train_s
                / (epochs + run.pretrain.as_ref().map_or(0, |p| p.curve.len())).max(1) as f64,
            init: args.init.as_ref().map(|p| p.display().to_string()),
            learn_initial_state: settings.learn_initial_state,
            sweep: sweep_summary.clone(),
            trajectories: Vec::new(),
            pooled: None,
        }
    };
    for (j, (p, r)) in problems.iter().zip(&runs).enumerate().skip(1) {
        report::write_sequential(
            &out.join(super::trajectory_folder(j)),
            p,
            &r.report,
            &r.evaluation,
            &summary_of(j),
        )
        .map_err(Failure::run)?;
    }
    let mut summary = summary_of(0);
    if runs.len() > 1 {
        let evaluations: Vec<_> = runs.iter().map(|r| &r.evaluation).collect();
        summary.trajectories = super::trajectory_summaries(&problems, &evaluations);
        summary.pooled = Some(colloc::training::collocation::pooled_scores(
            &problems,
            &evaluations,
        ));
    }
    report::write_sequential(&out, &problem, report, ev, &summary).map_err(Failure::run)?;

    println!("{:<18} {}", "status", summary.run.status);
    println!(
        "{:<18} {} (best {}), {} right-hand-side evaluations",
        "epochs", summary.epochs, summary.best_epoch, summary.nfe
    );
    println!(
        "{:<18} {:.3} s (training {:.3} s, {:.3} ms per epoch)",
        "wall time", summary.run.wall_s, summary.run.solve_s, summary.epoch_ms
    );
    println!("{:<18} {:.6e}", "loss at best", summary.run.objective);
    if settings.learn_initial_state {
        for (p, start) in problems.iter().zip(&report.best_starts) {
            let start: Vec<String> = start.iter().map(|v| format!("{v:.6}")).collect();
            let label = if problems.len() == 1 {
                "start state".to_string()
            } else {
                format!("start {}", p.name)
            };
            println!("{label:<18} [{}] (learned)", start.join(", "));
        }
    }
    super::print_scores(ev);
    if let Some(pooled) = &summary.pooled {
        super::print_trajectories(&summary.trajectories, pooled);
    }
    super::print_results_folder(ev, &out);
    if stop.interrupted() {
        return Err(Failure::run(format!(
            "interrupted; the best model so far was written to {}",
            out.display()
        )));
    }
    if !summary.run.success {
        return Err(Failure::run(format!(
            "training stopped: {}",
            summary.run.status
        )));
    }
    Ok(())
}

/// Progress on stderr: a line rewritten in place on a terminal, else a line every 1/20 of
/// the run.
struct Progress {
    quiet: bool,
    terminal: bool,
    total: usize,
    pretrain: usize,
    seen: usize,
    best: f64,
}

impl Progress {
    fn new(quiet: bool, total: usize, pretrain: usize) -> Self {
        Self {
            quiet,
            terminal: std::io::stderr().is_terminal(),
            total,
            pretrain,
            seen: 0,
            best: f64::INFINITY,
        }
    }

    fn show(&mut self, r: &EpochRecord) {
        self.seen += 1;
        if self.quiet {
            return;
        }
        let (phase, total) = if self.seen <= self.pretrain {
            ("pre-train", self.pretrain)
        } else {
            if self.seen == self.pretrain + 1 {
                self.best = f64::INFINITY;
            }
            ("train", self.total)
        };
        self.best = self.best.min(r.train_mse);
        let done = r.epoch + 1;
        let width = 30;
        let filled = (width * done / total.max(1)).min(width);
        let line = format!(
            "{phase:>9} [{}{}] {done:>5}/{total}  loss {:.4e}  best mse {:.4e}  λ {:.3}  {:.1} s",
            "#".repeat(filled),
            " ".repeat(width - filled),
            r.loss,
            self.best,
            r.lambda,
            r.time_s
        );
        if self.terminal {
            eprint!("\r{line}");
        } else if done == 1 || done == total || done % (total / 20).max(1) == 0 {
            eprintln!("{line}");
        }
    }
}

/// `KIND:DEGREE` or `none`.
fn parse_time_basis(text: &str, t0: f64, t1: f64) -> Result<Option<TimeBasis>, String> {
    if text == "none" {
        return Ok(None);
    }
    let (kind, degree) = text
        .split_once(':')
        .ok_or_else(|| format!("expected KIND:DEGREE (e.g. legendre:3) or none, got `{text}`"))?;
    let kind = match kind {
        "legendre" => BasisKind::Legendre,
        "monomial" => BasisKind::Monomial,
        other => {
            return Err(format!(
                "unknown basis `{other}` (valid: legendre, monomial)"
            ))
        }
    };
    let degree = degree
        .parse()
        .map_err(|_| format!("degree `{degree}` is not a whole number"))?;
    if degree > 12 {
        return Err(format!("degree {degree} is too high (at most 12)"));
    }
    Ok(Some(TimeBasis {
        kind,
        degree,
        t0,
        t1,
    }))
}
