//! `colloc predict MODEL`: integrate a trained model's learned ODE from a given state, or
//! along measurements it is scored against.

use crate::Failure;
use colloc::problem::read_csv;
use colloc::report;
use colloc::training::prediction::{self, PredictionError};
use colloc_models::Mlp;
use std::path::PathBuf;

/// Arguments of `colloc predict`.
#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// A model saved by `colloc solve`, `train` or `admm` (model.json).
    #[arg(required_unless_present = "run")]
    pub model: Option<PathBuf>,
    /// A results folder of `colloc solve`, `train` or `admm`: its model along its data.csv from
    /// its start (`start_state`, `start_time` of summary.json) — the run's own simulation.
    #[arg(long, conflicts_with_all = ["model", "data", "y0", "t0", "t1"])]
    pub run: Option<PathBuf>,
    /// Initial state, comma-separated (with --data the default is the first observation).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub y0: Option<Vec<f64>>,
    /// Start time (default: 0, or the first time of --data).
    #[arg(long, allow_hyphen_values = true)]
    pub t0: Option<f64>,
    /// End time (required without --data).
    #[arg(long, allow_hyphen_values = true)]
    pub t1: Option<f64>,
    /// Evenly spaced output times from t0 to t1.
    #[arg(long, default_value_t = 200)]
    pub points: usize,
    /// Measurements (CSV: t, y1, …, yd): predict at their times and report the MSE.
    #[arg(long, conflicts_with_all = ["t1"])]
    pub data: Option<PathBuf>,
    /// Write the CSV (t, y1.., and obs1.. with --data) to this file, atomically; without it
    /// the CSV goes to standard output and the report to standard error.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also draw the trajectory (and the measurements) into this SVG file, atomically.
    #[arg(long)]
    pub svg: Option<PathBuf>,
}

/// Runs the command.
pub fn run(mut args: PredictArgs) -> Result<(), Failure> {
    // Output files into a folder that is not there are bad flags, refused before any work.
    for (flag, path) in [("--out", &args.out), ("--svg", &args.svg)] {
        if let Some(path) = path {
            let folder = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            if !folder.is_dir() {
                return Err(Failure::input(format!(
                    "{flag} {}: the folder {} does not exist",
                    path.display(),
                    folder.display()
                )));
            }
        }
    }
    if let Some(dir) = args.run.clone() {
        let (t0, y0) = run_start(&dir)?;
        args.model = Some(dir.join("model.json"));
        args.data = Some(dir.join("data.csv"));
        args.t0 = Some(t0);
        args.y0 = Some(y0);
    }
    let model_path = args.model.clone().expect("clap requires MODEL or --run");
    let model = Mlp::load(&model_path).map_err(Failure::input)?;
    let input = |e: PredictionError| match e {
        PredictionError::Integration { .. } => Failure::run(e),
        other => Failure::input(other),
    };
    let (t0, y0, times, observed) = match &args.data {
        Some(path) => {
            let (t, y) = read_csv(path).map_err(Failure::input)?;
            let (Some(&first_t), Some(first_y)) = (t.first(), y.first()) else {
                return Err(Failure::input(format!(
                    "{}: no measurement rows (t, y1, …, yd)",
                    path.display()
                )));
            };
            let t0 = args.t0.unwrap_or(first_t);
            let y0 = match (&args.y0, args.t0) {
                (Some(y0), _) => y0.clone(),
                (None, None) => first_y.clone(),
                (None, Some(_)) => {
                    return Err(Failure::input(
                        "--t0 with --data needs --y0 (the state at t0)",
                    ))
                }
            };
            if first_y.len() != model.state_inputs() {
                return Err(Failure::input(format!(
                    "{}: {} state columns, the model {} has {} states",
                    path.display(),
                    first_y.len(),
                    model_path.display(),
                    model.state_inputs()
                )));
            }
            (t0, y0, t, Some(y))
        }
        None => {
            let t0 = args.t0.unwrap_or(0.0);
            let t1 = args
                .t1
                .ok_or_else(|| Failure::input("give --t1 (the end time) or --data FILE"))?;
            let y0 = args
                .y0
                .clone()
                .ok_or_else(|| Failure::input("give --y0 (the initial state, comma-separated)"))?;
            let times = prediction::even_times(t0, t1, args.points).map_err(input)?;
            (t0, y0, times, None)
        }
    };
    let result = prediction::simulate(&model, t0, &y0, &times).map_err(input)?;
    let table = report::prediction_table(&result, observed.as_deref());
    let mut lines = vec![format!(
        "{:<18} {} times from t = {} to {}, {} right-hand-side evaluations",
        "prediction",
        result.t.len(),
        t0,
        result.t.last().copied().unwrap_or(t0),
        result.nfe
    )];
    let t_end = result.t.last().copied().unwrap_or(t0);
    if let Some((a, b)) = model.time_basis_window() {
        let slack = 1e-9 * (b - a).abs().max(1.0);
        if t0.min(t_end) < a - slack || t0.max(t_end) > b + slack {
            eprintln!(
                "{:<18} the model's weights are polynomials in time fitted on [{a}, {b}]; \
                 beyond that window they extrapolate the polynomials, and the prediction with them",
                "warning"
            );
        }
    }
    if let Some(obs) = &observed {
        let (total, per_state) = prediction::mse_per_state(&result.y, obs);
        let each: Vec<String> = per_state.iter().map(|v| format!("{v:.4e}")).collect();
        lines.push(format!(
            "{:<18} {total:.4e}   per state {}",
            "mse",
            each.join(" ")
        ));
    }
    if let Some(path) = &args.svg {
        let title = model_path
            .file_name()
            .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
        let plot = report::prediction_plot(&title, &result.t, &result.y, observed.as_deref());
        report::write_file(path, &plot).map_err(Failure::run)?;
        lines.push(format!("{:<18} {}", "plot", path.display()));
    }
    match &args.out {
        Some(path) => {
            report::write_file(path, &table).map_err(Failure::run)?;
            lines.push(format!("{:<18} {}", "results", path.display()));
            for l in lines {
                println!("{l}");
            }
        }
        None => {
            print!("{table}");
            for l in lines {
                eprintln!("{l}");
            }
        }
    }
    Ok(())
}

/// `start_time` and `start_state` of a results folder's summary.json.
fn run_start(dir: &std::path::Path) -> Result<(f64, Vec<f64>), Failure> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Failure::input(format!("--run: {}: {e}", path.display())))?;
    let summary: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Failure::input(format!("--run: {}: {e}", path.display())))?;
    let missing = || {
        Failure::input(format!(
            "--run: {} has no start_time/start_state (written by an older colloc?); give MODEL \
             --data --t0 --y0 instead",
            path.display()
        ))
    };
    let t0 = summary["start_time"].as_f64().ok_or_else(missing)?;
    let y0 = summary["start_state"]
        .as_array()
        .ok_or_else(missing)?
        .iter()
        .map(|v| v.as_f64().ok_or_else(missing))
        .collect::<Result<Vec<f64>, Failure>>()?;
    Ok((t0, y0))
}
