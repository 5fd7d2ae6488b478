//! Dense linear algebra through the system BLAS/LAPACK (the FFI lives in `ipopt/ffi.rs`):
//! the few kernels colloc's small dense problems need at BLAS-3 speed — and a band Cholesky
//! in plain Rust, whose rounding does not depend on the BLAS build, its CPU kernels or its
//! thread count.

use crate::ipopt::ffi_linalg as ffi;

/// `gram(a, rows, cols, alpha)` returns the full (symmetric) `cols × cols` matrix
/// `alpha·aᵀ·a` for the column-major `rows × cols` matrix `a`.
pub fn gram(a: &[f64], rows: usize, cols: usize, alpha: f64) -> Vec<f64> {
    assert_eq!(a.len(), rows * cols, "gram: a must be rows × cols");
    let mut c = vec![0.0; cols * cols];
    ffi::default_blas_threads();
    ffi::blas_dsyrk_lower_t(cols, rows, alpha, a, 0.0, &mut c);
    for j in 0..cols {
        for i in j + 1..cols {
            c[j + i * cols] = c[i + j * cols];
        }
    }
    c
}

/// A column-major matrix operand of [`gemm_add`]: its values, leading dimension, and whether it
/// enters transposed.
#[derive(Clone, Copy, Debug)]
pub struct GemmOperand<'a> {
    /// The stored values (column-major).
    pub values: &'a [f64],
    /// Leading dimension: the distance between the starts of two stored columns.
    pub ld: usize,
    /// Use the transpose of the stored matrix.
    pub transposed: bool,
}

impl<'a> GemmOperand<'a> {
    /// The stored matrix itself, columns `ld` apart.
    pub fn new(values: &'a [f64], ld: usize) -> Self {
        Self {
            values,
            ld,
            transposed: false,
        }
    }

    /// Its transpose.
    pub fn transposed(self) -> Self {
        Self {
            transposed: true,
            ..self
        }
    }
}

/// BLAS `dgemm`: `c ← op(a)·op(b) + c`, with `op(a)` of `m × k`, `op(b)` of `k × n` and `c`
/// column-major `m × n` with leading dimension `ldc`. Panics when a slice is too short for
/// its shape.
pub fn gemm_add(
    (m, n, k): (usize, usize, usize),
    a: GemmOperand<'_>,
    b: GemmOperand<'_>,
    c: &mut [f64],
    ldc: usize,
) {
    if k == 0 {
        return;
    }
    ffi::default_blas_threads();
    ffi::blas_dgemm(
        (a.transposed, b.transposed),
        (m, n, k),
        1.0,
        (a.values, a.ld),
        (b.values, b.ld),
        1.0,
        (c, ldc),
    );
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
        ffi::default_blas_threads();
        (ffi::lapack_dpotrf(n, &mut a) == 0).then_some(Self { n, factor: a })
    }

    /// Solves A·x = b in place.
    pub fn solve_in_place(&self, b: &mut [f64]) {
        assert_eq!(b.len(), self.n, "Cholesky::solve_in_place: wrong length");
        ffi::lapack_dpotrs(self.n, &self.factor, b);
    }
}

/// Cholesky factorization L·Lᵀ of a symmetric positive definite band matrix with
/// half-bandwidth `b` (entries `A[i][j] = 0` for `|i − j| > b`), in plain Rust: O(n·b²) time,
/// O(n·b) memory, and the same numbers on every machine.
#[derive(Clone, Debug)]
pub struct BandCholesky {
    n: usize,
    b: usize,
    /// Row `i` of L from column `i − b` to `i` (slot `k + b − i` ↔ column `k`; the slots left
    /// of column 0 are zero).
    factor: Vec<f64>,
}

impl BandCholesky {
    /// Factorizes the n×n matrix whose lower band is `lower(i, j)` for `j ≤ i ≤ j + b`;
    /// `None` when it is not (numerically) positive definite.
    pub fn new(n: usize, b: usize, lower: impl Fn(usize, usize) -> f64) -> Option<Self> {
        let w = b + 1;
        let mut l = vec![0.0; n * w];
        for i in 0..n {
            let first = i.saturating_sub(b);
            for j in first..=i {
                let mut s = lower(i, j);
                for k in first.max(j.saturating_sub(b))..j {
                    s -= l[i * w + k + b - i] * l[j * w + k + b - j];
                }
                if j == i {
                    if !(s > 0.0 && s.is_finite()) {
                        return None;
                    }
                    l[i * w + b] = s.sqrt();
                } else {
                    l[i * w + j + b - i] = s / l[j * w + b];
                }
            }
        }
        Some(Self { n, b, factor: l })
    }

    /// Solves A·x = b in place.
    pub fn solve_in_place(&self, x: &mut [f64]) {
        let (n, b, w) = (self.n, self.b, self.b + 1);
        assert_eq!(x.len(), n, "BandCholesky::solve_in_place: wrong length");
        let l = |i: usize, k: usize| self.factor[i * w + k + b - i];
        // L·y = x: row i uses the solved y[i − b..i].
        for i in 0..n {
            let first = i.saturating_sub(b);
            let (solved, rest) = x.split_at_mut(i);
            let s = solved[first..]
                .iter()
                .enumerate()
                .fold(rest[0], |s, (k, y)| s - l(i, first + k) * y);
            rest[0] = s / l(i, i);
        }
        // Lᵀ·z = y: row i uses the solved z[i + 1..=i + b].
        for i in (0..n).rev() {
            let last = (i + b).min(n - 1);
            let (head, solved) = x.split_at_mut(i + 1);
            let s = solved[..last - i]
                .iter()
                .enumerate()
                .fold(head[i], |s, (k, z)| s - l(i + 1 + k, i) * z);
            head[i] = s / l(i, i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_add_accumulates_products_of_transposed_and_strided_operands() {
        // a stored 3×2 (ld 4, one padding row), used transposed: op(a) = 2×3; b 3×2 (ld 3).
        let a = [1.0, 2.0, 3.0, 99.0, 4.0, 5.0, 6.0, 99.0];
        let b = [1.0, 0.0, -1.0, 2.0, 1.0, 0.5];
        let mut c = vec![1.0; 4];
        let (a, b) = (
            GemmOperand::new(&a, 4).transposed(),
            GemmOperand::new(&b, 3),
        );
        gemm_add((2, 2, 3), a, b, &mut c, 2);
        // aᵀb = [[−2, 5.5], [−2, 16]] plus the ones already in c (column-major).
        assert_eq!(c, vec![-1.0, -1.0, 6.5, 17.0]);
    }

    #[test]
    fn band_cholesky_agrees_with_lapack_and_refuses_indefinite_matrices() {
        // A pentadiagonal SPD matrix (diagonally dominant) and a known solution.
        let n = 40;
        let entry = |i: usize, j: usize| -> f64 {
            match i.abs_diff(j) {
                0 => 6.0 + (i % 3) as f64,
                1 => -1.0 - 0.1 * ((i + j) % 5) as f64,
                2 => 0.5 + 0.01 * (i.min(j)) as f64,
                _ => 0.0,
            }
        };
        let x_true: Vec<f64> = (0..n)
            .map(|i| (i as f64 * 0.7).sin() + 0.1 * i as f64)
            .collect();
        let rhs: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| entry(i, j) * x_true[j]).sum())
            .collect();
        let mut x = rhs.clone();
        BandCholesky::new(n, 2, entry)
            .expect("positive definite")
            .solve_in_place(&mut x);
        let dense: Vec<f64> = (0..n * n).map(|k| entry(k % n, k / n)).collect();
        let mut y = rhs;
        Cholesky::new(dense, n)
            .expect("positive definite")
            .solve_in_place(&mut y);
        for i in 0..n {
            assert!(
                (x[i] - x_true[i]).abs() < 1e-12,
                "{i}: {} vs {}",
                x[i],
                x_true[i]
            );
            assert!((x[i] - y[i]).abs() < 1e-12);
        }
        // Half-bandwidth 0 is a diagonal solve; an indefinite matrix is refused.
        let mut d = vec![2.0, 9.0];
        BandCholesky::new(2, 0, |i, _| [4.0, 3.0][i])
            .expect("positive")
            .solve_in_place(&mut d);
        assert!(
            (d[0] - 0.5).abs() < 1e-15 && (d[1] - 3.0).abs() < 1e-14,
            "{d:?}"
        );
        assert!(BandCholesky::new(2, 1, |i, j| if i == j { 1.0 } else { 2.0 }).is_none());
    }

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
