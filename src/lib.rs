//! colloc: neural ODE training by simultaneous collocation.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod collocation;
pub mod nlp;
pub mod problem;
pub mod report;
pub mod sequential;
pub mod training;

pub use colloc_models as models;
pub use colloc_solvers as solvers;
