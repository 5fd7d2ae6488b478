//! The `colloc` binary: version, help, and usage errors (exit code 2, message on stderr).

use std::process::Command;

fn colloc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_colloc"))
        .args(args)
        .output()
        .expect("the binary runs")
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
