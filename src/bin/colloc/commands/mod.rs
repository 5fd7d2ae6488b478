//! One module per subcommand.

pub mod admm;
pub mod predict;
pub mod solve;
pub mod train;

use colloc::training::collocation::{
    Evaluation, DEFECT_WARNING_RELATIVE, DEPARTURE_WARNING_RATIO, EXCURSION_WIDTHS,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Creates the output folder before any work, so that a folder that cannot be written fails
/// the command at once instead of after the solve (which would lose its results). The
/// returned guard removes again the folders this call created if the command ends with
/// nothing written into them (an error before any result), so failed runs leave no empty
/// folders behind.
pub fn create_output_folder(out: &std::path::Path) -> Result<OutputFolder, crate::Failure> {
    // The folders that do not exist yet, innermost first.
    let created: Vec<std::path::PathBuf> = out
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .take_while(|a| !a.exists())
        .map(|a| a.to_path_buf())
        .collect();
    std::fs::create_dir_all(out).map_err(|e| {
        crate::Failure::input(format!(
            "--out {}: cannot create the output folder: {e}",
            out.display()
        ))
    })?;
    Ok(OutputFolder { created })
}

/// The folders [`create_output_folder`] created; removed on drop while they are empty.
#[must_use = "the output folder is removed again when its guard is dropped"]
pub struct OutputFolder {
    created: Vec<std::path::PathBuf>,
}

impl Drop for OutputFolder {
    fn drop(&mut self) {
        // `remove_dir` refuses a folder that is not empty: results are never touched.
        for folder in &self.created {
            if std::fs::remove_dir(folder).is_err() {
                break;
            }
        }
    }
}

/// A flag that Ctrl-C sets. The handler can be installed once per process (each command runs
/// in its own process), so a second call keeps the first handler.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    interrupted
}

/// Command-line replacements of problem-file settings, shared by `solve`, `train` and `admm`.
#[derive(clap::Args, Debug)]
pub struct ProblemOverrides {
    /// Seed of the noise and the network start, overriding the problem file's `seed`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Train in standardized coordinates (true) or the data's own (false), overriding
    /// `[solver] normalize` (`solve`, `admm`) and `[model] normalize` (`train`).
    #[arg(long, value_name = "BOOL")]
    pub normalize: Option<bool>,
}

/// The problem file with the command line's `--seed` and `--normalize` applied.
pub fn load_problem(
    file: &std::path::Path,
    overrides: &ProblemOverrides,
) -> Result<colloc::problem::Problem, crate::Failure> {
    let mut problem =
        colloc::problem::load_with_seed(file, overrides.seed).map_err(crate::Failure::input)?;
    if let Some(n) = overrides.normalize {
        problem
            .set_normalize(n)
            .map_err(|e| crate::Failure::input(format!("{}: {e}", file.display())))?;
    }
    if let Some(unused) = &problem.unused_rows {
        eprintln!("note: {}", describe_unused_rows(unused, problem.t0));
    }
    Ok(problem)
}

/// The note on measurement rows no trainer sees, with the `[test]` section that would score
/// the rows after the training window.
fn describe_unused_rows(unused: &colloc::problem::UnusedRows, t0: f64) -> String {
    let mut parts = Vec::new();
    if unused.before > 0 {
        parts.push(format!("{} before train.t0 = {t0}", unused.before));
    }
    if unused.after > 0 {
        let window = if unused.has_test {
            "test.t1"
        } else {
            "train.t1"
        };
        parts.push(format!(
            "{} after {window} = {}",
            unused.after, unused.window_end
        ));
    }
    let mut note = format!(
        "{}: {} rows ({}) lie outside the training and test windows and are not used",
        unused.file.display(),
        unused.before + unused.after,
        parts.join(", ")
    );
    if unused.after > 0 && !unused.has_test {
        note.push_str(&format!(
            "; a [test] section with t1 = {} scores the model on the later ones",
            unused.last_time
        ));
    }
    note
}

/// When a run stops early: Ctrl-C, or a time limit (`--time-limit`) measured from `started`.
#[derive(Clone)]
pub struct Stop {
    interrupted: Arc<AtomicBool>,
    timed_out: Arc<AtomicBool>,
    started: std::time::Instant,
    limit: Option<f64>,
}

impl Stop {
    /// Installs the Ctrl-C handler and the memory guard; `limit` must be a positive number of
    /// seconds.
    pub fn new(started: std::time::Instant, limit: Option<f64>) -> Result<Self, crate::Failure> {
        if let Some(t) = limit {
            if !(t.is_finite() && t > 0.0) {
                return Err(crate::Failure::input(format!(
                    "--time-limit: must be a positive number of seconds, got {t}"
                )));
            }
        }
        let interrupted = interrupt_flag();
        // Memory running out stops the run as Ctrl-C does (or ends it with a message).
        crate::memory_guard::watch(interrupted.clone());
        Ok(Self {
            interrupted,
            timed_out: Arc::new(AtomicBool::new(false)),
            started,
            limit,
        })
    }

    /// False once Ctrl-C was pressed or the time limit has passed (then remembered).
    pub fn keep_going(&self) -> bool {
        if self
            .limit
            .is_some_and(|l| self.started.elapsed().as_secs_f64() >= l)
        {
            self.timed_out.store(true, Ordering::SeqCst);
            return false;
        }
        !self.interrupted.load(Ordering::SeqCst)
    }

    /// True when Ctrl-C stopped the run.
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// The time limit, when it stopped the run.
    pub fn timed_out(&self) -> Option<f64> {
        self.limit.filter(|_| self.timed_out.load(Ordering::SeqCst))
    }
}

/// Where the results went, and why the simulation of the learned ODE failed, if it did.
pub fn print_results_folder(ev: &Evaluation, out: &std::path::Path) {
    println!("{:<18} {}", "results", out.display());
    warn_about_simulation(ev, "");
}

/// Warnings about the simulation of the learned ODE: it failed, or it left the region of the
/// data. `whose` (e.g. "trajectory `b`: ") names the trajectory of a run on several.
fn warn_about_simulation(ev: &Evaluation, whose: &str) {
    if let Some(e) = &ev.simulation_error {
        eprintln!("warning: {whose}{e}");
    }
    if let Some(x) = &ev.simulation_excursion {
        eprintln!(
            "warning: {whose}the learned ODE leaves the region of the data: simulated y{} = \
             {:.4e} at t = {:.4} where the observations of y{} lie in [{:.4e}, {:.4e}] (more \
             than {} times that width beyond it); its MSEs from there on measure a diverging \
             extrapolation",
            x.state, x.value, x.time, x.state, x.observed.0, x.observed.1, EXCURSION_WIDTHS
        );
    }
}

/// After a converged collocation solve (the equations hold at the nodes): a warning when the
/// fitted states miss the learned ODE between the nodes by [`DEFECT_WARNING_RELATIVE`] or more.
pub fn warn_if_grid_too_coarse(ev: &Evaluation) {
    if let Some(r) = ev.collocation_defect_relative {
        if r >= DEFECT_WARNING_RELATIVE {
            eprintln!(
                "warning: between the collocation points the fitted states miss the learned ODE \
                 by {:.1} % (RMS of p' − F relative to p'): the grid is too coarse for the \
                 learned dynamics, and the simulation may leave the fitted trajectory; use more \
                 collocation points or elements, or let `[collocation.refinement] max_points` \
                 refine the grid automatically",
                100.0 * r
            );
        }
    }
}

/// After a converged collocation solve: a warning when the learned ODE simulated from the fitted first
/// state misses the training observations [`DEPARTURE_WARNING_RATIO`] or more times as much as
/// the fitted states do (the fit solves the collocation equations, but its trajectory is not
/// one the simulation follows). `normalized`: the solve was in standardized coordinates.
pub fn warn_if_simulation_departs(ev: &Evaluation, normalized: bool) {
    let (Some(ratio), Some(fit)) = (ev.departure_from_fit(), ev.fit_mse) else {
        return;
    };
    let train = ev.train_mse.unwrap_or(f64::NAN);
    eprintln!(
        "warning: the learned ODE simulated from the fitted first state leaves the fitted \
         trajectory inside the training window: train_mse {train:.4e} is {ratio:.0} times \
         fit_mse {fit:.4e} (warned from {DEPARTURE_WARNING_RATIO}); the fit solves the \
         collocation equations, but the simulation does not follow it{}",
        if normalized {
            "; more collocation points, or another seed, may help"
        } else {
            "; standardized coordinates (`--normalize true` or `[solver] normalize = true`) or \
             more collocation points may help"
        }
    );
}

/// The figure lines every command ends with: simulation MSEs (and their noise-free versions).
pub fn print_scores(ev: &Evaluation) {
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4e}"));
    if ev.fit_mse.is_some() {
        println!("{:<18} {}", "fit_mse", f(ev.fit_mse));
    }
    if let (Some(rms), Some(max), Some(relative)) = (
        ev.collocation_defect_rms,
        ev.collocation_defect_max,
        ev.collocation_defect_relative,
    ) {
        println!(
            "{:<18} rms {rms:.3e}   max {max:.3e}   relative {relative:.2e}",
            "collocation defect"
        );
    }
    println!(
        "{:<18} {}   test_mse {}",
        "train_mse",
        f(ev.train_mse),
        f(ev.test_mse)
    );
    println!(
        "{:<18} {}   test_mse_clean {}",
        "train_mse_clean",
        f(ev.train_mse_clean),
        f(ev.test_mse_clean)
    );
}

/// The folder of further trajectory `j` (1-based) inside a run's folder.
pub fn trajectory_folder(j: usize) -> String {
    format!("trajectory{j}")
}

/// `trajectories` of a run on several problems (the first one's folder is `.`).
pub fn trajectory_summaries<'a>(
    problems: &'a [colloc::problem::Problem],
    evaluations: &[&'a Evaluation],
) -> Vec<colloc::report::TrajectorySummary<'a>> {
    problems
        .iter()
        .zip(evaluations)
        .enumerate()
        .map(|(j, (p, e))| colloc::report::TrajectorySummary {
            name: &p.name,
            file: p.path.display().to_string(),
            folder: if j == 0 {
                ".".into()
            } else {
                trajectory_folder(j)
            },
            observations: p.data.indices(colloc::problem::Split::Train).len(),
            scores: e,
        })
        .collect()
}

/// The table of a run on several trajectories: each one's figures and folder, then the pooled
/// ones.
pub fn print_trajectories(
    trajectories: &[colloc::report::TrajectorySummary<'_>],
    pooled: &colloc::training::collocation::PooledScores,
) {
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4e}"));
    let width = trajectories
        .iter()
        .map(|t| t.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(16);
    println!(
        "{:<18} {:>10} {:>11} {:>11} {:>15}  folder",
        "trajectories", "fit_mse", "train_mse", "test_mse", "test_mse_clean"
    );
    for t in trajectories {
        println!(
            "  {:<width$} {:>10} {:>11} {:>11} {:>15}  {}",
            t.name,
            f(t.scores.fit_mse),
            f(t.scores.train_mse),
            f(t.scores.test_mse),
            f(t.scores.test_mse_clean),
            t.folder
        );
    }
    println!(
        "  {:<width$} {:>10} {:>11} {:>11} {:>15}",
        "pooled",
        f(pooled.fit_mse),
        f(pooled.train_mse),
        f(pooled.test_mse),
        f(pooled.test_mse_clean)
    );
    // The main trajectory's warnings follow the results line.
    for t in trajectories.iter().skip(1) {
        warn_about_simulation(t.scores, &format!("trajectory `{}`: ", t.name));
    }
}
