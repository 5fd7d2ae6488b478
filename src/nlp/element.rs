//! Nonlinear elements: small functions written once over any num-dual scalar.

use super::ModelError;
use num_dual::DualNum;

/// The scalar types an [`Element`] is evaluated with: `f64` for values, first-order vector duals
/// for Jacobians, second-order vector duals (or hyper-duals) for Hessians.
pub trait Scalar: DualNum<Primitive = f64> + Copy + Send + Sync {}

impl<T: DualNum<Primitive = f64> + Copy + Send + Sync> Scalar for T {}

/// A nonlinear function `out = φ(x)` of a short list of inputs.
///
/// Write it once, generically over [`Scalar`]; the modeling layer derives its exact Jacobian
/// and the exact Hessian of any weighted sum of its outputs. The per-element data (a time, a
/// coefficient) lives in the implementing struct. `out` is zeroed before each call.
///
/// ```
/// use colloc::nlp::{Element, Scalar};
/// /// x0 * x1 * x2 * x3 (the product constraint of hs071)
/// struct Product;
/// impl Element for Product {
///     fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]) {
///         out[0] = x[0] * x[1] * x[2] * x[3];
///     }
/// }
/// ```
pub trait Element: Send + Sync {
    /// Evaluates the element's outputs from its inputs.
    fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]);

    /// True when the element also gives its derivatives in closed form
    /// ([`Element::jacobian`], [`Element::weighted_hessian`]); then the driver uses those
    /// instead of dual numbers (a hot element can be made several times cheaper). Default:
    /// false. Tests should check the closed forms against the dual-number derivatives.
    fn has_closed_form(&self) -> bool {
        false
    }

    /// True when `∂out_k/∂x_a` is zero at every point (an output that does not read that
    /// input): the layer leaves the entry out of the Jacobian's sparsity pattern, so neither
    /// it nor IPOPT stores or sums it, and ignores what the element computes there — which
    /// must be zero. Default: false.
    fn jacobian_is_zero(&self, output: usize, input: usize) -> bool {
        let _ = (output, input);
        false
    }

    /// True when the second derivative of every output in `(x_a, x_b)`, `b ≤ a`, is zero at
    /// every point: the layer leaves the pair out of the Hessian's sparsity pattern (as
    /// [`Element::jacobian_is_zero`]). Each left-out entry costs the scattered assembly a
    /// test, so declare pairs that take nonzeros out of IPOPT's pattern, not a few per
    /// element that other terms keep there anyway. Default: false.
    fn hessian_is_zero(&self, a: usize, b: usize) -> bool {
        let _ = (a, b);
        false
    }

    /// Numbers per element that its closed forms share at one point (see
    /// [`Element::share`]). Default: 0.
    fn shared_len(&self) -> usize {
        0
    }

    /// Writes what the closed forms ([`Element::closed_values`], [`Element::jacobian`],
    /// [`Element::weighted_hessian`]) all need at `x` — say an activation and its first two
    /// derivatives — into `shared` ([`Element::shared_len`] numbers). The layer calls it once
    /// per new point `x`, before any of them, so IPOPT's constraint, Jacobian and Hessian
    /// callbacks at one iterate compute it once. Only called when
    /// [`Element::has_closed_form`] is true.
    fn share(&self, x: &[f64], shared: &mut [f64]) {
        let _ = (x, shared);
    }

    /// Completes, in one pass, the shared quantities of a run of consecutive elements of the
    /// group that begins with this one, after [`Element::share`] wrote each one's part: for
    /// work that vectorizes across elements, such as an activation over many units. `shared`
    /// holds the run's numbers, [`Element::shared_len`] per element. The layer calls it on
    /// the first element of each run, so the elements of one group must agree on it.
    /// Default: nothing.
    fn finish_shared(&self, shared: &mut [f64]) {
        let _ = shared;
    }

    /// Closed-form outputs at `x` with the quantities [`Element::share`] wrote (`out` is
    /// zeroed). Default: [`Element::eval`].
    fn closed_values(&self, x: &[f64], shared: &[f64], out: &mut [f64]) {
        let _ = shared;
        self.eval(x, out);
    }

    /// Closed-form Jacobian at `x`, row-major `n_out × n_in` (`out` is zeroed), with the
    /// quantities [`Element::share`] wrote. Only called when [`Element::has_closed_form`] is
    /// true.
    fn jacobian(&self, x: &[f64], shared: &[f64], out: &mut [f64]) {
        let _ = (x, shared, out);
        unreachable!("jacobian is only called for elements with closed forms")
    }

    /// Closed-form packed lower triangle (`[a(a+1)/2 + b]`, `b ≤ a`) of `Σ_k w_k ∇²out_k` at
    /// `x` (`out` is zeroed), with the quantities [`Element::share`] wrote. Only called when
    /// [`Element::has_closed_form`] is true.
    fn weighted_hessian(&self, x: &[f64], shared: &[f64], weights: &[f64], out: &mut [f64]) {
        let _ = (x, shared, weights, out);
        unreachable!("weighted_hessian is only called for elements with closed forms")
    }
}

/// Where an element output goes: added to the objective, or to a constraint row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// Added to the objective.
    Objective,
    /// Added to the constraint with this global row index.
    Constraint(usize),
}

/// Many elements of one kind with the same number of inputs and outputs: the unit that is
/// evaluated in parallel and whose derivative kernels are compiled for one input size.
pub struct ElementGroup<E: Element> {
    pub(crate) name: String,
    pub(crate) n_inputs: usize,
    pub(crate) n_outputs: usize,
    pub(crate) elements: Vec<E>,
    pub(crate) inputs: Vec<usize>,
    pub(crate) targets: Vec<Target>,
    /// The elements' shared quantities at the last point [`super::derivatives::GroupKernels::share`]
    /// saw, [`Element::shared_len`] numbers per element.
    pub(crate) shared: Vec<f64>,
}

impl<E: Element> ElementGroup<E> {
    /// An empty group of elements with `n_inputs` inputs and `n_outputs` outputs each.
    pub fn new(name: impl Into<String>, n_inputs: usize, n_outputs: usize) -> Self {
        Self {
            name: name.into(),
            n_inputs,
            n_outputs,
            elements: Vec::new(),
            inputs: Vec::new(),
            targets: Vec::new(),
            shared: Vec::new(),
        }
    }

    /// Reserves room for `additional` elements.
    pub fn reserve(&mut self, additional: usize) {
        self.elements.reserve(additional);
        self.inputs.reserve(additional * self.n_inputs);
        self.targets.reserve(additional * self.n_outputs);
    }

    /// Adds an element reading the global variables `inputs` and adding its outputs to
    /// `targets` (one per output). Inputs must be distinct.
    pub fn push(
        &mut self,
        element: E,
        inputs: &[usize],
        targets: &[Target],
    ) -> Result<(), ModelError> {
        let at = self.elements.len();
        if inputs.len() != self.n_inputs {
            return Err(ModelError::LengthMismatch {
                block: format!("{}[{at}]", self.name),
                what: "inputs",
                got: inputs.len(),
                expected: self.n_inputs,
            });
        }
        if targets.len() != self.n_outputs {
            return Err(ModelError::LengthMismatch {
                block: format!("{}[{at}]", self.name),
                what: "targets",
                got: targets.len(),
                expected: self.n_outputs,
            });
        }
        for (a, &i) in inputs.iter().enumerate() {
            if inputs[..a].contains(&i) {
                return Err(ModelError::RepeatedInput {
                    group: self.name.clone(),
                    element: at,
                    index: i,
                });
            }
        }
        self.elements.push(element);
        self.inputs.extend_from_slice(inputs);
        self.targets.extend_from_slice(targets);
        Ok(())
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// True when the group has no elements.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }
}
