//! Time per training epoch of each sequential method on Lotka–Volterra and Lorenz (the
//! problem files' settings; exact gradients through Dopri5 with dense output): median over
//! repeats of `epochs` epochs from the problem's Xavier start, with right-hand-side
//! evaluations (forward solves) per epoch.
//!
//! `cargo run --release --example epoch_cost -- [repeats] [lv_epochs] [lorenz_epochs]`
//! (defaults 3, 4000, 300)

use colloc::problem;
use colloc::sequential::TrainMethod;
use colloc::training::sequential;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The BLAS kernels and the allocator setting of the `colloc` binary (see
    // `rerun_with_detected_blas_core` and `retain_freed_memory`), so that the epochs cost here
    // what they cost in `colloc train`.
    colloc::solvers::ipopt::rerun_with_detected_blas_core();
    colloc::solvers::ipopt::retain_freed_memory();
    let arg = |i: usize, default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(std::env::args()
            .nth(i)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let repeats = arg(1, 3)?.max(1);
    let cases = [
        ("problems/lotka_volterra.toml", arg(2, 4000)?),
        ("problems/lorenz.toml", arg(3, 300)?),
    ];
    println!(
        "| problem | method | epochs | ms/epoch (median of {repeats}) | min | max | NFE/epoch |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (file, epochs) in cases {
        let p = problem::load(file.as_ref())?;
        for method in TrainMethod::ALL {
            let mut s = p.sequential.clone();
            s.method = method;
            s.epochs = epochs;
            s.homotopy.epochs_per_step = epochs.div_ceil(s.homotopy.steps).max(1);
            let mut times = Vec::new();
            let mut nfe = 0.0;
            for _ in 0..repeats {
                let run = sequential::train(&p, &s, None, None, &mut |_| true)?;
                let n = run.report.curve.len().max(1) as f64;
                times.push(1e3 * run.report.curve.last().map_or(0.0, |r| r.time_s) / n);
                nfe = run.report.nfe as f64 / n;
            }
            let (lo, hi) = (
                times.iter().copied().fold(f64::INFINITY, f64::min),
                times.iter().copied().fold(0.0, f64::max),
            );
            println!(
                "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.0} |",
                p.name,
                method,
                s.total_epochs(),
                median(times),
                lo,
                hi,
                nfe
            );
        }
    }
    Ok(())
}
