//! Reverse mode for the MLP: a forward pass that keeps what the backward pass needs, and
//! hand-written vector–Jacobian products (VJPs) with respect to the parameters and the input.
//!
//! One VJP costs about two forward passes, whatever the number of parameters, which is what
//! gradient-based training (Gauss–Newton pre-fits, adjoint ODE gradients) needs; forward-mode
//! duals would cost one pass per parameter.

use crate::mlp::Mlp;
use crate::Exponential;

/// Intermediate values of one forward pass ([`Mlp::forward_tape`]), reused across calls.
///
/// A pass is recorded as one slice of [`MlpTape::saved_len`] values: the layer values (the
/// input, then each layer's output after its activation), then the slopes (each unit's
/// activation derivative at its pre-activation, 1 for the output). [`Mlp::forward_saved`]
/// and [`Mlp::vjp_saved`] work on such slices directly, so that many passes can be kept
/// (an ODE solve's stages) without copying them in and out of a tape.
#[derive(Clone, Debug, Default)]
pub struct MlpTape {
    /// The exponential of the activations' sigmoids in [`Mlp::forward_tape`].
    exponential: Exponential,
    /// The last pass: layer values, then slopes.
    saved: Vec<f64>,
    /// Backward buffers.
    delta: Vec<f64>,
    delta_next: Vec<f64>,
}

impl MlpTape {
    /// An empty tape; it sizes itself on the first forward pass.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty tape whose forward passes use `exponential` (default: vectorized).
    pub fn with_exponential(exponential: Exponential) -> Self {
        Self {
            exponential,
            ..Self::default()
        }
    }

    /// Number of values a recorded pass of `model` takes (its layer values and slopes).
    pub fn saved_len(model: &Mlp) -> usize {
        2 * model.layers.iter().sum::<usize>()
    }
}

impl Mlp {
    /// `f_θ(input)` with parameters `params`, recording the tape for [`Mlp::vjp`] (with the
    /// tape's [`Exponential`]); returns the output.
    pub fn forward_tape<'t>(
        &self,
        params: &[f64],
        input: &[f64],
        tape: &'t mut MlpTape,
    ) -> &'t [f64] {
        tape.saved.resize(MlpTape::saved_len(self), 0.0);
        self.forward_recorded(params, None, input, &mut tape.saved, tape.exponential)
    }

    /// [`Mlp::forward_tape`] recording into `saved` ([`MlpTape::saved_len`] values) instead
    /// of a tape, with the vectorized exponential; returns the output (a part of `saved`).
    pub fn forward_saved<'s>(
        &self,
        params: &[f64],
        input: &[f64],
        saved: &'s mut [f64],
    ) -> &'s [f64] {
        self.forward_recorded(params, None, input, saved, Exponential::Vectorized)
    }

    /// The weight matrices of `params` transposed, layer after layer (biases left out), for
    /// [`Mlp::forward_saved_transposed`]: worth it when one parameter vector serves many
    /// passes (an ODE solve).
    pub fn transposed_weights(&self, params: &[f64]) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.n_params());
        let mut offset = 0;
        for w in self.layers.windows(2) {
            let (n_in, n_out) = (w[0], w[1]);
            let weights = &params[offset..offset + n_in * n_out];
            for i in 0..n_in {
                out.extend((0..n_out).map(|o| weights[o * n_in + i]));
            }
            offset += n_in * n_out + n_out;
        }
        out
    }

    /// [`Mlp::forward_saved`] with the weights also given transposed
    /// ([`Mlp::transposed_weights`] of the same `params`): wide layers then sum their inputs
    /// column by column, all outputs at once, which vectorizes. Each output adds the same
    /// products in the same order as row by row, so the results are the same bits.
    pub fn forward_saved_transposed<'s>(
        &self,
        params: &[f64],
        transposed: &[f64],
        input: &[f64],
        saved: &'s mut [f64],
    ) -> &'s [f64] {
        self.forward_recorded(
            params,
            Some(transposed),
            input,
            saved,
            Exponential::Vectorized,
        )
    }

    fn forward_recorded<'s>(
        &self,
        params: &[f64],
        transposed: Option<&[f64]>,
        input: &[f64],
        saved: &'s mut [f64],
        exponential: Exponential,
    ) -> &'s [f64] {
        let layers = &self.layers;
        let n_layers = layers.len() - 1;
        let saved = &mut saved[..MlpTape::saved_len(self)];
        let total = saved.len() / 2;
        let (values, slopes) = saved.split_at_mut(total);
        values[..layers[0]].copy_from_slice(&input[..layers[0]]);
        let (mut offset, mut i0, mut t_offset) = (0, 0, 0);
        for l in 0..n_layers {
            let (n_in, n_out) = (layers[l], layers[l + 1]);
            let o0 = i0 + n_in;
            let weights = &params[offset..offset + n_in * n_out];
            let biases = &params[offset + n_in * n_out..offset + n_in * n_out + n_out];
            let (before, after) = values.split_at_mut(o0);
            let x = &before[i0..i0 + n_in];
            let out = &mut after[..n_out];
            match (n_in, transposed) {
                (1, _) => affine_rows::<1>(weights, biases, x, out),
                (2, _) => affine_rows::<2>(weights, biases, x, out),
                (3, _) => affine_rows::<3>(weights, biases, x, out),
                (4, _) => affine_rows::<4>(weights, biases, x, out),
                // Columns need outputs enough to fill the vector lanes.
                (_, Some(t)) if n_out >= 8 => {
                    let columns = &t[t_offset..t_offset + n_in * n_out];
                    crate::wide::with_wide_vectors(
                        #[inline(always)]
                        || affine_columns(columns, biases, x, out),
                    )
                }
                _ => affine_rows::<0>(weights, biases, x, out),
            }
            t_offset += n_in * n_out;
            let slopes = &mut slopes[o0..o0 + n_out];
            if l + 1 < n_layers {
                self.activation.values_and_slopes(out, slopes, exponential);
            } else {
                slopes.iter_mut().for_each(|d| *d = 1.0);
            }
            offset += n_in * n_out + n_out;
            i0 = o0;
        }
        &values[total - layers[n_layers]..]
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
        let MlpTape {
            saved,
            delta,
            delta_next,
            ..
        } = tape;
        self.pull_back(
            params,
            saved,
            (delta, delta_next),
            cotangent,
            grad_params,
            grad_input,
        );
    }

    /// [`Mlp::vjp`] at a pass recorded by [`Mlp::forward_saved`];
    /// `scratch` only lends its backward buffers.
    pub fn vjp_saved(
        &self,
        params: &[f64],
        saved: &[f64],
        scratch: &mut MlpTape,
        cotangent: &[f64],
        grad_params: &mut [f64],
        grad_input: &mut [f64],
    ) {
        self.pull_back(
            params,
            &saved[..MlpTape::saved_len(self)],
            (&mut scratch.delta, &mut scratch.delta_next),
            cotangent,
            grad_params,
            grad_input,
        );
    }

    /// The backward pass of [`Mlp::vjp`] and [`Mlp::vjp_saved`], compiled for AVX-512F or AVX2
    /// when the CPU has it (same bits as [`Mlp::pull_back_baseline`]).
    fn pull_back(
        &self,
        params: &[f64],
        saved: &[f64],
        buffers: (&mut Vec<f64>, &mut Vec<f64>),
        cotangent: &[f64],
        grad_params: &mut [f64],
        grad_input: &mut [f64],
    ) {
        crate::wide::with_wide_vectors(
            #[inline(always)]
            || self.pull_back_baseline(params, saved, buffers, cotangent, grad_params, grad_input),
        );
    }

    #[inline(always)]
    fn pull_back_baseline(
        &self,
        params: &[f64],
        saved: &[f64],
        (delta, delta_next): (&mut Vec<f64>, &mut Vec<f64>),
        cotangent: &[f64],
        grad_params: &mut [f64],
        grad_input: &mut [f64],
    ) {
        let layers = &self.layers;
        let n_layers = layers.len() - 1;
        let total = saved.len() / 2;
        let (values, slopes) = saved.split_at(total);
        delta.clear();
        delta.extend_from_slice(&cotangent[..layers[n_layers]]);
        let mut offset = self.weights_per_copy();
        // Offset of layer l + 1's values.
        let mut o0 = total - layers[n_layers];
        for l in (0..n_layers).rev() {
            let (n_in, n_out) = (layers[l], layers[l + 1]);
            offset -= n_in * n_out + n_out;
            let i0 = o0 - n_in;
            // δ_z = δ_y ⊙ σ'(z)
            for (d, s) in delta.iter_mut().zip(&slopes[o0..o0 + n_out]) {
                *d *= s;
            }
            let x = &values[i0..i0 + n_in];
            let (gw, gb) =
                grad_params[offset..offset + n_in * n_out + n_out].split_at_mut(n_in * n_out);
            for (g, d) in gb.iter_mut().zip(delta.iter()) {
                *g += d;
            }
            let weights = &params[offset..offset + n_in * n_out];
            let pull_input = l > 0 || !grad_input.is_empty();
            delta_next.clear();
            delta_next.resize(if pull_input { n_in } else { 0 }, 0.0);
            // Narrow layers (the input layer: a few states) get loops of fixed length.
            match n_in {
                1 => pull_back_rows::<1>(delta, x, weights, gw, delta_next),
                2 => pull_back_rows::<2>(delta, x, weights, gw, delta_next),
                3 => pull_back_rows::<3>(delta, x, weights, gw, delta_next),
                4 => pull_back_rows::<4>(delta, x, weights, gw, delta_next),
                _ => pull_back_rows::<0>(delta, x, weights, gw, delta_next),
            }
            if pull_input {
                std::mem::swap(delta, delta_next);
            }
            o0 = i0;
        }
        if !grad_input.is_empty() {
            grad_input[..layers[0]].copy_from_slice(&delta[..layers[0]]);
        }
    }
}

/// One dense layer's pre-activations `out_o = b_o + W[o, :]·x` with row-major weights; `N`
/// as in [`pull_back_rows`].
#[inline(always)]
fn affine_rows<const N: usize>(weights: &[f64], biases: &[f64], x: &[f64], out: &mut [f64]) {
    let n = if N > 0 { N } else { x.len() };
    for ((z, row), b) in out.iter_mut().zip(weights.chunks_exact(n)).zip(biases) {
        *z = b + row[..n]
            .iter()
            .zip(&x[..n])
            .map(|(w, v)| w * v)
            .sum::<f64>();
    }
}

/// [`affine_rows`] from the transposed weights (`columns`: column `i` holds the weights of
/// input `i`): every output starts at −0.0, as `Iterator::sum` does, and adds its products in
/// input order, then its bias — the row-by-row sums, term for term.
#[inline(always)]
fn affine_columns(columns: &[f64], biases: &[f64], x: &[f64], out: &mut [f64]) {
    out.fill(-0.0);
    for (column, &v) in columns.chunks_exact(out.len()).zip(x) {
        for (z, w) in out.iter_mut().zip(column) {
            *z += w * v;
        }
    }
    for (z, b) in out.iter_mut().zip(biases) {
        *z += b; // b + z: IEEE addition commutes
    }
}

/// One dense layer's pull-back with row-major weights `W` (rows of length `x.len()`):
/// `gw[o, :] += δ_o·x` and, unless `delta_next` is empty, `delta_next += Σ_o δ_o·W[o, :]`.
/// `N > 0` fixes the row length at compile time (it must equal `x.len()`); `N = 0` is any
/// length. Both add the same products in the same order.
#[inline(always)]
fn pull_back_rows<const N: usize>(
    delta: &[f64],
    x: &[f64],
    weights: &[f64],
    gw: &mut [f64],
    delta_next: &mut [f64],
) {
    let n = if N > 0 { N } else { x.len() };
    for (g, d) in gw.chunks_exact_mut(n).zip(delta) {
        for (g, v) in g[..n].iter_mut().zip(&x[..n]) {
            *g += d * v;
        }
    }
    if !delta_next.is_empty() {
        let next = &mut delta_next[..n];
        for (w, d) in weights.chunks_exact(n).zip(delta) {
            for (a, w) in next.iter_mut().zip(&w[..n]) {
                *a += d * w;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Activation;
    use num_dual::Dual64;

    #[test]
    fn a_recorded_pass_replays_the_same_vjp() {
        let m = Mlp::xavier(&[3, 5, 4, 2], Activation::Gelu, false, 2).unwrap();
        let x = [0.1, -0.4, 0.9];
        let mut tape = MlpTape::new();
        let y = m.forward_tape(&m.params, &x, &mut tape).to_vec();
        let (mut g1, mut x1) = (vec![0.0; m.n_params()], vec![0.0; 3]);
        m.vjp(&m.params, &mut tape, &[1.0, -2.0], &mut g1, &mut x1);
        // Recorded into a slice, then another pass through the tape: the slice replays the
        // first pass's VJP.
        let mut recorded = vec![0.0; MlpTape::saved_len(&m)];
        assert_eq!(m.forward_saved(&m.params, &x, &mut recorded), &y[..]);
        m.forward_tape(&m.params, &[2.0, 0.3, -1.0], &mut tape);
        let (mut g2, mut x2) = (vec![0.0; m.n_params()], vec![0.0; 3]);
        m.vjp_saved(
            &m.params,
            &recorded,
            &mut tape,
            &[1.0, -2.0],
            &mut g2,
            &mut x2,
        );
        assert_eq!(g1, g2);
        assert_eq!(x1, x2);
        // The VJP through `with_wide_vectors` (AVX-512F or AVX2 code on CPUs that have them)
        // and called directly (baseline code): the same bits.
        let (mut g3, mut x3) = (vec![0.0; m.n_params()], vec![0.0; 3]);
        let mut scratch = MlpTape::new();
        m.pull_back_baseline(
            &m.params,
            &recorded,
            (&mut scratch.delta, &mut scratch.delta_next),
            &[1.0, -2.0],
            &mut g3,
            &mut x3,
        );
        assert_eq!(g1, g3);
        assert_eq!(x1, x3);
    }

    #[test]
    fn transposed_weights_give_the_same_bits() {
        for layers in [&[3, 50, 50, 3][..], &[2, 32, 2], &[5, 9, 12, 8, 2]] {
            let mut m = Mlp::xavier(layers, Activation::Gelu, false, 4).unwrap();
            // Nonzero biases too.
            for (k, p) in m.params.iter_mut().enumerate() {
                *p += 0.05 * (k as f64).sin();
            }
            let t = m.transposed_weights(&m.params);
            let n = MlpTape::saved_len(&m);
            let (mut rows, mut columns) = (vec![0.0; n], vec![0.0; n]);
            for k in 0..20 {
                let x: Vec<f64> = (0..layers[0])
                    .map(|i| 0.3 * k as f64 - 0.7 * i as f64)
                    .collect();
                m.forward_saved(&m.params, &x, &mut rows);
                m.forward_saved_transposed(&m.params, &t, &x, &mut columns);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&rows), bits(&columns), "{layers:?}");
            }
        }
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
