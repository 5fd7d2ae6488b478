//! Structured terms: nonlinear constraint terms that state their own sparsity and compute
//! their own exact derivatives.
//!
//! An [`Element`](super::Element) is a small function whose Hessian the layer stores densely
//! per element. Some functions are large but structured — a deep network evaluated at one
//! collocation point reads the point's states and every parameter, and its Hessian over a few
//! thousand inputs is best accumulated over all points into one block. A [`StructuredTerm`]
//! gives the layer its outputs' constraint rows, the Jacobian pattern and the (lower or upper,
//! each unordered pair once) Hessian pattern, and fills value arrays aligned with those
//! patterns; the layer merges them with every other term's nonzeros. Derivatives are the term's
//! responsibility: test them against finite differences.

/// A nonlinear term added to constraint rows that states its Jacobian and Hessian patterns and
/// fills value arrays aligned with them; the [layer](crate::nlp) merges them with every other
/// term's nonzeros. For large structured functions (a deep network at every collocation
/// point) whose dense per-element Hessians would not fit. Test the derivatives against finite
/// differences.
pub trait StructuredTerm: Send + Sync {
    /// Name (for errors and debugging).
    fn name(&self) -> &str;

    /// The constraint rows the term's outputs are added to, one per output (distinct).
    fn rows(&self) -> &[usize];

    /// The Jacobian pattern: `(output, variable)` pairs, each at most once.
    fn jacobian_pattern(&self) -> Vec<(usize, usize)>;

    /// The Hessian pattern of `Σ_o w_o out_o`: unordered variable pairs `(a, b)`, each once.
    fn hessian_pattern(&self) -> Vec<(usize, usize)>;

    /// Whether the model should order the Hessian's slots by row rather than by column (see
    /// `SlotOrder`): for a term whose Hessian is mostly one dense block listed row by row,
    /// which the gather then reads in order (default: no).
    fn prefers_row_ordered_hessian(&self) -> bool {
        false
    }

    /// The outputs at `x` (`out` has one entry per row; it is zeroed before the call).
    fn values(&self, x: &[f64], out: &mut [f64]);

    /// Jacobian values at `x`, aligned with [`StructuredTerm::jacobian_pattern`] (zeroed).
    fn jacobian(&self, x: &[f64], out: &mut [f64]);

    /// Values of `Σ_o weights[o] ∇²out_o` at `x`, aligned with
    /// [`StructuredTerm::hessian_pattern`] (zeroed).
    fn hessian(&self, x: &[f64], weights: &[f64], out: &mut [f64]);
}

/// A structured term with its places in the layer's buffers.
pub(crate) struct CompiledStructured {
    pub val_offset: usize,
    pub jac_offset: usize,
    pub hess_offset: usize,
    pub n_jac: usize,
    pub n_hess: usize,
    pub term: Box<dyn StructuredTerm>,
}

impl CompiledStructured {
    pub fn val_range(&self) -> std::ops::Range<usize> {
        self.val_offset..self.val_offset + self.term.rows().len()
    }
    pub fn jac_range(&self) -> std::ops::Range<usize> {
        self.jac_offset..self.jac_offset + self.n_jac
    }
    pub fn hess_range(&self) -> std::ops::Range<usize> {
        self.hess_offset..self.hess_offset + self.n_hess
    }
}
