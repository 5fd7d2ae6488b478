//! Problem files: one TOML file describes data, windows, collocation grid, model, loss,
//! bounds and solver settings, shared by every training method. [`load`] reads the raw schema
//! ([`schema`]) and validates it into a [`Problem`] (the data generated or read).

mod coordinates;
mod data;
pub mod schema;
mod systems;
mod trajectories;

pub use data::{normal_draws, read_csv, read_schmidt_lipson, Dataset, Split};
pub use schema::{Formulation, Sampling, Smoothing, SmoothingMethod};
pub use systems::{BuiltinSystem, SYSTEMS};

use crate::collocation::{NodeKind, Nodes};
use colloc_models::{Activation, Structure, TimeBasis};
use colloc_solvers::ipopt::IpoptSettings;
use colloc_solvers::ode::Dopri5;
use std::path::{Path, PathBuf};

/// Most observations a built-in system generates per window (`train.points`, `test.points`).
pub const MAX_OBSERVATIONS: usize = 10_000_000;
/// Most collocation points of a finite-element grid (20,000 take 2.4 GB in IPOPT already).
pub const MAX_ELEMENT_POINTS: usize = 1_000_000;
/// Most network parameters a problem file may declare (`model.layers`).
pub const MAX_PARAMETERS: usize = 10_000_000;

/// A problem file that cannot be used. Every variant names the file, and the line or field.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ProblemError {
    /// The file cannot be read.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// Malformed TOML, a wrong type, an unknown field or an unknown name.
    #[error("{path}: {message}")]
    Toml {
        /// The file.
        path: String,
        /// The parser's message (with line, column and the offending field).
        message: String,
    },
    /// A field with an invalid value.
    #[error("{path}: field `{field}`: {message}")]
    Field {
        /// The file.
        path: String,
        /// Dotted field name, e.g. `train.t1`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A data file with a bad line.
    #[error("{path}: line {line}: {message}")]
    Data {
        /// The data file.
        path: String,
        /// Line (1-based).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// The network described by `[model]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// Layer sizes.
    pub layers: Vec<usize>,
    /// Hidden activation.
    pub activation: Activation,
    /// Time as an extra input.
    pub time_input: bool,
    /// How the network enters the ODE.
    pub structure: Structure,
    /// Time-dependent weights over the training window, if any.
    pub time_basis: Option<TimeBasis>,
    /// How the parameters are drawn.
    pub init: schema::Initialization,
    /// Train in standardized coordinates (`[model] normalize`).
    pub normalize: bool,
    /// The time unit of the standardized coordinates, if given (else chosen from the data).
    pub time_scale: Option<f64>,
}

impl ModelSpec {
    /// The network drawn from `seed` as `[model] init` says (constant weights, black box).
    pub fn draw(&self, seed: u64) -> Result<colloc_models::Mlp, colloc_models::ModelError> {
        match self.init {
            schema::Initialization::Xavier => {
                colloc_models::Mlp::xavier(&self.layers, self.activation, self.time_input, seed)
            }
            schema::Initialization::Torch => colloc_models::Mlp::torch_default(
                &self.layers,
                self.activation,
                self.time_input,
                seed,
            ),
        }
    }
}

/// A validated problem with its data.
#[derive(Clone, Debug)]
pub struct Problem {
    /// Name (output folder).
    pub name: String,
    /// The file it came from.
    pub path: PathBuf,
    /// Seed.
    pub seed: u64,
    /// The built-in system that generated the data, if any.
    pub system: Option<BuiltinSystem>,
    /// Observations.
    pub data: Dataset,
    /// Training window start.
    pub t0: f64,
    /// Training window end.
    pub t1: f64,
    /// Collocation nodes on the training window.
    pub nodes: Nodes,
    /// The network.
    pub model: ModelSpec,
    /// λ.
    pub lambda: f64,
    /// Pin the first state to the first observation.
    pub fix_initial_state: bool,
    /// Bound on |θ_i|.
    pub parameter_bound: Option<f64>,
    /// Bound on |y_i| at collocation points.
    pub state_bound: Option<f64>,
    /// Network formulation.
    pub formulation: Formulation,
    /// Pre-fit θ to derivative estimates before the solve.
    pub prefit: bool,
    /// `[solver] normalize`: the collocation trainers' coordinates, when they differ from
    /// `[model] normalize` ([`Problem::collocation_normalize`]).
    pub solver_normalize: Option<bool>,
    /// Smoothing that starts the collocation states.
    pub smoothing: Smoothing,
    /// Automatic grid refinement of `colloc solve` (`[collocation.refinement]`), if any.
    pub refinement: Option<Refinement>,
    /// Weights `w` of the defect-continuation stages of `colloc solve` (empty: none).
    pub defect_penalties: Vec<f64>,
    /// IPOPT's scaling factor for θ (`[solver] parameter_scaling`; 1 = none).
    pub parameter_scaling: f64,
    /// IPOPT settings.
    pub ipopt: IpoptSettings,
    /// Sequential-trainer settings (`colloc train`).
    pub sequential: crate::sequential::SequentialSettings,
    /// ADMM settings (`colloc admm`), if the file has an `[admm]` section.
    pub admm: Option<crate::training::admm::AdmmSettings>,
    /// Further trajectories (`trajectories`: problem files relative to this one) learned with
    /// the same network: jointly by `colloc solve`, as further batches by `colloc admm`
    /// ([`Problem::load_trajectories`]).
    pub trajectories: Vec<PathBuf>,
    /// The standardized coordinates this problem is stated in, when it was restated by
    /// [`Problem::in_coordinates`] (`None` for a problem as loaded: the data's own units).
    pub coordinates: Option<colloc_models::Normalization>,
    /// Rows of the measurement file outside the training and test windows, which no trainer
    /// sees (`None` for generated data and for files whose rows are all used).
    pub unused_rows: Option<UnusedRows>,
}

/// Rows of a measurement file (`csv`, `schmidt_lipson`) that lie outside the training window
/// `[train.t0, train.t1]` and the test window `(train.t1, test.t1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct UnusedRows {
    /// The measurement file.
    pub file: PathBuf,
    /// Rows before `train.t0`.
    pub before: usize,
    /// Rows after the last window's end.
    pub after: usize,
    /// The last window's end (`test.t1`, or `train.t1` without a test window).
    pub window_end: f64,
    /// The last time in the file.
    pub last_time: f64,
    /// Whether the problem has a test window.
    pub has_test: bool,
}

/// Automatic grid refinement (`[collocation.refinement]`): after a converged solve whose
/// relative collocation defect exceeds `defect`, the grid is doubled ([`Nodes::refined`]) and
/// the problem solved again, while it has at most `max_points` points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Refinement {
    /// Largest number of collocation points.
    pub max_points: usize,
    /// Relative defect above which the grid is refined.
    pub defect: f64,
    /// Where the finer grid's solve starts.
    pub start: RefinementStart,
}

/// Where the solve on a refined grid starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefinementStart {
    /// As the first grid did: smoothed data, the problem's θ start and pre-fit (default). A
    /// coarse solution with a large defect is no solution of its learned ODE, and starting from
    /// it went wrong (measured in docs/collocation.md).
    #[default]
    Data,
    /// The coarse solution: its collocation polynomial at the new nodes and its θ.
    Solution,
}

impl Problem {
    /// Seed of the network initialization (the noise uses another stream of the same seed).
    pub fn init_seed(&self) -> u64 {
        self.seed.wrapping_mul(2)
    }

    /// True when the collocation trainers (`colloc solve`, `colloc admm`) work in standardized
    /// coordinates: `[solver] normalize` if the file sets it, else `[model] normalize`.
    pub fn collocation_normalize(&self) -> bool {
        self.solver_normalize.unwrap_or(self.model.normalize)
    }

    /// Replaces `[model] normalize` and `[solver] normalize` (the command-line `--normalize`:
    /// every trainer in the coordinates it names), with the checks the file gets: standardized
    /// coordinates exclude state bounds, `time_scale` needs them.
    pub fn set_normalize(&mut self, normalize: bool) -> Result<(), String> {
        if normalize && self.state_bound.is_some() {
            return Err(
                "--normalize true: the file sets `bounds.states`, which standardized \
                        coordinates do not allow"
                    .into(),
            );
        }
        if !normalize && self.model.time_scale.is_some() {
            return Err(
                "--normalize false: the file sets `model.time_scale`, which only standardized \
                 coordinates use"
                    .into(),
            );
        }
        self.model.normalize = normalize;
        self.solver_normalize = None;
        Ok(())
    }
}

/// Reads and validates a problem file.
pub fn load(path: &Path) -> Result<Problem, ProblemError> {
    load_with_seed(path, None)
}

/// [`load`] with the file's `seed` replaced by `seed` when given: the same problem with
/// another noise draw and network start (the command-line `--seed`).
pub fn load_with_seed(path: &Path, seed: Option<u64>) -> Result<Problem, ProblemError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ProblemError::Io {
        path: file.clone(),
        message: e.to_string(),
    })?;
    let mut raw: schema::RawProblem = toml::from_str(&text).map_err(|e| ProblemError::Toml {
        path: file.clone(),
        message: e.to_string().trim_end().to_string(),
    })?;
    if let Some(seed) = seed {
        raw.seed = seed;
    }
    let document: toml::Table = toml::from_str(&text).map_err(|e| ProblemError::Toml {
        path: file.clone(),
        message: e.to_string().trim_end().to_string(),
    })?;
    raw.apply_training_tol(schema::gives_tol(&document));
    validate(raw, path)
}

fn validate(raw: schema::RawProblem, path: &Path) -> Result<Problem, ProblemError> {
    let file = path.display().to_string();
    let field = |field: &str, message: String| ProblemError::Field {
        path: file.clone(),
        field: field.to_string(),
        message,
    };
    let positive = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(field(name, format!("must be a positive number, got {v}")))
        }
    };

    let name = raw.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map_or("problem".into(), |s| s.to_string_lossy().into_owned())
    });
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(field(
            "name",
            format!("`{name}` cannot be used as a folder name"),
        ));
    }

    // Data.
    let d = &raw.data;
    let sources = usize::from(d.system.is_some())
        + usize::from(d.csv.is_some())
        + usize::from(d.schmidt_lipson.is_some());
    if sources != 1 {
        return Err(field(
            "data",
            "give exactly one data source: a built-in `system`, a `csv` file or a `schmidt_lipson` measurement file".into(),
        ));
    }
    if d.trajectory.is_some() && d.schmidt_lipson.is_none() {
        return Err(field(
            "data.trajectory",
            "only a `schmidt_lipson` file has several trajectories".into(),
        ));
    }
    let file_source = match (&d.csv, &d.schmidt_lipson) {
        (Some(csv), _) => Some((csv, false)),
        (None, Some(f)) => Some((f, true)),
        (None, None) => None,
    };
    // Measured data whose test window holds no observation (reported after the training window).
    let mut empty_test_window = None;
    let mut unused_rows = None;
    let (system, data, t0) = match (&d.system, file_source) {
        (_, None) | (Some(_), Some(_)) => {
            let sys_name = d.system.as_ref().expect("one source, and it is the system");
            let system = BuiltinSystem::from_name(sys_name, &d.parameters)
                .map_err(|m| field("data.system", m))?;
            let y0 = d.initial_state.clone().ok_or_else(|| {
                field(
                    "data.initial_state",
                    "required for a built-in system".into(),
                )
            })?;
            use colloc_solvers::ode::OdeSystem;
            if y0.len() != system.dim() || y0.iter().any(|v| !v.is_finite()) {
                return Err(field(
                    "data.initial_state",
                    format!("need {} finite numbers, got {y0:?}", system.dim()),
                ));
            }
            let t0 = raw.train.t0.unwrap_or(0.0);
            let data = generate(&raw, &system, &y0, t0, &field)?;
            (Some(system), data, t0)
        }
        (None, Some((file, schmidt_lipson))) => {
            if d.initial_state.is_some()
                || !d.parameters.is_empty()
                || d.noise != 0.0
                || d.noise_relative.is_some()
            {
                return Err(field("data", "`initial_state`, `parameters` and noise apply to built-in systems, not to measured data".into()));
            }
            let file_path = path.parent().unwrap_or(Path::new(".")).join(file);
            let (t, y) = if schmidt_lipson {
                read_schmidt_lipson(&file_path, d.trajectory.unwrap_or(0))?
            } else {
                read_csv(&file_path)?
            };
            let t0 = raw.train.t0.unwrap_or(t.first().copied().unwrap_or(0.0));
            let t_end = raw.test.as_ref().map_or(raw.train.t1, |t| t.t1);
            let keep: Vec<usize> = (0..t.len())
                .filter(|&k| t[k] >= t0 && t[k] <= t_end)
                .collect();
            let before = t.iter().filter(|&&tk| tk < t0).count();
            if keep.len() < t.len() {
                unused_rows = Some(UnusedRows {
                    file: file_path.clone(),
                    before,
                    after: t.len() - keep.len() - before,
                    window_end: t_end,
                    last_time: t.last().copied().unwrap_or(f64::NAN),
                    has_test: raw.test.is_some(),
                });
            }
            let split: Vec<Split> = keep
                .iter()
                .map(|&k| {
                    if t[k] <= raw.train.t1 {
                        Split::Train
                    } else {
                        Split::Test
                    }
                })
                .collect();
            if let Some(test) = raw.test.as_ref().filter(|_| !split.contains(&Split::Test)) {
                let last = t.last().copied().unwrap_or(f64::NAN);
                empty_test_window = Some(format!(
                    "no observation of {} lies in the test window ({}, {}] (the last is at t = {last}); drop [test] to train without one",
                    file_path.display(),
                    raw.train.t1,
                    test.t1
                ));
            }
            let data = Dataset {
                t: keep.iter().map(|&k| t[k]).collect(),
                y: keep.iter().map(|&k| y[k].clone()).collect(),
                clean: None,
                split,
            };
            (None, data, t0)
        }
    };
    let t1 = raw.train.t1;
    if !(t0.is_finite() && t1.is_finite() && t0 < t1) {
        return Err(field(
            "train.t1",
            format!("the training window [{t0}, {t1}] is empty"),
        ));
    }
    let n_train = data.indices(Split::Train).len();
    if n_train < 3 {
        return Err(field(
            "train",
            format!("the training window holds {n_train} observation(s); at least 3 are needed"),
        ));
    }
    if let Some(message) = empty_test_window {
        return Err(field("test.t1", message));
    }

    // Collocation grid and model.
    let c = &raw.collocation;
    let nodes = match (c.elements, c.points_per_element, c.points) {
        (None, None, Some(points)) => {
            if points > 5000 {
                return Err(field(
                    "collocation.points",
                    format!("{points} points is too many for global collocation (at most 5000; use elements)"),
                ));
            }
            Nodes::new(c.nodes, points, t0, t1)
                .map_err(|e| field("collocation.points", e.to_string()))?
        }
        (None, None, None) => {
            return Err(field(
                "collocation.points",
                "give `points` (global collocation) or `elements` and `points_per_element`".into(),
            ))
        }
        (_, None, _) | (None, Some(_), _) => {
            return Err(field(
                "collocation.points_per_element",
                "finite elements need both `elements` and `points_per_element`".into(),
            ))
        }
        (Some(k), Some(p), points) => {
            if k == 0 || p < 2 {
                return Err(field(
                    "collocation.elements",
                    format!("need at least 1 element of at least 2 points, got {k} × {p}"),
                ));
            }
            let total = k.saturating_mul(p - 1).saturating_add(1);
            if total > MAX_ELEMENT_POINTS {
                return Err(field(
                    "collocation.elements",
                    format!(
                        "{k} elements of {p} points is too many (at most {MAX_ELEMENT_POINTS} points in all)"
                    ),
                ));
            }
            if points.is_some_and(|n| n != total) {
                return Err(field(
                    "collocation.points",
                    format!(
                        "{k} elements of {p} points share their ends: {total} points, not {}",
                        points.unwrap_or(0)
                    ),
                ));
            }
            Nodes::finite_elements(c.nodes, k, p, t0, t1)
                .map_err(|e| field("collocation.nodes", e.to_string()))?
        }
    };
    let refinement = match &c.refinement {
        None => None,
        Some(r) => {
            let defect = r
                .defect
                .unwrap_or(crate::training::collocation::DEFECT_WARNING_RELATIVE);
            if !(defect.is_finite() && defect > 0.0) {
                return Err(field(
                    "collocation.refinement.defect",
                    format!("must be a positive relative defect, got {defect}"),
                ));
            }
            let finer = nodes
                .refined()
                .map_err(|e| field("collocation.refinement", e.to_string()))?;
            if r.max_points < finer.len() {
                return Err(field(
                    "collocation.refinement.max_points",
                    format!(
                        "{} points do not allow even one refinement of this grid ({} → {} points)",
                        r.max_points,
                        nodes.len(),
                        finer.len()
                    ),
                ));
            }
            if nodes.elements.is_empty() && r.max_points > 5000 {
                return Err(field(
                    "collocation.refinement.max_points",
                    format!(
                        "{} points is too many for global collocation (at most 5000; use elements)",
                        r.max_points
                    ),
                ));
            }
            if r.max_points > MAX_ELEMENT_POINTS {
                return Err(field(
                    "collocation.refinement.max_points",
                    format!(
                        "{} points is too many (at most {MAX_ELEMENT_POINTS})",
                        r.max_points
                    ),
                ));
            }
            Some(Refinement {
                max_points: r.max_points,
                defect,
                start: r.start.unwrap_or_default(),
            })
        }
    };
    let activation: Activation = raw
        .model
        .activation
        .parse()
        .map_err(|e: colloc_models::ModelError| field("model.activation", e.to_string()))?;
    activation
        .require_smooth()
        .map_err(|e| field("model.activation", e.to_string()))?;
    let dim = data.dim();
    let layers = raw.model.layers.clone();
    let expect_in = dim + usize::from(raw.model.time_input);
    if layers.len() < 3 || layers.contains(&0) {
        return Err(field(
            "model.layers",
            format!(
                "need [inputs, hidden…, outputs] with at least one hidden layer, got {layers:?}"
            ),
        ));
    }
    let parameters = layers.windows(2).fold(0usize, |n, w| {
        n.saturating_add(w[0].saturating_add(1).saturating_mul(w[1]))
    });
    if parameters > MAX_PARAMETERS {
        return Err(field(
            "model.layers",
            format!("{layers:?} has {parameters} parameters, too many (at most {MAX_PARAMETERS})"),
        ));
    }
    let structure = match (raw.model.structure.as_str(), &raw.model.known_linear) {
        ("black-box", None) => Structure::BlackBox,
        ("second-order", None) => Structure::SecondOrder,
        ("gray-box", Some(a)) => Structure::GrayBox { linear: a.clone() },
        ("gray-box", None) => {
            return Err(field(
                "model.known_linear",
                "a gray-box model needs its known matrix `known_linear`".into(),
            ))
        }
        ("black-box" | "second-order", Some(_)) => {
            return Err(field(
                "model.known_linear",
                "only gray-box models have a known matrix".into(),
            ))
        }
        (other, _) => {
            return Err(field(
                "model.structure",
                format!("unknown structure `{other}` (valid: black-box, second-order, gray-box)"),
            ))
        }
    };
    let outputs = structure.network_outputs(dim).map_err(|e| {
        let f = if matches!(structure, Structure::GrayBox { .. }) {
            "model.known_linear"
        } else {
            "model.structure"
        };
        field(f, e)
    })?;
    if layers[0] != expect_in || layers[layers.len() - 1] != outputs {
        return Err(field(
            "model.layers",
            format!("the data have {dim} state{}{}, so a {} network's layers must start with {expect_in} and end with {outputs}; got {layers:?}", if dim == 1 { "" } else { "s" }, if raw.model.time_input { " plus time" } else { "" }, structure.name()),
        ));
    }
    if let Some(b) = &raw.model.time_basis {
        if b.degree > 12 {
            return Err(field(
                "model.time_basis.degree",
                format!("degree {} is too high (at most 12)", b.degree),
            ));
        }
    }
    let time_basis = raw.model.time_basis.as_ref().map(|b| TimeBasis {
        kind: b.kind,
        degree: b.degree,
        t0,
        t1,
    });
    let lambda = raw.loss.lambda;
    if !(lambda.is_finite() && lambda >= 0.0) {
        return Err(field(
            "loss.lambda",
            format!("must be a non-negative number, got {lambda}"),
        ));
    }
    let parameter_bound = raw
        .bounds
        .parameters
        .map(|b| positive("bounds.parameters", b))
        .transpose()?;
    let state_bound = raw
        .bounds
        .states
        .map(|b| positive("bounds.states", b))
        .transpose()?;
    let time_scale = raw
        .model
        .time_scale
        .map(|v| positive("model.time_scale", v))
        .transpose()?;
    let collocation_normalize = raw.solver.normalize.unwrap_or(raw.model.normalize);
    if !(raw.model.normalize || collocation_normalize) && time_scale.is_some() {
        return Err(field(
            "model.time_scale",
            "only used with `model.normalize = true` or `solver.normalize = true`".into(),
        ));
    }
    if collocation_normalize && state_bound.is_some() {
        let setting = match raw.solver.normalize {
            Some(true) => "solver.normalize = true",
            _ => "model.normalize = true",
        };
        return Err(field(
            "bounds.states",
            format!(
                "state bounds are not available with `{setting}` (they would bound the \
                 standardized states)"
            ),
        ));
    }
    let penalties = &raw.solver.defect_penalties;
    if let Some(w) = penalties.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
        return Err(field(
            "solver.defect_penalties",
            format!("weights must be positive numbers, got {w}"),
        ));
    }
    if penalties.windows(2).any(|w| w[1] <= w[0]) {
        return Err(field(
            "solver.defect_penalties",
            format!("weights must increase, got {penalties:?}"),
        ));
    }
    let parameter_scaling = positive("solver.parameter_scaling", raw.solver.parameter_scaling)?;
    if let Smoothing::Factor(f) = raw.solver.smoothing {
        positive("solver.smoothing", f)?;
    }
    raw.solver
        .ipopt
        .validate()
        .map_err(|e| field("solver.ipopt", e.to_string()))?;
    raw.sequential
        .validate()
        .map_err(|(name, why)| field(&name, why))?;
    if let Some(a) = &raw.admm {
        a.validate(t0, t1).map_err(|(name, why)| {
            // Measured data start the training window at their first time unless train.t0 says.
            let early = a.windows.iter().any(|w| w[0] < t0 - 1e-12);
            if name == "admm.windows" && early && raw.train.t0.is_none() {
                field(
                    &name,
                    format!(
                        "{why} (without train.t0 the training window starts at the first \
                         observation, t = {t0}: set train.t0, or start the first window there)"
                    ),
                )
            } else {
                field(&name, why)
            }
        })?;
    }

    Ok(Problem {
        name,
        path: path.to_path_buf(),
        seed: raw.seed,
        system,
        data,
        t0,
        t1,
        nodes,
        refinement,
        model: ModelSpec {
            layers,
            activation,
            time_input: raw.model.time_input,
            structure,
            time_basis,
            init: raw.model.init,
            normalize: raw.model.normalize,
            time_scale,
        },
        lambda,
        fix_initial_state: raw.loss.fix_initial_state,
        parameter_bound,
        state_bound,
        formulation: raw.solver.formulation,
        prefit: raw.solver.prefit,
        solver_normalize: raw.solver.normalize,
        smoothing: raw.solver.smoothing,
        defect_penalties: raw.solver.defect_penalties,
        parameter_scaling,
        ipopt: raw.solver.ipopt,
        sequential: raw.sequential,
        admm: raw.admm,
        trajectories: raw.trajectories,
        coordinates: None,
        unused_rows,
    })
}

fn generate(
    raw: &schema::RawProblem,
    system: &BuiltinSystem,
    y0: &[f64],
    t0: f64,
    field: &dyn Fn(&str, String) -> ProblemError,
) -> Result<Dataset, ProblemError> {
    let train_points = raw
        .train
        .points
        .ok_or_else(|| field("train.points", "required for a built-in system".into()))?;
    if !(3..=MAX_OBSERVATIONS).contains(&train_points) {
        return Err(field(
            "train.points",
            format!("need 3 to {MAX_OBSERVATIONS}, got {train_points}"),
        ));
    }
    if !t0.is_finite() {
        return Err(field(
            "train.t0",
            format!("must be a finite number, got {t0}"),
        ));
    }
    let t1 = raw.train.t1;
    if !(t1.is_finite() && t1 > t0) {
        return Err(field(
            "train.t1",
            format!("must be after train.t0 = {t0}, got {t1}"),
        ));
    }
    let mut t: Vec<f64> = match raw.train.sampling {
        Sampling::Uniform => (0..train_points)
            .map(|k| t0 + (t1 - t0) * k as f64 / (train_points - 1) as f64)
            .collect(),
        Sampling::Chebyshev => {
            Nodes::new(NodeKind::Chebyshev, train_points, t0, t1)
                .map_err(|e| field("train.points", e.to_string()))?
                .times
        }
    };
    let mut split = vec![Split::Train; t.len()];
    if let Some(test) = &raw.test {
        let n = test
            .points
            .ok_or_else(|| field("test.points", "required for a built-in system".into()))?;
        if n == 0 || n > MAX_OBSERVATIONS {
            return Err(field(
                "test.points",
                format!("need 1 to {MAX_OBSERVATIONS} (or no [test] section), got {n}"),
            ));
        }
        if !(test.t1.is_finite() && test.t1 > t1) {
            return Err(field(
                "test.t1",
                format!("must be after train.t1 = {t1}, got {}", test.t1),
            ));
        }
        t.extend((1..=n).map(|k| t1 + (test.t1 - t1) * k as f64 / n as f64));
        split.extend(std::iter::repeat_n(Split::Test, n));
    }
    let sol = Dopri5::with_tolerances(1e-11, 1e-13)
        .solve(system, t0, y0, &t)
        .map_err(|e| field("data", format!("simulating the system failed: {e}")))?;
    let clean = sol.y;
    let d = y0.len();
    if raw.data.noise_relative.is_some() && raw.data.noise != 0.0 {
        return Err(field(
            "data.noise_relative",
            "give `noise` or `noise_relative`, not both".into(),
        ));
    }
    let sigma: Vec<f64> = match raw.data.noise_relative {
        Some(r) if r.is_finite() && r >= 0.0 => (0..d)
            .map(|i| r * clean.iter().map(|y| y[i].abs()).sum::<f64>() / clean.len() as f64)
            .collect(),
        Some(r) => {
            return Err(field(
                "data.noise_relative",
                format!("must be a non-negative number, got {r}"),
            ))
        }
        None if raw.data.noise.is_finite() && raw.data.noise >= 0.0 => vec![raw.data.noise; d],
        None => {
            return Err(field(
                "data.noise",
                format!("must be a non-negative number, got {}", raw.data.noise),
            ))
        }
    };
    let z = normal_draws(raw.seed.wrapping_mul(2).wrapping_add(1), t.len() * d);
    let y = clean
        .iter()
        .enumerate()
        .map(|(k, c)| (0..d).map(|i| c[i] + sigma[i] * z[k * d + i]).collect())
        .collect();
    Ok(Dataset {
        t,
        y,
        clean: Some(clean),
        split,
    })
}
