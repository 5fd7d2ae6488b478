//! How a network enters an ODE's right-hand side ([`Structure`]: black box, second order,
//! gray box with known linear terms) and time-dependent weights ([`TimeBasis`]: the
//! parameters as a polynomial in time, Legendre or monomial).

use serde::{Deserialize, Serialize};

/// The right-hand side built around the network `N`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Structure {
    /// `y' = N(y[, t])`.
    #[default]
    BlackBox,
    /// `y = (q, v)` with `q' = v` and `v' = N(q, v[, t])` (the network has half as many
    /// outputs as there are states).
    SecondOrder,
    /// `y' = A·y + N(y[, t])` with the known matrix `A` (e.g. the known linear growth and
    /// decay rates of a Lotka–Volterra model).
    GrayBox {
        /// `A`, one row per state.
        linear: Vec<Vec<f64>>,
    },
}

impl Structure {
    /// True for the black box (the default, omitted from model files).
    pub fn is_black_box(&self) -> bool {
        *self == Self::BlackBox
    }

    /// Name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::BlackBox => "black-box",
            Self::SecondOrder => "second-order",
            Self::GrayBox { .. } => "gray-box",
        }
    }

    /// Network outputs needed for `states` states, or why the structure cannot have them.
    pub fn network_outputs(&self, states: usize) -> Result<usize, String> {
        match self {
            Self::BlackBox => Ok(states),
            Self::SecondOrder if states % 2 == 0 && states > 0 => Ok(states / 2),
            Self::SecondOrder => Err(format!(
                "a second-order model needs an even number of states (positions, then velocities), got {states}"
            )),
            Self::GrayBox { linear } => {
                if linear.len() != states || linear.iter().any(|r| r.len() != states) {
                    Err(format!(
                        "the gray-box matrix must be {states} × {states} (one row and column per state)"
                    ))
                } else if linear.iter().flatten().any(|v| !v.is_finite()) {
                    Err("the gray-box matrix has a non-finite entry".into())
                } else {
                    Ok(states)
                }
            }
        }
    }

    /// `dy` from the network output `net` at state `y`.
    pub fn assemble(&self, y: &[f64], net: &[f64], dy: &mut [f64]) {
        match self {
            Self::BlackBox => dy.copy_from_slice(net),
            Self::SecondOrder => {
                let m = y.len() / 2;
                dy[..m].copy_from_slice(&y[m..]);
                dy[m..].copy_from_slice(net);
            }
            Self::GrayBox { linear } => {
                for (i, row) in linear.iter().enumerate() {
                    dy[i] = net[i] + row.iter().zip(y).map(|(a, v)| a * v).sum::<f64>();
                }
            }
        }
    }

    /// For a cotangent `w` of `dy`: the cotangent of the network output (a slice of `w`),
    /// and the structure's own contribution `wᵀ·∂(known part)/∂y` added to `grad_y`.
    pub fn pull_back<'w>(&self, w: &'w [f64], grad_y: &mut [f64]) -> &'w [f64] {
        match self {
            Self::BlackBox => w,
            Self::SecondOrder => {
                let m = w.len() / 2;
                for i in 0..m {
                    grad_y[m + i] += w[i];
                }
                &w[m..]
            }
            Self::GrayBox { linear } => {
                for (wi, row) in w.iter().zip(linear) {
                    for (g, a) in grad_y.iter_mut().zip(row) {
                        *g += wi * a;
                    }
                }
                w
            }
        }
    }
}

/// Polynomial family of [`TimeBasis`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BasisKind {
    /// Legendre polynomials `P_0 … P_d` (orthogonal on [−1, 1]).
    Legendre,
    /// Monomials `1, τ, …, τ^d`.
    Monomial,
}

/// Time-dependent weights `θ(t) = Σ_{i=0..d} p_i(τ(t)) θ_i`, with the window `[t0, t1]`
/// mapped to `τ ∈ [−1, 1]` (the polynomial-weight paper's parameterization).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeBasis {
    /// Polynomial family.
    pub kind: BasisKind,
    /// Degree d (d + 1 coefficient vectors).
    pub degree: usize,
    /// Start of the window mapped to τ = −1.
    pub t0: f64,
    /// End of the window mapped to τ = 1.
    pub t1: f64,
}

impl TimeBasis {
    /// Number of coefficient vectors, `degree + 1`.
    pub fn len(&self) -> usize {
        self.degree + 1
    }

    /// Never empty (degree 0 is one constant vector).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Checks the window.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.t0.is_finite() && self.t1.is_finite() && self.t1 > self.t0) {
            return Err(format!(
                "time basis window [{}, {}] must be finite and increasing",
                self.t0, self.t1
            ));
        }
        Ok(())
    }

    /// `p_0(τ(t)) … p_d(τ(t))` into `out` (length `degree + 1`).
    pub fn values(&self, t: f64, out: &mut [f64]) {
        let tau = 2.0 * (t - self.t0) / (self.t1 - self.t0) - 1.0;
        out[0] = 1.0;
        if self.degree == 0 {
            return;
        }
        out[1] = tau;
        for n in 1..self.degree {
            out[n + 1] = match self.kind {
                // (n + 1) P_{n+1} = (2n + 1) τ P_n − n P_{n−1}
                BasisKind::Legendre => {
                    ((2 * n + 1) as f64 * tau * out[n] - n as f64 * out[n - 1]) / (n + 1) as f64
                }
                BasisKind::Monomial => tau * out[n],
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legendre_values_match_closed_forms() {
        let b = TimeBasis {
            kind: BasisKind::Legendre,
            degree: 4,
            t0: 2.0,
            t1: 6.0,
        };
        let mut p = [0.0; 5];
        for t in [2.0, 3.1, 4.0, 5.7, 6.0] {
            b.values(t, &mut p);
            let x: f64 = (t - 4.0) / 2.0;
            let exact = [
                1.0,
                x,
                0.5 * (3.0 * x * x - 1.0),
                0.5 * (5.0 * x.powi(3) - 3.0 * x),
                (35.0 * x.powi(4) - 30.0 * x * x + 3.0) / 8.0,
            ];
            for (a, e) in p.iter().zip(exact) {
                assert!((a - e).abs() < 1e-14, "t = {t}: {a} vs {e}");
            }
        }
        let m = TimeBasis {
            kind: BasisKind::Monomial,
            ..b
        };
        m.values(5.0, &mut p);
        assert_eq!(p, [1.0, 0.5, 0.25, 0.125, 0.0625]);
    }

    #[test]
    fn structures_assemble_and_pull_back_consistently() {
        // The pull-back is the transpose of the structure's Jacobian: check ⟨w, J·e_j⟩.
        let a = vec![vec![1.3, 0.2], vec![-0.4, -1.8]];
        for s in [
            Structure::BlackBox,
            Structure::SecondOrder,
            Structure::GrayBox { linear: a },
        ] {
            let y = [0.3, -0.7];
            let m = s.network_outputs(2).unwrap();
            let net = vec![0.5; m];
            let w = [0.9, -1.1];
            let mut grad_y = [0.0; 2];
            let w_net = s.pull_back(&w, &mut grad_y).to_vec();
            assert_eq!(w_net.len(), m);
            let h = 1e-7;
            for j in 0..2 {
                let (mut up, mut dn) = (y, y);
                up[j] += h;
                dn[j] -= h;
                let (mut fu, mut fd) = ([0.0; 2], [0.0; 2]);
                s.assemble(&up, &net, &mut fu);
                s.assemble(&dn, &net, &mut fd);
                let directional: f64 = (0..2).map(|i| w[i] * (fu[i] - fd[i]) / (2.0 * h)).sum();
                assert!((directional - grad_y[j]).abs() < 1e-8, "{}", s.name());
            }
        }
        assert!(Structure::SecondOrder.network_outputs(3).is_err());
        assert!(Structure::GrayBox {
            linear: vec![vec![1.0]]
        }
        .network_outputs(2)
        .is_err());
    }
}
