//! Result files: summary JSON, CSV tables and an SVG plot, each written atomically. This is
//! the only place that turns results into text; the library never prints.

mod svg;

pub use svg::fit_plot;

use crate::problem::Problem;
use crate::training::collocation::CollocationRun;
use colloc_models::write_atomic;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// Errors writing results.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ReportError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

fn write(dir: &Path, name: &str, text: &str) -> Result<(), ReportError> {
    let path = dir.join(name);
    write_atomic(&path, text.as_bytes()).map_err(|e| ReportError {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// `summary.json` of a collocation run.
#[derive(Serialize)]
pub struct Summary<'a> {
    /// Problem name.
    pub problem: &'a str,
    /// Method (`collocation`).
    pub method: &'a str,
    /// Network formulation.
    pub formulation: crate::problem::Formulation,
    /// IPOPT status.
    pub status: String,
    /// True when IPOPT converged (to the requested or acceptable tolerance).
    pub success: bool,
    /// IPOPT iterations.
    pub iterations: usize,
    /// Whole run: build, solve and evaluation, seconds.
    pub wall_s: f64,
    /// Building the NLP, seconds.
    pub build_s: f64,
    /// The derivative pre-fit of θ, seconds (0 when not used).
    pub prefit_s: f64,
    /// The IPOPT solve, seconds.
    pub solve_s: f64,
    /// Function and derivative evaluations inside the solve, seconds.
    pub eval_s: f64,
    /// Final objective.
    pub objective: f64,
    /// Collocation states vs training observations.
    pub fit_mse: Option<f64>,
    /// Simulation vs training observations.
    pub train_mse: Option<f64>,
    /// Simulation vs test observations.
    pub test_mse: Option<f64>,
    /// Simulation vs noise-free training states.
    pub train_mse_clean: Option<f64>,
    /// Simulation vs noise-free test states.
    pub test_mse_clean: Option<f64>,
    /// Variables.
    pub n_vars: usize,
    /// Constraints.
    pub n_cons: usize,
    /// Jacobian nonzeros.
    pub nnz_jac: usize,
    /// Hessian nonzeros (lower triangle).
    pub nnz_hess: usize,
    /// Seed.
    pub seed: u64,
    /// Why the simulation of the learned ODE failed, if it did.
    pub simulation_error: Option<String>,
    /// Calls and seconds per callback.
    pub ipopt_stats: &'a colloc_solvers::ipopt::SolveStats,
}

/// Writes `summary.json`, `model.json`, `data.csv`, `prediction.csv`, `history.csv` and
/// `fit.svg` into `dir` (created if needed).
pub fn write_collocation(
    dir: &Path,
    problem: &Problem,
    run: &CollocationRun,
    summary: &Summary<'_>,
) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|e| ReportError {
        path: dir.display().to_string(),
        message: e.to_string(),
    })?;
    let json = serde_json::to_string_pretty(summary).map_err(|e| ReportError {
        path: "summary.json".into(),
        message: e.to_string(),
    })?;
    write(dir, "summary.json", &(json + "\n"))?;
    write(dir, "model.json", &(run.model.to_json() + "\n"))?;
    let data = &problem.data;
    let d = data.dim();
    let header = |prefix: &str| {
        (1..=d)
            .map(|i| format!("{prefix}{i}"))
            .collect::<Vec<_>>()
            .join(",")
    };

    let mut s = format!("t,{},split\n", header("y"));
    for k in 0..data.t.len() {
        let _ = writeln!(
            s,
            "{},{},{}",
            data.t[k],
            join(&data.y[k]),
            data.split[k].name()
        );
    }
    write(dir, "data.csv", &s)?;

    let ev = &run.evaluation;
    let mut s = format!(
        "t,split,{},{}{}\n",
        header("sim"),
        header("fit"),
        if data.clean.is_some() {
            format!(",{}", header("clean"))
        } else {
            String::new()
        }
    );
    for k in 0..data.t.len() {
        let fit = ev.fitted[k]
            .as_ref()
            .map_or_else(|| vec![String::new(); d].join(","), |f| join(f));
        let _ = write!(
            s,
            "{},{},{},{}",
            data.t[k],
            data.split[k].name(),
            join(&ev.prediction[k]),
            fit
        );
        if let Some(c) = &data.clean {
            let _ = write!(s, ",{}", join(&c[k]));
        }
        s.push('\n');
    }
    write(dir, "prediction.csv", &s)?;

    let mut s = String::from("iteration,restoration,objective,inf_pr,inf_du,mu,d_norm,regularization,alpha_du,alpha_pr,ls_trials\n");
    for h in &run.history {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{}",
            h.iteration,
            h.restoration,
            h.objective,
            h.inf_pr,
            h.inf_du,
            h.mu,
            h.d_norm,
            h.regularization,
            h.alpha_du,
            h.alpha_pr,
            h.ls_trials
        );
    }
    write(dir, "history.csv", &s)?;
    write(dir, "fit.svg", &fit_plot(problem, run))?;
    Ok(())
}

fn join(v: &[f64]) -> String {
    v.iter()
        .map(|x| {
            if x.is_finite() {
                x.to_string()
            } else {
                String::new()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}
