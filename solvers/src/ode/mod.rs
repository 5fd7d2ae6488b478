//! Explicit Runge–Kutta integrators for `y' = f(t, y)`: fixed-step RK4 and adaptive Dopri5
//! (Dormand–Prince 5(4), PI step-size control, 4th-order dense output), both counting
//! right-hand-side evaluations (NFE). Butcher tableaus are data ([`tableau`]). [`adjoint`]:
//! exact gradients of a loss on the discrete solution by a reverse sweep over the steps.

pub mod adjoint;
mod dopri5;
mod rk4;
pub mod tableau;

pub use dopri5::{Dopri5, Dopri5Settings};
pub use rk4::Rk4;

use serde::{Deserialize, Serialize};

/// A right-hand side `f(t, y)`.
pub trait OdeSystem {
    /// State dimension.
    fn dim(&self) -> usize;
    /// Writes `f(t, y)` into `dy`.
    fn rhs(&self, t: f64, y: &[f64], dy: &mut [f64]);
}

impl<F: Fn(f64, &[f64], &mut [f64])> OdeSystem for (usize, F) {
    fn dim(&self) -> usize {
        self.0
    }
    fn rhs(&self, t: f64, y: &[f64], dy: &mut [f64]) {
        (self.1)(t, y, dy)
    }
}

/// States at the requested output times.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OdeSolution {
    /// Output times (as requested).
    pub t: Vec<f64>,
    /// One state vector per output time.
    pub y: Vec<Vec<f64>>,
    /// Counters.
    pub stats: OdeStats,
}

/// Integration counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OdeStats {
    /// Right-hand-side evaluations.
    pub nfe: usize,
    /// Accepted steps.
    pub accepted: usize,
    /// Rejected steps.
    pub rejected: usize,
}

/// Why an integration failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum OdeError {
    /// Output times must be finite, non-decreasing and start at or after `t0`.
    #[error("output times must be finite, non-decreasing and >= t0; entry {index} = {t} is not")]
    BadOutputTimes {
        /// Entry index.
        index: usize,
        /// The time.
        t: f64,
    },
    /// The initial state has the wrong length or is not finite.
    #[error("initial state: {0}")]
    BadInitialState(String),
    /// The step size fell below the resolvable minimum (stiffness or a singularity).
    #[error("step size too small ({h:e}) at t = {t}")]
    StepSizeTooSmall {
        /// Time reached.
        t: f64,
        /// Step size.
        h: f64,
    },
    /// The step limit was reached.
    #[error("step limit {max_steps} reached at t = {t}")]
    TooManySteps {
        /// Time reached.
        t: f64,
        /// The limit.
        max_steps: usize,
    },
    /// The right-hand side produced NaN or infinity.
    #[error("non-finite right-hand side at t = {t}")]
    NonFinite {
        /// Time reached.
        t: f64,
    },
}

impl OdeError {
    /// How far the integration got, for the errors that stop it on the way.
    pub fn time_reached(&self) -> Option<f64> {
        match self {
            Self::StepSizeTooSmall { t, .. }
            | Self::NonFinite { t }
            | Self::TooManySteps { t, .. } => Some(*t),
            Self::BadOutputTimes { .. } | Self::BadInitialState(_) => None,
        }
    }
}

pub(crate) fn check_inputs(dim: usize, t0: f64, y0: &[f64], times: &[f64]) -> Result<(), OdeError> {
    if y0.len() != dim {
        return Err(OdeError::BadInitialState(format!(
            "length {} but the system has dimension {dim}",
            y0.len()
        )));
    }
    if let Some(i) = y0.iter().position(|v| !v.is_finite()) {
        return Err(OdeError::BadInitialState(format!("entry {i} is {}", y0[i])));
    }
    let mut prev = t0;
    for (index, &t) in times.iter().enumerate() {
        if !t.is_finite() || t < prev {
            return Err(OdeError::BadOutputTimes { index, t });
        }
        prev = t;
    }
    Ok(())
}
