//! The outcome of a solve, and warm starts built from it.

use super::info::SolveStats;
use super::status::{ResultStatus, SolveStatus, TerminationStatus};
use serde::{Deserialize, Serialize};

/// The point IPOPT returned (its last iterate, whatever the status), with multipliers and
/// statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IpoptSolution {
    /// How the solve ended.
    pub status: SolveStatus,
    /// Primal point.
    pub x: Vec<f64>,
    /// Objective at `x`.
    pub objective: f64,
    /// Constraint values at `x`.
    pub constraints: Vec<f64>,
    /// Constraint multipliers.
    pub mult_g: Vec<f64>,
    /// Multipliers of the lower variable bounds.
    pub mult_x_lower: Vec<f64>,
    /// Multipliers of the upper variable bounds.
    pub mult_x_upper: Vec<f64>,
    /// Iterations, times and call counts.
    pub stats: SolveStats,
}

impl IpoptSolution {
    /// The solver-independent termination status.
    pub fn termination(&self) -> TerminationStatus {
        self.status.termination()
    }

    /// What the point is.
    pub fn result(&self) -> ResultStatus {
        self.status.result()
    }

    /// True when solved to the requested or the acceptable tolerance.
    pub fn is_success(&self) -> bool {
        matches!(
            self.status,
            SolveStatus::SolveSucceeded | SolveStatus::SolvedToAcceptableLevel
        )
    }
}

/// A starting point: primal values and, optionally, multipliers. When any multiplier is
/// given, IPOPT runs with `warm_start_init_point = yes` and the warm-start settings; missing
/// multiplier vectors start at zero.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WarmStart {
    /// Primal start.
    pub x: Vec<f64>,
    /// Constraint multipliers.
    pub mult_g: Option<Vec<f64>>,
    /// Lower-bound multipliers.
    pub mult_x_lower: Option<Vec<f64>>,
    /// Upper-bound multipliers.
    pub mult_x_upper: Option<Vec<f64>>,
}

impl WarmStart {
    /// Primal values only (multipliers are initialized by IPOPT as in a cold start).
    pub fn primal(x: Vec<f64>) -> Self {
        Self {
            x,
            ..Default::default()
        }
    }

    /// Primal values and all multipliers of a previous solution.
    pub fn from_solution(solution: &IpoptSolution) -> Self {
        Self {
            x: solution.x.clone(),
            mult_g: Some(solution.mult_g.clone()),
            mult_x_lower: Some(solution.mult_x_lower.clone()),
            mult_x_upper: Some(solution.mult_x_upper.clone()),
        }
    }

    /// True when multipliers are given.
    pub fn has_multipliers(&self) -> bool {
        self.mult_g.is_some() || self.mult_x_lower.is_some() || self.mult_x_upper.is_some()
    }
}
