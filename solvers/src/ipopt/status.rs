//! How a solve ended: IPOPT's own return codes, and the solver-independent termination and
//! result statuses they map to (as in MathOptInterface).

use serde::{Deserialize, Serialize};
use std::fmt;

/// IPOPT's `ApplicationReturnStatus`, one variant per code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SolveStatus {
    /// Optimal solution found to the requested tolerance.
    SolveSucceeded,
    /// Solved to the "acceptable" tolerances only.
    SolvedToAcceptableLevel,
    /// The problem appears locally infeasible.
    InfeasibleProblemDetected,
    /// The search direction became too small to make progress.
    SearchDirectionBecomesTooSmall,
    /// The iterates seem to diverge.
    DivergingIterates,
    /// The user's intermediate callback asked to stop.
    UserRequestedStop,
    /// A feasible point was found (square problems).
    FeasiblePointFound,
    /// The iteration limit was reached.
    MaximumIterationsExceeded,
    /// The restoration phase failed.
    RestorationFailed,
    /// An error occurred computing a step.
    ErrorInStepComputation,
    /// The CPU time limit was reached.
    MaximumCpuTimeExceeded,
    /// Fewer degrees of freedom than equality constraints.
    NotEnoughDegreesOfFreedom,
    /// The problem definition is invalid.
    InvalidProblemDefinition,
    /// An option is invalid.
    InvalidOption,
    /// A NaN or infinity came out of a function evaluation IPOPT could not recover from.
    InvalidNumberDetected,
    /// IPOPT raised an unrecoverable exception.
    UnrecoverableException,
    /// A non-IPOPT exception was thrown.
    NonIpoptExceptionThrown,
    /// IPOPT ran out of memory.
    InsufficientMemory,
    /// IPOPT's internal error.
    InternalError,
}

/// Why a solve terminated, independently of the solver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TerminationStatus {
    /// Converged to a local optimum.
    LocallySolved,
    /// Converged to relaxed tolerances.
    AlmostLocallySolved,
    /// Converged to a point of local infeasibility.
    LocallyInfeasible,
    /// Iteration limit.
    IterationLimit,
    /// Time limit.
    TimeLimit,
    /// Stopped by the caller (callback, Ctrl-C).
    Interrupted,
    /// Numerical trouble (step computation, restoration, invalid numbers, divergence, slow progress).
    NumericalError,
    /// The model is invalid (definition, degrees of freedom).
    InvalidModel,
    /// An option is invalid.
    InvalidOption,
    /// Anything else (exceptions, memory, internal errors).
    OtherError,
}

/// What the returned point is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    /// Feasible to the solver's tolerance.
    FeasiblePoint,
    /// Feasible to relaxed tolerances.
    NearlyFeasiblePoint,
    /// Not feasible.
    InfeasiblePoint,
    /// Nothing is known about the point.
    UnknownResultStatus,
}

impl SolveStatus {
    /// Every status, in IPOPT's order.
    pub const ALL: [SolveStatus; 19] = [
        Self::SolveSucceeded,
        Self::SolvedToAcceptableLevel,
        Self::InfeasibleProblemDetected,
        Self::SearchDirectionBecomesTooSmall,
        Self::DivergingIterates,
        Self::UserRequestedStop,
        Self::FeasiblePointFound,
        Self::MaximumIterationsExceeded,
        Self::RestorationFailed,
        Self::ErrorInStepComputation,
        Self::MaximumCpuTimeExceeded,
        Self::NotEnoughDegreesOfFreedom,
        Self::InvalidProblemDefinition,
        Self::InvalidOption,
        Self::InvalidNumberDetected,
        Self::UnrecoverableException,
        Self::NonIpoptExceptionThrown,
        Self::InsufficientMemory,
        Self::InternalError,
    ];

    /// IPOPT's numeric return code.
    pub fn code(self) -> i32 {
        match self {
            Self::SolveSucceeded => 0,
            Self::SolvedToAcceptableLevel => 1,
            Self::InfeasibleProblemDetected => 2,
            Self::SearchDirectionBecomesTooSmall => 3,
            Self::DivergingIterates => 4,
            Self::UserRequestedStop => 5,
            Self::FeasiblePointFound => 6,
            Self::MaximumIterationsExceeded => -1,
            Self::RestorationFailed => -2,
            Self::ErrorInStepComputation => -3,
            Self::MaximumCpuTimeExceeded => -4,
            Self::NotEnoughDegreesOfFreedom => -10,
            Self::InvalidProblemDefinition => -11,
            Self::InvalidOption => -12,
            Self::InvalidNumberDetected => -13,
            Self::UnrecoverableException => -100,
            Self::NonIpoptExceptionThrown => -101,
            Self::InsufficientMemory => -102,
            Self::InternalError => -199,
        }
    }

    /// The status of an IPOPT return code, if it is one.
    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// A sentence for users: what happened and, where useful, what to try.
    pub fn message(self) -> &'static str {
        match self {
            Self::SolveSucceeded => "optimal solution found",
            Self::SolvedToAcceptableLevel => "solved to the acceptable tolerance only (acceptable_tol); the point may be improved",
            Self::InfeasibleProblemDetected => "converged to a point of local infeasibility; the constraints may be inconsistent or the start poor",
            Self::SearchDirectionBecomesTooSmall => "search direction became too small; the problem may be badly scaled or the tolerance too tight",
            Self::DivergingIterates => "iterates diverge; the problem may be unbounded (add bounds)",
            Self::UserRequestedStop => "stopped at the caller's request",
            Self::FeasiblePointFound => "feasible point found (square problem)",
            Self::MaximumIterationsExceeded => "iteration limit reached (max_iter)",
            Self::RestorationFailed => "restoration phase failed; the problem may be infeasible or badly scaled",
            Self::ErrorInStepComputation => "error in step computation (singular or ill-conditioned KKT system)",
            Self::MaximumCpuTimeExceeded => "CPU time limit reached (max_cpu_time)",
            Self::NotEnoughDegreesOfFreedom => "more equality constraints than variables",
            Self::InvalidProblemDefinition => "invalid problem definition",
            Self::InvalidOption => "invalid option",
            Self::InvalidNumberDetected => "NaN or infinity in a function or derivative value at the starting point or after recovery failed",
            Self::UnrecoverableException => "IPOPT raised an unrecoverable exception",
            Self::NonIpoptExceptionThrown => "an exception from outside IPOPT was thrown",
            Self::InsufficientMemory => "not enough memory",
            Self::InternalError => "IPOPT internal error",
        }
    }

    /// The solver-independent termination status.
    pub fn termination(self) -> TerminationStatus {
        use TerminationStatus as T;
        match self {
            Self::SolveSucceeded | Self::FeasiblePointFound => T::LocallySolved,
            Self::SolvedToAcceptableLevel => T::AlmostLocallySolved,
            Self::InfeasibleProblemDetected => T::LocallyInfeasible,
            Self::MaximumIterationsExceeded => T::IterationLimit,
            Self::MaximumCpuTimeExceeded => T::TimeLimit,
            Self::UserRequestedStop => T::Interrupted,
            Self::SearchDirectionBecomesTooSmall
            | Self::DivergingIterates
            | Self::RestorationFailed
            | Self::ErrorInStepComputation
            | Self::InvalidNumberDetected => T::NumericalError,
            Self::NotEnoughDegreesOfFreedom | Self::InvalidProblemDefinition => T::InvalidModel,
            Self::InvalidOption => T::InvalidOption,
            Self::UnrecoverableException
            | Self::NonIpoptExceptionThrown
            | Self::InsufficientMemory
            | Self::InternalError => T::OtherError,
        }
    }

    /// What the returned point is, as far as the status alone tells.
    pub fn result(self) -> ResultStatus {
        use ResultStatus as R;
        match self {
            Self::SolveSucceeded | Self::FeasiblePointFound => R::FeasiblePoint,
            Self::SolvedToAcceptableLevel => R::NearlyFeasiblePoint,
            Self::InfeasibleProblemDetected => R::InfeasiblePoint,
            _ => R::UnknownResultStatus,
        }
    }
}

impl fmt::Display for SolveStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = serde_json_name(*self);
        write!(f, "{name}")
    }
}

fn serde_json_name(s: SolveStatus) -> &'static str {
    match s {
        SolveStatus::SolveSucceeded => "solve_succeeded",
        SolveStatus::SolvedToAcceptableLevel => "solved_to_acceptable_level",
        SolveStatus::InfeasibleProblemDetected => "infeasible_problem_detected",
        SolveStatus::SearchDirectionBecomesTooSmall => "search_direction_becomes_too_small",
        SolveStatus::DivergingIterates => "diverging_iterates",
        SolveStatus::UserRequestedStop => "user_requested_stop",
        SolveStatus::FeasiblePointFound => "feasible_point_found",
        SolveStatus::MaximumIterationsExceeded => "maximum_iterations_exceeded",
        SolveStatus::RestorationFailed => "restoration_failed",
        SolveStatus::ErrorInStepComputation => "error_in_step_computation",
        SolveStatus::MaximumCpuTimeExceeded => "maximum_cpu_time_exceeded",
        SolveStatus::NotEnoughDegreesOfFreedom => "not_enough_degrees_of_freedom",
        SolveStatus::InvalidProblemDefinition => "invalid_problem_definition",
        SolveStatus::InvalidOption => "invalid_option",
        SolveStatus::InvalidNumberDetected => "invalid_number_detected",
        SolveStatus::UnrecoverableException => "unrecoverable_exception",
        SolveStatus::NonIpoptExceptionThrown => "non_ipopt_exception_thrown",
        SolveStatus::InsufficientMemory => "insufficient_memory",
        SolveStatus::InternalError => "internal_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_has_a_message() {
        let mut codes = std::collections::HashSet::new();
        for s in SolveStatus::ALL {
            assert_eq!(SolveStatus::from_code(s.code()), Some(s));
            assert!(codes.insert(s.code()), "duplicate code {}", s.code());
            assert!(!s.message().is_empty());
            // Display matches the serde name used in summary files.
            assert_eq!(serde_json_name(s), s.to_string());
        }
        assert_eq!(SolveStatus::from_code(7), None);
        assert_eq!(
            SolveStatus::SolveSucceeded.termination(),
            TerminationStatus::LocallySolved
        );
        assert_eq!(
            SolveStatus::UserRequestedStop.termination(),
            TerminationStatus::Interrupted
        );
        assert_eq!(
            SolveStatus::MaximumIterationsExceeded.result(),
            ResultStatus::UnknownResultStatus
        );
    }
}
