//! Exact derivatives of every term kind against central finite differences at seeded random
//! points, and completeness of the sparsity patterns.

mod common;

use colloc::nlp::{
    ConSpec, Element, ElementGroup, L2Regularization, LeastSquares, Model, Nlp, Scalar, Target,
    VarSpec,
};
use colloc::solvers::NlpEvaluator;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Four inputs, two outputs, transcendental and product terms (static kernel, exact size).
struct Mixed {
    c: f64,
}
impl Element for Mixed {
    fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]) {
        out[0] = x[0].sin() * x[1] * x[1] + (x[2] * x[3]).exp() * self.c;
        out[1] = (x[0] - x[3]).tanh() * x[2] + x[1].powi(3) / (x[2] * x[2] + 1.0);
    }
}

/// Nine inputs (padded static kernel of size 10), one output.
struct Chain;
impl Element for Chain {
    fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]) {
        let mut s = S::from(0.0);
        for i in 0..x.len() - 1 {
            s += (x[i] * x[i + 1]).tanh();
        }
        out[0] = s + x[0] * x[4] * x[8];
    }
}

/// Twenty inputs (scalar fallback kernels), two outputs.
struct Wide;
impl Element for Wide {
    fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]) {
        let mut s = S::from(0.0);
        let mut p = S::from(1.0);
        for (i, xi) in x.iter().enumerate() {
            s += (*xi * (i as f64 + 1.0) * 0.1).sin() * x[(i + 7) % x.len()];
            p *= (*xi * 0.05).exp();
        }
        out[0] = s;
        out[1] = p + x[3] * x[11];
    }
}

/// Two outputs that read different inputs, with the entries that are zero at every point
/// declared (left out of the patterns; the finite differences check that they are zero).
struct Split;
impl Element for Split {
    fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]) {
        out[0] = x[0] * x[1].sin();
        out[1] = x[2].exp() * x[1];
    }
    fn jacobian_is_zero(&self, output: usize, input: usize) -> bool {
        (output, input) == (0, 2) || (output, input) == (1, 0)
    }
    fn hessian_is_zero(&self, a: usize, b: usize) -> bool {
        matches!((a, b), (0, 0) | (2, 0))
    }
}

fn random_vec(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

/// A model that uses every term kind, with overlapping variables so that duplicates must merge.
fn build(rng: &mut ChaCha8Rng) -> Nlp {
    build_with_l2(rng, 0.05)
}

/// [`build`] with the weight of its L2 term.
fn build_with_l2(rng: &mut ChaCha8Rng, l2_weight: f64) -> Nlp {
    let mut m = Model::new();
    let n = 30;
    let x = m.add_variables(VarSpec::new("x", &[n])).unwrap();
    let c = m.add_constraints(ConSpec::equal_zero("c", 12)).unwrap();
    let d = m.add_constraints(ConSpec::new("d", 3, -1.0, 1.0)).unwrap();

    let mut mixed = ElementGroup::new("mixed", 4, 2);
    for e in 0..6 {
        let i = [e, (e + 5) % n, (e + 11) % n, (e + 2) % n];
        // first output into a constraint, second into the objective or another row
        let t2 = if e % 2 == 0 {
            Target::Objective
        } else {
            Target::Constraint(c.row(e + 1))
        };
        mixed
            .push(
                Mixed { c: 0.3 + e as f64 },
                &i.map(|k| x.index(k)),
                &[Target::Constraint(c.row(e)), t2],
            )
            .unwrap();
    }
    m.add_elements(mixed).unwrap();

    let mut chain = ElementGroup::new("chain", 9, 1);
    for e in 0..3 {
        let i: Vec<usize> = (0..9).map(|k| x.index((3 * e + 2 * k) % n)).collect();
        let t = if e == 2 {
            Target::Objective
        } else {
            Target::Constraint(c.row(6 + e))
        };
        chain.push(Chain, &i, &[t]).unwrap();
    }
    m.add_elements(chain).unwrap();

    let mut split = ElementGroup::new("split", 3, 2);
    for e in 0..4 {
        let i = [x.index(2 * e), x.index(2 * e + 9), x.index(e + 20)];
        let t = [
            Target::Constraint(c.row(8 + e)),
            Target::Constraint(c.row(11 - e)),
        ];
        split.push(Split, &i, &t).unwrap();
    }
    m.add_elements(split).unwrap();

    let mut wide = ElementGroup::new("wide", 20, 2);
    let i: Vec<usize> = (0..20).map(|k| x.index(29 - k)).collect();
    wide.push(Wide, &i, &[Target::Constraint(d.row(0)), Target::Objective])
        .unwrap();
    m.add_elements(wide).unwrap();

    // Linear terms on constraint rows (a sprs matrix and triplets) and in the objective.
    let mut tri = sprs::TriMat::new((3, n));
    for r in 0..3 {
        for _ in 0..4 {
            tri.add_triplet(r, rng.gen_range(0..n), rng.gen_range(-2.0..2.0));
        }
    }
    m.add_linear("lin", &d, &tri.to_csr()).unwrap();
    m.add_linear_triplets("lin2", (0..12).map(|r| (c.row(r), x.index(r + 3), 1.5)));
    m.add_linear_objective("lin_obj", (0..n).map(|j| (j, 0.1 * j as f64)));

    // Least squares with a dense-ish random matrix, and L2.
    let mut a = sprs::TriMat::new((5, n));
    for r in 0..5 {
        for _ in 0..6 {
            a.add_triplet(r, rng.gen_range(0..n), rng.gen_range(-1.0..1.0));
        }
    }
    m.add_least_squares(LeastSquares {
        name: "ls".into(),
        matrix: a.to_csr(),
        target: random_vec(rng, 5),
        weight: 0.7,
    });
    m.add_l2(L2Regularization::new(
        "l2",
        (10..25).map(|k| x.index(k)),
        l2_weight,
    ));
    m.build().unwrap()
}

fn rel_err(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1.0)
}

fn lagrangian_gradient(nlp: &mut Nlp, x: &[f64], sigma: f64, lambda: &[f64]) -> Vec<f64> {
    let d = nlp.dims();
    let mut grad = vec![0.0; d.n_vars];
    nlp.gradient(x, &mut grad).unwrap();
    grad.iter_mut().for_each(|g| *g *= sigma);
    let (mut rows, mut cols, mut vals) =
        (vec![0; d.nnz_jac], vec![0; d.nnz_jac], vec![0.0; d.nnz_jac]);
    nlp.jacobian_structure(&mut rows, &mut cols);
    nlp.jacobian_values(x, &mut vals).unwrap();
    for k in 0..d.nnz_jac {
        grad[cols[k]] += lambda[rows[k]] * vals[k];
    }
    grad
}

#[test]
fn gradient_jacobian_hessian_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut nlp = build(&mut rng);
    check_against_finite_differences(&mut nlp, &mut rng, 5);
}

/// The reduced collocation NLP of deeper networks (one structured term over all points): two
/// and three hidden layers, with and without time input, smooth activations.
#[test]
fn deep_reduced_network_matches_finite_differences() {
    for (layers, activation, time_input) in [
        ("[2, 4, 3, 2]", "tanh", false),
        ("[3, 3, 4, 2]", "gelu", true),
        ("[2, 3, 2, 3, 2]", "softplus", false),
    ] {
        let text = format!(
            r#"
seed = 3
[data]
system = "vanderpol"
initial_state = [0.0, 1.0]
noise = 0.05
[train]
t1 = 2.0
points = 6
[collocation]
points = 5
[model]
layers = {layers}
activation = "{activation}"
time_input = {time_input}
"#
        );
        let problem = common::load_problem_text("deep-derivatives", &text);
        let built = colloc::training::collocation::build(
            &problem,
            colloc::problem::Formulation::Reduced,
            None,
        )
        .unwrap();
        let mut nlp = built.nlp;
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        check_against_finite_differences(&mut nlp, &mut rng, 2);
    }
}

/// Structured models in the collocation NLP (second order: `q' = v`, `v' = N`; gray box:
/// `y' = A·y + N`), one and two hidden layers, both formulations: exact derivatives.
#[test]
fn structured_models_match_finite_differences() {
    let lotka = r#"
seed = 3
[data]
system = "lotka-volterra"
initial_state = [0.44249296, 4.6280594]
noise = 0.05
[train]
t1 = 1.0
points = 6
[collocation]
points = 5
"#;
    let lorenz = r#"
seed = 3
[data]
system = "lorenz"
initial_state = [1.2, 2.1, 1.7]
noise = 0.05
[train]
t1 = 0.3
points = 6
[collocation]
points = 4
"#;
    let pendulum_like = r#"
seed = 3
[data]
csv = "four.csv"
[train]
t1 = 1.0
[collocation]
points = 4
"#;
    let dir = common::TempDir::new("structured-derivatives");
    let mut csv = String::from("t,q1,q2,v1,v2\n");
    for k in 0..8 {
        let t = k as f64 / 7.0;
        csv += &format!(
            "{t},{},{},{},{}\n",
            t.sin(),
            (2.0 * t).cos(),
            t.cos(),
            -2.0 * (2.0 * t).sin()
        );
    }
    dir.write("four.csv", &csv);
    let cases = [
        (lotka, "[2, 3, 2]", "structure = \"gray-box\"\nknown_linear = [[1.3, 0.0], [0.0, -1.8]]", false),
        (lotka, "[3, 3, 2, 2]", "structure = \"gray-box\"\nknown_linear = [[1.3, 0.2], [0.0, -1.8]]\ntime_input = true", false),
        (pendulum_like, "[4, 3, 2]", "structure = \"second-order\"", true),
        (pendulum_like, "[5, 3, 3, 2]", "structure = \"second-order\"\ntime_input = true", false),
        (lorenz, "[3, 3, 3]", "structure = \"gray-box\"\nknown_linear = [[-10.0, 10.0, 0.0], [28.0, -1.0, 0.0], [0.0, 0.0, -2.6666666666666665]]", true),
    ];
    for (base, layers, extra, with_full) in cases {
        let text = format!("{base}[model]\nlayers = {layers}\nactivation = \"gelu\"\n{extra}\n");
        let problem = dir.load_problem("structured", &text).1;
        let formulations: &[colloc::problem::Formulation] = if with_full {
            &[
                colloc::problem::Formulation::Reduced,
                colloc::problem::Formulation::Full,
            ]
        } else {
            &[colloc::problem::Formulation::Reduced]
        };
        for &f in formulations {
            let built = colloc::training::collocation::build(&problem, f, None).unwrap();
            assert_eq!(
                built.init.structure, problem.model.structure,
                "{layers} {extra}"
            );
            let mut nlp = built.nlp;
            let mut rng = ChaCha8Rng::seed_from_u64(13);
            check_against_finite_differences(&mut nlp, &mut rng, 2);
        }
    }
}

/// Constraints, Jacobian and Hessian values assembled by scattering and by the parallel
/// kernels with gathers: the same sums in the same order, so equal.
fn assert_assemblies_agree(nlp: &mut Nlp, x: &[f64], sigma: f64, lambda: &[f64]) {
    let (d, before) = (nlp.dims(), nlp.scatter_assembly());
    let mut results = Vec::new();
    for scatter in [true, false] {
        nlp.set_scatter_assembly(scatter);
        let mut g = vec![f64::NAN; d.n_cons];
        let mut jac = vec![f64::NAN; d.nnz_jac];
        let mut hess = vec![f64::NAN; d.nnz_hess];
        nlp.constraints(x, &mut g).unwrap();
        nlp.jacobian_values(x, &mut jac).unwrap();
        nlp.hessian_values(x, sigma, lambda, &mut hess).unwrap();
        results.push((g, jac, hess));
    }
    nlp.set_scatter_assembly(before);
    assert_eq!(results[0].0, results[1].0, "constraints");
    assert_eq!(results[0].1, results[1].1, "jacobian");
    assert_eq!(results[0].2, results[1].2, "hessian");
}

/// `vanderpol.toml`'s model on a short window.
fn short_vanderpol() -> colloc::problem::Problem {
    let text = r#"
seed = 5
[data]
system = "vanderpol"
initial_state = [0.0, 1.0]
noise = 0.1
[train]
t1 = 3.0
points = 20
[collocation]
points = 12
[model]
layers = [2, 32, 2]
activation = "tanh"
"#;
    common::load_problem_text("assemblies", text)
}

/// The one-hidden-layer reduced network (closed-form unit elements) and the full formulation
/// of `vanderpol.toml`'s model on a short window: both assemblies agree. The builder
/// scatters the reduced NLP (closed-form elements only), not the full one.
#[test]
fn scatter_and_gather_assemblies_agree_on_collocation_nlps() {
    let problem = short_vanderpol();
    for f in [
        colloc::problem::Formulation::Reduced,
        colloc::problem::Formulation::Full,
    ] {
        let mut nlp = colloc::training::collocation::build(&problem, f, None)
            .unwrap()
            .nlp;
        assert_eq!(
            nlp.scatter_assembly(),
            f == colloc::problem::Formulation::Reduced
        );
        let d = nlp.dims();
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let (x, lambda) = (
            random_vec(&mut rng, d.n_vars),
            random_vec(&mut rng, d.n_cons),
        );
        assert_assemblies_agree(&mut nlp, &x, 0.8, &lambda);
    }
}

/// The reduced network's units compute their activation once per point for values,
/// Jacobian and Hessian (`Element::share`): callbacks at changing points, in any order, give
/// exactly what a fresh NLP gives at each point.
#[test]
fn shared_activations_follow_the_point() {
    let problem = short_vanderpol();
    let reduced = colloc::problem::Formulation::Reduced;
    let build = || {
        colloc::training::collocation::build(&problem, reduced, None)
            .unwrap()
            .nlp
    };
    let mut nlp = build();
    let d = nlp.dims();
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let points: Vec<Vec<f64>> = (0..3).map(|_| random_vec(&mut rng, d.n_vars)).collect();
    let lambda = random_vec(&mut rng, d.n_cons);
    let eval = |nlp: &mut Nlp, what: usize, x: &[f64]| -> Vec<f64> {
        match what {
            0 => {
                let mut g = vec![f64::NAN; d.n_cons];
                nlp.constraints(x, &mut g).unwrap();
                g
            }
            1 => {
                let mut jac = vec![f64::NAN; d.nnz_jac];
                nlp.jacobian_values(x, &mut jac).unwrap();
                jac
            }
            _ => {
                let mut hess = vec![f64::NAN; d.nnz_hess];
                nlp.hessian_values(x, 0.7, &lambda, &mut hess).unwrap();
                hess
            }
        }
    };
    for (what, point) in [
        (1, 0),
        (0, 0),
        (2, 1),
        (1, 1),
        (0, 2),
        (2, 0),
        (1, 2),
        (2, 2),
    ] {
        let x = &points[point];
        let fresh = eval(&mut build(), what, x);
        assert_eq!(
            eval(&mut nlp, what, x),
            fresh,
            "callback {what} at point {point}"
        );
    }
}

/// Checks the gradient, the Jacobian and the Hessian of the Lagrangian at random points
/// against central finite differences, and the patterns for completeness and duplicates;
/// and that both assemblies agree there.
fn check_against_finite_differences(nlp: &mut Nlp, rng: &mut ChaCha8Rng, trials: usize) {
    let d = nlp.dims();
    let h = 1e-6;
    for _trial in 0..trials {
        let x = random_vec(rng, d.n_vars);
        let sigma = rng.gen_range(0.5..2.0);
        let lambda = random_vec(rng, d.n_cons);
        assert_assemblies_agree(nlp, &x, sigma, &lambda);

        // Gradient.
        let mut grad = vec![0.0; d.n_vars];
        nlp.gradient(&x, &mut grad).unwrap();
        for j in 0..d.n_vars {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[j] += h;
            xm[j] -= h;
            let fd = (nlp.objective(&xp).unwrap() - nlp.objective(&xm).unwrap()) / (2.0 * h);
            assert!(
                rel_err(grad[j], fd) < 1e-6,
                "gradient[{j}]: {} vs FD {fd}",
                grad[j]
            );
        }

        // Jacobian: dense reconstruction vs FD of the constraints, zero outside the pattern.
        let (mut rows, mut cols, mut vals) =
            (vec![0; d.nnz_jac], vec![0; d.nnz_jac], vec![0.0; d.nnz_jac]);
        nlp.jacobian_structure(&mut rows, &mut cols);
        nlp.jacobian_values(&x, &mut vals).unwrap();
        let mut dense = vec![vec![0.0; d.n_vars]; d.n_cons];
        for k in 0..d.nnz_jac {
            assert_eq!(
                dense[rows[k]][cols[k]], 0.0,
                "duplicate Jacobian entry ({}, {})",
                rows[k], cols[k]
            );
            dense[rows[k]][cols[k]] = vals[k];
        }
        let (mut gp, mut gm) = (vec![0.0; d.n_cons], vec![0.0; d.n_cons]);
        for j in 0..d.n_vars {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[j] += h;
            xm[j] -= h;
            nlp.constraints(&xp, &mut gp).unwrap();
            nlp.constraints(&xm, &mut gm).unwrap();
            for i in 0..d.n_cons {
                let fd = (gp[i] - gm[i]) / (2.0 * h);
                assert!(
                    rel_err(dense[i][j], fd) < 1e-6,
                    "jacobian[{i},{j}]: {} vs FD {fd}",
                    dense[i][j]
                );
            }
        }

        // Hessian of the Lagrangian vs FD of its exact gradient; pattern is lower triangular,
        // without duplicates, and covers every nonzero.
        let (mut hr, mut hc, mut hv) = (
            vec![0; d.nnz_hess],
            vec![0; d.nnz_hess],
            vec![0.0; d.nnz_hess],
        );
        nlp.hessian_structure(&mut hr, &mut hc);
        nlp.hessian_values(&x, sigma, &lambda, &mut hv).unwrap();
        let mut dense = vec![vec![f64::NAN; d.n_vars]; d.n_vars];
        for k in 0..d.nnz_hess {
            assert!(
                hr[k] >= hc[k],
                "Hessian entry ({}, {}) above the diagonal",
                hr[k],
                hc[k]
            );
            assert!(
                dense[hr[k]][hc[k]].is_nan(),
                "duplicate Hessian entry ({}, {})",
                hr[k],
                hc[k]
            );
            dense[hr[k]][hc[k]] = hv[k];
        }
        for j in 0..d.n_vars {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[j] += h;
            xm[j] -= h;
            let gp = lagrangian_gradient(nlp, &xp, sigma, &lambda);
            let gm = lagrangian_gradient(nlp, &xm, sigma, &lambda);
            for i in j..d.n_vars {
                let fd = (gp[i] - gm[i]) / (2.0 * h);
                let exact = dense[i][j];
                if exact.is_nan() {
                    assert!(
                        fd.abs() < 1e-7,
                        "Hessian ({i}, {j}) = {fd} by FD but not in the pattern"
                    );
                } else {
                    assert!(
                        rel_err(exact, fd) < 1e-6,
                        "hessian[{i},{j}]: {exact} vs FD {fd}"
                    );
                }
            }
        }
    }
}

#[test]
fn evaluation_is_deterministic_and_reentrant() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut a = build(&mut rng);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut b = build(&mut rng);
    let d = a.dims();
    let x = random_vec(&mut rng, d.n_vars);
    let lambda = random_vec(&mut rng, d.n_cons);
    let (mut ha, mut hb) = (vec![0.0; d.nnz_hess], vec![0.0; d.nnz_hess]);
    a.hessian_values(&x, 1.3, &lambda, &mut ha).unwrap();
    b.hessian_values(&x, 0.0, &lambda, &mut hb).unwrap(); // a different call in between
    b.hessian_values(&x, 1.3, &lambda, &mut hb).unwrap();
    assert_eq!(ha, hb);
}

#[test]
fn bad_models_are_rejected_with_names() {
    let mut m = Model::new();
    let x = m.add_variables(VarSpec::new("x", &[2])).unwrap();
    assert_eq!(
        m.add_variables(VarSpec::new("x", &[1]))
            .unwrap_err()
            .to_string(),
        "duplicate name `x`"
    );
    let err = m
        .add_variables(VarSpec::new("y", &[2]).bounds(1.0, 0.0))
        .unwrap_err();
    assert!(err.to_string().contains("`y`[0]: invalid bounds"), "{err}");
    let mut g = ElementGroup::new("prod", 2, 1);
    let err = g
        .push(
            Mixed { c: 1.0 },
            &[x.index(0), x.index(0)],
            &[Target::Objective],
        )
        .unwrap_err();
    assert!(err.to_string().contains("appears twice"), "{err}");
    g.push(Mixed { c: 1.0 }, &[x.index(0), 7], &[Target::Constraint(3)])
        .unwrap();
    m.add_elements(g).unwrap();
    let err = m.build().unwrap_err();
    assert!(
        err.to_string()
            .contains("`prod`: variable index 7 out of range"),
        "{err}"
    );
}

/// Changing an L2 weight in place gives the NLP built with that weight.
#[test]
fn l2_weights_change_without_a_rebuild() {
    let mut changed = build_with_l2(&mut ChaCha8Rng::seed_from_u64(5), 0.05);
    let mut built = build_with_l2(&mut ChaCha8Rng::seed_from_u64(5), 0.8);
    changed.set_l2_weight("l2", 0.8).unwrap();
    assert!(changed.set_l2_weight("nope", 1.0).is_err());
    assert!(changed.set_l2_weight("l2", f64::NAN).is_err());
    let d = built.dims();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x = random_vec(&mut rng, d.n_vars);
    let lambda = random_vec(&mut rng, d.n_cons);
    let close = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .all(|(u, v)| (u - v).abs() <= 1e-13 * (1.0 + v.abs()))
    };
    let (fa, fb) = (changed.objective(&x).unwrap(), built.objective(&x).unwrap());
    assert!(close(&[fa], &[fb]), "{fa} vs {fb}");
    let (mut ga, mut gb) = (vec![0.0; d.n_vars], vec![0.0; d.n_vars]);
    changed.gradient(&x, &mut ga).unwrap();
    built.gradient(&x, &mut gb).unwrap();
    assert!(close(&ga, &gb));
    let (mut ha, mut hb) = (vec![0.0; d.nnz_hess], vec![0.0; d.nnz_hess]);
    changed.hessian_values(&x, 1.3, &lambda, &mut ha).unwrap();
    built.hessian_values(&x, 1.3, &lambda, &mut hb).unwrap();
    assert!(close(&ha, &hb));
    assert!(ha.iter().zip(&hb).any(|(a, _)| *a != 0.0));
}

/// The scattered Jacobian and Hessian skip their pass over the result when every term is
/// small enough to sum; they still refuse what is not finite — an infinite term, finite terms
/// whose sum overflows, NaN — and accept huge finite terms, exactly as the gather assembly
/// (which checks every result) does.
#[test]
fn non_finite_derivatives_are_refused_and_huge_finite_ones_accepted() {
    use colloc::solvers::EvalError;
    let problem = short_vanderpol();
    let build = || {
        colloc::training::collocation::build(&problem, colloc::problem::Formulation::Reduced, None)
            .unwrap()
    };
    let built = build();
    let (theta, init) = (built.theta.clone(), built.init.clone());
    let mut scattered = built.nlp;
    let mut gathered = build().nlp;
    gathered.set_scatter_assembly(false);
    assert!(scattered.scatter_assembly());
    let d = scattered.dims();
    let hidden = init.layers[1];
    let start = scattered.start().to_vec();
    // θ with every output weight `v_ju = v·sign(w_u0)` (so that the Jacobian entries of the
    // first state sum `hidden` terms −v_ju·σ′·w_u0 of one sign), and λ for the Hessian.
    let case = |v: f64, first: f64, lambda: f64| {
        let mut x = start.clone();
        for j in 0..init.layers[2] {
            for u in 0..hidden {
                let w = x[theta.index(init.weight_index(0, u, 0))];
                x[theta.index(init.weight_index(1, j, u))] = v.copysign(w);
            }
        }
        x[theta.index(init.weight_index(0, 0, 0))] = first;
        (x, vec![lambda; d.n_cons])
    };
    let run = |nlp: &mut Nlp, x: &[f64], lambda: &[f64]| {
        let mut jac = vec![0.0; d.nnz_jac];
        let mut hess = vec![0.0; d.nnz_hess];
        let j = nlp.jacobian_values(x, &mut jac).map(|()| jac);
        let h = nlp.hessian_values(x, 1.0, lambda, &mut hess).map(|()| hess);
        (j, h)
    };
    let refused = |r: &Result<Vec<f64>, EvalError>, what: &str| matches!(r, Err(EvalError::NonFinite { what: w, .. }) if *w == what);
    // Terms of 1e300 (not summable, so the scattered result is checked) with finite sums.
    let (x, lambda) = case(1e300, 0.3, 1.0);
    let (j, h) = run(&mut scattered, &x, &lambda);
    assert_eq!(
        j.as_ref().unwrap(),
        run(&mut gathered, &x, &lambda).0.as_ref().unwrap()
    );
    assert!(j.unwrap().iter().any(|v| v.abs() > 1e299));
    assert!(h.is_ok());
    // Terms near f64::MAX / 4 whose sums over the hidden units overflow; Hessian terms λ·v.
    let (x, lambda) = case(f64::MAX / 4.0, 0.3, 1e300);
    let (j, h) = run(&mut scattered, &x, &lambda);
    let (gj, gh) = run(&mut gathered, &x, &lambda);
    assert!(refused(&gj, "jacobian") && refused(&j, "jacobian"));
    assert!(refused(&gh, "hessian") && refused(&h, "hessian"));
    assert_eq!(format!("{j:?}"), format!("{gj:?}"));
    // NaN in θ.
    let (x, lambda) = case(1.0, f64::NAN, 1.0);
    let (j, h) = run(&mut scattered, &x, &lambda);
    assert!(refused(&j, "jacobian") && refused(&h, "hessian"));
}
