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
//! (θ̄⁺, u⁺)`: Anderson mixing ([`anderson`]) or Nesterov momentum with restart
//! ([`momentum`]). The whole state is checkpointed after every iteration so a run can
//! resume.

mod acceleration;
pub mod anderson;
mod batches;
pub mod momentum;
mod settings;
mod state;

pub use batches::{make_batches, Batch};
pub use settings::{AdmmSettings, OnFailure};
pub use state::{batches_fingerprint, initial_state, AdmmState, BatchRecord, IterationRecord};

use super::collocation::{build_with, simulate_and_score, Evaluation, Proximal, TrainError};
use crate::collocation::interpolation_matrix;
use crate::problem::{Problem, Split};
use acceleration::{accelerate, extrapolate};
use colloc_models::Mlp;
use colloc_solvers::ipopt::{IpoptSolution, IpoptSolver, WarmStart};
use rayon::prelude::*;
use std::time::Instant;

/// Stack of the threads that solve the sub-problems. IPOPT, MUMPS and the BLAS run on them, and
/// threaded OpenBLAS 0.3.21's LU overflows Rust's default 2 MB (`OPENBLAS_NUM_THREADS=2 colloc
/// admm problems/vanderpol-admm.toml` crashed with SIGSEGV in 3 of 3 runs; docs/platform.md,
/// "BLAS"). Only the pages a thread touches take memory.
const SOLVER_THREAD_STACK: usize = 64 << 20;

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

pub(crate) fn norm(v: impl Iterator<Item = f64>) -> f64 {
    v.map(|x| x * x).sum::<f64>().sqrt()
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
    // The sub-problems' threads: as many as rayon's, with room for native code (see
    // `SOLVER_THREAD_STACK`); the global pool if they cannot be made.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(rayon::current_num_threads())
        .stack_size(SOLVER_THREAD_STACK)
        .build()
        .ok();
    let mut converged = false;
    let mut stop_reason = format!("iteration limit ({}) reached", settings.max_iter);
    while state.iteration < settings.max_iter {
        let started = Instant::now();
        let iteration = state.iteration + 1;
        let rho = state.rho;
        // Sub-problems, concurrently.
        let solve_all = || -> Vec<_> {
            batches
                .par_iter()
                .enumerate()
                .map(|(i, batch)| {
                    solve_batch(
                        problem, settings, &solver, &state, batch, i, iteration, fault,
                    )
                })
                .collect()
        };
        let results = match &pool {
            Some(pool) => pool.install(solve_all),
            None => solve_all(),
        };
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
        let previous = state.consensus.clone();
        let previous_duals = state.duals.clone();
        let Residuals {
            primal,
            dual,
            eps_primal,
            eps_dual,
        } = update_consensus(&mut state, settings);
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

/// Boyd et al.'s residuals of one iteration and their tolerances.
struct Residuals {
    primal: f64,
    dual: f64,
    eps_primal: f64,
    eps_dual: f64,
}

/// The consensus and dual updates after the sub-problems (with the over-relaxation of
/// `settings`): `θ̄ = mean(θ̂_i + u_i/ρ)`, `u_i += ρ(θ̂_i − θ̄)`; returns the residuals.
fn update_consensus(state: &mut AdmmState, settings: &AdmmSettings) -> Residuals {
    let (n, p, rho) = (state.thetas.len(), state.consensus.len(), state.rho);
    // Consensus and duals, with the (over-)relaxed θ̂_i = α θ_i + (1 − α) θ̄.
    let previous = state.consensus.clone();
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
    let dual =
        rho * (n as f64).sqrt() * norm(state.consensus.iter().zip(&previous).map(|(a, b)| a - b));
    let sqrt_np = ((n * p) as f64).sqrt();
    let eps_primal = sqrt_np * settings.eps_abs
        + settings.eps_rel
            * norm(state.thetas.iter().flatten().copied())
                .max((n as f64).sqrt() * norm(state.consensus.iter().copied()));
    let eps_dual =
        sqrt_np * settings.eps_abs + settings.eps_rel * norm(state.duals.iter().flatten().copied());
    Residuals {
        primal,
        dual,
        eps_primal,
        eps_dual,
    }
}

/// A solved sub-problem: IPOPT's solution, θ_i, the states at the collocation points, and
/// whether a failed warm start was repeated from a cold start.
type Solved = (IpoptSolution, Vec<f64>, Vec<Vec<f64>>, bool);

/// One sub-problem of iteration `iteration`: batch `i`'s collocation NLP with the proximal
/// term around `θ̄ − u_i/ρ`, warm-started from its last solution (and retried cold when that
/// fails). Returns the outcome, the wall seconds and whether it was warm-started.
#[allow(clippy::too_many_arguments)]
fn solve_batch(
    problem: &Problem,
    settings: &AdmmSettings,
    solver: &IpoptSolver,
    state: &AdmmState,
    batch: &Batch,
    i: usize,
    iteration: usize,
    fault: FaultInjection,
) -> (Result<Solved, String>, f64, bool) {
    let rho = state.rho;
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
