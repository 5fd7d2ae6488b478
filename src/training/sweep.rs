//! Hyper-parameter selection for the sequential trainers (`colloc train --sweep`), the homotopy
//! paper's protocol (Appendix F): every combination of the `[sequential.sweep]` lists of the
//! chosen method is trained on the problem's data from the same start, and the combination
//! with the lowest training MSE (the best model simulated against the training observations)
//! is selected. Only training data enter the choice; the test window is scored, not used.

use super::collocation::{pooled_scores, Evaluation};
use super::sequential::{train_trajectories, SequentialRun, SequentialRunError};
use crate::problem::Problem;
use crate::sequential::{EpochRecord, SequentialSettings, SweepCandidate, TrainMethod};
use colloc_models::Mlp;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

/// Why a sweep could not run.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// `[sequential.sweep]` has no list for the method.
    #[error("[sequential.sweep] has no list for the {0} method (e.g. {1})")]
    NoGrid(String, &'static str),
    /// One combination could not be trained.
    #[error("sweep trial {trial} ({values}): {source}")]
    Trial {
        /// Its index (from 1).
        trial: usize,
        /// Its values, `name = value, …`.
        values: String,
        /// Why.
        source: SequentialRunError,
    },
}

/// One trained combination.
#[derive(Clone, Debug)]
pub struct SweepTrial {
    /// `(field, value)` of each swept hyper-parameter.
    pub values: Vec<(&'static str, f64)>,
    /// Training MSE of its best model (NaN if the simulation failed; over several
    /// trajectories the observation-weighted mean).
    pub train_mse: f64,
    /// Test MSE of its best model (NaN without a test window or if the simulation failed;
    /// pooled as `train_mse`).
    pub test_mse: f64,
    /// Epoch of its best model.
    pub best_epoch: usize,
    /// Epochs run.
    pub epochs: usize,
    /// Why it stopped early, if it did.
    pub stopped: Option<String>,
    /// Training seconds.
    pub train_s: f64,
}

impl SweepTrial {
    /// The values as `name = value, …`.
    pub fn describe(&self) -> String {
        describe(&self.values)
    }
}

/// The outcome of [`sweep`].
#[derive(Clone, Debug)]
pub struct Sweep {
    /// Every trained combination, in grid order (without those skipped after a stop).
    pub trials: Vec<SweepTrial>,
    /// Index of the selected trial.
    pub selected: usize,
    /// The settings of the selected trial.
    pub settings: SequentialSettings,
    /// The selected trial's runs (best model, learning curve, scores), one per problem.
    pub runs: Vec<SequentialRun>,
    /// False when the observer stopped the sweep; then only `trials` were compared.
    pub complete: bool,
}

/// Trains every combination of `settings.sweep`'s lists for `settings.method` on `problems` (one
/// problem, or a problem and its further trajectories, trained together as by
/// [`train_trajectories`]) from the same
/// start (`init`, else the problem's Xavier draw), as many at once as rayon has threads (each
/// trial is single-threaded and deterministic, so the outcome does not depend on the order),
/// and selects the lowest training MSE (ties: the first in grid order; NaN never wins
/// against a number). `observer` sees every epoch with the trial's index and may stop the
/// sweep by returning false: trials not yet started are skipped, and those finished (or
/// stopped) are compared. `on_trial` sees each trial as it finishes, with the number of
/// combinations.
pub fn sweep(
    problems: &[Problem],
    settings: &SequentialSettings,
    init: Option<&Mlp>,
    start: Option<&[f64]>,
    observer: &(dyn Fn(usize, &EpochRecord) -> bool + Sync),
    on_trial: &(dyn Fn(usize, usize, &SweepTrial) + Sync),
) -> Result<Sweep, SweepError> {
    let candidates: Vec<SweepCandidate> = settings.sweep.candidates(settings);
    if candidates.is_empty() {
        let example = match settings.method {
            TrainMethod::Vanilla => "learning_rate = [0.01, 0.02, 0.05]",
            TrainMethod::Homotopy => "homotopy_coupling = [2.0, 4.0, 6.0]",
            TrainMethod::Shooting => "shooting_continuity = [0.002, 0.005, 0.01]",
        };
        return Err(SweepError::NoGrid(settings.method.to_string(), example));
    }
    let total = candidates.len();
    let halt = AtomicBool::new(false);
    let outcomes: Vec<Option<(SweepTrial, Vec<SequentialRun>)>> = candidates
        .par_iter()
        .enumerate()
        .map(|(k, candidate)| {
            // The first combination always runs (it may stop at once), so there is a result.
            if k > 0 && halt.load(Ordering::SeqCst) {
                return Ok(None);
            }
            let mut watch = |r: &EpochRecord| {
                let go = observer(k, r);
                if !go {
                    halt.store(true, Ordering::SeqCst);
                }
                go
            };
            let runs = train_trajectories(problems, &candidate.settings, init, start, &mut watch)
                .map_err(|source| SweepError::Trial {
                trial: k + 1,
                values: describe(&candidate.values),
                source,
            })?;
            let (train_mse, test_mse) = match runs.as_slice() {
                [one] => (one.evaluation.train_mse, one.evaluation.test_mse),
                all => {
                    let evaluations: Vec<&Evaluation> = all.iter().map(|r| &r.evaluation).collect();
                    let pooled = pooled_scores(problems, &evaluations);
                    (pooled.train_mse, pooled.test_mse)
                }
            };
            let run = &runs[0];
            let trial = SweepTrial {
                values: candidate.values.clone(),
                train_mse: train_mse.unwrap_or(f64::NAN),
                test_mse: test_mse.unwrap_or(f64::NAN),
                best_epoch: run.report.best_epoch,
                epochs: run.report.curve.len(),
                stopped: run.report.stopped.clone(),
                train_s: run.train_s,
            };
            on_trial(k, total, &trial);
            Ok(Some((trial, runs)))
        })
        .collect::<Result<_, SweepError>>()?;
    let complete = !halt.load(Ordering::SeqCst);
    let mut trials: Vec<SweepTrial> = Vec::with_capacity(total);
    let mut best: Option<(usize, usize, Vec<SequentialRun>)> = None;
    for (k, outcome) in outcomes.into_iter().enumerate() {
        let Some((trial, run)) = outcome else {
            continue;
        };
        let better = best
            .as_ref()
            .is_none_or(|(j, _, _)| rank(trial.train_mse) < rank(trials[*j].train_mse));
        if better {
            best = Some((trials.len(), k, run));
        }
        trials.push(trial);
    }
    let (selected, k, runs) = best.expect("the first combination always runs");
    Ok(Sweep {
        trials,
        selected,
        settings: candidates[k].settings.clone(),
        runs,
        complete,
    })
}

/// A training MSE as a sort key: NaN (failed simulation) after every number.
fn rank(mse: f64) -> f64 {
    if mse.is_nan() {
        f64::INFINITY
    } else {
        mse
    }
}

/// `name = value, …`.
fn describe(values: &[(&'static str, f64)]) -> String {
    values
        .iter()
        .map(|(n, v)| format!("{n} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
