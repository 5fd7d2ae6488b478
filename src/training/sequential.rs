//! Sequential training of a problem file's model (`colloc train`): the training split as a
//! [`Series`], an optional pre-training phase (vanilla, on the leading part of the window, as
//! in the simultaneous-collocation paper's `JAX[JAX]` rows), the chosen
//! trainer of [`crate::sequential`], and the same evaluation as collocation training (the best
//! model simulated from its start — the first training observation, or the learned one — over
//! the train and test windows).

use super::collocation::{simulate_and_score, Evaluation};
use super::coordinates::training_coordinates;
use crate::problem::{Problem, Split};
use crate::sequential::{train_many, EpochRecord, SequentialError, SequentialSettings};
use crate::sequential::{Series, TrainMethod, TrainReport};
use colloc_models::Mlp;
use std::time::Instant;

/// Why sequential training could not run.
#[derive(Debug, thiserror::Error)]
pub enum SequentialRunError {
    /// The network could not be created or does not fit the problem.
    #[error("model: {0}")]
    Network(#[from] colloc_models::ModelError),
    /// The trainer could not start.
    #[error("{0}")]
    Trainer(#[from] SequentialError),
    /// The problem cannot be restated in the model's standardized coordinates.
    #[error("{0}")]
    Coordinates(String),
}

/// The outcome of [`train`].
#[derive(Clone, Debug)]
pub struct SequentialRun {
    /// The main phase's report (best model, learning curve, NFE).
    pub report: TrainReport,
    /// The pre-training phase's report, if there was one.
    pub pretrain: Option<TrainReport>,
    /// The best model simulated and scored (no `fit_mse`).
    pub evaluation: Evaluation,
    /// Seconds spent training (both phases).
    pub train_s: f64,
}

/// The training split of a problem's data.
pub fn training_series(problem: &Problem) -> Series {
    let idx = problem.data.indices(Split::Train);
    Series {
        t: idx.iter().map(|&k| problem.data.t[k]).collect(),
        y: idx.iter().map(|&k| problem.data.y[k].clone()).collect(),
    }
}

/// The model training starts from: `init` when given (checked against the problem), else a
/// Xavier draw from the problem's seed.
pub fn initial_model(problem: &Problem, init: Option<&Mlp>) -> Result<Mlp, SequentialRunError> {
    let spec = &problem.model;
    match init {
        Some(m) => {
            m.check_fits(problem.data.dim(), spec.time_input)?;
            if m.structure != spec.structure {
                return Err(colloc_models::ModelError::Mismatch(format!(
                    "the model is {}, the problem asks for {}",
                    m.structure.name(),
                    spec.structure.name()
                ))
                .into());
            }
            // A constant-weight model (e.g. from `colloc solve`) starts a time-basis problem
            // as its constant coefficient.
            if m.time_basis.is_none() && spec.time_basis.is_some() {
                return Ok(m
                    .clone()
                    .with_structure(m.structure.clone(), spec.time_basis.clone())?);
            }
            Ok(m.clone())
        }
        None => Ok(spec
            .draw(problem.init_seed())?
            .with_structure(spec.structure.clone(), spec.time_basis.clone())?),
    }
}

/// Trains the problem's model with `settings` (usually `problem.sequential`, possibly with the
/// method overridden), its trajectory started from `start` (in the data's units; default: the
/// first training observation), or from there plus a trained correction with
/// `learn_initial_state`. `observer` sees every epoch of both phases (pre-training epochs
/// first) and may stop training by returning false.
///
/// With `[model] normalize = true`, or a starting model that carries a normalization, the
/// network is trained on the problem restated in standardized coordinates
/// ([`Problem::in_coordinates`]; the homotopy coupling is rescaled with the time): the
/// learning curve and `best_mse` are in those coordinates, the returned models carry the
/// normalization and the evaluation is in the data's units.
pub fn train(
    problem: &Problem,
    settings: &SequentialSettings,
    init: Option<&Mlp>,
    start: Option<&[f64]>,
    observer: &mut dyn FnMut(&EpochRecord) -> bool,
) -> Result<SequentialRun, SequentialRunError> {
    let mut runs = train_trajectories(
        std::slice::from_ref(problem),
        settings,
        init,
        start,
        observer,
    )?;
    Ok(runs.remove(0))
}

/// [`train`] on several problems — experiments of one system (the first problem and its
/// further `trajectories`) — with one network ([`crate::sequential::train_many`]): each its own
/// trajectory from its own start (`start` is the first problem's; the others start from their
/// first observations, learned with `learn_initial_state`), the loss the observation-weighted
/// mean over all of them, the coordinates the first problem's. One run per problem, sharing the
/// learning curve and model, each with its own evaluation.
pub fn train_trajectories(
    problems: &[Problem],
    settings: &SequentialSettings,
    init: Option<&Mlp>,
    start: Option<&[f64]>,
    observer: &mut dyn FnMut(&EpochRecord) -> bool,
) -> Result<Vec<SequentialRun>, SequentialRunError> {
    let started = Instant::now();
    let main = problems
        .first()
        .ok_or_else(|| SequentialRunError::Coordinates("no problem to train on".into()))?;
    let coordinates = training_coordinates(main, main.model.normalize, init)
        .map_err(SequentialRunError::Coordinates)?;
    let Some(n) = coordinates else {
        let (report, pretrain) = train_network(problems, settings, init, start, observer)?;
        return Ok(finish(problems, report, pretrain, started));
    };
    let inner = problems
        .iter()
        .map(|p| p.in_coordinates(&n))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SequentialRunError::Coordinates(e.to_string()))?;
    let mut settings = settings.clone();
    settings.homotopy.coupling *= n.time_scale;
    let network = init.map(Mlp::network_only);
    let inner_start = start.map(|s| n.state_to_normalized(s));
    let (mut report, mut pretrain) = train_network(
        &inner,
        &settings,
        network.as_ref(),
        inner_start.as_deref(),
        observer,
    )?;
    for r in std::iter::once(&mut report).chain(pretrain.as_mut()) {
        r.best = r.best.clone().with_normalization(Some(n.clone()))?;
        for s in &mut r.best_starts {
            *s = n.state_from_normalized(s);
        }
    }
    Ok(finish(problems, report, pretrain, started))
}

/// The runs with the best model scored on each problem's data from its own start.
fn finish(
    problems: &[Problem],
    report: TrainReport,
    pretrain: Option<TrainReport>,
    started: Instant,
) -> Vec<SequentialRun> {
    let train_s = started.elapsed().as_secs_f64();
    problems
        .iter()
        .zip(&report.best_starts)
        .map(|(problem, start)| {
            let data = training_series(problem);
            let evaluation = simulate_and_score(
                problem,
                &report.best,
                data.t[0],
                start,
                Evaluation::default(),
            );
            SequentialRun {
                report: report.clone(),
                pretrain: pretrain.clone(),
                evaluation,
                train_s,
            }
        })
        .collect()
}

/// [`train_trajectories`] in the network's own coordinates: the main phase's and
/// pre-training's reports.
fn train_network(
    problems: &[Problem],
    settings: &SequentialSettings,
    init: Option<&Mlp>,
    start: Option<&[f64]>,
    observer: &mut dyn FnMut(&EpochRecord) -> bool,
) -> Result<(TrainReport, Option<TrainReport>), SequentialRunError> {
    let data: Vec<Series> = problems.iter().map(training_series).collect();
    let mut model = initial_model(&problems[0], init)?;
    let mut starts: Vec<Option<&[f64]>> = vec![None; data.len()];
    starts[0] = start;
    let mut pretrain = None;
    let mut stopped = false;
    if settings.pretrain_fraction > 0.0 && settings.pretrain_epochs > 0 {
        // The leading part of every series.
        let heads: Vec<Series> = data
            .iter()
            .map(|series| {
                let t0 = series.t[0];
                let t_end = t0 + settings.pretrain_fraction * (series.t[series.t.len() - 1] - t0);
                let n = series
                    .t
                    .iter()
                    .take_while(|&&t| t <= t_end)
                    .count()
                    .max(3)
                    .min(series.t.len());
                Series {
                    t: series.t[..n].to_vec(),
                    y: series.y[..n].to_vec(),
                }
            })
            .collect();
        let phase = SequentialSettings {
            method: TrainMethod::Vanilla,
            epochs: settings.pretrain_epochs,
            pretrain_fraction: 0.0,
            ..settings.clone()
        };
        let report = train_many(&model, &starts, &heads, &phase, observer)?;
        stopped = report.interrupted;
        model = report.best.clone();
        pretrain = Some(report);
    }
    let report = if stopped {
        // The user stopped during pre-training: report that phase's model.
        let mut r = pretrain.clone().expect("set above");
        r.best_mse = f64::NAN;
        r
    } else {
        // Starts learned in pre-training are where the main phase's begin.
        let learned: Vec<Option<&[f64]>> = match &pretrain {
            Some(p) => p.best_starts.iter().map(|s| Some(s.as_slice())).collect(),
            None => starts,
        };
        train_many(&model, &learned, &data, settings, observer)?
    };
    Ok((report, pretrain))
}
