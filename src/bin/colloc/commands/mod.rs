//! One module per subcommand.

pub mod solve;
