//! ADMM consensus training (Sec. 4.4 of the simultaneous-collocation paper; Boyd et al. 2010,
//! §7.1): the training data are split into batches (contiguous windows of the trajectory,
//! each with its own collocation grid and initial state); each batch solves its collocation
//! NLP with a proximal term, in parallel; the parameters are driven to consensus:
//!
//! ```text
//!   θ_i ← argmin L_i(θ, Y_i) + (ρ/2)‖θ − θ̄ + u_i/ρ‖²      (every batch i, concurrently)
//!   θ̄  ← mean_i θ_i
//!   u_i ← u_i + ρ(θ_i − θ̄)
//! ```
//!
//! Stopping: primal residual `r = (Σ_i ‖θ_i − θ̄‖²)^½` and dual residual
//! `s = ρ √N ‖θ̄ᵏ − θ̄ᵏ⁻¹‖` below `ε_pri = √(Np) ε_abs + ε_rel max(‖θ‖, √N ‖θ̄‖)` and
//! `ε_dual = √(Np) ε_abs + ε_rel ‖u‖`. Optional residual balancing changes ρ by τ when one
//! residual exceeds μ times the other (the unscaled duals u stay, so the scaled duals u/ρ are
//! rescaled with ρ). From the second iteration on every sub-problem is warm-started from its
//! own previous primal and dual solution. Optional accelerations of the map `(θ̄, u) ↦
//! (θ̄⁺, u⁺)`: Anderson mixing ([`super::anderson`]) or Nesterov momentum with restart
//! ([`super::momentum`]). The whole state is checkpointed after every iteration so a run can
//! resume.

use super::anderson::Anderson;
use super::collocation::{build_with, simulate_and_score, Evaluation, Proximal, TrainError};
use super::coordinates::standardization;
use super::momentum::Momentum;
use crate::collocation::{interpolation_matrix, Nodes};
use crate::problem::{Dataset, Problem, Split};
use colloc_models::Mlp;
use colloc_solvers::ipopt::{IpoptSolver, WarmStart};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// What to do when a sub-problem fails (IPOPT error, no convergence, non-finite θ).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Keep the batch's last good θ_i (and its warm start) and go on (default).
    #[default]
    Keep,
    /// Stop with an error naming the batch and iteration.
    Stop,
}

/// `[admm]`: batches and the consensus iteration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmmSettings {
    /// Batch windows `[start, end]` within the training window (default: none — required).
    pub windows: Vec<[f64; 2]>,
    /// Collocation points per batch (default: the problem's collocation points × the batch's
    /// share of the training window).
    pub points: Option<usize>,
    /// Further trajectories in the consensus: problem files (paths relative to this file), each
    /// with its own data source (another initial state, another CSV, …) and the same model;
    /// each is split by its own `[admm] windows`, or is one batch over its training window
    /// (default: none).
    pub trajectories: Vec<std::path::PathBuf>,
    /// Penalty ρ (default: 1).
    pub rho: f64,
    /// Iteration limit (default: 50).
    pub max_iter: usize,
    /// Absolute tolerance ε_abs (default: 1e-4).
    pub eps_abs: f64,
    /// Relative tolerance ε_rel (default: 1e-4).
    pub eps_rel: f64,
    /// Residual balancing of ρ (default: true).
    pub adaptive_rho: bool,
    /// Balancing threshold μ (default: 10).
    pub balance_threshold: f64,
    /// Balancing factor τ (default: 2).
    pub balance_factor: f64,
    /// Over-relaxation α in (0, 2) (Boyd et al. §3.4.3): the consensus and dual updates use
    /// `α θ_i + (1 − α) θ̄` in place of `θ_i` (default: 1, plain ADMM; 1.5–1.8 often faster).
    pub relaxation: f64,
    /// Warm-start sub-problems from their previous solution (default: true).
    pub warm_start: bool,
    /// What a failed sub-problem does to the run (default: keep).
    pub on_failure: OnFailure,
    /// Anderson acceleration of the ADMM map `(θ̄, u/ρ) ↦ (θ̄⁺, u⁺/ρ)` with this many previous
    /// steps (0: off, the default). Reset whenever ρ changes or the fixed-point residual more
    /// than doubles.
    pub anderson_memory: usize,
    /// Nesterov extrapolation of `(θ̄, u)` with restart (Goldstein et al. 2014, "Fast
    /// alternating direction optimization methods", Alg. 8): after each iteration the next
    /// sub-problems are solved at `z_k + (a_k − 1)/a_{k+1} (z_k − z_{k−1})`; when the combined
    /// residual `‖u_k − û_k‖²/ρ + ρN‖θ̄_k − θ̂̄_k‖²` fails to fall below `restart_factor` times
    /// its last value the momentum restarts from `z_{k−1}` (from `z_k` when the last point was
    /// not extrapolated, which would only repeat the last solve) (default: false).
    pub momentum: bool,
    /// Restart factor η of the momentum (default: 0.999).
    pub restart_factor: f64,
}

impl Default for AdmmSettings {
    fn default() -> Self {
        Self {
            windows: Vec::new(),
            points: None,
            trajectories: Vec::new(),
            rho: 1.0,
            max_iter: 50,
            eps_abs: 1e-4,
            eps_rel: 1e-4,
            adaptive_rho: true,
            balance_threshold: 10.0,
            balance_factor: 2.0,
            relaxation: 1.0,
            warm_start: true,
            on_failure: OnFailure::Keep,
            anderson_memory: 0,
            momentum: false,
            restart_factor: 0.999,
        }
    }
}

impl AdmmSettings {
    /// Checks every field against the problem's training window; the error names the field.
    pub fn validate(&self, t0: f64, t1: f64) -> Result<(), (String, String)> {
        let bad = |f: &str, why: String| Err((format!("admm.{f}"), why));
        if self.windows.is_empty() {
            return bad(
                "windows",
                "give at least one batch window [start, end]".into(),
            );
        }
        for (i, w) in self.windows.iter().enumerate() {
            if !(w[0].is_finite() && w[1].is_finite() && w[0] < w[1]) {
                return bad(
                    "windows",
                    format!("window {i} {w:?} must be finite and increasing"),
                );
            }
            if w[0] < t0 - 1e-12 || w[1] > t1 + 1e-12 {
                return bad(
                    "windows",
                    format!("window {i} {w:?} leaves the training window [{t0}, {t1}]"),
                );
            }
        }
        for (f, v) in [
            ("rho", self.rho),
            ("eps_abs", self.eps_abs),
            ("eps_rel", self.eps_rel),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(f, format!("must be a positive number, got {v}"));
            }
        }
        if !(self.balance_threshold > 1.0 && self.balance_factor > 1.0) {
            return bad(
                "balance_factor",
                "balance_threshold and balance_factor must be > 1".into(),
            );
        }
        if self.max_iter == 0 {
            return bad("max_iter", "must be at least 1".into());
        }
        if self.anderson_memory > 50 {
            return bad(
                "anderson_memory",
                format!("must be at most 50, got {}", self.anderson_memory),
            );
        }
        if self.momentum && self.anderson_memory > 0 {
            return bad(
                "momentum",
                "choose one acceleration: momentum or anderson_memory".into(),
            );
        }
        if !(self.restart_factor > 0.0 && self.restart_factor <= 1.0) {
            return bad(
                "restart_factor",
                format!("must be in (0, 1], got {}", self.restart_factor),
            );
        }
        if !(self.relaxation > 0.0 && self.relaxation < 2.0) {
            return bad(
                "relaxation",
                format!("must be in (0, 2), got {}", self.relaxation),
            );
        }
        Ok(())
    }
}

/// One batch: the problem restricted to a window.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The window.
    pub window: [f64; 2],
    /// The sub-problem (its data, collocation grid and window).
    pub problem: Problem,
}

/// The problem ADMM works on: the problem itself, or with `[model] normalize = true` the
/// problem restated in the standardized coordinates of its training data (batch windows
/// mapped).
fn working_problem(problem: &Problem) -> Result<Problem, TrainError> {
    if !problem.model.normalize {
        return Ok(problem.clone());
    }
    problem
        .in_coordinates(&standardization(problem))
        .map_err(|e| TrainError::Unsupported(e.to_string()))
}

/// Splits the problem's training data into the batches of `settings`, then adds the batches of
/// each further trajectory (`settings.trajectories`, loaded relative to the problem's file).
/// With `[model] normalize = true` every batch (further trajectories too) is stated in the
/// standardized coordinates of the problem's own training data; the batch windows stay in the
/// data's units.
pub fn make_batches(problem: &Problem, settings: &AdmmSettings) -> Result<Vec<Batch>, TrainError> {
    let working = working_problem(problem)?;
    let coordinates = working.coordinates.clone();
    let to_working = |w: &[f64; 2]| match &coordinates {
        Some(n) => [n.time_to_normalized(w[0]), n.time_to_normalized(w[1])],
        None => *w,
    };
    let windows: Vec<[f64; 2]> = settings.windows.iter().map(to_working).collect();
    let mut batches = window_batches(&working, &windows, settings.points, "")?;
    let folder = problem
        .path
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    for (j, file) in settings.trajectories.iter().enumerate() {
        let path = folder.join(file);
        let trajectory_error = |message: String| TrainError::Trajectory {
            path: path.display().to_string(),
            message,
        };
        let other = crate::problem::load(&path).map_err(|e| trajectory_error(e.to_string()))?;
        let mismatch = |what: &str| {
            trajectory_error(format!(
                "its {what} differs from {}'s; the consensus needs one model",
                problem.path.display()
            ))
        };
        let (a, b) = (&other.model, &problem.model);
        if a.layers != b.layers || a.activation != b.activation || a.time_input != b.time_input {
            return Err(mismatch("model (layers, activation or time input)"));
        }
        if a.structure != b.structure || a.time_basis.is_some() || b.time_basis.is_some() {
            return Err(mismatch(
                "model structure (or it has time-dependent weights)",
            ));
        }
        if a.normalize != b.normalize {
            return Err(mismatch("`model.normalize`"));
        }
        if other.data.dim() != problem.data.dim() {
            return Err(mismatch("number of states"));
        }
        // The consensus network works in one set of coordinates: the main problem's.
        let other = match &coordinates {
            Some(n) => other
                .in_coordinates(n)
                .map_err(|e| trajectory_error(e.to_string()))?,
            None => other,
        };
        let (windows, points) = match &other.admm {
            Some(o) if !o.trajectories.is_empty() => {
                return Err(trajectory_error(
                    "a further trajectory cannot list trajectories itself".into(),
                ))
            }
            Some(o) => (o.windows.clone(), o.points),
            None => (vec![[other.t0, other.t1]], None),
        };
        batches.extend(window_batches(
            &other,
            &windows,
            points,
            &format!("-trajectory{}", j + 1),
        )?);
    }
    Ok(batches)
}

/// The batches of one trajectory: its training data restricted to each window.
fn window_batches(
    problem: &Problem,
    windows: &[[f64; 2]],
    points: Option<usize>,
    label: &str,
) -> Result<Vec<Batch>, TrainError> {
    let train = problem.data.indices(Split::Train);
    let span = problem.t1 - problem.t0;
    windows
        .iter()
        .enumerate()
        .map(|(i, &[a, b])| {
            let rows: Vec<usize> = train
                .iter()
                .copied()
                .filter(|&k| problem.data.t[k] >= a && problem.data.t[k] <= b)
                .collect();
            if rows.len() < 3 {
                return Err(TrainError::Unsupported(format!(
                    "ADMM batch {i} {:?} of {} holds {} training observations (need at least 3)",
                    [a, b],
                    problem.path.display(),
                    rows.len()
                )));
            }
            let mut p = problem.clone();
            p.name = format!("{}{label}-batch{i}", problem.name);
            p.data = Dataset {
                t: rows.iter().map(|&k| problem.data.t[k]).collect(),
                y: rows.iter().map(|&k| problem.data.y[k].clone()).collect(),
                clean: problem
                    .data
                    .clean
                    .as_ref()
                    .map(|c| rows.iter().map(|&k| c[k].clone()).collect()),
                split: vec![Split::Train; rows.len()],
            };
            p.t0 = a;
            p.t1 = b;
            p.nodes = batch_nodes(&problem.nodes, points, [a, b], span)?;
            let window = match &problem.coordinates {
                Some(n) => [n.time_from_normalized(a), n.time_from_normalized(b)],
                None => [a, b],
            };
            Ok(Batch { window, problem: p })
        })
        .collect()
}

/// A batch's collocation grid on `[a, b]`: global collocation with `points` nodes (default:
/// the problem's share for the window's length); finite elements with the problem's points
/// per element and its share of elements (at least one).
fn batch_nodes(
    nodes: &Nodes,
    points: Option<usize>,
    [a, b]: [f64; 2],
    span: f64,
) -> Result<Nodes, TrainError> {
    let share = (b - a) / span;
    match nodes.elements.first() {
        None => {
            let points =
                points.unwrap_or_else(|| ((nodes.len() as f64 * share).round() as usize).max(3));
            Ok(Nodes::new(nodes.kind, points, a, b)?)
        }
        Some(_) if points.is_some() => Err(TrainError::Unsupported(
            "admm.points sets the points of global collocation; with finite elements each batch gets the problem's points per element and its share of the elements".into(),
        )),
        Some((_, element)) => {
            let k = ((nodes.elements.len() as f64 * share).round() as usize).max(1);
            Ok(Nodes::finite_elements(nodes.kind, k, element.len(), a, b)?)
        }
    }
}

/// One batch's outcome in one iteration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BatchRecord {
    /// IPOPT status name.
    pub status: String,
    /// Whether its θ_i was accepted (false: failed, the last good θ_i was kept).
    pub accepted: bool,
    /// Sub-problem objective (data fit + λ‖θ‖² + proximal term).
    pub objective: f64,
    /// IPOPT iterations.
    pub iterations: usize,
    /// Wall seconds of the build and solve.
    pub seconds: f64,
    /// Warm-started.
    pub warm: bool,
    /// The warm-started solve failed and was repeated from a cold start (`iterations` counts
    /// both).
    #[serde(default)]
    pub cold_retry: bool,
}

/// One ADMM iteration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IterationRecord {
    /// Iteration (1-based).
    pub iteration: usize,
    /// ρ used in this iteration.
    pub rho: f64,
    /// Primal residual.
    pub primal: f64,
    /// Dual residual.
    pub dual: f64,
    /// Primal tolerance.
    pub eps_primal: f64,
    /// Dual tolerance.
    pub eps_dual: f64,
    /// Wall seconds of the iteration.
    pub seconds: f64,
    /// Sum of the sub-problem solve times (what solving them one after another would cost).
    pub sequential_seconds: f64,
    /// Per batch.
    pub batches: Vec<BatchRecord>,
    /// The consensus model after this iteration, simulated over the whole problem as the
    /// final evaluation does: MSE against the training observations (a learning curve; no
    /// decision depends on it).
    #[serde(default)]
    pub consensus_train_mse: Option<f64>,
    /// The same simulation against the test observations, when the problem has a test window.
    #[serde(default)]
    pub consensus_test_mse: Option<f64>,
}

/// Everything needed to continue a run (written after every iteration).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdmmState {
    /// Iterations done.
    pub iteration: usize,
    /// Current ρ.
    pub rho: f64,
    /// Consensus θ̄.
    pub consensus: Vec<f64>,
    /// Per-batch θ_i.
    pub thetas: Vec<Vec<f64>>,
    /// Per-batch unscaled duals u_i.
    pub duals: Vec<Vec<f64>>,
    /// Per-batch warm starts (primal and multipliers of the last accepted solve).
    pub warm: Vec<Option<WarmStart>>,
    /// Per-batch states at the collocation points of the last accepted solve.
    pub states: Vec<Vec<Vec<f64>>>,
    /// History so far.
    pub history: Vec<IterationRecord>,
    /// The network layout (θ̄ goes into a copy of it).
    pub model: Mlp,
    /// The Anderson accelerator's history, when acceleration is on.
    #[serde(default)]
    pub anderson: Option<Anderson>,
    /// The momentum's memory, when Nesterov extrapolation is on.
    #[serde(default)]
    pub momentum: Option<Momentum>,
    /// θ̄ of the last ADMM update when an acceleration (Anderson or momentum) has moved
    /// `consensus` to another point for the next sub-problems; `None` otherwise.
    #[serde(default)]
    pub iterate: Option<Vec<f64>>,
    /// [`batches_fingerprint`] of the sub-problems this state belongs to: a resumed run must
    /// solve the same ones (`None` in checkpoints written before it was recorded).
    #[serde(default)]
    pub fingerprint: Option<String>,
}

impl AdmmState {
    /// The consensus estimate of the last iteration — the θ̄ whose residuals were reported:
    /// `consensus` itself, or the update before an acceleration moved it.
    pub fn consensus_estimate(&self) -> &[f64] {
        self.iterate.as_deref().unwrap_or(&self.consensus)
    }
}

/// Why ADMM stopped, and the consensus model.
#[derive(Clone, Debug)]
pub struct AdmmRun {
    /// Final state.
    pub state: AdmmState,
    /// Both residuals below their tolerances.
    pub converged: bool,
    /// Why the run stopped.
    pub stop_reason: String,
    /// The consensus model evaluated on the whole problem (simulated from batch 0's fitted
    /// state at the start of the window).
    pub evaluation: Evaluation,
    /// The consensus model.
    pub model: Mlp,
    /// Number of batches.
    pub batches: usize,
}

/// Errors of an ADMM run.
#[derive(Debug, thiserror::Error)]
pub enum AdmmError {
    /// Building or solving failed before ADMM could run.
    #[error("{0}")]
    Train(#[from] TrainError),
    /// A sub-problem failed and the settings say stop.
    #[error("ADMM iteration {iteration}: batch {batch} failed: {reason}")]
    SubproblemFailed {
        /// Iteration (1-based).
        iteration: usize,
        /// Batch index.
        batch: usize,
        /// What happened.
        reason: String,
    },
    /// A checkpoint that does not belong to this problem.
    #[error("cannot resume: {0}")]
    Resume(String),
}

fn norm(v: impl Iterator<Item = f64>) -> f64 {
    v.map(|x| x * x).sum::<f64>().sqrt()
}

/// The starting state: every batch at the same θ̄⁰ (the problem's Xavier draw, pre-fitted on
/// the whole training window when the problem asks for a pre-fit), zero duals.
pub fn initial_state(
    problem: &Problem,
    settings: &AdmmSettings,
    batches: &[Batch],
) -> Result<AdmmState, TrainError> {
    let start = build_with(&working_problem(problem)?, problem.formulation, None, None)?;
    let model = start.init;
    let p = model.n_params();
    Ok(AdmmState {
        iteration: 0,
        rho: settings.rho,
        consensus: model.params.clone(),
        thetas: vec![model.params.clone(); batches.len()],
        duals: vec![vec![0.0; p]; batches.len()],
        warm: vec![None; batches.len()],
        states: vec![Vec::new(); batches.len()],
        history: Vec::new(),
        model,
        anderson: None,
        momentum: None,
        iterate: None,
        fingerprint: Some(batches_fingerprint(problem, batches)),
    })
}

/// A fingerprint (64-bit FNV-1a, hex) of the sub-problems: every batch's window, data,
/// collocation grid, loss weight and bounds, the network layout and the formulation. A
/// checkpoint records it, and `--resume` refuses a checkpoint of other sub-problems (an edited
/// problem file or another `--seed`) instead of continuing them on new data. Solver settings
/// (iteration limit, tolerances, IPOPT options) are not part of it: a run may be resumed with
/// a higher limit.
pub fn batches_fingerprint(problem: &Problem, batches: &[Batch]) -> String {
    let mut hash = Fnv1a::default();
    hash.text(&format!("{:?}", problem.formulation));
    let spec = &problem.model;
    hash.text(&format!(
        "{:?} {} {} {:?} {:?} {}",
        spec.layers,
        spec.activation.name(),
        spec.time_input,
        spec.structure,
        spec.time_basis,
        spec.normalize
    ));
    for batch in batches {
        let p = &batch.problem;
        hash.floats(&batch.window);
        hash.floats(&p.data.t);
        for y in &p.data.y {
            hash.floats(y);
        }
        hash.text(&format!("{:?}", p.data.split));
        hash.floats(&p.nodes.times);
        hash.floats(&[
            p.lambda,
            p.parameter_bound.unwrap_or(f64::INFINITY),
            p.state_bound.unwrap_or(f64::INFINITY),
        ]);
        hash.text(&format!("{}", p.fix_initial_state));
    }
    format!("{:016x}", hash.0)
}

/// The 64-bit FNV-1a hash (stable across platforms and versions, unlike `std`'s hasher).
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn floats(&mut self, values: &[f64]) {
        self.bytes(&(values.len() as u64).to_le_bytes());
        for v in values {
            self.bytes(&v.to_bits().to_le_bytes());
        }
    }
    fn text(&mut self, text: &str) {
        self.bytes(&(text.len() as u64).to_le_bytes());
        self.bytes(text.as_bytes());
    }
}

/// Test hooks: make the sub-problem of `batch` fail in iteration `iteration`.
#[derive(Clone, Copy, Debug, Default)]
pub struct FaultInjection {
    /// (batch, iteration) to fail, if any.
    pub fail: Option<(usize, usize)>,
    /// (batch, iteration) whose warm-started solve counts as failed, so that it is repeated
    /// from a cold start.
    pub fail_warm: Option<(usize, usize)>,
}

/// Runs ADMM iterations from `state` until convergence or the iteration limit. `observer`
/// sees each iteration (after the checkpoint callback `checkpoint` has stored the state) and
/// may stop the run by returning false.
#[allow(clippy::too_many_arguments)]
pub fn run(
    problem: &Problem,
    settings: &AdmmSettings,
    batches: &[Batch],
    mut state: AdmmState,
    fault: FaultInjection,
    checkpoint: &mut dyn FnMut(&AdmmState) -> Result<(), String>,
    observer: &mut dyn FnMut(&IterationRecord) -> bool,
) -> Result<AdmmRun, AdmmError> {
    let n = batches.len();
    let p = state.consensus.len();
    let fingerprint = batches_fingerprint(problem, batches);
    match &state.fingerprint {
        Some(f) if *f == fingerprint => {}
        Some(f) => {
            return Err(AdmmError::Resume(format!(
                "the checkpoint belongs to other sub-problems (fingerprint {f}, this problem's is {fingerprint}): the data, seed, batches, grid, model or loss changed since it was written"
            )))
        }
        None => {
            return Err(AdmmError::Resume(
                "the checkpoint records no fingerprint of its sub-problems (written by an older colloc), so it cannot be checked against this problem; start again without --resume".into(),
            ))
        }
    }
    if state.thetas.len() != n || state.model.n_params() != p {
        return Err(AdmmError::Resume(format!(
            "the checkpoint has {} batches and {} parameters; the problem has {n} batches and {} parameters",
            state.thetas.len(),
            p,
            state.model.n_params()
        )));
    }
    let solver = IpoptSolver::new(super::collocation::ipopt_settings(
        problem,
        problem.formulation,
    ))
    .map_err(TrainError::from)?;
    let mut converged = false;
    let mut stop_reason = format!("iteration limit ({}) reached", settings.max_iter);
    while state.iteration < settings.max_iter {
        let started = Instant::now();
        let iteration = state.iteration + 1;
        let rho = state.rho;
        // Sub-problems, concurrently.
        let results: Vec<_> = batches
            .par_iter()
            .enumerate()
            .map(|(i, batch)| {
                let t = Instant::now();
                let mut init = state.model.clone();
                init.params.clone_from(&state.thetas[i]);
                let center: Vec<f64> = state
                    .consensus
                    .iter()
                    .zip(&state.duals[i])
                    .map(|(c, u)| c - u / rho)
                    .collect();
                let prox = Proximal {
                    weight: rho / 2.0,
                    center,
                };
                let warm = if settings.warm_start {
                    state.warm[i].as_ref()
                } else {
                    None
                };
                let outcome = build_with(
                    &batch.problem,
                    problem.formulation,
                    Some(&init),
                    Some(&prox),
                )
                .map_err(|e| e.to_string())
                .and_then(|mut built| {
                    let mut sol = solver
                        .solve_with(&mut built.nlp, warm, None)
                        .map_err(|e| e.to_string())?;
                    let mut retried = false;
                    let forced = fault.fail_warm == Some((i, iteration));
                    if warm.is_some() && (forced || !sol.is_success()) {
                        // A warm start far from the new solution can fail at once (tiny
                        // barrier, restoration at the first step): solve again from cold.
                        let warm_iterations = sol.stats.iterations;
                        sol = solver
                            .solve_with(&mut built.nlp, None, None)
                            .map_err(|e| e.to_string())?;
                        sol.stats.iterations += warm_iterations;
                        retried = true;
                    }
                    let theta = built.theta.slice(&sol.x).to_vec();
                    let d = batch.problem.data.dim();
                    let states: Vec<Vec<f64>> = (0..batch.problem.nodes.len())
                        .map(|k| (0..d).map(|j| sol.x[built.states.at(&[k, j])]).collect())
                        .collect();
                    Ok((sol, theta, states, retried))
                });
                (outcome, t.elapsed().as_secs_f64(), warm.is_some())
            })
            .collect();
        let mut records = Vec::with_capacity(n);
        let mut sequential_seconds = 0.0;
        for (i, (outcome, seconds, warm)) in results.into_iter().enumerate() {
            sequential_seconds += seconds;
            let injected = fault.fail == Some((i, iteration));
            let failure = match &outcome {
                _ if injected => Some("injected failure (test)".to_string()),
                Err(e) => Some(e.clone()),
                Ok((sol, _, _, _)) if !sol.is_success() => {
                    Some(format!("IPOPT: {} ({})", sol.status, sol.status.message()))
                }
                Ok((_, theta, _, _)) if theta.iter().any(|v| !v.is_finite()) => {
                    Some("non-finite parameters".to_string())
                }
                Ok(_) => None,
            };
            let (status, objective, iterations, cold_retry) = match &outcome {
                Ok((sol, _, _, retried)) => (
                    sol.status.to_string(),
                    sol.objective,
                    sol.stats.iterations,
                    *retried,
                ),
                Err(_) => ("error".to_string(), f64::NAN, 0, false),
            };
            match failure {
                Some(reason) => {
                    if settings.on_failure == OnFailure::Stop {
                        return Err(AdmmError::SubproblemFailed {
                            iteration,
                            batch: i,
                            reason,
                        });
                    }
                    records.push(BatchRecord {
                        status: if injected {
                            "injected_failure".into()
                        } else {
                            status
                        },
                        accepted: false,
                        objective,
                        iterations,
                        seconds,
                        warm,
                        cold_retry,
                    });
                }
                None => {
                    let (sol, theta, states, _) = outcome.expect("no failure: the solve succeeded");
                    state.thetas[i] = theta;
                    state.states[i] = states;
                    state.warm[i] = Some(WarmStart {
                        x: sol.x,
                        mult_g: Some(sol.mult_g),
                        mult_x_lower: Some(sol.mult_x_lower),
                        mult_x_upper: Some(sol.mult_x_upper),
                    });
                    records.push(BatchRecord {
                        status,
                        accepted: true,
                        objective,
                        iterations,
                        seconds,
                        warm,
                        cold_retry,
                    });
                }
            }
        }
        // Consensus and duals, with the (over-)relaxed θ̂_i = α θ_i + (1 − α) θ̄.
        let previous = state.consensus.clone();
        let previous_duals = state.duals.clone();
        let alpha = settings.relaxation;
        let relaxed: Vec<Vec<f64>> = state
            .thetas
            .iter()
            .map(|t| {
                t.iter()
                    .zip(&previous)
                    .map(|(ti, zi)| alpha * ti + (1.0 - alpha) * zi)
                    .collect()
            })
            .collect();
        for j in 0..p {
            state.consensus[j] = relaxed
                .iter()
                .zip(&state.duals)
                .map(|(t, u)| t[j] + u[j] / rho)
                .sum::<f64>()
                / n as f64;
        }
        for (u, t) in state.duals.iter_mut().zip(&relaxed) {
            for j in 0..p {
                u[j] += rho * (t[j] - state.consensus[j]);
            }
        }
        let primal = norm(
            state
                .thetas
                .iter()
                .flat_map(|t| t.iter().zip(&state.consensus).map(|(a, b)| a - b)),
        );
        let dual = rho
            * (n as f64).sqrt()
            * norm(state.consensus.iter().zip(&previous).map(|(a, b)| a - b));
        let sqrt_np = ((n * p) as f64).sqrt();
        let eps_primal = sqrt_np * settings.eps_abs
            + settings.eps_rel
                * norm(state.thetas.iter().flatten().copied())
                    .max((n as f64).sqrt() * norm(state.consensus.iter().copied()));
        let eps_dual = sqrt_np * settings.eps_abs
            + settings.eps_rel * norm(state.duals.iter().flatten().copied());
        let mut record = IterationRecord {
            iteration,
            rho,
            primal,
            dual,
            eps_primal,
            eps_dual,
            seconds: started.elapsed().as_secs_f64(),
            sequential_seconds,
            batches: records,
            consensus_train_mse: None,
            consensus_test_mse: None,
        };
        state.iteration = iteration;
        // Residuals of a batch that kept a stale θ_i say nothing about convergence.
        let all_accepted = record.batches.iter().all(|b| b.accepted);
        let done = all_accepted && primal <= eps_primal && dual <= eps_dual;
        state.iterate = (!done && (settings.anderson_memory > 0 || settings.momentum))
            .then(|| state.consensus.clone());
        if settings.anderson_memory > 0 && !done {
            accelerate(
                &mut state,
                &previous,
                &previous_duals,
                settings.anderson_memory,
            );
        }
        if settings.momentum && !done {
            extrapolate(
                &mut state,
                &previous,
                &previous_duals,
                settings.restart_factor,
            );
        }
        // Residual balancing (Boyd §3.4.1); u is unscaled, so the scaled duals u/ρ follow ρ.
        if settings.adaptive_rho {
            if primal > settings.balance_threshold * dual {
                state.rho = rho * settings.balance_factor;
            } else if dual > settings.balance_threshold * primal {
                state.rho = rho / settings.balance_factor;
            }
            if state.rho != rho {
                // Another ρ, another map: the accelerator's history no longer applies.
                if let Some(a) = &mut state.anderson {
                    a.reset();
                }
                // The combined residual is measured in ρ: start the momentum afresh.
                if let Some(m) = &mut state.momentum {
                    m.reset();
                }
            }
        }
        let scores =
            evaluate_consensus(problem, batches, &state, &consensus_model(&state, batches)?)?;
        record.consensus_train_mse = scores.train_mse;
        record.consensus_test_mse = scores.test_mse;
        state.history.push(record.clone());
        checkpoint(&state).map_err(AdmmError::Resume)?;
        let go_on = observer(&record);
        if done {
            converged = true;
            stop_reason = format!("converged in {iteration} iterations");
            break;
        }
        if !go_on {
            stop_reason = format!("stopped by the user after iteration {iteration}");
            break;
        }
    }
    let model = consensus_model(&state, batches)?;
    let evaluation = evaluate_consensus(problem, batches, &state, &model)?;
    Ok(AdmmRun {
        state,
        converged,
        stop_reason,
        evaluation,
        model,
        batches: n,
    })
}

/// One Anderson step on `z = (θ̄, u_1/ρ, …, u_N/ρ)`: `(previous, previous_duals)` is the
/// iterate the sub-problems were solved at, `state` holds its image under the ADMM update and
/// receives the accelerated iterate. Safeguard: the history is dropped when the fixed-point
/// residual `‖T(z) − z‖` more than doubles.
fn accelerate(state: &mut AdmmState, previous: &[f64], previous_duals: &[Vec<f64>], memory: usize) {
    let rho = state.rho;
    let z = pack(previous, previous_duals, rho);
    let tz = pack(&state.consensus, &state.duals, rho);
    let acc = state.anderson.get_or_insert_with(|| Anderson::new(memory));
    let residual = norm(tz.iter().zip(&z).map(|(a, b)| a - b));
    if let Some(last) = acc.residuals.last() {
        if residual > 2.0 * norm(last.iter().copied()) {
            acc.reset();
        }
    }
    let next = acc.step(&z, &tz);
    unpack(state, &next, rho);
}

/// `z = (θ̄, u_1/s, …, u_N/s)`: the consensus and the duals divided by `dual_scale`, in one
/// vector (the accelerations' variable).
fn pack(consensus: &[f64], duals: &[Vec<f64>], dual_scale: f64) -> Vec<f64> {
    let mut z = consensus.to_vec();
    for u in duals {
        z.extend(u.iter().map(|v| v / dual_scale));
    }
    z
}

/// The inverse of [`pack`]: θ̄ and `u_i = s · z_i` into `state`.
fn unpack(state: &mut AdmmState, z: &[f64], dual_scale: f64) {
    let p = state.consensus.len();
    state.consensus.copy_from_slice(&z[..p]);
    for (i, u) in state.duals.iter_mut().enumerate() {
        for (v, w) in u.iter_mut().zip(&z[p * (i + 1)..p * (i + 2)]) {
            *v = dual_scale * w;
        }
    }
}

/// One Nesterov step with restart on `z = (θ̄, u_1, …, u_N)` (Goldstein et al. 2014, Alg. 8):
/// `(previous, previous_duals)` is the point the sub-problems were solved at, `state` holds
/// the ADMM update `z_k` and receives the point for the next sub-problems.
fn extrapolate(
    state: &mut AdmmState,
    previous: &[f64],
    previous_duals: &[Vec<f64>],
    restart_factor: f64,
) {
    let rho = state.rho;
    let n = state.duals.len() as f64;
    let squared =
        |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum() };
    let dual_change: f64 = state
        .duals
        .iter()
        .zip(previous_duals)
        .map(|(u, v)| squared(u, v))
        .sum();
    let combined = dual_change / rho + rho * n * squared(&state.consensus, previous);
    let mut z = pack(&state.consensus, &state.duals, 1.0);
    match &mut state.momentum {
        Some(m) => m.advance(combined, restart_factor, &mut z),
        None => state.momentum = Some(Momentum::new(combined, &z)),
    }
    unpack(state, &z, 1.0);
}

/// The consensus θ̄ as a model in the data's units (with the batches' normalization, if any).
fn consensus_model(state: &AdmmState, batches: &[Batch]) -> Result<Mlp, TrainError> {
    let mut model = state.model.clone();
    model.params.copy_from_slice(state.consensus_estimate());
    let coordinates = batches.first().and_then(|b| b.problem.coordinates.clone());
    Ok(model.with_normalization(coordinates)?)
}

/// The consensus model simulated over the whole problem from the first batch's collocation
/// state at the start of the training window (or from the first observation when the first
/// batch does not start there).
fn evaluate_consensus(
    problem: &Problem,
    batches: &[Batch],
    state: &AdmmState,
    model: &Mlp,
) -> Result<Evaluation, TrainError> {
    if let (Some(b), Some(states)) = (batches.first(), state.states.first()) {
        if !states.is_empty() && (b.window[0] - problem.t0).abs() < 1e-12 {
            // The batch's states are in its own (possibly standardized) coordinates.
            let l0 = interpolation_matrix(&b.problem.nodes, &[b.problem.t0])?;
            let d = problem.data.dim();
            let z0: Vec<f64> = (0..d)
                .map(|i| l0.mul_vec(&states.iter().map(|y| y[i]).collect::<Vec<_>>())[0])
                .collect();
            let y0 = match &b.problem.coordinates {
                Some(n) => n.state_from_normalized(&z0),
                None => z0,
            };
            return Ok(simulate_and_score(
                problem,
                model,
                problem.t0,
                &y0,
                Evaluation::default(),
            ));
        }
    }
    let train = problem.data.indices(Split::Train);
    let first = train.first().copied().unwrap_or(0);
    Ok(simulate_and_score(
        problem,
        model,
        problem.data.t[first],
        &problem.data.y[first],
        Evaluation::default(),
    ))
}
