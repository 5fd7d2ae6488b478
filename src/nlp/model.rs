//! [`Model`]: collects blocks and terms, then compiles them into an [`Nlp`].

use super::derivatives::{packed_len, GroupKernels};
use super::element::{Element, ElementGroup, Target};
use super::evaluator::{CompiledGroup, CompiledL2, CompiledLeastSquares, Nlp, SCATTER_MAX_ENTRIES};
use super::gram::{dense_blocks, gram_lower};
use super::sparsity::{dense_gather, PatternBuilder, SlotOrder, Source};
use super::structured::{CompiledStructured, StructuredTerm};
use super::terms::{L2Regularization, LeastSquares};
use super::variables::{check_finite, ConBlock, ConSpec, VarBlock, VarSpec};
use super::ModelError;
use colloc_solvers::{NlpDims, NlpScaling};
use sprs::CsMat;
use std::collections::HashSet;

/// A term's name (for error messages) with its entries, stored once per term.
type NamedEntries<T> = (String, Vec<T>);

/// A model under construction. See the [module documentation](super).
///
/// ```
/// use colloc::nlp::{ConSpec, L2Regularization, Model, VarSpec};
/// use colloc::solvers::NlpEvaluator;
/// // minimize x0² + x1²  subject to  x0 + x1 = 1
/// let mut model = Model::new();
/// let x = model.add_variables(VarSpec::new("x", &[2])).unwrap();
/// let c = model.add_constraints(ConSpec::new("sum", 1, 1.0, 1.0)).unwrap();
/// model.add_linear_triplets("sum", [(c.row(0), x.index(0), 1.0), (c.row(0), x.index(1), 1.0)]);
/// model.add_l2(L2Regularization::new("norm", x.indices(), 1.0));
/// let nlp = model.build().unwrap();
/// assert_eq!(nlp.dims().nnz_jac, 2);
/// ```
#[derive(Default)]
pub struct Model {
    vars: Vec<VarSpec>,
    var_blocks: Vec<VarBlock>,
    n_vars: usize,
    cons: Vec<ConSpec>,
    con_blocks: Vec<ConBlock>,
    n_cons: usize,
    names: HashSet<String>,
    /// Linear constraint terms: a name and its `(row, column, coefficient)` entries.
    linear_constraints: Vec<NamedEntries<(usize, usize, f64)>>,
    /// Linear objective terms: a name and its `(column, coefficient)` entries.
    linear_objective: Vec<NamedEntries<(usize, f64)>>,
    objective_constant: f64,
    least_squares: Vec<LeastSquares>,
    l2: Vec<L2Regularization>,
    groups: Vec<Box<dyn GroupKernels>>,
    structured: Vec<Box<dyn StructuredTerm>>,
}

impl Model {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of variables declared so far.
    pub fn n_vars(&self) -> usize {
        self.n_vars
    }

    /// Number of constraint rows declared so far.
    pub fn n_cons(&self) -> usize {
        self.n_cons
    }

    fn claim_name(&mut self, name: &str) -> Result<(), ModelError> {
        if self.names.insert(name.to_string()) {
            Ok(())
        } else {
            Err(ModelError::DuplicateName(name.to_string()))
        }
    }

    /// Adds a block of variables; returns its handle.
    pub fn add_variables(&mut self, spec: VarSpec) -> Result<VarBlock, ModelError> {
        spec.validate()?;
        self.claim_name(&spec.name)?;
        let block = VarBlock {
            name: spec.name.clone(),
            offset: self.n_vars,
            shape: spec.shape.clone(),
        };
        self.n_vars += spec.len();
        self.vars.push(spec);
        self.var_blocks.push(block.clone());
        Ok(block)
    }

    /// Adds a block of constraint rows; returns its handle.
    pub fn add_constraints(&mut self, spec: ConSpec) -> Result<ConBlock, ModelError> {
        spec.validate()?;
        self.claim_name(&spec.name)?;
        let block = ConBlock {
            name: spec.name.clone(),
            offset: self.n_cons,
            len: spec.len(),
        };
        self.n_cons += spec.len();
        self.cons.push(spec);
        self.con_blocks.push(block.clone());
        Ok(block)
    }

    /// Adds `A x` to the rows of `block`: `A` has `block.len` rows and one column per global
    /// variable.
    pub fn add_linear(
        &mut self,
        name: &str,
        block: &ConBlock,
        matrix: &CsMat<f64>,
    ) -> Result<(), ModelError> {
        if matrix.rows() != block.len {
            return Err(ModelError::ShapeMismatch {
                term: name.to_string(),
                got: matrix.rows(),
                expected: block.len,
            });
        }
        let entries = matrix.iter().map(|(&v, (i, j))| (block.row(i), j, v));
        self.linear_constraints
            .push((name.to_string(), entries.collect()));
        Ok(())
    }

    /// Adds `coefficient · x[col]` to global constraint `row`, for each `(row, col, coefficient)`.
    /// Indices are checked when the model is built.
    pub fn add_linear_triplets(
        &mut self,
        name: &str,
        triplets: impl IntoIterator<Item = (usize, usize, f64)>,
    ) {
        self.linear_constraints
            .push((name.to_string(), triplets.into_iter().collect()));
    }

    /// Adds `Σ coefficient · x[index]` to the objective.
    pub fn add_linear_objective(
        &mut self,
        name: &str,
        terms: impl IntoIterator<Item = (usize, f64)>,
    ) {
        self.linear_objective
            .push((name.to_string(), terms.into_iter().collect()));
    }

    /// Adds a constant to the objective (it changes reported values, not the optimum).
    pub fn add_objective_constant(&mut self, value: f64) {
        self.objective_constant += value;
    }

    /// Adds a least-squares objective term.
    pub fn add_least_squares(&mut self, term: LeastSquares) {
        self.least_squares.push(term);
    }

    /// Adds an L2-regularization objective term.
    pub fn add_l2(&mut self, term: L2Regularization) {
        self.l2.push(term);
    }

    /// Adds a group of nonlinear elements.
    pub fn add_elements<E: Element + 'static>(
        &mut self,
        group: ElementGroup<E>,
    ) -> Result<(), ModelError> {
        self.claim_name(&group.name)?;
        if group.n_inputs == 0 || group.n_outputs == 0 {
            return Err(ModelError::EmptyBlock(group.name.clone()));
        }
        self.groups.push(Box::new(group));
        Ok(())
    }

    /// Adds a [`StructuredTerm`] (a large nonlinear constraint term with its own sparsity and
    /// derivatives).
    pub fn add_structured<T: StructuredTerm + 'static>(
        &mut self,
        term: T,
    ) -> Result<(), ModelError> {
        self.claim_name(term.name())?;
        if term.rows().is_empty() {
            return Err(ModelError::EmptyBlock(term.name().to_string()));
        }
        self.structured.push(Box::new(term));
        Ok(())
    }

    /// Validates every term, fixes the sparsity patterns and precomputes the scatter/gather maps.
    pub fn build(self) -> Result<Nlp, ModelError> {
        let (n, m) = (self.n_vars, self.n_cons);
        // The patterns key entries by 32-bit rows and columns (IPOPT's indices are 32-bit too).
        if n > i32::MAX as usize || m > i32::MAX as usize {
            return Err(ModelError::TooLarge(format!(
                "{n} variables and {m} constraints exceed the 32-bit index range"
            )));
        }
        let check_var = |term: &str, index: usize| {
            if index < n {
                Ok(())
            } else {
                Err(ModelError::VariableOutOfRange {
                    term: term.to_string(),
                    index,
                    n_vars: n,
                })
            }
        };
        let check_row = |term: &str, row: usize| {
            if row < m {
                Ok(())
            } else {
                Err(ModelError::RowOutOfRange {
                    term: term.to_string(),
                    row,
                    n_cons: m,
                })
            }
        };

        // Bounds, start, scaling.
        let mut x_lower = Vec::with_capacity(n);
        let mut x_upper = Vec::with_capacity(n);
        let mut x_start = Vec::with_capacity(n);
        let mut g_lower = Vec::with_capacity(m);
        let mut g_upper = Vec::with_capacity(m);
        for v in &self.vars {
            x_lower.extend_from_slice(&v.lower);
            x_upper.extend_from_slice(&v.upper);
            x_start.extend_from_slice(&v.start);
        }
        for c in &self.cons {
            g_lower.extend_from_slice(&c.lower);
            g_upper.extend_from_slice(&c.upper);
        }
        let scaled = self.vars.iter().any(|v| v.scaling.is_some())
            || self.cons.iter().any(|c| c.scaling.is_some());
        let scaling = scaled.then(|| NlpScaling {
            objective: 1.0,
            variables: self
                .vars
                .iter()
                .flat_map(|v| v.scaling.clone().unwrap_or_else(|| vec![1.0; v.len()]))
                .collect(),
            constraints: self
                .cons
                .iter()
                .flat_map(|c| c.scaling.clone().unwrap_or_else(|| vec![1.0; c.len()]))
                .collect(),
        });

        // Linear constraint terms: constant Jacobian entries and the matrix for g(x).
        let mut jac = PatternBuilder::new(SlotOrder::RowMajor);
        let linear_nnz = self.linear_constraints.iter().map(|t| t.1.len()).sum();
        jac.reserve(linear_nnz);
        for (name, entries) in &self.linear_constraints {
            for &(r, c, v) in entries {
                check_row(name, r)?;
                check_var(name, c)?;
                check_finite(name, "coefficient", &[v])?;
                jac.push(r, c, Source::Const(v));
            }
        }
        let linear_entries = self.linear_constraints.iter().flat_map(|t| t.1.iter());
        let linear_matrix = csr_summing_duplicates((m, n), linear_entries);

        check_finite("objective constant", "value", &[self.objective_constant])?;
        let mut linear_objective = vec![0.0; n];
        for (name, entries) in &self.linear_objective {
            for &(j, v) in entries {
                check_var(name, j)?;
                check_finite(name, "coefficient", &[v])?;
                linear_objective[j] += v;
            }
        }

        // Objective terms with constant Hessians.
        let hessian_order = if self
            .structured
            .iter()
            .any(|t| t.prefers_row_ordered_hessian())
        {
            SlotOrder::RowMajor
        } else {
            SlotOrder::ColumnMajor
        };
        let mut hess = PatternBuilder::new(hessian_order);
        let mut least_squares = Vec::with_capacity(self.least_squares.len());
        for ls in self.least_squares {
            ls.validate(n)?;
            let a: CsMat<f64> = ls.matrix.into_csr();
            let blocks = dense_blocks(&a);
            // 2w·AᵀA, lower triangle.
            let two_w = 2.0 * ls.weight;
            for (i, j, v) in gram_lower(&a, blocks.as_deref()) {
                hess.push(i, j, Source::Const(two_w * v));
            }
            least_squares.push(CompiledLeastSquares::new(
                a,
                ls.target,
                ls.weight,
                blocks.unwrap_or_default(),
            ));
        }
        let mut l2 = Vec::with_capacity(self.l2.len());
        for term in self.l2 {
            term.validate(n)?;
            for &i in &term.indices {
                hess.push(i, i, Source::Const(2.0 * term.weight));
            }
            l2.push(CompiledL2 {
                name: term.name,
                indices: term.indices,
                weight: term.weight,
                hess_slots: Vec::new(),
            });
        }

        // Element groups: arenas and their maps into global nonzeros.
        let mut groups = Vec::with_capacity(self.groups.len());
        let (mut val_len, mut jac_len, mut hess_len) = (0, 0, 0);
        let mut g_sources = Vec::new();
        let mut grad_sources = Vec::new();
        let mut objective_values = Vec::new();
        for kernels in self.groups {
            let (ni, no, len) = (kernels.n_inputs(), kernels.n_outputs(), kernels.len());
            let name = kernels.name().to_string();
            for &i in kernels.inputs() {
                check_var(&name, i)?;
            }
            let (mut has_objective, mut has_constraints) = (false, false);
            for t in kernels.targets() {
                match *t {
                    Target::Objective => has_objective = true,
                    Target::Constraint(r) => {
                        check_row(&name, r)?;
                        has_constraints = true;
                    }
                }
            }
            let np = packed_len(ni);
            jac.reserve(len * ni * no);
            hess.reserve(len * np);
            for e in 0..len {
                let inputs = &kernels.inputs()[e * ni..(e + 1) * ni];
                for (k, t) in kernels.targets()[e * no..(e + 1) * no].iter().enumerate() {
                    let vpos = val_len + e * no + k;
                    let jpos = jac_len + (e * no + k) * ni;
                    match *t {
                        Target::Objective => {
                            objective_values.push(vpos);
                            for (a, &ga) in inputs.iter().enumerate() {
                                grad_sources.push((ga, jpos + a));
                            }
                        }
                        Target::Constraint(r) => {
                            g_sources.push((r, vpos));
                            for (a, &ga) in inputs.iter().enumerate() {
                                if !kernels.jacobian_is_zero(e, k, a) {
                                    jac.push(r, ga, Source::Arena(jpos + a));
                                }
                            }
                        }
                    }
                }
                let hpos = hess_len + e * np;
                let mut p = 0;
                for a in 0..ni {
                    for b in 0..=a {
                        if !kernels.hessian_is_zero(e, a, b) {
                            let (ga, gb) = (inputs[a], inputs[b]);
                            hess.push(ga.max(gb), ga.min(gb), Source::Arena(hpos + p));
                        }
                        p += 1;
                    }
                }
            }
            groups.push(CompiledGroup {
                val_offset: val_len,
                jac_offset: jac_len,
                hess_offset: hess_len,
                has_objective,
                has_constraints,
                kernels,
            });
            val_len += len * no;
            jac_len += len * no * ni;
            hess_len += len * np;
        }

        // Structured terms: their outputs, Jacobian and Hessian values follow the groups'.
        let mut structured = Vec::with_capacity(self.structured.len());
        let mut structured_targets = Vec::new();
        for term in self.structured {
            let name = term.name().to_string();
            let rows = term.rows();
            for (o, &r) in rows.iter().enumerate() {
                check_row(&name, r)?;
                if rows[..o].contains(&r) {
                    return Err(ModelError::RepeatedRow { term: name, row: r });
                }
                g_sources.push((r, val_len + o));
                structured_targets.push(Target::Constraint(r));
            }
            let jac_pattern = term.jacobian_pattern();
            jac.reserve(jac_pattern.len());
            for (p, &(o, v)) in jac_pattern.iter().enumerate() {
                check_var(&name, v)?;
                let r = *rows.get(o).ok_or_else(|| ModelError::RowOutOfRange {
                    term: name.clone(),
                    row: o,
                    n_cons: rows.len(),
                })?;
                jac.push(r, v, Source::Arena(jac_len + p));
            }
            let hess_pattern = term.hessian_pattern();
            hess.reserve(hess_pattern.len());
            for (p, &(a, b)) in hess_pattern.iter().enumerate() {
                check_var(&name, a)?;
                check_var(&name, b)?;
                hess.push(a.max(b), a.min(b), Source::Arena(hess_len + p));
            }
            let (n_out, n_jac, n_hess) = (rows.len(), jac_pattern.len(), hess_pattern.len());
            structured.push(CompiledStructured {
                val_offset: val_len,
                jac_offset: jac_len,
                hess_offset: hess_len,
                n_jac,
                n_hess,
                term,
            });
            val_len += n_out;
            jac_len += n_jac;
            hess_len += n_hess;
        }

        // The gathers address the arenas with 32-bit positions.
        if [val_len, jac_len, hess_len]
            .iter()
            .any(|&len| len > u32::MAX as usize)
        {
            return Err(ModelError::TooLarge(format!(
                "element buffers of {val_len} values, {jac_len} Jacobian and {hess_len} Hessian \
                 entries exceed the 32-bit index range"
            )));
        }
        let jac = jac.finish();
        let hess = hess.finish();
        // Hessian slots of the L2 diagonals, so their weights can change without a rebuild.
        for term in &mut l2 {
            term.hess_slots = term
                .indices
                .iter()
                .map(|&i| hess.slot(i, i).expect("an L2 term pushes its diagonal"))
                .collect();
        }
        let dims = NlpDims {
            n_vars: n,
            n_cons: m,
            nnz_jac: jac.rows.len(),
            nnz_hess: hess.rows.len(),
        };
        // Variables and constraints were checked on entry.
        let limit = i32::MAX as usize;
        if dims.nnz_jac > limit || dims.nnz_hess > limit {
            return Err(ModelError::TooLarge(format!(
                "{dims:?} exceeds the 32-bit index range"
            )));
        }
        let weight_targets = groups
            .iter()
            .flat_map(|g| g.kernels.targets().iter().copied())
            .chain(structured_targets)
            .collect::<Vec<_>>();
        // Scatter assembly (see `SCATTER_MAX_ENTRIES`) for models made of closed-form
        // elements only (elements evaluated through dual numbers cost enough that their
        // parallel kernels pay off): the Hessian always, values and Jacobian while small.
        let closed_form = !groups.is_empty()
            && groups.iter().all(|g| g.kernels.has_closed_form())
            && structured.is_empty();
        let scatter = closed_form
            && [val_len, jac_len]
                .iter()
                .all(|&len| len <= SCATTER_MAX_ENTRIES);
        let mut g_gather = dense_gather(m, &g_sources);
        let (mut jac_gather, mut hess_gather) = (jac.gather, hess.gather);
        let g_scatter = scatter.then(|| g_gather.slots(val_len));
        let jac_scatter = scatter.then(|| jac_gather.slots(jac_len));
        let hess_scatter = closed_form.then(|| hess_gather.slots(hess_len));
        let hess_scatter_set = hess_scatter.is_some();
        // A scattered assembly reads the slots only.
        for (gather, scattered) in [
            (&mut g_gather, g_scatter.is_some()),
            (&mut jac_gather, jac_scatter.is_some()),
            (&mut hess_gather, hess_scatter_set),
        ] {
            if scattered {
                gather.drop_sources();
            }
        }
        Ok(Nlp {
            dims,
            x_lower,
            x_upper,
            x_start,
            g_lower,
            g_upper,
            scaling,
            var_blocks: self.var_blocks,
            con_blocks: self.con_blocks,
            linear_matrix,
            linear_objective,
            objective_constant: self.objective_constant,
            least_squares,
            l2,
            objective_values,
            g_gather,
            grad_gather: dense_gather(n, &grad_sources),
            jac_rows: jac.rows,
            jac_cols: jac.cols,
            jac_gather,
            hess_rows: hess.rows,
            hess_cols: hess.cols,
            g_scatter,
            jac_scatter,
            hess_scatter,
            hess_gather,
            weight_targets,
            val_arena: vec![0.0; val_len],
            jac_arena: vec![0.0; jac_len],
            // Never read while closed-form elements scatter.
            hess_arena: if hess_scatter_set {
                Vec::new()
            } else {
                vec![0.0; hess_len]
            },
            hess_len,
            weight_arena: vec![0.0; val_len],
            groups,
            shared_at: Vec::new(),
            structured,
            kkt_blocks: None,
        })
    }
}

/// The CSR matrix of `(row, column, value)` entries (indices already checked against `shape`),
/// duplicates summed in the order given. A counting sort by row and a stable sort of each row by
/// column: linear collocation terms arrive nearly sorted, row by row.
fn csr_summing_duplicates<'a>(
    shape: (usize, usize),
    entries: impl Iterator<Item = &'a (usize, usize, f64)> + Clone,
) -> CsMat<f64> {
    let (rows, _) = shape;
    let mut start = vec![0usize; rows + 1];
    for &(r, _, _) in entries.clone() {
        start[r + 1] += 1;
    }
    for r in 0..rows {
        start[r + 1] += start[r];
    }
    let nnz = start[rows];
    let mut next = start.clone();
    let mut placed = vec![(0usize, 0.0f64); nnz];
    for &(r, c, v) in entries {
        placed[next[r]] = (c, v);
        next[r] += 1;
    }
    let mut indptr = Vec::with_capacity(rows + 1);
    let mut indices = Vec::with_capacity(nnz);
    let mut data = Vec::with_capacity(nnz);
    indptr.push(0);
    for r in 0..rows {
        let row = &mut placed[start[r]..start[r + 1]];
        row.sort_by_key(|e| e.0);
        for &(c, v) in row.iter() {
            if indices.len() > indptr[r] && indices.last() == Some(&c) {
                if let Some(last) = data.last_mut() {
                    *last += v;
                }
            } else {
                indices.push(c);
                data.push(v);
            }
        }
        indptr.push(indices.len());
    }
    CsMat::new(shape, indptr, indices, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn csr_of_entries_matches_sprs_with_duplicates_in_any_order() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let shape = (37, 23);
        // Many duplicates (few distinct cells), rows and columns in random order, empty rows.
        let entries: Vec<(usize, usize, f64)> = (0..600)
            .map(|_| {
                let r = 2 * rng.gen_range(0..shape.0 / 2);
                (r, rng.gen_range(0..shape.1), rng.gen_range(-1.0..1.0))
            })
            .collect();
        let ours = csr_summing_duplicates(shape, entries.iter());
        let mut tri = sprs::TriMat::new(shape);
        for &(r, c, v) in &entries {
            tri.add_triplet(r, c, v);
        }
        let reference: CsMat<f64> = tri.to_csr();
        assert_eq!(
            ours.indptr().raw_storage(),
            reference.indptr().raw_storage()
        );
        assert_eq!(ours.indices(), reference.indices());
        for (a, b) in ours.data().iter().zip(reference.data()) {
            assert!((a - b).abs() <= 1e-14, "{a} vs {b}");
        }
        // Duplicates are summed in the order given: exactly the sequential sum per cell.
        for (&v, (r, c)) in ours.iter() {
            let sum = entries
                .iter()
                .filter(|e| e.0 == r && e.1 == c)
                .fold(0.0, |s, e| s + e.2);
            assert_eq!(v.to_bits(), sum.to_bits(), "({r}, {c})");
        }
        assert!(
            ours.iter().count() < entries.len(),
            "the draw has duplicates"
        );
    }
}
