//! One module per subcommand.

pub mod solve;
pub mod train;
