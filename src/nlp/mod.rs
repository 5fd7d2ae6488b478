//! The algebraic-modeling layer: blocks of variables, constraints and objective terms compiled
//! into one sparse NLP with exact first and second derivatives.
//!
//! A [`Model`] collects
//! - **variable blocks** ([`VarSpec`] → [`VarBlock`]): shape, bounds, starting values, scaling;
//! - **constraint blocks** ([`ConSpec`] → [`ConBlock`]): rows with lower/upper bounds;
//! - **linear terms** (sparse matrices added to constraint rows or to the objective): constant
//!   Jacobian, no Hessian;
//! - **objective terms**: least squares `w‖A x − b‖²` and L2 regularization `w Σ x_i²`;
//! - **nonlinear elements** ([`Element`]): a function of a short list of global variables,
//!   written once generically over num-dual scalars; its outputs are added to constraint rows
//!   or to the objective ([`Target`]);
//! - **structured terms** ([`StructuredTerm`]): large constraint terms (a deep network at
//!   every collocation point) that state their own sparsity and exact derivatives.
//!
//! [`Model::build`] fixes every sparsity pattern once (Jacobian; lower-triangular Hessian with
//! duplicates merged) and precomputes the maps from element-local derivatives to global
//! nonzeros. The resulting [`Nlp`] implements [`colloc_solvers::NlpEvaluator`] and never names a
//! solver. Element derivatives are computed in parallel (rayon) into preallocated buffers; the
//! cost of an element's Jacobian and Hessian depends only on its own number of inputs.

mod derivatives;
mod element;
mod error;
mod evaluator;
mod gram;
pub mod hock_schittkowski;
mod model;
mod sparsity;
mod structured;
mod terms;
mod variables;

pub use element::{Element, ElementGroup, Scalar, Target};
pub use error::ModelError;
pub use evaluator::{Nlp, SCATTER_MAX_ENTRIES};
pub use model::Model;
pub use structured::StructuredTerm;
pub use terms::{L2Regularization, LeastSquares};
pub use variables::{ConBlock, ConSpec, VarBlock, VarSpec};
