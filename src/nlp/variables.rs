//! Variable and constraint blocks: declarations ([`VarSpec`], [`ConSpec`]) and the handles a
//! model returns for them ([`VarBlock`], [`ConBlock`]).

use super::ModelError;

/// Declaration of a block of variables.
///
/// ```
/// use colloc::nlp::VarSpec;
/// let spec = VarSpec::new("theta", &[3, 2]).bounds(-100.0, 100.0).start(0.1);
/// assert_eq!(spec.len(), 6);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct VarSpec {
    pub(crate) name: String,
    pub(crate) shape: Vec<usize>,
    pub(crate) lower: Vec<f64>,
    pub(crate) upper: Vec<f64>,
    pub(crate) start: Vec<f64>,
    pub(crate) scaling: Option<Vec<f64>>,
}

impl VarSpec {
    /// A block of the given shape (row-major), unbounded, starting at zero, unscaled.
    pub fn new(name: impl Into<String>, shape: &[usize]) -> Self {
        let len = shape.iter().product();
        Self {
            name: name.into(),
            shape: shape.to_vec(),
            lower: vec![f64::NEG_INFINITY; len],
            upper: vec![f64::INFINITY; len],
            start: vec![0.0; len],
            scaling: None,
        }
    }

    /// Number of variables in the block.
    pub fn len(&self) -> usize {
        self.start.len()
    }

    /// True when the block has no variables.
    pub fn is_empty(&self) -> bool {
        self.start.is_empty()
    }

    /// The same bounds for every entry.
    pub fn bounds(mut self, lower: f64, upper: f64) -> Self {
        self.lower.fill(lower);
        self.upper.fill(upper);
        self
    }

    /// One pair of bounds per entry.
    pub fn bounds_each(mut self, lower: Vec<f64>, upper: Vec<f64>) -> Self {
        self.lower = lower;
        self.upper = upper;
        self
    }

    /// The same starting value for every entry.
    pub fn start(mut self, value: f64) -> Self {
        self.start.fill(value);
        self
    }

    /// One starting value per entry.
    pub fn start_each(mut self, values: Vec<f64>) -> Self {
        self.start = values;
        self
    }

    /// The same scaling factor for every entry (IPOPT user scaling).
    pub fn scaling(mut self, factor: f64) -> Self {
        self.scaling = Some(vec![factor; self.len()]);
        self
    }

    /// One scaling factor per entry.
    pub fn scaling_each(mut self, factors: Vec<f64>) -> Self {
        self.scaling = Some(factors);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ModelError> {
        let n = self.len();
        if n == 0 {
            return Err(ModelError::EmptyBlock(self.name.clone()));
        }
        check_len(&self.name, "lower bounds", self.lower.len(), n)?;
        check_len(&self.name, "upper bounds", self.upper.len(), n)?;
        check_bounds(&self.name, &self.lower, &self.upper)?;
        check_finite(&self.name, "start", &self.start)?;
        if let Some(s) = &self.scaling {
            check_len(&self.name, "scaling", s.len(), n)?;
            check_positive(&self.name, s)?;
        }
        Ok(())
    }
}

/// Declaration of a block of constraint rows `lower ≤ g(x) ≤ upper`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConSpec {
    pub(crate) name: String,
    pub(crate) lower: Vec<f64>,
    pub(crate) upper: Vec<f64>,
    pub(crate) scaling: Option<Vec<f64>>,
}

impl ConSpec {
    /// `len` equality constraints `g(x) = 0`.
    pub fn equal_zero(name: impl Into<String>, len: usize) -> Self {
        Self::new(name, len, 0.0, 0.0)
    }

    /// `len` rows with the same bounds; use `f64::INFINITY` for a missing side.
    pub fn new(name: impl Into<String>, len: usize, lower: f64, upper: f64) -> Self {
        Self {
            name: name.into(),
            lower: vec![lower; len],
            upper: vec![upper; len],
            scaling: None,
        }
    }

    /// One pair of bounds per row.
    pub fn with_bounds(name: impl Into<String>, lower: Vec<f64>, upper: Vec<f64>) -> Self {
        Self {
            name: name.into(),
            lower,
            upper,
            scaling: None,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.lower.len()
    }

    /// True when the block has no rows.
    pub fn is_empty(&self) -> bool {
        self.lower.is_empty()
    }

    /// The same scaling factor for every row.
    pub fn scaling(mut self, factor: f64) -> Self {
        self.scaling = Some(vec![factor; self.len()]);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ModelError> {
        let n = self.len();
        if n == 0 {
            return Err(ModelError::EmptyBlock(self.name.clone()));
        }
        check_len(&self.name, "upper bounds", self.upper.len(), n)?;
        check_bounds(&self.name, &self.lower, &self.upper)?;
        if let Some(s) = &self.scaling {
            check_len(&self.name, "scaling", s.len(), n)?;
            check_positive(&self.name, s)?;
        }
        Ok(())
    }
}

/// Handle to a block of variables inside a model: maps block entries to global indices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarBlock {
    /// Block name.
    pub name: String,
    /// Global index of the first entry.
    pub offset: usize,
    /// Shape (row-major).
    pub shape: Vec<usize>,
}

impl VarBlock {
    /// Number of variables.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the block is empty (never for a block of a built model).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Global index of flat entry `i`. Panics if `i` is out of the block (a programming error).
    pub fn index(&self, i: usize) -> usize {
        assert!(
            i < self.len(),
            "entry {i} outside block `{}` of {} entries",
            self.name,
            self.len()
        );
        self.offset + i
    }

    /// Global index of the entry at a multi-index (row-major).
    pub fn at(&self, idx: &[usize]) -> usize {
        assert_eq!(
            idx.len(),
            self.shape.len(),
            "block `{}` has {} dimensions",
            self.name,
            self.shape.len()
        );
        let mut flat = 0;
        for (&i, &n) in idx.iter().zip(&self.shape) {
            assert!(
                i < n,
                "index {idx:?} outside block `{}` of shape {:?}",
                self.name,
                self.shape
            );
            flat = flat * n + i;
        }
        self.offset + flat
    }

    /// Global indices of all entries.
    pub fn indices(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }

    /// The block's slice of a full variable vector.
    pub fn slice<'a>(&self, x: &'a [f64]) -> &'a [f64] {
        &x[self.indices()]
    }
}

/// Handle to a block of constraint rows inside a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConBlock {
    /// Block name.
    pub name: String,
    /// Global index of the first row.
    pub offset: usize,
    /// Number of rows.
    pub len: usize,
}

impl ConBlock {
    /// Global row of entry `i`. Panics if `i` is out of the block (a programming error).
    pub fn row(&self, i: usize) -> usize {
        assert!(
            i < self.len,
            "row {i} outside constraint block `{}` of {} rows",
            self.name,
            self.len
        );
        self.offset + i
    }

    /// Global rows of all entries.
    pub fn rows(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len
    }
}

fn check_len(
    block: &str,
    what: &'static str,
    got: usize,
    expected: usize,
) -> Result<(), ModelError> {
    if got == expected {
        Ok(())
    } else {
        Err(ModelError::LengthMismatch {
            block: block.to_string(),
            what,
            got,
            expected,
        })
    }
}

fn check_bounds(block: &str, lower: &[f64], upper: &[f64]) -> Result<(), ModelError> {
    for (index, (&lo, &hi)) in lower.iter().zip(upper).enumerate() {
        if lo.is_nan() || hi.is_nan() || lo > hi || lo == f64::INFINITY || hi == f64::NEG_INFINITY {
            return Err(ModelError::InvalidBounds {
                block: block.to_string(),
                index,
                lower: lo,
                upper: hi,
            });
        }
    }
    Ok(())
}

pub(crate) fn check_finite(
    block: &str,
    what: &'static str,
    values: &[f64],
) -> Result<(), ModelError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(ModelError::InvalidValue {
            block: block.to_string(),
            what,
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

fn check_positive(block: &str, values: &[f64]) -> Result<(), ModelError> {
    match values.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
        Some(index) => Err(ModelError::InvalidValue {
            block: block.to_string(),
            what: "scaling",
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}
