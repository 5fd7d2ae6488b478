//! Solver back-ends for colloc.
//!
//! - [`linalg`]: dense Gram matrix and Cholesky through the system BLAS/LAPACK.
//! - [`ode`]: RK4/Dopri5 and exact reverse-mode gradients through their steps.
//! - [`optim`]: Adam and AdamW.
//! - [`nlp`]: the [`NlpEvaluator`] contract every NLP back-end consumes.
//! - [`ipopt`]: a safe binding to the system IPOPT library (the foreign-function `unsafe` code of colloc
//!   lives in `ipopt/ffi.rs`).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod ipopt;
pub mod linalg;
pub mod nlp;
pub mod ode;
pub mod optim;

pub use nlp::{
    check_finite, BlockCoupling, EvalError, KktBlock, KktBlocks, NlpDims, NlpEvaluator, NlpScaling,
};
