//! Dormand–Prince 5(4) with PI step-size control and 4th-order dense output, following
//! Hairer, Nørsett & Wanner, *Solving ODEs I*, and their `dopri5` code.

use super::tableau::{DOPRI5, DOPRI5_DENSE};
use super::{check_inputs, OdeError, OdeSolution, OdeStats, OdeSystem};
use serde::{Deserialize, Serialize};

/// Dopri5 settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dopri5Settings {
    /// Relative tolerance (default: 1e-7).
    pub rtol: f64,
    /// Absolute tolerance (default: 1e-9).
    pub atol: f64,
    /// First step; `None` chooses it from the problem (default: none).
    pub h0: Option<f64>,
    /// Largest step (default: unlimited).
    pub h_max: Option<f64>,
    /// Step limit (default: 1,000,000).
    pub max_steps: usize,
}

impl Default for Dopri5Settings {
    fn default() -> Self {
        Self {
            rtol: 1e-7,
            atol: 1e-9,
            h0: None,
            h_max: None,
            max_steps: 1_000_000,
        }
    }
}

/// The Dopri5 integrator.
#[derive(Clone, Debug, Default)]
pub struct Dopri5 {
    /// Settings.
    pub settings: Dopri5Settings,
}

pub(super) const SAFETY: f64 = 0.9;
pub(super) const BETA: f64 = 0.04;
pub(super) const FAC_MIN: f64 = 0.2; // step may shrink to 1/5 ... (Hairer's fac1)
pub(super) const FAC_MAX: f64 = 10.0; // ... or grow 10× at most (fac2)

impl Dopri5 {
    /// Dopri5 with given tolerances and the other settings at their defaults.
    pub fn with_tolerances(rtol: f64, atol: f64) -> Self {
        Self {
            settings: Dopri5Settings {
                rtol,
                atol,
                ..Default::default()
            },
        }
    }

    /// Integrates from `(t0, y0)` and returns the states at `times` (non-decreasing, ≥ t0),
    /// interpolated with the dense output inside accepted steps.
    pub fn solve(
        &self,
        sys: &impl OdeSystem,
        t0: f64,
        y0: &[f64],
        times: &[f64],
    ) -> Result<OdeSolution, OdeError> {
        check_inputs(sys.dim(), t0, y0, times)?;
        let s = &self.settings;
        let n = sys.dim();
        let t_end = times.last().copied().unwrap_or(t0);
        let mut stats = OdeStats::default();
        let mut out: Vec<Vec<f64>> = Vec::with_capacity(times.len());
        let mut next_out = 0;
        while next_out < times.len() && times[next_out] <= t0 {
            out.push(y0.to_vec());
            next_out += 1;
        }
        if next_out == times.len() {
            return Ok(OdeSolution {
                t: times.to_vec(),
                y: out,
                stats,
            });
        }

        let mut k = vec![vec![0.0; n]; 7];
        let mut y = y0.to_vec();
        let mut y_new = vec![0.0; n];
        let mut y_err = vec![0.0; n];
        let mut tmp = vec![0.0; n];
        let mut rcont = vec![vec![0.0; n]; 5];
        let mut t = t0;
        sys.rhs(t, &y, &mut k[0]);
        stats.nfe += 1;
        let h_max = s.h_max.unwrap_or(f64::INFINITY).min((t_end - t0).abs());
        let mut h = match s.h0 {
            Some(h) => h.min(h_max),
            None => initial_step(sys, t, &y, &k[0], s, h_max, &mut stats),
        };
        let mut err_old: f64 = 1e-4;
        let mut rejected_last = false;

        loop {
            if stats.accepted + stats.rejected >= s.max_steps {
                return Err(OdeError::TooManySteps {
                    t,
                    max_steps: s.max_steps,
                });
            }
            if h.abs() < 1e-14 * t.abs().max(1.0) {
                return Err(OdeError::StepSizeTooSmall { t, h });
            }
            let last = t + 1.01 * h >= t_end;
            if last {
                h = t_end - t;
            }
            // Stages 2..7 (stage 7 is f at the new point: first same as last).
            for st in 1..7 {
                tmp.copy_from_slice(&y);
                for (j, kj) in k.iter().enumerate().take(st) {
                    let a = DOPRI5.a[st][j];
                    if a != 0.0 {
                        tmp.iter_mut().zip(kj).for_each(|(v, d)| *v += h * a * d);
                    }
                }
                if st == 6 {
                    y_new.copy_from_slice(&tmp);
                }
                let (_, rest) = k.split_at_mut(st);
                sys.rhs(t + DOPRI5.c[st] * h, &tmp, &mut rest[0]);
                stats.nfe += 1;
            }
            let be = DOPRI5.b_embedded.expect("Dopri5 has an embedded method");
            for i in 0..n {
                y_err[i] = h
                    * (0..7)
                        .map(|st| (DOPRI5.b[st] - be[st]) * k[st][i])
                        .sum::<f64>();
            }
            let mut err = 0.0;
            for i in 0..n {
                let sc = s.atol + s.rtol * y[i].abs().max(y_new[i].abs());
                err += (y_err[i] / sc).powi(2);
            }
            let err = (err / n as f64).sqrt();
            if !err.is_finite() {
                // Treat as a failed step: shrink strongly and retry.
                stats.rejected += 1;
                h *= FAC_MIN;
                rejected_last = true;
                if h.abs() < 1e-14 * t.abs().max(1.0) {
                    return Err(OdeError::NonFinite { t });
                }
                continue;
            }
            // PI controller (Hairer's dopri5).
            let fac11 = err.powf(0.2 - BETA * 0.75);
            let fac = (fac11 / err_old.powf(BETA) / SAFETY).clamp(1.0 / FAC_MAX, 1.0 / FAC_MIN);
            let mut h_new = h / fac;
            if err <= 1.0 {
                err_old = err.max(1e-4);
                stats.accepted += 1;
                // Dense output over [t, t + h].
                for i in 0..n {
                    let ydiff = y_new[i] - y[i];
                    let bspl = h * k[0][i] - ydiff;
                    rcont[0][i] = y[i];
                    rcont[1][i] = ydiff;
                    rcont[2][i] = bspl;
                    rcont[3][i] = ydiff - h * k[6][i] - bspl;
                    rcont[4][i] = h * (0..7).map(|st| DOPRI5_DENSE[st] * k[st][i]).sum::<f64>();
                }
                let t_new = if last { t_end } else { t + h };
                while next_out < times.len() && times[next_out] <= t_new {
                    let theta = if h == 0.0 {
                        1.0
                    } else {
                        (times[next_out] - t) / h
                    };
                    let th1 = 1.0 - theta;
                    out.push(
                        (0..n)
                            .map(|i| {
                                rcont[0][i]
                                    + theta
                                        * (rcont[1][i]
                                            + th1
                                                * (rcont[2][i]
                                                    + theta * (rcont[3][i] + th1 * rcont[4][i])))
                            })
                            .collect(),
                    );
                    next_out += 1;
                }
                let (first, rest) = k.split_at_mut(6);
                first[0].copy_from_slice(&rest[0]);
                y.copy_from_slice(&y_new);
                t = t_new;
                if y.iter().any(|v| !v.is_finite()) {
                    return Err(OdeError::NonFinite { t });
                }
                if last || next_out == times.len() {
                    break;
                }
                h_new = h_new.min(h_max);
                if rejected_last {
                    h_new = h_new.min(h);
                }
                rejected_last = false;
            } else {
                h_new = h / (fac11 / SAFETY).min(1.0 / FAC_MIN);
                stats.rejected += 1;
                rejected_last = true;
            }
            h = h_new;
        }
        Ok(OdeSolution {
            t: times.to_vec(),
            y: out,
            stats,
        })
    }
}

/// Hairer's starting-step heuristic (`hinit`).
pub(super) fn initial_step(
    sys: &impl OdeSystem,
    t: f64,
    y: &[f64],
    f0: &[f64],
    s: &Dopri5Settings,
    h_max: f64,
    stats: &mut OdeStats,
) -> f64 {
    let n = y.len();
    let sc = |i: usize| s.atol + s.rtol * y[i].abs();
    let dnf = (0..n).map(|i| (f0[i] / sc(i)).powi(2)).sum::<f64>() / n as f64;
    let dny = (0..n).map(|i| (y[i] / sc(i)).powi(2)).sum::<f64>() / n as f64;
    let mut h = if dnf <= 1e-10 || dny <= 1e-10 {
        1e-6
    } else {
        (dny / dnf).sqrt() * 0.01
    };
    h = h.min(h_max);
    let y1: Vec<f64> = (0..n).map(|i| y[i] + h * f0[i]).collect();
    let mut f1 = vec![0.0; n];
    sys.rhs(t + h, &y1, &mut f1);
    stats.nfe += 1;
    let der2 = ((0..n)
        .map(|i| ((f1[i] - f0[i]) / sc(i)).powi(2))
        .sum::<f64>()
        / n as f64)
        .sqrt()
        / h;
    let der12 = der2.max(dnf.sqrt());
    let h1 = if der12 <= 1e-15 {
        (h * 1e-3).max(1e-6)
    } else {
        (0.01 / der12).powf(0.2)
    };
    (100.0 * h).min(h1).min(h_max)
}
