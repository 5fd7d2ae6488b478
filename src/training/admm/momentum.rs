//! Nesterov extrapolation with adaptive restart for a fixed-point iteration — the "fast ADMM"
//! of Goldstein, O'Donoghue, Setzer and Baraniuk (2014, Alg. 8), used by
//! [`super`] on `(θ̄, u)` when `[admm] momentum = true`.

use serde::{Deserialize, Serialize};

/// Memory of the Nesterov extrapolation with restart (ADMM's `[admm] momentum`) of a
/// fixed-point iteration `z_k = T(ẑ_k)`: the next point is `ẑ_{k+1} = z_k + β (z_k − z_{k−1})`
/// with Nesterov's `β = (a_k − 1)/a_{k+1}`, `a_{k+1} = (1 + √(1 + 4a_k²))/2`, as long as the
/// combined residual falls by the restart factor; otherwise `ẑ_{k+1} = z_{k−1}` and `a = 1` —
/// unless `ẑ_k` was `z_{k−1}` itself (no extrapolation in the last step), where going back
/// would repeat the last solve: then `ẑ_{k+1} = z_k`, the plain step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Momentum {
    /// Nesterov's sequence a_k (1 after a restart).
    pub a: f64,
    /// The combined residual of the last accepted step.
    pub combined: f64,
    /// z_k before extrapolation (for ADMM: θ̄ followed by every batch's u_i).
    pub last: Vec<f64>,
    /// The extrapolation weight β that made the last point (0: the point was z_k itself).
    #[serde(default)]
    pub beta: f64,
}

impl Momentum {
    /// The memory after the first step `z_1` with combined residual `combined`.
    pub fn new(combined: f64, z: &[f64]) -> Self {
        Self {
            a: 1.0,
            combined,
            last: z.to_vec(),
            beta: 0.0,
        }
    }

    /// Forgets the momentum (a = 1, no residual to compare with), e.g. when ρ changes.
    pub fn reset(&mut self) {
        self.a = 1.0;
        self.combined = f64::MAX; // finite, so that the checkpoint (JSON) keeps it
    }

    /// Takes `z = z_k`, the image of the last point, and its combined residual; replaces `z`
    /// with the next point `ẑ_{k+1}`.
    pub fn advance(&mut self, combined: f64, restart_factor: f64, z: &mut [f64]) {
        let current = z.to_vec();
        if combined < restart_factor * self.combined {
            self.extrapolate(z);
            self.combined = combined;
        } else {
            // Restart from the last accepted iterate z_{k−1} — if z_k came from an
            // extrapolated point; otherwise z_{k−1} was that point, and z_k stays.
            if self.beta > 0.0 {
                z.copy_from_slice(&self.last);
            }
            self.a = 1.0;
            self.beta = 0.0;
            self.combined /= restart_factor;
        }
        self.last = current;
    }

    fn extrapolate(&mut self, z: &mut [f64]) {
        let a_next = (1.0 + (1.0 + 4.0 * self.a * self.a).sqrt()) / 2.0;
        let beta = (self.a - 1.0) / a_next;
        for (v, old) in z.iter_mut().zip(&self.last) {
            *v += beta * (*v - old);
        }
        self.a = a_next;
        self.beta = beta;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gradient descent on `½ zᵀ diag(h) z` with step 1: `T(z) = z − h ∘ z`.
    fn gradient_step(h: &[f64], z: &[f64]) -> Vec<f64> {
        z.iter().zip(h).map(|(v, c)| v - c * v).collect()
    }

    fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
    }

    /// Iterations until ‖z‖∞ < 1e-6 from z = 1 (at most `limit`).
    fn iterations(h: &[f64], momentum: bool, limit: usize) -> usize {
        let mut point = vec![1.0; h.len()];
        let mut memory: Option<Momentum> = None;
        for k in 1..=limit {
            let mut z = gradient_step(h, &point);
            let combined = squared_distance(&z, &point);
            if z.iter().all(|v| v.abs() < 1e-6) {
                return k;
            }
            if momentum {
                match &mut memory {
                    Some(m) => m.advance(combined, 0.999, &mut z),
                    None => memory = Some(Momentum::new(combined, &z)),
                }
            }
            point = z;
        }
        limit
    }

    #[test]
    fn momentum_needs_far_fewer_iterations_on_an_ill_conditioned_quadratic() {
        // Curvatures 1e-3 … 1: plain iteration contracts by 1 − 1e-3 in the flattest direction.
        let h: Vec<f64> = (0..10).map(|i| 10f64.powf(-3.0 * i as f64 / 9.0)).collect();
        let plain = iterations(&h, false, 100_000);
        let fast = iterations(&h, true, 100_000);
        assert!(plain > 10_000, "plain iteration took {plain}");
        assert!(fast * 10 < plain, "momentum {fast} vs plain {plain}");
    }

    #[test]
    fn a_growing_residual_restarts_from_the_previous_iterate() {
        let mut m = Momentum::new(1.0, &[0.0, 0.0]);
        let mut z = vec![1.0, 1.0];
        m.advance(0.5, 0.999, &mut z);
        // a_1 = 1: the first step after the start carries no momentum.
        assert_eq!(z, vec![1.0, 1.0]);
        let mut z = vec![2.0, 3.0];
        m.advance(0.25, 0.999, &mut z);
        let a2 = (1.0 + 5f64.sqrt()) / 2.0;
        let beta = (a2 - 1.0) / ((1.0 + (1.0 + 4.0 * a2 * a2).sqrt()) / 2.0);
        assert!((z[0] - (2.0 + beta)).abs() < 1e-15 && (z[1] - (3.0 + 2.0 * beta)).abs() < 1e-15);
        let mut z = vec![5.0, 5.0];
        m.advance(1.0, 0.999, &mut z);
        assert_eq!(z, vec![2.0, 3.0], "restart goes back to z_(k-1)");
        assert_eq!(m.a, 1.0);
        assert_eq!(m.last, vec![5.0, 5.0]);
        // The point just solved was z_(k-1) itself (no momentum after the restart): going
        // back would repeat that solve, so a rejected step keeps z_k.
        let mut z = vec![7.0, 7.0];
        m.advance(10.0, 0.999, &mut z);
        assert_eq!(z, vec![7.0, 7.0]);
        assert_eq!(m.last, vec![7.0, 7.0]);
    }
}
