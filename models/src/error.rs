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
    /// Layer sizes that do not describe a network.
    #[error("invalid layer sizes {layers:?}: {reason}")]
    InvalidLayers {
        /// The sizes.
        layers: Vec<usize>,
        /// What is wrong.
        reason: String,
    },
    /// The parameter vector does not fit the layer sizes.
    #[error("the model has {got} parameters but layer sizes {layers:?} need {expected}")]
    ParameterCount {
        /// Layer sizes.
        layers: Vec<usize>,
        /// Parameters given.
        got: usize,
        /// Parameters needed.
        expected: usize,
    },
    /// A parameter or normalization entry is NaN or infinite.
    #[error("{what} entry {index} is not finite")]
    NonFinite {
        /// Which vector.
        what: &'static str,
        /// Entry.
        index: usize,
    },
    /// The model does not fit the problem it is used for.
    #[error("the model does not fit the problem: {0}")]
    Mismatch(String),
    /// A model file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// A model file is not valid JSON for a model.
    #[error("{path}: line {line}, column {column}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// Line (1-based).
        line: usize,
        /// Column (1-based).
        column: usize,
        /// What is wrong.
        message: String,
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
