//! Simultaneous collocation training (the method of the simultaneous-collocation paper):
//!
//! ```text
//!   minimize_{Y, θ}   (1/N) Σ_k ‖L_k·Y − y_obs,k‖²  +  λ ‖θ‖²
//!   subject to        D·Y = F_θ(Y, t)        at every collocation point
//!                     |θ_i| ≤ θ_max,  |Y| ≤ y_max (optional),  Y(t0) = y_obs,0 (optional)
//! ```
//!
//! `Y` holds the states at the collocation points, `D` is the differentiation matrix and `L`
//! interpolates from the points to the observation times (the identity when they coincide).
//! Two formulations of the network inside the NLP:
//! - **reduced** (any depth): `F_θ` substituted into the constraints; with one hidden layer one
//!   element per point and hidden unit (inputs: the point's states, the unit's incoming weights
//!   and bias and its outgoing weights), so the Hessian holds only each unit's own block; with
//!   more, one structured term whose exact Hessian is accumulated over the points
//!   (`training::deep_network`);
//! - **full** (any depth): pre-activations `z` and activations `h` are variables at every
//!   point, tied by `z = W x + b` (bilinear elements of two variables) and `h = σ(z)`
//!   (elements of one variable), as OMLT does.
//!
//! `build.rs` assembles the NLP and `evaluation.rs` scores a trained model; this module
//! drives the solve: penalty stages, grid refinement, warm starts and IPOPT settings.

use super::coordinates::{states_from_normalized, training_coordinates};
use crate::collocation::{interpolation_matrix, CollocationError, Nodes};
use crate::nlp::{ModelError, VarBlock};
use crate::problem::{Formulation, Problem, RefinementStart};
use crate::training::prefit::PrefitOutcome;
use colloc_models::Mlp;
use colloc_solvers::ipopt::{
    IpoptError, IpoptOption, IpoptSettings, IpoptSolution, IpoptSolver, IterationInfo,
    KktSolverCounts, WarmStart,
};
use colloc_solvers::{NlpDims, NlpEvaluator};

/// Why collocation training could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The NLP could not be built.
    #[error("building the NLP: {0}")]
    Model(#[from] ModelError),
    /// Collocation matrices could not be built.
    #[error("collocation: {0}")]
    Collocation(#[from] CollocationError),
    /// The network could not be created or does not fit.
    #[error("model: {0}")]
    Network(#[from] colloc_models::ModelError),
    /// IPOPT could not run.
    #[error("IPOPT: {0}")]
    Ipopt(#[from] IpoptError),
    /// The formulation does not support this network.
    #[error("{0}")]
    Unsupported(String),
    /// A problem (a further trajectory, or a problem restated in other coordinates) is
    /// invalid.
    #[error("{0}")]
    Problem(#[from] crate::problem::ProblemError),
}

mod build;
mod evaluation;
mod joint;

use build::defect_term_weight;
pub use build::{
    build, build_joint, build_stage, build_with, prefit, prefit_joint, CollocationNlp, JointNlp,
    Proximal, TrajectoryBlocks,
};
pub use evaluation::{
    collocation_defect, evaluate, first_excursion, simulate_and_score, CollocationDefect,
    Evaluation, Excursion, LearnedOde, DEFECT_WARNING_RELATIVE, DEPARTURE_WARNING_RATIO,
    EXCURSION_WIDTHS,
};
pub use joint::{pooled_scores, PooledScores};

/// Everything a collocation run produced.
pub struct CollocationRun {
    /// The trained network.
    pub model: Mlp,
    /// States at the collocation points.
    pub states: Vec<Vec<f64>>,
    /// IPOPT's outcome.
    pub solution: IpoptSolution,
    /// Iteration history (all stages, numbered on).
    pub history: Vec<IterationInfo>,
    /// The penalty stages of the defect continuation before the exact solve (empty without).
    pub stages: Vec<PenaltyStage>,
    /// NLP sizes.
    pub dims: NlpDims,
    /// Seconds to build the NLP.
    pub build_s: f64,
    /// Seconds of the derivative pre-fit.
    pub prefit_s: f64,
    /// What the pre-fit of this grid's start did (`None` without one).
    pub prefit: Option<PrefitOutcome>,
    /// Evaluation of the result.
    pub evaluation: Evaluation,
    /// The grid the states are on: the problem's, or the last of an automatic refinement.
    pub nodes: Nodes,
    /// The grids solved before the last one by an automatic refinement (empty without).
    pub refinements: Vec<RefinementRound>,
}

/// IPOPT's work on one or more grids: the exact solve and its penalty stages.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct SolveTotals {
    /// IPOPT iterations.
    pub iterations: usize,
    /// KKT factorizations.
    pub kkt_factorizations: usize,
    /// The same by linear solver.
    pub kkt_solvers: KktSolverCounts,
    /// Seconds to build the NLP(s).
    pub build_s: f64,
    /// Seconds of the pre-fit.
    pub prefit_s: f64,
    /// Seconds of IPOPT.
    pub solve_s: f64,
    /// Seconds of function and derivative evaluations.
    pub eval_s: f64,
}

impl std::ops::Add for SolveTotals {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            iterations: self.iterations + o.iterations,
            kkt_factorizations: self.kkt_factorizations + o.kkt_factorizations,
            kkt_solvers: self.kkt_solvers + o.kkt_solvers,
            build_s: self.build_s + o.build_s,
            prefit_s: self.prefit_s + o.prefit_s,
            solve_s: self.solve_s + o.solve_s,
            eval_s: self.eval_s + o.eval_s,
        }
    }
}

impl CollocationRun {
    /// The work on the run's last grid: the exact solve plus its penalty stages.
    pub fn grid_totals(&self) -> SolveTotals {
        let stats = &self.solution.stats;
        let exact = SolveTotals {
            iterations: stats.iterations,
            kkt_factorizations: stats.kkt_factorizations,
            kkt_solvers: stats.kkt_solvers,
            build_s: self.build_s,
            prefit_s: self.prefit_s,
            solve_s: stats.wall_s,
            eval_s: stats.eval_s,
        };
        self.stages.iter().fold(exact, |t, s| {
            t + SolveTotals {
                iterations: s.iterations,
                kkt_factorizations: s.kkt_factorizations,
                kkt_solvers: s.kkt_solvers,
                solve_s: s.solve_s,
                eval_s: s.eval_s,
                ..SolveTotals::default()
            }
        })
    }

    /// The work on every grid, the refined ones included.
    pub fn totals(&self) -> SolveTotals {
        self.refinements
            .iter()
            .fold(self.grid_totals(), |t, r| t + r.totals)
    }
}

/// One grid of an automatic refinement ([`train`] with `[collocation.refinement]`) that was
/// refined after its solve.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RefinementRound {
    /// Collocation points of the grid.
    pub points: usize,
    /// IPOPT's status.
    pub status: String,
    /// Objective at the grid's solution.
    pub objective: f64,
    /// Relative collocation defect of the grid's solution (what triggered the refinement).
    pub collocation_defect_relative: f64,
    /// IPOPT's work on the grid (penalty stages included; build and pre-fit times too).
    #[serde(flatten)]
    pub totals: SolveTotals,
    /// What the pre-fit of the grid's start did (`None` without one).
    pub prefit: Option<PrefitOutcome>,
}

/// One penalty stage of the defect continuation (see [`train`]).
#[derive(Clone, Debug, serde::Serialize)]
pub struct PenaltyStage {
    /// Weight `w` of the penalty `(w/N)·Σ_k ‖s_k‖²`.
    pub defect_weight: f64,
    /// IPOPT's status for the stage.
    pub status: String,
    /// IPOPT iterations of the stage.
    pub iterations: usize,
    /// KKT factorizations of the stage.
    pub kkt_factorizations: usize,
    /// The same by linear solver.
    pub kkt_solvers: KktSolverCounts,
    /// Objective at the stage's solution (penalty included).
    pub objective: f64,
    /// Largest |defect| at the stage's solution.
    pub max_defect: f64,
    /// Seconds to build the stage's NLP (pre-fit excluded).
    pub build_s: f64,
    /// Seconds of the stage's IPOPT solve.
    pub solve_s: f64,
    /// Seconds of function and derivative evaluations in the solve.
    pub eval_s: f64,
}

/// Builds, solves and evaluates. `observer` sees every IPOPT iteration and can stop the solve
/// (the results of the last iterate are still returned).
///
/// With `[solver] defect_penalties = [w₁, w₂, …]` the exact problem is preceded by penalty
/// stages ([`build_stage`]): the collocation equations relaxed by free defects weighted
/// `w_j/N`, each stage started from the previous one's states and θ; the exact problem then
/// starts from the last stage's primal and dual solution. Over long windows the exact problem
/// started from smoothed data needs the model's trajectory to follow the data for the whole
/// window at once, and IPOPT stalls in restoration phases; the relaxed problems let θ settle
/// while the states stay near the data (measured on forced Van der Pol over [0, 375]: the exact
/// problem alone fails in 150 iterations, the continuation converges).
/// Iteration numbers seen by `observer` and kept in the history continue across stages.
///
/// With [`Problem::collocation_normalize`] (`[solver] normalize`, else `[model] normalize`),
/// or a starting model that carries a normalization, the network is trained on the problem
/// restated in standardized coordinates
/// ([`Problem::in_coordinates`]); the returned model carries the normalization, the states are
/// in the data's units, and the evaluation is in the data's units (IPOPT's objective and the
/// history are in the standardized ones).
///
/// With `[collocation.refinement]` a converged solve whose relative collocation defect
/// ([`collocation_defect`]) exceeds the threshold is followed by a solve on the refined grid
/// ([`Nodes::refined`]: twice the points or elements), as long as that grid has at most
/// `max_points` points; the run reports the last grid (`nodes`, `states`, `evaluation`) and the
/// refined ones (`refinements`), and its history continues across them.
pub fn train(
    problem: &Problem,
    formulation: Formulation,
    init: Option<&Mlp>,
    observer: &mut dyn FnMut(&IterationInfo) -> bool,
) -> Result<CollocationRun, TrainError> {
    let mut runs = train_joint(std::slice::from_ref(problem), formulation, init, observer)?;
    Ok(runs.remove(0))
}

/// [`train`] on several problems — experiments of one system (a problem and its further
/// `trajectories`) — with one network in one NLP ([`build_joint`]): the first problem's model,
/// loss, bounds, pre-fit, coordinates, penalty stages, refinement and IPOPT settings; each
/// problem its own data, window and grid. One run per problem, in their order, sharing the
/// model, IPOPT's outcome, history, stages, sizes and times, each with its own states, grid and
/// evaluation (simulated from its own fitted first state). A refinement doubles the grid of
/// every trajectory whose relative defect exceeds the threshold (while the doubled grid has at
/// most `max_points` points) and solves all again; its rounds record the points of all grids
/// and the largest defect.
pub fn train_joint(
    problems: &[Problem],
    formulation: Formulation,
    init: Option<&Mlp>,
    observer: &mut dyn FnMut(&IterationInfo) -> bool,
) -> Result<Vec<CollocationRun>, TrainError> {
    let main = problems
        .first()
        .ok_or_else(|| TrainError::Unsupported("no trajectory to train on".into()))?;
    let mut runs = train_on_grids(problems, formulation, init, None, 0, observer)?;
    let Some(refinement) = main.refinement else {
        return Ok(runs);
    };
    let mut current = problems.to_vec();
    let mut rounds = Vec::new();
    loop {
        if !runs[0].solution.is_success() {
            break;
        }
        // The trajectories whose grid is too coarse and may still be refined.
        let mut refined = Vec::with_capacity(current.len());
        for (p, run) in current.iter().zip(&runs) {
            let too_coarse = run
                .evaluation
                .collocation_defect_relative
                .is_some_and(|d| d > refinement.defect);
            let nodes = if too_coarse {
                Some(p.nodes.refined()?).filter(|n| n.len() <= refinement.max_points)
            } else {
                None
            };
            refined.push(nodes);
        }
        if refined.iter().all(Option::is_none) {
            break;
        }
        let (model, starts) = match refinement.start {
            RefinementStart::Data => (None, None),
            RefinementStart::Solution => {
                // The coarse collocation polynomials at the new nodes, and the coarse θ.
                let mut starts = Vec::with_capacity(runs.len());
                for ((p, run), nodes) in current.iter().zip(&runs).zip(&refined) {
                    let Some(nodes) = nodes else {
                        starts.push(run.states.clone());
                        continue;
                    };
                    let l = interpolation_matrix(&p.nodes, &nodes.times)?;
                    let columns: Vec<Vec<f64>> = (0..p.data.dim())
                        .map(|i| l.mul_vec(&run.states.iter().map(|y| y[i]).collect::<Vec<f64>>()))
                        .collect();
                    starts.push(
                        (0..nodes.len())
                            .map(|k| columns.iter().map(|c| c[k]).collect())
                            .collect(),
                    );
                }
                (Some(runs[0].model.clone()), Some(starts))
            }
        };
        let first_iteration = runs[0].history.last().map_or(0, |it| it.iteration + 1);
        rounds.push(RefinementRound::of(&runs));
        for (p, nodes) in current.iter_mut().zip(refined) {
            if let Some(nodes) = nodes {
                p.nodes = nodes;
            }
        }
        let mut next = train_on_grids(
            &current,
            formulation,
            model.as_ref().or(init),
            starts.as_deref(),
            first_iteration,
            observer,
        )?;
        for (n, r) in next.iter_mut().zip(&mut runs) {
            n.history.splice(0..0, std::mem::take(&mut r.history));
        }
        runs = next;
    }
    for run in &mut runs {
        run.refinements = rounds.clone();
    }
    Ok(runs)
}

impl RefinementRound {
    /// The round of the grids of `runs` (one per trajectory): their points, the largest
    /// relative defect, and the (shared) solve.
    fn of(runs: &[CollocationRun]) -> Self {
        let run = &runs[0];
        Self {
            points: runs.iter().map(|r| r.nodes.len()).sum(),
            status: run.solution.status.to_string(),
            objective: run.solution.objective,
            collocation_defect_relative: runs
                .iter()
                .filter_map(|r| r.evaluation.collocation_defect_relative)
                .fold(f64::NEG_INFINITY, f64::max),
            totals: run.grid_totals(),
            prefit: run.prefit,
        }
    }
}

/// [`train_joint`] on the problems' own grids: the states start from `starts` (per problem
/// one row per node, in the data's units) when given, else from the smoothed data; iteration
/// numbers start at `first_iteration`.
fn train_on_grids(
    problems: &[Problem],
    formulation: Formulation,
    init: Option<&Mlp>,
    starts: Option<&[Vec<Vec<f64>>]>,
    first_iteration: usize,
    observer: &mut dyn FnMut(&IterationInfo) -> bool,
) -> Result<Vec<CollocationRun>, TrainError> {
    let coordinates = training_coordinates(&problems[0], problems[0].collocation_normalize(), init)
        .map_err(TrainError::Unsupported)?;
    let mut runs = match &coordinates {
        None => train_network(
            problems,
            formulation,
            init,
            starts,
            first_iteration,
            observer,
        )?,
        Some(n) => {
            let inner = problems
                .iter()
                .map(|p| p.in_coordinates(n))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TrainError::Unsupported(e.to_string()))?;
            let network = init.map(Mlp::network_only);
            let starts: Option<Vec<Vec<Vec<f64>>>> = starts.map(|all| {
                all.iter()
                    .map(|s| s.iter().map(|y| n.state_to_normalized(y)).collect())
                    .collect()
            });
            let mut runs = train_network(
                &inner,
                formulation,
                network.as_ref(),
                starts.as_deref(),
                first_iteration,
                observer,
            )?;
            for (run, p) in runs.iter_mut().zip(problems) {
                run.model = run.model.clone().with_normalization(Some(n.clone()))?;
                run.states = states_from_normalized(n, &run.states);
                run.nodes = p.nodes.clone();
            }
            runs
        }
    };
    for (run, p) in runs.iter_mut().zip(problems) {
        run.evaluation = evaluate(p, &run.model, &run.states)?;
    }
    Ok(runs)
}

/// MUMPS's pivot threshold in the full formulation when the problem does not set one: with
/// IPOPT's 1e-6, MUMPS delays pivots on the full-space NLP (activations as variables, a dense
/// differentiation matrix) once IPOPT regularizes, and the fronts grow until one factorization
/// takes minutes (`vanderpol.toml` without the pre-fit: iteration 13 after 178 s); with 0 the
/// solve takes 10–12 s. Not in the reduced formulation, whose long finite-element windows need
/// the threshold for accurate steps.
const FULL_FORMULATION_MUMPS_PIVTOL: f64 = 0.0;

/// MUMPS's fill-reducing ordering in the full formulation when the problem does not set one:
/// METIS (IPOPT's `mumps_pivot_order = 5`). With IPOPT's default (AMF) a two-hidden-layer
/// network costs ~6 s per iteration on `vanderpol.toml` ([2, 16, 16, 2]: 47 iterations in
/// 296 s, unfinished); with METIS the solve takes 32 iterations, 16 s.
const FULL_FORMULATION_MUMPS_ORDERING: i32 = 5;

/// MUMPS's workspace allowance (`mumps_mem_percent`, % above its estimate) in the full
/// formulation when the problem does not set one. IPOPT's 1000 makes MUMPS ask for 4.8 GB at
/// once on Lorenz [3, 50, 50, 3], which fails (INFO −13) and ends the solve in IPOPT's
/// restoration phase at iteration 1; with 50 it runs. The Van der Pol cases take the same
/// iterations either way (MUMPS enlarges the workspace when it must).
const FULL_FORMULATION_MUMPS_MEMORY: i32 = 50;

/// The problem's IPOPT settings for `formulation`: the full formulation gets
/// [`FULL_FORMULATION_MUMPS_PIVTOL`], [`FULL_FORMULATION_MUMPS_ORDERING`] and
/// [`FULL_FORMULATION_MUMPS_MEMORY`] unless `[solver.ipopt]` or its raw options set
/// `mumps_pivtol`, `mumps_pivot_order` or `mumps_mem_percent`.
pub(crate) fn ipopt_settings(problem: &Problem, formulation: Formulation) -> IpoptSettings {
    let mut settings = problem.ipopt.clone();
    if formulation == Formulation::Full {
        if settings.mumps_pivtol.is_none() && !settings.options.contains_key("mumps_pivtol") {
            settings.mumps_pivtol = Some(FULL_FORMULATION_MUMPS_PIVTOL);
        }
        for (name, value) in [
            ("mumps_pivot_order", FULL_FORMULATION_MUMPS_ORDERING),
            ("mumps_mem_percent", FULL_FORMULATION_MUMPS_MEMORY),
        ] {
            settings
                .options
                .entry(name.into())
                .or_insert(IpoptOption::Int(value));
        }
    }
    settings
}

/// [`train_joint`] in the network's own coordinates, without the evaluation.
fn train_network(
    problems: &[Problem],
    formulation: Formulation,
    init: Option<&Mlp>,
    starts: Option<&[Vec<Vec<f64>>]>,
    first_iteration: usize,
    observer: &mut dyn FnMut(&IterationInfo) -> bool,
) -> Result<Vec<CollocationRun>, TrainError> {
    let problem = &problems[0];
    let solver = IpoptSolver::new(ipopt_settings(problem, formulation))?;
    let mut history = Vec::new();
    let offset = std::cell::Cell::new(first_iteration);
    let stopped = std::cell::Cell::new(false);
    let mut watch = |it: &IterationInfo| {
        let mut it = *it;
        it.iteration += offset.get();
        history.push(it);
        let go = observer(&it);
        stopped.set(!go);
        go
    };
    let (mut stages, mut prefit_s, mut build_s) = (Vec::new(), 0.0, 0.0);
    let mut prefit = None;
    // The previous stage: its variable layout and solution (an NLP is dropped before the
    // next one is built, so two large NLPs are never held at once).
    let mut previous: Option<(Layout, IpoptSolution)> = None;
    // The relaxed NLP, built once: later penalty stages only change its weight.
    let mut relaxed: Option<JointNlp> = None;
    let weights = problem.defect_penalties.iter().map(|&w| Some(w));
    for defect_weight in weights.chain(std::iter::once(None)) {
        let start_model = match &previous {
            Some((built, solution)) => Some(model_at(built, &solution.x)),
            None => init.cloned(),
        };
        let reuse = match defect_weight {
            Some(w) => relaxed.take().map(|mut built| {
                built.build_s = 0.0;
                built.prefit_s = 0.0;
                built.prefit = None;
                let weight = defect_term_weight(problems, w);
                (0..problems.len())
                    .try_for_each(|j| {
                        built
                            .nlp
                            .set_l2_weight(&build::block_name("defect_penalty", j), weight)
                    })
                    .map(|()| built)
            }),
            None => {
                relaxed = None;
                None
            }
        };
        let mut built = match reuse {
            Some(built) => {
                built.map_err(|e| TrainError::Unsupported(format!("defect continuation: {e}")))?
            }
            None => build_joint(
                problems,
                formulation,
                start_model.as_ref(),
                None,
                defect_weight,
            )?,
        };
        prefit_s += built.prefit_s;
        prefit = prefit.or(built.prefit);
        build_s += built.build_s;
        let warm = match (&previous, starts) {
            (Some((before, solution)), _) => Some(carry_over(
                before,
                solution,
                &built,
                defect_weight.is_none(),
            )),
            (None, Some(states)) => Some(start_at_states(&built, states)?),
            (None, None) => None,
        };
        let solution = solver.solve_with(&mut built.nlp, warm.as_ref(), Some(&mut watch))?;
        offset.set(offset.get() + solution.stats.iterations + 1);
        if let Some(w) = defect_weight {
            stages.push(PenaltyStage {
                defect_weight: w,
                status: solution.status.to_string(),
                iterations: solution.stats.iterations,
                kkt_factorizations: solution.stats.kkt_factorizations,
                kkt_solvers: solution.stats.kkt_solvers,
                objective: solution.objective,
                max_defect: built
                    .trajectories
                    .iter()
                    .filter_map(|t| t.defects.as_ref())
                    .flat_map(|s| s.slice(&solution.x).iter())
                    .fold(0.0, |m: f64, v| m.max(v.abs())),
                build_s: built.build_s,
                solve_s: solution.stats.wall_s,
                eval_s: solution.stats.eval_s,
            });
        }
        let last = defect_weight.is_none() || stopped.get();
        previous = Some((Layout::of(&built), solution));
        if defect_weight.is_some() {
            relaxed = Some(built);
        }
        if last {
            break;
        }
    }
    let (built, solution) = previous.expect("the exact stage always runs");
    let model = model_at(&built, &solution.x);
    let d = problem.data.dim();
    Ok(problems
        .iter()
        .zip(&built.states)
        .map(|(p, block)| {
            let states = (0..p.nodes.len())
                .map(|k| (0..d).map(|i| solution.x[block.at(&[k, i])]).collect())
                .collect();
            CollocationRun {
                model: model.clone(),
                states,
                dims: built.dims,
                solution: solution.clone(),
                history: history.clone(),
                stages: stages.clone(),
                build_s,
                prefit_s,
                prefit,
                evaluation: Evaluation::default(),
                nodes: p.nodes.clone(),
                refinements: Vec::new(),
            }
        })
        .collect())
}

/// The NLP's own starting point with each trajectory's states replaced by `starts[j]` (one
/// row per node).
fn start_at_states(built: &JointNlp, starts: &[Vec<Vec<f64>>]) -> Result<WarmStart, TrainError> {
    let mut x = vec![0.0; built.nlp.dims().n_vars];
    built.nlp.initial_point(&mut x);
    for (blocks, states) in built.trajectories.iter().zip(starts) {
        let d = states.first().map_or(0, Vec::len);
        if states.len() * d != blocks.states.indices().len() {
            return Err(TrainError::Unsupported(format!(
                "{} starting states of dimension {d} for a grid of {} values",
                states.len(),
                blocks.states.indices().len()
            )));
        }
        for (k, y) in states.iter().enumerate() {
            for (i, &v) in y.iter().enumerate() {
                x[blocks.states.at(&[k, i])] = v;
            }
        }
    }
    Ok(WarmStart::primal(x))
}

/// Where a stage's states (per trajectory) and θ sit in its variables.
struct Layout {
    states: Vec<VarBlock>,
    theta: VarBlock,
    init: Mlp,
    dims: NlpDims,
}

impl Layout {
    fn of(built: &JointNlp) -> Self {
        Self {
            states: built
                .trajectories
                .iter()
                .map(|t| t.states.clone())
                .collect(),
            theta: built.theta.clone(),
            init: built.init.clone(),
            dims: built.nlp.dims(),
        }
    }
}

/// The network with θ read from `x`.
fn model_at(built: &Layout, x: &[f64]) -> Mlp {
    let mut model = built.init.clone();
    model.params = built.theta.slice(x).to_vec();
    model
}

/// Start of the next stage from the previous one's solution: states and θ (defects from 0);
/// for the exact stage also the multipliers (same constraint rows; bound multipliers of states
/// and θ), which IPOPT then uses as a warm start.
fn carry_over(
    before: &Layout,
    solution: &IpoptSolution,
    next: &JointNlp,
    with_multipliers: bool,
) -> WarmStart {
    let n = next.nlp.dims().n_vars;
    let pairs: Vec<(&VarBlock, &VarBlock)> = before
        .states
        .iter()
        .zip(next.trajectories.iter().map(|t| &t.states))
        .chain(std::iter::once((&before.theta, &next.theta)))
        .collect();
    let copy = |from: &[f64], fill: f64| {
        let mut to = vec![fill; n];
        for (a, b) in &pairs {
            to[b.indices()].copy_from_slice(a.slice(from));
        }
        to
    };
    let mut x = copy(&solution.x, 0.0);
    for s in next.trajectories.iter().filter_map(|t| t.defects.as_ref()) {
        x[s.indices()].fill(0.0);
    }
    if !with_multipliers {
        return WarmStart::primal(x);
    }
    WarmStart {
        x,
        mult_g: Some(solution.mult_g.clone()),
        mult_x_lower: Some(copy(&solution.mult_x_lower, 0.0)),
        mult_x_upper: Some(copy(&solution.mult_x_upper, 0.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_formulation_gets_its_mumps_settings_unless_the_problem_sets_them() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("problems/vanderpol.toml");
        let mut problem = crate::problem::load(&path).expect("the shipped problem loads");
        assert_eq!(
            ipopt_settings(&problem, Formulation::Full).mumps_pivtol,
            Some(FULL_FORMULATION_MUMPS_PIVTOL)
        );
        assert_eq!(
            ipopt_settings(&problem, Formulation::Reduced).mumps_pivtol,
            None
        );
        let ordering = |p: &Problem, f| {
            ipopt_settings(p, f)
                .options
                .get("mumps_pivot_order")
                .cloned()
        };
        assert_eq!(
            ordering(&problem, Formulation::Full),
            Some(IpoptOption::Int(FULL_FORMULATION_MUMPS_ORDERING))
        );
        assert_eq!(ordering(&problem, Formulation::Reduced), None);
        assert_eq!(
            ipopt_settings(&problem, Formulation::Full)
                .options
                .get("mumps_mem_percent"),
            Some(&IpoptOption::Int(FULL_FORMULATION_MUMPS_MEMORY))
        );
        problem
            .ipopt
            .options
            .insert("mumps_pivot_order".into(), IpoptOption::Int(2));
        assert_eq!(
            ordering(&problem, Formulation::Full),
            Some(IpoptOption::Int(2))
        );
        problem.ipopt.mumps_pivtol = Some(1e-4);
        assert_eq!(
            ipopt_settings(&problem, Formulation::Full).mumps_pivtol,
            Some(1e-4)
        );
        problem.ipopt.mumps_pivtol = None;
        problem
            .ipopt
            .options
            .insert("mumps_pivtol".into(), IpoptOption::Num(1e-3));
        assert_eq!(
            ipopt_settings(&problem, Formulation::Full).mumps_pivtol,
            None
        );
    }
}
