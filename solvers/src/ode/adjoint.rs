//! Exact gradients of a loss on an explicit Runge–Kutta solution ("discretize, then
//! differentiate"): the forward pass records each accepted step (time, step size, stage
//! states); the backward pass runs the adjoint of every step in reverse, with the system's
//! vector–Jacobian products, and returns the gradient with respect to the parameters and the
//! initial state. The accepted step sizes are treated as constants, so the result is the exact
//! gradient of the computed solution for that step sequence; one backward pass costs one
//! vector–Jacobian product per stage, about the cost of the forward solve.
//!
//! Outputs are taken at the nodes: the adaptive solver shortens a step to land on the next
//! output time (instead of interpolating), which keeps the backward pass exact and simple.

use super::dopri5::{initial_step, BETA, FAC_MAX, FAC_MIN, SAFETY};
use super::tableau::{Tableau, DOPRI5, RK4};
use super::{check_inputs, Dopri5Settings, OdeError, OdeStats, OdeSystem};

/// A right-hand side `f(t, y; θ)` with vector–Jacobian products.
pub trait DifferentiableSystem: OdeSystem {
    /// Number of parameters θ.
    fn n_params(&self) -> usize;
    /// For the cotangent `w`: writes `wᵀ·∂f/∂y` into `grad_y` and adds `wᵀ·∂f/∂θ` to
    /// `grad_params`.
    fn vjp(&self, t: f64, y: &[f64], w: &[f64], grad_y: &mut [f64], grad_params: &mut [f64]);
}

/// The explicit method of a differentiable solve.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    /// Classical RK4 with `substeps` equal steps between consecutive output times.
    Rk4 {
        /// Steps between consecutive outputs (≥ 1).
        substeps: usize,
    },
    /// Dormand–Prince 5(4) with PI step control; steps end on the output times.
    Dopri5(Dopri5Settings),
}

/// A recorded forward solve: the outputs and what the backward pass needs.
#[derive(Clone, Debug, Default)]
pub struct Trajectory {
    /// States at the output times.
    pub y: Vec<Vec<f64>>,
    /// Counters of the forward pass.
    pub stats: OdeStats,
    dim: usize,
    stages: usize,
    /// Per accepted step: (t, h).
    steps: Vec<(f64, f64)>,
    /// Per accepted step: its stage states, `stages × dim` values.
    stage_states: Vec<f64>,
    /// For each output, the number of accepted steps taken before it.
    output_after: Vec<usize>,
    method_is_rk4: bool,
}

/// Gradient of a loss with respect to the parameters and the initial state.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradient {
    /// ∂L/∂θ.
    pub params: Vec<f64>,
    /// ∂L/∂y0.
    pub initial_state: Vec<f64>,
    /// Vector–Jacobian products evaluated by the backward pass.
    pub nvjp: usize,
}

/// Integrates from `(t0, y0)` to the output `times` (non-decreasing, ≥ t0), recording the
/// steps for [`gradient`].
pub fn solve_recorded(
    method: &Method,
    sys: &impl OdeSystem,
    t0: f64,
    y0: &[f64],
    times: &[f64],
) -> Result<Trajectory, OdeError> {
    check_inputs(sys.dim(), t0, y0, times)?;
    match method {
        Method::Rk4 { substeps } => forward_fixed(&RK4, sys, t0, y0, times, (*substeps).max(1)),
        Method::Dopri5(settings) => forward_dopri5(settings, sys, t0, y0, times),
    }
}

/// One explicit RK step from `(t, y)` with step `h`: stage derivatives into `k`, stage states
/// appended to `record`, the new state into `y_new` (using the `b` weights).
#[allow(clippy::too_many_arguments)]
fn rk_step<const S: usize>(
    tab: &Tableau<S>,
    sys: &impl OdeSystem,
    t: f64,
    h: f64,
    y: &[f64],
    k: &mut [Vec<f64>],
    first_stage_known: bool,
    record: &mut Vec<f64>,
    y_new: &mut [f64],
    nfe: &mut usize,
) {
    let n = y.len();
    let mut tmp = vec![0.0; n];
    for s in 0..S {
        tmp.copy_from_slice(y);
        for (j, kj) in k.iter().enumerate().take(s) {
            let a = tab.a[s][j];
            if a != 0.0 {
                tmp.iter_mut().zip(kj).for_each(|(v, d)| *v += h * a * d);
            }
        }
        record.extend_from_slice(&tmp);
        if s == 0 && first_stage_known {
            continue;
        }
        sys.rhs(t + tab.c[s] * h, &tmp, &mut k[s]);
        *nfe += 1;
    }
    for i in 0..n {
        y_new[i] = y[i] + h * (0..S).map(|s| tab.b[s] * k[s][i]).sum::<f64>();
    }
}

fn forward_fixed<const S: usize>(
    tab: &Tableau<S>,
    sys: &impl OdeSystem,
    t0: f64,
    y0: &[f64],
    times: &[f64],
    substeps: usize,
) -> Result<Trajectory, OdeError> {
    let n = sys.dim();
    let mut tr = Trajectory {
        dim: n,
        stages: S,
        method_is_rk4: true,
        ..Default::default()
    };
    let mut y = y0.to_vec();
    let mut y_new = vec![0.0; n];
    let mut k = vec![vec![0.0; n]; S];
    let mut t = t0;
    for &target in times {
        let h = (target - t) / substeps as f64;
        if h > 0.0 {
            for _ in 0..substeps {
                rk_step(
                    tab,
                    sys,
                    t,
                    h,
                    &y,
                    &mut k,
                    false,
                    &mut tr.stage_states,
                    &mut y_new,
                    &mut tr.stats.nfe,
                );
                tr.steps.push((t, h));
                tr.stats.accepted += 1;
                y.copy_from_slice(&y_new);
                t += h;
                if y.iter().any(|v| !v.is_finite()) {
                    return Err(OdeError::NonFinite { t });
                }
            }
        }
        t = target;
        tr.y.push(y.clone());
        tr.output_after.push(tr.steps.len());
    }
    Ok(tr)
}

fn forward_dopri5(
    s: &Dopri5Settings,
    sys: &impl OdeSystem,
    t0: f64,
    y0: &[f64],
    times: &[f64],
) -> Result<Trajectory, OdeError> {
    let n = sys.dim();
    let mut tr = Trajectory {
        dim: n,
        stages: 7,
        ..Default::default()
    };
    let t_end = times.last().copied().unwrap_or(t0);
    let mut next_out = 0;
    while next_out < times.len() && times[next_out] <= t0 {
        tr.y.push(y0.to_vec());
        tr.output_after.push(0);
        next_out += 1;
    }
    if next_out == times.len() {
        return Ok(tr);
    }
    let mut k = vec![vec![0.0; n]; 7];
    let mut y = y0.to_vec();
    let mut y_new = vec![0.0; n];
    let mut t = t0;
    sys.rhs(t, &y, &mut k[0]);
    tr.stats.nfe += 1;
    let h_max = s.h_max.unwrap_or(f64::INFINITY).min((t_end - t0).abs());
    let mut h = match s.h0 {
        Some(h) => h.min(h_max),
        None => initial_step(sys, t, &y, &k[0], s, h_max, &mut tr.stats),
    };
    let mut err_old: f64 = 1e-4;
    let mut rejected_last = false;
    let be = DOPRI5.b_embedded.expect("Dopri5 has an embedded method");
    let mut record = Vec::with_capacity(7 * n);
    while next_out < times.len() {
        if tr.stats.accepted + tr.stats.rejected >= s.max_steps {
            return Err(OdeError::TooManySteps {
                t,
                max_steps: s.max_steps,
            });
        }
        if h.abs() < 1e-14 * t.abs().max(1.0) {
            return Err(OdeError::StepSizeTooSmall { t, h });
        }
        let target = times[next_out];
        let lands = t + 1.01 * h >= target;
        let h_step = if lands { target - t } else { h };
        record.clear();
        rk_step(
            &DOPRI5,
            sys,
            t,
            h_step,
            &y,
            &mut k,
            true,
            &mut record,
            &mut y_new,
            &mut tr.stats.nfe,
        );
        // Stage 7 of the tableau is f at the new point (b = row 7 of a): k[6] = f(t+h, y_new).
        let mut err = 0.0;
        for i in 0..n {
            let e = h_step
                * (0..7)
                    .map(|st| (DOPRI5.b[st] - be[st]) * k[st][i])
                    .sum::<f64>();
            let sc = s.atol + s.rtol * y[i].abs().max(y_new[i].abs());
            err += (e / sc).powi(2);
        }
        let err = (err / n as f64).sqrt();
        if !err.is_finite() {
            tr.stats.rejected += 1;
            h *= FAC_MIN;
            rejected_last = true;
            continue;
        }
        let fac11 = err.powf(0.2 - BETA * 0.75);
        let fac = (fac11 / err_old.powf(BETA) / SAFETY).clamp(1.0 / FAC_MAX, 1.0 / FAC_MIN);
        let mut h_new = h_step / fac;
        if err <= 1.0 {
            err_old = err.max(1e-4);
            tr.stats.accepted += 1;
            tr.steps.push((t, h_step));
            tr.stage_states.extend_from_slice(&record);
            let (first, rest) = k.split_at_mut(6);
            first[0].copy_from_slice(&rest[0]);
            y.copy_from_slice(&y_new);
            t = if lands { target } else { t + h_step };
            if y.iter().any(|v| !v.is_finite()) {
                return Err(OdeError::NonFinite { t });
            }
            while next_out < times.len() && times[next_out] <= t {
                tr.y.push(y.clone());
                tr.output_after.push(tr.steps.len());
                next_out += 1;
            }
            h_new = h_new.min(h_max);
            if rejected_last {
                h_new = h_new.min(h_step);
            }
            // A step shortened to hit an output does not shrink the next one.
            if lands {
                h_new = h_new.max(h.min(h_max));
            }
            rejected_last = false;
        } else {
            h_new = h_step / (fac11 / SAFETY).min(1.0 / FAC_MIN);
            tr.stats.rejected += 1;
            rejected_last = true;
        }
        h = h_new;
    }
    Ok(tr)
}

/// Backward pass: `output_cotangents[j]` is ∂L/∂y(t_j) for every output `j` of `trajectory`;
/// returns ∂L/∂θ and ∂L/∂y0.
pub fn gradient(
    trajectory: &Trajectory,
    sys: &impl DifferentiableSystem,
    output_cotangents: &[Vec<f64>],
) -> Gradient {
    if trajectory.method_is_rk4 {
        backward(&RK4, trajectory, sys, output_cotangents)
    } else {
        backward(&DOPRI5, trajectory, sys, output_cotangents)
    }
}

fn backward<const S: usize>(
    tab: &Tableau<S>,
    tr: &Trajectory,
    sys: &impl DifferentiableSystem,
    cot: &[Vec<f64>],
) -> Gradient {
    debug_assert_eq!(tr.stages, S);
    let n = tr.dim;
    let mut grad_params = vec![0.0; sys.n_params()];
    let mut adj = vec![0.0; n];
    let mut k_bar = vec![vec![0.0; n]; S];
    let mut stage_bar = vec![0.0; n];
    let mut nvjp = 0;
    // Outputs in reverse: inject each cotangent when the backward sweep passes its step.
    let mut next_out = cot.len().min(tr.output_after.len());
    let inject = |step: usize, adj: &mut [f64], next_out: &mut usize| {
        while *next_out > 0 && tr.output_after[*next_out - 1] == step {
            *next_out -= 1;
            for (a, c) in adj.iter_mut().zip(&cot[*next_out]) {
                *a += c;
            }
        }
    };
    for step in (0..tr.steps.len()).rev() {
        inject(step + 1, &mut adj, &mut next_out);
        let (t, h) = tr.steps[step];
        let states = &tr.stage_states[step * S * n..(step + 1) * S * n];
        // y_{n+1} = y_n + h Σ b_s k_s,  k_s = f(t + c_s h, Y_s),  Y_s = y_n + h Σ_{j<s} a_sj k_j.
        for (s, kb) in k_bar.iter_mut().enumerate() {
            for (v, a) in kb.iter_mut().zip(&adj) {
                *v = h * tab.b[s] * a;
            }
        }
        for s in (0..S).rev() {
            if k_bar[s].iter().all(|v| *v == 0.0) {
                continue;
            }
            let y_s = &states[s * n..(s + 1) * n];
            sys.vjp(
                t + tab.c[s] * h,
                y_s,
                &k_bar[s],
                &mut stage_bar,
                &mut grad_params,
            );
            nvjp += 1;
            for (a, v) in adj.iter_mut().zip(&stage_bar) {
                *a += v;
            }
            for (kb, &a) in k_bar.iter_mut().zip(&tab.a[s]).take(s) {
                if a != 0.0 {
                    for (kj, v) in kb.iter_mut().zip(&stage_bar) {
                        *kj += h * a * v;
                    }
                }
            }
        }
    }
    inject(0, &mut adj, &mut next_out);
    Gradient {
        params: grad_params,
        initial_state: adj,
        nvjp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linear system y' = A(θ) y with A = [[θ0, θ1], [−θ1, θ2]] plus a forcing θ3·sin t.
    struct Linear {
        theta: Vec<f64>,
    }
    impl OdeSystem for Linear {
        fn dim(&self) -> usize {
            2
        }
        fn rhs(&self, t: f64, y: &[f64], dy: &mut [f64]) {
            let p = &self.theta;
            dy[0] = p[0] * y[0] + p[1] * y[1];
            dy[1] = -p[1] * y[0] + p[2] * y[1] + p[3] * t.sin();
        }
    }
    impl DifferentiableSystem for Linear {
        fn n_params(&self) -> usize {
            4
        }
        fn vjp(&self, t: f64, y: &[f64], w: &[f64], gy: &mut [f64], gp: &mut [f64]) {
            let p = &self.theta;
            gy[0] = w[0] * p[0] - w[1] * p[1];
            gy[1] = w[0] * p[1] + w[1] * p[2];
            gp[0] += w[0] * y[0];
            gp[1] += w[0] * y[1] - w[1] * y[0];
            gp[2] += w[1] * y[1];
            gp[3] += w[1] * t.sin();
        }
    }

    fn loss(tr: &Trajectory, obs: &[Vec<f64>]) -> (f64, Vec<Vec<f64>>) {
        let mut l = 0.0;
        let cot =
            tr.y.iter()
                .zip(obs)
                .map(|(y, o)| {
                    y.iter()
                        .zip(o)
                        .map(|(a, b)| {
                            l += (a - b) * (a - b);
                            2.0 * (a - b)
                        })
                        .collect()
                })
                .collect();
        (l, cot)
    }

    fn check(method: Method, fixed_steps_in_fd: bool) {
        let theta = vec![-0.1, 1.0, -0.2, 0.5];
        let y0 = [1.0, 0.3];
        let times: Vec<f64> = (1..=12).map(|i| 0.25 * i as f64).collect();
        let obs: Vec<Vec<f64>> = times.iter().map(|t| vec![t.cos(), -t.sin()]).collect();
        let sys = Linear {
            theta: theta.clone(),
        };
        let tr = solve_recorded(&method, &sys, 0.0, &y0, &times).unwrap();
        let (_, cot) = loss(&tr, &obs);
        let g = gradient(&tr, &sys, &cot);
        // Central differences of the loss.
        let eval = |theta: &[f64], y0: &[f64]| {
            let s = Linear {
                theta: theta.to_vec(),
            };
            let m = if fixed_steps_in_fd {
                method.clone()
            } else {
                Method::Dopri5(Dopri5Settings {
                    rtol: 1e-12,
                    atol: 1e-12,
                    ..Default::default()
                })
            };
            loss(&solve_recorded(&m, &s, 0.0, y0, &times).unwrap(), &obs).0
        };
        let h = 1e-6;
        let tol = if fixed_steps_in_fd { 1e-7 } else { 1e-4 };
        for i in 0..4 {
            let (mut up, mut dn) = (theta.clone(), theta.clone());
            up[i] += h;
            dn[i] -= h;
            let fd = (eval(&up, &y0) - eval(&dn, &y0)) / (2.0 * h);
            assert!(
                (g.params[i] - fd).abs() < tol * fd.abs().max(1.0),
                "{method:?} θ{i}: {} vs {fd}",
                g.params[i]
            );
        }
        for i in 0..2 {
            let (mut up, mut dn) = (y0, y0);
            up[i] += h;
            dn[i] -= h;
            let fd = (eval(&theta, &up) - eval(&theta, &dn)) / (2.0 * h);
            assert!(
                (g.initial_state[i] - fd).abs() < tol * fd.abs().max(1.0),
                "{method:?} y0[{i}]: {} vs {fd}",
                g.initial_state[i]
            );
        }
    }

    #[test]
    fn rk4_gradient_matches_finite_differences() {
        check(Method::Rk4 { substeps: 3 }, true);
    }

    #[test]
    fn dopri5_gradient_matches_the_exact_ode_gradient() {
        // Tight tolerances: the discrete gradient approaches the continuous one.
        check(
            Method::Dopri5(Dopri5Settings {
                rtol: 1e-10,
                atol: 1e-12,
                ..Default::default()
            }),
            false,
        );
    }

    #[test]
    fn dopri5_lands_on_outputs_and_matches_the_interpolating_solver() {
        let sys = Linear {
            theta: vec![-0.1, 1.0, -0.2, 0.5],
        };
        let times: Vec<f64> = (0..=20).map(|i| 0.3 * i as f64).collect();
        let settings = Dopri5Settings::default();
        let tr = solve_recorded(
            &Method::Dopri5(settings.clone()),
            &sys,
            0.0,
            &[1.0, 0.3],
            &times,
        )
        .unwrap();
        let reference = super::super::Dopri5 { settings }
            .solve(&sys, 0.0, &[1.0, 0.3], &times)
            .unwrap();
        assert_eq!(tr.y.len(), times.len());
        for (a, b) in tr.y.iter().zip(&reference.y) {
            assert!((a[0] - b[0]).abs() < 1e-6 && (a[1] - b[1]).abs() < 1e-6);
        }
        assert_eq!(tr.y[0], vec![1.0, 0.3]);
    }
}
