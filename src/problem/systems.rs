//! Built-in dynamical systems that generate data.

use colloc_solvers::ode::OdeSystem;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A built-in system with its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BuiltinSystem {
    /// Forced Van der Pol: `u' = v`, `v' = μ(1 − u²)v − u + A cos(ωt)`.
    VanDerPol {
        /// Damping μ.
        mu: f64,
        /// Forcing amplitude A.
        a: f64,
        /// Forcing frequency ω.
        omega: f64,
    },
    /// Lotka–Volterra: `x' = αx − βxy`, `y' = δxy − γy`.
    LotkaVolterra {
        /// α.
        alpha: f64,
        /// β.
        beta: f64,
        /// γ.
        gamma: f64,
        /// δ.
        delta: f64,
    },
    /// Lorenz: `x' = σ(y − x)`, `y' = x(ρ − z) − y`, `z' = xy − βz`.
    Lorenz {
        /// σ.
        sigma: f64,
        /// ρ.
        rho: f64,
        /// β.
        beta: f64,
    },
}

/// Names accepted in problem files, with their parameters and defaults.
pub const SYSTEMS: [(&str, &[(&str, f64)]); 3] = [
    ("vanderpol", &[("mu", 1.0), ("a", 1.0), ("omega", 1.0)]),
    (
        "lotka-volterra",
        &[
            ("alpha", 1.3),
            ("beta", 0.9),
            ("gamma", 0.8),
            ("delta", 1.8),
        ],
    ),
    (
        "lorenz",
        &[("sigma", 10.0), ("rho", 28.0), ("beta", 8.0 / 3.0)],
    ),
];

impl BuiltinSystem {
    /// Builds a system from its name and parameters (missing parameters take their defaults).
    /// Errors name the unknown system or parameter and list the valid ones.
    pub fn from_name(name: &str, params: &BTreeMap<String, f64>) -> Result<Self, String> {
        let Some((_, defaults)) = SYSTEMS.iter().find(|(n, _)| *n == name) else {
            let valid: Vec<_> = SYSTEMS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown system `{name}` (valid: {})",
                valid.join(", ")
            ));
        };
        for (k, v) in params {
            if !defaults.iter().any(|(d, _)| d == k) {
                let valid: Vec<_> = defaults.iter().map(|(d, _)| *d).collect();
                return Err(format!(
                    "unknown parameter `{k}` for system `{name}` (valid: {})",
                    valid.join(", ")
                ));
            }
            if !v.is_finite() {
                return Err(format!("parameter `{k}` must be finite, got {v}"));
            }
        }
        let p = |key: &str| {
            params.get(key).copied().unwrap_or_else(|| {
                defaults
                    .iter()
                    .find(|(d, _)| *d == key)
                    .map_or(0.0, |(_, v)| *v)
            })
        };
        Ok(match name {
            "vanderpol" => Self::VanDerPol {
                mu: p("mu"),
                a: p("a"),
                omega: p("omega"),
            },
            "lotka-volterra" => Self::LotkaVolterra {
                alpha: p("alpha"),
                beta: p("beta"),
                gamma: p("gamma"),
                delta: p("delta"),
            },
            _ => Self::Lorenz {
                sigma: p("sigma"),
                rho: p("rho"),
                beta: p("beta"),
            },
        })
    }
}

impl OdeSystem for BuiltinSystem {
    fn dim(&self) -> usize {
        match self {
            Self::VanDerPol { .. } | Self::LotkaVolterra { .. } => 2,
            Self::Lorenz { .. } => 3,
        }
    }

    fn rhs(&self, t: f64, y: &[f64], dy: &mut [f64]) {
        match *self {
            Self::VanDerPol { mu, a, omega } => {
                dy[0] = y[1];
                dy[1] = mu * (1.0 - y[0] * y[0]) * y[1] - y[0] + a * (omega * t).cos();
            }
            Self::LotkaVolterra {
                alpha,
                beta,
                gamma,
                delta,
            } => {
                dy[0] = alpha * y[0] - beta * y[0] * y[1];
                dy[1] = delta * y[0] * y[1] - gamma * y[1];
            }
            Self::Lorenz { sigma, rho, beta } => {
                dy[0] = sigma * (y[1] - y[0]);
                dy[1] = y[0] * (rho - y[2]) - y[1];
                dy[2] = y[0] * y[1] - beta * y[2];
            }
        }
    }
}
