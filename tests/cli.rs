//! The `colloc` binary: version, help, and usage errors (exit code 2, message on stderr).

mod common;

use std::process::Command;

fn colloc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_colloc"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// `colloc admm problems/vanderpol-admm.toml -q --time-limit 0.5 --out OUT` with extra
/// environment variables.
fn admm_for_half_a_second(out: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_colloc"))
        .args([
            "admm",
            "problems/vanderpol-admm.toml",
            "-q",
            "--time-limit",
            "0.5",
            "--out",
        ])
        .arg(out)
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

/// Writes `text` as `dir/NAME.toml`, runs `colloc solve` on it into `dir/out-NAME` and returns
/// the exit code, stdout, stderr and the output folder.
fn solve_text(
    dir: &std::path::Path,
    name: &str,
    text: &str,
) -> (Option<i32>, String, String, std::path::PathBuf) {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    let out_dir = dir.join(format!("out-{name}"));
    let out = colloc(&[
        "solve",
        path.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--quiet",
    ]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out_dir,
    )
}

#[test]
fn version_and_help() {
    let out = colloc(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("colloc {}", env!("CARGO_PKG_VERSION"))
    );
    let out = colloc(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: colloc"));
}

#[test]
fn no_subcommand_is_a_usage_error_with_the_help() {
    // A script that forgot the subcommand must not pass for a successful run.
    let out = colloc(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Usage: colloc"), "{err}");
    assert!(err.contains("solve"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let out = colloc(&["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected argument '--bogus'"));
    assert!(out.stdout.is_empty());
}

#[test]
fn the_hs071_example_prints_only_its_own_lines() {
    // IPOPT must stay silent by default: the example's output is exactly its five lines.
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--release", "--example", "hs071"])
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert!(
        lines[1].starts_with("status:     solve_succeeded"),
        "{stdout}"
    );
    assert!(lines[2].starts_with("objective:  17.01401"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).trim().is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `colloc solve` reports the collocation defect between the nodes and warns when the grid is
/// too coarse for the learned dynamics: vanderpol-small's 200 observations fitted on 15
/// collocation points warn, on its own 200 points they do not.
#[test]
fn a_grid_too_coarse_for_the_learned_dynamics_is_reported() {
    let text = std::fs::read_to_string("problems/vanderpol-small.toml").unwrap();
    let dir = common::TempDir::new("defect");
    for (points, warns) in [(15, true), (200, false)] {
        let coarse = text.replace(
            "[collocation]\npoints = 200",
            &format!("[collocation]\npoints = {points}"),
        );
        assert!(coarse.contains(&format!("points = {points}\nnodes")));
        let (code, stdout, stderr, out_dir) = solve_text(&dir, &format!("p{points}"), &coarse);
        assert_eq!(code, Some(0), "{stdout}\n{stderr}");
        assert!(stdout.contains("collocation defect"), "{stdout}");
        assert_eq!(stderr.contains("grid is too coarse"), warns, "{stderr}");
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
                .unwrap();
        let relative = summary["collocation_defect_relative"].as_f64().unwrap();
        assert_eq!(relative >= 0.02, warns, "{points} points: {relative}");
        assert!(
            summary["collocation_defect_max"].as_f64().unwrap()
                >= summary["collocation_defect_rms"].as_f64().unwrap()
        );
    }
}

/// A pre-fit as `summary.json` reports it: its iterations within the limit, and Φ lowered.
fn check_prefit(prefit: &serde_json::Value) {
    let number = |key: &str| {
        prefit[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {prefit}"))
    };
    assert!(number("iterations") >= 1.0, "{prefit}");
    assert!(number("iterations") <= number("max_iterations"), "{prefit}");
    assert!(
        number("objective") < number("initial_objective"),
        "{prefit}"
    );
}

/// `[collocation.refinement]`: vanderpol-small on 15 collocation points is refined (15 → 30 →
/// 60 → 120 points) until the relative defect is below 2 %, each refined grid reported.
#[test]
fn a_coarse_grid_is_refined_until_the_defect_is_small() {
    let text = std::fs::read_to_string("problems/vanderpol-small.toml").unwrap();
    let coarse = text.replace(
        "[collocation]\npoints = 200\nnodes = \"chebyshev\"",
        "[collocation]\npoints = 15\nnodes = \"chebyshev\"\n[collocation.refinement]\nmax_points = 240",
    );
    assert!(coarse.contains("max_points = 240"));
    let dir = common::TempDir::new("refine");
    let (code, stdout, stderr, out_dir) = solve_text(&dir, "refine", &coarse);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(!stderr.contains("grid is too coarse"), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
            .unwrap();
    let rounds = summary["refinements"].as_array().unwrap();
    assert!(!rounds.is_empty(), "{stdout}");
    let mut points = 15;
    let mut iterations = 0;
    for round in rounds {
        assert_eq!(round["points"].as_u64().unwrap(), points);
        assert!(round["collocation_defect_relative"].as_f64().unwrap() > 0.02);
        assert!(
            stdout.contains(&format!("refinement         {points} points")),
            "{stdout}"
        );
        iterations += round["iterations"].as_u64().unwrap();
        check_prefit(&round["prefit"]);
        points *= 2;
    }
    // Every grid started, as the first did, from a pre-fit (the file's `prefit = true`).
    check_prefit(&summary["prefit"]);
    assert!(stdout.contains("pre-fit            "), "{stdout}");
    assert_eq!(summary["collocation_points"].as_u64().unwrap(), points);
    assert_eq!(summary["n_cons"].as_u64().unwrap(), 2 * points);
    assert!(summary["iterations"].as_u64().unwrap() > iterations);
    assert!(summary["collocation_defect_relative"].as_f64().unwrap() < 0.02);
    // The history continues across the grids.
    let history = std::fs::read_to_string(out_dir.join("history.csv")).unwrap();
    let numbers: Vec<u64> = history
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(numbers.windows(2).all(|w| w[1] > w[0]), "{history}");
    assert!(std::fs::read_to_string(out_dir.join("fit.svg"))
        .unwrap()
        .contains("<svg"));
}

/// `colloc predict` integrates a saved model. Along the run's own `data.csv`, from the fitted
/// state at t0, it is the simulation `colloc solve` scored: the MSE over train and test points
/// equals the count-weighted mean of the reported train_mse and test_mse. Bad requests exit 2
/// naming what is wrong; a CSV goes to stdout or, atomically, to `--out`.
#[test]
fn predict_reproduces_the_scores_of_a_solve_and_refuses_bad_requests() {
    let text = std::fs::read_to_string("problems/vanderpol-small.toml").unwrap();
    let dir = common::TempDir::new("predict");
    let (code, stdout, stderr, out_dir) = solve_text(&dir, "small", &text);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
            .unwrap();
    let (train, test) = (
        summary["train_mse"].as_f64().unwrap(),
        summary["test_mse"].as_f64().unwrap(),
    );
    let data = std::fs::read_to_string(out_dir.join("data.csv")).unwrap();
    let n_train = data.lines().filter(|l| l.ends_with(",train")).count() as f64;
    let n_test = data.lines().filter(|l| l.ends_with(",test")).count() as f64;
    // The fitted start: the simulation's first row in prediction.csv (t, split, sim1, sim2, …),
    // also `start_state` in summary.json.
    let prediction = std::fs::read_to_string(out_dir.join("prediction.csv")).unwrap();
    let first: Vec<&str> = prediction.lines().nth(1).unwrap().split(',').collect();
    let start: Vec<f64> = summary["start_state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let simulated: Vec<f64> = first[2..4].iter().map(|v| v.parse().unwrap()).collect();
    assert_eq!(start, simulated);
    let (t0, y0) = (first[0], format!("{},{}", first[2], first[3]));
    let model = out_dir.join("model.json");
    let (model, data_csv) = (model.to_str().unwrap(), out_dir.join("data.csv"));
    let out_csv = dir.join("predicted.csv");
    let out = colloc(&[
        "predict",
        model,
        "--data",
        data_csv.to_str().unwrap(),
        "--t0",
        t0,
        &format!("--y0={y0}"),
        "--out",
        out_csv.to_str().unwrap(),
    ]);
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{printed}");
    let mse = common::predicted_mse(&printed);
    let expected = (train * n_train + test * n_test) / (n_train + n_test);
    assert!(
        (mse - expected).abs() <= 1e-4 * expected,
        "{mse} vs {expected}"
    );
    let written = std::fs::read_to_string(&out_csv).unwrap();
    assert!(written.starts_with("t,y1,y2,obs1,obs2\n"));
    assert_eq!(written.lines().count() as f64, 1.0 + n_train + n_test);
    // The same in one flag: the run folder's model, data and start.
    let out = colloc(&["predict", "--run", out_dir.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), written);
    let out = colloc(&["predict", "--run", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("summary.json"));

    // From a state to a time: the CSV on stdout, 5 rows plus the header; the plot beside.
    let svg = dir.join("predicted.svg");
    let out = colloc(&[
        "predict",
        model,
        "--y0",
        "0,1",
        "--t1",
        "2",
        "--points",
        "5",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(csv.starts_with("t,y1,y2\n0,0,1\n"), "{csv}");
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.trim_end().ends_with("</svg>"));
    assert_eq!(plot.matches("<polyline").count(), 2, "one line per state");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning"),
        "constant weights: no window to leave"
    );

    // Time-dependent weights (fitted on [0, 15]): a warning beyond their window, none inside.
    let poly_dir = dir.join("polyweight");
    let out = colloc(&[
        "train",
        "problems/vanderpol-small.toml",
        "--method",
        "polyweight",
        "--epochs",
        "2",
        "--quiet",
        "--out",
        poly_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let poly_model = poly_dir.join("model.json");
    for (t1, warned) in [("10", false), ("30", true)] {
        let out = colloc(&[
            "predict",
            poly_model.to_str().unwrap(),
            "--y0",
            "0,1",
            "--t1",
            t1,
            "--points",
            "3",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert_eq!(
            stderr.contains("fitted on [0, 15]; beyond that window"),
            warned,
            "t1 = {t1}: {stderr}"
        );
    }

    for (args, message) in [
        (vec!["--y0", "0,1,2", "--t1", "2"], "the model has 2 states"),
        (vec!["--y0", "0,1"], "give --t1"),
        (vec!["--t1", "2"], "give --y0"),
        (vec!["--y0", "0,1", "--t1", "-1"], "need t1 > t0"),
        (vec!["--y0", "0,x", "--t1", "2"], "invalid value 'x'"),
        (
            vec![
                "--y0",
                "0,1",
                "--t1",
                "2",
                "--out",
                "/nonexistent-colloc/p.csv",
            ],
            "--out /nonexistent-colloc/p.csv: the folder /nonexistent-colloc does not exist",
        ),
        (
            vec![
                "--y0",
                "0,1",
                "--t1",
                "2",
                "--svg",
                "/nonexistent-colloc/p.svg",
            ],
            "the folder /nonexistent-colloc does not exist",
        ),
    ] {
        let mut full = vec!["predict", model];
        full.extend(args.iter().copied());
        let out = colloc(&full);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    // Measurements without rows, or with another number of states.
    for (name, csv, message) in [
        ("empty.csv", "t,y1,y2\n", "no data rows"),
        ("one.csv", "t,y1\n0,1\n1,2\n", "1 state columns"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, csv).unwrap();
        let out = colloc(&["predict", model, "--data", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(message), "{name}: {stderr}");
    }
    let out = colloc(&[
        "predict",
        "problems/vanderpol.toml",
        "--y0",
        "0,1",
        "--t1",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("problems/vanderpol.toml"));
}

/// `--seed` is the file's `seed`: `solve --seed 3` and `train --seed 3` on a file with
/// `seed = 0` write the same data and model as the file with `seed = 3`, and another seed
/// draws other data.
#[test]
fn the_seed_flag_replaces_the_file_seed() {
    let base = std::fs::read_to_string("problems/vanderpol-small.toml").unwrap();
    assert!(
        base.contains("\nseed = 0\n"),
        "vanderpol-small.toml changed its layout"
    );
    let dir = common::TempDir::new("seed");
    let file_0 = dir.join("seed0.toml");
    let file_3 = dir.join("seed3.toml");
    std::fs::write(&file_0, &base).unwrap();
    std::fs::write(&file_3, base.replace("\nseed = 0\n", "\nseed = 3\n")).unwrap();
    let read = |out: &std::path::Path, f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    for command in [vec!["solve"], vec!["train", "--epochs", "3"]] {
        let run = |file: &std::path::Path, name: &str, extra: &[&str]| {
            let out_dir = dir.join(format!("{}-{name}", command[0]));
            let mut args = command.clone();
            args.extend([
                file.to_str().unwrap(),
                "--out",
                out_dir.to_str().unwrap(),
                "-q",
            ]);
            args.extend(extra);
            let out = colloc(&args);
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out_dir
        };
        let flag = run(&file_0, "flag", &["--seed", "3"]);
        let file = run(&file_3, "file", &[]);
        let plain = run(&file_0, "plain", &[]);
        assert_eq!(
            read(&flag, "data.csv"),
            read(&file, "data.csv"),
            "{command:?}"
        );
        assert_eq!(
            read(&flag, "model.json"),
            read(&file, "model.json"),
            "{command:?}"
        );
        assert_ne!(
            read(&flag, "data.csv"),
            read(&plain, "data.csv"),
            "{command:?}"
        );
        let summary: serde_json::Value =
            serde_json::from_str(&read(&flag, "summary.json")).unwrap();
        assert_eq!(summary["seed"], 3, "{command:?}");
        // Beside the seed, what the numbers also depend on: version, CPU, BLAS kernels.
        let platform = &summary["platform"];
        assert_eq!(
            platform["colloc_version"],
            env!("CARGO_PKG_VERSION"),
            "{command:?}"
        );
        assert!(platform["threads"].as_u64().is_some_and(|t| t >= 1));
        assert!(platform.get("blas_core").is_some() && platform.get("cpu").is_some());
    }
    let out = colloc(&["solve", file_0.to_str().unwrap(), "--seed", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--seed"));
}

#[test]
fn a_time_limit_stops_solve_and_admm_with_their_results_written() {
    let dir = common::TempDir::new("time-limit");
    let solve_out = dir.join("solve");
    let out = colloc(&[
        "solve",
        "problems/vanderpol.toml",
        "-q",
        "--time-limit",
        "0.3",
        "--out",
        solve_out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("time limit (0.3 s) reached"), "{err}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(solve_out.join("summary.json")).unwrap())
            .unwrap();
    assert!(
        summary["status"]
            .as_str()
            .unwrap()
            .starts_with("time limit (0.3 s) reached (IPOPT: user_requested_stop"),
        "{summary}"
    );
    assert!(summary["iterations"].as_u64().unwrap() < 45, "{summary}");
    assert!(solve_out.join("model.json").exists());

    let admm_out = dir.join("admm");
    let out = admm_for_half_a_second(&admm_out, &[]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("time limit (0.5 s) reached after iteration"),
        "{err}"
    );
    assert!(admm_out.join("checkpoint.json").exists());
    assert!(admm_out.join("model.json").exists());

    for bad in ["0", "-1", "nan"] {
        let out = colloc(&[
            "solve",
            "problems/vanderpol.toml",
            &format!("--time-limit={bad}"),
        ]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("--time-limit"), "{err}");
    }
}

#[test]
fn the_normalize_flag_replaces_the_file_setting_with_its_checks() {
    let dir = common::TempDir::new("normalize");
    let out_dir = dir.join("standardized");
    let out = colloc(&[
        "solve",
        "problems/vanderpol-small.toml",
        "-q",
        "--normalize",
        "true",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
            .unwrap();
    assert!(
        summary["normalization"]["state_scale"].is_array(),
        "{summary}"
    );
    // The file's own checks hold for the flag: no state bounds in standardized coordinates.
    let text = std::fs::read_to_string("problems/vanderpol-small.toml")
        .unwrap()
        .replace("parameters = 100.0", "parameters = 100.0\nstates = 10.0");
    let bounded = dir.join("bounded.toml");
    std::fs::write(&bounded, text).unwrap();
    for command in ["solve", "train"] {
        let out = colloc(&[command, bounded.to_str().unwrap(), "--normalize=true"]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        assert!(
            err.contains("bounded.toml") && err.contains("bounds.states"),
            "{err}"
        );
    }
}

/// With a threaded BLAS chosen by the user, ADMM's sub-problems (solved on worker threads)
/// still run: threaded OpenBLAS 0.3.21's LU overflowed the workers' default 2 MB stacks
/// (SIGSEGV in 5 of 5 runs of this command before they were given 64 MB).
#[test]
fn admm_survives_a_threaded_blas() {
    let out_dir = common::TempDir::new("admm-blas");
    let out = admm_for_half_a_second(&out_dir, &[("OPENBLAS_NUM_THREADS", "2")]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{:?}: {err}", out.status);
    assert!(err.contains("time limit (0.5 s) reached"), "{err}");
    assert!(out_dir.join("model.json").exists());
}

/// Measurement rows outside the training (and test) window are named in a note on stderr, with
/// the `[test]` section that would score the later ones; a file whose rows are all used gets no
/// note.
#[test]
fn unused_measurement_rows_are_noted() {
    let dir = common::TempDir::new("unused-rows-cli");
    let rows: String = (0..40)
        .map(|k| {
            let t = k as f64 * 0.25;
            format!("{t},{},{}\n", t.cos(), -t.sin())
        })
        .collect();
    dir.write("m.csv", &format!("t,x,v\n{rows}"));
    let base = "[data]\ncsv = \"m.csv\"\n[collocation]\npoints = 20\n[model]\nlayers = [2, 4, 2]\n";
    for (name, train, note) in [
        (
            "part",
            "[train]\nt1 = 6.0\n",
            Some("m.csv: 15 rows (15 after train.t1 = 6) lie outside the training and test windows and are not used; a [test] section with t1 = 9.75 scores the model on the later ones"),
        ),
        ("all", "[train]\nt1 = 9.75\n", None),
    ] {
        let (code, stdout, stderr, _) = solve_text(&dir, name, &format!("{base}{train}"));
        assert_eq!(code, Some(0), "{stdout}\n{stderr}");
        match note {
            Some(note) => {
                let file = dir.join("m.csv");
                assert!(stderr.contains(&format!("note: {}", file.display())), "{stderr}");
                assert!(stderr.contains(note), "{stderr}");
            }
            None => assert!(!stderr.contains("note:"), "{stderr}"),
        }
    }
}
