//! The contract between a problem and a solver back-end.
//!
//! A nonlinear program
//!
//! ```text
//!   minimize    f(x)
//!   subject to  g_L <= g(x) <= g_U,   x_L <= x <= x_U
//! ```
//!
//! is described to a solver through [`NlpEvaluator`]. As in MathOptInterface, *structure* calls
//! (dimensions, bounds, sparsity patterns) are kept apart from *value* calls (objective,
//! gradient, constraints, Jacobian values, Hessian-of-the-Lagrangian values). Structure is
//! asked for once per solve; values are asked for at every iterate and must be written into the
//! caller's buffers without changing the pattern.

use serde::{Deserialize, Serialize};

/// Sizes of an NLP: variables, constraints and the nonzeros of its sparse derivatives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NlpDims {
    /// Number of variables `n`.
    pub n_vars: usize,
    /// Number of constraints `m`.
    pub n_cons: usize,
    /// Nonzeros of the constraint Jacobian (triplet entries, no duplicates).
    pub nnz_jac: usize,
    /// Nonzeros of the lower triangle of the Hessian of the Lagrangian (no duplicates).
    pub nnz_hess: usize,
}

/// Why an evaluation could not produce a value. Solvers treat it as "cannot evaluate here"
/// (IPOPT then cuts its step back) and record it in their statistics.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// A non-finite number (NaN or ±∞) came out of the named quantity.
    #[error("non-finite value in {what} at entry {index}")]
    NonFinite {
        /// Which evaluation produced it ("objective", "constraints", "jacobian", ...).
        what: &'static str,
        /// Index of the first offending entry.
        index: usize,
    },
    /// The point is outside the domain of a model function.
    #[error("evaluation outside the domain: {0}")]
    Domain(String),
}

/// Optional user scaling of the problem (IPOPT's `nlp_scaling_method = user-scaling`).
#[derive(Clone, Debug, PartialEq)]
pub struct NlpScaling {
    /// Factor applied to the objective.
    pub objective: f64,
    /// One factor per variable.
    pub variables: Vec<f64>,
    /// One factor per constraint.
    pub constraints: Vec<f64>,
}

/// Variables and constraints of one block of a [`KktBlocks`] partition (0-based indices).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KktBlock {
    /// Variable indices.
    pub variables: Vec<usize>,
    /// Constraint indices.
    pub constraints: Vec<usize>,
}

impl KktBlock {
    /// The block's rows of a KKT matrix whose first `n_vars` rows are the variables and the
    /// rest the constraints: its variables, then its constraints.
    pub fn kkt_rows(&self, n_vars: usize) -> impl Iterator<Item = usize> + '_ {
        self.variables
            .iter()
            .copied()
            .chain(self.constraints.iter().map(move |&j| n_vars + j))
    }
}

/// A partition of an NLP's variables and constraints that a KKT solver may exploit: a chain of
/// blocks, each coupled (through the Jacobian or the Hessian) only with its neighbours in the
/// chain and with one small global block — finite-element collocation, where a block holds an
/// element's states and collocation equations and the global block the network parameters.
/// Each block's own KKT matrix should be nonsingular (as many constraints as its equations
/// determine). It is a hint: a solver checks it against the actual patterns and ignores it
/// when they do not fit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KktBlocks {
    /// The chain, in elimination order.
    pub chain: Vec<KktBlock>,
    /// The global block (eliminated last). With [`BlockCoupling::Independent`] the global
    /// unknowns are all those in no chain block, and this is not read.
    pub global: KktBlock,
    /// How the chain's blocks meet.
    pub coupling: BlockCoupling,
}

/// How the blocks of a [`KktBlocks`] partition are coupled, which decides the solver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BlockCoupling {
    /// Each block meets its neighbours in the chain and the (small) global block: block-arrow
    /// elimination along the chain.
    #[default]
    Chain,
    /// The blocks meet no other block, each only a few of the global unknowns (which may be
    /// many): the blocks are eliminated onto a dense Schur complement of the global unknowns
    /// (the full-space network formulation, a block per point and hidden unit).
    Independent,
    /// One block with as many constraints as variables, whose Jacobian in its own variables is
    /// square and nonsingular, coupled densely to the global unknowns: eliminated through an
    /// LU factorization of that Jacobian (global collocation of one trajectory: the states
    /// after the first node and their collocation rows).
    Square,
}

/// A nonlinear program as a solver sees it.
///
/// Index conventions: all indices are 0-based. The Hessian pattern is the lower triangle
/// (`row >= col`) of the symmetric Hessian of the Lagrangian
/// `L(x, λ) = σ f(x) + Σ_i λ_i g_i(x)`.
pub trait NlpEvaluator {
    /// Problem sizes; constant for the lifetime of the evaluator.
    fn dims(&self) -> NlpDims;

    /// Writes variable bounds and constraint bounds. Infinite bounds are `f64::INFINITY` /
    /// `f64::NEG_INFINITY`; equality constraints have `g_lower == g_upper`.
    fn bounds(
        &self,
        x_lower: &mut [f64],
        x_upper: &mut [f64],
        g_lower: &mut [f64],
        g_upper: &mut [f64],
    );

    /// Writes the default starting point.
    fn initial_point(&self, x: &mut [f64]);

    /// User scaling, if the problem defines one (default: none).
    fn scaling(&self) -> Option<NlpScaling> {
        None
    }

    /// A block partition for the KKT solver (default: none).
    fn kkt_blocks(&self) -> Option<std::sync::Arc<KktBlocks>> {
        None
    }

    /// Writes the Jacobian pattern: entry `k` is `(rows[k], cols[k])`.
    fn jacobian_structure(&self, rows: &mut [usize], cols: &mut [usize]);

    /// Writes the lower-triangular Hessian pattern: entry `k` is `(rows[k], cols[k])`,
    /// `rows[k] >= cols[k]`.
    fn hessian_structure(&self, rows: &mut [usize], cols: &mut [usize]);

    /// Objective value `f(x)`.
    fn objective(&mut self, x: &[f64]) -> Result<f64, EvalError>;

    /// Objective gradient `∇f(x)`, dense, length `n_vars`.
    fn gradient(&mut self, x: &[f64], grad: &mut [f64]) -> Result<(), EvalError>;

    /// Constraint values `g(x)`, length `n_cons`.
    fn constraints(&mut self, x: &[f64], g: &mut [f64]) -> Result<(), EvalError>;

    /// Jacobian values in the order of [`NlpEvaluator::jacobian_structure`].
    fn jacobian_values(&mut self, x: &[f64], values: &mut [f64]) -> Result<(), EvalError>;

    /// Values of the lower triangle of `σ ∇²f(x) + Σ_i λ_i ∇²g_i(x)`, in the order of
    /// [`NlpEvaluator::hessian_structure`].
    fn hessian_values(
        &mut self,
        x: &[f64],
        obj_factor: f64,
        lambda: &[f64],
        values: &mut [f64],
    ) -> Result<(), EvalError>;
}

/// Returns `Err(EvalError::NonFinite)` naming the first non-finite entry of `values`.
pub fn check_finite(what: &'static str, values: &[f64]) -> Result<(), EvalError> {
    // A branch-free pass first (it vectorizes: `0·v` is 0 for finite `v`, NaN otherwise,
    // and NaN propagates through the lanes' sums), the search only when it fails.
    let mut lanes = [0.0f64; 8];
    let chunks = values.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += v * 0.0;
        }
    }
    if lanes.iter().chain(tail).all(|v| v.is_finite()) {
        return Ok(());
    }
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(EvalError::NonFinite { what, index }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_finite_finds_the_first_non_finite_value_anywhere() {
        for len in [0, 1, 7, 8, 9, 31, 64] {
            let values: Vec<f64> = (0..len).map(|i| i as f64 - 3.5).collect();
            assert!(check_finite("v", &values).is_ok(), "len {len}");
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                for at in 0..len {
                    let mut v = values.clone();
                    v[at] = bad;
                    if at + 2 < len {
                        v[at + 2] = f64::NAN;
                    }
                    match check_finite("v", &v) {
                        Err(EvalError::NonFinite { what: "v", index }) => assert_eq!(index, at),
                        other => panic!("len {len}, {bad} at {at}: {other:?}"),
                    }
                }
            }
        }
        assert!(check_finite("v", &[f64::MAX, f64::MIN, f64::MIN_POSITIVE]).is_ok());
    }
}
