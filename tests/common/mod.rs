//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses part of this module

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Keys every `summary.json` has (those of `colloc solve`).
pub const SUMMARY_KEYS: [&str; 15] = [
    "status",
    "iterations",
    "wall_s",
    "solve_s",
    "eval_s",
    "objective",
    "fit_mse",
    "train_mse",
    "test_mse",
    "train_mse_clean",
    "test_mse_clean",
    "n_vars",
    "n_cons",
    "nnz_jac",
    "nnz_hess",
];

/// Asserts that `summary` has every key of [`SUMMARY_KEYS`] and of `extra`.
pub fn assert_summary_keys(summary: &serde_json::Value, extra: &[&str]) {
    for key in SUMMARY_KEYS.iter().chain(extra) {
        assert!(
            summary.get(key).is_some(),
            "summary.json lacks {key}: {summary}"
        );
    }
}

/// Runs `colloc ARGS`, sends SIGINT once a line of its stderr satisfies `ready`, and returns
/// the exit code and the whole stderr.
pub fn interrupt_when(
    args: &[&str],
    ready: impl Fn(&str) -> bool + Send + 'static,
) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_colloc"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let line = line.unwrap();
            if ready(&line) {
                let _ = tx.send(());
            }
            s.push_str(&line);
            s.push('\n');
        }
        s
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("the command reports progress");
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    (status.code(), reader.join().unwrap())
}

/// A fresh folder `colloc-{name}-{pid}` under the system's temporary folder, removed with
/// everything in it when dropped — unless the test is failing, so that its files can be read.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates the folder, emptied if an earlier run of this process id left it.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("colloc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Writes `text` into the file `file` of the folder and returns its path.
    pub fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.0.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes the problem file `{name}.toml` into the folder and loads it.
    pub fn load_problem(&self, name: &str, text: &str) -> (PathBuf, colloc::problem::Problem) {
        let path = self.write(&format!("{name}.toml"), text);
        let p = colloc::problem::load(&path).unwrap();
        (path, p)
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Loads the problem file `text` (written as `{name}.toml` into a temporary folder that is
/// removed again once it is loaded).
pub fn load_problem_text(name: &str, text: &str) -> colloc::problem::Problem {
    TempDir::new(&format!("problem-{name}"))
        .load_problem(name, text)
        .1
}

/// The total MSE of `colloc predict`'s report (the number after `mse`).
pub fn predicted_mse(report: &str) -> f64 {
    report
        .lines()
        .find_map(|l| l.strip_prefix("mse"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("an mse line")
}
