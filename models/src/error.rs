//! Errors of model construction and loading.

/// A model that cannot be built, loaded or used as asked.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// An activation name that does not exist.
    #[error("unknown activation `{name}` (valid: {valid})")]
    UnknownActivation {
        /// The name given.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// A non-smooth activation where second derivatives are needed (IPOPT).
    #[error("activation `{name}` is not twice differentiable; IPOPT needs smooth models (use one of: {smooth})")]
    NonSmoothActivation {
        /// The activation.
        name: String,
        /// The smooth alternatives, comma-separated.
        smooth: String,
    },
}
