//! Fixed affine coordinates in which a network is trained: states `z = (y − μ)/σ` per state,
//! time `τ = (t − t₀)/T`. A model with a [`Normalization`] is the ODE `dz/dτ = g_θ(z[, τ])`
//! of its network `g_θ` in those coordinates; in the original ones it reads
//! `dy/dt = (σ/T) ⊙ g_θ((y − μ)/σ[, (t − t₀)/T])`.
//!
//! Training a network in standardized coordinates conditions the problem: inputs of order
//! one, outputs of order one, collocation states of order one (see the Lorenz runs in docs/collocation.md).

use crate::ModelError;
use serde::{Deserialize, Serialize};

/// A fixed change of coordinates of states and time (not trained).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalization {
    /// `μ`: subtracted from each state.
    pub state_shift: Vec<f64>,
    /// `σ`: each shifted state is divided by it (positive).
    pub state_scale: Vec<f64>,
    /// `t₀`: subtracted from the time.
    pub time_shift: f64,
    /// `T`: the shifted time is divided by it (positive).
    pub time_scale: f64,
}

impl Normalization {
    /// Number of states.
    pub fn dim(&self) -> usize {
        self.state_shift.len()
    }

    /// Checks lengths (`states` states), finiteness and positive scales.
    pub fn validate(&self, states: usize) -> Result<(), ModelError> {
        if self.state_shift.len() != states || self.state_scale.len() != states {
            return Err(ModelError::Mismatch(format!(
                "the normalization has {} shifts and {} scales for {states} states",
                self.state_shift.len(),
                self.state_scale.len()
            )));
        }
        let entries = self
            .state_shift
            .iter()
            .chain(&self.state_scale)
            .chain([&self.time_shift, &self.time_scale]);
        if let Some(index) = entries.clone().position(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite {
                what: "normalization",
                index,
            });
        }
        if self.state_scale.iter().any(|s| *s <= 0.0) || self.time_scale <= 0.0 {
            return Err(ModelError::Mismatch(format!(
                "normalization scales must be positive, got states {:?} and time {}",
                self.state_scale, self.time_scale
            )));
        }
        Ok(())
    }

    /// Standardized coordinates for a second-order model with positions `q` (first half) and
    /// velocities `v` (second half): positions shifted by `position_shift` and divided by
    /// `position_scale`, time `τ = (t − t₀)/T`, velocities unshifted and divided by
    /// `position_scale/T` — the coordinates in which `q' = v` still reads `z_q' = z_v`.
    pub fn second_order(
        position_shift: &[f64],
        position_scale: &[f64],
        time_shift: f64,
        time_scale: f64,
    ) -> Self {
        let mut state_shift = position_shift.to_vec();
        state_shift.extend(std::iter::repeat_n(0.0, position_shift.len()));
        let mut state_scale = position_scale.to_vec();
        state_scale.extend(position_scale.iter().map(|s| s / time_scale));
        Self {
            state_shift,
            state_scale,
            time_shift,
            time_scale,
        }
    }

    /// True when these coordinates keep a second-order structure (see
    /// [`Normalization::second_order`]).
    pub fn keeps_second_order(&self) -> bool {
        let d = self.dim();
        let h = d / 2;
        d % 2 == 0
            && (0..h).all(|i| {
                let expected = self.state_scale[i] / self.time_scale;
                self.state_shift[h + i] == 0.0
                    && (self.state_scale[h + i] - expected).abs() <= 1e-12 * expected.abs()
            })
    }

    /// The known matrix of a gray-box model `y' = A·y + N` in these coordinates:
    /// `A' = T Σ⁻¹ A Σ` (`Σ = diag σ`), so that `z' = A'·z + g` (the constant `(T/σ)·A·μ` is
    /// part of the network's output `g`).
    pub fn gray_box_matrix(&self, a: &[Vec<f64>]) -> Vec<Vec<f64>> {
        a.iter()
            .enumerate()
            .map(|(i, row)| {
                row.iter()
                    .enumerate()
                    .map(|(j, v)| self.time_scale * v * self.state_scale[j] / self.state_scale[i])
                    .collect()
            })
            .collect()
    }

    /// `z = (y − μ)/σ`.
    pub fn state_to_normalized(&self, y: &[f64]) -> Vec<f64> {
        y.iter()
            .zip(self.state_shift.iter().zip(&self.state_scale))
            .map(|(y, (m, s))| (y - m) / s)
            .collect()
    }

    /// `y = μ + σ z`.
    pub fn state_from_normalized(&self, z: &[f64]) -> Vec<f64> {
        z.iter()
            .zip(self.state_shift.iter().zip(&self.state_scale))
            .map(|(z, (m, s))| m + s * z)
            .collect()
    }

    /// `τ = (t − t₀)/T`.
    pub fn time_to_normalized(&self, t: f64) -> f64 {
        (t - self.time_shift) / self.time_scale
    }

    /// `t = t₀ + T τ`.
    pub fn time_from_normalized(&self, tau: f64) -> f64 {
        self.time_shift + self.time_scale * tau
    }

    /// Turns `dz/dτ` into `dy/dt = (σ/T) dz/dτ`, in place.
    pub fn rate_from_normalized(&self, rate: &mut [f64]) {
        for (r, s) in rate.iter_mut().zip(&self.state_scale) {
            *r *= s / self.time_scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Normalization {
        Normalization {
            state_shift: vec![1.0, -2.0],
            state_scale: vec![0.5, 4.0],
            time_shift: 3.0,
            time_scale: 0.25,
        }
    }

    #[test]
    fn maps_invert_each_other() {
        let n = example();
        let y = [0.3, 7.0];
        let back = n.state_from_normalized(&n.state_to_normalized(&y));
        assert!(back.iter().zip(&y).all(|(a, b)| (a - b).abs() < 1e-15));
        assert!((n.time_from_normalized(n.time_to_normalized(5.5)) - 5.5).abs() < 1e-15);
        assert_eq!(n.state_to_normalized(&[1.0, -2.0]), vec![0.0, 0.0]);
        let mut rate = vec![1.0, 1.0];
        n.rate_from_normalized(&mut rate);
        assert_eq!(rate, vec![2.0, 16.0]);
    }

    #[test]
    fn second_order_coordinates_keep_q_prime_equal_v() {
        let n = Normalization::second_order(&[1.0, -2.0], &[0.5, 2.0], 0.0, 0.25);
        assert!(n.keeps_second_order());
        assert_eq!(n.state_scale, vec![0.5, 2.0, 2.0, 8.0]);
        // dz_q/dτ = (T/σ_q) dq/dt = (T/σ_q) v = z_v.
        let (q, v) = (0.3, 1.7);
        let zv = n.state_to_normalized(&[q, 0.0, v, 0.0])[2];
        assert!((n.time_scale / n.state_scale[0] * v - zv).abs() < 1e-15);
        assert!(!example().keeps_second_order());
    }

    #[test]
    fn validation_names_the_problem() {
        let n = example();
        assert!(n.validate(2).is_ok());
        assert!(matches!(n.validate(3), Err(ModelError::Mismatch(_))));
        let mut bad = example();
        bad.state_scale[1] = 0.0;
        assert!(matches!(bad.validate(2), Err(ModelError::Mismatch(_))));
        bad.state_scale[1] = f64::NAN;
        assert!(matches!(
            bad.validate(2),
            Err(ModelError::NonFinite { index: 3, .. })
        ));
    }
}
