//! Exact gradients of a loss on an explicit Runge–Kutta solution ("discretize, then
//! differentiate"): the forward pass records each accepted step (time, step size, stage
//! states); the backward pass runs the adjoint of every step in reverse, with the system's
//! vector–Jacobian products, and returns the gradient with respect to the parameters and the
//! initial state. The accepted step sizes are treated as constants, so the result is the exact
//! gradient of the computed solution for that step sequence; one backward pass costs one
//! vector–Jacobian product per stage, about the cost of the forward solve.
//!
//! Dopri5 takes its natural steps and produces the outputs inside a step with its 4th-order
//! continuous extension (Hairer's `dopri5` dense output), which is linear in the step's start
//! and stage derivatives, so the backward pass differentiates it exactly; only the last output
//! time ends a step. RK4 takes `substeps` equal steps between consecutive outputs.
//!
//! Systems that can keep what a VJP needs from their forward evaluations (an MLP's layer
//! values) do so under a slot per evaluation ([`DifferentiableSystem::rhs_taped`]); the backward
//! pass then replays those instead of evaluating the network again.

use super::dopri5::{initial_step, BETA, FAC_MAX, FAC_MIN, SAFETY};
use super::tableau::{Tableau, DOPRI5, DOPRI5_DENSE, RK4};
use super::{check_inputs, Dopri5Settings, OdeError, OdeStats, OdeSystem};

/// A right-hand side `f(t, y; θ)` with vector–Jacobian products.
pub trait DifferentiableSystem: OdeSystem {
    /// Number of parameters θ.
    fn n_params(&self) -> usize;
    /// For the cotangent `w`: writes `wᵀ·∂f/∂y` into `grad_y` and adds `wᵀ·∂f/∂θ` to
    /// `grad_params`.
    fn vjp(&self, t: f64, y: &[f64], w: &[f64], grad_y: &mut [f64], grad_params: &mut [f64]);

    /// Starts a new recording of forward evaluations and returns its id, or `None` (the
    /// default) when the system keeps nothing and VJPs are evaluated from scratch.
    fn begin_tape(&self) -> Option<u64> {
        None
    }
    /// [`OdeSystem::rhs`], keeping what a VJP at the same point needs under `slot` of the
    /// current recording (the default keeps nothing).
    fn rhs_taped(&self, t: f64, y: &[f64], dy: &mut [f64], slot: usize) {
        let _ = slot;
        self.rhs(t, y, dy);
    }
    /// [`DifferentiableSystem::vjp`] at the point recorded under `slot` of recording `tape`
    /// (`t` and `y` are that point). Implementations fall back to `vjp` when the recording is
    /// no longer there (the default always does).
    #[allow(clippy::too_many_arguments)]
    fn vjp_taped(
        &self,
        tape: u64,
        slot: usize,
        t: f64,
        y: &[f64],
        w: &[f64],
        grad_y: &mut [f64],
        grad_params: &mut [f64],
    ) {
        let _ = (tape, slot);
        self.vjp(t, y, w, grad_y, grad_params);
    }
}

/// The explicit method of a differentiable solve.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    /// Classical RK4 with `substeps` equal steps between consecutive output times.
    Rk4 {
        /// Steps between consecutive outputs (≥ 1).
        substeps: usize,
    },
    /// Dormand–Prince 5(4) with PI step control and dense output at the output times.
    Dopri5(Dopri5Settings),
}

/// Where an output was taken: at the end of a step, or inside one (dense output).
#[derive(Clone, Copy, Debug, PartialEq)]
enum OutputAt {
    /// After this many accepted steps (0: the initial state).
    StepEnd(usize),
    /// Inside accepted step `step` (0-based), at fraction `theta` of it.
    Dense { step: usize, theta: f64 },
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
    /// Per accepted step: the tape slot of each stage evaluation.
    stage_slots: Vec<usize>,
    /// The recording the slots refer to, if the system keeps one.
    tape: Option<u64>,
    /// Where each output was taken.
    outputs: Vec<OutputAt>,
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
    sys: &impl DifferentiableSystem,
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

/// Weights `w_s(θ)` of the Dopri5 continuous extension `y(t + θh) = y + h Σ_s w_s(θ) k_s`
/// (Hairer's `rcont` form expanded; `w_s(1) = b_s`).
fn dense_weights(theta: f64) -> [f64; 7] {
    let th1 = 1.0 - theta;
    let mut w = [0.0; 7];
    for (s, ws) in w.iter_mut().enumerate() {
        let b = DOPRI5.b[s];
        let first = if s == 0 { 1.0 } else { 0.0 };
        let last = if s == 6 { 1.0 } else { 0.0 };
        *ws = theta * b
            + theta * th1 * (first - b)
            + theta * theta * th1 * (2.0 * b - first - last)
            + theta * theta * th1 * th1 * DOPRI5_DENSE[s];
    }
    w
}

/// One explicit RK step from `(t, y)` with step `h`: stage derivatives into `k`, stage states
/// appended to `record`, their tape slots into `slots`, the new state into `y_new`.
#[allow(clippy::too_many_arguments)]
fn rk_step<const S: usize>(
    tab: &Tableau<S>,
    sys: &impl DifferentiableSystem,
    t: f64,
    h: f64,
    y: &[f64],
    k: &mut [Vec<f64>],
    first_stage_known: bool,
    record: &mut Vec<f64>,
    slots: &mut [usize; S],
    next_slot: &mut usize,
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
        slots[s] = *next_slot;
        *next_slot += 1;
        sys.rhs_taped(t + tab.c[s] * h, &tmp, &mut k[s], slots[s]);
        *nfe += 1;
    }
    for i in 0..n {
        y_new[i] = y[i] + h * (0..S).map(|s| tab.b[s] * k[s][i]).sum::<f64>();
    }
}

fn forward_fixed<const S: usize>(
    tab: &Tableau<S>,
    sys: &impl DifferentiableSystem,
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
        tape: sys.begin_tape(),
        ..Default::default()
    };
    let mut y = y0.to_vec();
    let mut y_new = vec![0.0; n];
    let mut k = vec![vec![0.0; n]; S];
    let mut slots = [0; S];
    let mut next_slot = 0;
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
                    &mut slots,
                    &mut next_slot,
                    &mut y_new,
                    &mut tr.stats.nfe,
                );
                tr.steps.push((t, h));
                tr.stage_slots.extend_from_slice(&slots);
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
        tr.outputs.push(OutputAt::StepEnd(tr.steps.len()));
    }
    Ok(tr)
}

fn forward_dopri5(
    s: &Dopri5Settings,
    sys: &impl DifferentiableSystem,
    t0: f64,
    y0: &[f64],
    times: &[f64],
) -> Result<Trajectory, OdeError> {
    let n = sys.dim();
    let mut tr = Trajectory {
        dim: n,
        stages: 7,
        tape: sys.begin_tape(),
        ..Default::default()
    };
    let t_end = times.last().copied().unwrap_or(t0);
    let mut next_out = 0;
    while next_out < times.len() && times[next_out] <= t0 {
        tr.y.push(y0.to_vec());
        tr.outputs.push(OutputAt::StepEnd(0));
        next_out += 1;
    }
    if next_out == times.len() {
        return Ok(tr);
    }
    let mut k = vec![vec![0.0; n]; 7];
    let mut y = y0.to_vec();
    let mut y_new = vec![0.0; n];
    let mut t = t0;
    let mut slots = [0usize; 7];
    let mut next_slot = 1;
    sys.rhs_taped(t, &y, &mut k[0], 0);
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
        // Only the end of the interval ends a step; other outputs are interpolated.
        let last = t + 1.01 * h >= t_end;
        let h_step = if last { t_end - t } else { h };
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
            &mut slots,
            &mut next_slot,
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
            let step = tr.steps.len();
            tr.stats.accepted += 1;
            tr.steps.push((t, h_step));
            tr.stage_states.extend_from_slice(&record);
            tr.stage_slots.extend_from_slice(&slots);
            let t_new = if last { t_end } else { t + h_step };
            while next_out < times.len() && times[next_out] <= t_new {
                if times[next_out] >= t_new {
                    tr.y.push(y_new.clone());
                    tr.outputs.push(OutputAt::StepEnd(step + 1));
                } else {
                    let theta = (times[next_out] - t) / h_step;
                    let w = dense_weights(theta);
                    tr.y.push(
                        (0..n)
                            .map(|i| y[i] + h_step * (0..7).map(|st| w[st] * k[st][i]).sum::<f64>())
                            .collect(),
                    );
                    tr.outputs.push(OutputAt::Dense { step, theta });
                }
                next_out += 1;
            }
            // First same as last: stage 7 of this step is stage 1 of the next.
            let (first, rest) = k.split_at_mut(6);
            first[0].copy_from_slice(&rest[0]);
            slots[0] = slots[6];
            y.copy_from_slice(&y_new);
            t = t_new;
            if y.iter().any(|v| !v.is_finite()) {
                return Err(OdeError::NonFinite { t });
            }
            h_new = h_new.min(h_max);
            if rejected_last {
                h_new = h_new.min(h_step);
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
    let mut direct = vec![0.0; n];
    let mut nvjp = 0;
    // Outputs in reverse: each cotangent enters when the sweep reaches its step.
    let mut next_out = cot.len().min(tr.outputs.len());
    let inject_step_end = |steps_done: usize, adj: &mut [f64], next_out: &mut usize| {
        while *next_out > 0 && tr.outputs[*next_out - 1] == OutputAt::StepEnd(steps_done) {
            *next_out -= 1;
            for (a, c) in adj.iter_mut().zip(&cot[*next_out]) {
                *a += c;
            }
        }
    };
    for step in (0..tr.steps.len()).rev() {
        inject_step_end(step + 1, &mut adj, &mut next_out);
        let (t, h) = tr.steps[step];
        let states = &tr.stage_states[step * S * n..(step + 1) * S * n];
        let slots = &tr.stage_slots[step * S..(step + 1) * S];
        // y_{n+1} = y_n + h Σ b_s k_s,  k_s = f(t + c_s h, Y_s),  Y_s = y_n + h Σ_{j<s} a_sj k_j.
        for (s, kb) in k_bar.iter_mut().enumerate() {
            for (v, a) in kb.iter_mut().zip(&adj) {
                *v = h * tab.b[s] * a;
            }
        }
        // Dense outputs inside the step: y(θ) = y_n + h Σ_s w_s(θ) k_s.
        direct.iter_mut().for_each(|v| *v = 0.0);
        while next_out > 0 {
            let OutputAt::Dense { step: at, theta } = tr.outputs[next_out - 1] else {
                break;
            };
            if at != step {
                break;
            }
            next_out -= 1;
            let w = dense_weights(theta);
            let c = &cot[next_out];
            for (s, kb) in k_bar.iter_mut().enumerate() {
                for (v, ci) in kb.iter_mut().zip(c) {
                    *v += h * w[s] * ci;
                }
            }
            for (d, ci) in direct.iter_mut().zip(c) {
                *d += ci;
            }
        }
        for s in (0..S).rev() {
            if k_bar[s].iter().all(|v| *v == 0.0) {
                continue;
            }
            let y_s = &states[s * n..(s + 1) * n];
            let t_s = t + tab.c[s] * h;
            match tr.tape {
                Some(tape) => sys.vjp_taped(
                    tape,
                    slots[s],
                    t_s,
                    y_s,
                    &k_bar[s],
                    &mut stage_bar,
                    &mut grad_params,
                ),
                None => sys.vjp(t_s, y_s, &k_bar[s], &mut stage_bar, &mut grad_params),
            }
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
        for (a, d) in adj.iter_mut().zip(&direct) {
            *a += d;
        }
    }
    inject_step_end(0, &mut adj, &mut next_out);
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
    fn dopri5_dense_output_gradient_is_exact_for_frozen_steps() {
        // Huge tolerances with h0 = h_max: every step is h_max whatever θ, so finite
        // differences see the same step sequence, and the outputs (every 0.25) fall inside
        // steps of 0.07: the dense-output adjoint is checked to finite-difference accuracy.
        check(
            Method::Dopri5(Dopri5Settings {
                rtol: 1e10,
                atol: 1e10,
                h0: Some(0.07),
                h_max: Some(0.07),
                ..Default::default()
            }),
            true,
        );
    }

    #[test]
    fn dense_weights_end_at_b_and_start_at_zero() {
        let w1 = dense_weights(1.0);
        let w0 = dense_weights(0.0);
        for s in 0..7 {
            assert!((w1[s] - DOPRI5.b[s]).abs() < 1e-15);
            assert_eq!(w0[s], 0.0);
        }
    }

    #[test]
    fn dopri5_outputs_match_the_interpolating_solver() {
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
