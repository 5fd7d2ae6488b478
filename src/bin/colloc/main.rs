//! The `colloc` command line. Parses arguments, calls the library, turns errors into messages
//! and exit codes: 0 success, 1 a run that did not converge or failed, 2 bad input or usage.

mod commands;
mod memory_guard;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Neural ODE training by simultaneous collocation, solved with IPOPT.
#[derive(Parser, Debug)]
#[command(
    name = "colloc",
    version,
    about,
    long_about = None,
    subcommand_required = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    /// Integrate a trained model's learned ODE from a given state (or along measurements,
    /// reporting the MSE) and write the trajectory as CSV.
    Predict(commands::predict::PredictArgs),
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

fn main() -> ExitCode {
    // Generic "Prescott" kernels on some VMs: run again with the right ones (docs/platform.md, "BLAS").
    colloc_solvers::ipopt::rerun_with_detected_blas_core();
    // Large per-iteration buffers are reused instead of re-faulted (docs/platform.md, "Memory").
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
        Command::Solve(args) => commands::solve::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Admm(args) => commands::admm::run(args),
        Command::Predict(args) => commands::predict::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
