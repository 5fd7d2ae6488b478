//! Settings of an ADMM run (`[admm]` in a problem file).

use serde::{Deserialize, Serialize};

/// What to do when a sub-problem fails (IPOPT error, no convergence, non-finite θ).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Keep the batch's last good θ_i (and its warm start) and go on (default).
    #[default]
    Keep,
    /// Stop with an error naming the batch and iteration.
    Stop,
}

/// `[admm]`: batches and the consensus iteration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmmSettings {
    /// Batch windows `[start, end]` within the training window (default: none — required).
    pub windows: Vec<[f64; 2]>,
    /// Collocation points per batch (default: the problem's collocation points × the batch's
    /// share of the training window).
    pub points: Option<usize>,
    /// Further trajectories in the consensus: problem files (paths relative to this file), each
    /// with its own data source (another initial state, another CSV, …) and the same model;
    /// each is split by its own `[admm] windows`, or is one batch over its training window
    /// (default: none).
    pub trajectories: Vec<std::path::PathBuf>,
    /// Penalty ρ (default: 1).
    pub rho: f64,
    /// Iteration limit (default: 50).
    pub max_iter: usize,
    /// Absolute tolerance ε_abs (default: 1e-4).
    pub eps_abs: f64,
    /// Relative tolerance ε_rel (default: 1e-4).
    pub eps_rel: f64,
    /// Residual balancing of ρ (default: true).
    pub adaptive_rho: bool,
    /// Balancing threshold μ (default: 10).
    pub balance_threshold: f64,
    /// Balancing factor τ (default: 2).
    pub balance_factor: f64,
    /// Over-relaxation α in (0, 2) (Boyd et al. §3.4.3): the consensus and dual updates use
    /// `α θ_i + (1 − α) θ̄` in place of `θ_i` (default: 1, plain ADMM; 1.5–1.8 often faster).
    pub relaxation: f64,
    /// Warm-start sub-problems from their previous solution (default: true).
    pub warm_start: bool,
    /// What a failed sub-problem does to the run (default: keep).
    pub on_failure: OnFailure,
    /// Anderson acceleration of the ADMM map `(θ̄, u/ρ) ↦ (θ̄⁺, u⁺/ρ)` with this many previous
    /// steps (0: off, the default). Reset whenever ρ changes or the fixed-point residual more
    /// than doubles.
    pub anderson_memory: usize,
    /// Nesterov extrapolation of `(θ̄, u)` with restart (Goldstein et al. 2014, "Fast
    /// alternating direction optimization methods", Alg. 8): after each iteration the next
    /// sub-problems are solved at `z_k + (a_k − 1)/a_{k+1} (z_k − z_{k−1})`; when the combined
    /// residual `‖u_k − û_k‖²/ρ + ρN‖θ̄_k − θ̂̄_k‖²` fails to fall below `restart_factor` times
    /// its last value the momentum restarts from `z_{k−1}` (from `z_k` when the last point was
    /// not extrapolated, which would only repeat the last solve) (default: false).
    pub momentum: bool,
    /// Restart factor η of the momentum (default: 0.999).
    pub restart_factor: f64,
}

impl Default for AdmmSettings {
    fn default() -> Self {
        Self {
            windows: Vec::new(),
            points: None,
            trajectories: Vec::new(),
            rho: 1.0,
            max_iter: 50,
            eps_abs: 1e-4,
            eps_rel: 1e-4,
            adaptive_rho: true,
            balance_threshold: 10.0,
            balance_factor: 2.0,
            relaxation: 1.0,
            warm_start: true,
            on_failure: OnFailure::Keep,
            anderson_memory: 0,
            momentum: false,
            restart_factor: 0.999,
        }
    }
}

impl AdmmSettings {
    /// Checks every field against the problem's training window; the error names the field.
    pub fn validate(&self, t0: f64, t1: f64) -> Result<(), (String, String)> {
        let bad = |f: &str, why: String| Err((format!("admm.{f}"), why));
        if self.windows.is_empty() {
            return bad(
                "windows",
                "give at least one batch window [start, end]".into(),
            );
        }
        for (i, w) in self.windows.iter().enumerate() {
            if !(w[0].is_finite() && w[1].is_finite() && w[0] < w[1]) {
                return bad(
                    "windows",
                    format!("window {i} {w:?} must be finite and increasing"),
                );
            }
            if w[0] < t0 - 1e-12 || w[1] > t1 + 1e-12 {
                return bad(
                    "windows",
                    format!("window {i} {w:?} leaves the training window [{t0}, {t1}]"),
                );
            }
        }
        for (f, v) in [
            ("rho", self.rho),
            ("eps_abs", self.eps_abs),
            ("eps_rel", self.eps_rel),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(f, format!("must be a positive number, got {v}"));
            }
        }
        if self.rho > 1e10 {
            return bad(
                "rho",
                format!(
                    "must be at most 1e10 (the proximal term would swamp the data), got {:e}",
                    self.rho
                ),
            );
        }
        if !(self.balance_threshold > 1.0 && self.balance_factor > 1.0) {
            return bad(
                "balance_factor",
                "balance_threshold and balance_factor must be > 1".into(),
            );
        }
        if self.max_iter == 0 {
            return bad("max_iter", "must be at least 1".into());
        }
        if let Some(n) = self.points {
            if !(3..=5000).contains(&n) {
                return bad(
                    "points",
                    format!("need 3 to 5000 collocation points per batch, got {n}"),
                );
            }
        }
        if self.anderson_memory > 50 {
            return bad(
                "anderson_memory",
                format!("must be at most 50, got {}", self.anderson_memory),
            );
        }
        if self.momentum && self.anderson_memory > 0 {
            return bad(
                "momentum",
                "choose one acceleration: momentum or anderson_memory".into(),
            );
        }
        if !(self.restart_factor > 0.0 && self.restart_factor <= 1.0) {
            return bad(
                "restart_factor",
                format!("must be in (0, 1], got {}", self.restart_factor),
            );
        }
        if !(self.relaxation > 0.0 && self.relaxation < 2.0) {
            return bad(
                "relaxation",
                format!("must be in (0, 2), got {}", self.relaxation),
            );
        }
        Ok(())
    }
}
