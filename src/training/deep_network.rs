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
//!
//! Each point writes its own small block; the θ block, a sum over all points, is formed from
//! the points' tangents and coefficients by matrix products (BLAS `dgemm`, one per kind of
//! pair and unit, in parallel) instead of each point adding its outer products into the whole
//! block: on `lorenz.toml` ([3, 50, 50, 3], 120 points) the Hessian callback took ~230 ms
//! that way, its θ block streaming through memory once per point, and ~100 ms this way. The
//! block is listed row by row and the model orders the Hessian's slots the same way
//! ([`StructuredTerm::prefers_row_ordered_hessian`]), so the gather into IPOPT's array reads
//! it in order.

use crate::nlp::StructuredTerm;
use colloc_models::{Activation, Mlp};
use colloc_solvers::linalg::{gemm_add, GemmOperand};
use rayon::prelude::*;

/// Parts the prefix products of [`ReducedNetwork::add_theta_block`] are split into (over
/// the points), to run in parallel.
const PREFIX_PARTS: usize = 2;

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
                        let tangent = &prev[j * prev_cols..(j + 1) * prev_cols];
                        self.add_unit_tangent(m - 1, j, c, tangent, row);
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

    /// Adds `c · T_{m,j}` (unit `j` of hidden layer `m`: `tangent`, a row of
    /// [`ReducedNetwork::tangents`]) to `row`, over the entries that can be nonzero — the dense
    /// prefix (the states and the parameters of the layers before `m`), the unit's own weights
    /// and its bias — in the same order as over the whole row.
    fn add_unit_tangent(&self, m: usize, j: usize, c: f64, tangent: &[f64], row: &mut [f64]) {
        let axpy = |to: &mut [f64], from: &[f64]| {
            for (r, p) in to.iter_mut().zip(from) {
                *r += c * p;
            }
        };
        let prefix = self.d + self.offsets[m];
        axpy(&mut row[..prefix], &tangent[..prefix]);
        let own = self.d + self.wi(m, j, 0)..self.d + self.wi(m, j, 0) + self.layers[m];
        axpy(&mut row[own.clone()], &tangent[own]);
        let bias = self.d + self.bi(m, j);
        row[bias] += c * tangent[bias];
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
                let tangent = &t[m - 1][j * cols..(j + 1) * cols];
                self.add_unit_tangent(m - 1, j, c, tangent, row);
                row[cols + j] = -f.h[m][j];
            }
        }
    }

    /// Adds the point's Hessian of `Σ_o weights[o]·(−F_o)`: the (θ, y) and (y, y) pairs into
    /// `point_block`, the θ pairs into `theta_block` when given; returns what the θ pairs of
    /// all points are assembled from at once ([`ReducedNetwork::add_theta_block`]).
    fn point_hessian(
        &self,
        theta: &[f64],
        input: &[f64],
        weights: &[f64],
        theta_block: Option<&mut [f64]>,
        point_block: &mut [f64],
    ) -> PointProducts {
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
        let mut products = PointProducts {
            layers: Vec::with_capacity(n_hidden),
            mu: mu.clone(),
        };
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
            let pt = self.offsets[m];
            products.layers.push(LayerProducts {
                tangents: (0..width)
                    .flat_map(|i| t[m][i * cols + d..i * cols + d + pt].iter().copied())
                    .collect(),
                inputs: f.h[m].iter().copied().chain(std::iter::once(1.0)).collect(),
                curvature: (0..width).map(|i| f.s2[m][i] * h_bar[i]).collect(),
                z_bar: z_bar.clone(),
                slope: f.s1[m].clone(),
            });
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
        products.layers.reverse();
        products
    }

    /// Adds the θ pairs of every point's Hessian into the packed θ block, from the points'
    /// [`PointProducts`]: each kind of pair (a layer's prefix with itself, a unit's own
    /// weights with the prefix and with each other, a layer's weights with the previous
    /// layer's tangents, the output weights) summed over the points as one matrix product.
    /// The products run in parallel; their sums are added in a fixed order.
    fn add_theta_block(&self, points: &[PointProducts], theta_block: &mut [f64]) {
        if points.is_empty() {
            return;
        }
        let n_hidden = self.layers.len() - 2;
        // Per hidden layer, the points side by side (point-major).
        let stack = |m: usize, part: fn(&LayerProducts) -> &[f64]| -> Vec<f64> {
            points
                .iter()
                .flat_map(|p| part(&p.layers[m]).iter().copied())
                .collect()
        };
        let stacked: Vec<StackedLayer> = (0..n_hidden)
            .map(|m| StackedLayer {
                tangents: stack(m, |l| &l.tangents),
                inputs: stack(m, |l| &l.inputs),
                curvature: stack(m, |l| &l.curvature),
                z_bar: stack(m, |l| &l.z_bar),
                slope: stack(m, |l| &l.slope),
            })
            .collect();
        let mu: Vec<f64> = points.iter().flat_map(|p| p.mu.iter().copied()).collect();
        // The prefix products are the largest: split over the points into a fixed number of
        // parts (not one per thread: the sums must not depend on the machine).
        let parts = PREFIX_PARTS.min(points.len());
        let mut tasks = Vec::new();
        for m in 0..n_hidden {
            tasks.extend((0..parts).map(|part| ThetaTask::Prefix { m, part, parts }));
            tasks.extend((0..self.layers[m + 1]).map(|i| ThetaTask::Unit { m, i }));
            if m > 0 {
                tasks.extend((0..self.layers[m]).map(|j| ThetaTask::Reads { m: m - 1, j }));
            }
        }
        let last = n_hidden - 1;
        tasks.extend((0..self.layers[n_hidden]).map(|j| ThetaTask::Reads { m: last, j }));
        let sums: Vec<Vec<Stretch>> = tasks
            .par_iter()
            .map(|&task| self.theta_task(task, &stacked, &mu))
            .collect();
        for stretch in sums.iter().flatten() {
            let at = self.theta_pos(stretch.row, stretch.col);
            for (o, v) in theta_block[at..at + stretch.values.len()]
                .iter_mut()
                .zip(&stretch.values)
            {
                *o += v;
            }
        }
    }

    /// One [`ThetaTask`]'s sums over the points, as stretches of θ-block rows.
    fn theta_task(&self, task: ThetaTask, stacked: &[StackedLayer], mu: &[f64]) -> Vec<Stretch> {
        let mut out = Vec::new();
        let mut push = |row: usize, col: usize, values: &[f64]| {
            out.push(Stretch {
                row,
                col,
                values: values.to_vec(),
            });
        };
        match task {
            // σ''·h̄ · t tᵀ, the prefix with itself: T·diag(c)·Tᵀ over all units and points.
            ThetaTask::Prefix { m, part, parts } => {
                let (layer, pt, width) = (&stacked[m], self.offsets[m], self.layers[m + 1]);
                if pt == 0 {
                    return out;
                }
                let k = layer.curvature.len() / width;
                let (first, end) = (part * k / parts * width, (part + 1) * k / parts * width);
                let tangents = &layer.tangents[first * pt..end * pt];
                let scaled: Vec<f64> = tangents
                    .chunks_exact(pt)
                    .zip(&layer.curvature[first..end])
                    .flat_map(|(row, &c)| row.iter().map(move |v| c * v))
                    .collect();
                let mut r = vec![0.0; pt * pt];
                let tangents = GemmOperand::new(tangents, pt);
                let scaled = GemmOperand::new(&scaled, pt).transposed();
                gemm_add((pt, pt, end - first), tangents, scaled, &mut r, pt);
                for p1 in 0..pt {
                    push(p1, 0, &r[p1 * pt..=p1 * pt + p1]);
                }
            }
            // σ''·h̄_i · t_i t_iᵀ at unit i's own weights and bias (its tangent there: the
            // layer's inputs and 1), with the prefix and with each other.
            ThetaTask::Unit { m, i } => {
                let layer = &stacked[m];
                let (n_in, width, pt) = (self.layers[m], self.layers[m + 1], self.offsets[m]);
                let n_own = n_in + 1;
                let k = layer.curvature.len() / width;
                let mut own = vec![0.0; k * n_own];
                for kk in 0..k {
                    let c = layer.curvature[kk * width + i];
                    for l in 0..n_own {
                        own[kk + l * k] = c * layer.inputs[kk * n_own + l];
                    }
                }
                let (w0, bias) = (self.wi(m, i, 0), self.bi(m, i));
                if pt > 0 {
                    let r = layer.unit_tangents_times(i, width, pt, &own, n_own);
                    for l in 0..n_in {
                        push(w0 + l, 0, &r[l * pt..(l + 1) * pt]);
                    }
                    push(bias, 0, &r[n_in * pt..]);
                }
                let r = layer.inputs_times(n_own, &own, n_own);
                for l in 0..n_in {
                    push(w0 + l, w0, &r[l * n_own..=l * n_own + l]);
                }
                push(bias, w0, &r[n_in * n_own..n_in * n_own + n_in]);
                push(bias, bias, &r[n_in * n_own + n_in..]);
            }
            // The weights reading unit j of hidden layer m — W_{m+1}(i, j), coefficient z̄_i of
            // layer m + 1, or the output weights W_out(o, j), coefficient μ_o — times
            // σ'(z_j)·T_j over T_j's prefix and unit j's own weights and bias.
            ThetaTask::Reads { m, j } => {
                let layer = &stacked[m];
                let (n_in, width, pt) = (self.layers[m], self.layers[m + 1], self.offsets[m]);
                let n_own = n_in + 1;
                let k = layer.slope.len() / width;
                let coefficients: &[f64] = match stacked.get(m + 1) {
                    Some(next) => &next.z_bar,
                    None => mu,
                };
                let n_rows = self.layers[m + 2];
                let rows: Vec<usize> = (0..n_rows).map(|r| self.wi(m + 1, r, j)).collect();
                // k × n_rows: the rows' coefficients times σ'(z_j), point by point.
                let mut z = vec![0.0; k * n_rows];
                for kk in 0..k {
                    let slope = layer.slope[kk * width + j];
                    for r in 0..n_rows {
                        z[kk + r * k] = coefficients[kk * n_rows + r] * slope;
                    }
                }
                if pt > 0 {
                    let r = layer.unit_tangents_times(j, width, pt, &z, n_rows);
                    for (ri, &row) in rows.iter().enumerate() {
                        push(row, 0, &r[ri * pt..(ri + 1) * pt]);
                    }
                }
                let r = layer.inputs_times(n_own, &z, n_rows);
                let (w0, bias) = (self.wi(m, j, 0), self.bi(m, j));
                for (ri, &row) in rows.iter().enumerate() {
                    push(row, w0, &r[ri * n_own..ri * n_own + n_in]);
                    push(row, bias, &r[ri * n_own + n_in..(ri + 1) * n_own]);
                }
            }
        }
        out
    }
}

/// One point's Hessian contributions over the local coordinates `q = (y, θ)` (`q < d`: the
/// states), added into the θ block and the point's (θ, y) and (y, y) block.
struct HessianRows<'a> {
    net: &'a ReducedNetwork,
    /// `None`: the θ pairs are left to [`ReducedNetwork::add_theta_block`].
    theta_block: Option<&'a mut [f64]>,
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
        } else if let Some(block) = self.theta_block.as_deref_mut() {
            block[self.net.theta_pos(a - d, b - d)] += v;
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
        if let (false, Some(block)) = (rest.is_empty(), self.theta_block.as_deref_mut()) {
            let at = self.net.theta_pos(q1 - d, first + in_y - d);
            for (o, &v) in block[at..at + rest.len()].iter_mut().zip(rest) {
                *o += c * v;
            }
        }
    }
}

/// What one point contributes to the θ block, per hidden layer (see
/// [`ReducedNetwork::add_theta_block`]), and the output adjoints μ.
struct PointProducts {
    layers: Vec<LayerProducts>,
    mu: Vec<f64>,
}

/// One hidden layer `m` at one point.
struct LayerProducts {
    /// The units' tangents over the θ prefix (parameters of the layers before `m`),
    /// width × offsets[m], row-major.
    tangents: Vec<f64>,
    /// The layer's input and a 1 (the tangent of a unit at its own weights and bias).
    inputs: Vec<f64>,
    /// σ''(z_i)·h̄_i, the coefficient of `t_i t_iᵀ`.
    curvature: Vec<f64>,
    /// z̄_i = σ'(z_i)·h̄_i.
    z_bar: Vec<f64>,
    /// σ'(z_i).
    slope: Vec<f64>,
}

/// One product of [`ReducedNetwork::add_theta_block`] (`m`: a hidden layer).
#[derive(Clone, Copy)]
enum ThetaTask {
    /// The layer's θ prefix (the parameters of the layers before it) with itself, summed
    /// over part `part` of `parts` of the points.
    Prefix { m: usize, part: usize, parts: usize },
    /// Unit `i`'s own weights and bias with the prefix and with each other.
    Unit { m: usize, i: usize },
    /// The next layer's (or the output's) weights reading unit `j`.
    Reads { m: usize, j: usize },
}

/// A sum of [`ReducedNetwork::add_theta_block`]: `values` at θ pairs `(row, col + k)`.
struct Stretch {
    row: usize,
    col: usize,
    values: Vec<f64>,
}

/// [`LayerProducts`] of all points, side by side (point-major).
struct StackedLayer {
    tangents: Vec<f64>,
    inputs: Vec<f64>,
    curvature: Vec<f64>,
    z_bar: Vec<f64>,
    slope: Vec<f64>,
}

impl StackedLayer {
    /// `Σ_k t_k ⊗ b_k` over the points: unit `unit`'s tangents over the θ prefix (`pt` long;
    /// the layer `width` units wide) against the rows of `b` (points × `cols`, column-major);
    /// `pt × cols`, column-major.
    fn unit_tangents_times(
        &self,
        unit: usize,
        width: usize,
        pt: usize,
        b: &[f64],
        cols: usize,
    ) -> Vec<f64> {
        let k = b.len() / cols;
        let mut r = vec![0.0; pt * cols];
        let tangents = GemmOperand::new(&self.tangents[unit * pt..], width * pt);
        gemm_add((pt, cols, k), tangents, GemmOperand::new(b, k), &mut r, pt);
        r
    }

    /// `Σ_k v_k ⊗ b_k` over the points: the layer's inputs and their 1 (`n_own` long) against
    /// the rows of `b` (points × `cols`, column-major); `n_own × cols`, column-major.
    fn inputs_times(&self, n_own: usize, b: &[f64], cols: usize) -> Vec<f64> {
        let k = b.len() / cols;
        let mut r = vec![0.0; n_own * cols];
        let inputs = GemmOperand::new(&self.inputs, n_own);
        gemm_add(
            (n_own, cols, k),
            inputs,
            GemmOperand::new(b, k),
            &mut r,
            n_own,
        );
        r
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

    /// The θ block, most of the entries, is packed row by row.
    fn prefers_row_ordered_hessian(&self) -> bool {
        true
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
        let (theta_out, point_out) = out.split_at_mut(self.theta_block_len());
        // Each point's (θ, y) and (y, y) pairs in parallel; the θ pairs of all points by
        // matrix products afterwards.
        let products: Vec<PointProducts> = point_out
            .par_chunks_mut(self.point_block_len())
            .zip(self.points.par_iter())
            .zip(weights.par_chunks(self.n_out()))
            .map(|((block, point), w)| {
                self.point_hessian(theta, &self.input(x, point), w, None, block)
            })
            .collect();
        self.add_theta_block(&products, theta_out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The θ block assembled by matrix products over all points equals the sum of the points'
    /// own contributions, pair by pair (two and three hidden layers, with time input).
    #[test]
    fn theta_block_by_products_equals_the_sum_over_points() {
        for (layers, time_input) in [(vec![2, 5, 4, 2], false), (vec![4, 3, 6, 5, 3], true)] {
            let model = Mlp::xavier(&layers, Activation::Tanh, time_input, 5).expect("valid");
            let d = model.state_inputs();
            let d_out = model.n_outputs();
            let n_points = 17;
            // Variables: the points' states, then θ.
            let points: Vec<NetworkPoint> = (0..n_points)
                .map(|k| NetworkPoint {
                    states: (k * d..(k + 1) * d).collect(),
                    time: 0.1 * k as f64,
                    rows: (k * d_out..(k + 1) * d_out).collect(),
                })
                .collect();
            let net = ReducedNetwork::new("net", &model, n_points * d, points);
            let wave = |i: usize, a: f64| (a * i as f64).sin();
            let mut x: Vec<f64> = (0..n_points * d).map(|i| wave(i, 0.7)).collect();
            // Biases away from zero, so that every σ'' term counts.
            x.extend(
                model
                    .params
                    .iter()
                    .enumerate()
                    .map(|(i, p)| p + 0.3 * wave(i, 1.3)),
            );
            let weights: Vec<f64> = (0..n_points * d_out).map(|i| 1.0 + wave(i, 2.1)).collect();
            let theta = &x[n_points * d..];

            let mut by_points = vec![0.0; net.theta_block_len()];
            let mut by_products = vec![0.0; net.theta_block_len()];
            let mut block = vec![0.0; net.point_block_len()];
            let products: Vec<PointProducts> = net
                .points
                .iter()
                .enumerate()
                .map(|(k, point)| {
                    let w = &weights[k * d_out..(k + 1) * d_out];
                    let input = net.input(&x, point);
                    net.point_hessian(theta, &input, w, Some(&mut by_points), &mut block)
                })
                .collect();
            net.add_theta_block(&products, &mut by_products);
            let scale = by_points.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(scale > 1e-3);
            for (i, (a, b)) in by_products.iter().zip(&by_points).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-12 * scale,
                    "{layers:?} entry {i}: {a} vs {b}"
                );
            }
        }
    }
}
