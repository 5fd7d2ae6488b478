//! The only num-dual driver: values, Jacobians and Hessians of element groups, computed in
//! parallel into preallocated, element-local buffers.
//!
//! Layouts (per element, elements one after another):
//! - values: `n_out` numbers;
//! - Jacobian: `n_out × n_in`, row-major (`[k * n_in + a]` = ∂out_k/∂x_a);
//! - Hessian: the packed lower triangle of `Σ_k w_k ∇²out_k`, `[a(a+1)/2 + b]` for `b ≤ a`.
//!
//! Elements with closed-form derivatives ([`Element::has_closed_form`]) use those. Other
//! element inputs up to [`MAX_STATIC_INPUTS`] use vector duals of a compile-time size (one
//! evaluation gives the whole Jacobian, one the whole Hessian, no allocation). Larger elements
//! fall back to scalar duals: `n` evaluations for the Jacobian and `n(n+1)/2` hyper-dual
//! evaluations for the Hessian. Either way the cost depends on the element's own size only.

use super::element::{Element, ElementGroup, Target};
use super::sparsity::summable;
use num_dual::{Dual2SVec64, Dual64, DualSVec64, HyperDual64};
use rayon::prelude::*;

/// Largest input count with a compile-time-sized derivative kernel.
pub const MAX_STATIC_INPUTS: usize = 16;

/// Minimum number of elements per parallel task.
const MIN_CHUNK: usize = 128;

/// Fewest elements whose shared quantities are computed in parallel.
const SHARE_PARALLEL_MIN: usize = 16_384;

/// Elements per run of the shared pass (see [`Element::finish_shared`]): 256 units of three
/// numbers take 6 kB.
const SHARE_RUN: usize = 256;

/// Type-erased view of an [`ElementGroup`], so groups of different element kinds can sit in
/// one model.
pub(crate) trait GroupKernels: Send + Sync {
    fn name(&self) -> &str;
    fn len(&self) -> usize;
    fn n_inputs(&self) -> usize;
    fn n_outputs(&self) -> usize;
    fn inputs(&self) -> &[usize];
    fn targets(&self) -> &[Target];
    /// True when the elements give their derivatives in closed form.
    fn has_closed_form(&self) -> bool;
    /// [`Element::jacobian_is_zero`] of element `e`.
    fn jacobian_is_zero(&self, e: usize, output: usize, input: usize) -> bool;
    /// [`Element::hessian_is_zero`] of element `e`.
    fn hessian_is_zero(&self, e: usize, a: usize, b: usize) -> bool;
    /// True when the closed forms share quantities computed by [`GroupKernels::share`].
    fn shares(&self) -> bool;
    /// Computes the elements' shared quantities at `x` ([`Element::share`]); every kernel
    /// below reads those of the last call, so call it whenever `x` changes.
    fn share(&mut self, x: &[f64]);
    /// Element outputs at `x`: `len × n_out` numbers.
    fn values(&self, x: &[f64], out: &mut [f64]);
    /// Element Jacobians at `x`: `len × n_out × n_in` numbers.
    fn jacobians(&self, x: &[f64], out: &mut [f64]);
    /// Packed lower-triangular Hessians of `Σ_k w_k out_k`, `weights` holding `len × n_out`
    /// numbers: `len × n_in(n_in+1)/2` numbers.
    fn hessians(&self, x: &[f64], weights: &[f64], out: &mut [f64]);
    /// Adds each element's output `p` to `values[slots[p]]` directly, one element after
    /// another, skipping outputs whose slot is [`NO_SLOT`].
    fn scatter_values(&self, x: &[f64], slots: &[u32], values: &mut [f64]);
    /// Closed-form groups only (`None` otherwise, nothing done): adds each element's
    /// Jacobian entry `p` to `values[slots[p]]` directly, one element after another, skipping
    /// entries whose slot is [`NO_SLOT`]; `Some(all entries were summable)` (see
    /// [`super::sparsity::summable`]).
    fn scatter_jacobians(&self, x: &[f64], slots: &[u32], values: &mut [f64]) -> Option<bool>;
    /// Closed-form groups only (`None` otherwise, nothing done): adds each element's packed
    /// Hessian entry `p` to `values[slots[p]]` directly, one element after another;
    /// `Some(all entries were summable)`.
    fn scatter_hessians(
        &self,
        x: &[f64],
        weights: &[f64],
        slots: &[u32],
        values: &mut [f64],
    ) -> Option<bool>;
}

/// Slot of an element-buffer entry that feeds no global nonzero of that kind (the Jacobian
/// entries of objective outputs, which go to the gradient).
pub(crate) const NO_SLOT: u32 = u32::MAX;

/// Length of a packed lower triangle of an `n × n` matrix.
pub(crate) fn packed_len(n: usize) -> usize {
    n * (n + 1) / 2
}

macro_rules! dispatch_static {
    ($n:expr, $f:ident, $($arg:expr),*) => {
        match $n {
            1 => $f::<E, 1>($($arg),*),
            2 => $f::<E, 2>($($arg),*),
            3 => $f::<E, 3>($($arg),*),
            4 => $f::<E, 4>($($arg),*),
            5 => $f::<E, 5>($($arg),*),
            6 => $f::<E, 6>($($arg),*),
            7 => $f::<E, 7>($($arg),*),
            8 => $f::<E, 8>($($arg),*),
            9..=10 => $f::<E, 10>($($arg),*),
            11..=12 => $f::<E, 12>($($arg),*),
            13..=MAX_STATIC_INPUTS => $f::<E, MAX_STATIC_INPUTS>($($arg),*),
            _ => unreachable!("static kernels cover 1..={MAX_STATIC_INPUTS} inputs"),
        }
    };
}

impl<E: Element> GroupKernels for ElementGroup<E> {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> usize {
        self.elements.len()
    }
    fn n_inputs(&self) -> usize {
        self.n_inputs
    }
    fn n_outputs(&self) -> usize {
        self.n_outputs
    }
    fn inputs(&self) -> &[usize] {
        &self.inputs
    }
    fn targets(&self) -> &[Target] {
        &self.targets
    }

    fn has_closed_form(&self) -> bool {
        self.elements.first().is_some_and(Element::has_closed_form)
    }

    fn jacobian_is_zero(&self, e: usize, output: usize, input: usize) -> bool {
        self.elements[e].jacobian_is_zero(output, input)
    }

    fn hessian_is_zero(&self, e: usize, a: usize, b: usize) -> bool {
        self.elements[e].hessian_is_zero(a, b)
    }

    fn shares(&self) -> bool {
        self.shared_len() > 0
    }

    fn share(&mut self, x: &[f64]) {
        let sl = self.shared_len();
        if sl == 0 {
            return;
        }
        let ni = self.n_inputs;
        self.shared.resize(self.elements.len() * sl, 0.0);
        let (elements, inputs) = (&self.elements, &self.inputs);
        // One run of elements: each one's part, then the run's completion (see
        // `Element::finish_shared`) while its numbers are still in the L1 cache.
        let share_run = |xs: &mut Vec<f64>, ((s, es), idx): ((&mut [f64], &[E]), &[usize])| {
            for ((s, e), idx) in s.chunks_exact_mut(sl).zip(es).zip(idx.chunks_exact(ni)) {
                for (xa, &i) in xs.iter_mut().zip(idx) {
                    *xa = x[i];
                }
                e.share(xs, s);
            }
            es[0].finish_shared(s);
        };
        if self.elements.len() < SHARE_PARALLEL_MIN {
            let mut xs = vec![0.0; ni];
            self.shared
                .chunks_mut(sl * SHARE_RUN)
                .zip(elements.chunks(SHARE_RUN))
                .zip(inputs.chunks(ni * SHARE_RUN))
                .for_each(|item| share_run(&mut xs, item));
        } else {
            self.shared
                .par_chunks_mut(sl * SHARE_RUN)
                .zip(elements.par_chunks(SHARE_RUN))
                .zip(inputs.par_chunks(ni * SHARE_RUN))
                .for_each_init(|| vec![0.0; ni], share_run);
        }
    }

    fn values(&self, x: &[f64], out: &mut [f64]) {
        if GroupKernels::has_closed_form(self) {
            closed_form(self, x, out, self.n_outputs, |e, xs, shared, _, o| {
                e.closed_values(xs, shared, o)
            });
            return;
        }
        let (ni, no) = (self.n_inputs, self.n_outputs);
        out.par_chunks_mut(no)
            .with_min_len(MIN_CHUNK)
            .zip(self.elements.par_iter())
            .zip(self.inputs.par_chunks(ni))
            .for_each_init(
                || vec![0.0; ni],
                |xs, ((o, e), idx)| {
                    for (xa, &i) in xs.iter_mut().zip(idx) {
                        *xa = x[i];
                    }
                    o.fill(0.0);
                    e.eval(xs, o);
                },
            );
    }

    fn jacobians(&self, x: &[f64], out: &mut [f64]) {
        if GroupKernels::has_closed_form(self) {
            closed_form(
                self,
                x,
                out,
                self.n_inputs * self.n_outputs,
                |e, xs, shared, _, o| e.jacobian(xs, shared, o),
            );
        } else if self.n_inputs <= MAX_STATIC_INPUTS {
            dispatch_static!(self.n_inputs, jacobians_static, self, x, out)
        } else {
            jacobians_scalar(self, x, out)
        }
    }

    fn hessians(&self, x: &[f64], weights: &[f64], out: &mut [f64]) {
        if GroupKernels::has_closed_form(self) {
            let no = self.n_outputs;
            closed_form(
                self,
                x,
                out,
                packed_len(self.n_inputs),
                |e, xs, shared, k, o| {
                    let w = &weights[k * no..(k + 1) * no];
                    if w.iter().any(|&wk| wk != 0.0) {
                        e.weighted_hessian(xs, shared, w, o);
                    }
                },
            );
        } else if self.n_inputs <= MAX_STATIC_INPUTS {
            dispatch_static!(self.n_inputs, hessians_static, self, x, weights, out)
        } else {
            hessians_scalar(self, x, weights, out)
        }
    }

    fn scatter_values(&self, x: &[f64], slots: &[u32], values: &mut [f64]) {
        let no = self.n_outputs;
        closed_form_scatter(self, x, slots, values, no, |e, xs, shared, _, o| {
            e.closed_values(xs, shared, o);
            true
        });
    }

    fn scatter_jacobians(&self, x: &[f64], slots: &[u32], values: &mut [f64]) -> Option<bool> {
        if !GroupKernels::has_closed_form(self) {
            return None;
        }
        let block = self.n_inputs * self.n_outputs;
        Some(closed_form_scatter(
            self,
            x,
            slots,
            values,
            block,
            |e, xs, shared, _, o| {
                e.jacobian(xs, shared, o);
                true
            },
        ))
    }

    fn scatter_hessians(
        &self,
        x: &[f64],
        weights: &[f64],
        slots: &[u32],
        values: &mut [f64],
    ) -> Option<bool> {
        if !GroupKernels::has_closed_form(self) {
            return None;
        }
        let no = self.n_outputs;
        let block = packed_len(self.n_inputs);
        Some(closed_form_scatter(
            self,
            x,
            slots,
            values,
            block,
            |e, xs, shared, k, o| {
                let w = &weights[k * no..(k + 1) * no];
                let any = w.iter().any(|&wk| wk != 0.0);
                if any {
                    e.weighted_hessian(xs, shared, w, o);
                }
                any
            },
        ))
    }
}

impl<E: Element> ElementGroup<E> {
    /// Shared numbers per element: [`Element::shared_len`] of closed-form elements, else 0.
    fn shared_len(&self) -> usize {
        self.elements
            .first()
            .filter(|e| e.has_closed_form())
            .map_or(0, Element::shared_len)
    }
}

/// Runs a kernel over every element in turn, adding entry `p` of element `k`'s
/// block (of `block` numbers) to `values[slots[k·block + p]]`: the order in which
/// [`super::sparsity::Gather::assemble`] sums the same contributions (the same sums, term by
/// term), without the element buffer and the gather's scattered reads of it. Returns whether
/// every entry of the blocks it scattered was [`summable`].
fn closed_form_scatter<E: Element>(
    g: &ElementGroup<E>,
    x: &[f64],
    slots: &[u32],
    values: &mut [f64],
    block: usize,
    kernel: impl Fn(&E, &[f64], &[f64], usize, &mut [f64]) -> bool,
) -> bool {
    let (ni, sl) = (g.n_inputs, g.shared_len());
    let mut ok = true;
    debug_assert_eq!(
        g.shared.len(),
        g.elements.len() * sl,
        "share() before the kernels"
    );
    let (mut xs, mut o) = (vec![0.0; ni], vec![0.0; block]);
    for (k, ((e, idx), slots)) in g
        .elements
        .iter()
        .zip(g.inputs.chunks_exact(ni))
        .zip(slots.chunks_exact(block))
        .enumerate()
    {
        for (xa, &i) in xs.iter_mut().zip(idx) {
            *xa = x[i];
        }
        o.fill(0.0);
        if !kernel(e, &xs, &g.shared[k * sl..(k + 1) * sl], k, &mut o) {
            continue;
        }
        for (&v, &slot) in o.iter().zip(slots) {
            ok &= summable(v);
            if slot != NO_SLOT {
                values[slot as usize] += v;
            }
        }
    }
    ok
}

/// Runs a closed-form kernel over every element in parallel: `kernel(element, inputs, its
/// shared quantities, element index, its zeroed output block of `block` numbers)`.
fn closed_form<E: Element>(
    g: &ElementGroup<E>,
    x: &[f64],
    out: &mut [f64],
    block: usize,
    kernel: impl Fn(&E, &[f64], &[f64], usize, &mut [f64]) + Send + Sync,
) {
    let (ni, sl) = (g.n_inputs, g.shared_len());
    debug_assert_eq!(
        g.shared.len(),
        g.elements.len() * sl,
        "share() before the kernels"
    );
    out.par_chunks_mut(block)
        .with_min_len(MIN_CHUNK)
        .zip(g.elements.par_iter())
        .zip(g.inputs.par_chunks(ni))
        .enumerate()
        .for_each_init(
            || vec![0.0; ni],
            |xs, (k, ((o, e), idx))| {
                for (xa, &i) in xs.iter_mut().zip(idx) {
                    *xa = x[i];
                }
                o.fill(0.0);
                kernel(e, xs, &g.shared[k * sl..(k + 1) * sl], k, o);
            },
        );
}

fn jacobians_static<E: Element, const N: usize>(g: &ElementGroup<E>, x: &[f64], out: &mut [f64]) {
    let (ni, no) = (g.n_inputs, g.n_outputs);
    let zero = DualSVec64::<N>::from_re(0.0);
    out.par_chunks_mut(ni * no)
        .with_min_len(MIN_CHUNK)
        .zip(g.elements.par_iter())
        .zip(g.inputs.par_chunks(ni))
        .for_each_init(
            || (vec![zero; ni], vec![zero; no]),
            |(xs, ys), ((o, e), idx)| {
                for (a, (xa, &i)) in xs.iter_mut().zip(idx).enumerate() {
                    *xa = DualSVec64::<N>::from_re(x[i]).derivative(a);
                }
                ys.fill(zero);
                e.eval(xs, ys);
                for (row, y) in o.chunks_exact_mut(ni).zip(ys.iter()) {
                    match &y.eps.0 {
                        Some(grad) => row.copy_from_slice(&grad.as_slice()[..ni]),
                        None => row.fill(0.0),
                    }
                }
            },
        );
}

fn hessians_static<E: Element, const N: usize>(
    g: &ElementGroup<E>,
    x: &[f64],
    weights: &[f64],
    out: &mut [f64],
) {
    let (ni, no) = (g.n_inputs, g.n_outputs);
    let zero = Dual2SVec64::<N>::from_re(0.0);
    out.par_chunks_mut(packed_len(ni))
        .with_min_len(MIN_CHUNK)
        .zip(g.elements.par_iter())
        .zip(g.inputs.par_chunks(ni))
        .zip(weights.par_chunks(no))
        .for_each_init(
            || (vec![zero; ni], vec![zero; no]),
            |(xs, ys), (((o, e), idx), w)| {
                o.fill(0.0);
                if w.iter().all(|&wk| wk == 0.0) {
                    return;
                }
                for (a, (xa, &i)) in xs.iter_mut().zip(idx).enumerate() {
                    *xa = Dual2SVec64::<N>::from_re(x[i]).derivative(a);
                }
                ys.fill(zero);
                e.eval(xs, ys);
                for (y, &wk) in ys.iter().zip(w) {
                    if let (Some(h), true) = (&y.v2.0, wk != 0.0) {
                        let mut p = 0;
                        for a in 0..ni {
                            for b in 0..=a {
                                o[p] += wk * h[(a, b)];
                                p += 1;
                            }
                        }
                    }
                }
            },
        );
}

fn jacobians_scalar<E: Element>(g: &ElementGroup<E>, x: &[f64], out: &mut [f64]) {
    let (ni, no) = (g.n_inputs, g.n_outputs);
    let zero = Dual64::from_re(0.0);
    out.par_chunks_mut(ni * no)
        .with_min_len(MIN_CHUNK)
        .zip(g.elements.par_iter())
        .zip(g.inputs.par_chunks(ni))
        .for_each_init(
            || (vec![zero; ni], vec![zero; no]),
            |(xs, ys), ((o, e), idx)| {
                for (xa, &i) in xs.iter_mut().zip(idx) {
                    *xa = Dual64::from_re(x[i]);
                }
                for a in 0..ni {
                    xs[a].eps = 1.0;
                    ys.fill(zero);
                    e.eval(xs, ys);
                    for (k, y) in ys.iter().enumerate() {
                        o[k * ni + a] = y.eps;
                    }
                    xs[a].eps = 0.0;
                }
            },
        );
}

fn hessians_scalar<E: Element>(g: &ElementGroup<E>, x: &[f64], weights: &[f64], out: &mut [f64]) {
    let (ni, no) = (g.n_inputs, g.n_outputs);
    let zero = HyperDual64::from_re(0.0);
    out.par_chunks_mut(packed_len(ni))
        .with_min_len(MIN_CHUNK.div_ceil(ni))
        .zip(g.elements.par_iter())
        .zip(g.inputs.par_chunks(ni))
        .zip(weights.par_chunks(no))
        .for_each_init(
            || (vec![zero; ni], vec![zero; no]),
            |(xs, ys), (((o, e), idx), w)| {
                o.fill(0.0);
                if w.iter().all(|&wk| wk == 0.0) {
                    return;
                }
                for (xa, &i) in xs.iter_mut().zip(idx) {
                    *xa = HyperDual64::from_re(x[i]);
                }
                let mut p = 0;
                for a in 0..ni {
                    for b in 0..=a {
                        xs[a].eps1 = 1.0;
                        xs[b].eps2 = 1.0;
                        ys.fill(zero);
                        e.eval(xs, ys);
                        o[p] = ys.iter().zip(w).map(|(y, &wk)| wk * y.eps1eps2).sum();
                        xs[a].eps1 = 0.0;
                        xs[b].eps2 = 0.0;
                        p += 1;
                    }
                }
            },
        );
}
