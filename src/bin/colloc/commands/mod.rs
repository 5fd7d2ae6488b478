//! One module per subcommand.

pub mod admm;
pub mod solve;
pub mod train;
