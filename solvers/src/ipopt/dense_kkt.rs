//! A dense symmetric-indefinite KKT solver that stands in for MUMPS when the KKT matrix is
//! dense.
//!
//! Global collocation couples every point to every other (dense differentiation matrix) and the
//! network parameters to every point, so the KKT matrix IPOPT factorizes is nearly full. MUMPS
//! treats it as sparse and spends most of its time in its unblocked pivot kernel; LAPACK's
//! blocked Bunch–Kaufman `dsytrf` on the same matrix runs at BLAS-3 speed. IPOPT 3.11 cannot
//! take a custom linear solver, so `ffi.rs` routes the MUMPS calls of a solve here when the
//! solve's [`KktPolicy`] asks for it: the analysis records the pattern, the factorization
//! assembles the upper triangle (summing duplicates, as MUMPS does), factorizes and reports the
//! inertia IPOPT needs; the solve runs `dsytrs`.

use super::ffi::{lapack_dsytrf, lapack_dsytrs};

/// Which factorization a solve uses for IPOPT's KKT systems.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum KktPolicy {
    /// Always MUMPS.
    Mumps,
    /// Always the dense LAPACK factorization.
    Dense,
    /// The block-arrow solver when the NLP supplies a partition that fits, MUMPS otherwise.
    Blocks,
    /// Dense when the matrix has at most `max_n` rows and its lower triangle is at least
    /// `min_density` full; MUMPS otherwise.
    Auto {
        /// Largest order factorized densely (memory: 8·n² bytes).
        max_n: usize,
        /// Smallest fraction of nonzeros in the lower triangle.
        min_density: f64,
    },
}

impl KktPolicy {
    /// Whether the block-arrow solver may take a matrix whose NLP supplies a partition.
    pub fn use_blocks(self) -> bool {
        matches!(self, KktPolicy::Auto { .. } | KktPolicy::Blocks)
    }

    /// Whether a matrix of order `n` with `nnz` triangle entries is factorized densely.
    pub fn use_dense(self, n: usize, nnz: usize) -> bool {
        match self {
            KktPolicy::Mumps | KktPolicy::Blocks => false,
            KktPolicy::Dense => true,
            KktPolicy::Auto { max_n, min_density } => {
                let triangle = n as f64 * (n as f64 + 1.0) / 2.0;
                n > 0 && n <= max_n && nnz as f64 >= min_density * triangle
            }
        }
    }
}

/// Inertia of a factorized symmetric matrix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Inertia {
    /// Positive eigenvalues.
    pub positive: usize,
    /// Negative eigenvalues.
    pub negative: usize,
    /// Zero pivots (the matrix is then treated as singular).
    pub zero: usize,
}

impl std::ops::AddAssign for Inertia {
    fn add_assign(&mut self, other: Self) {
        self.positive += other.positive;
        self.negative += other.negative;
        self.zero += other.zero;
    }
}

/// The factorization failed because the matrix is (numerically) singular.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Singular;

/// A symmetric matrix given by triangle entries (1-based, either triangle, duplicates summed),
/// factorized as P·U·D·Uᵀ·Pᵀ with LAPACK's Bunch–Kaufman `dsytrf('U')`.
#[derive(Debug)]
pub(crate) struct DenseLdlt {
    n: usize,
    /// Column-major n×n; the upper triangle holds the matrix, then the factor.
    factor: Vec<f64>,
    pivots: Vec<i32>,
    work: Vec<f64>,
    factorized: bool,
}

impl DenseLdlt {
    /// Workspace for a matrix of order `n`.
    pub fn new(n: usize) -> Self {
        Self {
            n,
            factor: vec![0.0; n * n],
            pivots: vec![0; n],
            work: Vec::new(),
            factorized: false,
        }
    }

    /// Order of the matrix.
    pub fn order(&self) -> usize {
        self.n
    }

    /// Assembles the matrix from 1-based triangle entries and factorizes it.
    pub fn factorize(
        &mut self,
        rows: &[i32],
        cols: &[i32],
        values: &[f64],
    ) -> Result<Inertia, Singular> {
        let n = self.n;
        self.factorized = false;
        // Upper triangle, column-major: entry (i, j), i ≤ j, at i + j·n. IPOPT orders the KKT
        // rows as variables then constraints, so a constraint's Jacobian row lands in one
        // contiguous column here (cache-friendly scatter).
        for j in 0..n {
            self.factor[j * n..j * n + j + 1].fill(0.0);
        }
        for ((&r, &c), &v) in rows.iter().zip(cols).zip(values) {
            let (r, c) = (r as usize - 1, c as usize - 1);
            let at = if r <= c { r + c * n } else { c + r * n };
            self.factor[at] += v;
        }
        let scale = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if self.work.is_empty() {
            let query = lapack_dsytrf(n, &mut self.factor, &mut self.pivots, &mut [0.0], true);
            let optimal = (query.work_size.max(1.0) as usize).max(n);
            self.work = vec![0.0; optimal];
        }
        let out = lapack_dsytrf(n, &mut self.factor, &mut self.pivots, &mut self.work, false);
        if out.info != 0 {
            // info > 0: an exactly zero diagonal block; info < 0 cannot happen (valid args).
            return Err(Singular);
        }
        let inertia = self.inertia(scale);
        if inertia.zero > 0 {
            return Err(Singular);
        }
        self.factorized = true;
        Ok(inertia)
    }

    /// The inertia of the factorized matrix (see [`ldlt_inertia`]).
    fn inertia(&self, scale: f64) -> Inertia {
        ldlt_inertia(self.n, &self.factor, &self.pivots, scale)
    }

    /// Solves A·x = rhs in place with the last successful factorization.
    pub fn solve(&self, rhs: &mut [f64]) -> bool {
        if !self.factorized || rhs.len() != self.n {
            return false;
        }
        lapack_dsytrs(self.n, &self.factor, &self.pivots, rhs) == 0
    }
}

/// Counts the signs of D's 1×1 and 2×2 blocks of a `dsytrf('U')` factorization of order `n`
/// (column-major, leading dimension `n`) — Sylvester's law of inertia. A pivot smaller than
/// n·ε·`scale` (the largest matrix entry) counts as zero.
pub(crate) fn ldlt_inertia(n: usize, factor: &[f64], pivots: &[i32], scale: f64) -> Inertia {
    let tiny = n as f64 * f64::EPSILON * scale.max(f64::MIN_POSITIVE);
    let d = |i: usize, j: usize| factor[i + j * n];
    let mut inertia = Inertia {
        positive: 0,
        negative: 0,
        zero: 0,
    };
    let mut count = |v: f64| {
        if v.abs() <= tiny {
            inertia.zero += 1;
        } else if v > 0.0 {
            inertia.positive += 1;
        } else {
            inertia.negative += 1;
        }
    };
    let mut k = 0;
    while k < n {
        if pivots[k] > 0 || k + 1 == n {
            count(d(k, k));
            k += 1;
        } else {
            // 2×2 block [a b; b c] (upper storage: b at (k, k+1)).
            let (a, b, c) = (d(k, k), d(k, k + 1), d(k + 1, k + 1));
            let mean = 0.5 * (a + c);
            let radius = (0.25 * (a - c) * (a - c) + b * b).sqrt();
            count(mean + radius);
            count(mean - radius);
            k += 2;
        }
    }
    inertia
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Triangle entries (1-based, lower) of a dense symmetric matrix.
    fn triangle(a: &[Vec<f64>]) -> (Vec<i32>, Vec<i32>, Vec<f64>) {
        let (mut r, mut c, mut v) = (vec![], vec![], vec![]);
        for (i, row) in a.iter().enumerate() {
            for (j, &x) in row.iter().enumerate().take(i + 1) {
                r.push(i as i32 + 1);
                c.push(j as i32 + 1);
                v.push(x);
            }
        }
        (r, c, v)
    }

    #[test]
    fn solves_an_indefinite_kkt_system_and_reports_its_inertia() {
        // KKT of min ½xᵀHx s.t. Ax = b: H 3×3 positive definite, A 2×3 full rank →
        // inertia (3, 2, 0).
        let a = vec![
            vec![4.0, 1.0, 0.0, 1.0, 0.0],
            vec![1.0, 3.0, 0.5, 1.0, 1.0],
            vec![0.0, 0.5, 2.0, 0.0, 1.0],
            vec![1.0, 1.0, 0.0, 0.0, 0.0],
            vec![0.0, 1.0, 1.0, 0.0, 0.0],
        ];
        let (r, c, v) = triangle(&a);
        let mut f = DenseLdlt::new(5);
        let inertia = f.factorize(&r, &c, &v).expect("nonsingular");
        assert_eq!(
            inertia,
            Inertia {
                positive: 3,
                negative: 2,
                zero: 0
            }
        );
        let x_true = [1.0, -2.0, 0.5, 3.0, -1.0];
        let mut rhs: Vec<f64> = a
            .iter()
            .map(|row| row.iter().zip(&x_true).map(|(p, q)| p * q).sum())
            .collect();
        assert!(f.solve(&mut rhs));
        for (x, t) in rhs.iter().zip(&x_true) {
            assert!((x - t).abs() < 1e-12, "{x} vs {t}");
        }
    }

    #[test]
    fn duplicates_are_summed_and_upper_entries_mirrored() {
        // [[2, 1], [1, -3]] given as (1,1)=1 twice and the off-diagonal in the upper triangle.
        let mut f = DenseLdlt::new(2);
        let inertia = f
            .factorize(&[1, 1, 1, 2], &[1, 1, 2, 2], &[1.0, 1.0, 1.0, -3.0])
            .expect("nonsingular");
        assert_eq!((inertia.positive, inertia.negative), (1, 1));
        let mut rhs = vec![3.0, -2.0]; // A·[1, 1]
        assert!(f.solve(&mut rhs));
        assert!((rhs[0] - 1.0).abs() < 1e-14 && (rhs[1] - 1.0).abs() < 1e-14);
    }

    #[test]
    fn a_singular_matrix_is_reported() {
        // Rank 1: [[1, 1], [1, 1]]; and a zero matrix.
        let mut f = DenseLdlt::new(2);
        assert_eq!(
            f.factorize(&[1, 2, 2], &[1, 1, 2], &[1.0, 1.0, 1.0]),
            Err(Singular)
        );
        assert!(!f.solve(&mut [1.0, 1.0]));
        assert_eq!(f.factorize(&[1], &[1], &[0.0]), Err(Singular));
    }

    #[test]
    fn inertia_matches_eigenvalue_signs_on_random_matrices() {
        // Symmetric matrices with known spectrum Q·diag(λ)·Qᵀ (Q from Householder reflections).
        let n = 12;
        let mut seed = 12345u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        for negatives in [0, 3, 7, 12] {
            let lambda: Vec<f64> = (0..n)
                .map(|i| {
                    let m = 0.5 + rnd().abs();
                    if i < negatives {
                        -m
                    } else {
                        m
                    }
                })
                .collect();
            let mut a = vec![vec![0.0; n]; n];
            for (i, row) in a.iter_mut().enumerate() {
                row[i] = lambda[i];
            }
            for _ in 0..3 {
                let v: Vec<f64> = (0..n).map(|_| rnd()).collect();
                let vv: f64 = v.iter().map(|x| x * x).sum();
                // A ← H·A·H with H = I − 2vvᵀ/vᵀv.
                let h: Vec<Vec<f64>> = (0..n)
                    .map(|i| {
                        (0..n)
                            .map(|j| f64::from(u8::from(i == j)) - 2.0 * v[i] * v[j] / vv)
                            .collect()
                    })
                    .collect();
                let mul = |x: &Vec<Vec<f64>>, y: &Vec<Vec<f64>>| -> Vec<Vec<f64>> {
                    (0..n)
                        .map(|i| {
                            (0..n)
                                .map(|j| (0..n).map(|k| x[i][k] * y[k][j]).sum())
                                .collect()
                        })
                        .collect()
                };
                a = mul(&mul(&h, &a), &h);
            }
            let (r, c, v) = triangle(&a);
            let mut f = DenseLdlt::new(n);
            let inertia = f.factorize(&r, &c, &v).expect("nonsingular");
            assert_eq!(inertia.negative, negatives);
            assert_eq!(inertia.positive, n - negatives);
        }
    }

    #[test]
    fn auto_policy_picks_dense_only_for_dense_small_matrices() {
        let auto = KktPolicy::Auto {
            max_n: 1000,
            min_density: 0.1,
        };
        assert!(auto.use_dense(100, 2000)); // 2000 of 5050 entries
        assert!(!auto.use_dense(100, 300));
        assert!(!auto.use_dense(2000, 2_000_000));
        assert!(KktPolicy::Dense.use_dense(2000, 10));
        assert!(!KktPolicy::Mumps.use_dense(10, 55));
    }
}
