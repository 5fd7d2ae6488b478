//! Reverse mode for the MLP: a forward pass that keeps what the backward pass needs, and
//! hand-written vector–Jacobian products (VJPs) with respect to the parameters and the input.
//!
//! One VJP costs about two forward passes, whatever the number of parameters, which is what
//! gradient-based training (Gauss–Newton pre-fits, adjoint ODE gradients) needs; forward-mode
//! duals would cost one pass per parameter.

use crate::mlp::Mlp;

/// Intermediate values of one forward pass ([`Mlp::forward_tape`]), reused across calls.
#[derive(Clone, Debug, Default)]
pub struct MlpTape {
    /// Layer values: the input, then each layer's output (after its activation).
    values: Vec<f64>,
    /// Derivative of each hidden unit's activation at its pre-activation (1 for the output).
    slopes: Vec<f64>,
    /// Offsets of each layer in `values` (layer 0 = input).
    offsets: Vec<usize>,
    /// Backward buffers.
    delta: Vec<f64>,
    delta_next: Vec<f64>,
}

impl MlpTape {
    /// An empty tape; it sizes itself on the first forward pass.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of values [`MlpTape::save`] writes for `model` (its layer values and slopes).
    pub fn saved_len(model: &Mlp) -> usize {
        2 * model.layers.iter().sum::<usize>()
    }

    /// Copies what [`Mlp::vjp`] needs from the last forward pass into `out`
    /// ([`MlpTape::saved_len`] values), so many passes can be kept and replayed later.
    pub fn save(&self, out: &mut [f64]) {
        let n = self.values.len();
        out[..n].copy_from_slice(&self.values);
        out[n..2 * n].copy_from_slice(&self.slopes);
    }

    /// Makes this tape the one of a forward pass of `model` saved by [`MlpTape::save`].
    pub fn restore(&mut self, model: &Mlp, saved: &[f64]) {
        self.offsets.clear();
        let mut total = 0;
        for &w in &model.layers {
            self.offsets.push(total);
            total += w;
        }
        self.values.clear();
        self.values.extend_from_slice(&saved[..total]);
        self.slopes.clear();
        self.slopes.extend_from_slice(&saved[total..2 * total]);
    }

    /// The network's output of the last forward pass.
    pub fn output(&self) -> &[f64] {
        let last = self.offsets.len().saturating_sub(1);
        self.offsets.get(last).map_or(&[], |&o| &self.values[o..])
    }
}

impl Mlp {
    /// `f_θ(input)` with parameters `params`, recording the tape for [`Mlp::vjp`]; returns the
    /// output (also [`MlpTape::output`]).
    pub fn forward_tape<'t>(
        &self,
        params: &[f64],
        input: &[f64],
        tape: &'t mut MlpTape,
    ) -> &'t [f64] {
        let layers = &self.layers;
        let n_layers = layers.len() - 1;
        tape.offsets.clear();
        let mut total = 0;
        for &w in layers {
            tape.offsets.push(total);
            total += w;
        }
        tape.values.resize(total, 0.0);
        tape.slopes.resize(total, 0.0);
        tape.values[..layers[0]].copy_from_slice(&input[..layers[0]]);
        let mut offset = 0;
        for l in 0..n_layers {
            let (n_in, n_out) = (layers[l], layers[l + 1]);
            let (i0, o0) = (tape.offsets[l], tape.offsets[l + 1]);
            let weights = &params[offset..offset + n_in * n_out];
            let biases = &params[offset + n_in * n_out..offset + n_in * n_out + n_out];
            let (before, after) = tape.values.split_at_mut(o0);
            let x = &before[i0..i0 + n_in];
            let out = &mut after[..n_out];
            for (o, z) in out.iter_mut().enumerate() {
                *z = biases[o]
                    + weights[o * n_in..(o + 1) * n_in]
                        .iter()
                        .zip(x)
                        .map(|(w, v)| w * v)
                        .sum::<f64>();
            }
            // Activations in a loop of their own (no calls inside: it vectorizes).
            let slopes = &mut tape.slopes[o0..o0 + n_out];
            if l + 1 < n_layers {
                let act = self.activation;
                for (z, dy) in out.iter_mut().zip(slopes.iter_mut()) {
                    (*z, *dy) = act.value_and_derivative(*z);
                }
            } else {
                slopes.iter_mut().for_each(|d| *d = 1.0);
            }
            offset += n_in * n_out + n_out;
        }
        tape.output()
    }

    /// Vector–Jacobian product at the point of the last [`Mlp::forward_tape`]: adds
    /// `cotangentᵀ·∂f/∂θ` to `grad_params` and writes `cotangentᵀ·∂f/∂input` into
    /// `grad_input` (which may be empty when not wanted).
    pub fn vjp(
        &self,
        params: &[f64],
        tape: &mut MlpTape,
        cotangent: &[f64],
        grad_params: &mut [f64],
        grad_input: &mut [f64],
    ) {
        let layers = &self.layers;
        let n_layers = layers.len() - 1;
        let MlpTape {
            values,
            slopes,
            offsets,
            delta,
            delta_next,
        } = tape;
        delta.clear();
        delta.extend_from_slice(&cotangent[..layers[n_layers]]);
        let mut offset = self.weights_per_copy();
        for l in (0..n_layers).rev() {
            let (n_in, n_out) = (layers[l], layers[l + 1]);
            offset -= n_in * n_out + n_out;
            let (i0, o0) = (offsets[l], offsets[l + 1]);
            // δ_z = δ_y ⊙ σ'(z)
            for (d, s) in delta.iter_mut().zip(&slopes[o0..o0 + n_out]) {
                *d *= s;
            }
            let x = &values[i0..i0 + n_in];
            let (gw, gb) =
                grad_params[offset..offset + n_in * n_out + n_out].split_at_mut(n_in * n_out);
            for o in 0..n_out {
                let d = delta[o];
                gb[o] += d;
                for (g, v) in gw[o * n_in..(o + 1) * n_in].iter_mut().zip(x) {
                    *g += d * v;
                }
            }
            if l > 0 || !grad_input.is_empty() {
                let weights = &params[offset..offset + n_in * n_out];
                delta_next.clear();
                delta_next.resize(n_in, 0.0);
                for o in 0..n_out {
                    let d = delta[o];
                    for (dn, w) in delta_next
                        .iter_mut()
                        .zip(&weights[o * n_in..(o + 1) * n_in])
                    {
                        *dn += d * w;
                    }
                }
                std::mem::swap(delta, delta_next);
            }
        }
        if !grad_input.is_empty() {
            grad_input[..layers[0]].copy_from_slice(&delta[..layers[0]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Activation;
    use num_dual::Dual64;

    #[test]
    fn a_saved_tape_replays_the_same_vjp() {
        let m = Mlp::xavier(&[3, 5, 4, 2], Activation::Gelu, false, 2).unwrap();
        let mut tape = MlpTape::new();
        let mut saved = vec![0.0; MlpTape::saved_len(&m)];
        m.forward_tape(&m.params, &[0.1, -0.4, 0.9], &mut tape);
        tape.save(&mut saved);
        let (mut g1, mut x1) = (vec![0.0; m.n_params()], vec![0.0; 3]);
        m.vjp(&m.params, &mut tape, &[1.0, -2.0], &mut g1, &mut x1);
        // Another pass overwrites the tape; restoring the saved one gives the same VJP.
        m.forward_tape(&m.params, &[2.0, 0.3, -1.0], &mut tape);
        let mut other = MlpTape::new();
        other.restore(&m, &saved);
        let (mut g2, mut x2) = (vec![0.0; m.n_params()], vec![0.0; 3]);
        m.vjp(&m.params, &mut other, &[1.0, -2.0], &mut g2, &mut x2);
        assert_eq!(g1, g2);
        assert_eq!(x1, x2);
    }

    #[test]
    fn vjp_matches_forward_mode_duals() {
        for act in [
            Activation::Tanh,
            Activation::Gelu,
            Activation::Sigmoid,
            Activation::Softplus,
        ] {
            let m = Mlp::xavier(&[3, 6, 5, 2], act, true, 11).unwrap();
            let x = [0.7, -0.2, 1.5];
            let cot = [0.3, -1.1];
            let mut tape = MlpTape::new();
            let y = m.forward_tape(&m.params, &x, &mut tape).to_vec();
            let plain = m.forward(&x);
            assert!(y.iter().zip(&plain).all(|(a, b)| (a - b).abs() < 1e-15));
            let mut gp = vec![0.0; m.n_params()];
            let mut gx = vec![0.0; 3];
            m.vjp(&m.params, &mut tape, &cot, &mut gp, &mut gx);
            let mut scratch = vec![Dual64::from_re(0.0); 2 * m.max_width()];
            let dir = |k: usize, n: usize| -> Vec<Dual64> {
                (0..n)
                    .map(|i| {
                        if i == k {
                            Dual64::from_re(0.0).derivative()
                        } else {
                            Dual64::from_re(0.0)
                        }
                    })
                    .collect()
            };
            for (k, &g) in gp.iter().enumerate() {
                let e = dir(k, m.n_params());
                let p: Vec<Dual64> = m.params.iter().zip(&e).map(|(&v, d)| *d + v).collect();
                let xin: Vec<Dual64> = x.iter().map(|&v| Dual64::from_re(v)).collect();
                let mut out = vec![Dual64::from_re(0.0); 2];
                m.forward_with(&p, &xin, &mut out, &mut scratch);
                let expect: f64 = out.iter().zip(&cot).map(|(o, c)| o.eps * c).sum();
                assert!(
                    (g - expect).abs() < 1e-13 * expect.abs().max(1.0),
                    "{act:?} θ_{k}: {g} vs {expect}"
                );
            }
            for (k, &g) in gx.iter().enumerate() {
                let e = dir(k, 3);
                let p: Vec<Dual64> = m.params.iter().map(|&v| Dual64::from_re(v)).collect();
                let xin: Vec<Dual64> = x.iter().zip(&e).map(|(&v, d)| *d + v).collect();
                let mut out = vec![Dual64::from_re(0.0); 2];
                m.forward_with(&p, &xin, &mut out, &mut scratch);
                let expect: f64 = out.iter().zip(&cot).map(|(o, c)| o.eps * c).sum();
                assert!((g - expect).abs() < 1e-13, "{act:?} x_{k}");
            }
            // Accumulates into grad_params.
            let before = gp.clone();
            m.forward_tape(&m.params, &x, &mut tape);
            m.vjp(&m.params, &mut tape, &cot, &mut gp, &mut []);
            assert!(gp
                .iter()
                .zip(&before)
                .all(|(a, b)| (a - 2.0 * b).abs() < 1e-14 * b.abs().max(1.0)));
        }
    }
}
