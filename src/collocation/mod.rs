//! Chebyshev–Lagrange (and Legendre) collocation on one interval `[t0, T]`, or on finite
//! elements (sub-intervals, each with its own Lobatto-type nodes, neighbours sharing their
//! boundary node so the state is continuous):
//! nodes with barycentric weights ([`Nodes`]), the differentiation matrix `D` with
//! `(D·y)_i ≈ y'(t_i)` ([`differentiation_matrix`]), and the barycentric interpolation matrix
//! from the nodes to arbitrary times ([`interpolation_matrix`]), so a loss can be taken at the
//! data's own times.
//!
//! With Lagrange polynomials through the nodes, the coefficients are the state values
//! themselves, and the ODE `y' = f(y, t)` becomes `D·Y = F(Y, t)` at the nodes.

mod differentiation;
mod interpolation;
mod nodes;

pub use differentiation::differentiation_matrix;
pub use interpolation::{interpolate, interpolation_matrix};
pub use nodes::{NodeKind, Nodes};

/// A dense row-major matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseMatrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Entries, row after row.
    pub data: Vec<f64>,
}

impl DenseMatrix {
    /// Entry `(i, j)`.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// `self · v`.
    pub fn mul_vec(&self, v: &[f64]) -> Vec<f64> {
        (0..self.rows)
            .map(|i| self.row(i).iter().zip(v).map(|(a, b)| a * b).sum())
            .collect()
    }
}

/// Invalid collocation input.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CollocationError {
    /// Too few nodes for the kind.
    #[error("{kind} collocation needs at least {min} points, got {n}")]
    TooFewPoints {
        /// Node kind.
        kind: NodeKind,
        /// Points requested.
        n: usize,
        /// Minimum.
        min: usize,
    },
    /// The interval is empty, reversed or not finite.
    #[error("invalid collocation interval [{t0}, {t1}]: need finite t0 < t1")]
    InvalidInterval {
        /// Start.
        t0: f64,
        /// End.
        t1: f64,
    },
    /// Finite elements need nodes that include both ends of each element.
    #[error("finite elements need nodes with both ends (chebyshev or legendre-gauss-lobatto), not {kind}")]
    ElementNodes {
        /// Node kind.
        kind: NodeKind,
    },
    /// An evaluation time outside the interval (or not finite).
    #[error("time {t} (entry {index}) is outside the collocation interval [{t0}, {t1}]")]
    TimeOutsideInterval {
        /// Entry index.
        index: usize,
        /// The time.
        t: f64,
        /// Start.
        t0: f64,
        /// End.
        t1: f64,
    },
}
