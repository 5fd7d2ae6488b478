//! Derivative pre-fit: a cheap first guess of θ before the collocation NLP.
//!
//! With the states fixed at a smoothing `Y_s` of the data, the collocation constraints say
//! `F_θ(Y_s,k, t_k) ≈ (D·Y_s)_k`. Fitting θ to these derivative estimates,
//!
//! `min_θ Φ(θ) = (1/N) Σ_k ‖F_θ(Y_s,k, t_k) − (D·Y_s)_k‖² + λ‖θ‖²`,
//!
//! is a small dense nonlinear least-squares problem, solved here by Levenberg–Marquardt with
//! Nielsen's damping update: residual Jacobians by the MLP's reverse mode (one vector–Jacobian
//! product per output and point), the damped Gauss–Newton system by Cholesky. Any MLP depth.

use colloc_models::{Exponential, Mlp, MlpTape};
use colloc_solvers::linalg::{gram, Cholesky};
use rayon::prelude::*;

/// Settings of the Levenberg–Marquardt pre-fit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrefitSettings {
    /// Iteration limit.
    pub max_iter: usize,
    /// Stop when ‖∇Φ‖∞ is at most this.
    pub gradient_tol: f64,
    /// Stop when a step changes Φ by less than this fraction.
    pub relative_tol: f64,
    /// Parameters are kept in [−bound, bound].
    pub parameter_bound: f64,
}

impl Default for PrefitSettings {
    fn default() -> Self {
        Self {
            max_iter: 200,
            gradient_tol: 1e-7,
            relative_tol: 1e-10,
            parameter_bound: f64::INFINITY,
        }
    }
}

/// Outcome of the pre-fit.
#[derive(Clone, Debug, PartialEq)]
pub struct PrefitReport {
    /// The fitted network.
    pub model: Mlp,
    /// Φ at the start.
    pub initial_objective: f64,
    /// Φ at the end.
    pub objective: f64,
    /// Levenberg–Marquardt iterations (accepted or not).
    pub iterations: usize,
    /// The iteration limit it ran under ([`PrefitSettings::max_iter`]).
    pub max_iterations: usize,
}

impl PrefitReport {
    /// What the pre-fit did, without the network (for reports).
    pub fn outcome(&self) -> PrefitOutcome {
        PrefitOutcome {
            iterations: self.iterations,
            max_iterations: self.max_iterations,
            initial_objective: self.initial_objective,
            objective: self.objective,
        }
    }
}

/// What a pre-fit did, as `summary.json` reports it: `iterations` equal to `max_iterations`
/// means the iteration limit stopped it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct PrefitOutcome {
    /// Levenberg–Marquardt iterations (accepted or not).
    pub iterations: usize,
    /// The iteration limit.
    pub max_iterations: usize,
    /// Φ at the start (the drawn network).
    pub initial_objective: f64,
    /// Φ at the end.
    pub objective: f64,
}

/// Fits `init`'s parameters to the targets: `inputs[k]` is the network input at point k
/// (states, then time when the model takes it), `targets[k]` the derivative estimate there,
/// `lambda` the weight of ‖θ‖².
pub fn levenberg_marquardt(
    init: &Mlp,
    inputs: &[Vec<f64>],
    targets: &[Vec<f64>],
    lambda: f64,
    settings: &PrefitSettings,
) -> PrefitReport {
    let n_points = inputs.len();
    let d = init.n_outputs();
    let p = init.n_params();
    let weight = 1.0 / n_points.max(1) as f64;
    // The library's exponential, like the collocation model's derivatives: the pre-fit, and
    // with it the solve's start, do not depend on the sequential training's vectorized one.
    let rows = n_points * d;
    let row_major = GaussNewton::uses_residual_form(rows, p);

    // Residuals r (N·d) and, when asked, their Jacobian J. The points are independent:
    // chunks of them on rayon's threads, each with its own tape (the same numbers on any
    // number of threads). Row-major J is written in place, each residual's gradient as the
    // reverse mode produces it; column-major J from the chunks' rows, column by column.
    const POINTS_PER_TASK: usize = 64;
    let fill_chunk = |theta: &[f64],
                      xs: &[Vec<f64>],
                      ys: &[Vec<f64>],
                      r: &mut [f64],
                      mut gradients: Option<&mut [f64]>| {
        let mut tape = MlpTape::with_exponential(Exponential::Library);
        let mut cot = vec![0.0; d];
        if let Some(g) = gradients.as_deref_mut() {
            g.fill(0.0);
        }
        for (k, (x, y)) in xs.iter().zip(ys).enumerate() {
            let out = init.forward_tape(theta, x, &mut tape);
            for o in 0..d {
                r[k * d + o] = out[o] - y[o];
            }
            if let Some(g) = gradients.as_deref_mut() {
                for o in 0..d {
                    cot.fill(0.0);
                    cot[o] = 1.0;
                    let at = (k * d + o) * p;
                    init.vjp(theta, &mut tape, &cot, &mut g[at..at + p], &mut []);
                }
            }
        }
    };
    let evaluate = |theta: &[f64], jac: Option<&mut ResidualJacobian>| -> Vec<f64> {
        let mut r = vec![0.0; rows];
        let residual_chunks = (r.par_chunks_mut(POINTS_PER_TASK * d))
            .zip(inputs.par_chunks(POINTS_PER_TASK))
            .zip(targets.par_chunks(POINTS_PER_TASK));
        match jac {
            None => residual_chunks.for_each(|((r, xs), ys)| fill_chunk(theta, xs, ys, r, None)),
            Some(j) if j.row_major => {
                let values_per_task = (POINTS_PER_TASK * d * p).max(1);
                residual_chunks
                    .zip(j.values.par_chunks_mut(values_per_task))
                    .for_each(|(((r, xs), ys), g)| fill_chunk(theta, xs, ys, r, Some(g)));
            }
            Some(j) => {
                let parts: Vec<Vec<f64>> = residual_chunks
                    .map(|((r, xs), ys)| {
                        let mut g = vec![0.0; xs.len() * d * p];
                        fill_chunk(theta, xs, ys, r, Some(&mut g));
                        g
                    })
                    .collect();
                // Row r of J goes to entries r, r + rows, r + 2·rows, … (a plain copy).
                let all_rows = parts.iter().flat_map(|block| block.chunks_exact(p.max(1)));
                for (r, row) in all_rows.enumerate() {
                    for (c, &v) in row.iter().enumerate() {
                        j.values[c * rows + r] = v;
                    }
                }
            }
        }
        r
    };
    let norm2 = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>();
    let objective = |r: &[f64], theta: &[f64]| weight * norm2(r) + lambda * norm2(theta);
    // Gauss–Newton model: A = 2w·JᵀJ + 2λI, g = 2w·Jᵀr + 2λθ.
    let gradient = |jac: &ResidualJacobian, r: &[f64], theta: &[f64]| -> Vec<f64> {
        jac.transpose_times(r)
            .iter()
            .zip(theta)
            .map(|(jtr, t)| 2.0 * weight * jtr + 2.0 * lambda * t)
            .collect()
    };

    let mut theta = init.params.clone();
    let mut jac = ResidualJacobian {
        values: vec![0.0; rows * p],
        rows,
        params: p,
        row_major,
    };
    let mut r = evaluate(&theta, Some(&mut jac));
    let mut phi = objective(&r, &theta);
    let initial_objective = phi;
    let mut g = gradient(&jac, &r, &theta);
    let mut system = GaussNewton::new(&jac, weight, lambda);
    let amax = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let mut mu: f64 = 1e-3 * system.max_diagonal(&jac).max(1e-12);
    let mut nu = 2.0;
    let mut iterations = 0;
    while iterations < settings.max_iter && amax(&g) > settings.gradient_tol {
        iterations += 1;
        let Some(step) = system.step(&jac, &g, mu) else {
            mu *= nu;
            nu *= 2.0;
            continue;
        };
        let bound = settings.parameter_bound;
        let trial: Vec<f64> = theta
            .iter()
            .zip(&step)
            .map(|(t, s)| (t + s).clamp(-bound, bound))
            .collect();
        let r_trial = evaluate(&trial, None);
        let phi_trial = objective(&r_trial, &trial);
        // Decrease predicted by the quadratic model: −gᵀs − ½sᵀAs for the step s taken.
        let s: Vec<f64> = trial.iter().zip(&theta).map(|(a, b)| a - b).collect();
        let predicted = system.predicted_decrease(&jac, &g, &s);
        let rho = if predicted > 0.0 {
            (phi - phi_trial) / predicted
        } else {
            -1.0
        };
        if rho > 0.0 && phi_trial.is_finite() {
            let decrease = (phi - phi_trial) / phi.max(f64::MIN_POSITIVE);
            theta = trial;
            r = evaluate(&theta, Some(&mut jac));
            phi = objective(&r, &theta);
            g = gradient(&jac, &r, &theta);
            system = GaussNewton::new(&jac, weight, lambda);
            mu *= (1.0 - (2.0 * rho - 1.0).powi(3)).max(1.0 / 3.0);
            nu = 2.0;
            if decrease < settings.relative_tol {
                break;
            }
        } else {
            mu *= nu;
            nu *= 2.0;
            if !mu.is_finite() {
                break;
            }
        }
    }
    let mut model = init.clone();
    model.params = theta;
    PrefitReport {
        model,
        initial_objective,
        objective: phi,
        iterations,
        max_iterations: settings.max_iter,
    }
}

/// The residuals' Jacobian `J` (`rows × params`), stored column-major when the Gauss–Newton
/// matrix is formed in parameter space and row-major — each residual's gradient contiguous, as
/// the reverse mode produces it — in the residual form, whose `JJᵀ` is then the Gram matrix of
/// the stored columns. Both layouts add every product in the same order (`J·v` along a row,
/// `Jᵀ·v` down a column), so the numbers do not depend on the layout.
struct ResidualJacobian {
    values: Vec<f64>,
    rows: usize,
    params: usize,
    row_major: bool,
}

impl ResidualJacobian {
    /// `J·v`.
    fn times(&self, v: &[f64]) -> Vec<f64> {
        if self.row_major {
            // Eight rows at a time: eight independent sums in flight instead of one chain of
            // dependent additions, each still adding its products in column order.
            const ROWS: usize = 8;
            let p = self.params;
            let mut out = Vec::with_capacity(self.rows);
            for block in self.values[..self.rows * p].chunks(ROWS * p.max(1)) {
                let n = block.len() / p.max(1);
                let mut acc = [0.0; ROWS];
                for (c, vc) in v.iter().enumerate().take(p) {
                    for (i, a) in acc.iter_mut().enumerate().take(n) {
                        *a += block[i * p + c] * vc;
                    }
                }
                out.extend_from_slice(&acc[..n]);
            }
            out
        } else {
            let mut out = vec![0.0; self.rows];
            for (col, vc) in self.values.chunks_exact(self.rows.max(1)).zip(v) {
                for (o, j) in out.iter_mut().zip(col) {
                    *o += j * vc;
                }
            }
            out
        }
    }

    /// `Jᵀ·v`.
    fn transpose_times(&self, v: &[f64]) -> Vec<f64> {
        self.transpose_times_mapped(v, |j| j)
    }

    /// `Σ_r f(J_rc)·v_r` for every column c, summed down the column from −0 (as `Iterator::sum`).
    fn transpose_times_mapped(&self, v: &[f64], f: impl Fn(f64) -> f64) -> Vec<f64> {
        if self.row_major {
            let mut out = vec![-0.0; self.params];
            for (row, vr) in self.values.chunks_exact(self.params.max(1)).zip(v) {
                for (o, j) in out.iter_mut().zip(row) {
                    *o += f(*j) * vr;
                }
            }
            out
        } else {
            (self.values.chunks_exact(self.rows.max(1)))
                .take(self.params)
                .map(|col| col.iter().zip(v).map(|(j, v)| f(*j) * v).sum())
                .collect()
        }
    }

    /// `Σ_r J_rc²` for every column c.
    fn column_norms_squared(&self) -> Vec<f64> {
        let ones = vec![1.0; self.rows];
        self.transpose_times_mapped(&ones, |j| j * j)
    }
}

/// The Gauss–Newton matrix `A = 2w·JᵀJ + 2λI` in the cheaper of two forms: with at least as
/// many residuals as parameters its `p × p` Gram matrix; otherwise (wide networks, few points)
/// `JJᵀ` of order `rows`, the damped step `(A + μI)⁻¹g` then following from the push-through
/// identity `(cI + 2wJᵀJ)⁻¹ = (I − 2wJᵀ(cI + 2wJJᵀ)⁻¹J)/c`, `c = 2λ + μ`.
enum GaussNewton {
    /// `A`, column-major `p × p`.
    Parameters(Vec<f64>),
    /// `2w·JJᵀ`, column-major `rows × rows`, with `w` and `λ`.
    Residuals {
        jjt: Vec<f64>,
        weight: f64,
        lambda: f64,
    },
}

impl GaussNewton {
    /// Whether `rows` residuals in `params` parameters take the residual form.
    fn uses_residual_form(rows: usize, params: usize) -> bool {
        params > rows
    }

    fn new(jac: &ResidualJacobian, weight: f64, lambda: f64) -> Self {
        let (rows, p) = (jac.rows, jac.params);
        debug_assert_eq!(jac.row_major, Self::uses_residual_form(rows, p));
        if jac.row_major {
            // Row-major J is Jᵀ column-major (p × rows): JJᵀ is the Gram matrix of its columns.
            Self::Residuals {
                jjt: gram(&jac.values, p, rows, 2.0 * weight),
                weight,
                lambda,
            }
        } else {
            let mut a = gram(&jac.values, rows, p, 2.0 * weight);
            for i in 0..p {
                a[i + i * p] += 2.0 * lambda;
            }
            Self::Parameters(a)
        }
    }

    /// The largest diagonal entry of `A`.
    fn max_diagonal(&self, jac: &ResidualJacobian) -> f64 {
        match self {
            Self::Parameters(a) => {
                let p = jac.params;
                (0..p).map(|i| a[i + i * p]).fold(0.0, f64::max)
            }
            Self::Residuals { weight, lambda, .. } => (jac.column_norms_squared().iter())
                .map(|norm2| 2.0 * weight * norm2 + 2.0 * lambda)
                .fold(0.0, f64::max),
        }
    }

    /// `−gᵀs − ½sᵀAs` (with `sᵀAs = 2w‖Js‖² + 2λ‖s‖²` in the residual form).
    fn predicted_decrease(&self, jac: &ResidualJacobian, g: &[f64], s: &[f64]) -> f64 {
        let p = g.len();
        match self {
            Self::Parameters(a) => {
                let as_: Vec<f64> = (0..p)
                    .map(|i| (0..p).map(|j| a[i + j * p] * s[j]).sum())
                    .collect();
                -(0..p)
                    .map(|i| g[i] * s[i] + 0.5 * s[i] * as_[i])
                    .sum::<f64>()
            }
            Self::Residuals { weight, lambda, .. } => {
                let js = jac.times(s);
                let sq = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>();
                -(g.iter().zip(s).map(|(g, s)| g * s).sum::<f64>()
                    + weight * sq(&js)
                    + lambda * sq(s))
            }
        }
    }

    /// The step `−(A + μI)⁻¹g`, or `None` when the damped matrix is not positive definite.
    fn step(&self, jac: &ResidualJacobian, g: &[f64], mu: f64) -> Option<Vec<f64>> {
        match self {
            Self::Parameters(a) => {
                let p = g.len();
                let mut damped = a.clone();
                for i in 0..p {
                    damped[i + i * p] += mu;
                }
                let chol = Cholesky::new(damped, p)?;
                let mut step: Vec<f64> = g.iter().map(|v| -v).collect();
                chol.solve_in_place(&mut step);
                Some(step)
            }
            Self::Residuals {
                jjt,
                weight,
                lambda,
            } => {
                let rows = jac.rows;
                let c = 2.0 * lambda + mu;
                let mut m = jjt.clone();
                for i in 0..rows {
                    m[i + i * rows] += c;
                }
                let chol = Cholesky::new(m, rows)?;
                let mut v = jac.times(g);
                chol.solve_in_place(&mut v);
                Some(
                    (jac.transpose_times(&v).iter())
                        .zip(g)
                        .map(|(jtv, gc)| -(gc - 2.0 * weight * jtv) / c)
                        .collect(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use colloc_models::Activation;

    /// A `rows × p` test matrix in both layouts.
    fn both_layouts(rows: usize, p: usize) -> (ResidualJacobian, ResidualJacobian) {
        let entry = |r: usize, c: usize| (((r * p + c) * 37 % 17) as f64 - 8.0) / 7.0;
        let layout = |row_major: bool| ResidualJacobian {
            values: if row_major {
                (0..rows * p).map(|i| entry(i / p, i % p)).collect()
            } else {
                (0..rows * p).map(|i| entry(i % rows, i / rows)).collect()
            },
            rows,
            params: p,
            row_major,
        };
        (layout(false), layout(true))
    }

    #[test]
    fn both_layouts_give_the_same_bits() {
        let (rows, p) = (7, 5);
        let (columns, rows_first) = both_layouts(rows, p);
        let v: Vec<f64> = (0..p).map(|i| (i as f64 * 0.3).cos()).collect();
        let w: Vec<f64> = (0..rows).map(|i| (i as f64 * 0.9).sin()).collect();
        assert_eq!(columns.times(&v), rows_first.times(&v));
        assert_eq!(columns.transpose_times(&w), rows_first.transpose_times(&w));
        assert_eq!(
            columns.column_norms_squared(),
            rows_first.column_norms_squared()
        );
        // Against a plain evaluation of the entries.
        let e = |r: usize, c: usize| columns.values[r + c * rows];
        for r in 0..rows {
            let jv: f64 = (0..p).map(|c| e(r, c) * v[c]).sum();
            assert!((jv - columns.times(&v)[r]).abs() < 1e-14);
        }
        for c in 0..p {
            let jtw: f64 = (0..rows).map(|r| e(r, c) * w[r]).sum();
            assert!((jtw - rows_first.transpose_times(&w)[c]).abs() < 1e-14);
            let n2: f64 = (0..rows).map(|r| e(r, c) * e(r, c)).sum();
            assert!((n2 - rows_first.column_norms_squared()[c]).abs() < 1e-14);
        }
    }

    #[test]
    fn both_gauss_newton_forms_take_the_same_step() {
        // A wide J (rows < p) takes the push-through form; compare with the p × p form.
        let (rows, p, w, lambda, mu) = (5, 9, 0.2, 1e-3, 0.05);
        assert!(GaussNewton::uses_residual_form(rows, p));
        let (columns, rows_first) = both_layouts(rows, p);
        let g: Vec<f64> = (0..p).map(|i| (i as f64 * 0.7).sin()).collect();
        let wide = GaussNewton::new(&rows_first, w, lambda);
        assert!(matches!(wide, GaussNewton::Residuals { .. }));
        let mut a = gram(&columns.values, rows, p, 2.0 * w);
        for i in 0..p {
            a[i + i * p] += 2.0 * lambda;
        }
        let dense = GaussNewton::Parameters(a);
        let direct = dense.step(&columns, &g, mu).unwrap();
        let pushed = wide.step(&rows_first, &g, mu).unwrap();
        for (u, v) in direct.iter().zip(&pushed) {
            assert!((u - v).abs() < 1e-12 * (1.0 + u.abs()), "{u} vs {v}");
        }
        let (u, v) = (
            dense.predicted_decrease(&columns, &g, &direct),
            wide.predicted_decrease(&rows_first, &g, &direct),
        );
        assert!((u - v).abs() < 1e-12 * u.abs() && u > 0.0, "{u} vs {v}");
        let (u, v) = (dense.max_diagonal(&columns), wide.max_diagonal(&rows_first));
        assert!((u - v).abs() < 1e-12 * u, "{u} vs {v}");
    }

    #[test]
    fn a_wide_network_fits_its_few_points() {
        // More parameters than residuals: the residual form with row-major J. With λ = 0 the
        // network can interpolate the targets.
        let m = Mlp::xavier(&[2, 12, 2], Activation::Tanh, false, 4).unwrap();
        let inputs: Vec<Vec<f64>> = (0..9).map(|k| vec![k as f64 * 0.3, 1.0]).collect();
        let targets: Vec<Vec<f64>> = inputs.iter().map(|x| vec![x[0].sin(), 0.5]).collect();
        assert!(GaussNewton::uses_residual_form(18, m.n_params()));
        let report = levenberg_marquardt(&m, &inputs, &targets, 0.0, &PrefitSettings::default());
        assert!(report.initial_objective > 1e-2, "{report:?}");
        assert!(report.objective < 1e-12, "{}", report.objective);
    }

    #[test]
    fn recovers_a_network_that_fits_exactly() {
        // Targets produced by a "teacher" network; starting from a perturbed copy, LM must
        // drive the objective to ~0 (λ = 0).
        let teacher = Mlp::xavier(&[2, 6, 2], Activation::Tanh, false, 3).unwrap();
        let inputs: Vec<Vec<f64>> = (0..40)
            .map(|k| {
                let s = k as f64 * 0.15;
                vec![s.sin() * 1.5, (1.3 * s).cos()]
            })
            .collect();
        let targets: Vec<Vec<f64>> = inputs.iter().map(|x| teacher.forward(x)).collect();
        let mut start = teacher.clone();
        for (i, v) in start.params.iter_mut().enumerate() {
            *v += 0.05 * ((i * 7 % 5) as f64 - 2.0);
        }
        let report =
            levenberg_marquardt(&start, &inputs, &targets, 0.0, &PrefitSettings::default());
        assert!(report.initial_objective > 1e-4, "{report:?}");
        assert!(report.objective < 1e-10, "{}", report.objective);
    }

    #[test]
    fn stationary_point_of_the_regularized_objective() {
        // With λ > 0 the result must satisfy ∇Φ = 0; checked by central finite differences.
        let m = Mlp::xavier(&[2, 4, 2], Activation::Gelu, true, 5).unwrap();
        let inputs: Vec<Vec<f64>> = (0..25)
            .map(|k| {
                let t = k as f64 * 0.2;
                vec![t.cos(), -t.sin(), t]
            })
            .collect();
        let targets: Vec<Vec<f64>> = inputs.iter().map(|x| vec![x[1], -x[0]]).collect();
        let lambda = 1e-3;
        let report = levenberg_marquardt(&m, &inputs, &targets, lambda, &PrefitSettings::default());
        let phi = |params: &[f64]| {
            let mut mm = m.clone();
            mm.params = params.to_vec();
            let fit: f64 = inputs
                .iter()
                .zip(&targets)
                .map(|(x, y)| {
                    let f = mm.forward(x);
                    (f[0] - y[0]).powi(2) + (f[1] - y[1]).powi(2)
                })
                .sum::<f64>()
                / inputs.len() as f64;
            fit + lambda * params.iter().map(|v| v * v).sum::<f64>()
        };
        let best = report.model.params.clone();
        assert!((phi(&best) - report.objective).abs() < 1e-14);
        let h = 1e-6;
        for i in 0..best.len() {
            let (mut up, mut down) = (best.clone(), best.clone());
            up[i] += h;
            down[i] -= h;
            let grad = (phi(&up) - phi(&down)) / (2.0 * h);
            // The start's gradient is O(0.1–1); LM stops at ‖∇Φ‖∞ ≤ 1e-7 or when a step
            // gains less than 1e-10 of Φ.
            assert!(grad.abs() < 1e-5, "∂Φ/∂θ_{i} = {grad}");
        }
        assert!(report.objective < report.initial_objective);
    }
}
