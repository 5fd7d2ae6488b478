//! What a solve reports besides its point: per-iteration information for callbacks, and
//! statistics.

use serde::{Deserialize, Serialize};

/// One IPOPT iteration, as passed to the intermediate callback.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct IterationInfo {
    /// Iteration number (0 is the starting point).
    pub iteration: usize,
    /// True during the restoration phase.
    pub restoration: bool,
    /// Objective value (unscaled).
    pub objective: f64,
    /// Primal infeasibility (constraint violation).
    pub inf_pr: f64,
    /// Dual infeasibility.
    pub inf_du: f64,
    /// Barrier parameter μ.
    pub mu: f64,
    /// Norm of the primal step.
    pub d_norm: f64,
    /// Hessian regularization added for inertia correction.
    pub regularization: f64,
    /// Dual step size.
    pub alpha_du: f64,
    /// Primal step size.
    pub alpha_pr: f64,
    /// Number of line-search trials.
    pub ls_trials: usize,
}

/// Calls and time of one callback kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CallStats {
    /// Number of calls.
    pub calls: usize,
    /// Seconds spent inside them.
    pub seconds: f64,
}

/// KKT factorizations of one solve by the linear solver that carried them out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KktSolverCounts {
    /// Dense LAPACK LDLᵀ (global collocation).
    pub dense: usize,
    /// Block-arrow elimination (finite elements, several trajectories).
    pub blocks: usize,
    /// Independent blocks onto a dense Schur complement (full formulation).
    pub schur: usize,
    /// A square constraint block eliminated through its LU (global collocation).
    #[serde(default)]
    pub square: usize,
    /// IPOPT's MUMPS.
    pub mumps: usize,
}

impl KktSolverCounts {
    /// Factorizations by all solvers together.
    pub fn total(&self) -> usize {
        self.dense + self.blocks + self.schur + self.square + self.mumps
    }
}

impl std::ops::Add for KktSolverCounts {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            dense: self.dense + o.dense,
            blocks: self.blocks + o.blocks,
            schur: self.schur + o.schur,
            square: self.square + o.square,
            mumps: self.mumps + o.mumps,
        }
    }
}

impl std::fmt::Display for KktSolverCounts {
    /// The solvers used: one name alone, or each with its count (`dense`, `98 Schur, 8 MUMPS`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used: Vec<(&str, usize)> = [
            ("dense", self.dense),
            ("blocks", self.blocks),
            ("Schur", self.schur),
            ("square block", self.square),
            ("MUMPS", self.mumps),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
        match used.as_slice() {
            [] => write!(f, "none"),
            [(name, _)] => write!(f, "{name}"),
            many => {
                let parts: Vec<String> =
                    many.iter().map(|(name, n)| format!("{n} {name}")).collect();
                write!(f, "{}", parts.join(", "))
            }
        }
    }
}

/// Statistics of one solve.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SolveStats {
    /// IPOPT iterations (the last iteration number reported).
    pub iterations: usize,
    /// Wall time of the whole solve, seconds.
    pub wall_s: f64,
    /// Wall time inside function and derivative evaluations, seconds.
    pub eval_s: f64,
    /// Objective evaluations.
    pub objective: CallStats,
    /// Gradient evaluations.
    pub gradient: CallStats,
    /// Constraint evaluations.
    pub constraints: CallStats,
    /// Jacobian evaluations (values only).
    pub jacobian: CallStats,
    /// Hessian evaluations (values only).
    pub hessian: CallStats,
    /// KKT factorizations carried out (every linear solver, restoration phase included).
    pub kkt_factorizations: usize,
    /// The same by linear solver.
    pub kkt_solvers: KktSolverCounts,
    /// Unperturbed trial factorizations skipped after repeated wrong inertia
    /// (`IpoptSettings::skip_unperturbed_trial`).
    pub skipped_inertia_trials: usize,
    /// Evaluations that failed (NaN, domain error); IPOPT cut its step back.
    pub eval_errors: usize,
    /// The first evaluation error, if any.
    pub first_eval_error: Option<String>,
    /// What went wrong in the linear solver, if something did that IPOPT cannot recover from
    /// (MUMPS out of memory); IPOPT then reports a failed restoration or step computation.
    pub linear_solver_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::KktSolverCounts;

    #[test]
    fn solver_counts_name_one_solver_or_count_each() {
        let one = KktSolverCounts {
            dense: 77,
            ..Default::default()
        };
        assert_eq!(one.to_string(), "dense");
        let two = KktSolverCounts {
            schur: 98,
            mumps: 8,
            ..Default::default()
        };
        assert_eq!(two.to_string(), "98 Schur, 8 MUMPS");
        assert_eq!(KktSolverCounts::default().to_string(), "none");
    }
}
