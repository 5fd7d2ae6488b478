//! Chebyshev–Lagrange (and Legendre) collocation on one interval `[t0, T]`, or on finite
//! elements (sub-intervals, each with its own Lobatto-type nodes, neighbours sharing their
//! boundary node so the state is continuous):
//! nodes with barycentric weights ([`Nodes`]), the differentiation matrix `D` with
//! `(D·y)_i ≈ y'(t_i)` ([`differentiation_matrix`]), and the barycentric interpolation matrix
//! from the nodes to arbitrary times ([`interpolation_matrix`]), so a loss can be taken at the
//! data's own times.
//!
//! With Lagrange polynomials through the nodes, the coefficients are the state values
//! themselves, and the ODE `y' = f(y, t)` becomes `D·Y = F(Y, t)` at the collocation points
//! ([`Nodes::collocation_points`]: every node, except the start of finite Radau elements).
//! Both matrices are sparse ([`SparseMatrix`]): with finite elements a row touches one
//! element, so their entries grow linearly with the number of points.

mod differentiation;
mod interpolation;
mod nodes;

pub use differentiation::differentiation_matrix;
pub use interpolation::{derivative_matrix, interpolate, interpolation_matrix};
pub use nodes::{NodeKind, Nodes};

/// A sparse matrix in compressed sparse row form: `D` and `L` of finite elements hold a few
/// entries per row, those of global collocation a full row each.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseMatrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    indptr: Vec<usize>,
    indices: Vec<usize>,
    values: Vec<f64>,
}

impl SparseMatrix {
    /// An empty `0 × cols` matrix to which rows are appended with [`Self::push_row`].
    pub fn new(cols: usize) -> Self {
        Self {
            rows: 0,
            cols,
            indptr: vec![0],
            indices: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Appends a row from `(column, value)` entries in increasing column order (zeros are
    /// kept out).
    pub fn push_row(&mut self, entries: impl IntoIterator<Item = (usize, f64)>) {
        for (j, v) in entries {
            debug_assert!(j < self.cols);
            debug_assert!(
                self.indices.len() == self.indptr[self.rows] || self.indices.last() < Some(&j)
            );
            if v != 0.0 {
                self.indices.push(j);
                self.values.push(v);
            }
        }
        self.indptr.push(self.indices.len());
        self.rows += 1;
    }

    /// The nonzero entries of row `i` as `(column, value)`, by increasing column.
    pub fn row(&self, i: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let range = self.indptr[i]..self.indptr[i + 1];
        self.indices[range.clone()]
            .iter()
            .copied()
            .zip(self.values[range].iter().copied())
    }

    /// Entry `(i, j)` (zero when not stored).
    pub fn get(&self, i: usize, j: usize) -> f64 {
        let range = self.indptr[i]..self.indptr[i + 1];
        match self.indices[range.clone()].binary_search(&j) {
            Ok(pos) => self.values[range.start + pos],
            Err(_) => 0.0,
        }
    }

    /// Number of stored (nonzero) entries.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// Every stored entry as `(row, column, value)`, row by row.
    pub fn triplets(&self) -> impl Iterator<Item = (usize, usize, f64)> + '_ {
        (0..self.rows).flat_map(move |i| self.row(i).map(move |(j, v)| (i, j, v)))
    }

    /// `self · v`.
    pub fn mul_vec(&self, v: &[f64]) -> Vec<f64> {
        (0..self.rows)
            .map(|i| self.row(i).map(|(j, a)| a * v[j]).sum())
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
