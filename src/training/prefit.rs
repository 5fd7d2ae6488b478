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
    /// Φ at the start and at the end.
    pub initial_objective: f64,
    /// Φ at the end.
    pub objective: f64,
    /// Levenberg–Marquardt iterations (accepted or not).
    pub iterations: usize,
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

    // Residuals r (N·d) and, when asked, their Jacobian J (column-major N·d × p). The points
    // are independent: chunks of them on rayon's threads, each with its own tape, their
    // Jacobian rows then transposed into J column by column (the same numbers on any number
    // of threads).
    let evaluate = |theta: &[f64], jac: Option<&mut Vec<f64>>| -> Vec<f64> {
        const POINTS_PER_TASK: usize = 64;
        let want_jacobian = jac.is_some();
        let parts: Vec<(Vec<f64>, Vec<f64>)> = inputs
            .par_chunks(POINTS_PER_TASK)
            .zip(targets.par_chunks(POINTS_PER_TASK))
            .map(|(xs, ys)| {
                let mut tape = MlpTape::with_exponential(Exponential::Library);
                let mut r = vec![0.0; xs.len() * d];
                let mut jacobian_rows = vec![0.0; if want_jacobian { xs.len() * d * p } else { 0 }];
                let mut cot = vec![0.0; d];
                for (k, (x, y)) in xs.iter().zip(ys).enumerate() {
                    let out = init.forward_tape(theta, x, &mut tape);
                    for o in 0..d {
                        r[k * d + o] = out[o] - y[o];
                    }
                    if want_jacobian {
                        for o in 0..d {
                            cot.fill(0.0);
                            cot[o] = 1.0;
                            let at = (k * d + o) * p;
                            init.vjp(
                                theta,
                                &mut tape,
                                &cot,
                                &mut jacobian_rows[at..at + p],
                                &mut [],
                            );
                        }
                    }
                }
                (r, jacobian_rows)
            })
            .collect();
        if let Some(j) = jac.filter(|_| rows > 0) {
            j.par_chunks_mut(rows).enumerate().for_each(|(c, column)| {
                let all_rows = parts.iter().flat_map(|(_, block)| block.chunks_exact(p));
                for (v, row) in column.iter_mut().zip(all_rows) {
                    *v = row[c];
                }
            });
        }
        parts.into_iter().flat_map(|(r, _)| r).collect()
    };
    let norm2 = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>();
    let objective = |r: &[f64], theta: &[f64]| weight * norm2(r) + lambda * norm2(theta);
    // Gauss–Newton model: A = 2w·JᵀJ + 2λI, g = 2w·Jᵀr + 2λθ.
    let gradient = |jac: &[f64], r: &[f64], theta: &[f64]| -> Vec<f64> {
        (0..p)
            .map(|c| {
                let col = &jac[c * rows..(c + 1) * rows];
                2.0 * weight * col.iter().zip(r).map(|(j, r)| j * r).sum::<f64>()
                    + 2.0 * lambda * theta[c]
            })
            .collect()
    };

    let mut theta = init.params.clone();
    let mut jac = vec![0.0; rows * p];
    let mut r = evaluate(&theta, Some(&mut jac));
    let mut phi = objective(&r, &theta);
    let initial_objective = phi;
    let mut g = gradient(&jac, &r, &theta);
    let mut system = GaussNewton::new(&jac, rows, p, weight, lambda);
    let amax = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let mut mu: f64 = 1e-3 * system.max_diagonal(&jac, rows).max(1e-12);
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
            system = GaussNewton::new(&jac, rows, p, weight, lambda);
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
    }
}

/// `J·v` for the column-major `rows × p` matrix `J`.
fn jacobian_times(jac: &[f64], rows: usize, v: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; rows];
    for (col, vc) in jac.chunks_exact(rows).zip(v) {
        for (o, j) in out.iter_mut().zip(col) {
            *o += j * vc;
        }
    }
    out
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
    fn new(jac: &[f64], rows: usize, p: usize, weight: f64, lambda: f64) -> Self {
        if p <= rows {
            let mut a = gram(jac, rows, p, 2.0 * weight);
            for i in 0..p {
                a[i + i * p] += 2.0 * lambda;
            }
            Self::Parameters(a)
        } else {
            // Jᵀ column-major (p × rows) is J row-major.
            let mut jt = vec![0.0; rows * p];
            for (c, col) in jac.chunks_exact(rows).enumerate() {
                for (r, v) in col.iter().enumerate() {
                    jt[r * p + c] = *v;
                }
            }
            Self::Residuals {
                jjt: gram(&jt, p, rows, 2.0 * weight),
                weight,
                lambda,
            }
        }
    }

    /// The largest diagonal entry of `A`.
    fn max_diagonal(&self, jac: &[f64], rows: usize) -> f64 {
        match self {
            Self::Parameters(a) => {
                let p = jac.len() / rows.max(1);
                (0..p).map(|i| a[i + i * p]).fold(0.0, f64::max)
            }
            Self::Residuals { weight, lambda, .. } => jac
                .chunks_exact(rows)
                .map(|col| 2.0 * weight * col.iter().map(|v| v * v).sum::<f64>() + 2.0 * lambda)
                .fold(0.0, f64::max),
        }
    }

    /// `−gᵀs − ½sᵀAs` (with `sᵀAs = 2w‖Js‖² + 2λ‖s‖²` in the residual form).
    fn predicted_decrease(&self, jac: &[f64], g: &[f64], s: &[f64]) -> f64 {
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
                let rows = jac.len() / p.max(1);
                let js = jacobian_times(jac, rows, s);
                let sq = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>();
                -(g.iter().zip(s).map(|(g, s)| g * s).sum::<f64>()
                    + weight * sq(&js)
                    + lambda * sq(s))
            }
        }
    }

    /// The step `−(A + μI)⁻¹g`, or `None` when the damped matrix is not positive definite.
    fn step(&self, jac: &[f64], g: &[f64], mu: f64) -> Option<Vec<f64>> {
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
                let rows = jac.len() / g.len().max(1);
                let c = 2.0 * lambda + mu;
                let mut m = jjt.clone();
                for i in 0..rows {
                    m[i + i * rows] += c;
                }
                let chol = Cholesky::new(m, rows)?;
                let mut v = jacobian_times(jac, rows, g);
                chol.solve_in_place(&mut v);
                Some(
                    jac.chunks_exact(rows)
                        .zip(g)
                        .map(|(col, gc)| {
                            let jtv: f64 = col.iter().zip(&v).map(|(j, v)| j * v).sum();
                            -(gc - 2.0 * weight * jtv) / c
                        })
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

    #[test]
    fn both_gauss_newton_forms_take_the_same_step() {
        // A wide J (rows < p) takes the push-through form; compare with the p × p form.
        let (rows, p, w, lambda, mu) = (5, 9, 0.2, 1e-3, 0.05);
        let jac: Vec<f64> = (0..rows * p)
            .map(|i| ((i * 37 % 17) as f64 - 8.0) / 7.0)
            .collect();
        let g: Vec<f64> = (0..p).map(|i| (i as f64 * 0.7).sin()).collect();
        let wide = GaussNewton::new(&jac, rows, p, w, lambda);
        assert!(matches!(wide, GaussNewton::Residuals { .. }));
        let mut a = gram(&jac, rows, p, 2.0 * w);
        for i in 0..p {
            a[i + i * p] += 2.0 * lambda;
        }
        let dense = GaussNewton::Parameters(a);
        let direct = dense.step(&jac, &g, mu).unwrap();
        let pushed = wide.step(&jac, &g, mu).unwrap();
        for (u, v) in direct.iter().zip(&pushed) {
            assert!((u - v).abs() < 1e-12 * (1.0 + u.abs()), "{u} vs {v}");
        }
        let (u, v) = (
            dense.predicted_decrease(&jac, &g, &direct),
            wide.predicted_decrease(&jac, &g, &direct),
        );
        assert!((u - v).abs() < 1e-12 * u.abs() && u > 0.0, "{u} vs {v}");
        let (u, v) = (
            dense.max_diagonal(&jac, rows),
            wide.max_diagonal(&jac, rows),
        );
        assert!((u - v).abs() < 1e-12 * u, "{u} vs {v}");
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
