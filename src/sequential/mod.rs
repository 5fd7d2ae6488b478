//! Sequential training: integrate the neural ODE, differentiate the loss through the solver's
//! steps (reverse mode, [`colloc_solvers::ode::adjoint`]) and update θ with Adam. The
//! baselines the simultaneous method is compared against share the problem files and models.
//!
//! - [`NeuralOde`]: `y' = f_θ(y[, t])` for an [`Mlp`], with vector–Jacobian products.

mod neural_ode;

pub use neural_ode::NeuralOde;
