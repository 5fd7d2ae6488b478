//! Bad input to `colloc solve`: every case exits 2 with a message naming the file and the
//! line or field, and never panics.

mod common;

use std::path::Path;
use std::process::Command;

const GOOD: &str = r#"
name = "tiny"
seed = 3

[data]
system = "vanderpol"
initial_state = [0.0, 1.0]
noise = 0.05

[train]
t1 = 4.0
points = 24
sampling = "chebyshev"

[test]
t1 = 6.0
points = 10

[collocation]
points = 24

[model]
layers = [2, 4, 2]
activation = "tanh"

[bounds]
parameters = 100.0

[solver.ipopt]
tol = 1e-6
"#;

fn dir(name: &str) -> common::TempDir {
    common::TempDir::new(&format!("bad-input-{name}"))
}

fn solve(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_colloc"))
        .arg("solve")
        .args(args)
        .arg("--quiet")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn solve_text(name: &str, toml: &str) -> (Option<i32>, String) {
    let d = dir(name);
    let path = d.join("problem.toml");
    std::fs::write(&path, toml).unwrap();
    let (code, _, err) = solve(&[
        path.to_str().unwrap(),
        "--out",
        d.join("out").to_str().unwrap(),
    ]);
    (code, err)
}

fn expect_input_error(name: &str, toml: &str, needles: &[&str]) {
    let (code, err) = solve_text(name, toml);
    assert_eq!(code, Some(2), "{name}: exit code, stderr: {err}");
    assert!(!err.contains("panicked"), "{name}: {err}");
    assert!(
        err.contains("problem.toml"),
        "{name}: message does not name the file: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "{name}: `{n}` missing from: {err}");
    }
}

#[test]
fn malformed_toml_names_file_and_line() {
    expect_input_error(
        "syntax",
        &GOOD.replace("noise = 0.05", "noise = = 0.05"),
        &["line 8"],
    );
    expect_input_error(
        "type",
        &GOOD.replace("points = 24\nsampling", "points = \"many\"\nsampling"),
        &["line 12", "invalid type"],
    );
    expect_input_error(
        "unknown-field",
        &GOOD.replace("noise = 0.05", "noise = 0.05\nnoize = 1.0"),
        &["unknown field `noize`"],
    );
}

#[test]
fn unknown_names_list_the_valid_ones() {
    expect_input_error(
        "system",
        &GOOD.replace("\"vanderpol\"", "\"duffing\""),
        &["data.system", "valid: vanderpol, lotka-volterra, lorenz"],
    );
    expect_input_error(
        "activation",
        &GOOD.replace("\"tanh\"", "\"swish\""),
        &[
            "model.activation",
            "valid: tanh, sigmoid, softplus, gelu, relu, identity",
        ],
    );
    expect_input_error(
        "relu",
        &GOOD.replace("\"tanh\"", "\"relu\""),
        &["not twice differentiable"],
    );
    expect_input_error(
        "nodes",
        &GOOD.replace(
            "[collocation]\npoints = 24",
            "[collocation]\npoints = 24\nnodes = \"gauss\"",
        ),
        &["unknown variant `gauss`", "chebyshev", "radau"],
    );
    expect_input_error(
        "parameter",
        &GOOD.replace(
            "initial_state",
            "parameters = { mu = 1.0, nu = 2.0 }\ninitial_state",
        ),
        &["unknown parameter `nu`", "valid: mu, a, omega"],
    );
    expect_input_error(
        "linear-solver",
        &GOOD.replace("tol = 1e-6", "tol = 1e-6\nlinear_solver = \"ma28\""),
        &[
            "solver.ipopt",
            "unknown linear solver \"ma28\"",
            "valid: auto, dense, blocks, mumps",
            "ma27, ma57",
        ],
    );
}

/// IPOPT's HSL solvers are valid names but Debian's Ipopt cannot load them: the run fails
/// (exit 1) saying so and naming the solvers that work, instead of IPOPT's bare
/// "invalid option".
#[test]
fn a_linear_solver_ipopt_cannot_load_is_named() {
    let (code, err) = solve_text(
        "ma57",
        &GOOD.replace("tol = 1e-6", "tol = 1e-6\nlinear_solver = \"ma57\""),
    );
    if code == Some(0) {
        return; // this machine's IPOPT found an HSL library
    }
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("IPOPT could not use linear_solver = \"ma57\"")
            && err.contains("use one of auto, dense, blocks, mumps"),
        "{err}"
    );
}

#[test]
fn invalid_values_name_the_field() {
    expect_input_error(
        "layers",
        &GOOD.replace("[2, 4, 2]", "[3, 4, 2]"),
        &["model.layers", "must start with 2"],
    );
    expect_input_error(
        "window",
        &GOOD.replace("t1 = 4.0", "t1 = -1.0"),
        &["train.t1"],
    );
    expect_input_error(
        "start-time",
        &GOOD.replace("[train]", "[train]\nt0 = nan"),
        &["train.t0", "finite"],
    );
    expect_input_error(
        "no-test-points",
        &GOOD.replace("t1 = 6.0\npoints = 10", "t1 = 6.0\npoints = 0"),
        &["test.points", "need 1 to"],
    );
    expect_input_error(
        "noise-twice",
        &GOOD.replace("noise = 0.05", "noise = 0.05\nnoise_relative = 0.05"),
        &["data.noise_relative", "not both"],
    );
    expect_input_error(
        "lambda",
        &GOOD.replace("[bounds]", "[loss]\nlambda = -1.0\n[bounds]"),
        &["loss.lambda"],
    );
    expect_input_error(
        "ipopt",
        &GOOD.replace("tol = 1e-6", "tol = 0.0"),
        &["solver.ipopt", "tol"],
    );
    expect_input_error(
        "penalties-order",
        &GOOD.replace(
            "[solver.ipopt]",
            "[solver]\ndefect_penalties = [1e4, 1e2]\n[solver.ipopt]",
        ),
        &["solver.defect_penalties", "increase"],
    );
    expect_input_error(
        "penalties-sign",
        &GOOD.replace(
            "[solver.ipopt]",
            "[solver]\ndefect_penalties = [-1.0]\n[solver.ipopt]",
        ),
        &["solver.defect_penalties", "positive"],
    );
    expect_input_error(
        "parameter-scaling",
        &GOOD.replace(
            "[solver.ipopt]",
            "[solver]\nparameter_scaling = 0.0\n[solver.ipopt]",
        ),
        &["solver.parameter_scaling", "positive"],
    );
    expect_input_error(
        "smoothing-factor",
        &GOOD.replace(
            "[solver.ipopt]",
            "[solver]\nsmoothing = -1.0\n[solver.ipopt]",
        ),
        &["solver.smoothing", "positive"],
    );
    expect_input_error(
        "smoothing-name",
        &GOOD.replace(
            "[solver.ipopt]",
            "[solver]\nsmoothing = \"gcv\"\n[solver.ipopt]",
        ),
        &["smoothing"],
    );
    expect_input_error(
        "normalize-state-bounds",
        &GOOD
            .replace(
                "activation = \"tanh\"",
                "activation = \"tanh\"\nnormalize = true",
            )
            .replace("parameters = 100.0", "parameters = 100.0\nstates = 10.0"),
        &["bounds.states", "normalize"],
    );
    expect_input_error(
        "solver-normalize-state-bounds",
        &GOOD
            .replace(
                "[solver.ipopt]",
                "[solver]\nnormalize = true\n[solver.ipopt]",
            )
            .replace("parameters = 100.0", "parameters = 100.0\nstates = 10.0"),
        &["bounds.states", "solver.normalize = true"],
    );
    expect_input_error(
        "time-scale-alone",
        &GOOD.replace(
            "activation = \"tanh\"",
            "activation = \"tanh\"\ntime_scale = 0.5",
        ),
        &["model.time_scale", "normalize"],
    );
    expect_input_error(
        "time-scale-sign",
        &GOOD.replace(
            "activation = \"tanh\"",
            "activation = \"tanh\"\nnormalize = true\ntime_scale = -0.5",
        ),
        &["model.time_scale", "positive"],
    );
    expect_input_error(
        "refinement-max",
        &GOOD.replace(
            "points = 24\n\n[model]",
            "points = 24\n[collocation.refinement]\nmax_points = 40\n\n[model]",
        ),
        &["collocation.refinement.max_points", "24 → 48"],
    );
    expect_input_error(
        "refinement-defect",
        &GOOD.replace(
            "points = 24\n\n[model]",
            "points = 24\n[collocation.refinement]\nmax_points = 96\ndefect = 0.0\n\n[model]",
        ),
        &["collocation.refinement.defect", "positive"],
    );
    expect_input_error(
        "refinement-start",
        &GOOD.replace(
            "points = 24\n\n[model]",
            "points = 24\n[collocation.refinement]\nmax_points = 96\nstart = \"coarse\"\n\n[model]",
        ),
        &["start", "data", "solution"],
    );
    // Sizes that could only end in an allocation failure are refused up front.
    expect_input_error(
        "huge-layer",
        &GOOD.replace("[2, 4, 2]", "[2, 100000000000, 2]"),
        &["model.layers", "too many", "at most 10000000"],
    );
    expect_input_error(
        "huge-train",
        &GOOD.replace("points = 24\nsampling", "points = 100000000000\nsampling"),
        &["train.points", "need 3 to 10000000"],
    );
    expect_input_error(
        "huge-test",
        &GOOD.replace("points = 10\n", "points = 100000000000\n"),
        &["test.points", "need 1 to 10000000"],
    );
    expect_input_error(
        "huge-elements",
        &GOOD.replace(
            "[collocation]\npoints = 24",
            "[collocation]\nelements = 100000000000\npoints_per_element = 4",
        ),
        &["collocation.elements", "too many"],
    );
    expect_input_error(
        "both-sources",
        &GOOD.replace("noise = 0.05", "noise = 0.05\ncsv = \"x.csv\""),
        &["exactly one data source"],
    );
}

fn csv_problem(name: &str, csv: &str) -> (Option<i32>, String) {
    let d = dir(name);
    std::fs::write(d.join("data.csv"), csv).unwrap();
    let toml = GOOD
        .replace(
            "system = \"vanderpol\"\ninitial_state = [0.0, 1.0]\nnoise = 0.05",
            "csv = \"data.csv\"",
        )
        .replace("points = 24\nsampling = \"chebyshev\"", "")
        .replace("t1 = 6.0\npoints = 10", "t1 = 6.0");
    let path = d.join("problem.toml");
    std::fs::write(&path, toml).unwrap();
    let (code, _, err) = solve(&[
        path.to_str().unwrap(),
        "--out",
        d.join("out").to_str().unwrap(),
    ]);
    (code, err)
}

#[test]
fn bad_csv_rows_name_the_line() {
    let good_rows: String = (0..30)
        .map(|k| {
            format!(
                "{},{},{}\n",
                k as f64 * 0.2,
                (k as f64 * 0.2).sin(),
                (k as f64 * 0.2).cos()
            )
        })
        .collect();
    for (name, csv, needles) in [
        (
            "nan",
            format!("t,u,v\n{good_rows}6.2,NaN,1.0\n"),
            vec!["data.csv: line 32", "NaN"],
        ),
        (
            "order",
            "t,u,v\n0.0,1,2\n0.5,1,2\n0.4,1,2\n".to_string(),
            vec!["line 4", "does not increase"],
        ),
        (
            "ragged",
            "t,u,v\n0.0,1,2\n0.5,1\n".to_string(),
            vec!["line 3", "2 fields, but earlier rows have 3"],
        ),
        (
            "text",
            "t,u,v\n0.0,1,2\n0.5,one,2\n".to_string(),
            vec!["line 3", "`one` is not a number"],
        ),
        (
            "header-only",
            "t,u,v\n".to_string(),
            vec!["data.csv: line 1", "no data rows"],
        ),
        (
            "semicolons",
            "t;u;v\n0.0;1;2\n".to_string(),
            vec!["line 2", "separated by commas"],
        ),
        (
            "spaces",
            "t u v\n0.0 1 2\n".to_string(),
            vec![
                "line 2",
                "`0.0 1 2` is not a number (fields are separated by commas)",
            ],
        ),
        (
            "few",
            "t,u,v\n0.0,1,2\n0.5,1,2\n".to_string(),
            vec!["training window holds 2 observation(s)"],
        ),
        (
            "no-test-rows",
            format!(
                "t,u,v\n{}",
                good_rows.lines().take(20).collect::<Vec<_>>().join("\n")
            ),
            vec![
                "test.t1",
                "no observation of",
                "lies in the test window (4, 6]",
            ],
        ),
    ] {
        let (code, err) = csv_problem(name, &csv);
        assert_eq!(code, Some(2), "{name}: {err}");
        for n in needles {
            assert!(err.contains(n), "{name}: `{n}` missing from: {err}");
        }
    }
    // The good file works.
    let (code, err) = csv_problem("good", &format!("t,u,v\n{good_rows}"));
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn model_json_that_does_not_fit_is_refused() {
    let d = dir("init");
    let model =
        colloc_models::Mlp::xavier(&[3, 4, 2], colloc_models::Activation::Tanh, true, 0).unwrap();
    let mpath = d.join("model.json");
    model.save(&mpath).unwrap();
    std::fs::write(d.join("problem.toml"), GOOD).unwrap();
    let (code, _, err) = solve(&[
        d.join("problem.toml").to_str().unwrap(),
        "--init",
        mpath.to_str().unwrap(),
        "--out",
        d.join("out").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("model takes 3 inputs (2 states + time)")
            && err.contains("2 states without time"),
        "{err}"
    );
    std::fs::write(&mpath, "{ not json").unwrap();
    let (code, _, err) = solve(&[
        d.join("problem.toml").to_str().unwrap(),
        "--init",
        mpath.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("model.json: line 1"), "{err}");
    // The location is named once, not again at the end of serde_json's message.
    assert!(!err.contains(" at line "), "{err}");
    assert!(!err.contains("a model file is"), "{err}");
    // A problem file given where a model belongs: the message says what a model file is.
    let (code, _, err) = solve(&[
        d.join("problem.toml").to_str().unwrap(),
        "--init",
        d.join("problem.toml").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("problem.toml: line ")
            && err.contains("a model file is the JSON `model.json` that `colloc solve`"),
        "{err}"
    );
    // A normalization that does not fit the model's states, or with a zero scale.
    let good =
        colloc_models::Mlp::xavier(&[2, 4, 2], colloc_models::Activation::Tanh, false, 0).unwrap();
    let normalized = good.to_json().replace(
        "\"params\"",
        "\"normalization\": {\"state_shift\": [0.0, 0.0, 0.0], \"state_scale\": [1.0, 1.0, 1.0], \
         \"time_shift\": 0.0, \"time_scale\": 1.0},\n  \"params\"",
    );
    for (case, text, needle) in [
        (
            "length",
            normalized.clone(),
            "3 shifts and 3 scales for 2 states",
        ),
        (
            "scale",
            normalized
                .replace("[0.0, 0.0, 0.0]", "[0.0, 0.0]")
                .replace("[1.0, 1.0, 1.0]", "[1.0, 0.0]"),
            "scales must be positive",
        ),
    ] {
        std::fs::write(&mpath, text).unwrap();
        let (code, _, err) = solve(&[
            d.join("problem.toml").to_str().unwrap(),
            "--init",
            mpath.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(2), "{case}: {err}");
        assert!(err.contains(needle), "{case}: {err}");
    }
}

#[test]
fn missing_files_and_bad_flags() {
    let (code, _, err) = solve(&["/nonexistent/problem.toml"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("/nonexistent/problem.toml"), "{err}");
    let (code, _, err) = solve(&["problems/vanderpol.toml", "--formulation", "sideways"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("unknown formulation `sideways` (valid: reduced, full)"),
        "{err}"
    );
    // An output folder that cannot be created fails at once, before the solve (whose results
    // would otherwise be lost).
    let d = dir("no-folder");
    let blocker = d.join("a-file");
    std::fs::write(&blocker, "not a folder").unwrap();
    let out = blocker.join("out");
    let (code, stdout, err) = solve(&["problems/vanderpol.toml", "--out", out.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot create the output folder"), "{err}");
    assert!(!stdout.contains("status"), "the solve ran: {stdout}");
}

#[test]
fn a_small_solve_writes_every_result_file() {
    let d = dir("solve");
    let path = d.join("tiny.toml");
    std::fs::write(&path, GOOD).unwrap();
    let out = d.join("out");
    for formulation in ["reduced", "full"] {
        let (code, stdout, err) = solve(&[
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--formulation",
            formulation,
        ]);
        assert_eq!(code, Some(0), "{formulation}: {stdout}\n{err}");
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap())
                .unwrap();
        common::assert_summary_keys(
            &summary,
            &[
                "collocation_defect_rms",
                "collocation_defect_max",
                "collocation_defect_relative",
                "simulation_excursion",
            ],
        );
        assert!(
            summary["collocation_defect_rms"].is_f64(),
            "{formulation}: {summary}"
        );
        assert!(summary["simulation_excursion"].is_null(), "{summary}");
        assert_eq!(summary["status"], "solve_succeeded");
        // Which linear solver factorized: the reduced formulation's KKT matrix (one global
        // trajectory) goes to the square-block solver, the full formulation's (one hidden
        // layer) to the Schur solver.
        let stats = &summary["ipopt_stats"];
        let used = if formulation == "reduced" {
            "square"
        } else {
            "schur"
        };
        assert_eq!(
            stats["kkt_solvers"][used], stats["kkt_factorizations"],
            "{formulation}: {stats}"
        );
        let line = if formulation == "reduced" {
            "; square block)"
        } else {
            "; Schur)"
        };
        assert!(stdout.contains(line), "{formulation}: {stdout}");
        assert!(summary["fit_mse"].as_f64().unwrap() < 0.01, "{summary}");
        let model = colloc_models::Mlp::load(&out.join("model.json")).unwrap();
        assert_eq!(model.layers, vec![2, 4, 2]);
        let data = std::fs::read_to_string(out.join("data.csv")).unwrap();
        assert_eq!(data.lines().count(), 1 + 24 + 10);
        assert!(
            data.lines().nth(1).unwrap().ends_with(",train") && data.trim_end().ends_with(",test")
        );
        assert!(std::fs::read_to_string(out.join("prediction.csv"))
            .unwrap()
            .starts_with("t,split,sim1,sim2,fit1,fit2,clean1,clean2"));
        assert!(
            std::fs::read_to_string(out.join("history.csv"))
                .unwrap()
                .lines()
                .count()
                > 2
        );
        assert!(std::fs::read_to_string(out.join("fit.svg"))
            .unwrap()
            .starts_with("<svg"));
    }
    assert!(!Path::new(&out).join(".summary.json.tmp").exists());
}

#[test]
fn ctrl_c_stops_the_solve_and_still_writes_results() {
    let d = dir("ctrl-c");
    let out = d.join("out");
    // Interrupt once IPOPT reports its third iteration (not after a fixed delay: the whole
    // solve takes only a few seconds).
    let start = std::time::Instant::now();
    let (code, err) = common::interrupt_when(
        &[
            "solve",
            "problems/vanderpol.toml",
            "--out",
            out.to_str().unwrap(),
        ],
        |line| line.trim_start().starts_with("3 "),
    );
    assert!(
        start.elapsed().as_secs() < 60,
        "the interrupt did not stop the solve"
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "user_requested_stop", "{summary}");
    for f in [
        "model.json",
        "data.csv",
        "prediction.csv",
        "history.csv",
        "fit.svg",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
}

/// ADMM windows that start before measured data do (the training window starts at the first
/// observation unless `train.t0` says otherwise) are refused with that reason; with `train.t0`
/// set they are accepted.
#[test]
fn admm_windows_before_the_first_measurement_name_train_t0() {
    let d = dir("admm-t0");
    let rows: String = (1..40)
        .map(|k| {
            let t = k as f64 * 0.1;
            format!("{t},{},{}\n", t.sin(), t.cos())
        })
        .collect();
    std::fs::write(d.join("data.csv"), format!("t,u,v\n{rows}")).unwrap();
    let admm = "\n[admm]\nwindows = [[0.0, 2.0], [2.0, 3.9]]\npoints = 12\nmax_iter = 2\n";
    let toml = |train: &str| {
        format!(
            "[data]\ncsv = \"data.csv\"\n[train]\n{train}t1 = 3.9\n[collocation]\npoints = 12\n\
             [model]\nlayers = [2, 4, 2]\n{admm}"
        )
    };
    let path = d.write("problem.toml", &toml(""));
    let err = colloc::problem::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("admm.windows") && err.contains("leaves the training window [0.1, 3.9]"),
        "{err}"
    );
    assert!(
        err.contains(
            "without train.t0 the training window starts at the first observation, t = 0.1"
        ),
        "{err}"
    );
    let path = d.write("problem.toml", &toml("t0 = 0.0\n"));
    assert!(colloc::problem::load(&path).is_ok());
    // A window past the end gets no such hint.
    let late = toml("")
        .replace("[2.0, 3.9]", "[2.0, 5.0]")
        .replace("[0.0, 2.0]", "[0.1, 2.0]");
    let path = d.write("problem.toml", &late);
    let err = colloc::problem::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("leaves the training window") && !err.contains("train.t0"),
        "{err}"
    );
}
