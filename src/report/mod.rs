//! Result files: summary JSON, CSV tables and an SVG plot, each written atomically. This is
//! the only place that turns results into text; the library never prints.

mod svg;

pub use svg::{curve_plot, fit_plot, log_series_plot, prediction_plot, trajectory_plot};

use crate::problem::Problem;
use crate::sequential::TrainReport;
use crate::training::collocation::{CollocationRun, Evaluation};
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
    write_file(&dir.join(name), text)
}

/// Where a run ran. A nonconvex solve's path depends on the rounding of the BLAS kernels (the
/// same file and seed can end in another local optimum on another CPU), so every
/// `summary.json` records them beside the version.
#[derive(Clone, Debug, Serialize)]
pub struct Platform {
    /// colloc's version.
    pub colloc_version: &'static str,
    /// The CPU model (Linux: `/proc/cpuinfo`), if known.
    pub cpu: Option<String>,
    /// The kernel family OpenBLAS uses (e.g. `SkylakeX`, `Haswell`, `Zen`), if the BLAS is
    /// OpenBLAS.
    pub blas_core: Option<String>,
    /// Threads of the parallel evaluations (rayon's pool).
    pub threads: usize,
}

impl Platform {
    /// This process's platform.
    pub fn current() -> Self {
        Self {
            colloc_version: env!("CARGO_PKG_VERSION"),
            cpu: cpu_model(),
            blas_core: colloc_solvers::ipopt::blas_core_name(),
            threads: rayon::current_num_threads(),
        }
    }
}

/// The CPU model named in `/proc/cpuinfo`, if any.
fn cpu_model() -> Option<String> {
    cpu_model_in(&std::fs::read_to_string("/proc/cpuinfo").ok()?)
}

/// The first non-empty `model name` of a `/proc/cpuinfo` text (x86; other architectures may
/// have none).
fn cpu_model_in(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .filter_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, name)| name.trim())
        .find(|name| !name.is_empty())
        .map(str::to_string)
}

/// The keys every `summary.json` has, whatever trained the model (flattened into
/// [`Summary`], [`SequentialSummary`] and [`AdmmSummary`], which say what each means for
/// their method).
#[derive(Serialize)]
pub struct RunSummary<'a> {
    /// Problem name.
    pub problem: &'a str,
    /// Method: `collocation`, `vanilla`, `homotopy`, `shooting`, `polyweight` or `admm`.
    pub method: &'a str,
    /// How the run ended: IPOPT's status, `completed`, `converged`, or why it stopped.
    pub status: String,
    /// True when the run reached its goal (IPOPT converged; every epoch ran; both ADMM
    /// residuals below their tolerances).
    pub success: bool,
    /// IPOPT iterations (all of them, for ADMM: every sub-problem's) or epochs.
    pub iterations: usize,
    /// Whole run, seconds.
    pub wall_s: f64,
    /// Solving or training, seconds.
    pub solve_s: f64,
    /// Function and derivative evaluations inside the solve, seconds (ADMM: the sub-problem
    /// times summed, as if solved one after another).
    pub eval_s: f64,
    /// Final objective (sequential: the method's loss at the best epoch; ADMM: the mean of
    /// the batches' last sub-problem objectives).
    pub objective: f64,
    /// `fit_mse` (null without collocation states), `train_mse`, `test_mse`, their `_clean`
    /// versions, `simulation_error`, `simulation_excursion`, `simulation_nfe`, `start_state`.
    #[serde(flatten)]
    pub scores: &'a Evaluation,
    /// `n_vars`, `n_cons`, `nnz_jac`, `nnz_hess` (without one NLP — sequential training,
    /// ADMM — `n_vars` counts the network parameters and the others are 0).
    #[serde(flatten)]
    pub size: colloc_solvers::NlpDims,
    /// Seed.
    pub seed: u64,
    /// Version, CPU and BLAS kernels of the run.
    pub platform: Platform,
    /// The standardized coordinates the network was trained in, if any (the objective and
    /// the histories are in those coordinates, the MSEs in the data's units).
    pub normalization: Option<&'a colloc_models::Normalization>,
}

/// `summary.json` of a collocation run.
#[derive(Serialize)]
pub struct Summary<'a> {
    /// The keys every summary has.
    #[serde(flatten)]
    pub run: RunSummary<'a>,
    /// Network formulation.
    pub formulation: crate::problem::Formulation,
    /// Building the NLP, seconds.
    pub build_s: f64,
    /// The derivative pre-fit of θ, seconds (0 when not used).
    pub prefit_s: f64,
    /// What the pre-fit of the last grid's start did: `iterations`, `max_iterations`,
    /// `initial_objective`, `objective` (null without a pre-fit).
    pub prefit: Option<crate::training::prefit::PrefitOutcome>,
    /// Calls and seconds per callback (of the exact solve).
    pub ipopt_stats: &'a colloc_solvers::ipopt::SolveStats,
    /// Penalty stages of the defect continuation before the exact solve (their iterations and
    /// seconds are included in `iterations`, `solve_s` and `eval_s`).
    pub penalty_stages: &'a [crate::training::collocation::PenaltyStage],
    /// IPOPT's scaling factor for θ (`[solver] parameter_scaling`; 1 = none).
    pub parameter_scaling: f64,
    /// The smoothing that started the states (`[solver] smoothing`: factor or `"cv"`).
    pub smoothing: crate::problem::Smoothing,
    /// Collocation points of the grid the result is on (the last grid of a refinement).
    pub collocation_points: usize,
    /// Grids solved and refined before the last one (`[collocation.refinement]`; their
    /// iterations and seconds are included in `iterations`, `build_s`, `prefit_s`, `solve_s`
    /// and `eval_s`).
    pub refinements: &'a [crate::training::collocation::RefinementRound],
    /// The trajectories of a joint solve over several (the problem file's `trajectories`):
    /// this problem's own first (its figures are the ones above), then each further one with
    /// the folder of its result files; empty for a solve on one trajectory.
    pub trajectories: Vec<TrajectorySummary<'a>>,
    /// Observation-weighted means over the trajectories of a joint solve (null for one).
    pub pooled: Option<crate::training::collocation::PooledScores>,
}

/// One trajectory of a joint solve in `summary.json`.
#[derive(Serialize)]
pub struct TrajectorySummary<'a> {
    /// Its problem's name.
    pub name: &'a str,
    /// Its problem file.
    pub file: String,
    /// The folder of its result files, relative to the run's folder (`.` for the first).
    pub folder: String,
    /// Its training observations.
    pub observations: usize,
    /// Its figures (as at the top level of a single solve).
    #[serde(flatten)]
    pub scores: &'a Evaluation,
}

/// Writes `summary.json`, `model.json`, `data.csv`, `prediction.csv`, `history.csv` and
/// `fit.svg` into `dir` (created if needed).
pub fn write_collocation(
    dir: &Path,
    problem: &Problem,
    run: &CollocationRun,
    summary: &Summary<'_>,
) -> Result<(), ReportError> {
    let json = prepare(dir, summary)?;
    write(dir, "summary.json", &json)?;
    write(dir, "model.json", &(run.model.to_json() + "\n"))?;
    write_data_and_prediction(dir, problem, &run.evaluation)?;

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

/// Creates `dir` (and its parents) if needed.
fn create_dir(dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|e| ReportError {
        path: dir.display().to_string(),
        message: e.to_string(),
    })
}

/// Creates `dir` and renders the summary as pretty JSON.
fn prepare(dir: &Path, summary: &impl Serialize) -> Result<String, ReportError> {
    create_dir(dir)?;
    serde_json::to_string_pretty(summary)
        .map(|j| j + "\n")
        .map_err(|e| ReportError {
            path: "summary.json".into(),
            message: e.to_string(),
        })
}

/// `data.csv` (the exact data used) and `prediction.csv` (simulation, fitted states where
/// there are any, noise-free states for generated data).
fn write_data_and_prediction(
    dir: &Path,
    problem: &Problem,
    ev: &Evaluation,
) -> Result<(), ReportError> {
    let data = &problem.data;
    let d = data.dim();
    let header = |prefix: &str| column_names(prefix, d);

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
        let fit = ev
            .fitted
            .get(k)
            .and_then(Option::as_ref)
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
    write(dir, "prediction.csv", &s)
}

/// `summary.json` of a sequential training run: the keys of [`RunSummary`] (`iterations` =
/// `epochs`; `solve_s` = `eval_s` = training) plus `epochs`, `best_epoch`, `nfe`.
#[derive(Serialize)]
pub struct SequentialSummary<'a> {
    /// The keys every summary has.
    #[serde(flatten)]
    pub run: RunSummary<'a>,
    /// Model structure (`black-box`, `second-order`, `gray-box`).
    pub structure: &'a str,
    /// Time-dependent weights (`legendre:3`, …), if any.
    pub time_basis: Option<String>,
    /// Epochs run (same as `iterations`).
    pub epochs: usize,
    /// Epoch of the best training MSE (the returned model).
    pub best_epoch: usize,
    /// Right-hand-side evaluations of the training solves.
    pub nfe: usize,
    /// Mean time per epoch, milliseconds.
    pub epoch_ms: f64,
    /// The model training started from (`--init`), if any.
    pub init: Option<String>,
    /// True when the initial state was learned with the network (`start_state`).
    pub learn_initial_state: bool,
    /// The hyper-parameter sweep that selected these settings (`colloc train --sweep`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepSummary>,
    /// The trajectories of a run on several (the problem file's `trajectories`), as in
    /// [`Summary`]; empty for one.
    pub trajectories: Vec<TrajectorySummary<'a>>,
    /// Observation-weighted means over those trajectories (null for one).
    pub pooled: Option<crate::training::collocation::PooledScores>,
}

/// `sweep` in `summary.json` of `colloc train --sweep`.
#[derive(Clone, Debug, Serialize)]
pub struct SweepSummary {
    /// Combinations trained.
    pub trials: usize,
    /// False when the sweep was stopped (interrupt, time limit) before its last combination.
    pub complete: bool,
    /// The selected values by `[sequential.sweep]` field.
    pub selected: std::collections::BTreeMap<&'static str, f64>,
}

/// Writes `sweep.csv` (one row per trained combination: its values, training and test MSE,
/// best epoch, epochs, seconds, `selected`) into `dir` atomically.
pub fn write_sweep(
    dir: &Path,
    trials: &[crate::training::sweep::SweepTrial],
    selected: usize,
) -> Result<(), ReportError> {
    let names: Vec<&str> = trials
        .first()
        .map(|t| t.values.iter().map(|(n, _)| *n).collect())
        .unwrap_or_default();
    let mut s = names.join(",");
    s.push_str(",train_mse,test_mse,best_epoch,epochs,train_s,selected\n");
    for (k, t) in trials.iter().enumerate() {
        for (_, v) in &t.values {
            let _ = write!(s, "{v},");
        }
        let _ = writeln!(
            s,
            "{},{},{},{},{},{}",
            t.train_mse,
            t.test_mse,
            t.best_epoch,
            t.epochs,
            t.train_s,
            k == selected
        );
    }
    create_dir(dir)?;
    write(dir, "sweep.csv", &s)
}

/// Writes `summary.json`, `model.json`, `data.csv`, `prediction.csv`, `curve.csv`,
/// `curve.svg` and `fit.svg` of a sequential run into `dir` (created if needed).
pub fn write_sequential(
    dir: &Path,
    problem: &Problem,
    report: &TrainReport,
    ev: &Evaluation,
    summary: &SequentialSummary<'_>,
) -> Result<(), ReportError> {
    let json = prepare(dir, summary)?;
    write(dir, "summary.json", &json)?;
    write(dir, "model.json", &(report.best.to_json() + "\n"))?;
    write_data_and_prediction(dir, problem, ev)?;
    let mut s = String::from("epoch,loss,train_mse,lambda,time_s,nfe\n");
    for c in &report.curve {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{}",
            c.epoch, c.loss, c.train_mse, c.lambda, c.time_s, c.nfe
        );
    }
    write(dir, "curve.csv", &s)?;
    let title = format!("{} ({})", problem.name, summary.run.method);
    write(dir, "curve.svg", &svg::curve_plot(&title, &report.curve))?;
    write(
        dir,
        "fit.svg",
        &svg::trajectory_plot(
            problem,
            None,
            &ev.prediction,
            "blue: learned ODE simulated from the first observation",
        ),
    )?;
    Ok(())
}

/// The CSV of a prediction (`colloc predict`): `t, y1, …, yd`, followed by the observations
/// `obs1, …, obsd` when there are any.
pub fn prediction_table(
    prediction: &crate::training::prediction::Prediction,
    observed: Option<&[Vec<f64>]>,
) -> String {
    let d = prediction.y.first().map_or(0, Vec::len);
    let names = |prefix: &str| column_names(prefix, d);
    let mut s = format!("t,{}", names("y"));
    if observed.is_some() {
        let _ = write!(s, ",{}", names("obs"));
    }
    s.push('\n');
    for (k, (t, y)) in prediction.t.iter().zip(&prediction.y).enumerate() {
        let _ = write!(s, "{t},{}", join(y));
        if let Some(o) = observed.and_then(|o| o.get(k)) {
            let _ = write!(s, ",{}", join(o));
        }
        s.push('\n');
    }
    s
}

/// Writes `text` to `path` atomically (a temporary file beside it, then a rename).
pub fn write_file(path: &Path, text: &str) -> Result<(), ReportError> {
    write_atomic(path, text.as_bytes()).map_err(|e| ReportError {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// `prefix1,prefix2,…,prefixd`: the CSV column names of `d` states.
fn column_names(prefix: &str, d: usize) -> String {
    (1..=d)
        .map(|i| format!("{prefix}{i}"))
        .collect::<Vec<_>>()
        .join(",")
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

/// `summary.json` of an ADMM run: the keys of [`RunSummary`] for the consensus model
/// (`iterations` sums the sub-problems' IPOPT iterations; `solve_s` includes the scoring of
/// the consensus model and the checkpoints; no `fit_mse`) plus `admm_iterations`,
/// `primal_residual`, `dual_residual`, `batches`.
#[derive(Serialize)]
pub struct AdmmSummary<'a> {
    /// The keys every summary has.
    #[serde(flatten)]
    pub run: RunSummary<'a>,
    /// Network formulation of the sub-problems.
    pub formulation: crate::problem::Formulation,
    /// ADMM iterations.
    pub admm_iterations: usize,
    /// Final primal residual.
    pub primal_residual: f64,
    /// Final dual residual.
    pub dual_residual: f64,
    /// Final primal tolerance.
    pub eps_primal: f64,
    /// Final dual tolerance.
    pub eps_dual: f64,
    /// Final ρ.
    pub rho: f64,
    /// Number of batches.
    pub batches: usize,
    /// IPOPT iterations of the warm-started sub-problems, mean per solve.
    pub mean_warm_iterations: Option<f64>,
    /// IPOPT iterations of the cold-started sub-problems, mean per solve.
    pub mean_cold_iterations: Option<f64>,
    /// Sum of the iterations' own wall times (concurrent sub-problems and the consensus
    /// update, without scoring and checkpoints), seconds: `iterations_s / eval_s` is the
    /// parallel speed-up's ratio.
    pub iterations_s: f64,
}

/// Writes `summary.json`, `model.json`, `history.csv`, `residuals.svg`, `consensus.svg`,
/// `data.csv`, `prediction.csv` and `fit.svg` of an ADMM run into `dir`.
pub fn write_admm(
    dir: &Path,
    problem: &Problem,
    run: &crate::training::admm::AdmmRun,
    summary: &AdmmSummary<'_>,
) -> Result<(), ReportError> {
    let json = prepare(dir, summary)?;
    write(dir, "summary.json", &json)?;
    write(dir, "model.json", &(run.model.to_json() + "\n"))?;
    write_data_and_prediction(dir, problem, &run.evaluation)?;
    let history = &run.state.history;
    let mut s = String::from(
        "iteration,rho,primal,dual,eps_primal,eps_dual,seconds,sequential_seconds,batch,status,accepted,objective,ipopt_iterations,batch_seconds,warm,cold_retry,consensus_train_mse,consensus_test_mse\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
    for h in history {
        for (b, r) in h.batches.iter().enumerate() {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                h.iteration,
                h.rho,
                h.primal,
                h.dual,
                h.eps_primal,
                h.eps_dual,
                h.seconds,
                h.sequential_seconds,
                b,
                r.status,
                r.accepted,
                r.objective,
                r.iterations,
                r.seconds,
                r.warm,
                r.cold_retry,
                opt(h.consensus_train_mse),
                opt(h.consensus_test_mse)
            );
        }
    }
    write(dir, "history.csv", &s)?;
    let series = [
        ("#1060d0", history.iter().map(|h| h.primal).collect()),
        ("#c00", history.iter().map(|h| h.dual).collect()),
        ("#1060d0", history.iter().map(|h| h.eps_primal).collect()),
        ("#c00", history.iter().map(|h| h.eps_dual).collect()),
    ];
    write(
        dir,
        "residuals.svg",
        &svg::log_series_plot(
            &format!(
                "{} — log10 residuals: blue primal, red dual (upper lines of each: tolerances)",
                problem.name
            ),
            "ADMM iteration",
            &series,
            None,
        ),
    )?;
    let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
    let scores = [
        (
            "#1060d0",
            history.iter().map(|h| nan(h.consensus_train_mse)).collect(),
        ),
        (
            "#c00",
            history.iter().map(|h| nan(h.consensus_test_mse)).collect(),
        ),
    ];
    write(
        dir,
        "consensus.svg",
        &svg::log_series_plot(
            &format!(
                "{} — log10 MSE of the consensus model after each iteration: blue train, red test",
                problem.name
            ),
            "ADMM iteration",
            &scores,
            None,
        ),
    )?;
    write(
        dir,
        "fit.svg",
        &svg::trajectory_plot(
            problem,
            None,
            &run.evaluation.prediction,
            "blue: consensus model simulated from the first batch's fitted start",
        ),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cpu_model_in;

    #[test]
    fn the_cpu_model_is_read_from_cpuinfo() {
        let x86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 9B14\n";
        assert_eq!(cpu_model_in(x86).as_deref(), Some("AMD EPYC 9B14"));
        // An empty name is skipped; an architecture without the line gives none.
        assert_eq!(
            cpu_model_in("model name\t:\nmodel name\t: Xeon\n").as_deref(),
            Some("Xeon")
        );
        assert_eq!(
            cpu_model_in("processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\n"),
            None
        );
    }
}
