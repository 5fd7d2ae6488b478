//! The problem-file schema as read from TOML (raw; validated into [`super::Problem`]).

use crate::collocation::NodeKind;
use colloc_solvers::ipopt::IpoptSettings;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A whole problem file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProblem {
    /// Name used for the output folder (default: the file name without `.toml`).
    pub name: Option<String>,
    /// Seed of noise and initialization (default: 0).
    #[serde(default)]
    pub seed: u64,
    /// Where the data come from.
    pub data: RawData,
    /// Training window.
    pub train: RawTrain,
    /// Test window after the training window (optional).
    pub test: Option<RawTest>,
    /// Collocation grid.
    pub collocation: RawCollocation,
    /// The network.
    pub model: RawModel,
    /// Loss weights.
    #[serde(default)]
    pub loss: RawLoss,
    /// Variable bounds.
    #[serde(default)]
    pub bounds: RawBounds,
    /// Solver choices.
    #[serde(default)]
    pub solver: RawSolver,
    /// Sequential trainers (`colloc train`).
    #[serde(default)]
    pub sequential: crate::sequential::SequentialSettings,
    /// ADMM batches and iteration (`colloc admm`).
    pub admm: Option<crate::training::admm::AdmmSettings>,
    /// Further trajectories of the same system learned with the same network (problem files
    /// relative to this one; default: none).
    #[serde(default)]
    pub trajectories: Vec<PathBuf>,
}

/// `[data]`: a built-in system or a CSV file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawData {
    /// Built-in system name (`vanderpol`, `lotka-volterra`, `lorenz`).
    pub system: Option<String>,
    /// System parameters (defaults per system).
    #[serde(default)]
    pub parameters: BTreeMap<String, f64>,
    /// Initial state of the simulation.
    pub initial_state: Option<Vec<f64>>,
    /// Standard deviation of additive Gaussian noise (default: 0).
    #[serde(default)]
    pub noise: f64,
    /// Noise as a fraction of each state's mean absolute value (instead of `noise`).
    pub noise_relative: Option<f64>,
    /// CSV file with rows `t, y1, …, yd` (relative to the problem file).
    pub csv: Option<PathBuf>,
    /// Measurement file in Schmidt & Lipson's double-pendulum format (relative to the problem
    /// file): `% o1 o2 w1 w2`, then rows `trajectory t θ1 θ2 ω1 ω2 …`; the states are
    /// θ1, θ2, ω1, ω2 and time starts at 0.
    pub schmidt_lipson: Option<PathBuf>,
    /// Trajectory id to read from a `schmidt_lipson` file (default: 0).
    pub trajectory: Option<u32>,
}

/// `[train]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrain {
    /// Window start (default: 0, or the first CSV time).
    pub t0: Option<f64>,
    /// Window end.
    pub t1: f64,
    /// Number of generated observations (built-in systems).
    pub points: Option<usize>,
    /// Observation times of generated data: `chebyshev` (the collocation nodes' kind) or
    /// `uniform` (default: uniform).
    #[serde(default)]
    pub sampling: Sampling,
}

/// How generated observations are spaced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sampling {
    /// Equally spaced, both ends included.
    #[default]
    Uniform,
    /// At Chebyshev points of the second kind.
    Chebyshev,
}

/// `[test]`: the window `(train.t1, t1]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTest {
    /// Window end.
    pub t1: f64,
    /// Number of generated observations (equally spaced, `train.t1` excluded).
    pub points: Option<usize>,
}

/// `[collocation]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCollocation {
    /// Number of collocation points (global collocation; with `elements`, optional and then
    /// equal to `elements·(points_per_element − 1) + 1`).
    pub points: Option<usize>,
    /// Kind of points (default: chebyshev).
    #[serde(default = "default_nodes")]
    pub nodes: NodeKind,
    /// Finite elements: number of equal elements (default 1: global collocation).
    pub elements: Option<usize>,
    /// Nodes per element, both ends included (required with `elements`).
    pub points_per_element: Option<usize>,
    /// Automatic refinement of the grid after a solve (default: none).
    pub refinement: Option<RawRefinement>,
}

/// `[collocation.refinement]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRefinement {
    /// Largest number of collocation points a refinement may reach.
    pub max_points: usize,
    /// Relative collocation defect above which the grid is refined (default: the warning
    /// threshold of `colloc solve`, 0.02).
    pub defect: Option<f64>,
    /// Where the finer grid's solve starts: "data" (default) or "solution".
    pub start: Option<super::RefinementStart>,
}

fn default_nodes() -> NodeKind {
    NodeKind::Chebyshev
}

/// `[model]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// Layer sizes `[inputs, hidden…, outputs]`.
    pub layers: Vec<usize>,
    /// Hidden activation (default: tanh).
    #[serde(default = "default_activation")]
    pub activation: String,
    /// Time as an extra input (default: false).
    #[serde(default)]
    pub time_input: bool,
    /// How the network enters the ODE: `black-box` (default), `second-order` (states are
    /// positions then velocities; the network gives the accelerations) or `gray-box`
    /// (`y' = A·y + N(y)` with `known_linear = A`).
    #[serde(default = "default_structure")]
    pub structure: String,
    /// The known matrix `A` of a gray-box model, one row per state.
    pub known_linear: Option<Vec<Vec<f64>>>,
    /// Time-dependent weights `θ(t) = Σ p_i(τ) θ_i` over the training window (sequential
    /// trainers only).
    pub time_basis: Option<RawTimeBasis>,
    /// Initialization: `xavier` (Glorot uniform weights, zero biases; default) or `torch`
    /// (PyTorch's `nn.Linear` default: weights and biases uniform in ±1/√fan_in).
    #[serde(default)]
    pub init: Initialization,
    /// Train the network in standardized coordinates: each state shifted by its mean and
    /// divided by its standard deviation over the training observations, time shifted to the
    /// window start and divided by `time_scale` (default: false). Black-box models only.
    #[serde(default)]
    pub normalize: bool,
    /// The time unit `T` of the standardized coordinates (default: chosen from the data so
    /// that the standardized states change at a rate of order one).
    pub time_scale: Option<f64>,
}

/// How the network's parameters are drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Initialization {
    /// Xavier/Glorot uniform weights, zero biases.
    #[default]
    Xavier,
    /// PyTorch's `nn.Linear` default.
    Torch,
}

fn default_structure() -> String {
    "black-box".into()
}

/// `[model.time_basis]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeBasis {
    /// `legendre` or `monomial`.
    pub kind: colloc_models::BasisKind,
    /// Polynomial degree.
    pub degree: usize,
}

fn default_activation() -> String {
    "tanh".into()
}

/// `[loss]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoss {
    /// Weight λ of `λ‖θ‖²` (default: 1e-3).
    #[serde(default = "default_lambda")]
    pub lambda: f64,
    /// Pin the first collocation state to the first observation (default: false).
    #[serde(default)]
    pub fix_initial_state: bool,
}

fn default_lambda() -> f64 {
    1e-3
}

impl Default for RawLoss {
    fn default() -> Self {
        Self {
            lambda: default_lambda(),
            fix_initial_state: false,
        }
    }
}

/// `[bounds]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBounds {
    /// `|θ_i| ≤ parameters` (default: unbounded).
    pub parameters: Option<f64>,
    /// `|y_i| ≤ states` at the collocation points (default: unbounded).
    pub states: Option<f64>,
}

/// How the collocation states are started: local linear smoothing of the training
/// observations with a Gaussian kernel whose bandwidth is a multiple of their mean spacing, or
/// chosen by leave-one-out cross-validation (`"cv"`: among 0.5–6 × the spacing).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum Smoothing {
    /// Bandwidth = this factor × the mean spacing of the observations.
    Factor(f64),
    /// Bandwidth chosen by a method.
    Method(SmoothingMethod),
}

/// Data-driven bandwidth choices for [`Smoothing`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmoothingMethod {
    /// Leave-one-out cross-validation over all states.
    Cv,
}

impl Default for Smoothing {
    fn default() -> Self {
        Self::Factor(3.0)
    }
}

/// Network formulation inside the NLP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Formulation {
    /// The network substituted into the collocation constraints.
    #[default]
    Reduced,
    /// Pre-activations and activations as extra variables at each point.
    Full,
}

impl std::str::FromStr for Formulation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reduced" => Ok(Self::Reduced),
            "full" => Ok(Self::Full),
            _ => Err(format!("unknown formulation `{s}` (valid: reduced, full)")),
        }
    }
}

impl std::fmt::Display for Formulation {
    /// The name the problem file and `--formulation` use.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Reduced => "reduced",
            Self::Full => "full",
        })
    }
}

fn one() -> f64 {
    1.0
}

/// `[solver]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSolver {
    /// Network formulation (default: reduced).
    #[serde(default)]
    pub formulation: Formulation,
    /// Fit θ to derivative estimates of the smoothed states before the solve (default:
    /// false).
    #[serde(default)]
    pub prefit: bool,
    /// Standardized coordinates for the collocation trainers (`colloc solve`, `colloc admm`)
    /// in place of `[model] normalize` (default: as `[model] normalize`). A file can so train
    /// the sequential baselines in the data's units, as a paper does, and solve the
    /// collocation NLP in standardized ones.
    #[serde(default)]
    pub normalize: Option<bool>,
    /// Smoothing that starts the states (default: 3 × the mean spacing of the observations;
    /// `"cv"`: leave-one-out cross-validation).
    #[serde(default)]
    pub smoothing: Smoothing,
    /// Defect continuation for long windows: before the exact problem, solve it with the
    /// collocation equations relaxed to `D·Y − F_θ = s` and `(w/N)·Σ‖s‖²` added to the
    /// objective, for each weight `w` in turn (increasing; each stage starts from the last),
    /// then the exact problem from the last stage's solution. Default: none.
    #[serde(default)]
    pub defect_penalties: Vec<f64>,
    /// IPOPT variable scaling of the network parameters: IPOPT works with `s·θ` (default 1:
    /// none). Values above 1 shrink θ's curvature next to the states', and with it the
    /// Hessian regularization IPOPT adds in nonconvex iterations, which otherwise damps the
    /// state steps of long finite-element problems. IPOPT's convergence test then sees θ's
    /// gradient divided by `s`. Any value other than 1 switches IPOPT to user scaling (no
    /// gradient-based scaling of objective and constraints).
    #[serde(default = "one")]
    pub parameter_scaling: f64,
    /// IPOPT settings (`[solver.ipopt]`, with raw options in `[solver.ipopt.options]`).
    #[serde(default)]
    pub ipopt: IpoptSettings,
}

/// IPOPT's tolerance for training problems when `[solver.ipopt] tol` is not given: 1e-4, the
/// simultaneous-collocation paper code's and every shipped file's. IPOPT's own 1e-8 asks for
/// far more than noisy data determine; on a large global grid with dense data IPOPT then
/// cycled for thousands of iterations at a fit that 1e-4 accepts in 75 (docs/collocation.md).
pub const TRAINING_TOL: f64 = 1e-4;

impl RawProblem {
    /// Sets `[solver.ipopt] tol` to [`TRAINING_TOL`] unless the file gave it.
    pub fn apply_training_tol(&mut self, tol_given: bool) {
        if !tol_given {
            self.solver.ipopt.tol = TRAINING_TOL;
        }
    }
}

/// Whether the TOML document sets `[solver.ipopt] tol`.
pub fn gives_tol(document: &toml::Table) -> bool {
    document
        .get("solver")
        .and_then(|s| s.get("ipopt"))
        .and_then(|i| i.get("tol"))
        .is_some()
}

impl Default for RawSolver {
    fn default() -> Self {
        Self {
            formulation: Formulation::default(),
            prefit: false,
            normalize: None,
            smoothing: Smoothing::default(),
            defect_penalties: Vec::new(),
            parameter_scaling: 1.0,
            ipopt: IpoptSettings::default(),
        }
    }
}
