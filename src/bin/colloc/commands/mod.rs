//! One module per subcommand.

pub mod admm;
pub mod solve;
pub mod train;

use colloc::training::collocation::Evaluation;

/// The figure lines every command ends with: simulation MSEs (and their noise-free versions).
pub fn print_scores(ev: &Evaluation) {
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4e}"));
    if ev.fit_mse.is_some() {
        println!("{:<18} {}", "fit_mse", f(ev.fit_mse));
    }
    println!(
        "{:<18} {}   test_mse {}",
        "train_mse",
        f(ev.train_mse),
        f(ev.test_mse)
    );
    println!(
        "{:<18} {}   test_mse_clean {}",
        "train_mse_clean",
        f(ev.train_mse_clean),
        f(ev.test_mse_clean)
    );
}
