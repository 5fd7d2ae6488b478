//! The reduced formulation for networks of any depth: `−F_θ(Y_k, t_k)` (without the output
//! biases, which enter as linear terms) added to the collocation rows of every point, as one
//! [`StructuredTerm`] with exact derivatives.
//!
//! With one hidden layer each hidden unit is a small element ([`super::collocation`]). With
//! more, every unit of the second hidden layer reads all first-layer parameters, so per-unit
//! elements would store a dense Hessian over a few hundred inputs for every point and unit.
//! Here the Hessian of the Lagrangian is accumulated over all points into one block over θ and
//! one small block per point over (θ, y_k), from the second-order adjoint of the layer
//! recursion `z_m = W_m h_{m−1} + b_m`, `h_m = σ(z_m)`:
//!
//! `∇²(μᵀF) = Σ_m Σ_i σ''(z_mi) h̄_mi t_mi t_miᵀ + Σ_m Σ_ij z̄_mi (e_{W_m,ij} ∂h_{m−1,j}ᵀ + sym)`
//!
//! with `t_mi = ∂z_mi/∂(y, θ)` (forward tangents), `h̄`, `z̄` the adjoints of `μᵀF` and the
//! output layer's bilinear term alike. Cost per point: `O(width² · (d + params before the
//! last hidden layer))`. Patterns: the θ block is the full lower triangle except output-weight
//! pairs (structurally zero); each point adds its (θ, y_k) and (y_k, y_k) blocks.

use crate::nlp::StructuredTerm;
use colloc_models::{Activation, Mlp};
use rayon::prelude::*;

/// One collocation point of a [`ReducedNetwork`].
#[derive(Clone, Debug)]
pub(crate) struct NetworkPoint {
    /// Global variable indices of the point's states.
    pub states: Vec<usize>,
    /// The point's time (an input when the model takes it).
    pub time: f64,
    /// The constraint rows of the point's derivative equations, one per output.
    pub rows: Vec<usize>,
}

/// `−(W_out h_L(y_k, t_k))_o` at every point, added to `rows[o]` (see the module docs).
pub(crate) struct ReducedNetwork {
    name: String,
    layers: Vec<usize>,
    activation: Activation,
    time_input: bool,
    /// `θ` occupies the global variables `theta_offset..theta_offset + n_params`.
    theta_offset: usize,
    points: Vec<NetworkPoint>,
    rows: Vec<usize>,
    /// States `d`, parameters before the output layer `H`, and the θ entries the term reads
    /// (`H + d_out · w_L`: all but the output biases).
    d: usize,
    hidden_params: usize,
    used_params: usize,
    /// First parameter of each weight layer.
    offsets: Vec<usize>,
}

impl ReducedNetwork {
    /// The term for `model`'s layout at `points`, θ at `theta_offset..`.
    pub fn new(
        name: impl Into<String>,
        model: &Mlp,
        theta_offset: usize,
        points: Vec<NetworkPoint>,
    ) -> Self {
        let layers = model.layers.clone();
        let n_w = layers.len() - 1;
        let mut offsets = Vec::with_capacity(n_w + 1);
        let mut next = 0;
        for w in layers.windows(2) {
            offsets.push(next);
            next += w[0] * w[1] + w[1];
        }
        offsets.push(next);
        let d_out = layers[n_w];
        let w_last = layers[n_w - 1];
        let hidden_params = offsets[n_w - 1];
        let rows = points.iter().flat_map(|p| p.rows.iter().copied()).collect();
        Self {
            name: name.into(),
            d: model.state_inputs(),
            activation: model.activation,
            time_input: model.time_input,
            theta_offset,
            points,
            rows,
            hidden_params,
            used_params: hidden_params + d_out * w_last,
            offsets,
            layers,
        }
    }

    fn n_out(&self) -> usize {
        *self.layers.last().expect("at least two layers")
    }

    /// Index in θ of weight (output `i`, input `j`) of weight layer `m`.
    fn wi(&self, m: usize, i: usize, j: usize) -> usize {
        self.offsets[m] + i * self.layers[m] + j
    }

    /// Index in θ of bias `i` of weight layer `m`.
    fn bi(&self, m: usize, i: usize) -> usize {
        self.offsets[m] + self.layers[m] * self.layers[m + 1] + i
    }

    /// Jacobian entries per point and output: y, the hidden parameters, one output-weight row.
    fn jac_row_len(&self) -> usize {
        self.d + self.hidden_params + self.layers[self.layers.len() - 2]
    }

    /// Entries of the θ block of the Hessian pattern.
    fn theta_block_len(&self) -> usize {
        let h = self.hidden_params;
        h * (h + 1) / 2 + (self.used_params - h) * h
    }

    /// Hessian entries per point: (θ, y_k) and the packed (y_k, y_k) triangle.
    fn point_block_len(&self) -> usize {
        self.used_params * self.d + self.d * (self.d + 1) / 2
    }

    /// Position of θ pair `(p1, p2)`, `p1 ≥ p2`, in the θ block.
    fn theta_pos(&self, p1: usize, p2: usize) -> usize {
        let h = self.hidden_params;
        if p1 < h {
            p1 * (p1 + 1) / 2 + p2
        } else {
            h * (h + 1) / 2 + (p1 - h) * h + p2
        }
    }

    /// The network's input at a point: states, then time.
    fn input(&self, x: &[f64], point: &NetworkPoint) -> Vec<f64> {
        let mut input: Vec<f64> = point.states.iter().map(|&i| x[i]).collect();
        if self.time_input {
            input.push(point.time);
        }
        input
    }

    /// Forward pass: pre-activations, activations and the activation's first and second
    /// derivatives of every hidden layer.
    fn forward(&self, theta: &[f64], input: &[f64]) -> Forward {
        let n_hidden = self.layers.len() - 2;
        let mut f = Forward {
            h: Vec::with_capacity(n_hidden + 1),
            s1: Vec::with_capacity(n_hidden),
            s2: Vec::with_capacity(n_hidden),
        };
        f.h.push(input.to_vec());
        for m in 0..n_hidden {
            let (n_in, width) = (self.layers[m], self.layers[m + 1]);
            let prev = &f.h[m];
            let mut h = Vec::with_capacity(width);
            let mut s1 = Vec::with_capacity(width);
            let mut s2 = Vec::with_capacity(width);
            for i in 0..width {
                let row = &theta[self.wi(m, i, 0)..self.wi(m, i, 0) + n_in];
                let z =
                    row.iter().zip(prev).map(|(w, v)| w * v).sum::<f64>() + theta[self.bi(m, i)];
                let (v, d1, d2) = self.activation.value_and_derivatives(z);
                h.push(v);
                s1.push(d1);
                s2.push(d2);
            }
            f.h.push(h);
            f.s1.push(s1);
            f.s2.push(s2);
        }
        f
    }

    /// `W_out h_L` (without the output bias).
    fn outputs(&self, theta: &[f64], f: &Forward) -> Vec<f64> {
        let out_layer = self.layers.len() - 2;
        let last = &f.h[out_layer];
        (0..self.n_out())
            .map(|o| {
                let at = self.wi(out_layer, o, 0);
                let row = &theta[at..at + last.len()];
                row.iter().zip(last).map(|(w, v)| w * v).sum()
            })
            .collect()
    }

    /// Forward tangents `T_m = ∂z_m/∂q` of every hidden layer over the local coordinates
    /// `q = (y, θ)`, each row dense over `d + offsets[m + 1]` (y and the parameters of layers
    /// up to `m`), row-major.
    fn tangents(&self, theta: &[f64], f: &Forward) -> Vec<Vec<f64>> {
        let d = self.d;
        let n_hidden = self.layers.len() - 2;
        let mut t: Vec<Vec<f64>> = Vec::with_capacity(n_hidden);
        for m in 0..n_hidden {
            let (n_in, width) = (self.layers[m], self.layers[m + 1]);
            let cols = d + self.offsets[m + 1];
            let mut tm = vec![0.0; width * cols];
            for i in 0..width {
                let row = &mut tm[i * cols..(i + 1) * cols];
                if m == 0 {
                    for l in 0..d {
                        row[l] = theta[self.wi(0, i, l)];
                    }
                } else {
                    // Σ_j W_m,ij σ'(z_{m−1,j}) T_{m−1,j} over the previous layer's columns.
                    let prev_cols = d + self.offsets[m];
                    let prev = &t[m - 1];
                    for j in 0..n_in {
                        let c = theta[self.wi(m, i, j)] * f.s1[m - 1][j];
                        for (r, p) in row[..prev_cols]
                            .iter_mut()
                            .zip(&prev[j * prev_cols..(j + 1) * prev_cols])
                        {
                            *r += c * p;
                        }
                    }
                }
                for j in 0..n_in {
                    row[d + self.wi(m, i, j)] = f.h[m][j];
                }
                row[d + self.bi(m, i)] = 1.0;
            }
            t.push(tm);
        }
        t
    }

    /// The point's Jacobian rows (layout of [`StructuredTerm::jacobian_pattern`]).
    fn point_jacobian(&self, theta: &[f64], input: &[f64], out: &mut [f64]) {
        let f = self.forward(theta, input);
        let t = self.tangents(theta, &f);
        // Output weight layer `m`; its input is the last hidden layer `m − 1`.
        let m = self.layers.len() - 2;
        let (width, cols) = (self.layers[m], self.d + self.hidden_params);
        for (o, row) in out.chunks_exact_mut(self.jac_row_len()).enumerate() {
            // ∂(−F_o)/∂q = −Σ_j W_out,oj σ'(z_j) T_j, and −h_j for W_out,oj.
            for j in 0..width {
                let c = -theta[self.wi(m, o, j)] * f.s1[m - 1][j];
                for (r, p) in row[..cols]
                    .iter_mut()
                    .zip(&t[m - 1][j * cols..(j + 1) * cols])
                {
                    *r += c * p;
                }
                row[cols + j] = -f.h[m][j];
            }
        }
    }

    /// Adds the point's Hessian of `Σ_o weights[o]·(−F_o)`: θ pairs into `theta_block`, the
    /// (θ, y) and (y, y) pairs into `point_block`.
    fn point_hessian(
        &self,
        theta: &[f64],
        input: &[f64],
        weights: &[f64],
        theta_block: &mut [f64],
        point_block: &mut [f64],
    ) {
        let d = self.d;
        let n_hidden = self.layers.len() - 2;
        let f = self.forward(theta, input);
        let t = self.tangents(theta, &f);
        let mut acc = HessianRows {
            net: self,
            theta_block,
            point_block,
        };
        // Adjoints of μᵀF with μ = −weights: h̄ of the last hidden layer, then backwards.
        let mu: Vec<f64> = weights.iter().map(|w| -w).collect();
        let mut h_bar: Vec<f64> = (0..self.layers[n_hidden])
            .map(|j| {
                (0..self.n_out())
                    .map(|o| mu[o] * theta[self.wi(n_hidden, o, j)])
                    .sum()
            })
            .collect();
        // Output layer: μ_o (e_{W_out,oj} ⊗ σ'(z_j) T_j).
        let cols = d + self.offsets[n_hidden];
        for (o, &mu_o) in mu.iter().enumerate() {
            for j in 0..self.layers[n_hidden] {
                let c = mu_o * f.s1[n_hidden - 1][j];
                let q1 = d + self.wi(n_hidden, o, j);
                acc.add_row(q1, 0, c, &t[n_hidden - 1][j * cols..(j + 1) * cols]);
            }
        }
        for m in (0..n_hidden).rev() {
            let (n_in, width) = (self.layers[m], self.layers[m + 1]);
            let cols = d + self.offsets[m + 1];
            let prefix = d + self.offsets[m];
            let z_bar: Vec<f64> = (0..width).map(|i| f.s1[m][i] * h_bar[i]).collect();
            for i in 0..width {
                let c = f.s2[m][i] * h_bar[i];
                let ti = &t[m][i * cols..(i + 1) * cols];
                // (a) c · t tᵀ: the dense prefix (y and earlier layers) with itself …
                if c != 0.0 {
                    for q1 in 0..prefix {
                        let cq = c * ti[q1];
                        if cq == 0.0 {
                            continue;
                        }
                        acc.add_row(q1, 0, cq, &ti[..=q1]);
                    }
                    // … and the unit's own weights (contiguous) and bias with the prefix and
                    // each other (the bias comes after every weight of its layer).
                    let (w0, bias) = (d + self.wi(m, i, 0), d + self.bi(m, i));
                    for q1 in (w0..w0 + n_in).chain(std::iter::once(bias)) {
                        let cq = c * ti[q1];
                        acc.add_row(q1, 0, cq, &ti[..prefix]);
                        let own_end = if q1 == bias { w0 + n_in } else { q1 + 1 };
                        acc.add_row(q1, w0, cq, &ti[w0..own_end]);
                    }
                    acc.add(bias, bias, c * ti[bias] * ti[bias]);
                }
                // (b) z̄_i (e_{W_m,ij} ⊗ ∂h_{m−1,j}/∂q).
                for j in 0..n_in {
                    let q1 = d + self.wi(m, i, j);
                    if m == 0 {
                        if j < d {
                            acc.add(q1, j, z_bar[i]);
                        }
                    } else {
                        let pc = d + self.offsets[m];
                        let c = z_bar[i] * f.s1[m - 1][j];
                        acc.add_row(q1, 0, c, &t[m - 1][j * pc..(j + 1) * pc]);
                    }
                }
            }
            if m > 0 {
                h_bar = (0..n_in)
                    .map(|j| (0..width).map(|i| theta[self.wi(m, i, j)] * z_bar[i]).sum())
                    .collect();
            }
        }
    }
}

/// One point's Hessian contributions over the local coordinates `q = (y, θ)` (`q < d`: the
/// states), added into the θ block and the point's (θ, y) and (y, y) block.
struct HessianRows<'a> {
    net: &'a ReducedNetwork,
    theta_block: &'a mut [f64],
    point_block: &'a mut [f64],
}

impl HessianRows<'_> {
    /// Adds `v` at the pair `(q1, q2)` (either order).
    fn add(&mut self, q1: usize, q2: usize, v: f64) {
        let d = self.net.d;
        let (a, b) = if q1 >= q2 { (q1, q2) } else { (q2, q1) };
        if b < d {
            if a < d {
                let yy_at = self.net.used_params * d;
                self.point_block[yy_at + a * (a + 1) / 2 + b] += v;
            } else {
                self.point_block[(a - d) * d + b] += v;
            }
        } else {
            self.theta_block[self.net.theta_pos(a - d, b - d)] += v;
        }
    }

    /// Adds `c · values[k]` at the pairs `(q1, first + k)`, all with `first + k ≤ q1`: the
    /// θ part of the run is one contiguous stretch of row `q1` of the packed θ block.
    fn add_row(&mut self, q1: usize, first: usize, c: f64, values: &[f64]) {
        let d = self.net.d;
        if q1 < d {
            for (k, &v) in values.iter().enumerate() {
                self.add(q1, first + k, c * v);
            }
            return;
        }
        let in_y = d.saturating_sub(first).min(values.len());
        for (k, &v) in values[..in_y].iter().enumerate() {
            self.point_block[(q1 - d) * d + first + k] += c * v;
        }
        let rest = &values[in_y..];
        if !rest.is_empty() {
            let at = self.net.theta_pos(q1 - d, first + in_y - d);
            for (o, &v) in self.theta_block[at..at + rest.len()].iter_mut().zip(rest) {
                *o += c * v;
            }
        }
    }
}

/// Hidden-layer values of one forward pass (`h[0]` is the input).
struct Forward {
    h: Vec<Vec<f64>>,
    s1: Vec<Vec<f64>>,
    s2: Vec<Vec<f64>>,
}

impl StructuredTerm for ReducedNetwork {
    fn name(&self) -> &str {
        &self.name
    }

    fn rows(&self) -> &[usize] {
        &self.rows
    }

    fn jacobian_pattern(&self) -> Vec<(usize, usize)> {
        let d_out = self.n_out();
        let w_last = self.layers[self.layers.len() - 2];
        let mut pattern = Vec::with_capacity(self.points.len() * d_out * self.jac_row_len());
        for (k, point) in self.points.iter().enumerate() {
            for o in 0..d_out {
                let out = k * d_out + o;
                pattern.extend(point.states.iter().map(|&v| (out, v)));
                pattern.extend((0..self.hidden_params).map(|p| (out, self.theta_offset + p)));
                pattern.extend((0..w_last).map(|j| {
                    (
                        out,
                        self.theta_offset + self.wi(self.layers.len() - 2, o, j),
                    )
                }));
            }
        }
        pattern
    }

    fn hessian_pattern(&self) -> Vec<(usize, usize)> {
        let (h, th) = (self.hidden_params, self.theta_offset);
        let mut pattern =
            Vec::with_capacity(self.theta_block_len() + self.points.len() * self.point_block_len());
        for p1 in 0..self.used_params {
            for p2 in 0..=p1.min(h.saturating_sub(1)) {
                if p1 < h || p2 < h {
                    pattern.push((th + p1, th + p2));
                }
            }
        }
        debug_assert_eq!(pattern.len(), self.theta_block_len());
        for point in &self.points {
            for p in 0..self.used_params {
                pattern.extend(point.states.iter().map(|&v| (th + p, v)));
            }
            for (a, &ya) in point.states.iter().enumerate() {
                pattern.extend(point.states[..=a].iter().map(|&yb| (ya, yb)));
            }
        }
        pattern
    }

    fn values(&self, x: &[f64], out: &mut [f64]) {
        let theta = &x[self.theta_offset..self.theta_offset + self.offsets[self.offsets.len() - 1]];
        out.par_chunks_mut(self.n_out())
            .zip(self.points.par_iter())
            .for_each(|(o, point)| {
                let f = self.forward(theta, &self.input(x, point));
                for (v, f) in o.iter_mut().zip(self.outputs(theta, &f)) {
                    *v = -f;
                }
            });
    }

    fn jacobian(&self, x: &[f64], out: &mut [f64]) {
        let theta = &x[self.theta_offset..self.theta_offset + self.offsets[self.offsets.len() - 1]];
        out.par_chunks_mut(self.n_out() * self.jac_row_len())
            .zip(self.points.par_iter())
            .for_each(|(o, point)| self.point_jacobian(theta, &self.input(x, point), o));
    }

    fn hessian(&self, x: &[f64], weights: &[f64], out: &mut [f64]) {
        let theta = &x[self.theta_offset..self.theta_offset + self.offsets[self.offsets.len() - 1]];
        let n_theta = self.theta_block_len();
        let (theta_out, point_out) = out.split_at_mut(n_theta);
        let d_out = self.n_out();
        // Points in one chunk per thread, each chunk summing its θ block privately.
        let chunk = self
            .points
            .len()
            .div_ceil(rayon::current_num_threads().max(1))
            .max(1);
        let sums: Vec<Vec<f64>> = point_out
            .par_chunks_mut(chunk * self.point_block_len())
            .zip(self.points.par_chunks(chunk))
            .zip(weights.par_chunks(chunk * d_out))
            .map(|((blocks, points), w)| {
                let mut acc = vec![0.0; n_theta];
                for ((block, point), wk) in blocks
                    .chunks_exact_mut(self.point_block_len())
                    .zip(points)
                    .zip(w.chunks_exact(d_out))
                {
                    self.point_hessian(theta, &self.input(x, point), wk, &mut acc, block);
                }
                acc
            })
            .collect();
        for acc in sums {
            for (o, a) in theta_out.iter_mut().zip(acc) {
                *o += a;
            }
        }
    }
}
