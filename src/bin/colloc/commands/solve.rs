//! `colloc solve FILE`: simultaneous collocation training.

use crate::Failure;
use colloc::problem::Formulation;
use colloc::report::{self, RunSummary, Summary};
use colloc::training::collocation::{self, TrainError};
use colloc_models::Mlp;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `colloc solve`.
#[derive(clap::Args, Debug)]
pub struct SolveArgs {
    /// Problem file (TOML).
    pub file: PathBuf,
    /// Output folder (default: runs/<problem name>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Network formulation, overriding the problem file: reduced or full.
    #[arg(long)]
    pub formulation: Option<Formulation>,
    /// Start θ from a saved model instead of a Xavier draw.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// `--seed`, `--normalize`.
    #[command(flatten)]
    pub overrides: super::ProblemOverrides,
    /// Stop IPOPT after this many seconds (wall time from the start of the command), as
    /// Ctrl-C does: the results of the last iterate are written and the exit code is 1.
    #[arg(long)]
    pub time_limit: Option<f64>,
    /// No progress lines.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs the command.
pub fn run(args: SolveArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let stop = super::Stop::new(started, args.time_limit)?;
    let problem = super::load_problem(&args.file, &args.overrides)?;
    let formulation = args.formulation.unwrap_or(problem.formulation);
    let init = args
        .init
        .as_deref()
        .map(Mlp::load)
        .transpose()
        .map_err(Failure::input)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&problem.name));

    let problems = problem.with_trajectories().map_err(Failure::input)?;
    let _output_folder = super::create_output_folder(&out)?;
    if !args.quiet {
        eprintln!(
            "colloc solve {}: {} states, {} training observations, {} collocation points{}, model {:?} {}, {} formulation{}",
            problem.name,
            problem.data.dim(),
            problem.data.indices(colloc::problem::Split::Train).len(),
            problem.nodes.len(),
            match problems.len() {
                1 => String::new(),
                n => format!(
                    " (+ {} on {} further trajectories)",
                    problems[1..].iter().map(|p| p.nodes.len()).sum::<usize>(),
                    n - 1
                ),
            },
            problem.model.layers,
            problem.model.activation,
            formulation,
            if init.as_ref().is_some_and(|m| m.normalization.is_some()) {
                ", in the starting model's standardized coordinates"
            } else if problem.collocation_normalize() {
                ", in standardized coordinates"
            } else {
                ""
            }
        );
        eprintln!(
            "{:>5} {:>14} {:>10} {:>10} {:>9}",
            "iter", "objective", "inf_pr", "inf_du", "lg(mu)"
        );
    }
    let quiet = args.quiet;
    let watch = stop.clone();
    let mut observer = move |it: &colloc_solvers::ipopt::IterationInfo| {
        if !quiet {
            eprintln!(
                "{:>5}{} {:>14.7e} {:>10.3e} {:>10.3e} {:>9.2}",
                it.iteration,
                if it.restoration { "r" } else { " " },
                it.objective,
                it.inf_pr,
                it.inf_du,
                it.mu.log10()
            );
        }
        watch.keep_going()
    };
    let as_failure = |e: TrainError| match e {
        TrainError::Network(_) | TrainError::Unsupported(_) | TrainError::Problem(_) => {
            Failure::input(e)
        }
        other => Failure::run(other),
    };
    let runs = if problems.len() == 1 {
        vec![
            collocation::train(&problem, formulation, init.as_ref(), &mut observer)
                .map_err(as_failure)?,
        ]
    } else {
        collocation::train_joint(&problems, formulation, init.as_ref(), &mut observer)
            .map_err(as_failure)?
    };
    let run = &runs[0];
    let ev = &run.evaluation;
    let stats = &run.solution.stats;
    let rounds = &run.refinements;
    let totals = run.totals();
    let status = match stop.timed_out() {
        Some(limit) => format!(
            "time limit ({limit} s) reached (IPOPT: {})",
            run.solution.status
        ),
        None => run.solution.status.to_string(),
    };
    let platform = colloc::report::Platform::current();
    let summary_of = |j: usize| {
        let (p, r) = (&problems[j], &runs[j]);
        Summary {
            run: RunSummary {
                problem: &p.name,
                method: "collocation",
                status: status.clone(),
                success: r.solution.is_success(),
                iterations: totals.iterations,
                wall_s: started.elapsed().as_secs_f64(),
                solve_s: totals.solve_s,
                eval_s: totals.eval_s,
                objective: r.solution.objective,
                scores: &r.evaluation,
                size: r.dims,
                seed: p.seed,
                platform: platform.clone(),
                normalization: r.model.normalization.as_ref(),
            },
            formulation,
            build_s: totals.build_s,
            prefit_s: totals.prefit_s,
            prefit: r.prefit,
            ipopt_stats: &r.solution.stats,
            penalty_stages: &r.stages,
            parameter_scaling: problem.parameter_scaling,
            smoothing: p.smoothing,
            collocation_points: r.nodes.len(),
            refinements: &r.refinements,
            trajectories: Vec::new(),
            pooled: None,
        }
    };
    // A joint solve: each further trajectory's files in `trajectory<j>/`.
    for (j, (p, r)) in problems.iter().zip(&runs).enumerate().skip(1) {
        report::write_collocation(&out.join(super::trajectory_folder(j)), p, r, &summary_of(j))
            .map_err(Failure::run)?;
    }
    let mut summary = summary_of(0);
    if runs.len() > 1 {
        let evaluations: Vec<_> = runs.iter().map(|r| &r.evaluation).collect();
        summary.trajectories = super::trajectory_summaries(&problems, &evaluations);
        summary.pooled = Some(collocation::pooled_scores(&problems, &evaluations));
    }
    report::write_collocation(&out, &problems[0], run, &summary).map_err(Failure::run)?;

    println!("{:<18} {}", "status", summary.run.status);
    for round in rounds {
        println!(
            "{:<18} {} points: {} iterations, {}, relative defect {:.2e} → refined",
            "refinement",
            round.points,
            round.totals.iterations,
            round.status,
            round.collocation_defect_relative
        );
    }
    println!(
        "{:<18} {} ({} KKT factorizations; {})",
        "iterations", summary.run.iterations, totals.kkt_factorizations, totals.kkt_solvers
    );
    for stage in &run.stages {
        println!(
            "{:<18} weight {:.0e}: {} iterations, {}, max |defect| {:.2e}, {:.1} s",
            "penalty stage",
            stage.defect_weight,
            stage.iterations,
            stage.status,
            stage.max_defect,
            stage.solve_s
        );
    }
    if !run.stages.is_empty() {
        println!("{:<18} {} iterations", "exact problem", stats.iterations);
    }
    println!(
        "{:<18} {:.3} s (build {:.3} s, pre-fit {:.3} s, IPOPT {:.3} s of which evaluations {:.3} s)",
        "wall time", summary.run.wall_s, summary.build_s, summary.prefit_s, summary.run.solve_s, summary.run.eval_s
    );
    if let Some(fit) = &summary.prefit {
        println!(
            "{:<18} {} Levenberg–Marquardt iterations{}, Φ {:.3e} → {:.3e}",
            "pre-fit",
            fit.iterations,
            if fit.iterations >= fit.max_iterations {
                " (the limit)"
            } else {
                ""
            },
            fit.initial_objective,
            fit.objective
        );
    }
    println!("{:<18} {:.6e}", "objective", summary.run.objective);
    super::print_scores(ev);
    println!(
        "{:<18} {} vars, {} cons, {} jac nnz, {} hess nnz",
        "size", run.dims.n_vars, run.dims.n_cons, run.dims.nnz_jac, run.dims.nnz_hess
    );
    if let Some(pooled) = &summary.pooled {
        super::print_trajectories(&summary.trajectories, pooled);
    }
    super::print_results_folder(ev, &out);
    if summary.run.success {
        // Both speak of a fit that solves the collocation equations at the nodes.
        super::warn_if_grid_too_coarse(ev);
        super::warn_if_simulation_departs(ev, run.model.normalization.is_some());
    }
    if stop.interrupted() {
        return Err(Failure::run(format!(
            "interrupted; results of the last iterate written to {}",
            out.display()
        )));
    }
    if let Some(limit) = stop.timed_out() {
        return Err(Failure::run(format!(
            "time limit ({limit} s) reached; results of the last iterate written to {}",
            out.display()
        )));
    }
    if !summary.run.success {
        return Err(Failure::run(format!(
            "IPOPT did not converge: {} ({}){}",
            run.solution.status,
            run.solution.status.message(),
            stats
                .linear_solver_error
                .as_ref()
                .map_or(String::new(), |e| format!("; {e}"))
        )));
    }
    Ok(())
}
