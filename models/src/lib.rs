//! Model families for colloc, generic over num-dual scalars, so one implementation serves
//! `f64` simulation and exact derivatives. This crate knows nothing about solvers.
//!
//! - [`Activation`]: smooth activations (and ReLU, refused where IPOPT needs C² functions).
//! - [`Mlp`]: multilayer perceptron, Xavier initialization from a seed, JSON save/load.
//! - [`Normalization`]: fixed standardized coordinates a network is trained in.
//! - [`MlpTape`]: reverse mode (hand-written vector–Jacobian products) for the MLP.
//! - [`Structure`], [`TimeBasis`]: how the network enters the ODE (black box, second order,
//!   gray box) and time-dependent weights (Legendre or monomial coefficients).
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod activation;
mod backprop;
mod error;
mod mlp;
mod normalization;
mod structure;
mod wide;

pub use activation::{Activation, Exponential};
pub use backprop::MlpTape;
pub use error::ModelError;
pub use mlp::{parameter_count, write_atomic, Mlp, MODEL_FORMAT_VERSION};
pub use normalization::Normalization;
pub use structure::{BasisKind, Structure, TimeBasis};
