//! Errors raised while building a model.

/// A model that cannot be compiled into an NLP. Every variant names the block, term or index
/// at fault.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// Two blocks (or two element groups) share a name.
    #[error("duplicate name `{0}`")]
    DuplicateName(String),
    /// A block was declared with zero entries.
    #[error("block `{0}` is empty")]
    EmptyBlock(String),
    /// A per-entry vector has the wrong length.
    #[error("`{block}`: {what} has length {got}, expected {expected}")]
    LengthMismatch {
        /// Block or term name.
        block: String,
        /// Which vector (bounds, start, scaling, target, ...).
        what: &'static str,
        /// Length given.
        got: usize,
        /// Length required.
        expected: usize,
    },
    /// Lower bound above upper bound, or a NaN bound.
    #[error("`{block}`[{index}]: invalid bounds [{lower}, {upper}]")]
    InvalidBounds {
        /// Block name.
        block: String,
        /// Entry within the block.
        index: usize,
        /// Lower bound.
        lower: f64,
        /// Upper bound.
        upper: f64,
    },
    /// A value that must be finite (start, scaling, coefficient, weight) is not.
    #[error("`{block}`[{index}]: {what} must be finite and valid, got {value}")]
    InvalidValue {
        /// Block or term name.
        block: String,
        /// What the value is.
        what: &'static str,
        /// Entry index.
        index: usize,
        /// The value.
        value: f64,
    },
    /// A global variable index beyond the number of variables.
    #[error("`{term}`: variable index {index} out of range (the model has {n_vars} variables)")]
    VariableOutOfRange {
        /// Term name.
        term: String,
        /// The index.
        index: usize,
        /// Number of variables.
        n_vars: usize,
    },
    /// A constraint row beyond the number of constraints.
    #[error("`{term}`: constraint row {row} out of range (the model has {n_cons} constraints)")]
    RowOutOfRange {
        /// Term name.
        term: String,
        /// The row.
        row: usize,
        /// Number of constraints.
        n_cons: usize,
    },
    /// An element lists the same variable twice.
    #[error("element group `{group}`, element {element}: variable {index} appears twice among its inputs")]
    RepeatedInput {
        /// Group name.
        group: String,
        /// Element number within the group.
        element: usize,
        /// Repeated global variable.
        index: usize,
    },
    /// A structured term lists the same constraint row twice.
    #[error("`{term}`: constraint row {row} appears twice among its outputs")]
    RepeatedRow {
        /// Term name.
        term: String,
        /// The row.
        row: usize,
    },
    /// A sparse matrix of the wrong shape.
    #[error("`{term}`: matrix has {got} rows, expected {expected}")]
    ShapeMismatch {
        /// Term name.
        term: String,
        /// Rows given.
        got: usize,
        /// Rows required.
        expected: usize,
    },
    /// The problem is too large for the solver's index type.
    #[error("the model is too large: {0}")]
    TooLarge(String),
}
