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
    /// Brusselator, an autocatalytic reaction scheme with a limit cycle for `b > 1 + a²`:
    /// `x' = a + x²y − (b + 1)x`, `y' = bx − x²y`.
    Brusselator {
        /// Feed concentration a.
        a: f64,
        /// Feed concentration b.
        b: f64,
    },
    /// Consecutive first-order reactions A → B → C in a batch reactor (concentrations
    /// `[A], [B], [C]`): `a' = −k₁a`, `b' = k₁a − k₂b`, `c' = k₂b`.
    ConsecutiveReactions {
        /// Rate constant k₁ of A → B.
        k1: f64,
        /// Rate constant k₂ of B → C.
        k2: f64,
    },
}

/// Names accepted in problem files, with their parameters and defaults.
pub const SYSTEMS: [(&str, &[(&str, f64)]); 5] = [
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
    ("brusselator", &[("a", 1.0), ("b", 3.0)]),
    ("consecutive-reactions", &[("k1", 1.0), ("k2", 0.5)]),
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
            "lorenz" => Self::Lorenz {
                sigma: p("sigma"),
                rho: p("rho"),
                beta: p("beta"),
            },
            "brusselator" => Self::Brusselator {
                a: p("a"),
                b: p("b"),
            },
            _ => Self::ConsecutiveReactions {
                k1: p("k1"),
                k2: p("k2"),
            },
        })
    }
}

impl OdeSystem for BuiltinSystem {
    fn dim(&self) -> usize {
        match self {
            Self::VanDerPol { .. } | Self::LotkaVolterra { .. } | Self::Brusselator { .. } => 2,
            Self::Lorenz { .. } | Self::ConsecutiveReactions { .. } => 3,
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
            Self::Brusselator { a, b } => {
                let x2y = y[0] * y[0] * y[1];
                dy[0] = a + x2y - (b + 1.0) * y[0];
                dy[1] = b * y[0] - x2y;
            }
            Self::ConsecutiveReactions { k1, k2 } => {
                dy[0] = -k1 * y[0];
                dy[1] = k1 * y[0] - k2 * y[1];
                dy[2] = k2 * y[1];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use colloc_solvers::ode::Dopri5;

    fn system(name: &str, params: &[(&str, f64)]) -> BuiltinSystem {
        let map = params.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        BuiltinSystem::from_name(name, &map).unwrap()
    }

    #[test]
    fn consecutive_reactions_follow_their_closed_form() {
        let (k1, k2) = (1.3, 0.4);
        let sys = system("consecutive-reactions", &[("k1", k1), ("k2", k2)]);
        let times: Vec<f64> = (1..=20).map(|i| 0.5 * i as f64).collect();
        let sol = Dopri5::with_tolerances(1e-11, 1e-13)
            .solve(&sys, 0.0, &[1.0, 0.0, 0.0], &times)
            .unwrap();
        for (t, y) in times.iter().zip(&sol.y) {
            let a = (-k1 * t).exp();
            let b = k1 / (k2 - k1) * ((-k1 * t).exp() - (-k2 * t).exp());
            for (got, want) in y.iter().zip([a, b, 1.0 - a - b]) {
                assert!((got - want).abs() < 1e-9, "t = {t}: {y:?}");
            }
        }
    }

    #[test]
    fn the_brusselator_keeps_its_fixed_point_and_leaves_it_when_unstable() {
        // (a, b/a) is a fixed point; stable for b < 1 + a², a limit cycle beyond.
        for (b, oscillates) in [(1.5, false), (3.0, true)] {
            let sys = system("brusselator", &[("a", 1.0), ("b", b)]);
            let mut dy = [0.0; 2];
            sys.rhs(0.0, &[1.0, b], &mut dy);
            assert_eq!(dy, [0.0, 0.0]);
            let sol = Dopri5::with_tolerances(1e-9, 1e-11)
                .solve(&sys, 0.0, &[1.1, b], &[40.0])
                .unwrap();
            let off = ((sol.y[0][0] - 1.0).powi(2) + (sol.y[0][1] - b).powi(2)).sqrt();
            assert_eq!(off > 0.1, oscillates, "b = {b}: {:?}", sol.y[0]);
        }
        let e =
            BuiltinSystem::from_name("brusselator", &[("k1".to_string(), 1.0)].into()).unwrap_err();
        assert!(e.contains("valid: a, b"), "{e}");
    }
}
