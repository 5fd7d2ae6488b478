//! First-order optimizers for the sequential trainers: Adam (Kingma & Ba, 2015) and AdamW
//! (decoupled weight decay, Loshchilov & Hutter, 2019).

use serde::{Deserialize, Serialize};

/// Adam settings; `weight_decay > 0` gives AdamW.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamSettings {
    /// Step size (default: 1e-3).
    pub learning_rate: f64,
    /// First-moment decay β₁ (default: 0.9).
    pub beta1: f64,
    /// Second-moment decay β₂ (default: 0.999).
    pub beta2: f64,
    /// Denominator guard ε (default: 1e-8).
    pub epsilon: f64,
    /// Decoupled weight decay (AdamW; default: 0 = plain Adam).
    pub weight_decay: f64,
}

impl Default for AdamSettings {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Adam/AdamW state for one parameter vector.
#[derive(Clone, Debug)]
pub struct Adam {
    /// Settings.
    pub settings: AdamSettings,
    m: Vec<f64>,
    v: Vec<f64>,
    steps: u32,
}

impl Adam {
    /// Fresh state for `n` parameters.
    pub fn new(settings: AdamSettings, n: usize) -> Self {
        Self {
            settings,
            m: vec![0.0; n],
            v: vec![0.0; n],
            steps: 0,
        }
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// One update of `params` with the gradient `grad` (bias-corrected moments).
    pub fn step(&mut self, params: &mut [f64], grad: &[f64]) {
        assert_eq!(params.len(), self.m.len(), "Adam: parameter length changed");
        assert_eq!(grad.len(), self.m.len(), "Adam: gradient length differs");
        let s = &self.settings;
        self.steps += 1;
        let c1 = 1.0 - s.beta1.powi(self.steps as i32);
        let c2 = 1.0 - s.beta2.powi(self.steps as i32);
        for i in 0..params.len() {
            self.m[i] = s.beta1 * self.m[i] + (1.0 - s.beta1) * grad[i];
            self.v[i] = s.beta2 * self.v[i] + (1.0 - s.beta2) * grad[i] * grad[i];
            let m_hat = self.m[i] / c1;
            let v_hat = self.v[i] / c2;
            params[i] -= s.learning_rate * (m_hat / (v_hat.sqrt() + s.epsilon))
                + s.learning_rate * s.weight_decay * params[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_each_parameter_by_the_learning_rate() {
        // Bias correction makes the first step ±lr·g/(|g|+ε) ≈ ±lr.
        let mut adam = Adam::new(AdamSettings::default(), 3);
        let mut p = vec![1.0, -2.0, 0.5];
        adam.step(&mut p, &[0.3, -5.0, 1e-3]);
        assert!((p[0] - (1.0 - 1e-3)).abs() < 1e-9);
        assert!((p[1] - (-2.0 + 1e-3)).abs() < 1e-9);
        assert!((p[2] - (0.5 - 1e-3 * 1e-3 / (1e-3 + 1e-8))).abs() < 1e-12);
    }

    #[test]
    fn minimizes_an_ill_conditioned_quadratic() {
        // f = ½ Σ c_i (x_i − 1)², c spanning 4 orders of magnitude.
        let c = [1e-2, 1.0, 1e2];
        let mut adam = Adam::new(
            AdamSettings {
                learning_rate: 0.05,
                ..Default::default()
            },
            3,
        );
        let mut x = vec![5.0, -3.0, 0.0];
        for _ in 0..5000 {
            let g: Vec<f64> = x.iter().zip(&c).map(|(x, c)| c * (x - 1.0)).collect();
            adam.step(&mut x, &g);
        }
        for xi in &x {
            assert!((xi - 1.0).abs() < 1e-2, "{x:?}");
        }
        assert_eq!(adam.steps(), 5000);
    }

    #[test]
    fn adamw_decays_weights_without_gradient() {
        let mut adam = Adam::new(
            AdamSettings {
                learning_rate: 0.1,
                weight_decay: 0.5,
                ..Default::default()
            },
            1,
        );
        let mut p = vec![2.0];
        adam.step(&mut p, &[0.0]);
        assert!((p[0] - 2.0 * (1.0 - 0.05)).abs() < 1e-12);
    }
}
