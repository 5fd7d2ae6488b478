//! The MLP as a differentiable ODE right-hand side, in the model's structure (black box,
//! second order, gray box) and with time-dependent weights when the model has a time basis.

use colloc_models::{Mlp, MlpTape};
use colloc_solvers::ode::adjoint::DifferentiableSystem;
use colloc_solvers::ode::OdeSystem;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// `y' = F_θ(t, y)` for an MLP whose parameters are `params` (same layout as `model.params`):
/// the network `N_θ(y[, t])` placed in the model's [`colloc_models::Structure`], with
/// `θ = θ(t)` when the model has a time basis.
/// During a recorded solve it keeps every evaluation's layer values, so the backward pass
/// replays them instead of running the network again.
#[derive(Debug)]
pub struct NeuralOde<'a> {
    model: &'a Mlp,
    params: &'a [f64],
    /// `params`' weight matrices transposed ([`Mlp::transposed_weights`]), for constant
    /// weights (no time basis).
    transposed: Option<Vec<f64>>,
    /// The last unrecorded forward pass ([`MlpTape::saved_len`] values).
    pass: RefCell<Vec<f64>>,
    /// Backward buffers.
    tape: RefCell<MlpTape>,
    input: RefCell<Vec<f64>>,
    recording: RefCell<Recording>,
    /// Weights at the current time (time basis) and their gradient.
    weights: RefCell<(Vec<f64>, Vec<f64>)>,
}

/// Saved tapes of one recorded solve, `stride` values per slot. Its buffers outlive the system:
/// a dropped [`NeuralOde`] leaves them to the next one made on the same thread (training makes
/// one per epoch), instead of regrowing — and faulting in — hundreds of kilobytes each epoch.
#[derive(Debug, Default)]
struct Recording {
    id: u64,
    stride: usize,
    data: Vec<f64>,
    filled: Vec<bool>,
}

impl<'a> NeuralOde<'a> {
    /// The vector field of `model` evaluated with `params` (same layout as `model.params`).
    pub fn new(model: &'a Mlp, params: &'a [f64]) -> Self {
        Self {
            model,
            params,
            transposed: model
                .time_basis
                .is_none()
                .then(|| model.transposed_weights(params)),
            pass: RefCell::new(vec![0.0; MlpTape::saved_len(model)]),
            tape: RefCell::new(MlpTape::new()),
            input: RefCell::new(Vec::with_capacity(model.layers[0])),
            weights: RefCell::new((Vec::new(), Vec::new())),
            recording: RefCell::new(Recording::reused(MlpTape::saved_len(model))),
        }
    }

    fn set_input(&self, t: f64, y: &[f64]) {
        let mut input = self.input.borrow_mut();
        input.clear();
        input.extend_from_slice(y);
        if self.model.time_input {
            input.push(t);
        }
    }
}

thread_local! {
    /// The recording of the last [`NeuralOde`] dropped on this thread.
    static SPARE_RECORDING: RefCell<Option<Recording>> = const { RefCell::new(None) };
}

/// Ids of recordings, unique in the process: a trajectory recorded by one system never
/// matches another system's recording, even one that took over its buffers.
static NEXT_RECORDING_ID: AtomicU64 = AtomicU64::new(1);

impl Recording {
    /// The thread's spare recording (or a new one) for passes of `stride` values.
    fn reused(stride: usize) -> Self {
        let mut r = SPARE_RECORDING
            .try_with(|spare| spare.borrow_mut().take())
            .ok()
            .flatten()
            .unwrap_or_default();
        if r.stride != stride {
            r.data.clear();
            r.filled.clear();
            r.stride = stride;
        }
        // No tape id matches 0 (ids start at 1), so the old tapes are never replayed;
        // `begin_tape` clears `filled` before the first recording.
        r.id = 0;
        r
    }
}

impl Drop for NeuralOde<'_> {
    fn drop(&mut self) {
        let r = std::mem::take(self.recording.get_mut());
        let _ = SPARE_RECORDING.try_with(|spare| *spare.borrow_mut() = Some(r));
    }
}

impl OdeSystem for NeuralOde<'_> {
    fn dim(&self) -> usize {
        self.model.state_inputs()
    }

    fn rhs(&self, t: f64, y: &[f64], dy: &mut [f64]) {
        self.rhs_into(t, y, dy, &mut self.pass.borrow_mut());
    }
}

impl DifferentiableSystem for NeuralOde<'_> {
    fn n_params(&self) -> usize {
        self.params.len()
    }

    fn vjp(&self, t: f64, y: &[f64], w: &[f64], grad_y: &mut [f64], grad_params: &mut [f64]) {
        let mut pass = self.pass.borrow_mut();
        self.forward_into(t, y, &mut pass);
        self.vjp_of_pass(&pass, t, w, grad_y, grad_params);
    }

    fn begin_tape(&self) -> Option<u64> {
        let mut r = self.recording.borrow_mut();
        r.id = NEXT_RECORDING_ID.fetch_add(1, Ordering::Relaxed);
        r.filled.iter_mut().for_each(|f| *f = false);
        Some(r.id)
    }

    fn rhs_taped(&self, t: f64, y: &[f64], dy: &mut [f64], slot: usize) {
        let mut r = self.recording.borrow_mut();
        let stride = r.stride;
        if r.filled.len() <= slot {
            r.filled.resize(slot + 1, false);
            r.data.resize((slot + 1) * stride, 0.0);
        }
        self.rhs_into(t, y, dy, &mut r.data[slot * stride..(slot + 1) * stride]);
        r.filled[slot] = true;
    }

    fn vjp_taped(
        &self,
        tape_id: u64,
        slot: usize,
        t: f64,
        y: &[f64],
        w: &[f64],
        grad_y: &mut [f64],
        grad_params: &mut [f64],
    ) {
        let r = self.recording.borrow();
        if r.id != tape_id || !r.filled.get(slot).copied().unwrap_or(false) {
            drop(r);
            return self.vjp(t, y, w, grad_y, grad_params);
        }
        let pass = &r.data[slot * r.stride..(slot + 1) * r.stride];
        self.vjp_of_pass(pass, t, w, grad_y, grad_params);
    }
}

impl NeuralOde<'_> {
    /// The network's pass at `(t, y)`, recorded into `pass`; returns its output.
    fn forward_into<'p>(&self, t: f64, y: &[f64], pass: &'p mut [f64]) -> &'p [f64] {
        self.set_input(t, y);
        if let Some(transposed) = &self.transposed {
            return self.model.forward_saved_transposed(
                self.params,
                transposed,
                &self.input.borrow(),
                pass,
            );
        }
        let mut weights = self.weights.borrow_mut();
        let params = self.model.params_at(self.params, t, &mut weights.0);
        self.model.forward_saved(params, &self.input.borrow(), pass)
    }

    /// `dy = F_θ(t, y)`, recording the network's pass into `pass`.
    fn rhs_into(&self, t: f64, y: &[f64], dy: &mut [f64], pass: &mut [f64]) {
        let out = self.forward_into(t, y, pass);
        self.model.structure.assemble(y, out, dy);
    }

    /// VJP at the recorded `pass` (a forward pass at time `t`): network, structure and
    /// time basis.
    fn vjp_of_pass(
        &self,
        pass: &[f64],
        t: f64,
        w: &[f64],
        grad_y: &mut [f64],
        grad_params: &mut [f64],
    ) {
        let model = self.model;
        let mut tape = self.tape.borrow_mut();
        let tape = &mut *tape;
        let states = grad_y.len();
        let mut grad_input = [0.0; 16];
        let mut grad_input_heap = Vec::new();
        let n_in = model.layers[0];
        let grad_input: &mut [f64] = if n_in <= grad_input.len() {
            &mut grad_input[..n_in]
        } else {
            grad_input_heap.resize(n_in, 0.0);
            &mut grad_input_heap
        };
        grad_y.iter_mut().for_each(|g| *g = 0.0);
        let w_net = model.structure.pull_back(w, grad_y);
        match &model.time_basis {
            None => model.vjp_saved(self.params, pass, tape, w_net, grad_params, grad_input),
            Some(basis) => {
                // θ(t) = Σ p_i θ_i: the network's weight gradient, scattered by p_i.
                let mut weights = self.weights.borrow_mut();
                let (buf, grad_w) = &mut *weights;
                let params = model.params_at(self.params, t, buf);
                let n = model.weights_per_copy();
                grad_w.clear();
                grad_w.resize(n, 0.0);
                model.vjp_saved(params, pass, tape, w_net, grad_w, grad_input);
                let mut p = vec![0.0; basis.len()];
                basis.values(t, &mut p);
                for (i, pi) in p.iter().enumerate() {
                    for (g, gw) in grad_params[i * n..(i + 1) * n]
                        .iter_mut()
                        .zip(grad_w.iter())
                    {
                        *g += pi * gw;
                    }
                }
            }
        }
        for (g, gi) in grad_y.iter_mut().zip(&grad_input[..states]) {
            *g += gi;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use colloc_models::Activation;
    use colloc_solvers::ode::adjoint::{gradient, solve_recorded, Method};
    use colloc_solvers::ode::Dopri5Settings;
    use num_dual::Dual64;

    /// MSE of the RK4 solution against `obs`, in forward-mode duals (seeded on parameter
    /// `seed`), with the same steps as `Method::Rk4 { substeps }`.
    fn dual_rk4_loss(
        model: &Mlp,
        seed: usize,
        y0: &[f64],
        times: &[f64],
        obs: &[Vec<f64>],
        substeps: usize,
    ) -> Dual64 {
        let params: Vec<Dual64> = model
            .params
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                if i == seed {
                    Dual64::from_re(p).derivative()
                } else {
                    Dual64::from_re(p)
                }
            })
            .collect();
        let d = y0.len();
        let mut scratch = vec![Dual64::from_re(0.0); 2 * model.max_width()];
        let f = |t: f64, y: &[Dual64], scratch: &mut [Dual64]| -> Vec<Dual64> {
            let mut input = y.to_vec();
            if model.time_input {
                input.push(Dual64::from_re(t));
            }
            let mut out = vec![Dual64::from_re(0.0); d];
            model.forward_with(&params, &input, &mut out, scratch);
            out
        };
        let mut y: Vec<Dual64> = y0.iter().map(|&v| Dual64::from_re(v)).collect();
        let (mut t, mut loss) = (0.0, Dual64::from_re(0.0));
        for (target, o) in times.iter().zip(obs) {
            let h = (target - t) / substeps as f64;
            for _ in 0..substeps {
                let k1 = f(t, &y, &mut scratch);
                let y2: Vec<Dual64> = y
                    .iter()
                    .zip(&k1)
                    .map(|(a, k)| *a + *k * (h / 2.0))
                    .collect();
                let k2 = f(t + h / 2.0, &y2, &mut scratch);
                let y3: Vec<Dual64> = y
                    .iter()
                    .zip(&k2)
                    .map(|(a, k)| *a + *k * (h / 2.0))
                    .collect();
                let k3 = f(t + h / 2.0, &y3, &mut scratch);
                let y4: Vec<Dual64> = y.iter().zip(&k3).map(|(a, k)| *a + *k * h).collect();
                let k4 = f(t + h, &y4, &mut scratch);
                for i in 0..d {
                    y[i] += (k1[i] + k2[i] * 2.0 + k3[i] * 2.0 + k4[i]) * (h / 6.0);
                }
                t += h;
            }
            t = *target;
            for (a, b) in y.iter().zip(o) {
                loss += (*a - *b) * (*a - *b);
            }
        }
        loss
    }

    fn setup(time_input: bool) -> (Mlp, Vec<f64>, Vec<Vec<f64>>) {
        let layers = if time_input { [3, 8, 2] } else { [2, 8, 2] };
        let model = Mlp::xavier(&layers, Activation::Gelu, time_input, 4).unwrap();
        let times: Vec<f64> = (1..=15).map(|i| 0.2 * i as f64).collect();
        let obs = times.iter().map(|t| vec![t.cos(), -t.sin()]).collect();
        (model, times, obs)
    }

    fn adjoint_gradient(model: &Mlp, method: &Method, times: &[f64], obs: &[Vec<f64>]) -> Vec<f64> {
        let sys = NeuralOde::new(model, &model.params);
        let tr = solve_recorded(method, &sys, 0.0, &[1.0, 0.0], times).unwrap();
        let cot: Vec<Vec<f64>> =
            tr.y.iter()
                .zip(obs)
                .map(|(y, o)| y.iter().zip(o).map(|(a, b)| 2.0 * (a - b)).collect())
                .collect();
        gradient(&tr, &sys, &cot).params
    }

    #[test]
    fn reverse_mode_gradient_equals_forward_mode_duals_through_rk4() {
        for time_input in [false, true] {
            let (model, times, obs) = setup(time_input);
            let g = adjoint_gradient(&model, &Method::Rk4 { substeps: 2 }, &times, &obs);
            for (i, gi) in g.iter().enumerate() {
                let dual = dual_rk4_loss(&model, i, &[1.0, 0.0], &times, &obs, 2).eps;
                assert!(
                    (gi - dual).abs() < 1e-10 * dual.abs().max(1.0),
                    "θ_{i}: reverse {gi} vs forward {dual}"
                );
            }
        }
    }

    #[test]
    fn dopri5_gradient_matches_finite_differences() {
        // Frozen steps (huge tolerances, h0 = h_max) so that finite differences see the same
        // step sequence; the outputs fall inside steps (dense output).
        let (model, times, obs) = setup(false);
        let settings = Dopri5Settings {
            rtol: 1e10,
            atol: 1e10,
            h0: Some(0.037),
            h_max: Some(0.037),
            ..Default::default()
        };
        let method = Method::Dopri5(settings);
        let g = adjoint_gradient(&model, &method, &times, &obs);
        let loss = |params: &[f64]| {
            let sys = NeuralOde::new(&model, params);
            let tr = solve_recorded(&method, &sys, 0.0, &[1.0, 0.0], &times).unwrap();
            tr.y.iter()
                .zip(&obs)
                .map(|(y, o)| y.iter().zip(o).map(|(a, b)| (a - b) * (a - b)).sum::<f64>())
                .sum::<f64>()
        };
        let h = 1e-6;
        for i in (0..model.n_params()).step_by(3) {
            let (mut up, mut dn) = (model.params.clone(), model.params.clone());
            up[i] += h;
            dn[i] -= h;
            let fd = (loss(&up) - loss(&dn)) / (2.0 * h);
            assert!(
                (g[i] - fd).abs() < 1e-7 * fd.abs().max(1.0),
                "θ_{i}: {} vs {fd}",
                g[i]
            );
        }
    }
}

#[cfg(test)]
mod tape_tests {
    use super::*;
    use colloc_models::Activation;
    use colloc_solvers::ode::adjoint::{gradient, solve_recorded, Gradient, Method};
    use colloc_solvers::ode::Dopri5Settings;

    /// The same network without taping: every VJP runs the network again.
    struct Untaped<'a>(NeuralOde<'a>);
    impl OdeSystem for Untaped<'_> {
        fn dim(&self) -> usize {
            self.0.dim()
        }
        fn rhs(&self, t: f64, y: &[f64], dy: &mut [f64]) {
            self.0.rhs(t, y, dy)
        }
    }
    impl DifferentiableSystem for Untaped<'_> {
        fn n_params(&self) -> usize {
            self.0.n_params()
        }
        fn vjp(&self, t: f64, y: &[f64], w: &[f64], gy: &mut [f64], gp: &mut [f64]) {
            self.0.vjp(t, y, w, gy, gp)
        }
    }

    #[test]
    fn replayed_tapes_give_the_recomputed_gradient() {
        let model = Mlp::xavier(&[3, 7, 5, 2], Activation::Gelu, true, 4).unwrap();
        let times: Vec<f64> = (0..25).map(|i| 0.13 * i as f64).collect();
        let method = Method::Dopri5(Dopri5Settings::default());
        let taped = NeuralOde::new(&model, &model.params);
        let plain = Untaped(NeuralOde::new(&model, &model.params));
        let tr = solve_recorded(&method, &taped, 0.0, &[0.5, -0.2], &times).unwrap();
        let tr2 = solve_recorded(&method, &plain, 0.0, &[0.5, -0.2], &times).unwrap();
        assert_eq!(tr.y, tr2.y);
        let cot: Vec<Vec<f64>> = tr.y.iter().map(|y| vec![y[0], -2.0 * y[1]]).collect();
        // Equal up to rounding: the replayed first stage of a step is the network at the
        // previous step's last stage state, which differs from the step's start state in the
        // last bits (two summation orders of the same sum).
        let close = |a: &Gradient, b: &Gradient| {
            a.params
                .iter()
                .chain(&a.initial_state)
                .zip(b.params.iter().chain(&b.initial_state))
                .all(|(x, y)| (x - y).abs() <= 1e-12 * (1.0 + y.abs()))
        };
        let a = gradient(&tr, &taped, &cot);
        let b = gradient(&tr2, &plain, &cot);
        assert!(close(&a, &b), "{a:?}\n{b:?}");
        // A second solve starts a new recording: the first trajectory's gradient falls back
        // to recomputation, which equals the untaped gradient exactly.
        let _ = solve_recorded(&method, &taped, 0.0, &[1.5, 0.2], &times).unwrap();
        assert_eq!(gradient(&tr, &taped, &cot), b);
        // A new system takes over the dropped one's buffers (same thread), not its tapes: the
        // old trajectory does not match its recording, before or after a solve of its own.
        drop(taped);
        let successor = NeuralOde::new(&model, &model.params);
        assert_eq!(gradient(&tr, &successor, &cot), b);
        let again = solve_recorded(&method, &successor, 0.0, &[0.5, -0.2], &times).unwrap();
        assert_eq!(gradient(&tr, &successor, &cot), b);
        assert_eq!(gradient(&again, &successor, &cot), a);
    }
}

#[cfg(test)]
mod structure_tests {
    use super::*;
    use colloc_models::{Activation, BasisKind, Structure, TimeBasis};
    use colloc_solvers::ode::adjoint::{gradient, solve_recorded, Method};
    use colloc_solvers::ode::Dopri5Settings;

    #[test]
    fn structured_and_time_dependent_models_have_exact_gradients() {
        let basis = |kind, degree| {
            Some(TimeBasis {
                kind,
                degree,
                t0: 0.0,
                t1: 2.0,
            })
        };
        let cases = [
            (Structure::SecondOrder, None, 1),
            (
                Structure::GrayBox {
                    linear: vec![vec![0.3, 0.0], vec![0.1, -0.5]],
                },
                basis(BasisKind::Legendre, 2),
                2,
            ),
            (Structure::BlackBox, basis(BasisKind::Monomial, 3), 2),
        ];
        // Frozen steps (see the Dopri5 gradient test above); outputs inside the steps.
        let method = Method::Dopri5(Dopri5Settings {
            rtol: 1e10,
            atol: 1e10,
            h0: Some(0.045),
            h_max: Some(0.045),
            ..Default::default()
        });
        let times: Vec<f64> = (0..=10).map(|i| 0.2 * i as f64).collect();
        for (structure, time_basis, outputs) in cases {
            let name = structure.name();
            let mut model = Mlp::xavier(&[3, 6, outputs], Activation::Gelu, true, 7)
                .unwrap()
                .with_structure(structure, time_basis)
                .unwrap();
            for (i, p) in model.params.iter_mut().enumerate() {
                *p += 0.05 * ((i * 7919) % 13) as f64 / 13.0;
            }
            let y0 = [0.4, -0.3];
            let loss = |params: &[f64], y0: &[f64]| {
                let sys = NeuralOde::new(&model, params);
                let tr = solve_recorded(&method, &sys, 0.0, y0, &times).unwrap();
                let l: f64 = tr.y.iter().flatten().map(|v| v * v).sum();
                (l, tr)
            };
            let sys = NeuralOde::new(&model, &model.params);
            let (_, tr) = loss(&model.params, &y0);
            let cot: Vec<Vec<f64>> =
                tr.y.iter()
                    .map(|y| y.iter().map(|v| 2.0 * v).collect())
                    .collect();
            let g = gradient(&tr, &sys, &cot);
            let h = 1e-6;
            for i in (0..model.n_params()).step_by(7) {
                let (mut up, mut dn) = (model.params.clone(), model.params.clone());
                up[i] += h;
                dn[i] -= h;
                let fd = (loss(&up, &y0).0 - loss(&dn, &y0).0) / (2.0 * h);
                assert!(
                    (g.params[i] - fd).abs() < 1e-7 * fd.abs().max(1.0),
                    "{name}: θ_{i}: {} vs {fd}",
                    g.params[i]
                );
            }
            for j in 0..2 {
                let (mut up, mut dn) = (y0, y0);
                up[j] += h;
                dn[j] -= h;
                let fd = (loss(&model.params, &up).0 - loss(&model.params, &dn).0) / (2.0 * h);
                assert!(
                    (g.initial_state[j] - fd).abs() < 1e-7 * fd.abs().max(1.0),
                    "{name}: y0[{j}]: {} vs {fd}",
                    g.initial_state[j]
                );
            }
            // The simulation path (Mlp::vector_field) is the same right-hand side.
            let (mut a, mut b) = ([0.0; 2], [0.0; 2]);
            sys.rhs(0.7, &y0, &mut a);
            model.vector_field(0.7, &y0, &mut b);
            assert!((a[0] - b[0]).abs() < 1e-14 && (a[1] - b[1]).abs() < 1e-14);
        }
    }
}
