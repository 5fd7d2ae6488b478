//! Sequential training: integrate the neural ODE, differentiate the loss through the solver's
//! steps (reverse mode, [`colloc_solvers::ode::adjoint`]) and update θ with AdamW. The
//! baselines the simultaneous method is compared against share the problem files and models.
//!
//! - [`NeuralOde`]: `y' = f_θ(y[, t])` for an [`colloc_models::Mlp`], with vector–Jacobian
//!   products.
//! - [`SequentialSettings`]: trainer, optimizer and integrator settings (`[sequential]`).
//! - [`train`]: the vanilla, homotopy and multiple-shooting trainers.
//! - [`SmoothingSpline`]: the cubic smoothing spline the homotopy trainer couples to.

mod neural_ode;
mod settings;
mod spline;
mod trainer;

pub use neural_ode::NeuralOde;
pub use settings::{
    HomotopySettings, SequentialSettings, ShootingSettings, SweepCandidate, SweepSettings,
    TrainMethod,
};
pub use spline::{default_smoothing, SmoothingSpline};
pub use trainer::{train, train_many, EpochRecord, SequentialError, Series, TrainReport};
