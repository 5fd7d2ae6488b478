//! Dense linear algebra through the system BLAS/LAPACK (the FFI lives in `ipopt/ffi.rs`):
//! the few kernels colloc's small dense problems need at BLAS-3 speed.

use crate::ipopt::ffi_linalg as ffi;

/// `gram(a, rows, cols, alpha)` returns the full (symmetric) `cols × cols` matrix
/// `alpha·aᵀ·a` for the column-major `rows × cols` matrix `a`.
pub fn gram(a: &[f64], rows: usize, cols: usize, alpha: f64) -> Vec<f64> {
    assert_eq!(a.len(), rows * cols, "gram: a must be rows × cols");
    let mut c = vec![0.0; cols * cols];
    ffi::blas_dsyrk_lower_t(cols, rows, alpha, a, 0.0, &mut c);
    for j in 0..cols {
        for i in j + 1..cols {
            c[j + i * cols] = c[i + j * cols];
        }
    }
    c
}

/// Cholesky factorization L·Lᵀ of a symmetric positive definite matrix (LAPACK `dpotrf`).
#[derive(Clone, Debug)]
pub struct Cholesky {
    n: usize,
    factor: Vec<f64>,
}

impl Cholesky {
    /// Factorizes the column-major n×n matrix `a` (only its lower triangle is read); `None`
    /// when it is not (numerically) positive definite.
    pub fn new(mut a: Vec<f64>, n: usize) -> Option<Self> {
        assert_eq!(a.len(), n * n, "Cholesky: a must be n × n");
        (ffi::lapack_dpotrf(n, &mut a) == 0).then_some(Self { n, factor: a })
    }

    /// Solves A·x = b in place.
    pub fn solve_in_place(&self, b: &mut [f64]) {
        assert_eq!(b.len(), self.n, "Cholesky::solve_in_place: wrong length");
        ffi::lapack_dpotrs(self.n, &self.factor, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gram_and_cholesky_solve_a_least_squares_problem() {
        // a: 4×2 column-major; normal equations aᵀa x = aᵀb with b = a·[2, −1].
        let a = [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 2.0, 3.0];
        let g = gram(&a, 4, 2, 1.0);
        assert_eq!(g, vec![4.0, 6.0, 6.0, 14.0]);
        let b: Vec<f64> = (0..4).map(|i| 2.0 * a[i] - a[4 + i]).collect();
        let mut rhs: Vec<f64> = (0..2)
            .map(|j| (0..4).map(|i| a[j * 4 + i] * b[i]).sum())
            .collect();
        Cholesky::new(g, 2)
            .expect("positive definite")
            .solve_in_place(&mut rhs);
        assert!((rhs[0] - 2.0).abs() < 1e-12 && (rhs[1] + 1.0).abs() < 1e-12);
        assert!(Cholesky::new(vec![1.0, 2.0, 2.0, 1.0], 2).is_none());
    }
}
