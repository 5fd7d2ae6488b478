//! The `colloc` command line. Parses arguments, calls the library, turns errors into messages
//! and exit codes (0 success, 1 failed run, 2 bad input or usage).

use clap::Parser;
use std::process::ExitCode;

/// Neural ODE training by simultaneous collocation, solved with IPOPT.
#[derive(Parser, Debug)]
#[command(name = "colloc", version, about, long_about = None)]
struct Cli {}

fn main() -> ExitCode {
    match Cli::try_parse() {
        Ok(Cli {}) => {
            // No subcommand yet: show the help, as `git` does.
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let _ = cmd.print_help();
            ExitCode::SUCCESS
        }
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            ExitCode::from(code)
        }
    }
}
