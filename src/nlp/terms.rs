//! Objective terms with closed-form derivatives: least squares and L2 regularization.

use super::variables::check_finite;
use super::ModelError;
use sprs::{CsMat, TriMat};

/// `weight · ‖A x − b‖²` over global variables: `A` has one row per residual and one column per
/// global variable (columns past the last used one may be omitted). Gradient
/// `2w Aᵀ(Ax − b)`; Hessian `2w AᵀA`, constant, its pattern fixed at build time.
#[derive(Clone, Debug)]
pub struct LeastSquares {
    /// Term name, used in error messages.
    pub name: String,
    /// The matrix `A` (any storage; converted to rows).
    pub matrix: CsMat<f64>,
    /// The target `b`, one entry per row of `A`.
    pub target: Vec<f64>,
    /// The weight `w ≥ 0`.
    pub weight: f64,
}

impl LeastSquares {
    /// `weight · Σ_i (x[indices[i]] − target[i])²`: the fit of selected variables to data.
    pub fn on_variables(
        name: impl Into<String>,
        indices: &[usize],
        target: Vec<f64>,
        weight: f64,
    ) -> Self {
        let cols = indices.iter().max().map_or(0, |m| m + 1);
        let mut tri = TriMat::new((indices.len(), cols));
        for (r, &j) in indices.iter().enumerate() {
            tri.add_triplet(r, j, 1.0);
        }
        Self {
            name: name.into(),
            matrix: tri.to_csr(),
            target,
            weight,
        }
    }

    pub(crate) fn validate(&self, n_vars: usize) -> Result<(), ModelError> {
        if self.matrix.rows() != self.target.len() {
            return Err(ModelError::ShapeMismatch {
                term: self.name.clone(),
                got: self.matrix.rows(),
                expected: self.target.len(),
            });
        }
        check_weight(&self.name, self.weight)?;
        check_finite(&self.name, "target", &self.target)?;
        check_finite(&self.name, "matrix coefficient", self.matrix.data())?;
        for (_, (_, j)) in self.matrix.iter() {
            if j >= n_vars {
                return Err(ModelError::VariableOutOfRange {
                    term: self.name.clone(),
                    index: j,
                    n_vars,
                });
            }
        }
        Ok(())
    }
}

/// `weight · Σ_i x[indices[i]]²` (λ‖θ‖²). Gradient `2w x_i`, Hessian `2w` on the diagonal.
#[derive(Clone, Debug, PartialEq)]
pub struct L2Regularization {
    /// Term name, used in error messages.
    pub name: String,
    /// Global variable indices (distinct).
    pub indices: Vec<usize>,
    /// The weight `w ≥ 0`.
    pub weight: f64,
}

impl L2Regularization {
    /// `weight · Σ x_i²` over the given global indices.
    pub fn new(
        name: impl Into<String>,
        indices: impl IntoIterator<Item = usize>,
        weight: f64,
    ) -> Self {
        Self {
            name: name.into(),
            indices: indices.into_iter().collect(),
            weight,
        }
    }

    pub(crate) fn validate(&self, n_vars: usize) -> Result<(), ModelError> {
        check_weight(&self.name, self.weight)?;
        for &index in &self.indices {
            if index >= n_vars {
                return Err(ModelError::VariableOutOfRange {
                    term: self.name.clone(),
                    index,
                    n_vars,
                });
            }
        }
        Ok(())
    }
}

fn check_weight(name: &str, weight: f64) -> Result<(), ModelError> {
    if weight.is_finite() && weight >= 0.0 {
        Ok(())
    } else {
        Err(ModelError::InvalidValue {
            block: name.to_string(),
            what: "weight",
            index: 0,
            value: weight,
        })
    }
}
