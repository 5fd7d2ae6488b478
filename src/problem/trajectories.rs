//! Further trajectories of a problem: other experiments of the same system (another initial
//! state, another CSV file, …), each in its own problem file, learned with the problem's one
//! network — jointly by `colloc solve`, as batches by `colloc admm`.

use super::{Problem, ProblemError};
use std::path::{Path, PathBuf};

impl Problem {
    /// Loads the problem files `files` (relative to this problem's file) and checks that one
    /// network serves them all: the same layers, activation, time input, structure and number
    /// of states, no time-dependent weights, and no trajectories of their own. Errors name
    /// this file's `field` and the trajectory's file. Each file keeps its own seed; what the
    /// network is trained with (coordinates, loss, bounds, solver) is this problem's.
    pub fn load_trajectories(
        &self,
        files: &[PathBuf],
        field: &str,
    ) -> Result<Vec<Problem>, ProblemError> {
        let folder = self.path.parent().unwrap_or(Path::new("."));
        let mut seen = std::collections::BTreeSet::new();
        files
            .iter()
            .map(|file| {
                let path = folder.join(file);
                let refuse = |message: String| ProblemError::Field {
                    path: self.path.display().to_string(),
                    field: field.to_string(),
                    message: format!("{}: {message}", path.display()),
                };
                if !seen.insert(path.clone()) {
                    return Err(refuse("listed twice".into()));
                }
                let other = super::load(&path).map_err(|e| refuse(e.to_string()))?;
                let mismatch = |what: &str| {
                    refuse(format!(
                        "its {what} differs from {}'s; the trajectories share one model",
                        self.path.display()
                    ))
                };
                let (a, b) = (&other.model, &self.model);
                if a.layers != b.layers
                    || a.activation != b.activation
                    || a.time_input != b.time_input
                {
                    return Err(mismatch("model (layers, activation or time input)"));
                }
                if a.structure != b.structure || a.time_basis.is_some() || b.time_basis.is_some() {
                    return Err(mismatch(
                        "model structure (or it has time-dependent weights)",
                    ));
                }
                if other.data.dim() != self.data.dim() {
                    return Err(mismatch("number of states"));
                }
                let nested = !other.trajectories.is_empty()
                    || other
                        .admm
                        .as_ref()
                        .is_some_and(|a| !a.trajectories.is_empty());
                if nested {
                    return Err(refuse(
                        "a further trajectory cannot list trajectories itself".into(),
                    ));
                }
                Ok(other)
            })
            .collect()
    }
}
