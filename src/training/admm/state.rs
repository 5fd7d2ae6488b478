//! The state of a run — what a checkpoint holds — and the per-iteration records.

use super::anderson::Anderson;
use super::batches::{working_problem, Batch};
use super::momentum::Momentum;
use super::AdmmSettings;
use crate::problem::Problem;
use crate::training::collocation::{build_with, TrainError};
use colloc_models::Mlp;
use colloc_solvers::ipopt::WarmStart;
use serde::{Deserialize, Serialize};

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
        problem.collocation_normalize()
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
