//! Settings of the sequential trainers (`[sequential]` in a problem file). Defaults are the
//! homotopy paper's Lotka–Volterra black-box choices (Appendix F, Tables 1–4).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Which sequential trainer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrainMethod {
    /// Integrate from the first observation over the whole window; MSE loss.
    #[default]
    Vanilla,
    /// Synchronization–homotopy training (Algorithm 1 of the homotopy paper).
    Homotopy,
    /// Multiple shooting with a continuity penalty (Appendix D).
    Shooting,
}

impl TrainMethod {
    /// Every method, for messages.
    pub const ALL: [TrainMethod; 3] = [Self::Vanilla, Self::Homotopy, Self::Shooting];

    /// The name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vanilla => "vanilla",
            Self::Homotopy => "homotopy",
            Self::Shooting => "shooting",
        }
    }
}

impl fmt::Display for TrainMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TrainMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown method `{s}` (valid: vanilla, homotopy, shooting)"))
    }
}

/// Homotopy settings (Algorithm 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HomotopySettings {
    /// AdamW learning rate of this method (default: `sequential.learning_rate`).
    pub learning_rate: Option<f64>,
    /// Coupling strength k (default: 6).
    pub coupling: f64,
    /// Number of homotopy steps (default: 6).
    pub steps: usize,
    /// Epochs per homotopy step (default: 100).
    pub epochs_per_step: usize,
    /// Decrement ratio κ of the power-law schedule (default: 0.6).
    pub decrement_ratio: f64,
    /// Smoothing parameter p of the cubic smoothing spline, in (0, 1] (default: the `csaps`
    /// automatic choice 1/(1 + h³/6) for mean spacing h).
    pub smoothing: Option<f64>,
}

impl Default for HomotopySettings {
    fn default() -> Self {
        Self {
            learning_rate: None,
            coupling: 6.0,
            steps: 6,
            epochs_per_step: 100,
            decrement_ratio: 0.6,
            smoothing: None,
        }
    }
}

impl HomotopySettings {
    /// λ during `epoch`, as the paper's code (`PowerLawStepwiseSchedule`) runs Algorithm 1:
    /// λ = 1 in the first step, then `steps − 1` power-law decrements κ^j / Σ_{j<steps−1} κ^j,
    /// so that the last step trains the uncoupled model (λ = 0).
    pub fn lambda_at(&self, epoch: usize) -> f64 {
        let step = (epoch / self.epochs_per_step.max(1)).min(self.steps.saturating_sub(1));
        if step + 1 >= self.steps {
            return 0.0;
        }
        let decrements = self.steps - 1;
        let total: f64 = (0..decrements)
            .map(|j| self.decrement_ratio.powi(j as i32))
            .sum();
        let done: f64 = (0..step).map(|j| self.decrement_ratio.powi(j as i32)).sum();
        (1.0 - done / total).max(0.0)
    }
}

/// Multiple-shooting settings (Appendix D).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShootingSettings {
    /// AdamW learning rate of this method (default: `sequential.learning_rate`).
    pub learning_rate: Option<f64>,
    /// Number of segments m (default: 5).
    pub segments: usize,
    /// Continuity penalty β (default: 0.01).
    pub continuity: f64,
}

impl Default for ShootingSettings {
    fn default() -> Self {
        Self {
            learning_rate: None,
            segments: 5,
            continuity: 0.01,
        }
    }
}

/// `[sequential]`: trainer, optimizer and integrator settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SequentialSettings {
    /// Trainer (default: vanilla).
    pub method: TrainMethod,
    /// Epochs for vanilla and shooting (default: 4000); homotopy runs steps × epochs_per_step.
    pub epochs: usize,
    /// AdamW learning rate (default: 0.05).
    pub learning_rate: f64,
    /// AdamW decoupled weight decay (default: 0.01, PyTorch's AdamW default).
    pub weight_decay: f64,
    /// Dopri5 relative tolerance (default: 1e-7).
    pub rtol: f64,
    /// Dopri5 absolute tolerance (default: 1e-9).
    pub atol: f64,
    /// Step limit of one integration (default: 100,000).
    pub max_steps: usize,
    /// Homotopy settings.
    pub homotopy: HomotopySettings,
    /// Multiple-shooting settings.
    pub shooting: ShootingSettings,
    /// Pre-training: first train (vanilla) on this leading fraction of the training window
    /// (the simultaneous-collocation paper uses 0.2); 0 turns it off (default).
    pub pretrain_fraction: f64,
    /// Epochs of the pre-training phase (default: 500).
    pub pretrain_epochs: usize,
}

impl Default for SequentialSettings {
    fn default() -> Self {
        Self {
            method: TrainMethod::Vanilla,
            epochs: 4000,
            learning_rate: 0.05,
            weight_decay: 0.01,
            rtol: 1e-7,
            atol: 1e-9,
            max_steps: 100_000,
            homotopy: HomotopySettings::default(),
            shooting: ShootingSettings::default(),
            pretrain_fraction: 0.0,
            pretrain_epochs: 500,
        }
    }
}

impl SequentialSettings {
    /// Checks every field; the error names the first bad one (as `sequential.<field>`).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, why: String| Err((format!("sequential.{f}"), why));
        let positive = |v: f64| v.is_finite() && v > 0.0;
        for (f, v) in [
            ("learning_rate", self.learning_rate),
            ("rtol", self.rtol),
            ("atol", self.atol),
            ("homotopy.coupling", self.homotopy.coupling),
            ("homotopy.decrement_ratio", self.homotopy.decrement_ratio),
            (
                "homotopy.learning_rate",
                self.homotopy.learning_rate.unwrap_or(1.0),
            ),
            (
                "shooting.learning_rate",
                self.shooting.learning_rate.unwrap_or(1.0),
            ),
        ] {
            if !positive(v) {
                return bad(f, format!("must be a positive number, got {v}"));
            }
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(
                "weight_decay",
                format!("must be ≥ 0, got {}", self.weight_decay),
            );
        }
        if !(self.shooting.continuity.is_finite() && self.shooting.continuity >= 0.0) {
            return bad(
                "shooting.continuity",
                format!("must be ≥ 0, got {}", self.shooting.continuity),
            );
        }
        for (f, v) in [
            ("epochs", self.epochs),
            ("max_steps", self.max_steps),
            ("homotopy.steps", self.homotopy.steps),
            ("homotopy.epochs_per_step", self.homotopy.epochs_per_step),
            ("shooting.segments", self.shooting.segments),
        ] {
            if v == 0 {
                return bad(f, "must be at least 1".into());
            }
        }
        if !(self.pretrain_fraction >= 0.0 && self.pretrain_fraction < 1.0) {
            return bad(
                "pretrain_fraction",
                format!("must be in [0, 1), got {}", self.pretrain_fraction),
            );
        }
        if let Some(p) = self.homotopy.smoothing {
            if !(p > 0.0 && p <= 1.0) {
                return bad("homotopy.smoothing", format!("must be in (0, 1], got {p}"));
            }
        }
        Ok(())
    }

    /// The learning rate of the chosen method (its own, else the common one).
    pub fn method_learning_rate(&self) -> f64 {
        match self.method {
            TrainMethod::Homotopy => self.homotopy.learning_rate,
            TrainMethod::Shooting => self.shooting.learning_rate,
            TrainMethod::Vanilla => None,
        }
        .unwrap_or(self.learning_rate)
    }

    /// Total epochs of the chosen method.
    pub fn total_epochs(&self) -> usize {
        match self.method {
            TrainMethod::Homotopy => self.homotopy.steps * self.homotopy.epochs_per_step,
            _ => self.epochs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homotopy_schedule_follows_the_power_law() {
        let h = HomotopySettings::default(); // 6 steps × 100, κ = 0.6: 5 decrements
        let total: f64 = (0..5).map(|j| 0.6f64.powi(j)).sum();
        assert_eq!(h.lambda_at(0), 1.0);
        assert_eq!(h.lambda_at(99), 1.0);
        assert!((h.lambda_at(100) - (1.0 - 1.0 / total)).abs() < 1e-15);
        assert!((h.lambda_at(250) - (1.0 - 1.6 / total)).abs() < 1e-15);
        assert!((h.lambda_at(499) - 0.6f64.powi(4) / total).abs() < 1e-15);
        // The last step trains the uncoupled model.
        assert_eq!(h.lambda_at(500), 0.0);
        assert_eq!(h.lambda_at(10_000), 0.0);
        let one = HomotopySettings {
            steps: 1,
            ..Default::default()
        };
        assert_eq!(one.lambda_at(0), 0.0);
    }

    #[test]
    fn validation_names_the_field() {
        let s = SequentialSettings {
            learning_rate: -1.0,
            ..Default::default()
        };
        assert_eq!(s.validate().unwrap_err().0, "sequential.learning_rate");
        assert!("homotopy".parse::<TrainMethod>().is_ok());
        let e = "adjoint".parse::<TrainMethod>().unwrap_err();
        assert!(e.contains("vanilla, homotopy, shooting"), "{e}");
    }
}
