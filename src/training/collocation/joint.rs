//! Figures of one model over several trajectories (experiments) of one system — the runs of
//! [`train_joint`](super::train_joint), or of `colloc train` on several — pooled over their
//! observations.

use super::Evaluation;
use crate::problem::Problem;

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
/// [`train_joint`](super::train_joint), one evaluation per problem).
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
