//! IPOPT settings: typed fields for what colloc understands, plus raw options passed verbatim.

use super::dense_kkt::KktPolicy;
use super::IpoptError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How the Hessian of the Lagrangian is obtained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HessianMode {
    /// Exact second derivatives from the evaluator.
    #[default]
    Exact,
    /// IPOPT's limited-memory quasi-Newton approximation; the evaluator's Hessian is not used.
    LimitedMemory,
}

/// A raw IPOPT option value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IpoptOption {
    /// Integer option.
    Int(i32),
    /// Numeric option.
    Num(f64),
    /// String option.
    Str(String),
}

/// IPOPT settings. Every field has a default, so a partial TOML table loads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpoptSettings {
    /// IPOPT console output level, 0–12 (default: 0, quiet; the banner is always suppressed).
    pub print_level: i32,
    /// Convergence tolerance `tol` (default: 1e-8).
    pub tol: f64,
    /// "Acceptable" tolerance `acceptable_tol` (default: 1e-6).
    pub acceptable_tol: f64,
    /// Iteration limit `max_iter` (default: 3000).
    pub max_iter: usize,
    /// CPU time limit in seconds `max_cpu_time` (default: none).
    pub max_cpu_time: Option<f64>,
    /// Exact or limited-memory Hessian (default: exact).
    pub hessian: HessianMode,
    /// Linear solver for IPOPT's KKT systems (default: "auto"). "mumps": IPOPT's MUMPS;
    /// "dense": LAPACK's Bunch–Kaufman LDLᵀ on the full matrix (BLAS-3 speed; memory 8·n²
    /// bytes); "blocks": block-arrow elimination along the NLP's block partition (finite
    /// elements; MUMPS when the NLP has none); "auto": blocks when the NLP supplies a
    /// partition, else dense when the KKT matrix has at most 5000 rows and its lower triangle
    /// is at least 20 % nonzero (global collocation), else MUMPS. IPOPT's other solvers
    /// ([`EXTERNAL_LINEAR_SOLVERS`]: HSL's, Pardiso, WSMP) are passed to its `linear_solver`
    /// and work where IPOPT can load their libraries.
    pub linear_solver: String,
    /// MUMPS's relative pivot threshold `mumps_pivtol` in [0, 1] (default: none, IPOPT's
    /// 1e-6). Lower thresholds delay fewer pivots (faster factorizations) at the price of
    /// accuracy; IPOPT raises the threshold itself (up to `mumps_pivtolmax`) when a solution is
    /// inaccurate. Passed only when the KKT systems go to MUMPS.
    pub mumps_pivtol: Option<f64>,
    /// Barrier update `mu_strategy`, "monotone" or "adaptive" (default: "monotone").
    pub mu_strategy: String,
    /// Initial barrier parameter `mu_init` for cold starts (default: IPOPT's, 0.1).
    pub mu_init: Option<f64>,
    /// `warm_start_bound_push` for warm-started solves (default: 1e-9).
    pub warm_start_bound_push: f64,
    /// `warm_start_bound_frac` for warm-started solves (default: 1e-9).
    pub warm_start_bound_frac: f64,
    /// `warm_start_mult_bound_push` for warm-started solves (default: 1e-9).
    pub warm_start_mult_bound_push: f64,
    /// `mu_init` for warm-started solves with multipliers (default: 1e-9).
    pub warm_start_mu_init: f64,
    /// Skip IPOPT's unperturbed trial factorization (δ_w = 0) of an iteration's KKT matrix once
    /// that trial has had the wrong inertia in two iterations in a row, and go straight to the
    /// inertia correction (default: true; colloc answers IPOPT's MUMPS calls, so this holds for
    /// every linear solver). Saves a factorization per iteration on nonconvex fits, where
    /// almost every iteration needs a correction; the steps differ slightly from IPOPT's
    /// (README, "KKT solvers"; docs/kkt-solvers.md).
    pub skip_unperturbed_trial: bool,
    /// File that receives IPOPT's log at `file_print_level` (default: none).
    pub output_file: Option<PathBuf>,
    /// Output level of `output_file`, 0–12 (default: 5).
    pub file_print_level: i32,
    /// Further IPOPT options, passed verbatim after the typed ones (default: none).
    pub options: BTreeMap<String, IpoptOption>,
}

impl Default for IpoptSettings {
    fn default() -> Self {
        Self {
            print_level: 0,
            tol: 1e-8,
            acceptable_tol: 1e-6,
            max_iter: 3000,
            max_cpu_time: None,
            hessian: HessianMode::Exact,
            linear_solver: "auto".to_string(),
            mumps_pivtol: None,
            mu_strategy: "monotone".to_string(),
            mu_init: None,
            warm_start_bound_push: 1e-9,
            warm_start_bound_frac: 1e-9,
            warm_start_mult_bound_push: 1e-9,
            warm_start_mu_init: 1e-9,
            skip_unperturbed_trial: true,
            output_file: None,
            file_print_level: 5,
            options: BTreeMap::new(),
        }
    }
}

/// The `linear_solver` names colloc answers itself (MUMPS is linked with IPOPT).
pub const COLLOC_LINEAR_SOLVERS: [&str; 4] = ["auto", "dense", "blocks", "mumps"];

/// IPOPT's other `linear_solver` names: usable only where IPOPT finds their libraries (HSL's
/// `libhsl.so`, Pardiso, WSMP), which Debian's Ipopt does not ship.
pub const EXTERNAL_LINEAR_SOLVERS: [&str; 7] =
    ["ma27", "ma57", "ma77", "ma86", "ma97", "pardiso", "wsmp"];

impl IpoptSettings {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), IpoptError> {
        let bad = |field: &'static str, reason: String| {
            Err(IpoptError::InvalidSettings { field, reason })
        };
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !(0..=12).contains(&self.print_level) {
            return bad(
                "print_level",
                format!("must be in 0..=12, got {}", self.print_level),
            );
        }
        if !(0..=12).contains(&self.file_print_level) {
            return bad(
                "file_print_level",
                format!("must be in 0..=12, got {}", self.file_print_level),
            );
        }
        for (field, v) in [
            ("tol", self.tol),
            ("acceptable_tol", self.acceptable_tol),
            ("warm_start_bound_push", self.warm_start_bound_push),
            ("warm_start_bound_frac", self.warm_start_bound_frac),
            (
                "warm_start_mult_bound_push",
                self.warm_start_mult_bound_push,
            ),
            ("warm_start_mu_init", self.warm_start_mu_init),
        ] {
            if !positive(v) {
                return bad(field, format!("must be a positive number, got {v}"));
            }
        }
        if let Some(v) = self.max_cpu_time.filter(|v| !positive(*v)) {
            return bad(
                "max_cpu_time",
                format!("must be a positive number of seconds, got {v}"),
            );
        }
        if let Some(t) = self.mumps_pivtol.filter(|t| !(0.0..=1.0).contains(t)) {
            return bad("mumps_pivtol", format!("must be in [0, 1], got {t}"));
        }
        if let Some(v) = self.mu_init.filter(|v| !positive(*v)) {
            return bad("mu_init", format!("must be a positive number, got {v}"));
        }
        if self.max_iter > i32::MAX as usize {
            return bad(
                "max_iter",
                format!("must be at most {}, got {}", i32::MAX, self.max_iter),
            );
        }
        let solver = self.linear_solver.as_str();
        if !COLLOC_LINEAR_SOLVERS.contains(&solver) && !EXTERNAL_LINEAR_SOLVERS.contains(&solver) {
            return bad(
                "linear_solver",
                format!(
                    "unknown linear solver {solver:?} (valid: {}; where IPOPT can load them: {})",
                    COLLOC_LINEAR_SOLVERS.join(", "),
                    EXTERNAL_LINEAR_SOLVERS.join(", ")
                ),
            );
        }
        if self.mu_strategy.is_empty() || self.mu_strategy.contains('\0') {
            return bad(
                "mu_strategy",
                format!("must be a non-empty name, got {:?}", self.mu_strategy),
            );
        }
        if let Some((name, _)) = self
            .options
            .iter()
            .find(|(k, _)| k.is_empty() || k.contains('\0'))
        {
            return bad("options", format!("invalid option name {name:?}"));
        }
        Ok(())
    }

    /// The linear solver is one IPOPT loads from a library of its own (HSL, Pardiso, WSMP).
    pub(crate) fn external_linear_solver(&self) -> Option<&str> {
        let s = self.linear_solver.as_str();
        EXTERNAL_LINEAR_SOLVERS.contains(&s).then_some(s)
    }

    /// The name IPOPT's `linear_solver` option gets: the dense solver takes MUMPS's place.
    fn ipopt_linear_solver(&self) -> &str {
        match self.linear_solver.as_str() {
            "auto" | "dense" | "blocks" => "mumps",
            other => other,
        }
    }

    /// How the KKT systems of a solve with these settings are factorized.
    pub(crate) fn kkt_policy(&self) -> KktPolicy {
        match self.linear_solver.as_str() {
            "dense" => KktPolicy::Dense,
            "blocks" => KktPolicy::Blocks,
            "auto" => KktPolicy::Auto {
                max_n: 5000,
                min_density: 0.2,
            },
            _ => KktPolicy::Mumps,
        }
    }

    /// The options to hand to IPOPT, in order: typed fields, warm-start fields (when warm
    /// starting with multipliers), then the raw table.
    pub(crate) fn to_options(&self, warm_multipliers: bool) -> Vec<(String, IpoptOption)> {
        use IpoptOption::{Int, Num, Str};
        let mut o: Vec<(String, IpoptOption)> = vec![
            ("sb".into(), Str("yes".into())),
            ("print_level".into(), Int(self.print_level)),
            ("tol".into(), Num(self.tol)),
            ("acceptable_tol".into(), Num(self.acceptable_tol)),
            ("max_iter".into(), Int(self.max_iter as i32)),
            (
                "linear_solver".into(),
                Str(self.ipopt_linear_solver().into()),
            ),
            ("mu_strategy".into(), Str(self.mu_strategy.clone())),
        ];
        if let Some(t) = self.max_cpu_time {
            o.push(("max_cpu_time".into(), Num(t)));
        }
        if let Some(t) = self
            .mumps_pivtol
            .filter(|_| self.ipopt_linear_solver() == "mumps")
        {
            o.push(("mumps_pivtol".into(), Num(t)));
        }
        if self.hessian == HessianMode::LimitedMemory {
            o.push(("hessian_approximation".into(), Str("limited-memory".into())));
        }
        if let Some(mu) = self.mu_init {
            o.push(("mu_init".into(), Num(mu)));
        }
        if warm_multipliers {
            o.push(("warm_start_init_point".into(), Str("yes".into())));
            o.push((
                "warm_start_bound_push".into(),
                Num(self.warm_start_bound_push),
            ));
            o.push((
                "warm_start_bound_frac".into(),
                Num(self.warm_start_bound_frac),
            ));
            o.push((
                "warm_start_mult_bound_push".into(),
                Num(self.warm_start_mult_bound_push),
            ));
            o.push(("mu_init".into(), Num(self.warm_start_mu_init)));
        }
        o.extend(self.options.iter().map(|(k, v)| (k.clone(), v.clone())));
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_toml_loads_and_unknown_fields_are_rejected() {
        let s: IpoptSettings = toml_like(
            r#"{"tol": 1e-4, "options": {"bound_push": 0.01, "nlp_scaling_method": "none", "max_soc": 2}}"#,
        );
        assert_eq!(s.tol, 1e-4);
        assert_eq!(s.max_iter, 3000);
        assert_eq!(s.options["bound_push"], IpoptOption::Num(0.01));
        assert_eq!(s.options["max_soc"], IpoptOption::Int(2));
        assert!(serde_json::from_str::<IpoptSettings>(r#"{"tolerance": 1.0}"#).is_err());
    }

    fn toml_like(json: &str) -> IpoptSettings {
        serde_json::from_str(json).expect("valid settings")
    }

    #[test]
    fn validation_names_the_field() {
        let s = IpoptSettings {
            tol: 0.0,
            ..Default::default()
        };
        match s.validate() {
            Err(IpoptError::InvalidSettings { field, .. }) => assert_eq!(field, "tol"),
            other => panic!("expected an InvalidSettings error, got {other:?}"),
        }
        assert!(IpoptSettings::default().validate().is_ok());
        let s = IpoptSettings {
            mumps_pivtol: Some(2.0),
            ..Default::default()
        };
        assert!(matches!(
            s.validate(),
            Err(IpoptError::InvalidSettings {
                field: "mumps_pivtol",
                ..
            })
        ));
    }

    #[test]
    fn the_mumps_pivot_threshold_reaches_ipopt_and_raw_options_override_it() {
        let threshold = |s: &IpoptSettings| {
            s.to_options(false)
                .into_iter()
                .filter(|(k, _)| k == "mumps_pivtol")
                .map(|(_, v)| v)
                .next_back()
        };
        assert_eq!(threshold(&IpoptSettings::default()), None);
        let mut s = IpoptSettings {
            mumps_pivtol: Some(0.0),
            ..Default::default()
        };
        assert_eq!(threshold(&s), Some(IpoptOption::Num(0.0)));
        s.options
            .insert("mumps_pivtol".into(), IpoptOption::Num(1e-6));
        assert_eq!(threshold(&s), Some(IpoptOption::Num(1e-6)));
        // Another linear solver: no MUMPS option.
        let s = IpoptSettings {
            linear_solver: "ma27".into(),
            mumps_pivtol: Some(0.0),
            ..Default::default()
        };
        assert_eq!(threshold(&s), None);
    }
}
