//! Activation functions, generic over num-dual scalars (one implementation serves `f64`
//! simulation and dual-number derivatives).

use crate::ModelError;
use num_dual::DualNum;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A hidden-layer activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^(−x))`, evaluated without overflow for large |x|.
    Sigmoid,
    /// `ln(1 + e^x)`, evaluated without overflow for large |x|.
    Softplus,
    /// GELU in its tanh form, `x/2 · (1 + tanh(√(2/π)(x + 0.044715 x³)))` — the form JAX uses by
    /// default (`jax.nn.gelu(approximate=True)`); num-dual has no `erf`.
    Gelu,
    /// `max(0, x)`: not twice differentiable, refused for IPOPT.
    Relu,
    /// `x`.
    Identity,
}

impl Activation {
    /// Every activation, in documentation order.
    pub const ALL: [Activation; 6] = [
        Self::Tanh,
        Self::Sigmoid,
        Self::Softplus,
        Self::Gelu,
        Self::Relu,
        Self::Identity,
    ];

    /// The name used in files and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tanh => "tanh",
            Self::Sigmoid => "sigmoid",
            Self::Softplus => "softplus",
            Self::Gelu => "gelu",
            Self::Relu => "relu",
            Self::Identity => "identity",
        }
    }

    /// True when the function is twice continuously differentiable.
    pub fn is_smooth(self) -> bool {
        self != Self::Relu
    }

    /// `Ok` for smooth activations; an error naming the smooth alternatives otherwise.
    pub fn require_smooth(self) -> Result<(), ModelError> {
        if self.is_smooth() {
            Ok(())
        } else {
            Err(ModelError::NonSmoothActivation {
                name: self.name().to_string(),
                smooth: names(Self::ALL.iter().filter(|a| a.is_smooth())),
            })
        }
    }

    /// The activation applied to any num-dual scalar (or `f64`).
    pub fn apply<D: DualNum<Primitive = f64> + Copy>(self, x: D) -> D {
        match self {
            Self::Tanh => stable_tanh(x),
            Self::Sigmoid => sigmoid(x),
            Self::Softplus => {
                if x.re() > 0.0 {
                    x + (-x).exp().ln_1p()
                } else {
                    x.exp().ln_1p()
                }
            }
            Self::Gelu => {
                const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
                // x/2 · (1 + tanh(z)) = x · σ(2z), which stays finite for large |x|.
                let z = (x + x.powi(3) * 0.044_715) * SQRT_2_OVER_PI;
                x * sigmoid(z * 2.0)
            }
            Self::Relu => {
                if x.re() > 0.0 {
                    x
                } else {
                    x * 0.0
                }
            }
            Self::Identity => x,
        }
    }

    /// Value and first derivative at `x`, in closed form, with the same exponential as
    /// [`Activation::apply`] (the collocation Jacobian; checked against the dual-number
    /// derivative of [`Activation::apply`] in the tests).
    #[inline]
    pub fn value_and_derivative(self, x: f64) -> (f64, f64) {
        self.value_and_derivative_with(x, f64::exp)
    }

    /// [`Activation::value_and_derivative`] with `exp` as the exponential of the sigmoids.
    #[inline(always)]
    fn value_and_derivative_with(self, x: f64, exp: impl Fn(f64) -> f64) -> (f64, f64) {
        match self {
            Self::Tanh => {
                let t = x.tanh();
                (t, 1.0 - t * t)
            }
            Self::Sigmoid => {
                let s = sigmoid_f64(x, &exp);
                (s, s * (1.0 - s))
            }
            Self::Softplus => {
                let y = if x > 0.0 {
                    x + (-x).exp().ln_1p()
                } else {
                    x.exp().ln_1p()
                };
                (y, sigmoid_f64(x, &exp))
            }
            Self::Gelu => {
                const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
                const C: f64 = 0.044_715;
                let x2 = x * x;
                let z2 = 2.0 * SQRT_2_OVER_PI * x * (1.0 + C * x2);
                let s = sigmoid_f64(z2, &exp);
                let dz2 = 2.0 * SQRT_2_OVER_PI * (1.0 + 3.0 * C * x2);
                (x * s, s + x * s * (1.0 - s) * dz2)
            }
            Self::Relu => {
                if x > 0.0 {
                    (x, 1.0)
                } else {
                    (0.0, 0.0)
                }
            }
            Self::Identity => (x, 1.0),
        }
    }

    /// [`Activation::value_and_derivative`] over a slice, the hot path of sequential training:
    /// each `z` is replaced by its value and its derivative written to `slopes`. One loop per
    /// activation, with nothing but arithmetic inside, compiled for AVX-512F or AVX2 when the
    /// CPU has it, so that the compiler vectorizes it — with [`Exponential::Vectorized`]; with
    /// [`Exponential::Library`] the results are those of `value_and_derivative`.
    pub fn values_and_slopes(self, z: &mut [f64], slopes: &mut [f64], exp: Exponential) {
        macro_rules! each {
            ($act:expr) => {
                match exp {
                    Exponential::Vectorized => crate::wide::with_wide_vectors(
                        #[inline(always)]
                        || {
                            for (z, dy) in z.iter_mut().zip(slopes.iter_mut()) {
                                (*z, *dy) = $act.value_and_derivative_with(*z, exp_nonpositive);
                            }
                        },
                    ),
                    Exponential::Library => {
                        for (z, dy) in z.iter_mut().zip(slopes.iter_mut()) {
                            (*z, *dy) = $act.value_and_derivative(*z);
                        }
                    }
                }
            };
        }
        match self {
            Self::Tanh => each!(Self::Tanh),
            Self::Sigmoid => each!(Self::Sigmoid),
            Self::Softplus => each!(Self::Softplus),
            Self::Gelu => each!(Self::Gelu),
            Self::Relu => each!(Self::Relu),
            Self::Identity => each!(Self::Identity),
        }
    }

    /// Value, first and second derivative at `x`, in closed form (the hot path of the
    /// collocation Hessian; checked against the second-order dual derivative of
    /// [`Activation::apply`] in the tests).
    /// `tanh` is computed without branches (within 3 ulp of the library's), so that
    /// [`Activation::values_and_derivatives_in_place`] vectorizes and gives the same bits.
    #[inline(always)]
    pub fn value_and_derivatives(self, x: f64) -> (f64, f64, f64) {
        match self {
            Self::Tanh => {
                let t = tanh_branch_free(x);
                let d1 = 1.0 - t * t;
                (t, d1, -2.0 * t * d1)
            }
            Self::Sigmoid => {
                let s = sigmoid_f64(x, f64::exp);
                let d1 = s * (1.0 - s);
                (s, d1, d1 * (1.0 - 2.0 * s))
            }
            Self::Softplus => {
                let (y, s) = self.value_and_derivative(x);
                (y, s, s * (1.0 - s))
            }
            Self::Gelu => {
                // x·σ(u), u = 2√(2/π)(x + C x³): y' = σ + x σ' u', y'' = 2σ' u' + x (σ'' u'² + σ' u'').
                const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
                const C: f64 = 0.044_715;
                let x2 = x * x;
                let u = 2.0 * SQRT_2_OVER_PI * x * (1.0 + C * x2);
                let du = 2.0 * SQRT_2_OVER_PI * (1.0 + 3.0 * C * x2);
                let ddu = 2.0 * SQRT_2_OVER_PI * 6.0 * C * x;
                let s = sigmoid_f64(u, f64::exp);
                let s1 = s * (1.0 - s);
                let s2 = s1 * (1.0 - 2.0 * s);
                (
                    x * s,
                    s + x * s1 * du,
                    2.0 * s1 * du + x * (s2 * du * du + s1 * ddu),
                )
            }
            Self::Relu => {
                let (y, d1) = self.value_and_derivative(x);
                (y, d1, 0.0)
            }
            Self::Identity => (x, 1.0, 0.0),
        }
    }

    /// [`Activation::value_and_derivatives`] over many points at once: `triples` holds
    /// `(z, ·, ·)` triples, each replaced by `(σ(z), σ'(z), σ''(z))` — the same bits as one
    /// call per point. For tanh the loop runs four points side by side, compiled for AVX-512F
    /// or AVX2 when the CPU has it (the collocation's shared pass: 6,400 units per iterate on the
    /// paper's Van der Pol network, where the library's `tanh` took a third of the
    /// constraint callback).
    pub fn values_and_derivatives_in_place(self, triples: &mut [f64]) {
        assert_eq!(triples.len() % 3, 0, "triples hold three numbers per point");
        if self != Self::Tanh {
            for t in triples.chunks_exact_mut(3) {
                (t[0], t[1], t[2]) = self.value_and_derivatives(t[0]);
            }
            return;
        }
        crate::wide::with_wide_vectors(
            #[inline(always)]
            || {
                let mut quads = triples.chunks_exact_mut(12);
                for q in &mut quads {
                    // Plain loops over arrays (`map` is not inlined into the wider copies).
                    let mut s = [0.0; 4];
                    for k in 0..4 {
                        s[k] = tanh_branch_free(q[3 * k]);
                    }
                    for k in 0..4 {
                        let d1 = 1.0 - s[k] * s[k];
                        q[3 * k] = s[k];
                        q[3 * k + 1] = d1;
                        q[3 * k + 2] = -2.0 * s[k] * d1;
                    }
                }
                for t in quads.into_remainder().chunks_exact_mut(3) {
                    (t[0], t[1], t[2]) = Self::Tanh.value_and_derivatives(t[0]);
                }
            },
        )
    }
}

/// `tanh(x)` without branches, so that loops over it vectorize: `tanh|x| = −u/(u + 2)` with
/// `u = expm1(−2|x|) ∈ (−1, 0]` (the math library's formula for small arguments, free of
/// cancellation for every argument: its relative condition number in `u` is at most 2), and
/// the sign of `x`. Within 3 ulp of the library's `tanh` (a test checks it over the range
/// that matters); `tanh(±0) = ±0`, `tanh(±∞) = ±1`, NaN stays NaN.
#[inline(always)]
pub(crate) fn tanh_branch_free(x: f64) -> f64 {
    let u = expm1_nonpositive(-2.0 * x.abs());
    (-u / (u + 2.0)).copysign(x)
}

/// `e^x − 1` for `x ≤ 0`, branch-free: `x = n·ln 2 + r` (see [`reduce_by_ln2`]), then
/// `2^n (e^r − 1) + (2^n − 1)`, exact for `n = 0` (no cancellation near 0). Arguments below
/// −40, where `e^x − 1` rounds to −1, are taken as −40.
#[inline(always)]
fn expm1_nonpositive(x: f64) -> f64 {
    // Not `max`: a NaN must stay NaN.
    let x = if x < -40.0 { -40.0 } else { x };
    let (r, scale) = reduce_by_ln2(x);
    scale * (r * expm1_quotient(r)) + (scale - 1.0)
}

/// Which exponential the sigmoids (sigmoid, GELU) of [`Activation::values_and_slopes`] use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Exponential {
    /// A branch-free one within 2 ulp of the library's, which vectorizes: sequential training.
    #[default]
    Vectorized,
    /// The math library's, as in [`Activation::apply`] and the collocation derivatives.
    Library,
}

/// `1 / (1 + e^(−x))` for `f64` without overflow, with `exp` as the exponential (called
/// with arguments ≤ 0 only).
#[inline(always)]
fn sigmoid_f64(x: f64, exp: impl Fn(f64) -> f64) -> f64 {
    let e = exp(-x.abs());
    let s = 1.0 / (1.0 + e);
    if x >= 0.0 {
        s
    } else {
        e * s
    }
}

/// `e^x` for `x ≤ 0`, branch-free so that loops over it vectorize: `x = n·ln 2 + r` (see
/// [`reduce_by_ln2`]), `e^r = 1 + r·q(r)` (see [`expm1_quotient`]; truncation below 4e-18
/// relative), scaled by `2^n` through the exponent bits. Arguments below −708 give 0 (the
/// library gives subnormals down to −745, then 0): subnormal numbers are slow, and a
/// saturated unit's slope must not leave tiny nonzero products in the backward pass.
#[inline(always)]
fn exp_nonpositive(x: f64) -> f64 {
    let underflow = x < -708.0;
    // Not `max`: a NaN must stay NaN.
    let x = if underflow { -708.0 } else { x };
    let (r, scale) = reduce_by_ln2(x);
    let p = expm1_quotient(r) * r + 1.0;
    p * if underflow { 0.0 } else { scale }
}

/// `(r, 2^n)` with `x = n·ln 2 + r`, `|r| ≤ ln 2 / 2`, for `−708 ≤ x ≤ 0`.
#[inline(always)]
fn reduce_by_ln2(x: f64) -> (f64, f64) {
    const LOG2_E: f64 = std::f64::consts::LOG2_E;
    // ln 2 = LN2_HI + LN2_LO, with the low bits of LN2_HI zero so that n·LN2_HI is exact.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    // 1.5·2^52: adding it rounds to an integer held in the low mantissa bits.
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    let shifted = x * LOG2_E + SHIFTER;
    let n = shifted - SHIFTER;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let n_bits = shifted.to_bits().wrapping_sub(SHIFTER.to_bits());
    (r, f64::from_bits(n_bits.wrapping_add(1023) << 52))
}

/// `(e^r − 1)/r` for `|r| ≤ ln 2 / 2`: its Taylor polynomial `Σ_{k≤12} r^k/(k+1)!` in Horner
/// form (truncation below 1e-17 relative).
#[inline(always)]
fn expm1_quotient(r: f64) -> f64 {
    // 1/(k+1)! for k = 12, 11, …, 0.
    const TAYLOR: [f64; 13] = [
        1.0 / 6_227_020_800.0,
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
    ];
    let mut q = TAYLOR[0];
    for c in &TAYLOR[1..] {
        q = q * r + c;
    }
    q
}

/// `1 / (1 + e^(−x))` without overflow.
fn sigmoid<D: DualNum<Primitive = f64> + Copy>(x: D) -> D {
    if x.re() >= 0.0 {
        ((-x).exp() + 1.0).recip()
    } else {
        let e = x.exp();
        e / (e + 1.0)
    }
}

/// `tanh(x)`; num-dual's dual tanh is sinh/cosh, which overflows to NaN for |x| ≳ 710, so
/// large arguments go through `2σ(2x) − 1` (no cancellation there: |tanh| ≈ 1).
fn stable_tanh<D: DualNum<Primitive = f64> + Copy>(x: D) -> D {
    if x.re().abs() < 20.0 {
        x.tanh()
    } else {
        sigmoid(x * 2.0) * 2.0 - 1.0
    }
}

fn names<'a>(it: impl Iterator<Item = &'a Activation>) -> String {
    it.map(|a| a.name()).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, ModelError> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| ModelError::UnknownActivation {
                name: s.to_string(),
                valid: names(Self::ALL.iter()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_dual::{Dual2_64, Dual64};

    #[test]
    fn the_branch_free_exponential_is_accurate_to_two_ulps() {
        let mut worst = 0.0f64;
        for k in 0..=200_000 {
            let x = (-708.0 * (k as f64 / 200_000.0).powi(3) - 1e-3 * (k % 7) as f64).max(-708.0);
            let (fast, libm) = (exp_nonpositive(x), x.exp());
            worst = worst.max((fast - libm).abs() / libm);
        }
        assert!(
            worst <= 2.0 * f64::EPSILON,
            "worst relative error {worst:e}"
        );
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(f64::NAN).is_nan());
        assert_eq!(exp_nonpositive(-708.5), 0.0);
        assert_eq!(exp_nonpositive(-1e4), 0.0);
        assert!(exp_nonpositive(-707.9) > 2.2e-308);
    }

    #[test]
    fn closed_form_derivatives_match_duals() {
        for a in Activation::ALL {
            for k in -80..=80 {
                let x = 0.37 * k as f64 + 0.011;
                let (v, d) = a.value_and_derivative(x);
                let y = a.apply(Dual64::from_re(x).derivative());
                assert!(
                    (v - y.re).abs() <= 1e-14 * (1.0 + y.re.abs()),
                    "{a} value at {x}"
                );
                assert!(
                    (d - y.eps).abs() <= 1e-13 * (1.0 + y.eps.abs()),
                    "{a} slope at {x}: {d} vs {}",
                    y.eps
                );
            }
        }
    }

    #[test]
    fn the_slice_form_matches_duals() {
        for a in Activation::ALL {
            let mut z: Vec<f64> = (-80..=80).map(|k| 0.37 * k as f64 + 0.011).collect();
            let x = z.clone();
            let mut slopes = vec![0.0; z.len()];
            let (mut z_lib, mut slopes_lib) = (z.clone(), slopes.clone());
            a.values_and_slopes(&mut z, &mut slopes, Exponential::Vectorized);
            a.values_and_slopes(&mut z_lib, &mut slopes_lib, Exponential::Library);
            for (k, x) in x.iter().enumerate() {
                assert_eq!((z_lib[k], slopes_lib[k]), a.value_and_derivative(*x));
                // The AVX-512F or AVX2 copy (on CPUs that have them) gives the bits of one
                // value at a time in baseline code.
                assert_eq!(
                    (z[k], slopes[k]),
                    a.value_and_derivative_with(*x, exp_nonpositive)
                );
            }
            for ((x, v), d) in x.iter().zip(&z).zip(&slopes) {
                let y = a.apply(Dual64::from_re(*x).derivative());
                assert!(
                    (v - y.re).abs() <= 1e-14 * (1.0 + y.re.abs()),
                    "{a} value at {x}"
                );
                assert!(
                    (d - y.eps).abs() <= 1e-13 * (1.0 + y.eps.abs()),
                    "{a} slope at {x}"
                );
            }
        }
    }

    #[test]
    fn closed_form_second_derivatives_match_second_order_duals() {
        for a in Activation::ALL {
            for k in -80..=80 {
                let x = 0.37 * k as f64 + 0.011;
                let (v, d1, d2) = a.value_and_derivatives(x);
                let y = a.apply(Dual2_64::from_re(x).derivative());
                let close = |p: f64, q: f64| (p - q).abs() <= 1e-13 * (1.0 + q.abs());
                assert!(close(v, y.re), "{a} value at {x}: {v} vs {}", y.re);
                assert!(close(d1, y.v1), "{a} slope at {x}: {d1} vs {}", y.v1);
                assert!(close(d2, y.v2), "{a} curvature at {x}: {d2} vs {}", y.v2);
            }
        }
    }

    /// Distance in units in the last place between two finite numbers of one sign.
    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    #[test]
    fn branch_free_tanh_is_within_three_ulp_of_the_library() {
        let mut worst = (0, 0.0);
        // Every scale from 1e-300 to 40 (then tanh = ±1), both signs, 200 points per octave.
        let mut x = 1e-300f64;
        while x < 40.0 {
            for v in [x, -x] {
                let d = ulps(tanh_branch_free(v), v.tanh());
                if d > worst.0 {
                    worst = (d, v);
                }
            }
            x *= 1.0035;
        }
        assert!(worst.0 <= 3, "{} ulp at {}", worst.0, worst.1);
        for (v, t) in [
            (0.0, 0.0),
            (-0.0, -0.0),
            (40.0, 1.0),
            (800.0, 1.0),
            (f64::INFINITY, 1.0),
            (f64::NEG_INFINITY, -1.0),
        ] {
            assert_eq!(tanh_branch_free(v).to_bits(), f64::to_bits(t), "tanh({v})");
        }
        assert!(tanh_branch_free(f64::NAN).is_nan());
    }

    #[test]
    fn derivatives_in_place_are_the_bits_of_one_call_per_point() {
        for a in Activation::ALL {
            // 13 points: three runs of four and a remainder.
            let z: Vec<f64> = (0..13).map(|k| 0.9 * k as f64 - 5.3).collect();
            let mut triples: Vec<f64> = z.iter().flat_map(|&z| [z, 7.0, 7.0]).collect();
            a.values_and_derivatives_in_place(&mut triples);
            for (t, &z) in triples.chunks_exact(3).zip(&z) {
                let (v, d1, d2) = a.value_and_derivatives(z);
                assert_eq!(
                    [t[0], t[1], t[2]].map(f64::to_bits),
                    [v, d1, d2].map(f64::to_bits),
                    "{a} at {z}"
                );
            }
        }
    }

    #[test]
    fn values_match_closed_forms() {
        let x = 0.7f64;
        assert!((Activation::Tanh.apply(x) - x.tanh()).abs() < 1e-15);
        assert!((Activation::Sigmoid.apply(x) - 1.0 / (1.0 + (-x).exp())).abs() < 1e-15);
        assert!((Activation::Softplus.apply(x) - (1.0 + x.exp()).ln()).abs() < 1e-15);
        // GELU tanh form at x = 1: 0.8411919906082768 (JAX's jax.nn.gelu(1.0)).
        assert!((Activation::Gelu.apply(1.0f64) - 0.841_191_990_608_276_8).abs() < 1e-12);
        assert_eq!(Activation::Relu.apply(-2.0f64), 0.0);
        assert_eq!(Activation::Identity.apply(-2.0f64), -2.0);
    }

    #[test]
    fn stable_for_large_arguments() {
        for x in [-800.0, -40.0, 40.0, 800.0] {
            for a in [
                Activation::Sigmoid,
                Activation::Softplus,
                Activation::Gelu,
                Activation::Tanh,
            ] {
                let (v, d1, d2) = a.value_and_derivatives(x);
                assert!(
                    v.is_finite() && d1.is_finite() && d2.is_finite(),
                    "{a} at {x}: {v} {d1} {d2}"
                );
            }
        }
        assert!((Activation::Softplus.apply(800.0f64) - 800.0).abs() < 1e-12);
        assert_eq!(Activation::Sigmoid.apply(-800.0f64), 0.0);
    }

    #[test]
    fn derivatives_match_finite_differences() {
        let h = 1e-5;
        for a in Activation::ALL.into_iter().filter(|a| a.is_smooth()) {
            for x in [-3.0, -0.4, 0.0, 0.3, 2.5] {
                let (_, d1, d2) = a.value_and_derivatives(x);
                let fd1 = (a.apply(x + h) - a.apply(x - h)) / (2.0 * h);
                let fd2 = (a.apply(x + h) - 2.0 * a.apply(x) + a.apply(x - h)) / (h * h);
                assert!((d1 - fd1).abs() < 1e-8, "{a}' at {x}: {d1} vs {fd1}");
                assert!((d2 - fd2).abs() < 1e-4, "{a}'' at {x}: {d2} vs {fd2}");
                // First-order duals agree with the second-order ones.
                let y = a.apply(Dual64::from_re(x).derivative());
                assert!((y.eps - d1).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn names_parse_and_errors_list_the_valid_ones() {
        for a in Activation::ALL {
            assert_eq!(a.name().parse::<Activation>(), Ok(a));
        }
        let err = "swish".parse::<Activation>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown activation `swish` (valid: tanh, sigmoid, softplus, gelu, relu, identity)"
        );
        let err = Activation::Relu.require_smooth().unwrap_err().to_string();
        assert!(
            err.contains("not twice differentiable")
                && err.contains("tanh, sigmoid, softplus, gelu, identity"),
            "{err}"
        );
        assert!(Activation::Gelu.require_smooth().is_ok());
    }
}
