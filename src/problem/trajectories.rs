//! Further trajectories of a problem: other experiments of the same system (another initial
//! state, another CSV file, …), each in its own problem file, learned with the problem's one
//! network — jointly by `colloc solve` and `colloc train`, as batches by `colloc admm`.
//!
//! A trajectory file states what differs: it is laid over the main file key by key (a section
//! it leaves out is the main file's; a key it sets replaces the main file's, and its nested
//! tables are laid over theirs in turn; arrays are replaced whole). Keys that exclude each
//! other go together: naming a data source other than the main file's system (`system`,
//! `csv`, `schmidt_lipson`) starts `[data]` afresh, `noise` and `noise_relative` replace each
//! other, and so do a global grid's `points` and the finite elements' `elements` and
//! `points_per_element`. `[admm]` and `trajectories` are never inherited; its name defaults
//! to its file name, and its seed to the main problem's plus its position in the list (1, 2,
//! …), so that experiments sharing a `[data]` section draw different noise.

use super::{schema, Problem, ProblemError};
use std::path::{Path, PathBuf};

/// Top-level keys a trajectory file does not inherit from the main file.
const NOT_INHERITED: [&str; 4] = ["name", "seed", "trajectories", "admm"];

impl Problem {
    /// This problem followed by its further trajectories (the top-level `trajectories`, loaded
    /// by [`Problem::load_trajectories`]): the list the joint trainers take.
    pub fn with_trajectories(&self) -> Result<Vec<Problem>, ProblemError> {
        let further = self.load_trajectories(&self.trajectories, "trajectories")?;
        Ok(std::iter::once(self.clone()).chain(further).collect())
    }

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
        if files.is_empty() {
            // Nothing to complete: the main file is not read again (it may be gone, e.g. a
            // temporary file loaded and removed).
            return Ok(Vec::new());
        }
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
                    .map_err(|e| {
                        // The trajectory file's own errors name it already.
                        let message = e.to_string();
                        let prefix = format!("{}: ", path.display());
                        refuse(
                            message
                                .strip_prefix(&prefix)
                                .unwrap_or(&message)
                                .to_string(),
                        )
                    })?;
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
            .filter(|(k, _)| !NOT_INHERITED.contains(&k.as_str()))
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
        overlay_problem(&mut merged, own);
        let tol_given = schema::gives_tol(&merged);
        let mut raw: schema::RawProblem =
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
        raw.apply_training_tol(tol_given);
        super::validate(raw, path)
    }
}

/// Keys of `[data]` that name where the data come from.
const DATA_SOURCES: [&str; 3] = ["system", "csv", "schmidt_lipson"];

/// Lays the trajectory file's table `own` over the main file's `base` (see the module).
fn overlay_problem(base: &mut toml::Table, mut own: toml::Table) {
    if let (Some(toml::Value::Table(data)), Some(toml::Value::Table(own_data))) =
        (base.get("data"), own.get("data"))
    {
        let names_source = DATA_SOURCES.iter().any(|k| own_data.contains_key(*k));
        let same_system = own_data
            .get("system")
            .is_some_and(|s| data.get("system") == Some(s))
            && !own_data.contains_key("csv")
            && !own_data.contains_key("schmidt_lipson");
        if names_source && !same_system {
            base.remove("data");
        }
    }
    // (section, keys the file sets, keys of the main file they replace)
    let exclusive: [(&str, &[&str], &[&str]); 4] = [
        ("data", &["noise"], &["noise_relative"]),
        ("data", &["noise_relative"], &["noise"]),
        (
            "collocation",
            &["points"],
            &["elements", "points_per_element"],
        ),
        (
            "collocation",
            &["elements", "points_per_element"],
            &["points"],
        ),
    ];
    for (section, set, replaced) in exclusive {
        if let (Some(toml::Value::Table(base)), Some(toml::Value::Table(own))) =
            (base.get_mut(section), own.get(section))
        {
            if set.iter().any(|k| own.contains_key(*k)) {
                for k in replaced {
                    base.remove(*k);
                }
            }
        }
    }
    for (key, value) in std::mem::take(&mut own) {
        overlay(base, key, value);
    }
}

/// Sets `base[key] = value`, laying a table over a table key by key.
fn overlay(base: &mut toml::Table, key: String, value: toml::Value) {
    match (base.get_mut(&key), value) {
        (Some(toml::Value::Table(inner)), toml::Value::Table(own)) => {
            for (k, v) in own {
                overlay(inner, k, v);
            }
        }
        (_, value) => {
            base.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::overlay_problem;

    fn overlaid(main: &str, own: &str) -> toml::Table {
        let mut base: toml::Table = toml::from_str(main).unwrap();
        overlay_problem(&mut base, toml::from_str(own).unwrap());
        base
    }

    const MAIN: &str = r#"
[data]
system = "vanderpol"
parameters = { mu = 1.0, a = 1.0, omega = 1.0 }
initial_state = [0.0, 1.0]
noise = 0.1
[collocation]
points = 200
nodes = "chebyshev"
[collocation.refinement]
max_points = 400
defect = 0.005
[solver.ipopt]
tol = 1e-4
max_iter = 500
"#;

    #[test]
    fn keys_are_laid_over_the_main_file() {
        let t = overlaid(
            MAIN,
            "[data]\ninitial_state = [2.0, 0.0]\nparameters = { a = 0.5 }\n\
             [collocation.refinement]\ndefect = 0.01\n[solver.ipopt]\nmax_iter = 50\n",
        );
        // The main file with those four values changed, and nothing else.
        let edited = MAIN
            .replace("a = 1.0, omega", "a = 0.5, omega")
            .replace("initial_state = [0.0, 1.0]", "initial_state = [2.0, 0.0]")
            .replace("defect = 0.005", "defect = 0.01")
            .replace("max_iter = 500", "max_iter = 50");
        let expected: toml::Table = toml::from_str(&edited).unwrap();
        assert_eq!(t, expected);
    }

    #[test]
    fn keys_that_exclude_each_other_replace_each_other() {
        // Another system, or measurements, start the data afresh; the same system does not.
        let t = overlaid(MAIN, "[data]\nsystem = \"lorenz\"\n");
        assert_eq!(t["data"].as_table().unwrap().len(), 1);
        let t = overlaid(MAIN, "[data]\ncsv = \"run2.csv\"\n");
        assert_eq!(
            t["data"].as_table().unwrap().keys().collect::<Vec<_>>(),
            ["csv"]
        );
        let t = overlaid(MAIN, "[data]\nsystem = \"vanderpol\"\nnoise = 0.2\n");
        assert_eq!(t["data"].as_table().unwrap().len(), 4);
        assert_eq!(t["data"]["noise"].as_float(), Some(0.2));
        // Relative noise replaces absolute noise.
        let t = overlaid(MAIN, "[data]\nnoise_relative = 0.05\n");
        let data = t["data"].as_table().unwrap();
        assert!(!data.contains_key("noise") && data.contains_key("noise_relative"));
        // Finite elements replace a global grid's points, and back.
        let t = overlaid(
            MAIN,
            "[collocation]\nelements = 50\npoints_per_element = 5\nnodes = \"radau\"\n",
        );
        let c = t["collocation"].as_table().unwrap();
        assert!(!c.contains_key("points"));
        assert_eq!(c["elements"].as_integer(), Some(50));
        assert!(c.contains_key("refinement"));
        let fe = "[collocation]\nelements = 50\npoints_per_element = 5\n";
        let t = overlaid(fe, "[collocation]\npoints = 100\n");
        let c = t["collocation"].as_table().unwrap();
        assert_eq!(c.keys().collect::<Vec<_>>(), ["points"]);
    }
}
