//! [`Nlp`]: a compiled model, evaluated through [`NlpEvaluator`].

use super::derivatives::GroupKernels;
use super::element::Target;
use super::gram::DenseBlock;
use super::sparsity::Gather;
use super::structured::CompiledStructured;
use super::variables::{ConBlock, VarBlock};
use colloc_solvers::{check_finite, EvalError, KktBlocks, NlpDims, NlpEvaluator, NlpScaling};
use sprs::CsMat;
use std::sync::Arc;

pub(crate) struct CompiledGroup {
    pub val_offset: usize,
    pub jac_offset: usize,
    pub hess_offset: usize,
    pub has_objective: bool,
    pub has_constraints: bool,
    pub kernels: Box<dyn GroupKernels>,
}

impl CompiledGroup {
    fn val_range(&self) -> std::ops::Range<usize> {
        self.val_offset..self.val_offset + self.kernels.len() * self.kernels.n_outputs()
    }
    fn jac_range(&self) -> std::ops::Range<usize> {
        let k = &self.kernels;
        self.jac_offset..self.jac_offset + k.len() * k.n_outputs() * k.n_inputs()
    }
    fn hess_range(&self) -> std::ops::Range<usize> {
        let k = &self.kernels;
        self.hess_offset..self.hess_offset + k.len() * super::derivatives::packed_len(k.n_inputs())
    }
}

/// Largest element buffer (entries) of constraint values or Jacobian entries assembled by
/// scattering. A small model's evaluation is bound by memory traffic, not arithmetic: IPOPT's
/// factorization between two evaluations evicts the element buffers and gather maps from the
/// cache, and the parallel kernels gain little over one thread. Scattering element blocks
/// straight into the values, one element after another, skips the buffer and the gather's
/// scattered reads of it. Measured per call inside IPOPT on 2 cores (forced Van der Pol,
/// [2, 32, 2]): 200 points, Hessian 1.4 → 0.7 ms, Jacobian 0.9 → 0.5 ms; 2001 points (1.8 M
/// Hessian entries) 10 → 7.4 ms; at 20,001 points the parallel path is faster for the
/// Jacobian (9 M entries: 49–53 vs 60–66 ms), so larger buffers keep it there. The Hessian
/// scatters at any size: with its slots in column order (see `SlotOrder::ColumnMajor`) one
/// point's elements write one stretch of it, while the parallel gather sums each network
/// parameter's coupling over all points at a stride — 98 vs 168 ms at 20,001 points (18 M
/// entries; 130–170 vs 189–227 ms with the slots in row order). Only models whose element
/// groups all have closed-form derivatives scatter: dual-number elements cost enough per
/// element that their parallel kernels pay off (`cargo bench --bench modeling`: 100,000
/// five-input elements, constraint values 2.2 ms in parallel against 4.0 ms scattered).
pub const SCATTER_MAX_ENTRIES: usize = 1 << 22;

/// A compiled `weight · ‖A·x − b‖²` term.
pub(crate) struct CompiledLeastSquares {
    pub a: CsMat<f64>,
    pub b: Vec<f64>,
    pub weight: f64,
    pub residual: Vec<f64>,
    /// `A`'s dense column blocks (see `gram::dense_blocks`; empty when it has none), with their
    /// covering rows laid out for evaluation.
    blocks: Vec<ResidualBlock>,
    /// Per row: its residual comes from a block's chunk of covering rows.
    chunked: Vec<bool>,
    /// Per row: it lies in one of `blocks` (its gradient terms are added block by block).
    blocked: Vec<bool>,
    /// Scratch of a block's length (x or the gradient gathered at its columns).
    gathered: Vec<f64>,
}

/// Lanes of [`ResidualBlock`]'s chunks: residuals computed side by side.
const LANES: usize = 8;

/// A dense column block of `A` for evaluation: its rows, and its covering rows (an entry in every
/// column) in chunks of [`LANES`], column-major, so that one sweep over the columns advances the
/// residuals of a chunk's rows side by side — each row's products still summed in its own
/// order (the order of its CSR entries), so the values equal the row-by-row ones to the bit.
struct ResidualBlock {
    columns: Vec<usize>,
    /// All rows with entries in the block, ascending.
    rows: Vec<usize>,
    /// The covering rows, ascending; chunk `c` holds `covering[LANES·c..]`.
    covering: Vec<usize>,
    /// Chunk `c`'s entry `(k, lane)` at `LANES·m·c + LANES·k + lane` (`m` columns; a short last
    /// chunk is padded with zeros).
    values: Vec<f64>,
}

impl CompiledLeastSquares {
    /// The term with `blocks`, `A`'s dense column blocks; those of at least [`LANES`] columns
    /// are laid out for evaluation (narrower ones gain nothing: an observation on a node is a
    /// one-column block), the other rows evaluated one by one.
    pub fn new(a: CsMat<f64>, b: Vec<f64>, weight: f64, blocks: Vec<DenseBlock>) -> Self {
        let mut chunked = vec![false; a.rows()];
        let mut blocked = vec![false; a.rows()];
        let mut widest = 0;
        let blocks = blocks
            .into_iter()
            .filter(|block| block.columns.len() >= LANES)
            .map(|block| {
                for &r in &block.rows {
                    blocked[r] = true;
                }
                let m = block.columns.len();
                widest = widest.max(m);
                let covering: Vec<usize> = block
                    .rows
                    .iter()
                    .copied()
                    .filter(|&r| a.outer_view(r).is_some_and(|row| row.nnz() == m))
                    .collect();
                let mut values = vec![0.0; covering.len().div_ceil(LANES) * LANES * m];
                for (i, &r) in covering.iter().enumerate() {
                    chunked[r] = true;
                    let (c, lane) = (i / LANES, i % LANES);
                    let chunk = &mut values[c * LANES * m..(c + 1) * LANES * m];
                    if let Some(row) = a.outer_view(r) {
                        for (k, &v) in row.data().iter().enumerate() {
                            chunk[k * LANES + lane] = v;
                        }
                    }
                }
                ResidualBlock {
                    columns: block.columns,
                    rows: block.rows,
                    covering,
                    values,
                }
            })
            .collect();
        let residual = vec![0.0; a.rows()];
        Self {
            a,
            b,
            weight,
            residual,
            blocks,
            chunked,
            blocked,
            gathered: vec![0.0; widest],
        }
    }

    fn update_residual(&mut self, x: &[f64]) {
        for (r, ((res, row), b)) in self
            .residual
            .iter_mut()
            .zip(self.a.outer_iterator())
            .zip(&self.b)
            .enumerate()
        {
            if !self.chunked[r] {
                *res = row.iter().map(|(j, &a)| a * x[j]).sum::<f64>() - b;
            }
        }
        for block in &self.blocks {
            let m = block.columns.len();
            let xg = &mut self.gathered[..m];
            for (g, &c) in xg.iter_mut().zip(&block.columns) {
                *g = x[c];
            }
            for (rows, chunk) in block
                .covering
                .chunks(LANES)
                .zip(block.values.chunks_exact(LANES * m))
            {
                // Each lane is one row's sum, started from its first product: `sum` starts
                // from −0.0, and −0.0 + p = p for every p.
                let mut acc = [0.0; LANES];
                for (s, &v) in acc.iter_mut().zip(&chunk[..LANES]) {
                    *s = v * xg[0];
                }
                for (k, &xk) in xg.iter().enumerate().skip(1) {
                    for (s, &v) in acc.iter_mut().zip(&chunk[k * LANES..(k + 1) * LANES]) {
                        *s += v * xk;
                    }
                }
                for (&r, s) in rows.iter().zip(acc) {
                    self.residual[r] = s - self.b[r];
                }
            }
        }
    }

    /// Adds `2w·Aᵀ·r` to `grad` (the residual up to date), each entry summing its rows in order.
    fn add_gradient(&mut self, grad: &mut [f64]) {
        let two_w = 2.0 * self.weight;
        // A column's terms all come from the rows of its block: the rows outside `blocks` first,
        // then each block's rows in order, keep every column's order.
        for ((row, r), &in_block) in self
            .a
            .outer_iterator()
            .zip(&self.residual)
            .zip(&self.blocked)
        {
            if !in_block {
                for (j, &a) in row.iter() {
                    grad[j] += two_w * a * r;
                }
            }
        }
        let (indptr, indices, data) = (self.a.indptr(), self.a.indices(), self.a.data());
        for block in &self.blocks {
            let m = block.columns.len();
            let g = &mut self.gathered[..m];
            for (gk, &c) in g.iter_mut().zip(&block.columns) {
                *gk = grad[c];
            }
            for &r in &block.rows {
                let range = indptr.outer_inds_sz(r);
                let (v, rr) = (&data[range.clone()], self.residual[r]);
                if v.len() == m {
                    for (gk, &a) in g.iter_mut().zip(v) {
                        *gk += two_w * a * rr;
                    }
                } else {
                    for (&c, &a) in indices[range].iter().zip(v) {
                        if let Ok(k) = block.columns.binary_search(&c) {
                            g[k] += two_w * a * rr;
                        }
                    }
                }
            }
            for (&gk, &c) in g.iter().zip(&block.columns) {
                grad[c] = gk;
            }
        }
    }
}

/// A compiled `weight · Σ x_i²` term and the Hessian slots of its diagonal.
pub(crate) struct CompiledL2 {
    pub name: String,
    pub indices: Vec<usize>,
    pub weight: f64,
    pub hess_slots: Vec<usize>,
}

/// A compiled NLP: fixed patterns, preallocated buffers. Built by [`super::Model::build`].
pub struct Nlp {
    pub(crate) dims: NlpDims,
    pub(crate) x_lower: Vec<f64>,
    pub(crate) x_upper: Vec<f64>,
    pub(crate) x_start: Vec<f64>,
    pub(crate) g_lower: Vec<f64>,
    pub(crate) g_upper: Vec<f64>,
    pub(crate) scaling: Option<NlpScaling>,
    pub(crate) var_blocks: Vec<VarBlock>,
    pub(crate) con_blocks: Vec<ConBlock>,
    pub(crate) linear_matrix: CsMat<f64>,
    pub(crate) linear_objective: Vec<f64>,
    pub(crate) objective_constant: f64,
    pub(crate) least_squares: Vec<CompiledLeastSquares>,
    pub(crate) l2: Vec<CompiledL2>,
    pub(crate) objective_values: Vec<usize>,
    pub(crate) g_gather: Gather,
    pub(crate) grad_gather: Gather,
    pub(crate) jac_rows: Vec<u32>,
    pub(crate) jac_cols: Vec<u32>,
    pub(crate) jac_gather: Gather,
    pub(crate) hess_rows: Vec<u32>,
    pub(crate) hess_cols: Vec<u32>,
    pub(crate) hess_gather: Gather,
    /// Slots of the value, Jacobian and Hessian arena entries when the model assembles by
    /// scattering (small models, see [`SCATTER_MAX_ENTRIES`]); `None`: parallel element
    /// kernels, then the gathers.
    pub(crate) g_scatter: Option<Vec<u32>>,
    pub(crate) jac_scatter: Option<Vec<u32>>,
    pub(crate) hess_scatter: Option<Vec<u32>>,
    pub(crate) weight_targets: Vec<Target>,
    pub(crate) val_arena: Vec<f64>,
    pub(crate) jac_arena: Vec<f64>,
    /// Empty while the Hessian scatters closed-form elements (it is then never read: 144 MB
    /// at 20,001 points); allocated by [`Nlp::set_scatter_assembly`].
    pub(crate) hess_arena: Vec<f64>,
    /// Entries of the Hessian element buffer.
    pub(crate) hess_len: usize,
    pub(crate) weight_arena: Vec<f64>,
    pub(crate) groups: Vec<CompiledGroup>,
    /// The point the groups' shared quantities were computed at (see [`Nlp::share`]); empty
    /// while none are.
    pub(crate) shared_at: Vec<f64>,
    pub(crate) structured: Vec<CompiledStructured>,
    pub(crate) kkt_blocks: Option<Arc<KktBlocks>>,
}

impl Nlp {
    /// The variable blocks, in declaration order.
    pub fn variable_blocks(&self) -> &[VarBlock] {
        &self.var_blocks
    }

    /// The variable block with this name.
    pub fn variable_block(&self, name: &str) -> Option<&VarBlock> {
        self.var_blocks.iter().find(|b| b.name == name)
    }

    /// The constraint blocks, in declaration order.
    pub fn constraint_blocks(&self) -> &[ConBlock] {
        &self.con_blocks
    }

    /// The starting point.
    pub fn start(&self) -> &[f64] {
        &self.x_start
    }

    /// Replaces the starting point (e.g. with a previous solution).
    pub fn set_start(&mut self, x: &[f64]) -> Result<(), EvalError> {
        if x.len() != self.x_start.len() {
            return Err(EvalError::Domain(format!(
                "start has {} entries, the model has {} variables",
                x.len(),
                self.x_start.len()
            )));
        }
        check_finite("start", x)?;
        self.x_start.copy_from_slice(x);
        Ok(())
    }

    /// Changes the weight of the L2 term `name` (see [`super::L2Regularization`]) without
    /// rebuilding: objective, gradient and the constant Hessian entries follow.
    pub fn set_l2_weight(&mut self, name: &str, weight: f64) -> Result<(), EvalError> {
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(EvalError::Domain(format!(
                "weight of `{name}` must be a non-negative number, got {weight}"
            )));
        }
        let term = self
            .l2
            .iter_mut()
            .find(|t| t.name == name)
            .ok_or_else(|| EvalError::Domain(format!("no L2 term named `{name}`")))?;
        let delta = 2.0 * (weight - term.weight);
        for &slot in &term.hess_slots {
            self.hess_gather.constant[slot] += delta;
        }
        term.weight = weight;
        Ok(())
    }

    /// Chooses how derivative values are assembled: `true` scatters each element's block into
    /// the values one element after another, `false` runs the element kernels in parallel
    /// into element buffers and gathers them. Both sum the same terms in the same order. The
    /// builder scatters the Hessian of models of closed-form elements, and their values and
    /// Jacobian while small (see [`SCATTER_MAX_ENTRIES`]); this switch, for tests and
    /// measurements, sets all three.
    pub fn set_scatter_assembly(&mut self, scatter: bool) {
        let (val_len, jac_len, hess_len) =
            (self.val_arena.len(), self.jac_arena.len(), self.hess_len);
        self.hess_arena.resize(hess_len, 0.0);
        // The builder dropped the source lists of scattered assemblies.
        for (gather, slots) in [
            (&mut self.g_gather, &self.g_scatter),
            (&mut self.jac_gather, &self.jac_scatter),
            (&mut self.hess_gather, &self.hess_scatter),
        ] {
            if let Some(slots) = slots {
                gather.restore_sources(slots);
            }
        }
        self.g_scatter = scatter.then(|| self.g_gather.slots(val_len));
        self.jac_scatter = scatter.then(|| self.jac_gather.slots(jac_len));
        self.hess_scatter = scatter.then(|| self.hess_gather.slots(hess_len));
    }

    /// True when constraint values and Jacobian entries are assembled by scattering (see
    /// [`Nlp::set_scatter_assembly`]; the Hessian may scatter at sizes where they do not).
    pub fn scatter_assembly(&self) -> bool {
        self.jac_scatter.is_some()
    }

    /// Declares a block partition for the KKT solver (see [`KktBlocks`]); checked by the
    /// solver against the actual patterns.
    pub fn set_kkt_blocks(&mut self, blocks: KktBlocks) {
        self.kkt_blocks = Some(Arc::new(blocks));
    }

    /// Brings the element groups' shared quantities ([`crate::nlp::Element::share`]) to
    /// `x` unless they are there already: IPOPT evaluates constraints, Jacobian and Hessian
    /// at one iterate, and a network unit's activation is computed once for all three.
    fn share(&mut self, x: &[f64]) {
        // Bitwise: `0.0 == -0.0` would keep quantities of the other zero's sign.
        let same_point = self.shared_at.len() == x.len()
            && self
                .shared_at
                .iter()
                .zip(x)
                .all(|(a, b)| a.to_bits() == b.to_bits());
        if same_point || !self.groups.iter().any(|g| g.kernels.shares()) {
            return;
        }
        for g in &mut self.groups {
            g.kernels.share(x);
        }
        self.shared_at.clear();
        self.shared_at.extend_from_slice(x);
    }

    fn eval_values(&mut self, x: &[f64], objective: bool, constraints: bool) {
        self.share(x);
        for g in &self.groups {
            if (objective && g.has_objective) || (constraints && g.has_constraints) {
                g.kernels.values(x, &mut self.val_arena[g.val_range()]);
            }
        }
        if constraints {
            for t in &self.structured {
                let out = &mut self.val_arena[t.val_range()];
                out.fill(0.0);
                t.term.values(x, out);
            }
        }
    }
}

impl NlpEvaluator for Nlp {
    fn dims(&self) -> NlpDims {
        self.dims
    }

    fn kkt_blocks(&self) -> Option<Arc<KktBlocks>> {
        self.kkt_blocks.clone()
    }

    fn bounds(
        &self,
        x_lower: &mut [f64],
        x_upper: &mut [f64],
        g_lower: &mut [f64],
        g_upper: &mut [f64],
    ) {
        x_lower.copy_from_slice(&self.x_lower);
        x_upper.copy_from_slice(&self.x_upper);
        g_lower.copy_from_slice(&self.g_lower);
        g_upper.copy_from_slice(&self.g_upper);
    }

    fn initial_point(&self, x: &mut [f64]) {
        x.copy_from_slice(&self.x_start);
    }

    fn scaling(&self) -> Option<NlpScaling> {
        self.scaling.clone()
    }

    fn jacobian_structure(&self, rows: &mut [usize], cols: &mut [usize]) {
        widen(&self.jac_rows, rows);
        widen(&self.jac_cols, cols);
    }

    fn hessian_structure(&self, rows: &mut [usize], cols: &mut [usize]) {
        widen(&self.hess_rows, rows);
        widen(&self.hess_cols, cols);
    }

    fn objective(&mut self, x: &[f64]) -> Result<f64, EvalError> {
        self.eval_values(x, true, false);
        let mut f: f64 = self.objective_constant;
        f += self
            .objective_values
            .iter()
            .map(|&p| self.val_arena[p])
            .sum::<f64>();
        f += self
            .linear_objective
            .iter()
            .zip(x)
            .map(|(c, xi)| c * xi)
            .sum::<f64>();
        for ls in &mut self.least_squares {
            ls.update_residual(x);
            f += ls.weight * ls.residual.iter().map(|r| r * r).sum::<f64>();
        }
        for term in &self.l2 {
            f += term.weight * term.indices.iter().map(|&i| x[i] * x[i]).sum::<f64>();
        }
        check_finite("objective", &[f])?;
        Ok(f)
    }

    fn gradient(&mut self, x: &[f64], grad: &mut [f64]) -> Result<(), EvalError> {
        grad.copy_from_slice(&self.linear_objective);
        for ls in &mut self.least_squares {
            ls.update_residual(x);
            ls.add_gradient(grad);
        }
        for term in &self.l2 {
            for &i in &term.indices {
                grad[i] += 2.0 * term.weight * x[i];
            }
        }
        if self.grad_gather.reads_arena() {
            self.share(x);
            for g in &self.groups {
                if g.has_objective {
                    g.kernels.jacobians(x, &mut self.jac_arena[g.jac_range()]);
                }
            }
            self.grad_gather.add_arena(&self.jac_arena, grad);
        }
        check_finite("gradient", grad)
    }

    fn constraints(&mut self, x: &[f64], g: &mut [f64]) -> Result<(), EvalError> {
        self.share(x);
        if let Some(slots) = &self.g_scatter {
            g.fill(0.0);
            for group in self.groups.iter().filter(|group| group.has_constraints) {
                let range = group.val_range();
                group.kernels.scatter_values(x, &slots[range], g);
            }
            for t in &self.structured {
                let range = t.val_range();
                let out = &mut self.val_arena[range.clone()];
                out.fill(0.0);
                t.term.values(x, out);
                Gather::scatter(slots, &self.val_arena, range, g);
            }
        } else {
            self.eval_values(x, false, true);
            self.g_gather.assemble(&self.val_arena, 0.0, g);
        }
        for (gi, row) in g.iter_mut().zip(self.linear_matrix.outer_iterator()) {
            *gi += row.iter().map(|(j, &a)| a * x[j]).sum::<f64>();
        }
        check_finite("constraints", g)
    }

    fn jacobian_values(&mut self, x: &[f64], values: &mut [f64]) -> Result<(), EvalError> {
        self.share(x);
        let Some(slots) = &self.jac_scatter else {
            for g in &self.groups {
                if g.has_constraints {
                    g.kernels.jacobians(x, &mut self.jac_arena[g.jac_range()]);
                }
            }
            for t in &self.structured {
                let out = &mut self.jac_arena[t.jac_range()];
                out.fill(0.0);
                t.term.jacobian(x, out);
            }
            self.jac_gather.assemble(&self.jac_arena, 1.0, values);
            return check_finite("jacobian", values);
        };
        // The arena order: groups, then structured terms. When every term was summable the
        // sums are finite and the result needs no second pass (see `summable`).
        let mut summable = self.jac_gather.fill_constants(1.0, values);
        for g in self.groups.iter().filter(|g| g.has_constraints) {
            let range = g.jac_range();
            summable &= match g
                .kernels
                .scatter_jacobians(x, &slots[range.clone()], values)
            {
                Some(ok) => ok,
                None => {
                    g.kernels.jacobians(x, &mut self.jac_arena[range.clone()]);
                    Gather::scatter(slots, &self.jac_arena, range, values)
                }
            };
        }
        for t in &self.structured {
            let range = t.jac_range();
            let out = &mut self.jac_arena[range.clone()];
            out.fill(0.0);
            t.term.jacobian(x, out);
            summable &= Gather::scatter(slots, &self.jac_arena, range, values);
        }
        if summable {
            return Ok(());
        }
        check_finite("jacobian", values)
    }

    fn hessian_values(
        &mut self,
        x: &[f64],
        obj_factor: f64,
        lambda: &[f64],
        values: &mut [f64],
    ) -> Result<(), EvalError> {
        self.share(x);
        for (w, t) in self.weight_arena.iter_mut().zip(&self.weight_targets) {
            *w = match *t {
                Target::Objective => obj_factor,
                Target::Constraint(r) => lambda[r],
            };
        }
        let Some(slots) = &self.hess_scatter else {
            for g in &self.groups {
                let weights = &self.weight_arena[g.val_range()];
                g.kernels
                    .hessians(x, weights, &mut self.hess_arena[g.hess_range()]);
            }
            for t in &self.structured {
                let weights = &self.weight_arena[t.val_range()];
                let out = &mut self.hess_arena[t.hess_range()];
                out.fill(0.0);
                t.term.hessian(x, weights, out);
            }
            self.hess_gather
                .assemble(&self.hess_arena, obj_factor, values);
            return check_finite("hessian", values);
        };
        // As in `jacobian_values`: no second pass when every term was summable.
        let mut summable = self.hess_gather.fill_constants(obj_factor, values);
        for g in &self.groups {
            let (range, weights) = (g.hess_range(), &self.weight_arena[g.val_range()]);
            summable &= match g
                .kernels
                .scatter_hessians(x, weights, &slots[range.clone()], values)
            {
                Some(ok) => ok,
                None => {
                    g.kernels
                        .hessians(x, weights, &mut self.hess_arena[range.clone()]);
                    Gather::scatter(slots, &self.hess_arena, range, values)
                }
            };
        }
        for t in &self.structured {
            let (range, weights) = (t.hess_range(), &self.weight_arena[t.val_range()]);
            let out = &mut self.hess_arena[range.clone()];
            out.fill(0.0);
            t.term.hessian(x, weights, out);
            summable &= Gather::scatter(slots, &self.hess_arena, range, values);
        }
        if summable {
            return Ok(());
        }
        check_finite("hessian", values)
    }
}

impl std::fmt::Debug for Nlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nlp")
            .field("dims", &self.dims)
            .field(
                "variables",
                &self.var_blocks.iter().map(|b| &b.name).collect::<Vec<_>>(),
            )
            .field(
                "constraints",
                &self.con_blocks.iter().map(|b| &b.name).collect::<Vec<_>>(),
            )
            .field(
                "element_groups",
                &self
                    .groups
                    .iter()
                    .map(|g| g.kernels.name())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Copies 32-bit pattern indices into the evaluator interface's `usize` ones.
fn widen(from: &[u32], to: &mut [usize]) {
    assert_eq!(
        from.len(),
        to.len(),
        "structure buffer of the pattern's length"
    );
    for (t, &f) in to.iter_mut().zip(from) {
        *t = f as usize;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nlp::gram::dense_blocks;
    use rand::{Rng, SeedableRng};

    /// A data fit's matrix as the collocation build lays it out (state `i` of observation `r`
    /// on row `r·d + i`, node `j` of state `i` at column `3 + j·d + i`), with the first
    /// observation on a node (one entry per row), one empty row, and `rows` not a multiple of
    /// the lanes.
    fn fit(rows: usize, points: usize, d: usize) -> (CsMat<f64>, Vec<f64>, Vec<f64>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let cols = 3 + points * d + 2;
        let mut tri = sprs::TriMat::new((rows * d + 1, cols));
        for r in 0..rows {
            for i in 0..d {
                if r == 0 {
                    tri.add_triplet(i, 3 + i, 1.0);
                    continue;
                }
                for j in 0..points {
                    tri.add_triplet(r * d + i, 3 + j * d + i, rng.gen_range(-1.0..1.0));
                }
            }
        }
        let b = (0..rows * d + 1)
            .map(|_| rng.gen_range(-2.0..2.0))
            .collect();
        let x = (0..cols).map(|_| rng.gen_range(-3.0..3.0)).collect();
        (tri.to_csr(), b, x)
    }

    #[test]
    fn chunked_residuals_and_gradient_equal_the_row_by_row_ones_to_the_bit() {
        for (rows, points, d) in [(21, 9, 2), (8, 12, 1), (3, 30, 3), (40, 1, 2), (17, 5, 2)] {
            let (a, b, x) = fit(rows, points, d);
            let blocks = dense_blocks(&a).expect("the fit's blocks");
            assert_eq!(blocks.len(), d);
            let mut fast = CompiledLeastSquares::new(a.clone(), b.clone(), 0.37, blocks);
            assert_eq!(fast.blocks.len(), if points >= LANES { d } else { 0 });
            let mut plain = CompiledLeastSquares::new(a, b, 0.37, Vec::new());
            fast.update_residual(&x);
            plain.update_residual(&x);
            let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast.residual), bits(&plain.residual));
            let start: Vec<f64> = (0..x.len()).map(|j| 0.1 * j as f64 - 0.4).collect();
            let (mut g_fast, mut g_plain) = (start.clone(), start);
            fast.add_gradient(&mut g_fast);
            plain.add_gradient(&mut g_plain);
            assert_eq!(
                bits(&g_fast),
                bits(&g_plain),
                "{rows} rows, {points} points"
            );
            // And the values themselves, against a dense product.
            let dense = plain.a.to_dense();
            for (r, &res) in plain.residual.iter().enumerate() {
                let ax: f64 = (0..x.len()).map(|j| dense[[r, j]] * x[j]).sum();
                assert!((res - (ax - plain.b[r])).abs() < 1e-12);
            }
        }
    }
}
