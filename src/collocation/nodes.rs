//! Collocation nodes and barycentric weights.

use super::CollocationError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Which points the collocation grid uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    /// Chebyshev points of the second kind (Chebyshev–Gauss–Lobatto), `cos(jπ/(N−1))`: both
    /// ends included; barycentric weights in closed form.
    Chebyshev,
    /// Legendre–Gauss–Lobatto points: ±1 and the roots of `P'_{N−1}`.
    LegendreGaussLobatto,
    /// Legendre–Gauss–Radau points including the right end `T` (roots of `P_N − P_{N−1}`), the
    /// usual choice for collocation of initial-value problems.
    Radau,
}

impl NodeKind {
    /// Every kind.
    pub const ALL: [NodeKind; 3] = [Self::Chebyshev, Self::LegendreGaussLobatto, Self::Radau];

    /// The name used in problem files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Chebyshev => "chebyshev",
            Self::LegendreGaussLobatto => "legendre-gauss-lobatto",
            Self::Radau => "radau",
        }
    }

    fn min_points(self) -> usize {
        match self {
            Self::Radau => 1,
            _ => 2,
        }
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NodeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let valid: Vec<_> = Self::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown collocation points `{s}` (valid: {})",
                    valid.join(", ")
                )
            })
    }
}

/// `N` nodes on `[t0, T]`, ascending, with barycentric weights (normalized to max |w| = 1; the
/// barycentric formulas are invariant under a common factor and under affine maps of the nodes).
#[derive(Clone, Debug, PartialEq)]
pub struct Nodes {
    /// Kind of points.
    pub kind: NodeKind,
    /// Interval start.
    pub t0: f64,
    /// Interval end.
    pub t1: f64,
    /// The points on `[-1, 1]`, ascending.
    pub reference: Vec<f64>,
    /// The points on `[t0, T]`, ascending.
    pub times: Vec<f64>,
    /// Barycentric weights.
    pub weights: Vec<f64>,
    /// Finite elements: the index of each element's first node and the element's own nodes
    /// (empty for global collocation; then `reference` and `weights` describe the interval).
    pub elements: Vec<(usize, Nodes)>,
}

impl Nodes {
    /// `n` nodes of the given kind on `[t0, t1]`.
    pub fn new(kind: NodeKind, n: usize, t0: f64, t1: f64) -> Result<Self, CollocationError> {
        if n < kind.min_points() {
            return Err(CollocationError::TooFewPoints {
                kind,
                n,
                min: kind.min_points(),
            });
        }
        if !(t0.is_finite() && t1.is_finite() && t0 < t1) {
            return Err(CollocationError::InvalidInterval { t0, t1 });
        }
        let reference = match kind {
            NodeKind::Chebyshev => chebyshev(n),
            NodeKind::LegendreGaussLobatto => legendre_gauss_lobatto(n),
            NodeKind::Radau => radau_right(n),
        };
        let weights = match kind {
            NodeKind::Chebyshev => chebyshev_weights(n),
            _ => barycentric_weights(&reference),
        };
        Ok(Self::from_parts(kind, reference, weights, t0, t1))
    }

    /// Finite elements: `[t0, t1]` cut into `elements` equal elements with `per_element`
    /// nodes each, both ends included and shared with the neighbours (so the state is
    /// continuous), `elements·(per_element − 1) + 1` nodes in all. Chebyshev and
    /// Legendre–Gauss–Lobatto elements use those points; Radau elements their start and
    /// `per_element − 1` Radau points. One element is global collocation.
    pub fn finite_elements(
        kind: NodeKind,
        elements: usize,
        per_element: usize,
        t0: f64,
        t1: f64,
    ) -> Result<Self, CollocationError> {
        if elements <= 1 {
            return Self::new(kind, per_element, t0, t1);
        }
        if per_element < 2 {
            return Err(CollocationError::TooFewPoints {
                kind,
                n: per_element,
                min: 2,
            });
        }
        if !(t0.is_finite() && t1.is_finite() && t0 < t1) {
            return Err(CollocationError::InvalidInterval { t0, t1 });
        }
        let h = (t1 - t0) / elements as f64;
        let bound = |e: usize| if e == elements { t1 } else { t0 + e as f64 * h };
        let mut times = Vec::with_capacity(elements * (per_element - 1) + 1);
        let mut parts = Vec::with_capacity(elements);
        for e in 0..elements {
            let nodes = if kind == NodeKind::Radau {
                // The element's start and its per_element − 1 Radau points (which include the
                // element's end), as pyomo.dae's Radau collocation.
                let mut reference = vec![-1.0];
                reference.extend(radau_right(per_element - 1));
                let weights = barycentric_weights(&reference);
                Self::from_parts(kind, reference, weights, bound(e), bound(e + 1))
            } else {
                Self::new(kind, per_element, bound(e), bound(e + 1))?
            };
            let first = times.len().saturating_sub(1);
            let skip = usize::from(e > 0);
            times.extend_from_slice(&nodes.times[skip..]);
            parts.push((if e == 0 { 0 } else { first }, nodes));
        }
        Ok(Self {
            kind,
            t0,
            t1,
            reference: Vec::new(),
            times,
            weights: Vec::new(),
            elements: parts,
        })
    }

    /// The same nodes after the increasing affine change of time `t ↦ (t − shift)/scale`
    /// (`scale > 0`): times and interval ends mapped, reference points and barycentric weights
    /// unchanged (they are invariant under affine maps).
    pub fn rescaled(&self, shift: f64, scale: f64) -> Self {
        let map = |t: f64| (t - shift) / scale;
        Self {
            kind: self.kind,
            t0: map(self.t0),
            t1: map(self.t1),
            reference: self.reference.clone(),
            times: self.times.iter().map(|&t| map(t)).collect(),
            weights: self.weights.clone(),
            elements: self
                .elements
                .iter()
                .map(|(first, e)| (*first, e.rescaled(shift, scale)))
                .collect(),
        }
    }

    /// Nodes of the given points on `[-1, 1]` (ascending) with their barycentric weights,
    /// mapped to `[t0, t1]`.
    fn from_parts(
        kind: NodeKind,
        reference: Vec<f64>,
        weights: Vec<f64>,
        t0: f64,
        t1: f64,
    ) -> Self {
        let times = reference
            .iter()
            .map(|&s| t0 + (s + 1.0) * 0.5 * (t1 - t0))
            .collect();
        Self {
            kind,
            t0,
            t1,
            reference,
            times,
            weights,
            elements: Vec::new(),
        }
    }

    /// The nodes where the ODE is collocated, one row of `D` each. Global collocation: every
    /// node (as the simultaneous-collocation paper). Finite elements: every node but the start
    /// `t0` — each element collocates at its nodes after its start, as pyomo.dae and CasADi do,
    /// so the initial state is free and the equations for given θ leave one solution per
    /// initial state (collocating at `t0` too would pin the initial state by a discretization
    /// artefact and make the constraints nearly degenerate).
    pub fn collocation_points(&self) -> std::ops::Range<usize> {
        if !self.elements.is_empty() {
            1..self.len()
        } else {
            0..self.len()
        }
    }

    /// The same kind of grid on the same interval with twice the resolution: twice the points
    /// (global collocation) or twice the elements, each with as many points (finite elements).
    pub fn refined(&self) -> Result<Self, CollocationError> {
        match self.elements.first() {
            None => Self::new(self.kind, 2 * self.len(), self.t0, self.t1),
            Some((_, element)) => Self::finite_elements(
                self.kind,
                2 * self.elements.len(),
                element.len(),
                self.t0,
                self.t1,
            ),
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Always false for constructed nodes.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// Maps a time to `[-1, 1]`.
    pub fn to_reference(&self, t: f64) -> f64 {
        2.0 * (t - self.t0) / (self.t1 - self.t0) - 1.0
    }
}

/// Chebyshev points of the second kind, ascending: `−cos(jπ/(n−1))`.
fn chebyshev(n: usize) -> Vec<f64> {
    let m = (n - 1) as f64;
    // sin form is symmetric to machine precision: −cos(jπ/m) = sin(π(2j − m)/(2m)).
    (0..n)
        .map(|j| (std::f64::consts::PI * (2.0 * j as f64 - m) / (2.0 * m)).sin())
        .collect()
}

/// Closed-form weights of Chebyshev points of the second kind: `(−1)^j δ_j`, δ = ½ at the ends.
pub(crate) fn chebyshev_weights(n: usize) -> Vec<f64> {
    (0..n)
        .map(|j| {
            let s = if j % 2 == 0 { 1.0 } else { -1.0 };
            if j == 0 || j == n - 1 {
                0.5 * s
            } else {
                s
            }
        })
        .collect()
}

/// General barycentric weights `1/Π_{k≠j}(x_j − x_k)` for points in [−1, 1]; each factor is
/// multiplied by 2 (the inverse capacity of [−1, 1]) so the products neither overflow nor
/// underflow, then normalized to max |w| = 1.
pub(crate) fn barycentric_weights(x: &[f64]) -> Vec<f64> {
    let mut w: Vec<f64> = (0..x.len())
        .map(|j| {
            let p: f64 = (0..x.len())
                .filter(|&k| k != j)
                .map(|k| 2.0 * (x[j] - x[k]))
                .product();
            1.0 / p
        })
        .collect();
    let max = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    w.iter_mut().for_each(|v| *v /= max);
    w
}

/// Legendre polynomials `P_{k}` and `P_{k−1}` at `x` (k ≥ 1), with `P'_k`.
fn legendre(k: usize, x: f64) -> (f64, f64, f64) {
    let (mut p_prev, mut p) = (1.0, x);
    for j in 2..=k {
        let jf = j as f64;
        let next = ((2.0 * jf - 1.0) * x * p - (jf - 1.0) * p_prev) / jf;
        p_prev = p;
        p = next;
    }
    let kf = k as f64;
    let dp = if (x * x - 1.0).abs() < 1e-300 {
        0.5 * kf * (kf + 1.0) * x.powi(k as i32 + 1)
    } else {
        kf * (x * p - p_prev) / (x * x - 1.0)
    };
    (p, p_prev, dp)
}

/// Legendre–Gauss–Lobatto points, ascending (Newton iteration from Chebyshev points, as in
/// Trefethen's `lglnodes`).
fn legendre_gauss_lobatto(n: usize) -> Vec<f64> {
    let m = n - 1;
    let mut x: Vec<f64> = (0..n)
        .map(|j| -(std::f64::consts::PI * j as f64 / m as f64).cos())
        .collect();
    for xi in x.iter_mut().skip(1).take(n.saturating_sub(2)) {
        for _ in 0..100 {
            let (p, p_prev, _) = legendre(m, *xi);
            // Newton on (1 − x²) P'_m(x) = m (P_{m−1} − x P_m).
            let step = (*xi * p - p_prev) / (n as f64 * p);
            *xi -= step;
            if step.abs() < 1e-16 {
                break;
            }
        }
    }
    symmetrize(&mut x);
    x
}

/// Legendre–Gauss–Radau points including +1, ascending: the mirror image of the left-Radau
/// points (roots of `P_n + P_{n−1}`), found by Newton from Chebyshev–Radau guesses.
fn radau_right(n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![1.0];
    }
    let mut left: Vec<f64> = (0..n)
        .map(|j| -(2.0 * std::f64::consts::PI * j as f64 / (2 * n - 1) as f64).cos())
        .collect();
    left[0] = -1.0;
    for xi in left.iter_mut().skip(1) {
        for _ in 0..100 {
            let (pn, pn1, dpn) = legendre(n, *xi);
            let (_, _, dpn1) = legendre(n - 1, *xi);
            let step = (pn + pn1) / (dpn + dpn1);
            *xi -= step;
            if step.abs() < 1e-16 {
                break;
            }
        }
    }
    let mut x: Vec<f64> = left.iter().rev().map(|v| -v).collect();
    x.sort_by(f64::total_cmp);
    x
}

/// Makes symmetric point sets exactly symmetric.
fn symmetrize(x: &mut [f64]) {
    let n = x.len();
    for j in 0..n / 2 {
        let a = 0.5 * (x[n - 1 - j] - x[j]);
        x[j] = -a;
        x[n - 1 - j] = a;
    }
    if n % 2 == 1 {
        x[n / 2] = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refined_grids_double_the_points_or_the_elements() {
        let global = Nodes::new(NodeKind::Chebyshev, 15, 0.0, 3.0).unwrap();
        let finer = global.refined().unwrap();
        assert_eq!(
            finer,
            Nodes::new(NodeKind::Chebyshev, 30, 0.0, 3.0).unwrap()
        );
        for kind in [NodeKind::LegendreGaussLobatto, NodeKind::Radau] {
            let elements = Nodes::finite_elements(kind, 4, 5, 1.0, 9.0).unwrap();
            let finer = elements.refined().unwrap();
            assert_eq!(finer, Nodes::finite_elements(kind, 8, 5, 1.0, 9.0).unwrap());
            assert_eq!((finer.elements.len(), finer.len()), (8, 33));
            assert_eq!((finer.t0, finer.t1, finer.kind), (1.0, 9.0, kind));
        }
    }

    #[test]
    fn rescaled_nodes_equal_nodes_built_on_the_mapped_interval() {
        let (shift, scale) = (2.0, 0.25);
        for nodes in [
            Nodes::new(NodeKind::Chebyshev, 9, 2.0, 5.1).unwrap(),
            Nodes::finite_elements(NodeKind::Radau, 3, 4, 2.0, 5.1).unwrap(),
            Nodes::finite_elements(NodeKind::LegendreGaussLobatto, 4, 5, 2.0, 5.1).unwrap(),
        ] {
            let mapped = nodes.rescaled(shift, scale);
            let direct = Nodes::finite_elements(
                nodes.kind,
                nodes.elements.len().max(1),
                if nodes.elements.is_empty() {
                    nodes.len()
                } else {
                    nodes.elements[0].1.len()
                },
                0.0,
                12.4,
            )
            .unwrap();
            assert_eq!(mapped.len(), direct.len());
            for (a, b) in mapped.times.iter().zip(&direct.times) {
                assert!((a - b).abs() < 1e-12, "{a} vs {b}");
            }
            // d/dτ = T · d/dt: the differentiation matrices differ by the factor `scale`.
            let (dm, dt) = (
                crate::collocation::differentiation_matrix(&mapped),
                crate::collocation::differentiation_matrix(&nodes),
            );
            for (i, j, v) in dt.triplets() {
                assert!((dm.get(i, j) - scale * v).abs() < 1e-9 * (1.0 + v.abs()));
            }
        }
    }

    #[test]
    fn chebyshev_weights_match_the_general_formula() {
        for n in [2, 3, 7, 50, 200] {
            let x = chebyshev(n);
            let general = barycentric_weights(&x);
            let closed = chebyshev_weights(n);
            let max = closed.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            // The general weights equal the closed form up to one common factor.
            let ratio = general[0] / (closed[0] / max);
            for (g, c) in general.iter().zip(&closed) {
                assert!(
                    (g - ratio * c / max).abs() < 1e-12,
                    "n = {n}: {g} vs {}",
                    ratio * c / max
                );
            }
        }
    }

    #[test]
    fn legendre_gauss_lobatto_points_match_published_values() {
        let x = legendre_gauss_lobatto(4);
        let r = 1.0 / 5f64.sqrt();
        for (a, b) in x.iter().zip([-1.0, -r, r, 1.0]) {
            assert!((a - b).abs() < 1e-15, "{x:?}");
        }
        let x = legendre_gauss_lobatto(5);
        let r = (3.0f64 / 7.0).sqrt();
        for (a, b) in x.iter().zip([-1.0, -r, 0.0, r, 1.0]) {
            assert!((a - b).abs() < 1e-15, "{x:?}");
        }
    }

    #[test]
    fn radau_points_match_published_values() {
        let x = radau_right(2);
        assert!((x[0] + 1.0 / 3.0).abs() < 1e-15 && x[1] == 1.0, "{x:?}");
        let x = radau_right(3);
        let s6 = 6f64.sqrt();
        for (a, b) in x.iter().zip([-(1.0 + s6) / 5.0, -(1.0 - s6) / 5.0, 1.0]) {
            assert!((a - b).abs() < 1e-15, "{x:?}");
        }
    }

    #[test]
    fn bad_input_is_rejected() {
        assert!(matches!(
            Nodes::new(NodeKind::Chebyshev, 1, 0.0, 1.0),
            Err(CollocationError::TooFewPoints { .. })
        ));
        assert!(matches!(
            Nodes::new(NodeKind::Chebyshev, 5, 1.0, 1.0),
            Err(CollocationError::InvalidInterval { .. })
        ));
        assert!(matches!(
            Nodes::new(NodeKind::Radau, 5, 0.0, f64::NAN),
            Err(CollocationError::InvalidInterval { .. })
        ));
        assert_eq!("radau".parse::<NodeKind>(), Ok(NodeKind::Radau));
        assert!("gauss"
            .parse::<NodeKind>()
            .unwrap_err()
            .contains("valid: chebyshev, legendre-gauss-lobatto, radau"));
    }
}
