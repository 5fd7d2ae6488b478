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
        // Σ_{j<n} κ^j: term by term for ordinary step counts (the sums every published figure
        // was made with), in closed form for huge ones (the step count is the user's).
        let kappa = self.decrement_ratio;
        let geometric = |n: usize| -> f64 {
            if n <= 4096 {
                (0..n).map(|j| kappa.powi(j as i32)).sum()
            } else if kappa == 1.0 {
                n as f64
            } else {
                (1.0 - kappa.powf(n as f64)) / (1.0 - kappa)
            }
        };
        let total = geometric(self.steps - 1);
        let done = geometric(step);
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

/// `[sequential.sweep]`: hyper-parameter grids for `colloc train --sweep`, the homotopy paper's
/// selection protocol (Appendix F): every combination of the chosen method's lists is trained
/// on the problem's data and seed, and the one with the lowest training MSE is kept. An empty
/// list keeps the value of the file (default: every list empty, nothing to sweep).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SweepSettings {
    /// Vanilla learning rates (`sequential.learning_rate`; Table 1).
    pub learning_rate: Vec<f64>,
    /// Homotopy learning rates (`sequential.homotopy.learning_rate`; Table 4).
    pub homotopy_learning_rate: Vec<f64>,
    /// Homotopy coupling strengths k (`sequential.homotopy.coupling`; Table 4).
    pub homotopy_coupling: Vec<f64>,
    /// Multiple-shooting learning rates (`sequential.shooting.learning_rate`; Table 2).
    pub shooting_learning_rate: Vec<f64>,
    /// Multiple-shooting continuity penalties β (`sequential.shooting.continuity`; Table 2).
    pub shooting_continuity: Vec<f64>,
}

/// Puts one swept value into its field.
type Setter = fn(&mut SequentialSettings, f64);

/// One combination of a sweep: the swept values by name and the settings that train it.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepCandidate {
    /// `(field, value)` of each swept hyper-parameter, as named in `[sequential.sweep]`.
    pub values: Vec<(&'static str, f64)>,
    /// The file's settings with those values put in.
    pub settings: SequentialSettings,
}

impl SweepSettings {
    /// The lists of `method` by field name, each with the setter of its field, in the order
    /// the combinations vary (last fastest).
    fn grids(&self, method: TrainMethod) -> Vec<(&'static str, &[f64], Setter)> {
        let all: Vec<(&'static str, &[f64], Setter)> = match method {
            TrainMethod::Vanilla => {
                vec![("learning_rate", &self.learning_rate, |s, v| {
                    s.learning_rate = v
                })]
            }
            TrainMethod::Homotopy => vec![
                (
                    "homotopy_learning_rate",
                    &self.homotopy_learning_rate,
                    |s, v| s.homotopy.learning_rate = Some(v),
                ),
                ("homotopy_coupling", &self.homotopy_coupling, |s, v| {
                    s.homotopy.coupling = v
                }),
            ],
            TrainMethod::Shooting => vec![
                (
                    "shooting_learning_rate",
                    &self.shooting_learning_rate,
                    |s, v| s.shooting.learning_rate = Some(v),
                ),
                ("shooting_continuity", &self.shooting_continuity, |s, v| {
                    s.shooting.continuity = v
                }),
            ],
        };
        all.into_iter().filter(|(_, v, _)| !v.is_empty()).collect()
    }

    /// Every combination of the lists of `base.method`, each as `base` with the values put in;
    /// empty when the method has no list.
    pub fn candidates(&self, base: &SequentialSettings) -> Vec<SweepCandidate> {
        let grids = self.grids(base.method);
        if grids.is_empty() {
            return Vec::new();
        }
        let mut out = vec![SweepCandidate {
            values: Vec::new(),
            settings: base.clone(),
        }];
        for (name, list, set) in grids {
            out = out
                .into_iter()
                .flat_map(|c| {
                    list.iter().map(move |&v| {
                        let mut next = c.clone();
                        next.values.push((name, v));
                        set(&mut next.settings, v);
                        next
                    })
                })
                .collect();
        }
        out
    }

    /// Every listed value valid for its field (as `sequential.sweep.<field>`).
    fn validate(&self) -> Result<(), (String, String)> {
        for method in TrainMethod::ALL {
            for (name, list, _) in self.grids(method) {
                let continuity = name == "shooting_continuity";
                if let Some(v) = list
                    .iter()
                    .find(|v| !(v.is_finite() && (**v > 0.0 || (continuity && **v == 0.0))))
                {
                    let need = if continuity { "≥ 0" } else { "positive" };
                    return Err((
                        format!("sequential.sweep.{name}"),
                        format!("every value must be {need}, got {v}"),
                    ));
                }
            }
        }
        Ok(())
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
    /// Learn the initial state with θ: the trajectory starts from the first observation plus
    /// a correction trained by AdamW (its weight decay pulls it back towards the observation),
    /// by exact gradients with respect to the initial state. Off (default), every trainer
    /// starts from the first observation, as the homotopy paper's do.
    pub learn_initial_state: bool,
    /// Hyper-parameter grids for `colloc train --sweep` (default: none).
    pub sweep: SweepSettings,
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
            learn_initial_state: false,
            sweep: SweepSettings::default(),
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
        self.sweep.validate()
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
            TrainMethod::Homotopy => self
                .homotopy
                .steps
                .saturating_mul(self.homotopy.epochs_per_step),
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
        // Huge step counts: the closed form, continuous with the sums at the switch.
        for kappa in [0.6, 1.0, 1.0001] {
            let at = |steps: usize, epoch: usize| {
                HomotopySettings {
                    steps,
                    epochs_per_step: 1,
                    decrement_ratio: kappa,
                    ..Default::default()
                }
                .lambda_at(epoch)
            };
            for epoch in [1, 2, 100, 4000] {
                let (summed, closed) = (at(4097, epoch), at(4098, epoch));
                assert!((summed - closed).abs() < 1e-3, "κ {kappa}, epoch {epoch}");
            }
            let huge = at(100_000_000_000, 50);
            assert!(huge > 0.0 && huge <= 1.0, "κ {kappa}: {huge}");
        }
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
        let s = SequentialSettings {
            sweep: SweepSettings {
                shooting_continuity: vec![0.0, -0.01],
                ..Default::default()
            },
            ..Default::default()
        };
        let (field, why) = s.validate().unwrap_err();
        assert_eq!(field, "sequential.sweep.shooting_continuity");
        assert!(why.contains("-0.01"), "{why}");
    }

    #[test]
    fn sweep_candidates_cover_the_grid_of_the_method() {
        let sweep = SweepSettings {
            learning_rate: vec![0.01],
            homotopy_learning_rate: vec![0.01, 0.05],
            homotopy_coupling: vec![2.0, 4.0, 6.0],
            ..Default::default()
        };
        let base = SequentialSettings {
            method: TrainMethod::Homotopy,
            sweep: sweep.clone(),
            ..Default::default()
        };
        let c = sweep.candidates(&base);
        assert_eq!(c.len(), 6);
        // The last list varies fastest; the values are put into the method's own fields.
        assert_eq!(
            c[1].values,
            vec![("homotopy_learning_rate", 0.01), ("homotopy_coupling", 4.0)]
        );
        assert_eq!(c[1].settings.homotopy.learning_rate, Some(0.01));
        assert_eq!(c[1].settings.homotopy.coupling, 4.0);
        assert_eq!(c[5].settings.method_learning_rate(), 0.05);
        assert_eq!(c[5].settings.learning_rate, base.learning_rate);
        // Shooting has no list here: nothing to sweep.
        let shooting = SequentialSettings {
            method: TrainMethod::Shooting,
            ..base
        };
        assert!(sweep.candidates(&shooting).is_empty());
    }
}
