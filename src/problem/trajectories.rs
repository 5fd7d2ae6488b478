//! Further trajectories of a problem: other experiments of the same system (another initial
//! state, another CSV file, …), each in its own problem file, learned with the problem's one
//! network — jointly by `colloc solve` and `colloc train`, as batches by `colloc admm`.
//!
//! A trajectory file states what differs: every top-level section it leaves out (`[data]`,
//! `[train]`, `[test]`, `[collocation]`, `[model]`, `[loss]`, `[bounds]`, `[solver]`,
//! `[sequential]`) is the main file's, whole; `[admm]` and `trajectories` are never inherited;
//! its name defaults to its file name, and its seed to the main problem's plus its position in
//! the list (1, 2, …), so that experiments sharing a `[data]` section draw different noise.

use super::{schema, Problem, ProblemError};
use std::path::{Path, PathBuf};

/// Top-level keys a trajectory file does not inherit from the main file.
const NOT_INHERITED: [&str; 4] = ["name", "seed", "trajectories", "admm"];

impl Problem {
    /// Loads the problem files `files` (relative to this problem's file; each completed by the
    /// sections it leaves out, see the module) and checks that one network serves them all:
    /// the same layers, activation, time input, structure and number of states, no
    /// time-dependent weights, and no trajectories of their own. Errors name this file's
    /// `field` and the trajectory's file. What the network is trained with (coordinates, loss,
    /// bounds, solver) is this problem's.
    pub fn load_trajectories(
        &self,
        files: &[PathBuf],
        field: &str,
    ) -> Result<Vec<Problem>, ProblemError> {
        let folder = self.path.parent().unwrap_or(Path::new("."));
        let mut seen = std::collections::BTreeSet::new();
        let main_text = std::fs::read_to_string(&self.path).map_err(|e| ProblemError::Io {
            path: self.path.display().to_string(),
            message: e.to_string(),
        })?;
        let main: toml::Table = toml::from_str(&main_text).map_err(|e| ProblemError::Toml {
            path: self.path.display().to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        files
            .iter()
            .enumerate()
            .map(|(j, file)| {
                let path = folder.join(file);
                let refuse = |message: String| ProblemError::Field {
                    path: self.path.display().to_string(),
                    field: field.to_string(),
                    message: format!("{}: {message}", path.display()),
                };
                if !seen.insert(path.clone()) {
                    return Err(refuse("listed twice".into()));
                }
                let other = self
                    .load_inheriting(&main, &path, j as u64 + 1)
                    .map_err(|e| refuse(e.to_string()))?;
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

    /// The trajectory file `path` completed by the main file's table `main` (see the module):
    /// the `index`-th in the list.
    fn load_inheriting(
        &self,
        main: &toml::Table,
        path: &Path,
        index: u64,
    ) -> Result<Problem, ProblemError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ProblemError::Io {
            path: file.clone(),
            message: e.to_string(),
        })?;
        let toml_error = |message: String| ProblemError::Toml {
            path: file.clone(),
            message: message.trim_end().to_string(),
        };
        let own: toml::Table = toml::from_str(&text).map_err(|e| toml_error(e.to_string()))?;
        let mut merged: toml::Table = main
            .iter()
            .filter(|(k, _)| !NOT_INHERITED.contains(&k.as_str()) && !own.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // Files named in an inherited `[data]` stay the main file's: relative to its folder.
        if let Some(toml::Value::Table(data)) = merged.get_mut("data") {
            let folder = self.path.parent().unwrap_or(Path::new("."));
            let folder = if folder.as_os_str().is_empty() {
                Path::new(".")
            } else {
                folder
            };
            for key in ["csv", "schmidt_lipson"] {
                if let Some(toml::Value::String(file)) = data.get_mut(key) {
                    if Path::new(file.as_str()).is_relative() {
                        let absolute = std::fs::canonicalize(folder)
                            .map_err(|e| toml_error(e.to_string()))?
                            .join(file.as_str());
                        *file = absolute.display().to_string();
                    }
                }
            }
        }
        if !own.contains_key("seed") {
            let seed = i64::try_from(self.seed.wrapping_add(index) % (1u64 << 63))
                .map_err(|e| toml_error(e.to_string()))?;
            merged.insert("seed".into(), toml::Value::Integer(seed));
        }
        merged.extend(own);
        let raw: schema::RawProblem =
            toml::Value::Table(merged)
                .try_into()
                .map_err(|merged: toml::de::Error| {
                    // The file's own mistake (an unknown field, a wrong type) with its line, when
                    // parsing it alone shows one; else the completed file's message.
                    match toml::from_str::<schema::RawProblem>(&text) {
                        Err(e) if !e.message().starts_with("missing field") => {
                            toml_error(e.to_string())
                        }
                        _ => toml_error(merged.to_string()),
                    }
                })?;
        super::validate(raw, path)
    }
}
