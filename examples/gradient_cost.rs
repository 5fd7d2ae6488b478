//! Cost of one exact gradient (forward solve + reverse sweep) against one forward solve, for
//! the Lotka–Volterra setup of the homotopy paper: [2, 32, 2] GELU, Dopri5 rtol 1e-7 atol 1e-9,
//! 62 observations on t ∈ [0, 6.1]. Prints medians over repeated runs.
//!
//! `cargo run --release --example gradient_cost`

use colloc::models::{Activation, Mlp};
use colloc::sequential::NeuralOde;
use colloc::solvers::ode::adjoint::{gradient, solve_recorded, Method};
use colloc::solvers::ode::{Dopri5, Dopri5Settings, OdeSystem};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // The BLAS kernels of the `colloc` binary (see `rerun_with_detected_blas_core`).
    colloc::solvers::ipopt::rerun_with_detected_blas_core();
    // Lotka–Volterra as the homotopy paper's code integrates it (x' = 1.3x − 0.9xy,
    // y' = 0.8xy − 1.8y; see problems/lotka_volterra.toml), noise-free, as the target.
    let lv = (2usize, |_t: f64, y: &[f64], dy: &mut [f64]| {
        dy[0] = 1.3 * y[0] - 0.9 * y[0] * y[1];
        dy[1] = 0.8 * y[0] * y[1] - 1.8 * y[1];
    });
    let y0 = [0.442_492_96, 4.628_059_4];
    let times: Vec<f64> = (0..62).map(|i| 0.1 * i as f64).collect();
    let obs = Dopri5::with_tolerances(1e-10, 1e-12)
        .solve(&lv, 0.0, &y0, &times)
        .expect("Lotka–Volterra solves")
        .y;
    let model = Mlp::xavier(&[2, 32, 2], Activation::Gelu, false, 0).expect("valid layers");
    let method = Method::Dopri5(Dopri5Settings {
        rtol: 1e-7,
        atol: 1e-9,
        ..Default::default()
    });
    let sys = NeuralOde::new(&model, &model.params);
    assert_eq!(sys.dim(), 2);
    let (mut fwd, mut both) = (Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..200 {
        let t = Instant::now();
        let tr = solve_recorded(&method, &sys, 0.0, &y0, &times).expect("forward solve");
        fwd.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let tr2 = solve_recorded(&method, &sys, 0.0, &y0, &times).expect("forward solve");
        let cot: Vec<Vec<f64>> = tr2
            .y
            .iter()
            .zip(&obs)
            .map(|(y, o)| {
                y.iter()
                    .zip(o)
                    .map(|(a, b)| 2.0 * (a - b) / 124.0)
                    .collect()
            })
            .collect();
        let g = gradient(&tr2, &sys, &cot);
        both.push(t.elapsed().as_secs_f64());
        last = Some((tr.stats, g.nvjp));
    }
    let (stats, nvjp) = last.expect("ran");
    let (f, b) = (median(fwd), median(both));
    println!("| quantity | value |");
    println!("|---|---:|");
    println!("| forward solve (median of 200) | {:.3} ms |", f * 1e3);
    println!(
        "| forward + reverse gradient (median of 200) | {:.3} ms |",
        b * 1e3
    );
    println!("| ratio gradient / forward | {:.2} |", b / f);
    println!(
        "| accepted / rejected steps, NFE, VJPs | {} / {} / {} / {} |",
        stats.accepted, stats.rejected, stats.nfe, nvjp
    );
}
