//! Legendre vs monomial time-dependent weights (the polynomial-weight paper's comparison) on
//! a problem file: the same network and start (θ_0 from the problem's Xavier draw, higher
//! coefficients zero, so both begin as the same constant-weight model), trained by the
//! vanilla trainer; prints the right-hand-side evaluations (NFE) each basis needs to first
//! reach the same training MSE, for a few levels down to the worse of the two best MSEs.
//!
//! `cargo run --release --example polyweight_nfe -- [problem.toml] [degree] [epochs]`
//! (defaults: problems/lotka_volterra.toml, 3, 2000)

use colloc::problem;
use colloc::sequential::{EpochRecord, TrainMethod};
use colloc::training::sequential;
use colloc_models::{BasisKind, TimeBasis};

fn nfe_to_reach(curve: &[EpochRecord], target: f64) -> Option<(usize, usize)> {
    curve
        .iter()
        .find(|r| r.train_mse <= target)
        .map(|r| (r.epoch, r.nfe))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The BLAS kernels of the `colloc` binary (see `rerun_with_detected_blas_core`).
    colloc::solvers::ipopt::rerun_with_detected_blas_core();
    let args: Vec<String> = std::env::args().collect();
    let file = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "problems/lotka_volterra.toml".into());
    let degree: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let epochs: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let base = problem::load(file.as_ref())?;
    let mut settings = base.sequential.clone();
    settings.method = TrainMethod::Vanilla;
    settings.epochs = epochs;

    let mut runs = Vec::new();
    for kind in [BasisKind::Legendre, BasisKind::Monomial] {
        let mut p = base.clone();
        p.model.time_basis = Some(TimeBasis {
            kind,
            degree,
            t0: p.t0,
            t1: p.t1,
        });
        let run = sequential::train(&p, &settings, None, None, &mut |_| true)?;
        println!(
            "{kind:?} degree {degree}: best train MSE {:.4e} at epoch {}, {} NFE in {} epochs, {:.3} ms/epoch",
            run.report.best_mse,
            run.report.best_epoch,
            run.report.nfe,
            run.report.curve.len(),
            1e3 * run.train_s / run.report.curve.len().max(1) as f64
        );
        runs.push((kind, run));
    }
    let worst_best = runs
        .iter()
        .map(|(_, r)| r.report.best_mse)
        .fold(0.0f64, f64::max);
    println!();
    println!("| train MSE reached | Legendre epoch | Legendre NFE | monomial epoch | monomial NFE | NFE ratio (mono/Leg) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for factor in [8.0, 4.0, 2.0, 1.2, 1.0] {
        let target = worst_best * factor;
        let cells: Vec<Option<(usize, usize)>> = runs
            .iter()
            .map(|(_, r)| nfe_to_reach(&r.report.curve, target))
            .collect();
        let show = |c: Option<(usize, usize)>| {
            c.map_or(("-".to_string(), "-".to_string()), |(e, n)| {
                (e.to_string(), n.to_string())
            })
        };
        let (le, ln) = show(cells[0]);
        let (me, mn) = show(cells[1]);
        let ratio = match (cells[0], cells[1]) {
            (Some((_, a)), Some((_, b))) => format!("{:.2}", b as f64 / a as f64),
            _ => "-".into(),
        };
        println!("| {target:.4e} | {le} | {ln} | {me} | {mn} | {ratio} |");
    }
    Ok(())
}
