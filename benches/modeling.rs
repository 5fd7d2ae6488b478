//! Modeling-layer benchmark: build time and evaluation times (constraints, Jacobian, Hessian of
//! the Lagrangian) for many small elements, as in a collocation NLP with one network element
//! per point and hidden unit.
//!
//! `cargo bench --bench modeling` prints a table of medians. Options (after `--`):
//! `--elements N` (default 100000), `--repeats R` (default 21).

use colloc::nlp::{ConSpec, Element, ElementGroup, Model, Nlp, Scalar, Target, VarSpec};
use colloc::solvers::NlpEvaluator;
use std::time::Instant;

/// A hidden-unit-like element: `x_{n-1} · tanh(Σ_{i<n-1} c_i x_i) + 0.01 exp(x_0 x_1)`.
struct Unit<const N: usize> {
    c: [f64; N],
}
impl<const N: usize> Element for Unit<N> {
    fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]) {
        let mut s = S::from(0.0);
        for (xi, ci) in x[..N - 1].iter().zip(&self.c) {
            s += *xi * *ci;
        }
        out[0] = x[N - 1] * s.tanh() + (x[0] * x[1]).exp() * 0.01;
    }
}

/// `elements` elements of `N` inputs over a banded set of variables, half of them in
/// constraint rows (one row per 4 elements), half in the objective.
fn build<const N: usize>(elements: usize) -> (Nlp, f64) {
    let t = Instant::now();
    let mut m = Model::new();
    let n_vars = elements + N;
    let x = m
        .add_variables(VarSpec::new("x", &[n_vars]).start(0.1))
        .expect("valid block");
    let c = m
        .add_constraints(ConSpec::equal_zero("c", elements.div_ceil(4)))
        .expect("valid block");
    let mut g = ElementGroup::new("units", N, 1);
    g.reserve(elements);
    let mut inputs = [0usize; N];
    for e in 0..elements {
        for (a, i) in inputs.iter_mut().enumerate() {
            *i = x.index(e + a);
        }
        let coef = std::array::from_fn(|i| 0.1 + 0.01 * ((e + i) % 7) as f64);
        let target = if e % 2 == 0 {
            Target::Constraint(c.row(e / 4))
        } else {
            Target::Objective
        };
        g.push(Unit::<N> { c: coef }, &inputs, &[target])
            .expect("valid element");
    }
    m.add_elements(g).expect("unique name");
    let nlp = m.build().expect("valid model");
    (nlp, t.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time(repeats: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    median(
        (0..repeats)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn row<const N: usize>(elements: usize, repeats: usize, threads: usize) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    pool.install(|| {
        let (mut nlp, build_s) = build::<N>(elements);
        let d = nlp.dims();
        let x: Vec<f64> = (0..d.n_vars).map(|i| 0.1 + 0.001 * (i % 13) as f64).collect();
        let lambda: Vec<f64> = (0..d.n_cons).map(|i| 1.0 - 0.01 * (i % 5) as f64).collect();
        let mut g = vec![0.0; d.n_cons];
        let mut jac = vec![0.0; d.nnz_jac];
        let mut hess = vec![0.0; d.nnz_hess];
        let t_g = time(repeats, || nlp.constraints(&x, &mut g).expect("finite"));
        let t_j = time(repeats, || nlp.jacobian_values(&x, &mut jac).expect("finite"));
        let t_h = time(repeats, || nlp.hessian_values(&x, 1.0, &lambda, &mut hess).expect("finite"));
        println!(
            "| {elements:>8} | {N:>6} | {threads:>7} | {:>8} | {:>9} | {:>8.1} | {:>8.2} | {:>8.2} | {:>8.2} | {:>10.1} |",
            d.nnz_jac,
            d.nnz_hess,
            build_s * 1e3,
            t_g * 1e3,
            t_j * 1e3,
            t_h * 1e3,
            t_h / elements as f64 * 1e9,
        );
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let elements = arg("--elements", 100_000);
    let repeats = arg("--repeats", 21);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("modeling-layer evaluation, median of {repeats} runs, {cores} cores");
    println!("| elements | inputs | threads | nnz_jac  | nnz_hess  | build ms | g ms     | jac ms   | hess ms  | hess ns/el |");
    println!("|---------:|-------:|--------:|---------:|----------:|---------:|---------:|---------:|---------:|-----------:|");
    for threads in [1, cores] {
        row::<5>(elements, repeats, threads);
    }
    // Cost per element grows with the element's own size, not with the problem.
    row::<5>(elements / 10, repeats, cores);
    row::<2>(elements, repeats, cores);
    row::<10>(elements, repeats, cores);
    row::<20>(elements / 10, repeats, cores);
}
