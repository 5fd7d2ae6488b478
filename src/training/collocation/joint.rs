//! Several trajectories (experiments) of one system in one collocation NLP: each its own
//! states, collocation equations and data fit, one network θ for all (see [`build_joint`]).
//! The joint counterpart of what `colloc admm` reaches by consensus.

use super::build::{build_joint, JointNlp};
use super::{evaluate, ipopt_settings, CollocationRun, Evaluation, TrainError};
use crate::problem::{Formulation, Problem};
use crate::training::coordinates::{states_from_normalized, training_coordinates};
use colloc_models::Mlp;
use colloc_solvers::ipopt::{IpoptSolver, IterationInfo};
use colloc_solvers::NlpEvaluator;

/// Trains one network on all `problems` (the first one's model, loss, bounds, pre-fit and
/// IPOPT settings; each problem its own data, window and grid) in one IPOPT solve, and
/// evaluates it on each: one [`CollocationRun`] per problem, in their order, sharing the
/// model, IPOPT's outcome, history, sizes and times, each with its own states, grid and
/// evaluation (its simulation starts from its own fitted first state). With `[model] normalize
/// = true` (or a normalized `init`) every trajectory is restated in the standardized
/// coordinates of the first problem's training data. Defect continuation and grid refinement
/// are refused (they are single-trajectory features of [`train`](super::train)).
pub fn train_joint(
    problems: &[Problem],
    formulation: Formulation,
    init: Option<&Mlp>,
    observer: &mut dyn FnMut(&IterationInfo) -> bool,
) -> Result<Vec<CollocationRun>, TrainError> {
    let main = problems
        .first()
        .ok_or_else(|| TrainError::Unsupported("no trajectory to train on".into()))?;
    for p in problems {
        if !p.defect_penalties.is_empty() {
            return Err(TrainError::Unsupported(format!(
                "{}: `solver.defect_penalties` (defect continuation) is not available for several trajectories yet",
                p.path.display()
            )));
        }
    }
    if main.refinement.is_some() {
        return Err(TrainError::Unsupported(format!(
            "{}: `[collocation.refinement]` is not available for several trajectories yet",
            main.path.display()
        )));
    }
    let coordinates = training_coordinates(main, init).map_err(TrainError::Unsupported)?;
    let inner: Vec<Problem> = match &coordinates {
        None => problems.to_vec(),
        Some(n) => problems
            .iter()
            .map(|p| p.in_coordinates(n))
            .collect::<Result<_, _>>()?,
    };
    let network = init.map(Mlp::network_only);
    let mut built: JointNlp = build_joint(&inner, formulation, network.as_ref(), None, None)?;
    let solver = IpoptSolver::new(ipopt_settings(main, formulation))?;
    let mut history = Vec::new();
    let mut watch = |it: &IterationInfo| {
        history.push(*it);
        observer(it)
    };
    let solution = solver.solve_with(&mut built.nlp, None, Some(&mut watch))?;
    let mut model = built.init.clone();
    model.params = built.theta.slice(&solution.x).to_vec();
    if let Some(n) = &coordinates {
        model = model.with_normalization(Some(n.clone()))?;
    }
    let dims = built.nlp.dims();
    let d = main.data.dim();
    problems
        .iter()
        .zip(&built.trajectories)
        .map(|(problem, blocks)| {
            let states: Vec<Vec<f64>> = (0..problem.nodes.len())
                .map(|k| {
                    (0..d)
                        .map(|i| solution.x[blocks.states.at(&[k, i])])
                        .collect()
                })
                .collect();
            let states = match &coordinates {
                Some(n) => states_from_normalized(n, &states),
                None => states,
            };
            let evaluation: Evaluation = evaluate(problem, &model, &states)?;
            Ok(CollocationRun {
                model: model.clone(),
                states,
                solution: solution.clone(),
                history: history.clone(),
                stages: Vec::new(),
                dims,
                build_s: built.build_s,
                prefit_s: built.prefit_s,
                evaluation,
                nodes: problem.nodes.clone(),
                refinements: Vec::new(),
            })
        })
        .collect()
}

/// Means over several trajectories' observations (each trajectory's MSE weighted by its
/// number of observations in the split): `None` where a trajectory has no figure.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct PooledScores {
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
}

/// [`PooledScores`] of one model's evaluations on `problems` (e.g. the runs of
/// [`train_joint`], one evaluation per problem).
pub fn pooled_scores(problems: &[Problem], evaluations: &[&Evaluation]) -> PooledScores {
    use crate::problem::Split;
    let pool = |split: Split, figure: &dyn Fn(&Evaluation) -> Option<f64>| {
        let (mut sum, mut count) = (0.0, 0usize);
        for (p, e) in problems.iter().zip(evaluations) {
            let n = p.data.indices(split).len();
            if n == 0 {
                continue;
            }
            sum += figure(e)? * n as f64;
            count += n;
        }
        (count > 0).then(|| sum / count as f64)
    };
    PooledScores {
        fit_mse: pool(Split::Train, &|e| e.fit_mse),
        train_mse: pool(Split::Train, &|e| e.train_mse),
        test_mse: pool(Split::Test, &|e| e.test_mse),
        train_mse_clean: pool(Split::Train, &|e| e.train_mse_clean),
        test_mse_clean: pool(Split::Test, &|e| e.test_mse_clean),
    }
}
