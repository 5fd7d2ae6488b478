//! Several experiments (trajectories) of one system learned with one network: `colloc solve`
//! on a problem file with `trajectories` builds one NLP (per trajectory its states,
//! collocation equations and data fit; θ shared).

mod common;

use colloc::problem::{self, Formulation, Problem, Split};
use colloc::training::collocation::{self, simulate_and_score, Evaluation};
use std::path::{Path, PathBuf};
use std::process::Command;

fn colloc(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_colloc"))
        .args(args)
        .output()
        .expect("the binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn dir(name: &str) -> common::TempDir {
    common::TempDir::new(&format!("experiments-{name}"))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `colloc predict --run folder` reproduces the folder's figures: its MSE over the 31
/// training and 30 test observations is their count-weighted mean.
fn assert_predict_reproduces(folder: &Path) {
    let sub = json(&folder.join("summary.json"));
    let (code, _, report) = colloc(&["predict", "--run", folder.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{report}");
    let expected = (sub["train_mse"].as_f64().unwrap() * 31.0
        + sub["test_mse"].as_f64().unwrap() * 30.0)
        / 61.0;
    let mse = common::predicted_mse(&report);
    assert!(
        (mse - expected).abs() <= 1e-4 * expected,
        "{}: {mse} vs {expected}",
        folder.display()
    );
}

/// `pooled[key]` of a summary over three trajectories with equal counts is their mean.
fn assert_pooled_mean(s: &serde_json::Value, key: &str) {
    let t = s["trajectories"].as_array().unwrap();
    let mean = t.iter().map(|x| x[key].as_f64().unwrap()).sum::<f64>() / t.len() as f64;
    let pooled = s["pooled"][key].as_f64().unwrap();
    assert!(
        (pooled - mean).abs() <= 1e-12 * mean,
        "{key}: {pooled} vs {mean}"
    );
}

/// With one trajectory the joint NLP is the single one: the same iterates, bit for bit.
#[test]
fn one_trajectory_jointly_is_the_single_solve() {
    let p = problem::load(Path::new("problems/vanderpol-small.toml")).unwrap();
    let single = collocation::train(&p, Formulation::Reduced, None, &mut |_| true).unwrap();
    let joint = collocation::train_joint(
        std::slice::from_ref(&p),
        Formulation::Reduced,
        None,
        &mut |_| true,
    )
    .unwrap();
    assert_eq!(joint.len(), 1);
    assert_eq!(joint[0].model.params, single.model.params);
    assert_eq!(joint[0].states, single.states);
    assert_eq!(
        joint[0].solution.stats.iterations,
        single.solution.stats.iterations
    );
    assert_eq!(joint[0].evaluation.test_mse, single.evaluation.test_mse);
}

/// Clean MSE over the whole data of `p` of `model` simulated from the true first state.
fn held_out_mse(p: &Problem, model: &colloc_models::Mlp) -> f64 {
    let clean = p.data.clean.as_ref().unwrap();
    let ev = simulate_and_score(p, model, p.t0, &clean[0], Evaluation::default());
    let (a, b) = (ev.train_mse_clean.unwrap(), ev.test_mse_clean.unwrap());
    let (na, nb) = (
        p.data.indices(Split::Train).len() as f64,
        p.data.indices(Split::Test).len() as f64,
    );
    (a * na + b * nb) / (na + nb)
}

/// The batch-reactor files: three experiments in one solve; the summary lists each with its
/// figures and folder, the pooled figures are the observation-weighted means, each further
/// trajectory's folder is a complete run (`colloc predict --run` reproduces its figures), and
/// the jointly learned kinetics predict a fourth, held-out charge better than those learned
/// from the first experiment alone.
#[test]
fn three_experiments_are_learned_in_one_solve() {
    let d = dir("reactions");
    let out = d.join("out");
    let (code, stdout, stderr) = colloc(&[
        "solve",
        "problems/reactions_experiments.toml",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("further trajectories"), "{stderr}");
    assert!(stdout.contains("pooled"), "{stdout}");
    let s = json(&out.join("summary.json"));
    common::assert_summary_keys(&s, &["trajectories", "pooled"]);
    let t = s["trajectories"].as_array().unwrap();
    assert_eq!(t.len(), 3, "{s}");
    assert_eq!(t[0]["folder"], ".");
    assert_eq!(t[0]["test_mse"], s["test_mse"]);
    let names: Vec<&str> = t.iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["reactions_experiments", "reactions_b", "reactions_mix"]
    );
    // Pooled: observation-weighted means (31 training and 30 test points each).
    for key in ["fit_mse", "train_mse", "test_mse_clean"] {
        assert_pooled_mean(&s, key);
    }
    // Every experiment fitted to the noise level (σ = 0.02: 4e-4).
    for x in t {
        let fit = x["fit_mse"].as_f64().unwrap();
        assert!(fit < 6e-4, "{x}");
        assert!(x["test_mse_clean"].as_f64().unwrap() < 2e-3, "{x}");
    }
    let model = std::fs::read_to_string(out.join("model.json")).unwrap();
    for j in [1, 2] {
        let folder = out.join(format!("trajectory{j}"));
        assert_eq!(
            std::fs::read_to_string(folder.join("model.json")).unwrap(),
            model
        );
        let sub = json(&folder.join("summary.json"));
        assert_eq!(sub["problem"], t[j]["name"]);
        assert_eq!(sub["test_mse"], t[j]["test_mse"]);
        for file in ["data.csv", "prediction.csv", "fit.svg", "history.csv"] {
            assert!(folder.join(file).is_file(), "{file}");
        }
        assert_predict_reproduces(&folder);
    }

    // One experiment against three, on the held-out charge (noise seeds 100, 101, 102: row 1
    // of the `several_experiments` example, whose table gives every row).
    // The experiment files inherit their seeds: the main file's plus their place in the list.
    let main = problem::load_with_seed(Path::new("problems/reactions_experiments.toml"), Some(100))
        .unwrap();
    let problems = main.with_trajectories().unwrap();
    assert_eq!(problems[2].seed, 102);
    let held_out =
        problem::load(Path::new("problems/experiments/reactions_held_out.toml")).unwrap();
    let single = collocation::train(&main, Formulation::Reduced, None, &mut |_| true).unwrap();
    let joint =
        collocation::train_joint(&problems, Formulation::Reduced, None, &mut |_| true).unwrap();
    let (one, three) = (
        held_out_mse(&held_out, &single.model),
        held_out_mse(&held_out, &joint[0].model),
    );
    assert!(
        three < 0.5 * one,
        "held-out: three experiments {three}, one {one}"
    );
}

/// Writes the batch-reactor files into `d` with `edit` applied to each (main, then the two
/// further experiments) and returns the main file.
fn reactor_files(d: &Path, edit: &dyn Fn(&str) -> String) -> PathBuf {
    std::fs::create_dir_all(d.join("experiments")).unwrap();
    for file in [
        "reactions_experiments.toml",
        "experiments/reactions_b.toml",
        "experiments/reactions_mix.toml",
    ] {
        let text = std::fs::read_to_string(Path::new("problems").join(file)).unwrap();
        std::fs::write(d.join(file), edit(&text)).unwrap();
    }
    d.join("reactions_experiments.toml")
}

/// IPOPT's objective of the joint solve of `main` (and its further trajectories), with
/// `linear_solver` set when given.
fn joint_objective(main: &Path, linear_solver: Option<&str>) -> (f64, usize) {
    let mut p = problem::load(main).unwrap();
    if let Some(s) = linear_solver {
        p.ipopt.linear_solver = s.into();
    }
    let problems = p.with_trajectories().unwrap();
    let runs =
        collocation::train_joint(&problems, Formulation::Reduced, None, &mut |_| true).unwrap();
    assert!(
        runs[0].solution.is_success(),
        "{:?}",
        runs[0].solution.status
    );
    for r in &runs {
        assert!(r.evaluation.fit_mse.unwrap() < 6e-4, "{:?}", r.evaluation);
    }
    (runs[0].solution.objective, runs[0].dims.nnz_jac)
}

/// The smallest pivot of Gaussian elimination with partial pivoting on the square `a`, over
/// the largest: about the rounding error (1e-15) for a singular matrix.
fn pivot_ratio(mut a: Vec<Vec<f64>>) -> f64 {
    let n = a.len();
    let (mut smallest, mut largest) = (f64::INFINITY, 0.0f64);
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .unwrap();
        a.swap(c, p);
        let pivot = a[c][c];
        smallest = smallest.min(pivot.abs());
        largest = largest.max(pivot.abs());
        let (head, tail) = a.split_at_mut(c + 1);
        let pivot_row = &head[c];
        for row in tail {
            let f = row[c] / pivot;
            row.iter_mut()
                .zip(pivot_row)
                .skip(c)
                .for_each(|(v, p)| *v -= f * p);
        }
    }
    smallest / largest
}

/// On global grids each trajectory's KKT block `[H Jᵀ; J 0]` (its states and collocation
/// rows; the first node's states and rows sit with θ) is nonsingular even where the network
/// is flat (θ = 0, ∂F/∂y = 0): `J` is `D` without its first row and column, an initial-value
/// operator. With the first node inside, `J` was `D` itself, whose null space (the constants)
/// made the block singular there, and each such factorization cost IPOPT a regularized retry
/// (two unforced Van der Pol trajectories of 200 points: 40 iterations and 80 factorizations
/// against 34 and 52 with the dense solver; now the same 34 and 52, docs/experiments.md, "Several
/// experiments").
#[test]
fn joint_global_blocks_are_nonsingular_where_the_network_is_flat() {
    use colloc::solvers::NlpEvaluator;
    let main = problem::load(Path::new("problems/reactions_experiments.toml")).unwrap();
    let problems = main.with_trajectories().unwrap();
    let mut joint =
        collocation::build_joint(&problems, Formulation::Reduced, None, None, None).unwrap();
    let dims = joint.nlp.dims();
    let mut x = vec![0.0; dims.n_vars];
    joint.nlp.initial_point(&mut x);
    for i in joint.theta.indices() {
        x[i] = 0.0;
    }
    let (mut rows, mut cols) = (vec![0; dims.nnz_jac], vec![0; dims.nnz_jac]);
    joint.nlp.jacobian_structure(&mut rows, &mut cols);
    let mut jacobian = vec![0.0; dims.nnz_jac];
    joint.nlp.jacobian_values(&x, &mut jacobian).unwrap();
    let (mut h_rows, mut h_cols) = (vec![0; dims.nnz_hess], vec![0; dims.nnz_hess]);
    joint.nlp.hessian_structure(&mut h_rows, &mut h_cols);
    let mut hessian = vec![0.0; dims.nnz_hess];
    let multipliers = vec![0.0; dims.n_cons];
    joint
        .nlp
        .hessian_values(&x, 1.0, &multipliers, &mut hessian)
        .unwrap();
    let blocks = joint
        .nlp
        .kkt_blocks()
        .expect("several trajectories: a partition");
    assert_eq!(blocks.chain.len(), 3);
    for block in &blocks.chain {
        // KKT order: the block's variables, then its rows.
        let (nv, nc) = (block.variables.len(), block.constraints.len());
        let var: std::collections::HashMap<usize, usize> = block
            .variables
            .iter()
            .enumerate()
            .map(|(k, &v)| (v, k))
            .collect();
        let row: std::collections::HashMap<usize, usize> = block
            .constraints
            .iter()
            .enumerate()
            .map(|(k, &c)| (c, nv + k))
            .collect();
        let mut kkt = vec![vec![0.0; nv + nc]; nv + nc];
        for ((&r, &c), &v) in h_rows.iter().zip(&h_cols).zip(&hessian) {
            if let (Some(&i), Some(&j)) = (var.get(&r), var.get(&c)) {
                kkt[i][j] += v;
                if i != j {
                    kkt[j][i] += v;
                }
            }
        }
        for ((&r, &c), &v) in rows.iter().zip(&cols).zip(&jacobian) {
            if let (Some(&i), Some(&j)) = (row.get(&r), var.get(&c)) {
                kkt[i][j] += v;
                kkt[j][i] += v;
            }
        }
        let ratio = pivot_ratio(kkt);
        assert!(ratio > 1e-10, "pivot ratio {ratio:e}");
    }
}

/// The joint NLP's KKT systems go to the block-arrow solver — one block per trajectory on a
/// global grid (its initial-state rows with θ), one chain per trajectory of finite elements —
/// and reach MUMPS's optimum: all on finite elements, and a global grid with a pinned initial
/// state beside two finite-element trajectories (both solved to 1e-9: at the files' 1e-4 the
/// two solvers' paths end up to 2e-7 apart in the objective).
#[test]
fn joint_kkt_blocks_reach_the_mumps_optimum() {
    let d = dir("blocks");
    // The main file's grid on finite elements (the experiment files inherit it), or, for an
    // experiment file, a finite-element grid of its own.
    let fe = "[collocation]\nelements = 12\npoints_per_element = 5\nnodes = \"radau\"";
    let elements = |t: &str| {
        let grid = "[collocation]\npoints = 60\nnodes = \"chebyshev\"";
        if t.contains(grid) {
            t.replace(grid, fe)
        } else {
            format!("{t}\n{fe}\n")
        }
    };
    let main = reactor_files(&d.join("fe"), &|t: &str| {
        let t = t.replace("tol = 1e-4", "tol = 1e-9");
        if t.contains("[collocation]") {
            elements(&t)
        } else {
            t
        }
    });
    let (blocks, nnz) = joint_objective(&main, None);
    let (mumps, _) = joint_objective(&main, Some("mumps"));
    assert!(
        (blocks - mumps).abs() <= 1e-9 * mumps,
        "{blocks} vs {mumps}"
    );
    // Sparse: three chains of 12 elements, not three dense 49-point blocks.
    assert!(nnz < 60_000, "{nnz}");

    // The first experiment on its global grid with its initial state pinned, the others on
    // finite elements; solved to 1e-9.
    let mixed = |t: &str| {
        let t = t.replace("tol = 1e-4", "tol = 1e-9");
        if t.contains("name = \"reactions_experiments\"") {
            t.replace("[loss]\n", "[loss]\nfix_initial_state = true\n")
        } else {
            elements(&t)
        }
    };
    let main = reactor_files(&d.join("mixed"), &mixed);
    let (blocks, _) = joint_objective(&main, None);
    let (mumps, _) = joint_objective(&main, Some("mumps"));
    // Within 1e-3: in this multi-threaded test process MUMPS's iterates (through the BLAS)
    // end at a neighbouring point of the same basin (2e-4 apart; with one BLAS thread, as
    // `colloc solve` runs, both reach 1.347657e-3). The elimination itself is checked against
    // the dense factorization in colloc_solvers' block_kkt tests (cut chains, pinned rows).
    assert!(
        (blocks - mumps).abs() <= 1e-3 * mumps,
        "{blocks} vs {mumps}"
    );
}

/// A bad-input case: name, how the files are edited, the command, what stderr must say.
type Case<'a> = (&'a str, &'a dyn Fn(&str) -> String, &'a str, &'a [&'a str]);

/// Bad `trajectories` are refused with exit code 2, naming the field and the file.
#[test]
fn bad_trajectories_are_refused() {
    let d = dir("bad");
    let line =
        "trajectories = [\"experiments/reactions_b.toml\", \"experiments/reactions_mix.toml\"]";
    let with = |t: &str, new: &str| t.replace(line, new);
    let cases: [Case; 5] = [
        (
            "missing",
            &|t| with(t, "trajectories = [\"experiments/none.toml\"]"),
            "solve",
            &["trajectories", "none.toml"],
        ),
        (
            "twice",
            &|t| {
                with(
                    t,
                    "trajectories = [\"experiments/reactions_b.toml\", \"experiments/reactions_b.toml\"]",
                )
            },
            "solve",
            &["trajectories", "listed twice"],
        ),
        (
            "type",
            &|t| with(t, "trajectories = \"experiments/reactions_b.toml\""),
            "solve",
            &["trajectories", "line 12"],
        ),
        (
            "layers",
            &|t| {
                if t.contains("name = \"reactions_b\"") {
                    format!("{t}\n[model]\nlayers = [3, 12, 3]\nactivation = \"tanh\"\n")
                } else {
                    t.to_string()
                }
            },
            "solve",
            &["reactions_b.toml", "one model"],
        ),
        (
            "unknown",
            &|t| {
                if t.contains("name = \"reactions_b\"") {
                    t.replace("[data]\n", "[data]\nnoize = 0.1\n")
                } else {
                    t.to_string()
                }
            },
            "solve",
            &["reactions_b.toml", "noize", "line 8"],
        ),
    ];
    for (name, edit, command, needles) in cases {
        let main = reactor_files(&d.join(name), edit);
        let out = d.join(name).join("out");
        let mut args: Vec<&str> = command.split(' ').collect();
        args.extend([main.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
        let (code, stdout, stderr) = colloc(&args);
        assert_eq!(code, Some(2), "{name}: {stdout}{stderr}");
        for needle in needles {
            assert!(stderr.contains(needle), "{name}: {needle}: {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
    // A further trajectory listing trajectories itself.
    let nested = |t: &str| {
        if t.contains("name = \"reactions_mix\"") {
            t.replace(
                "name = \"reactions_mix\"\n",
                "name = \"reactions_mix\"\ntrajectories = [\"reactions_b.toml\"]\n",
            )
        } else {
            t.to_string()
        }
    };
    let main = reactor_files(&d.join("nested"), &nested);
    let (code, _, stderr) = colloc(&[
        "solve",
        main.to_str().unwrap(),
        "-q",
        "--out",
        d.join("nested/out").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot list trajectories itself"),
        "{stderr}"
    );
}

/// The same experiments by consensus (`colloc admm`: each experiment one batch): both
/// residuals fall below their tolerances and the consensus fits the first experiment to the
/// noise level (σ = 0.02: 4e-4).
#[test]
fn the_experiments_reach_consensus_by_admm() {
    let d = dir("admm");
    let out = d.join("out");
    let (code, stdout, stderr) = colloc(&[
        "admm",
        "problems/reactions_experiments.toml",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let s = json(&out.join("summary.json"));
    assert_eq!(s["status"], "converged", "{s}");
    assert_eq!(s["batches"], 3);
    assert!(s["train_mse"].as_f64().unwrap() < 6e-4, "{s}");
}

/// The sequential trainers on the same experiments: one network, each experiment its own
/// trajectory (and its own learned start), the loss pooled over all observations; the
/// outputs as `colloc solve`'s (`trajectories`, `pooled`, a folder per further experiment
/// that `colloc predict --run` reproduces).
#[test]
fn the_sequential_trainers_learn_from_several_experiments() {
    let d = dir("train");
    for method in ["vanilla", "homotopy", "shooting"] {
        let out = d.join(method);
        let (code, stdout, stderr) = colloc(&[
            "train",
            "problems/reactions_experiments.toml",
            "--method",
            method,
            "--epochs",
            "300",
            "--learn-initial-state",
            "--out",
            out.to_str().unwrap(),
            "-q",
        ]);
        assert_eq!(code, Some(0), "{method}: {stdout}{stderr}");
        let s = json(&out.join("summary.json"));
        common::assert_summary_keys(&s, &["trajectories", "pooled", "best_epoch"]);
        let t = s["trajectories"].as_array().unwrap();
        assert_eq!(t.len(), 3, "{s}");
        assert_pooled_mean(&s, "train_mse");
        // Every experiment learned (σ = 0.02: 4e-4 at the noise level).
        for x in t {
            assert!(x["train_mse"].as_f64().unwrap() < 1.5e-3, "{method}: {x}");
        }
        // Each experiment's own learned start, and its folder reproduces its figures.
        let starts: Vec<&serde_json::Value> = t.iter().map(|x| &x["start_state"]).collect();
        assert!(
            starts[0] != starts[1] && starts[1] != starts[2],
            "{starts:?}"
        );
        let folder = out.join("trajectory2");
        let sub = json(&folder.join("summary.json"));
        assert_eq!(sub["start_state"], *starts[2]);
        assert_predict_reproduces(&folder);
    }
}

/// `colloc solve main --out out` succeeds; its summary.
fn solve_ok(main: &Path, out: &Path) -> serde_json::Value {
    let (code, stdout, stderr) = colloc(&[
        "solve",
        main.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    json(&out.join("summary.json"))
}

/// Grid refinement and the defect continuation work on several trajectories: from 30
/// Chebyshev points each with a refinement threshold below every defect, each grid is doubled
/// once (to the limit of 60); penalty stages run before the exact joint problem.
#[test]
fn several_trajectories_are_refined_and_continued_together() {
    let d = dir("refine");
    let grid = "[collocation]\npoints = 60\nnodes = \"chebyshev\"";
    // The main file's grid (the experiment files inherit it).
    let refined = |t: &str| {
        let coarse = "[collocation]\npoints = 30\nnodes = \"chebyshev\"";
        t.replace(
            grid,
            &format!("{coarse}\n[collocation.refinement]\nmax_points = 60\ndefect = 1e-5"),
        )
    };
    let out = d.join("refine-out");
    let s = solve_ok(&reactor_files(&d.join("refine"), &refined), &out);
    assert_eq!(s["collocation_points"], 60, "{s}");
    let rounds = s["refinements"].as_array().unwrap();
    assert_eq!(rounds.len(), 1, "{s}");
    assert_eq!(rounds[0]["points"], 90);
    for j in [1, 2] {
        let sub = json(&out.join(format!("trajectory{j}")).join("summary.json"));
        assert_eq!(sub["collocation_points"], 60, "{sub}");
    }
    let history = std::fs::read_to_string(out.join("history.csv")).unwrap();
    assert_eq!(
        history.lines().count() - 1,
        s["iterations"].as_u64().unwrap() as usize + 2,
        "both grids' iterations, numbered on"
    );

    let staged = |t: &str| {
        t.replace(
            "prefit = true",
            "prefit = true\ndefect_penalties = [1.0, 100.0]",
        )
    };
    let s = solve_ok(
        &reactor_files(&d.join("stages"), &staged),
        &d.join("stages-out"),
    );
    let stages = s["penalty_stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2, "{s}");
    assert!(stages[1]["max_defect"].as_f64().unwrap() < stages[0]["max_defect"].as_f64().unwrap());
    for t in s["trajectories"].as_array().unwrap() {
        assert!(t["fit_mse"].as_f64().unwrap() < 6e-4, "{t}");
    }
}

/// `colloc train --sweep` on several experiments: every combination trained on all three, the
/// pooled training MSE selects.
#[test]
fn a_sweep_trains_every_combination_on_every_experiment() {
    let d = dir("sweep");
    let grid = |t: &str| {
        if t.contains("name = \"reactions_experiments\"") {
            format!("{t}\n[sequential]\nepochs = 60\n[sequential.sweep]\nlearning_rate = [0.005, 0.02]\n")
        } else {
            t.to_string()
        }
    };
    let main = reactor_files(&d, &grid);
    let out = d.join("out");
    let (code, stdout, stderr) = colloc(&[
        "train",
        main.to_str().unwrap(),
        "--sweep",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let s = json(&out.join("summary.json"));
    assert_eq!(s["sweep"]["trials"], 2, "{s}");
    assert_eq!(s["trajectories"].as_array().unwrap().len(), 3);
    let table = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    let chosen = table
        .lines()
        .find(|l| l.ends_with(",true"))
        .expect("a selected row");
    let train_mse: f64 = chosen.split(',').nth(1).unwrap().parse().unwrap();
    let pooled = s["pooled"]["train_mse"].as_f64().unwrap();
    assert!(
        (train_mse - pooled).abs() <= 1e-12 * pooled,
        "{chosen} vs {pooled}"
    );
    assert!(out.join("trajectory1").join("summary.json").is_file());
}

/// The full formulation (activations as variables, per trajectory its own) reaches the
/// reduced formulation's joint optimum on the reactor experiments.
#[test]
fn both_formulations_reach_the_same_joint_optimum() {
    let main = problem::load(Path::new("problems/reactions_experiments.toml")).unwrap();
    let problems = main.with_trajectories().unwrap();
    let objective = |formulation| {
        let runs = collocation::train_joint(&problems, formulation, None, &mut |_| true).unwrap();
        assert!(runs[0].solution.is_success());
        runs[0].solution.objective
    };
    let (reduced, full) = (
        objective(Formulation::Reduced),
        objective(Formulation::Full),
    );
    assert!(
        (reduced - full).abs() <= 1e-3 * reduced,
        "{reduced} vs {full}"
    );
}

/// A further trajectory in a subfolder that inherits the main file's `[data]` with a CSV file
/// reads that file relative to the main file: here the same measurements split into two
/// windows learned jointly.
#[test]
fn an_inherited_csv_is_the_main_files() {
    let d = dir("csv");
    let (code, _, stderr) = colloc(&[
        "solve",
        "problems/vanderpol-small.toml",
        "--out",
        d.join("run").to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    std::fs::copy(d.join("run/data.csv"), d.join("measured.csv")).unwrap();
    std::fs::create_dir_all(d.join("sub")).unwrap();
    let main = "name = \"csvmain\"\ntrajectories = [\"sub/replica.toml\"]\n[data]\ncsv = \"measured.csv\"\n\
                [train]\nt0 = 0.0\nt1 = 7.5\n[test]\nt1 = 30.0\n[collocation]\npoints = 100\n\
                nodes = \"chebyshev\"\n[model]\nlayers = [2, 8, 2]\nactivation = \"tanh\"\n\
                [loss]\nlambda = 1e-3\n[bounds]\nparameters = 100.0\n[solver.ipopt]\ntol = 1e-4\n";
    std::fs::write(d.join("main.toml"), main).unwrap();
    std::fs::write(
        d.join("sub/replica.toml"),
        "name = \"second_half\"\n[train]\nt0 = 7.5\nt1 = 15.0\n",
    )
    .unwrap();
    let s = solve_ok(&d.join("main.toml"), &d.join("out"));
    let t = s["trajectories"].as_array().unwrap();
    assert_eq!(t[1]["name"], "second_half");
    // The Chebyshev observations of vanderpol-small on [0, 15], split at 7.5.
    let (a, b) = (
        t[0]["observations"].as_u64().unwrap(),
        t[1]["observations"].as_u64().unwrap(),
    );
    assert_eq!(a + b, 200, "{s}");
    assert!(a > 50 && b > 50, "{s}");
}
