//! Type-II Anderson acceleration of a fixed-point iteration `z ← T(z)` (Walker & Ni 2011;
//! applied to ADMM as in Fu, Zhang & Boyd 2019): the next iterate is the image `T(z)`
//! corrected by the combination of the last few steps that best cancels the residual
//! `g = T(z) − z`.

use serde::{Deserialize, Serialize};

/// Anderson acceleration with a memory of `memory` previous steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anderson {
    /// Number of previous steps combined.
    pub memory: usize,
    /// Recent iterates `z_j`, oldest first (at most `memory + 1`).
    pub iterates: Vec<Vec<f64>>,
    /// Their residuals `g_j = T(z_j) − z_j`.
    pub residuals: Vec<Vec<f64>>,
}

impl Anderson {
    /// An accelerator with empty history.
    pub fn new(memory: usize) -> Self {
        Self {
            memory,
            iterates: Vec::new(),
            residuals: Vec::new(),
        }
    }

    /// Forgets the history (the next step is the plain iteration).
    pub fn reset(&mut self) {
        self.iterates.clear();
        self.residuals.clear();
    }

    /// Records the iterate `z` and its image `tz = T(z)` and returns the next iterate:
    /// `T(z_k) − Σ_j γ_j (ΔZ_j + ΔG_j)` with `γ` minimizing `‖g_k − ΔG γ‖` (differences of
    /// consecutive iterates and residuals). Falls back to `tz` without history, and resets
    /// when the least-squares system gives no finite answer.
    pub fn step(&mut self, z: &[f64], tz: &[f64]) -> Vec<f64> {
        let g: Vec<f64> = tz.iter().zip(z).map(|(a, b)| a - b).collect();
        self.iterates.push(z.to_vec());
        self.residuals.push(g);
        while self.iterates.len() > self.memory + 1 {
            self.iterates.remove(0);
            self.residuals.remove(0);
        }
        let m = self.iterates.len() - 1;
        if m == 0 {
            return tz.to_vec();
        }
        let diff = |v: &[Vec<f64>], j: usize| -> Vec<f64> {
            v[j + 1].iter().zip(&v[j]).map(|(a, b)| a - b).collect()
        };
        let dg: Vec<Vec<f64>> = (0..m).map(|j| diff(&self.residuals, j)).collect();
        let dz: Vec<Vec<f64>> = (0..m).map(|j| diff(&self.iterates, j)).collect();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let gk = &self.residuals[m];
        // Normal equations, Tikhonov-regularized relative to their scale.
        let mut a = vec![0.0; m * m];
        let mut rhs = vec![0.0; m];
        for i in 0..m {
            for j in 0..m {
                a[i * m + j] = dot(&dg[i], &dg[j]);
            }
            rhs[i] = dot(&dg[i], gk);
        }
        let trace: f64 = (0..m).map(|i| a[i * m + i]).sum();
        for i in 0..m {
            a[i * m + i] += 1e-10 * trace.max(f64::MIN_POSITIVE);
        }
        let Some(gamma) = solve_symmetric(&mut a, &mut rhs, m) else {
            self.reset();
            return tz.to_vec();
        };
        let mut next = tz.to_vec();
        for (j, gj) in gamma.iter().enumerate() {
            for ((n, a), b) in next.iter_mut().zip(&dz[j]).zip(&dg[j]) {
                *n -= gj * (a + b);
            }
        }
        if next.iter().all(|v| v.is_finite()) {
            next
        } else {
            self.reset();
            tz.to_vec()
        }
    }
}

/// Solves `A x = b` (`A` symmetric positive definite, `m × m`, row-major) by Cholesky; `None`
/// when `A` is not numerically positive definite.
fn solve_symmetric(a: &mut [f64], b: &mut [f64], m: usize) -> Option<Vec<f64>> {
    for j in 0..m {
        let mut d = a[j * m + j];
        for k in 0..j {
            d -= a[j * m + k] * a[j * m + k];
        }
        if !(d > 0.0 && d.is_finite()) {
            return None;
        }
        let d = d.sqrt();
        a[j * m + j] = d;
        for i in j + 1..m {
            let mut s = a[i * m + j];
            for k in 0..j {
                s -= a[i * m + k] * a[j * m + k];
            }
            a[i * m + j] = s / d;
        }
    }
    for i in 0..m {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * m + k] * b[k];
        }
        b[i] = s / a[i * m + i];
    }
    for i in (0..m).rev() {
        let mut s = b[i];
        for k in i + 1..m {
            s -= a[k * m + i] * b[k];
        }
        b[i] = s / a[i * m + i];
    }
    Some(b.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slowly contracting linear map `T(z) = M z + c` (spectral radius 0.99) with a known
    /// fixed point.
    fn linear_map(z: &[f64]) -> Vec<f64> {
        let n = z.len();
        (0..n)
            .map(|i| {
                let rate = 0.5 + 0.49 * i as f64 / (n - 1) as f64;
                let coupling = if i + 1 < n { 0.01 * z[i + 1] } else { 0.0 };
                rate * z[i] + coupling + (1.0 - rate) * (i as f64)
                    - 0.01 * if i + 1 < n { (i + 1) as f64 } else { 0.0 }
            })
            .collect()
    }

    fn error(z: &[f64]) -> f64 {
        z.iter()
            .enumerate()
            .map(|(i, v)| (v - i as f64).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn anderson_reaches_the_fixed_point_far_sooner_than_plain_iteration() {
        let n = 12;
        let mut plain = vec![0.0; n];
        for _ in 0..60 {
            plain = linear_map(&plain);
        }
        let mut acc = Anderson::new(5);
        let mut z = vec![0.0; n];
        for _ in 0..60 {
            let tz = linear_map(&z);
            z = acc.step(&z, &tz);
        }
        let (e_plain, e_acc) = (error(&plain), error(&z));
        assert!(e_plain > 1e-2, "plain iteration error {e_plain}");
        assert!(
            e_acc < 1e-4 * e_plain,
            "accelerated error {e_acc}, plain {e_plain}"
        );
        assert_eq!(acc.iterates.len(), 6);
    }

    #[test]
    fn without_history_or_memory_the_step_is_the_plain_iteration() {
        let z = vec![1.0, 2.0];
        let tz = vec![0.5, 1.0];
        assert_eq!(Anderson::new(3).step(&z, &tz), tz);
        let mut none = Anderson::new(0);
        none.step(&z, &tz);
        assert_eq!(none.step(&tz, &[0.25, 0.5]), vec![0.25, 0.5]);
    }

    #[test]
    fn cholesky_solves_a_small_system() {
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let mut b = vec![2.0, 1.0];
        let x = solve_symmetric(&mut a, &mut b, 2).unwrap();
        assert!((4.0 * x[0] + 2.0 * x[1] - 2.0).abs() < 1e-14);
        assert!((2.0 * x[0] + 3.0 * x[1] - 1.0).abs() < 1e-14);
        assert!(solve_symmetric(&mut [0.0], &mut [1.0], 1).is_none());
    }
}
