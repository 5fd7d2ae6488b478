//! An NLP whose KKT matrix has large dense fronts, as global (spectral) collocation produces:
//! `m` constraints, each coupling all `2m` variables through a dense linear part plus a
//! nonlinear element, and a least-squares objective. Used to measure how much the BLAS behind
//! MUMPS matters (see docs/platform.md, "BLAS").
//!
//! `cargo run --release --example dense_kkt -- [m]` (default m = 600)

use colloc::nlp::{ConSpec, Element, ElementGroup, LeastSquares, Model, Scalar, Target, VarSpec};
use colloc::solvers::ipopt::{IpoptSettings, IpoptSolver};
use colloc::solvers::NlpEvaluator;
use std::time::Instant;

/// `0.5 tanh(x₀ x₁) + 0.1 x₀³`.
struct Coupling;
impl Element for Coupling {
    fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]) {
        out[0] = (x[0] * x[1]).tanh() * 0.5 + x[0].powi(3) * 0.1;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The BLAS kernels of the `colloc` binary (see `rerun_with_detected_blas_core`).
    colloc::solvers::ipopt::rerun_with_detected_blas_core();
    let m: usize = match std::env::args().nth(1) {
        Some(s) => s
            .parse()
            .map_err(|e| format!("m must be a positive integer, got {s:?}: {e}"))?,
        None => 600,
    };
    let n = 2 * m;
    let t_build = Instant::now();
    let mut model = Model::new();
    let x = model.add_variables(VarSpec::new("x", &[n]).bounds(-10.0, 10.0))?;
    let c = model.add_constraints(ConSpec::equal_zero("c", m))?;
    // Deterministic dense coefficients (a smooth kernel plus a diagonal), no RNG needed.
    model.add_linear_triplets(
        "dense",
        (0..m).flat_map(|i| {
            (0..n).map(move |j| {
                let v = ((i * 31 + j * 17) % 97) as f64 / 97.0 - 0.5;
                (
                    i,
                    j,
                    if i == j {
                        v + 4.0
                    } else {
                        v / (1.0 + (i as f64 - j as f64).abs()).sqrt()
                    },
                )
            })
        }),
    );
    let mut g = ElementGroup::new("coupling", 2, 1);
    for i in 0..m {
        g.push(
            Coupling,
            &[x.index(i), x.index(m + i)],
            &[Target::Constraint(c.row(i))],
        )?;
    }
    model.add_elements(g)?;
    let target: Vec<f64> = (0..n).map(|j| (j as f64 * 0.37).sin()).collect();
    let all: Vec<usize> = x.indices().collect();
    model.add_least_squares(LeastSquares::on_variables("fit", &all, target, 1.0));
    let mut nlp = model.build()?;
    let build_s = t_build.elapsed().as_secs_f64();

    let solver = IpoptSolver::new(IpoptSettings::default())?;
    let sol = solver.solve(&mut nlp)?;
    let d = nlp.dims();
    println!(
        "dense_kkt m={m}: n={} nnz_jac={} nnz_hess={} | build {:.3} s | {} | {} iterations | solve {:.3} s, of which function evaluations {:.3} s | objective {:.6}",
        d.n_vars, d.nnz_jac, d.nnz_hess, build_s, sol.status, sol.stats.iterations, sol.stats.wall_s, sol.stats.eval_s, sol.objective
    );
    Ok(())
}
