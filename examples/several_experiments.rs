//! One experiment against several: the batch-reactor case of `problems/reactions_experiments.toml`
//! (A → B → C, k₁ = 1, k₂ = 0.5, 31 noisy samples on [0, 6] per experiment), learned by
//! collocation once from the first experiment alone ([A](0) = 1) and once jointly from all
//! three ([A](0) = 1, [B](0) = 1, a mixture: one NLP, θ shared). Each model is then simulated
//! from five charges used by neither — the one of `problems/experiments/reactions_held_out.toml`
//! and four more — and compared with their noise-free concentrations over [0, 12]; the table
//! gives the mean of those five clean MSEs (`held-out`), each model's clean MSE on the first
//! experiment over [0, 12] (`own`; beyond t = 6 an extrapolation) and the solve time. Row 0
//! uses the files' own seeds (what `colloc solve problems/reactions_experiments.toml` runs);
//! row s > 0 draws experiment j's noise with seed 100·s + j. A second table does the same for
//! the sequential trainers `vanilla` and `homotopy` (default settings, `colloc train` on the
//! files): held-out MSE from one experiment and from three.
//!
//! `cargo run --release --example several_experiments [-- S]` (default S = 8)

use colloc::problem::{self, Problem, Split};
use colloc::sequential::TrainMethod;
use colloc::training::collocation::{self, simulate_and_score, Evaluation};
use colloc::training::sequential;
use colloc_models::Mlp;
use std::path::Path;
use std::time::Instant;

/// The held-out charges: the held-out file's own first.
const CHARGES: [[f64; 3]; 5] = [
    [0.2, 0.6, 0.2],
    [0.6, 0.0, 0.4],
    [0.0, 0.5, 0.5],
    [0.8, 0.2, 0.0],
    [0.4, 0.4, 0.2],
];

/// Clean MSE of `model` simulated from the first clean state of `p` over its whole data.
fn clean_mse(p: &Problem, model: &Mlp) -> Result<f64, Box<dyn std::error::Error>> {
    let clean = p
        .data
        .clean
        .as_ref()
        .ok_or("the problem has no clean data")?;
    let ev = simulate_and_score(p, model, p.t0, &clean[0], Evaluation::default());
    let n_train = p.data.indices(Split::Train).len() as f64;
    let n_test = p.data.indices(Split::Test).len() as f64;
    match (ev.train_mse_clean, ev.test_mse_clean) {
        (Some(a), Some(b)) => Ok((a * n_train + b * n_test) / (n_train + n_test)),
        _ => Ok(f64::INFINITY),
    }
}

/// Mean clean MSE of `model` over the held-out problems.
fn held_out_mse(held: &[Problem], model: &Mlp) -> Result<f64, Box<dyn std::error::Error>> {
    let mut sum = 0.0;
    for h in held {
        sum += clean_mse(h, model)?;
    }
    Ok(sum / held.len() as f64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seeds: u64 = match std::env::args().nth(1) {
        Some(s) => s.parse().map_err(|e| format!("seeds `{s}`: {e}"))?,
        None => 8,
    };
    let main_file = Path::new("problems/reactions_experiments.toml");
    let held_out_file = Path::new("problems/experiments/reactions_held_out.toml");
    let text = std::fs::read_to_string(held_out_file)?;
    let own_charge = "initial_state = [0.2, 0.6, 0.2]";
    if !text.contains(own_charge) {
        return Err(format!("{} no longer has `{own_charge}`", held_out_file.display()).into());
    }
    let mut held = Vec::new();
    for (k, c) in CHARGES.iter().enumerate() {
        let path =
            std::env::temp_dir().join(format!("colloc-held-out-{k}-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            text.replace(own_charge, &format!("initial_state = {c:?}")),
        )?;
        let loaded = problem::load(&path);
        std::fs::remove_file(&path)?;
        held.push(loaded?);
    }
    println!(
        "{:>4} | {:>16} {:>10} {:>7} | {:>16} {:>10} {:>7}",
        "seed", "1 exp: held-out", "own", "s", "3 exp: held-out", "own", "s"
    );
    let (mut one_sum, mut three_sum, mut wins) = (0.0, 0.0, 0);
    // Sequential rows: seed, then (one, three) held-out MSE per method.
    let mut sequential_rows = Vec::new();
    for s in 0..=seeds {
        // Seed 0: the files' own seeds. The experiment files inherit theirs: the main file's
        // plus their place in the list.
        let main = problem::load_with_seed(main_file, (s > 0).then_some(100 * s))?;
        let problems = main.with_trajectories()?;
        let started = Instant::now();
        let single = collocation::train(&main, main.formulation, None, &mut |_| true)?;
        let single_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let joint = collocation::train_joint(&problems, main.formulation, None, &mut |_| true)?;
        let joint_s = started.elapsed().as_secs_f64();
        let (one, three) = (
            held_out_mse(&held, &single.model)?,
            held_out_mse(&held, &joint[0].model)?,
        );
        let own_one = clean_mse(&main, &single.model)?;
        let own_three = clean_mse(&main, &joint[0].model)?;
        println!(
            "{s:>4} | {one:>16.3e} {own_one:>10.3e} {single_s:>7.2} | {three:>16.3e} {own_three:>10.3e} {joint_s:>7.2}"
        );
        one_sum += one;
        three_sum += three;
        wins += usize::from(three < one);
        let mut row = Vec::new();
        for method in [TrainMethod::Vanilla, TrainMethod::Homotopy] {
            let mut settings = main.sequential.clone();
            settings.method = method;
            let single = sequential::train(&main, &settings, None, None, &mut |_| true)?;
            let joint =
                sequential::train_trajectories(&problems, &settings, None, None, &mut |_| true)?;
            row.push((
                held_out_mse(&held, &single.report.best)?,
                held_out_mse(&held, &joint[0].report.best)?,
            ));
        }
        sequential_rows.push((s, row));
    }
    let n = (seeds + 1) as f64;
    println!(
        "mean held-out clean MSE over {} rows: one experiment {:.3e}, three {:.3e}; three better in {wins} rows",
        seeds + 1,
        one_sum / n,
        three_sum / n
    );
    println!();
    println!(
        "{:>4} | {:>16} {:>16} | {:>16} {:>16}",
        "seed", "vanilla: 1 exp", "3 exp", "homotopy: 1 exp", "3 exp"
    );
    let mut sums = [[0.0; 2]; 2];
    for (s, row) in &sequential_rows {
        println!(
            "{s:>4} | {:>16.3e} {:>16.3e} | {:>16.3e} {:>16.3e}",
            row[0].0, row[0].1, row[1].0, row[1].1
        );
        for (m, (a, b)) in row.iter().enumerate() {
            sums[m][0] += a;
            sums[m][1] += b;
        }
    }
    println!(
        "mean held-out clean MSE: vanilla {:.3e} / {:.3e}, homotopy {:.3e} / {:.3e} (one / three experiments)",
        sums[0][0] / n,
        sums[0][1] / n,
        sums[1][0] / n,
        sums[1][1] / n
    );
    Ok(())
}
