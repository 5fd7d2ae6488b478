//! `colloc admm`: batches solved in parallel and driven to consensus; a failing sub-problem is
//! survived or stops the run cleanly (as configured); `--resume` continues from the
//! checkpoint and reproduces the uninterrupted run.

mod common;

use std::path::Path;
use std::process::Command;

/// Forced Van der Pol on [0, 12], a small network, four batches.
fn problem(max_iter: usize, on_failure: &str) -> String {
    format!(
        r#"
name = "admm-small"
seed = 1

[data]
system = "vanderpol"
initial_state = [0.0, 1.0]
noise = 0.05

[train]
t1 = 12.0
points = 80

[test]
t1 = 14.0
points = 10

[collocation]
points = 80

[model]
layers = [2, 8, 2]
activation = "tanh"

[bounds]
parameters = 100.0

[solver.ipopt]
tol = 1e-6
max_iter = 300

[admm]
windows = [[0.0, 3.0], [3.0, 6.0], [6.0, 9.0], [9.0, 12.0]]
points = 24
rho = 0.5
max_iter = {max_iter}
on_failure = "{on_failure}"
"#
    )
}

fn dir(name: &str) -> common::TempDir {
    common::TempDir::new(&format!("admm-{name}"))
}

fn admm(file: &Path, out: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_colloc"))
        .arg("admm")
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn four_batches_run_and_resume_reproduces_the_uninterrupted_run() {
    let d = dir("resume");
    let full = d.join("full.toml");
    std::fs::write(&full, problem(4, "keep")).unwrap();
    let (code, text) = admm(&full, &d.join("a"), &[]);
    assert!(code == Some(0) || code == Some(1), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    let s = summary(&d.join("a"));
    assert_eq!(s["batches"], 4);
    assert_eq!(s["admm_iterations"], 4);
    common::assert_summary_keys(&s, &["primal_residual", "dual_residual", "iterations_s"]);
    // Warm-started sub-problems need fewer IPOPT iterations than the cold first ones.
    assert!(
        s["mean_warm_iterations"].as_f64().unwrap() < s["mean_cold_iterations"].as_f64().unwrap(),
        "{s}"
    );
    for f in [
        "history.csv",
        "residuals.svg",
        "consensus.svg",
        "model.json",
        "checkpoint.json",
        "fit.svg",
    ] {
        assert!(d.join("a").join(f).exists(), "{f} missing");
    }
    let history = std::fs::read_to_string(d.join("a").join("history.csv")).unwrap();
    assert_eq!(history.lines().count(), 1 + 4 * 4);
    // The learning curve: the last iteration's consensus scores are the summary's.
    let header: Vec<&str> = history.lines().next().unwrap().split(',').collect();
    let last: Vec<&str> = history.lines().last().unwrap().split(',').collect();
    for (column, key) in [
        ("consensus_train_mse", "train_mse"),
        ("consensus_test_mse", "test_mse"),
    ] {
        let at = header.iter().position(|h| *h == column).unwrap();
        let logged: f64 = last[at].parse().unwrap();
        assert_eq!(logged, s[key].as_f64().unwrap(), "{column}");
    }
    // The consensus model is a model `colloc train --init` accepts.
    let (code, text) = {
        let o = Command::new(env!("CARGO_BIN_EXE_colloc"))
            .args([
                "train",
                full.to_str().unwrap(),
                "-q",
                "--epochs",
                "3",
                "--init",
            ])
            .arg(d.join("a").join("model.json"))
            .arg("--out")
            .arg(d.join("train"))
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(0), "{text}");

    // Two iterations, then resume to four: the same consensus as the uninterrupted run.
    let half = d.join("half.toml");
    std::fs::write(&half, problem(2, "keep")).unwrap();
    let (_, text) = admm(&half, &d.join("b"), &["-q"]);
    assert!(!text.contains("panicked"), "{text}");
    assert_eq!(summary(&d.join("b"))["admm_iterations"], 2);
    let (_, text) = admm(&full, &d.join("b"), &["-q", "--resume"]);
    assert!(!text.contains("panicked"), "{text}");
    assert_eq!(summary(&d.join("b"))["admm_iterations"], 4);
    assert_eq!(
        std::fs::read_to_string(d.join("a").join("model.json")).unwrap(),
        std::fs::read_to_string(d.join("b").join("model.json")).unwrap(),
        "resumed run differs from the uninterrupted one"
    );

    // A checkpoint of other sub-problems is refused, and its results are left alone: another
    // seed (other noise), another loss weight, other batch windows.
    let longer = d.join("longer.toml");
    std::fs::write(&longer, problem(6, "keep")).unwrap();
    let before = std::fs::read_to_string(d.join("b").join("checkpoint.json")).unwrap();
    let other_lambda = d.join("lambda.toml");
    std::fs::write(
        &other_lambda,
        problem(6, "keep").replace("[bounds]", "[loss]\nlambda = 1e-2\n\n[bounds]"),
    )
    .unwrap();
    let other_windows = d.join("windows.toml");
    std::fs::write(
        &other_windows,
        problem(6, "keep").replace("[6.0, 9.0], [9.0, 12.0]", "[6.0, 10.0], [10.0, 12.0]"),
    )
    .unwrap();
    for (file, extra) in [
        (&longer, vec!["--seed", "2"]),
        (&other_lambda, vec![]),
        (&other_windows, vec![]),
    ] {
        let mut args = vec!["-q", "--resume"];
        args.extend(extra);
        let (code, text) = admm(file, &d.join("b"), &args);
        assert_eq!(code, Some(2), "{file:?} {args:?}: {text}");
        assert!(
            text.contains("cannot resume: the checkpoint belongs to other sub-problems"),
            "{text}"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("b").join("checkpoint.json")).unwrap(),
            before
        );
    }
    // `--seed` with the file's own seed is the same problem: resumed with a higher limit.
    let (code, text) = admm(&longer, &d.join("b"), &["-q", "--resume", "--seed", "1"]);
    assert!(code == Some(0) || code == Some(1), "{text}");
    assert_eq!(summary(&d.join("b"))["admm_iterations"], 6);
}

#[test]
fn a_failing_sub_problem_is_survived_or_stops_the_run_as_configured() {
    let d = dir("fault");
    let keep = d.join("keep.toml");
    std::fs::write(&keep, problem(3, "keep")).unwrap();
    let (code, text) = admm(&keep, &d.join("keep"), &["--inject-failure", "2:2"]);
    assert!(code == Some(0) || code == Some(1), "{text}");
    assert!(text.contains("FAILED"), "{text}");
    let history = std::fs::read_to_string(d.join("keep").join("history.csv")).unwrap();
    let failed: Vec<&str> = history
        .lines()
        .filter(|l| l.contains("injected_failure"))
        .collect();
    assert_eq!(failed.len(), 1, "{history}");
    assert!(failed[0].starts_with("2,") && failed[0].contains(",2,injected_failure,false,"));
    assert_eq!(summary(&d.join("keep"))["admm_iterations"], 3);

    let stop = d.join("stop.toml");
    std::fs::write(&stop, problem(3, "stop")).unwrap();
    let (code, text) = admm(&stop, &d.join("stop"), &["-q", "--inject-failure", "1:2"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("ADMM iteration 2: batch 1 failed: injected failure"),
        "{text}"
    );
    // The checkpoint of the last good iteration is there to resume from.
    assert!(d.join("stop").join("checkpoint.json").exists());
}

/// An accelerated run (`setting` added to `[admm]`) keeps its accelerator's memory in the
/// checkpoint: resumed after 3 of 5 iterations it reproduces the uninterrupted run, and its
/// iterates differ from plain ADMM's.
fn acceleration_resumes_exactly(name: &str, setting: &str) {
    let d = dir(name);
    let text = |iters: usize, setting: &str| {
        problem(iters, "keep").replace(
            "on_failure = \"keep\"",
            &format!("on_failure = \"keep\"\n{setting}"),
        )
    };
    let full = d.join("full.toml");
    std::fs::write(&full, text(5, setting)).unwrap();
    let (_, out) = admm(&full, &d.join("a"), &["-q"]);
    assert!(!out.contains("panicked"), "{out}");
    assert_eq!(summary(&d.join("a"))["admm_iterations"], 5);
    let half = d.join("half.toml");
    std::fs::write(&half, text(3, setting)).unwrap();
    admm(&half, &d.join("b"), &["-q"]);
    let (_, out) = admm(&full, &d.join("b"), &["-q", "--resume"]);
    assert!(!out.contains("panicked"), "{out}");
    let model = |dir: &str| std::fs::read_to_string(d.join(dir).join("model.json")).unwrap();
    assert_eq!(model("a"), model("b"), "resumed accelerated run differs");
    let plain = d.join("plain.toml");
    std::fs::write(&plain, text(5, "")).unwrap();
    admm(&plain, &d.join("c"), &["-q"]);
    assert_ne!(model("a"), model("c"), "acceleration changed nothing");
}

#[test]
fn anderson_acceleration_resumes_exactly() {
    acceleration_resumes_exactly("anderson", "anderson_memory = 3");
}

#[test]
fn momentum_resumes_exactly() {
    // A low balancing threshold changes ρ, which resets the momentum, within the first three
    // iterations: the reset memory goes through the checkpoint too.
    acceleration_resumes_exactly("momentum", "momentum = true\nbalance_threshold = 1.2");
}

/// A warm-started sub-problem that fails is solved again from a cold start and accepted.
#[test]
fn a_failed_warm_start_is_retried_cold() {
    let p = common::load_problem_text("admm-retry", &problem(3, "stop"));
    let settings = p.admm.clone().unwrap();
    let batches = colloc::training::admm::make_batches(&p, &settings).unwrap();
    let state = colloc::training::admm::initial_state(&p, &settings, &batches).unwrap();
    let fault = colloc::training::admm::FaultInjection {
        fail: None,
        fail_warm: Some((1, 2)),
    };
    let run = colloc::training::admm::run(
        &p,
        &settings,
        &batches,
        state,
        fault,
        &mut |_| Ok(()),
        &mut |_| true,
    )
    .unwrap();
    let second = &run.state.history[1].batches;
    assert!(
        second[1].warm && second[1].cold_retry && second[1].accepted,
        "{second:?}"
    );
    assert!(!second[0].cold_retry && !second[2].cold_retry);
    assert_eq!(run.state.history.len(), 3);
}

#[test]
fn bad_admm_input_is_refused() {
    let d = dir("bad");
    for (from, to, needle) in [
        (
            "windows = [[0.0, 3.0], [3.0, 6.0], [6.0, 9.0], [9.0, 12.0]]",
            "windows = [[0.0, 13.0]]",
            "admm.windows",
        ),
        ("rho = 0.5", "rho = -1.0", "admm.rho"),
        ("rho = 0.5", "rho = 1e308", "at most 1e10"),
        (
            "rho = 0.5",
            "rho = 0.5\nrelaxation = 2.5",
            "admm.relaxation",
        ),
        (
            "on_failure = \"keep\"",
            "on_failure = \"retry\"",
            "unknown variant",
        ),
        (
            "rho = 0.5",
            "rho = 0.5\nanderson_memory = 99",
            "admm.anderson_memory",
        ),
        (
            "rho = 0.5",
            "rho = 0.5\nanderson_memory = 3\nmomentum = true",
            "admm.momentum",
        ),
        (
            "rho = 0.5",
            "rho = 0.5\nmomentum = true\nrestart_factor = 1.5",
            "admm.restart_factor",
        ),
        ("points = 24", "points = 1", "admm.points"),
        ("points = 24", "points = 100000", "admm.points"),
    ] {
        let f = d.join("p.toml");
        std::fs::write(&f, problem(3, "keep").replace(from, to)).unwrap();
        let (code, text) = admm(&f, &d.join("out"), &["-q"]);
        assert_eq!(code, Some(2), "{to}: {text}");
        assert!(
            text.contains(needle) && text.contains("p.toml"),
            "{to}: {text}"
        );
    }
    let f = d.join("p.toml");
    std::fs::write(&f, problem(3, "keep")).unwrap();
    let (code, text) = admm(&f, &d.join("nothing-here"), &["-q", "--resume"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("checkpoint.json"), "{text}");
    let (code, text) = admm(Path::new("problems/vanderpol.toml"), &d.join("x"), &["-q"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("no [admm] section"), "{text}");
}

/// A second trajectory (another initial state, its own problem file) joins the consensus as
/// its own batches; a trajectory with another model is refused naming its file.
#[test]
fn several_trajectories_join_the_consensus() {
    let d = dir("trajectories");
    let main = problem(2, "keep").replace(
        "on_failure = \"keep\"",
        "on_failure = \"keep\"\ntrajectories = [\"other.toml\"]",
    );
    std::fs::write(d.join("main.toml"), &main).unwrap();
    // Another initial state, split in two windows of its own.
    let other = problem(2, "keep")
        .replace("initial_state = [0.0, 1.0]", "initial_state = [1.5, -0.5]")
        .replace("name = \"admm-small\"", "name = \"other\"")
        .replace(
            "windows = [[0.0, 3.0], [3.0, 6.0], [6.0, 9.0], [9.0, 12.0]]",
            "windows = [[0.0, 6.0], [6.0, 12.0]]",
        );
    std::fs::write(d.join("other.toml"), &other).unwrap();
    let (code, text) = admm(&d.join("main.toml"), &d.join("out"), &["-q"]);
    assert!(code == Some(0) || code == Some(1), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    let s = summary(&d.join("out"));
    assert_eq!(s["batches"], 6, "{s}");
    let history = std::fs::read_to_string(d.join("out").join("history.csv")).unwrap();
    assert_eq!(history.lines().count(), 1 + 2 * 6);

    // The same further trajectory listed at the top level (`trajectories`, which `colloc
    // solve` learns jointly) joins the batches too; listed in both places it is refused.
    let top = format!("trajectories = [\"other.toml\"]\n{}", problem(2, "keep"));
    std::fs::write(d.join("top.toml"), &top).unwrap();
    let (code, text) = admm(&d.join("top.toml"), &d.join("out-top"), &["-q"]);
    assert!(code == Some(0) || code == Some(1), "{text}");
    assert_eq!(summary(&d.join("out-top"))["batches"], 6);
    let both = format!("trajectories = [\"other.toml\"]\n{main}");
    std::fs::write(d.join("both.toml"), &both).unwrap();
    let (code, text) = admm(&d.join("both.toml"), &d.join("out-both"), &["-q"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("list it once"), "{text}");

    std::fs::write(
        d.join("other.toml"),
        other.replace("layers = [2, 8, 2]", "layers = [2, 9, 2]"),
    )
    .unwrap();
    let (code, text) = admm(&d.join("main.toml"), &d.join("bad"), &["-q"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("other.toml") && text.contains("one model"),
        "{text}"
    );
}

/// With an acceleration (momentum or Anderson) the consensus model is the last ADMM iterate
/// θ̄_k, not the point the acceleration prepared for the next sub-problems: its distance to the
/// batches' θ_i is the reported primal residual, whether the run converges or stops at the
/// iteration limit.
#[test]
fn with_an_acceleration_the_model_is_the_last_iterate() {
    for acceleration in ["momentum = true", "anderson_memory = 3"] {
        for (tolerance, iterations) in [("0.03", 40), ("1e-12", 4)] {
            let text = problem(iterations, "keep").replace(
                "on_failure = \"keep\"",
                &format!(
                    "on_failure = \"keep\"\n{acceleration}\nadaptive_rho = false\neps_abs = {tolerance}\neps_rel = {tolerance}"
                ),
            );
            let p = common::load_problem_text(&format!("admm-accel-{iterations}"), &text);
            let settings = p.admm.clone().unwrap();
            let batches = colloc::training::admm::make_batches(&p, &settings).unwrap();
            let state = colloc::training::admm::initial_state(&p, &settings, &batches).unwrap();
            let run = colloc::training::admm::run(
                &p,
                &settings,
                &batches,
                state,
                colloc::training::admm::FaultInjection::default(),
                &mut |_| Ok(()),
                &mut |_| true,
            )
            .unwrap();
            let last = run.state.history.last().unwrap();
            let distance = run
                .state
                .thetas
                .iter()
                .flat_map(|t| {
                    t.iter()
                        .zip(&run.model.params)
                        .map(|(a, b)| (a - b).powi(2))
                })
                .sum::<f64>()
                .sqrt();
            assert!(
                (distance - last.primal).abs() <= 1e-12 * last.primal.max(1.0),
                "{acceleration}, tolerance {tolerance}: model at {distance} from the θ_i, primal residual {}",
                last.primal
            );
            eprintln!(
                "ZZ {acceleration} {tolerance} {} {}",
                run.converged,
                run.state.history.len()
            );
            // The accelerations act from the second iteration on.
            assert!(run.state.history.len() >= 2);
            if tolerance == "1e-12" {
                assert!(!run.converged && run.state.history.len() == iterations);
            }
        }
    }
}
