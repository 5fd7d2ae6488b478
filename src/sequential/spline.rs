//! Cubic smoothing spline (Reinsch; Green & Silverman, *Nonparametric Regression and
//! Generalized Linear Models*, ch. 2): the natural cubic spline g minimizing
//! `p·Σ (y_i − g(t_i))² + (1 − p)·∫ g''(t)² dt`, with `p` in (0, 1] (1: interpolation).
//! The homotopy trainer couples the model to it between observations.

use colloc_solvers::linalg::BandCholesky;

/// A fitted cubic smoothing spline for one or more channels on shared knots.
#[derive(Clone, Debug, PartialEq)]
pub struct SmoothingSpline {
    knots: Vec<f64>,
    /// Per channel: fitted values at the knots.
    values: Vec<Vec<f64>>,
    /// Per channel: second derivatives at the knots (0 at both ends: natural spline).
    curvature: Vec<Vec<f64>>,
    /// The smoothing parameter used.
    pub smoothing: f64,
}

/// The default smoothing parameter for knots with mean spacing `h`: `1 / (1 + h³/6)`, the
/// automatic choice of the `csaps` package (de Boor's heuristic).
pub fn default_smoothing(knots: &[f64]) -> f64 {
    if knots.len() < 2 {
        return 1.0;
    }
    let h = (knots[knots.len() - 1] - knots[0]) / (knots.len() - 1) as f64;
    1.0 / (1.0 + h.powi(3) / 6.0)
}

impl SmoothingSpline {
    /// Fits `channels[c][i]` ≈ `g_c(knots[i])`; knots strictly increasing, at least 3.
    /// Returns `None` for fewer than 3 knots or non-increasing knots or `p` outside (0, 1].
    pub fn fit(knots: &[f64], channels: &[Vec<f64>], p: f64) -> Option<Self> {
        let n = knots.len();
        if n < 3 || !(p > 0.0 && p <= 1.0) || knots.windows(2).any(|w| w[1] <= w[0]) {
            return None;
        }
        let h: Vec<f64> = knots.windows(2).map(|w| w[1] - w[0]).collect();
        let m = n - 2;
        let alpha = (1.0 - p) / p;
        // Q (n × m) and R (m × m), column j ↔ interior knot j + 1.
        let q = |i: usize, j: usize| -> f64 {
            let k = j + 1;
            if i + 1 == k {
                1.0 / h[k - 1]
            } else if i == k {
                -1.0 / h[k - 1] - 1.0 / h[k]
            } else if i == k + 1 {
                1.0 / h[k]
            } else {
                0.0
            }
        };
        // A = R + α QᵀQ: R tridiagonal, QᵀQ pentadiagonal (column j of Q lives on rows j,
        // j + 1, j + 2), so A has half-bandwidth 2. Lower band entry (i, j), j ≤ i ≤ j + 2:
        let a = |i: usize, j: usize| -> f64 {
            let r = match i - j {
                0 => (h[i] + h[i + 1]) / 3.0,
                1 => h[i] / 6.0,
                _ => 0.0,
            };
            let qtq: f64 = (i..=(j + 2).min(n - 1))
                .map(|row| q(row, i) * q(row, j))
                .sum();
            r + alpha * qtq
        };
        let chol = BandCholesky::new(m, 2, a)?;
        let mut values = Vec::with_capacity(channels.len());
        let mut curvature = Vec::with_capacity(channels.len());
        for y in channels {
            if y.len() != n {
                return None;
            }
            let mut gamma: Vec<f64> = (0..m)
                .map(|j| (j..j + 3).map(|i| q(i, j) * y[i]).sum())
                .collect();
            chol.solve_in_place(&mut gamma);
            let g: Vec<f64> = (0..n)
                .map(|i| {
                    let qg: f64 = (i.saturating_sub(2)..(i + 1).min(m))
                        .map(|j| q(i, j) * gamma[j])
                        .sum();
                    y[i] - alpha * qg
                })
                .collect();
            let mut c = vec![0.0; n];
            c[1..=m].copy_from_slice(&gamma);
            values.push(g);
            curvature.push(c);
        }
        Some(Self {
            knots: knots.to_vec(),
            values,
            curvature,
            smoothing: p,
        })
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.values.len()
    }

    /// Writes g_c(t) for every channel into `out` (linear extrapolation outside the knots).
    pub fn eval(&self, t: f64, out: &mut [f64]) {
        let x = &self.knots;
        let n = x.len();
        if t <= x[0] || t >= x[n - 1] {
            // Natural spline: g'' = 0 at the ends, so continue linearly.
            let (i, end) = if t <= x[0] {
                (0, x[0])
            } else {
                (n - 2, x[n - 1])
            };
            let h = x[i + 1] - x[i];
            for (c, o) in out.iter_mut().enumerate() {
                let (g, gm) = (&self.values[c], &self.curvature[c]);
                let slope = (g[i + 1] - g[i]) / h - h / 6.0 * (2.0 * gm[i] + gm[i + 1]);
                let slope_end = if i == 0 {
                    slope
                } else {
                    slope + h / 2.0 * (gm[i] + gm[i + 1])
                };
                let base = if i == 0 { g[0] } else { g[n - 1] };
                *o = base + slope_end * (t - end);
            }
            return;
        }
        let i = match x.binary_search_by(|v| v.total_cmp(&t)) {
            Ok(i) => i.min(n - 2),
            Err(i) => i - 1,
        };
        let h = x[i + 1] - x[i];
        let (a, b) = (t - x[i], x[i + 1] - t);
        for (c, o) in out.iter_mut().enumerate() {
            let (g, gm) = (&self.values[c], &self.curvature[c]);
            *o = (a * g[i + 1] + b * g[i]) / h
                - a * b / 6.0 * ((1.0 + a / h) * gm[i + 1] + (1.0 + b / h) * gm[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_equal_one_interpolates_and_reproduces_a_natural_cubic() {
        // With p = 1 the spline interpolates; on data from a straight line it is that line.
        let t: Vec<f64> = (0..8)
            .map(|i| i as f64 * 0.7 + 0.1 * (i % 3) as f64)
            .collect();
        let y: Vec<f64> = t.iter().map(|x| 2.0 - 0.5 * x).collect();
        let s = SmoothingSpline::fit(&t, std::slice::from_ref(&y), 1.0).unwrap();
        let mut out = [0.0];
        for (ti, yi) in t.iter().zip(&y) {
            s.eval(*ti, &mut out);
            assert!((out[0] - yi).abs() < 1e-12);
        }
        for x in [-1.0, 0.33, 2.5, 6.0] {
            s.eval(x, &mut out);
            assert!((out[0] - (2.0 - 0.5 * x)).abs() < 1e-12, "{x}");
        }
    }

    #[test]
    fn long_series_fit_in_linear_memory() {
        // 20,001 knots (the length of `vanderpol-long`): A is stored as a band, so this takes
        // 20,001 × 3 entries where a dense matrix would need 3.2 GB. Smoothing a sine sampled
        // without noise changes it by O(h⁴) only (away from the natural ends).
        let n = 20_001;
        let t: Vec<f64> = (0..n).map(|i| i as f64 * 0.015).collect();
        let y: Vec<f64> = t.iter().map(|x| x.sin()).collect();
        let s = SmoothingSpline::fit(&t, &[y], default_smoothing(&t)).unwrap();
        let mut out = [0.0];
        for x in [1.2345, 150.0, 250.5] {
            s.eval(x, &mut out);
            assert!((out[0] - f64::sin(x)).abs() < 1e-6, "{x}: {}", out[0]);
        }
    }

    #[test]
    fn interpolating_spline_converges_to_a_smooth_function() {
        // Error of the interpolating cubic spline away from the ends is O(h⁴).
        let err = |n: usize| {
            let t: Vec<f64> = (0..n).map(|i| i as f64 * 6.0 / (n - 1) as f64).collect();
            let y: Vec<f64> = t.iter().map(|x| x.sin()).collect();
            let s = SmoothingSpline::fit(&t, &[y], 1.0).unwrap();
            let mut out = [0.0];
            (0..200)
                .map(|k| 1.5 + 3.0 * k as f64 / 199.0)
                .map(|x| {
                    s.eval(x, &mut out);
                    (out[0] - x.sin()).abs()
                })
                .fold(0.0, f64::max)
        };
        let (e1, e2) = (err(31), err(61));
        assert!(e1 / e2 > 12.0, "{e1} / {e2}");
    }

    #[test]
    fn smoothing_reduces_noise_and_rejects_bad_parameters() {
        // Noisy samples of sin t: the smoothed values are closer to the truth than the data.
        let t: Vec<f64> = (0..62).map(|i| 0.1 * i as f64).collect();
        let noise: Vec<f64> = (0..62)
            .map(|i| 0.1 * (((i * 7919) % 13) as f64 / 6.0 - 1.0))
            .collect();
        let y: Vec<f64> = t.iter().zip(&noise).map(|(x, e)| x.sin() + e).collect();
        let p = 0.999;
        let s = SmoothingSpline::fit(&t, std::slice::from_ref(&y), p).unwrap();
        let mut out = [0.0];
        let (mut err_data, mut err_fit) = (0.0, 0.0);
        for (ti, yi) in t.iter().zip(&y) {
            s.eval(*ti, &mut out);
            err_fit += (out[0] - ti.sin()).powi(2);
            err_data += (yi - ti.sin()).powi(2);
        }
        assert!(err_fit < 0.5 * err_data, "{err_fit} vs {err_data}");
        assert!(SmoothingSpline::fit(&t, &[y], 0.0).is_none());
        assert!((default_smoothing(&t) - 1.0 / (1.0 + 1e-3 / 6.0)).abs() < 1e-12);
    }
}
