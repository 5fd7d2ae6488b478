//! Fixed-step classical Runge–Kutta.

use super::tableau::RK4;
use super::{check_inputs, OdeError, OdeSolution, OdeStats, OdeSystem};

/// Classical RK4 with `substeps` equal steps between consecutive output times.
#[derive(Clone, Copy, Debug)]
pub struct Rk4 {
    /// Steps between consecutive output times (≥ 1).
    pub substeps: usize,
}

impl Rk4 {
    /// Integrates from `(t0, y0)` and returns the states at `times` (non-decreasing, ≥ t0).
    pub fn solve(
        &self,
        sys: &impl OdeSystem,
        t0: f64,
        y0: &[f64],
        times: &[f64],
    ) -> Result<OdeSolution, OdeError> {
        check_inputs(sys.dim(), t0, y0, times)?;
        let n = sys.dim();
        let substeps = self.substeps.max(1);
        let mut y = y0.to_vec();
        let mut k = vec![vec![0.0; n]; 4];
        let mut tmp = vec![0.0; n];
        let mut stats = OdeStats::default();
        let mut out = Vec::with_capacity(times.len());
        let mut t = t0;
        for &target in times {
            let h = (target - t) / substeps as f64;
            if h > 0.0 {
                for _ in 0..substeps {
                    for s in 0..4 {
                        tmp.copy_from_slice(&y);
                        for (j, kj) in k.iter().enumerate().take(s) {
                            let a = RK4.a[s][j];
                            if a != 0.0 {
                                tmp.iter_mut().zip(kj).for_each(|(v, d)| *v += h * a * d);
                            }
                        }
                        sys.rhs(t + RK4.c[s] * h, &tmp, &mut k[s]);
                        stats.nfe += 1;
                    }
                    for i in 0..n {
                        y[i] += h * (0..4).map(|s| RK4.b[s] * k[s][i]).sum::<f64>();
                    }
                    t += h;
                    stats.accepted += 1;
                    if y.iter().any(|v| !v.is_finite()) {
                        return Err(OdeError::NonFinite { t });
                    }
                }
            }
            t = target;
            out.push(y.clone());
        }
        Ok(OdeSolution {
            t: times.to_vec(),
            y: out,
            stats,
        })
    }
}
