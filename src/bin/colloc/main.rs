//! The `colloc` command line. Parses arguments, calls the library, turns errors into messages
//! and exit codes: 0 success, 1 a run that did not converge or failed, 2 bad input or usage.

mod commands;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Neural ODE training by simultaneous collocation, solved with IPOPT.
#[derive(Parser, Debug)]
#[command(name = "colloc", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a neural ODE by simultaneous collocation (one IPOPT solve).
    Solve(commands::solve::SolveArgs),
    /// Train a neural ODE sequentially: integrate and follow exact gradients (vanilla,
    /// homotopy or multiple shooting).
    Train(commands::train::TrainArgs),
    /// Train by ADMM: one collocation sub-problem per batch, solved in parallel, driven to
    /// consensus of the network parameters.
    Admm(commands::admm::AdmmArgs),
}

/// An error with the exit code it deserves.
pub struct Failure {
    /// 1: the run failed; 2: bad input.
    pub code: u8,
    /// The message.
    pub message: String,
}

impl Failure {
    /// Bad input (exit 2).
    pub fn input(message: impl std::fmt::Display) -> Self {
        Self {
            code: 2,
            message: message.to_string(),
        }
    }
    /// A failed run (exit 1).
    pub fn run(message: impl std::fmt::Display) -> Self {
        Self {
            code: 1,
            message: message.to_string(),
        }
    }
}

/// OpenBLAS reads `OPENBLAS_CORETYPE` when it is loaded. On some virtual machines its CPU
/// detection falls back to the generic "Prescott" kernels although the CPU has AVX2/AVX-512
/// (seen on this project's machines: 1.2× slower solves). Then run this program again, once,
/// with the right core type. Failing that, carry on as before.
fn fix_blas_core_type() {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os("OPENBLAS_CORETYPE").is_some()
            || std::env::var_os("COLLOC_BLAS_REEXEC").is_some()
        {
            return;
        }
        let detected = colloc_solvers::ipopt::blas_core_name().unwrap_or_default();
        if !detected.eq_ignore_ascii_case("prescott") {
            return;
        }
        let core = if std::arch::is_x86_feature_detected!("avx512f") {
            "SkylakeX"
        } else if std::arch::is_x86_feature_detected!("avx2") {
            "Haswell"
        } else {
            return;
        };
        if let Ok(exe) = std::env::current_exe() {
            // `exec` only returns on failure; then the run continues unchanged.
            let _ = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env("OPENBLAS_CORETYPE", core)
                .env("COLLOC_BLAS_REEXEC", "1")
                .exec();
        }
    }
}

fn main() -> ExitCode {
    fix_blas_core_type();
    // Large per-iteration buffers are reused instead of re-faulted (README, "Memory").
    colloc_solvers::ipopt::retain_freed_memory();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Some(Command::Solve(args)) => commands::solve::run(args),
        Some(Command::Train(args)) => commands::train::run(args),
        Some(Command::Admm(args)) => commands::admm::run(args),
        None => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let _ = cmd.print_help();
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
