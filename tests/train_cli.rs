//! `colloc train`: every method runs end to end on a small problem and writes its result files;
//! bad flags and bad `[sequential]` settings are refused with a clear message; `--init`
//! starts from a saved model; runs are deterministic.

mod common;

use std::path::PathBuf;
use std::process::Command;

/// Lotka–Volterra, a small network and few epochs: fast enough for a test.
const SMALL: &str = r#"
name = "lv-small"
seed = 3

[data]
system = "lotka-volterra"
parameters = { alpha = 1.3, beta = 0.9, gamma = 1.8, delta = 0.8 }
initial_state = [0.44249296, 4.6280594]
noise_relative = 0.05

[train]
t1 = 3.0
points = 31

[test]
t1 = 4.0
points = 10

[collocation]
points = 40

[model]
layers = [2, 8, 2]
activation = "gelu"

[sequential]
epochs = 60
learning_rate = 0.02

[sequential.homotopy]
steps = 3
epochs_per_step = 20

[sequential.shooting]
segments = 3
"#;

fn dir(name: &str) -> common::TempDir {
    common::TempDir::new(&format!("train-{name}"))
}

fn colloc(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_colloc"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `text` as the problem file `d/name` and returns its path.
fn problem_file(d: &std::path::Path, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let path = d.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn summary(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn every_method_trains_and_writes_its_results() {
    let d = dir("methods");
    let path = problem_file(&d, "small.toml", SMALL);
    for (method, epochs) in [("vanilla", 60), ("homotopy", 60), ("shooting", 60)] {
        let out = d.join(method);
        let (code, stdout, err) = colloc(&[
            "train",
            path.to_str().unwrap(),
            "--method",
            method,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(0), "{method}: {stdout}\n{err}");
        assert!(!err.contains("panicked"), "{err}");
        // Progress reached stderr (epoch counter and best MSE).
        assert!(err.contains("best mse"), "{method}: {err}");
        let s = summary(&out);
        common::assert_summary_keys(&s, &["epochs", "best_epoch", "nfe"]);
        assert_eq!(s["method"], method);
        assert_eq!(s["epochs"], epochs);
        assert!(s["nfe"].as_u64().unwrap() > 100);
        // The reported train MSE is the best model's, simulated again from the first point:
        // it must equal the best point of the learning curve (same solver, same tolerances).
        let curve = std::fs::read_to_string(out.join("curve.csv")).unwrap();
        let mut lines = curve.lines();
        assert_eq!(
            lines.next().unwrap(),
            "epoch,loss,train_mse,lambda,time_s,nfe"
        );
        let rows: Vec<Vec<f64>> = lines
            .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
            .collect();
        assert_eq!(rows.len(), epochs);
        let best = rows.iter().map(|r| r[2]).fold(f64::INFINITY, f64::min);
        let train = s["train_mse"].as_f64().unwrap();
        assert!(
            (train - best).abs() < 1e-6 * best,
            "{method}: {train} vs {best}"
        );
        assert!(train < rows[0][2], "{method}: training did not improve");
        if method == "homotopy" {
            assert_eq!(rows[0][3], 1.0);
            assert_eq!(rows[epochs - 1][3], 0.0);
        }
        let model = colloc_models::Mlp::load(&out.join("model.json")).unwrap();
        assert_eq!(model.layers, vec![2, 8, 2]);
        for f in ["curve.svg", "fit.svg"] {
            assert!(std::fs::read_to_string(out.join(f))
                .unwrap()
                .starts_with("<svg"));
        }
        assert!(std::fs::read_to_string(out.join("prediction.csv"))
            .unwrap()
            .starts_with("t,split,sim1,sim2"));
    }
}

#[test]
fn init_starts_from_a_saved_model_and_runs_are_deterministic() {
    let d = dir("init");
    let path = problem_file(&d, "small.toml", SMALL);
    let run = |out: &str, extra: &[&str]| {
        let out = d.join(out);
        let mut args = vec!["train", path.to_str().unwrap(), "-q", "--out"];
        args.push(out.to_str().unwrap());
        args.extend_from_slice(extra);
        let (code, stdout, err) = colloc(&args);
        assert_eq!(code, Some(0), "{stdout}\n{err}");
        (
            summary(&out),
            std::fs::read_to_string(out.join("model.json")).unwrap(),
        )
    };
    let (a, model_a) = run("a", &[]);
    let (_, model_b) = run("b", &[]);
    assert_eq!(model_a, model_b, "same file, same seed: same model");
    // Continue from the first run's model: the first epoch's MSE is that model's (up to the
    // difference between the training solver, which steps onto the observation times, and
    // the evaluation's dense-output Dopri5).
    let init = d.join("a").join("model.json");
    let (c, _) = run("c", &["--init", init.to_str().unwrap()]);
    assert_eq!(c["init"], init.to_str().unwrap());
    let curve = std::fs::read_to_string(d.join("c").join("curve.csv")).unwrap();
    let first: f64 = curve
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    let best_a = a["train_mse"].as_f64().unwrap();
    assert!(
        (first - best_a).abs() < 1e-6 * best_a,
        "{first} vs {best_a}"
    );
    assert!(c["train_mse"].as_f64().unwrap() <= best_a * (1.0 + 1e-6));
}

#[test]
fn pre_training_runs_first_on_the_leading_window() {
    let d = dir("pretrain");
    let path = d.join("small.toml");
    let text = SMALL.replace(
        "[sequential]\n",
        "[sequential]\npretrain_fraction = 0.2\npretrain_epochs = 15\n",
    );
    std::fs::write(&path, text).unwrap();
    let out = d.join("out");
    let (code, stdout, err) = colloc(&[
        "train",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stdout}\n{err}");
    assert!(err.contains("pre-train"), "{err}");
    assert!(
        err.contains("15 pre-training epochs on the first 20 %"),
        "{err}"
    );
    assert_eq!(summary(&out)["epochs"], 60);
}

#[test]
fn epochs_flag_is_the_homotopy_budget_over_its_steps() {
    // The file's homotopy runs 3 steps of 20 epochs; `--epochs N` spreads N over the 3 steps
    // (⌈N / 3⌉ each), so the run has N epochs when 3 divides N and the next multiple otherwise.
    let d = dir("homotopy-epochs");
    let path = problem_file(&d, "small.toml", SMALL);
    for (asked, run) in [(12, 12), (10, 12)] {
        let out = d.join(format!("h{asked}"));
        let (code, stdout, err) = colloc(&[
            "train",
            path.to_str().unwrap(),
            "--method",
            "homotopy",
            "--epochs",
            &asked.to_string(),
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(0), "{stdout}\n{err}");
        assert_eq!(summary(&out)["epochs"], run, "--epochs {asked}");
        let curve = std::fs::read_to_string(out.join("curve.csv")).unwrap();
        assert_eq!(
            curve.lines().count(),
            run + 1,
            "--epochs {asked}: header + one row per epoch"
        );
    }
}

#[test]
fn bad_flags_and_settings_are_refused() {
    let d = dir("bad");
    let path = problem_file(&d, "small.toml", SMALL);
    let p = path.to_str().unwrap();
    let (code, _, err) = colloc(&["train", p, "--method", "adjoint"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("vanilla, homotopy, shooting"), "{err}");
    let (code, _, err) = colloc(&["train", p, "--epochs", "0"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--epochs"), "{err}");
    let (code, _, err) = colloc(&["train", p, "--time-limit=-1"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--time-limit"), "{err}");
    let (code, _, err) = colloc(&["train", p, "--init", "/nonexistent/model.json"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("/nonexistent/model.json"), "{err}");
    // A model of the wrong shape.
    let wrong = d.join("wrong.json");
    colloc_models::Mlp::xavier(&[3, 4, 3], colloc_models::Activation::Tanh, false, 0)
        .unwrap()
        .save(&wrong)
        .unwrap();
    let (code, _, err) = colloc(&["train", p, "--init", wrong.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for (bad, needle) in [
        ("weight_decay = -0.1", "sequential.weight_decay"),
        ("method = \"adam\"", "unknown variant"),
        ("pretrain_fraction = 1.5", "sequential.pretrain_fraction"),
        ("stepz = 3", "unknown field"),
    ] {
        let text = SMALL.replace("[sequential]\n", &format!("[sequential]\n{bad}\n"));
        let f = problem_file(&d, "bad.toml", text);
        let (code, _, err) = colloc(&["train", f.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{bad}: {err}");
        assert!(
            err.contains(needle) && err.contains("bad.toml"),
            "{bad}: {err}"
        );
    }
    let text = SMALL.replace("segments = 3", "segments = 40");
    let f = problem_file(&d, "segments.toml", text);
    // A run that fails before any result leaves no empty output folders behind.
    let out = d.join("failed").join("run");
    let (code, _, err) = colloc(&[
        "train",
        f.to_str().unwrap(),
        "--method",
        "shooting",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("40 shooting segments (`sequential.shooting.segments`) need at least 41"),
        "{err}"
    );
    assert!(!d.join("failed").exists(), "{err}");
}

#[test]
fn ctrl_c_stops_training_and_keeps_the_best_model() {
    let d = dir("ctrl-c");
    let out = d.join("out");
    let (code, err) = common::interrupt_when(
        &[
            "train",
            "problems/lotka_volterra.toml",
            "--method",
            "vanilla",
            "--out",
            out.to_str().unwrap(),
        ],
        |line| line.contains("train ["),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let s = summary(&out);
    assert!(
        s["status"]
            .as_str()
            .unwrap()
            .contains("stopped by the user"),
        "{s}"
    );
    assert!(s["epochs"].as_u64().unwrap() < 4000, "{s}");
    for f in ["model.json", "curve.csv", "prediction.csv", "fit.svg"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
}

#[test]
fn polyweight_and_structured_models_train_and_save() {
    let d = dir("structures");
    let path = problem_file(&d, "small.toml", SMALL);
    let p = path.to_str().unwrap();
    // Time-dependent weights: Legendre degree 3 by default, or as asked.
    for (args, basis) in [
        (vec!["--method", "polyweight"], "legendre:3"),
        (vec!["--time-basis", "monomial:2"], "monomial:2"),
    ] {
        let out = d.join(basis.replace(':', "-"));
        let mut all = vec![
            "train",
            p,
            "-q",
            "--epochs",
            "20",
            "--out",
            out.to_str().unwrap(),
        ];
        all.extend(args);
        let (code, stdout, err) = colloc(&all);
        assert_eq!(code, Some(0), "{stdout}\n{err}");
        let s = summary(&out);
        assert_eq!(s["time_basis"], basis);
        let model = colloc_models::Mlp::load(&out.join("model.json")).unwrap();
        let copies = 1 + basis[basis.len() - 1..].parse::<usize>().unwrap();
        assert_eq!(model.n_params(), copies * model.weights_per_copy());
        assert!(model.time_basis.is_some());
        // `colloc solve` refuses it as a start, with a reason.
        let (code, _, err) = colloc(&[
            "solve",
            p,
            "-q",
            "--init",
            out.join("model.json").to_str().unwrap(),
            "--out",
            d.join("solve").to_str().unwrap(),
        ]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("time-dependent weights"), "{err}");
    }
    // Gray box: the Lotka–Volterra known rates as a linear term.
    let gray = SMALL.replace(
        "activation = \"gelu\"",
        "activation = \"gelu\"\nstructure = \"gray-box\"\nknown_linear = [[1.3, 0.0], [0.0, -1.8]]",
    );
    let f = problem_file(&d, "gray.toml", gray);
    let out = d.join("gray");
    let (code, stdout, err) = colloc(&[
        "train",
        f.to_str().unwrap(),
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stdout}\n{err}");
    assert_eq!(summary(&out)["structure"], "gray-box");
    let model = colloc_models::Mlp::load(&out.join("model.json")).unwrap();
    assert_eq!(model.structure.name(), "gray-box");
    // `colloc solve` trains the same gray box by collocation, and starts from the trained one.
    for (name, extra) in [("s2", vec![]), ("s3", vec!["--init", "MODEL"])] {
        let model_path = out.join("model.json");
        let mut args = vec!["solve", f.to_str().unwrap(), "-q", "--out"];
        let dir = d.join(name);
        args.push(dir.to_str().unwrap());
        args.extend(extra.iter().map(|a| {
            if *a == "MODEL" {
                model_path.to_str().unwrap()
            } else {
                a
            }
        }));
        let (code, stdout, err) = colloc(&args);
        assert_eq!(code, Some(0), "{name}: {stdout}\n{err}");
        let solved = colloc_models::Mlp::load(&dir.join("model.json")).unwrap();
        assert_eq!(solved.structure.name(), "gray-box");
        assert!(summary(&dir)["train_mse"].as_f64().unwrap() < 0.5);
    }
    // Bad structure settings name the field.
    for (bad, needle) in [
        ("structure = \"grey\"", "model.structure"),
        ("structure = \"gray-box\"", "model.known_linear"),
        (
            "structure = \"gray-box\"\nknown_linear = [[1.0]]",
            "model.known_linear",
        ),
        ("structure = \"second-order\"", "model.layers"),
    ] {
        let text = SMALL.replace(
            "activation = \"gelu\"",
            &format!("activation = \"gelu\"\n{bad}"),
        );
        let f = problem_file(&d, "bad.toml", text);
        let (code, _, err) = colloc(&["train", f.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{bad}: {err}");
        assert!(err.contains(needle), "{bad}: {err}");
    }
    let (code, _, err) = colloc(&["train", p, "--time-basis", "chebyshev:3"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("legendre, monomial"), "{err}");
}

/// `[model] normalize = true`: `colloc solve` saves the network with its standardized
/// coordinates, `colloc train --init` continues in them, and `colloc admm` trains in them.
#[test]
fn normalized_models_carry_their_coordinates_from_solve_to_train() {
    let d = dir("normalized");
    let path = d.join("small.toml");
    let text = SMALL.replace(
        "activation = \"gelu\"",
        "activation = \"gelu\"\nnormalize = true",
    );
    std::fs::write(&path, &text).unwrap();
    let solved = d.join("solve");
    let (code, stdout, err) = colloc(&[
        "solve",
        path.to_str().unwrap(),
        "-q",
        "--out",
        solved.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stdout}\n{err}");
    let s = summary(&solved);
    let scales = s["normalization"]["state_scale"].as_array().unwrap();
    assert_eq!(scales.len(), 2);
    let model = colloc_models::Mlp::load(&solved.join("model.json")).unwrap();
    assert_eq!(
        model.normalization.as_ref().unwrap().state_scale[0],
        scales[0].as_f64().unwrap()
    );
    assert!(s["train_mse"].as_f64().unwrap() < 0.5, "{s}");
    for method in ["vanilla", "homotopy"] {
        let out = d.join(method);
        let (code, stdout, err) = colloc(&[
            "train",
            path.to_str().unwrap(),
            "-q",
            "--method",
            method,
            "--init",
            solved.join("model.json").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(0), "{method}: {stdout}\n{err}");
        let t = summary(&out);
        assert_eq!(t["normalization"], s["normalization"], "{method}");
        assert!(t["train_mse"].as_f64().unwrap().is_finite(), "{t}");
    }
    // ADMM: the batches in the standardized coordinates of the whole training window, the
    // consensus model saved with them and scored in the data's units.
    let admm = problem_file(
        &d,
        "admm.toml",
        format!("{text}\n[admm]\nwindows = [[0.0, 1.5], [1.5, 3.0]]\nrho = 10.0\nmax_iter = 3\n"),
    );
    let admm_out = d.join("admm");
    let (code, _, err) = colloc(&[
        "admm",
        admm.to_str().unwrap(),
        "-q",
        "--out",
        admm_out.to_str().unwrap(),
    ]);
    assert!(code == Some(0) || code == Some(1), "{err}");
    let a = summary(&admm_out);
    assert_eq!(a["normalization"], s["normalization"]);
    assert!(a["train_mse"].as_f64().unwrap() < 1.0, "{a}");
    let consensus = colloc_models::Mlp::load(&admm_out.join("model.json")).unwrap();
    assert!(consensus.normalization.is_some());
}

/// `[solver] normalize = true` under a `[model]` in the data's units: the collocation
/// trainers (`solve`, `admm`) work in standardized coordinates, `train` in the data's own,
/// and `--normalize` replaces both.
#[test]
fn solver_normalize_standardizes_the_collocation_trainers_only() {
    let d = dir("solver-normalize");
    let text = format!("{SMALL}\n[solver]\nnormalize = true\n");
    let path = problem_file(&d, "small.toml", text.clone());
    let admm_path = problem_file(
        &d,
        "admm.toml",
        format!("{text}\n[admm]\nwindows = [[0.0, 1.5], [1.5, 3.0]]\nrho = 10.0\nmax_iter = 2\n"),
    );
    let run = |command: &str, file: &std::path::Path, name: &str, extra: &[&str]| {
        let out = d.join(name);
        let mut args = vec![command, file.to_str().unwrap(), "-q", "--out"];
        args.push(out.to_str().unwrap());
        args.extend(extra);
        let (code, stdout, err) = colloc(&args);
        assert!(
            code == Some(0) || code == Some(1),
            "{name}: {stdout}\n{err}"
        );
        let model = colloc_models::Mlp::load(&out.join("model.json")).unwrap();
        (summary(&out), model.normalization.is_some())
    };
    let (solved, normalized) = run("solve", &path, "solve", &[]);
    assert!(normalized, "{solved}");
    assert!(
        solved["normalization"]["state_scale"].is_array(),
        "{solved}"
    );
    assert!(run("admm", &admm_path, "admm", &[]).1);
    let (trained, normalized) = run("train", &path, "train", &["--epochs", "3"]);
    assert!(
        !normalized && trained["normalization"].is_null(),
        "{trained}"
    );
    let (plain, normalized) = run("solve", &path, "plain", &["--normalize", "false"]);
    assert!(!normalized && plain["normalization"].is_null(), "{plain}");
    let (_, normalized) = run(
        "train",
        &path,
        "train-std",
        &["--epochs", "3", "--normalize", "true"],
    );
    assert!(normalized);
}

#[test]
fn sweep_selects_the_lowest_training_mse_and_reproduces_a_plain_run() {
    let d = dir("sweep");
    let path = d.join("small.toml");
    let text = format!(
        "{SMALL}\n[sequential.sweep]\nhomotopy_learning_rate = [0.005, 0.02]\nhomotopy_coupling = [1.0, 3.0]\n"
    );
    std::fs::write(&path, text).unwrap();
    let p = path.to_str().unwrap();
    let out = d.join("swept");
    let (code, stdout, err) = colloc(&[
        "train",
        p,
        "--method",
        "homotopy",
        "--sweep",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stdout}\n{err}");
    assert!(err.contains("sweep   4/4"), "{err}");
    // sweep.csv: the 2 × 2 grid, the last list varying fastest, one row selected — the one
    // with the lowest training MSE.
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "homotopy_learning_rate,homotopy_coupling,train_mse,test_mse,best_epoch,epochs,train_s,selected"
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!((rows[1][0].as_str(), rows[1][1].as_str()), ("0.005", "3"));
    let mse: Vec<f64> = rows.iter().map(|r| r[2].parse().unwrap()).collect();
    let lowest = (0..4).min_by(|&a, &b| mse[a].total_cmp(&mse[b])).unwrap();
    let selected: Vec<usize> = (0..4).filter(|&k| rows[k][7] == "true").collect();
    assert_eq!(selected, vec![lowest], "{csv}");
    // The grid's MSEs differ (the settings reached the trainer).
    assert!(mse.iter().any(|&m| m != mse[0]), "{csv}");
    let s = summary(&out);
    assert_eq!(s["sweep"]["trials"], 4);
    assert_eq!(s["sweep"]["complete"], true);
    let lr: f64 = rows[lowest][0].parse().unwrap();
    let k: f64 = rows[lowest][1].parse().unwrap();
    assert_eq!(s["sweep"]["selected"]["homotopy_learning_rate"], lr);
    assert_eq!(s["sweep"]["selected"]["homotopy_coupling"], k);
    assert_eq!(s["train_mse"].as_f64().unwrap(), mse[lowest]);
    // The selected values written into the file train the same model without a sweep.
    let plain = std::fs::read_to_string(&path).unwrap().replace(
        "[sequential.homotopy]\n",
        &format!("[sequential.homotopy]\nlearning_rate = {lr}\ncoupling = {k}\n"),
    );
    let plain_path = problem_file(&d, "plain.toml", plain);
    let again = d.join("plain");
    let (code, stdout, err) = colloc(&[
        "train",
        plain_path.to_str().unwrap(),
        "--method",
        "homotopy",
        "-q",
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stdout}\n{err}");
    assert_eq!(
        std::fs::read_to_string(again.join("model.json")).unwrap(),
        std::fs::read_to_string(out.join("model.json")).unwrap()
    );
    assert!(summary(&again).get("sweep").is_none());
    // Nothing to sweep for shooting, and a bad value in a list: clear errors, exit code 2.
    let (code, _, err) = colloc(&["train", p, "--method", "shooting", "--sweep"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("small.toml") && err.contains("no list for the shooting method"),
        "{err}"
    );
    let bad = problem_file(
        &d,
        "bad.toml",
        std::fs::read_to_string(&path).unwrap().replace(
            "homotopy_coupling = [1.0, 3.0]",
            "homotopy_coupling = [1.0, -3.0]",
        ),
    );
    let (code, _, err) = colloc(&["train", bad.to_str().unwrap(), "--sweep"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("bad.toml") && err.contains("sequential.sweep.homotopy_coupling"),
        "{err}"
    );
}

/// Homotopy's numbers do not depend on the BLAS: its smoothing spline is solved in Rust, so
/// one or two OpenBLAS threads and other CPU kernels give the same model bits. (With LAPACK's
/// dense Cholesky for the spline, this case gave other models with two threads.)
#[test]
fn homotopy_is_the_same_bits_whatever_the_blas_threads_or_kernels() {
    let d = dir("blas");
    let path = d.join("dense.toml");
    // 400 observations: a spline system large enough for OpenBLAS to split its work.
    std::fs::write(
        &path,
        SMALL.replace("points = 31", "points = 400").replace(
            "steps = 3\nepochs_per_step = 20",
            "steps = 2\nepochs_per_step = 3",
        ),
    )
    .unwrap();
    let run = |name: &str, env: &[(&str, &str)]| {
        let out = d.join(name);
        let o = Command::new(env!("CARGO_BIN_EXE_colloc"))
            .args([
                "train",
                path.to_str().unwrap(),
                "-q",
                "--method",
                "homotopy",
            ])
            .arg("--out")
            .arg(&out)
            .env_remove("OPENBLAS_NUM_THREADS")
            .env_remove("OPENBLAS_CORETYPE")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(out.join("model.json")).unwrap()
    };
    let one = run("one", &[("OPENBLAS_NUM_THREADS", "1")]);
    assert_eq!(one, run("two", &[("OPENBLAS_NUM_THREADS", "2")]));
    assert_eq!(
        one,
        run(
            "haswell",
            &[
                ("OPENBLAS_NUM_THREADS", "2"),
                ("OPENBLAS_CORETYPE", "Haswell")
            ]
        )
    );
}

/// `start_state` of a summary.
fn start_state(summary: &serde_json::Value) -> Vec<f64> {
    summary["start_state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// The first `sim` values of `prediction.csv` (the simulation's start) and the first
/// observation of `data.csv`.
fn first_simulated_and_observed(out: &std::path::Path) -> (Vec<f64>, Vec<f64>) {
    let row = |file: &str, from: usize| -> Vec<f64> {
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        let line = text.lines().nth(1).unwrap().to_string();
        line.split(',')
            .skip(from)
            .take(2)
            .map(|v| v.parse().unwrap())
            .collect()
    };
    (row("prediction.csv", 2), row("data.csv", 1))
}

#[test]
fn a_learned_initial_state_is_trained_reported_and_simulated_from() {
    let d = dir("learned-start");
    let path = problem_file(
        &d,
        "small.toml",
        SMALL.replace(
            "[sequential]\n",
            "[sequential]\nlearn_initial_state = true\n",
        ),
    );
    for method in ["vanilla", "homotopy", "shooting"] {
        let out = d.join(method);
        let (code, stdout, err) = colloc(&[
            "train",
            path.to_str().unwrap(),
            "-q",
            "--method",
            method,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(0), "{method}: {stdout}\n{err}");
        assert!(stdout.contains("(learned)"), "{stdout}");
        let s = summary(&out);
        assert_eq!(s["learn_initial_state"], true);
        let start = start_state(&s);
        let (simulated, observed) = first_simulated_and_observed(&out);
        assert_eq!(simulated, start, "{method}");
        assert_ne!(start, observed, "{method}: the start did not move");
        // Scored from the learned start: the reported train MSE is the learning curve's best.
        let curve = std::fs::read_to_string(out.join("curve.csv")).unwrap();
        let best = curve
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(2).unwrap().parse::<f64>().unwrap())
            .fold(f64::INFINITY, f64::min);
        let train = s["train_mse"].as_f64().unwrap();
        assert!(
            (train - best).abs() < 1e-6 * best,
            "{method}: {train} vs {best}"
        );
        // `colloc predict --run` starts there too: its MSE over the 31 + 10 points is the
        // count-weighted mean of the run's.
        let (code, _, err) = colloc(&["predict", "--run", out.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{err}");
        let mse = common::predicted_mse(&err);
        let expected = (31.0 * train + 10.0 * s["test_mse"].as_f64().unwrap()) / 41.0;
        assert!(
            (mse - expected).abs() <= 1e-4 * expected,
            "{mse} vs {expected}"
        );
    }
    // Without it (the flag off, the file's setting removed), the start is the observation.
    std::fs::write(&path, SMALL).unwrap();
    let plain = d.join("plain");
    let (code, _, err) = colloc(&[
        "train",
        path.to_str().unwrap(),
        "-q",
        "--out",
        plain.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (simulated, observed) = first_simulated_and_observed(&plain);
    assert_eq!(simulated, observed);
    assert_eq!(summary(&plain)["learn_initial_state"], false);
    // A given start (--start) is the start; a start of the wrong size is refused.
    let given = d.join("given");
    let (code, _, err) = colloc(&[
        "train",
        path.to_str().unwrap(),
        "-q",
        "--start=0.5,-4.25",
        "--out",
        given.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(first_simulated_and_observed(&given).0, vec![0.5, -4.25]);
    let (code, _, err) = colloc(&[
        "train",
        path.to_str().unwrap(),
        "-q",
        "--start",
        "0.5",
        "--out",
        given.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--start") && err.contains("2 states"), "{err}");
    // Standardized coordinates: the flag, and the start given back in the data's units.
    let normalized = problem_file(
        &d,
        "normalized.toml",
        SMALL.replace(
            "activation = \"gelu\"",
            "activation = \"gelu\"\nnormalize = true",
        ),
    );
    let out = d.join("normalized");
    let (code, stdout, err) = colloc(&[
        "train",
        normalized.to_str().unwrap(),
        "-q",
        "--learn-initial-state",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stdout}\n{err}");
    let s = summary(&out);
    let (simulated, observed) = first_simulated_and_observed(&out);
    let start = start_state(&s);
    assert_eq!(simulated, start);
    // Within a few noise levels of the observation (5 % of the state means), not in
    // standardized units.
    for (s, o) in start.iter().zip(&observed) {
        assert!(
            (s - o).abs() < 0.5 * o.abs().max(1.0),
            "{start:?} vs {observed:?}"
        );
    }
}

#[test]
fn a_huge_epoch_budget_runs_until_the_time_limit() {
    // The budget is the user's: nothing is allocated for it up front (this aborted with an
    // allocation failure once).
    let d = dir("huge-budget");
    let path = problem_file(
        &d,
        "small.toml",
        SMALL.replace("steps = 3\n", "steps = 100000000000\n"),
    );
    for method in ["vanilla", "homotopy"] {
        let out = d.join(method);
        let (code, stdout, err) = colloc(&[
            "train",
            path.to_str().unwrap(),
            "-q",
            "--method",
            method,
            "--epochs",
            "100000000000",
            "--time-limit",
            "0.5",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(0), "{method}: {stdout}\n{err}");
        assert!(stdout.contains("time limit"), "{method}: {stdout}");
    }
}
