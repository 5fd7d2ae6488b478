//! Building the collocation NLP: the network's elements (reduced and full formulations), the
//! fit and regularization terms, the derivative pre-fit that starts θ, and the proximal term of
//! ADMM sub-problems.

use crate::collocation::{differentiation_matrix, interpolation_matrix, SparseMatrix};
use crate::nlp::{
    ConSpec, Element, ElementGroup, L2Regularization, LeastSquares, Model, Nlp, Scalar, Target,
    VarBlock, VarSpec,
};
use crate::problem::{Formulation, Problem, Split};
use crate::training::deep_network::{NetworkPoint, ReducedNetwork};
use crate::training::prefit::{levenberg_marquardt, PrefitOutcome, PrefitReport, PrefitSettings};
use crate::training::smoothing::{bandwidth, local_linear};
use colloc_models::{Activation, Mlp, Structure};
use colloc_solvers::{BlockCoupling, KktBlock, KktBlocks};
use std::time::Instant;

use super::TrainError;

/// `−Σ_o v_o σ(w·y [+ w_t t] + b)` for one hidden unit at one point (reduced formulation).
struct ReducedUnit {
    states: usize,
    time: Option<f64>,
    activation: Activation,
}

impl Element for ReducedUnit {
    fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]) {
        let d = self.states;
        let (y, rest) = x.split_at(d);
        let mut z = S::from(0.0);
        for (yi, wi) in y.iter().zip(&rest[..d]) {
            z += *yi * *wi;
        }
        let mut next = d;
        if let Some(t) = self.time {
            z += rest[next] * t;
            next += 1;
        }
        z += rest[next];
        let s = self.activation.apply(z);
        for (o, v) in out.iter_mut().zip(&rest[next + 1..]) {
            *o = -(*v * s);
        }
    }

    fn has_closed_form(&self) -> bool {
        // ∇z is kept in a 16-entry array (2d + 2 inputs before the outgoing weights).
        2 * self.states + 2 <= 16
    }

    // Inputs x = [y (d), w (d), w_t?, b, v (n_out)]: output o reads v_o only. (The outputs
    // are also linear in v, but the v–v Hessian pairs stay: the L2 term keeps the diagonal
    // ones in the pattern anyway, and skipping the others made the Hessian scatter slower —
    // 35.4 against 40.4 ms per vanderpol solve, medians of 10 alternating pairs.)
    fn jacobian_is_zero(&self, output: usize, input: usize) -> bool {
        let v0 = self.first_outgoing_weight();
        input >= v0 && input != v0 + output
    }

    // σ(z), σ'(z), σ''(z): computed once per iterate for values, Jacobian and Hessian.
    fn shared_len(&self) -> usize {
        3
    }

    // z here; the activation over a whole run of units in `finish_shared`, where it
    // vectorizes (every unit of a network has its activation).
    fn share(&self, x: &[f64], shared: &mut [f64]) {
        shared[0] = self.pre_activation(x);
    }

    fn finish_shared(&self, shared: &mut [f64]) {
        self.activation.values_and_derivatives_in_place(shared);
    }

    fn closed_values(&self, x: &[f64], shared: &[f64], out: &mut [f64]) {
        let v0 = x.len() - out.len();
        for (o, v) in out.iter_mut().zip(&x[v0..]) {
            *o = -(v * shared[0]);
        }
    }

    // Inputs x = [y (d), w (d), w_t?, b, v (d_out)]; z = w·y (+ w_t t) + b; out_o = −v_o σ(z).
    fn jacobian(&self, x: &[f64], shared: &[f64], out: &mut [f64]) {
        // Black boxes of 2 or 3 states (as many outputs as states) with literal sizes: the
        // inlined loops get bounds known at compile time.
        match (self.states, self.time.is_some(), x.len()) {
            (2, false, 7) => self.jacobian_sized((2, 5, 2), x, shared, out),
            (2, true, 8) => self.jacobian_sized((2, 6, 2), x, shared, out),
            (3, false, 10) => self.jacobian_sized((3, 7, 3), x, shared, out),
            _ => self.jacobian_any(x, shared, out),
        }
    }

    // Σ_o λ_o ∇²out_o = −W (σ'' ∇z∇zᵀ + σ' ∇²z) − σ' Σ_o λ_o (e_{v_o}∇zᵀ + ∇z e_{v_o}ᵀ),
    // W = Σ_o λ_o v_o, and ∇²z has 1 at (y_i, w_i).
    fn weighted_hessian(&self, x: &[f64], shared: &[f64], weights: &[f64], out: &mut [f64]) {
        // As in `jacobian`: literal sizes for the common black boxes.
        match (self.states, self.time.is_some(), x.len()) {
            (2, false, 7) => self.weighted_hessian_sized((2, 5, 2), x, shared, weights, out),
            (2, true, 8) => self.weighted_hessian_sized((2, 6, 2), x, shared, weights, out),
            (3, false, 10) => self.weighted_hessian_sized((3, 7, 3), x, shared, weights, out),
            _ => self.weighted_hessian_any(x, shared, weights, out),
        }
    }
}

impl ReducedUnit {
    /// `(states, inputs before the outgoing weights, outputs)` of this unit's inputs `x`.
    fn sizes(&self, x: &[f64]) -> (usize, usize, usize) {
        let v0 = self.first_outgoing_weight();
        (self.states, v0, x.len() - v0)
    }

    /// Index of the first outgoing weight `v_0` among the unit's inputs.
    fn first_outgoing_weight(&self) -> usize {
        2 * self.states + usize::from(self.time.is_some()) + 1
    }

    /// [`Element::jacobian`] with the sizes `(d, v0, n_out)` given (see [`ReducedUnit::sizes`]).
    #[inline(always)]
    fn jacobian_sized(
        &self,
        (d, v0, n_out): (usize, usize, usize),
        x: &[f64],
        shared: &[f64],
        out: &mut [f64],
    ) {
        let (g, _) = self.gradient_of_pre_activation(x);
        let (s, s1) = (shared[0], shared[1]);
        let ni = v0 + n_out;
        debug_assert_eq!((ni, d), (x.len(), self.states));
        for (o, row) in out[..n_out * ni].chunks_exact_mut(ni).enumerate() {
            let v = x[v0 + o];
            for (r, ga) in row[..v0].iter_mut().zip(&g[..v0]) {
                *r = -v * s1 * ga;
            }
            row[v0 + o] = -s;
        }
    }

    /// [`Element::jacobian`] with the sizes read at run time.
    fn jacobian_any(&self, x: &[f64], shared: &[f64], out: &mut [f64]) {
        self.jacobian_sized(self.sizes(x), x, shared, out);
    }

    /// [`Element::weighted_hessian`] with the sizes `(d, v0, n_out)` given.
    #[inline(always)]
    fn weighted_hessian_sized(
        &self,
        (d, v0, n_out): (usize, usize, usize),
        x: &[f64],
        shared: &[f64],
        weights: &[f64],
        out: &mut [f64],
    ) {
        let (g, _) = self.gradient_of_pre_activation(x);
        let (s1, s2) = (shared[1], shared[2]);
        let weights = &weights[..n_out];
        let w_sum: f64 = weights.iter().zip(&x[v0..]).map(|(l, v)| l * v).sum();
        let at = |a: usize, b: usize| a * (a + 1) / 2 + b;
        // The last entry written, checked once: the loops below index without checks.
        let out = &mut out[..at(v0 + n_out - 1, v0 - 1) + 1];
        for a in 0..v0 {
            for b in 0..=a {
                out[at(a, b)] = -w_sum * s2 * g[a] * g[b];
            }
        }
        for i in 0..d {
            // (w_i, y_i): w_i sits at d + i > i.
            out[at(d + i, i)] -= w_sum * s1;
        }
        for (o, l) in weights.iter().enumerate() {
            for b in 0..v0 {
                out[at(v0 + o, b)] = -s1 * l * g[b];
            }
        }
    }

    /// [`Element::weighted_hessian`] with the sizes read at run time.
    fn weighted_hessian_any(&self, x: &[f64], shared: &[f64], weights: &[f64], out: &mut [f64]) {
        self.weighted_hessian_sized(self.sizes(x), x, shared, weights, out);
    }

    /// `z = w·y (+ w_t t) + b`.
    #[inline(always)]
    fn pre_activation(&self, x: &[f64]) -> f64 {
        match self.states {
            2 => self.pre_activation_sized(2, x),
            3 => self.pre_activation_sized(3, x),
            _ => self.pre_activation_any(x),
        }
    }

    /// [`ReducedUnit::pre_activation`] for `d` states (a literal where inlined).
    #[inline(always)]
    fn pre_activation_sized(&self, d: usize, x: &[f64]) -> f64 {
        let mut z = 0.0;
        for i in 0..d {
            z += x[i] * x[d + i];
        }
        if let Some(t) = self.time {
            z += x[2 * d] * t;
        }
        z + x[2 * d + usize::from(self.time.is_some())]
    }

    /// [`ReducedUnit::pre_activation`] with the number of states read at run time.
    fn pre_activation_any(&self, x: &[f64]) -> f64 {
        self.pre_activation_sized(self.states, x)
    }

    /// `∇z` over the inputs before the outgoing weights (zero-padded to 16) and the index of
    /// the first outgoing weight.
    #[inline(always)]
    fn gradient_of_pre_activation(&self, x: &[f64]) -> ([f64; 16], usize) {
        let d = self.states;
        let mut g = [0.0; 16];
        g[..d].copy_from_slice(&x[d..2 * d]);
        g[d..2 * d].copy_from_slice(&x[..d]);
        let mut next = 2 * d;
        if let Some(t) = self.time {
            g[next] = t;
            next += 1;
        }
        g[next] = 1.0;
        (g, next + 1)
    }
}

/// `c · x₀ · x₁` (full formulation: weight × input).
struct Product {
    c: f64,
}
impl Element for Product {
    fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]) {
        out[0] = x[0] * x[1] * self.c;
    }
}

/// `−σ(z)` (full formulation: activation).
struct Activated {
    activation: Activation,
}
impl Element for Activated {
    fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]) {
        out[0] = -self.activation.apply(x[0]);
    }
}

/// How a model's structure splits the collocation equations `D·Y = F(Y, t)`: the known
/// linear part `Σ_j c_ij y_j` of row `i`, and the rows the network's outputs drive (black box:
/// `F = N`; second order `(q, v)`: `q' = v`, `v' = N`; gray box: `F = A·y + N`).
struct Coupling {
    /// `(row state i, state j, c_ij)` of the known part.
    linear: Vec<(usize, usize, f64)>,
    /// The state whose row network output `o` enters.
    output_states: Vec<usize>,
}

impl Coupling {
    fn of(structure: &Structure, d: usize) -> Self {
        match structure {
            Structure::BlackBox => Self {
                linear: Vec::new(),
                output_states: (0..d).collect(),
            },
            Structure::SecondOrder => {
                let h = d / 2;
                Self {
                    linear: (0..h).map(|i| (i, h + i, 1.0)).collect(),
                    output_states: (h..d).collect(),
                }
            }
            Structure::GrayBox { linear } => Self {
                linear: linear
                    .iter()
                    .enumerate()
                    .flat_map(|(i, r)| r.iter().enumerate().map(move |(j, &c)| (i, j, c)))
                    .filter(|&(_, _, c)| c != 0.0)
                    .collect(),
                output_states: (0..d).collect(),
            },
        }
    }

    /// What the network must give at a point with states `y` and state derivatives
    /// `derivative`: the derivative minus the known part, at the rows the outputs drive.
    fn network_share(&self, derivative: &[f64], y: &[f64]) -> Vec<f64> {
        let mut rest = derivative.to_vec();
        for &(i, j, c) in &self.linear {
            rest[i] -= c * y[j];
        }
        self.output_states.iter().map(|&i| rest[i]).collect()
    }
}

/// The built NLP with its variable layout.
pub struct CollocationNlp {
    /// The NLP.
    pub nlp: Nlp,
    /// States at the collocation points, `[points, states]`.
    pub states: VarBlock,
    /// Network parameters.
    pub theta: VarBlock,
    /// Defects `s` of the relaxed collocation equations `D·Y − F_θ = s` (penalty stages only).
    pub defects: Option<VarBlock>,
    /// The network whose parameters start θ (and define the layout).
    pub init: Mlp,
    /// Starting states at the collocation points (smoothed observations).
    pub start_states: Vec<Vec<f64>>,
    /// Seconds to build the NLP (without the pre-fit).
    pub build_s: f64,
    /// Seconds of the derivative pre-fit (0 when not used).
    pub prefit_s: f64,
    /// What the pre-fit did (`None` when not used).
    pub prefit: Option<PrefitOutcome>,
}

/// One trajectory's variables in a [`JointNlp`].
#[derive(Clone, Debug)]
pub struct TrajectoryBlocks {
    /// States at the trajectory's collocation points, `[points, states]`.
    pub states: VarBlock,
    /// Defects of its relaxed collocation equations (penalty stages only).
    pub defects: Option<VarBlock>,
    /// Its starting states at the collocation points (smoothed observations).
    pub start_states: Vec<Vec<f64>>,
}

/// The collocation NLP of several trajectories sharing one network: per trajectory a state
/// block, its collocation equations and its data fit; one θ.
pub struct JointNlp {
    /// The NLP.
    pub nlp: Nlp,
    /// The trajectories' variables, in the order of the problems.
    pub trajectories: Vec<TrajectoryBlocks>,
    /// Network parameters.
    pub theta: VarBlock,
    /// The network whose parameters start θ (and define the layout).
    pub init: Mlp,
    /// Seconds to build the NLP (without the pre-fit).
    pub build_s: f64,
    /// Seconds of the derivative pre-fit (0 when not used).
    pub prefit_s: f64,
    /// What the pre-fit did (`None` when not used).
    pub prefit: Option<PrefitOutcome>,
}

/// Most collocation points the derivative pre-fit uses (evenly spread).
const PREFIT_POINTS: usize = 4000;

/// Fits θ to derivative estimates of the smoothed states: with `Y_s` fixed,
/// `min_θ (1/N) Σ_k ‖(D·Y_s)_k − F_θ(Y_s,k, t_k)‖² + λ‖θ‖²` by Levenberg–Marquardt (see
/// [`super::prefit`]). Used to start θ of the collocation NLP in a better basin than a bare
/// Xavier draw.
pub fn prefit(problem: &Problem, init: &Mlp, start_states: &[Vec<f64>]) -> PrefitReport {
    prefit_joint(&[(problem, start_states)], init)
}

/// [`prefit`] over several trajectories (each with its smoothed states): the pairs of all of
/// them in one least-squares fit; λ and the parameter bound are the first problem's.
pub fn prefit_joint(parts: &[(&Problem, &[Vec<f64>])], init: &Mlp) -> PrefitReport {
    let coupling = Coupling::of(&init.structure, parts[0].0.data.dim());
    let total: usize = parts
        .iter()
        .map(|(p, _)| p.nodes.collocation_points().len())
        .sum();
    // At most PREFIT_POINTS evenly spread points: enough for ~160 parameters, and the
    // Levenberg–Marquardt Gram matrix costs O(points · parameters²) per iteration.
    let stride = total.div_ceil(PREFIT_POINTS).max(1);
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    for (problem, start_states) in parts {
        let nodes = &problem.nodes;
        let d = problem.data.dim();
        let dm = differentiation_matrix(nodes);
        let all = nodes.collocation_points();
        for k in all.clone().step_by(stride) {
            let mut x = start_states[k].clone();
            if problem.model.time_input {
                x.push(nodes.times[k]);
            }
            inputs.push(x);
            // The network's share of each derivative: (D·Y_s) minus the known part.
            let r = k - all.start;
            let derivative: Vec<f64> = (0..d)
                .map(|i| dm.row(r).map(|(j, v)| v * start_states[j][i]).sum())
                .collect();
            targets.push(coupling.network_share(&derivative, &start_states[k]));
        }
    }
    let first = parts[0].0;
    let settings = PrefitSettings {
        parameter_bound: first.parameter_bound.unwrap_or(f64::INFINITY),
        ..PrefitSettings::default()
    };
    levenberg_marquardt(init, &inputs, &targets, first.lambda, &settings)
}

/// A proximal term `weight · ‖θ − center‖²` added to the objective (ADMM sub-problems).
#[derive(Clone, Debug, PartialEq)]
pub struct Proximal {
    /// The weight (ρ/2 in ADMM).
    pub weight: f64,
    /// The center, one entry per parameter.
    pub center: Vec<f64>,
}

/// Builds the collocation NLP for a problem, starting θ from `init` (Xavier from the
/// problem's seed when `None`).
pub fn build(
    problem: &Problem,
    formulation: Formulation,
    init: Option<&Mlp>,
) -> Result<CollocationNlp, TrainError> {
    build_with(problem, formulation, init, None)
}

/// [`build`] with an optional proximal term on θ.
pub fn build_with(
    problem: &Problem,
    formulation: Formulation,
    init: Option<&Mlp>,
    proximal: Option<&Proximal>,
) -> Result<CollocationNlp, TrainError> {
    build_stage(problem, formulation, init, proximal, None)
}

/// [`build_with`], with the collocation equations relaxed when `defect_weight = Some(w)`:
/// each row becomes `(D·Y)_k − F_θ(Y_k, t_k) = s_k` with free defects `s`, and
/// `(w/N)·Σ_k ‖s_k‖²` joins the objective (`N` collocation points) — a penalty stage of
/// [`train`](super::train)'s defect continuation.
pub fn build_stage(
    problem: &Problem,
    formulation: Formulation,
    init: Option<&Mlp>,
    proximal: Option<&Proximal>,
    defect_weight: Option<f64>,
) -> Result<CollocationNlp, TrainError> {
    let joint = build_joint(
        std::slice::from_ref(problem),
        formulation,
        init,
        proximal,
        defect_weight,
    )?;
    let blocks = joint
        .trajectories
        .into_iter()
        .next()
        .ok_or_else(|| TrainError::Unsupported("no trajectory".into()))?;
    Ok(CollocationNlp {
        nlp: joint.nlp,
        states: blocks.states,
        theta: joint.theta,
        defects: blocks.defects,
        init: joint.init,
        start_states: blocks.start_states,
        build_s: joint.build_s,
        prefit_s: joint.prefit_s,
        prefit: joint.prefit,
    })
}

/// The name of a trajectory's block: `base` for the first trajectory, `base[j]` after it.
pub(super) fn block_name(base: &str, j: usize) -> String {
    if j == 0 {
        base.to_string()
    } else {
        format!("{base}[{j}]")
    }
}

/// The collocation NLP of several trajectories of one system sharing the network (the first
/// problem's model, loss, parameter bounds, pre-fit and IPOPT settings; each trajectory its own
/// data, window, grid, smoothing, state bound and initial-state constraint). The data fit is
/// the mean over all trajectories' training observations, so each observation weighs the
/// same. With one problem this is [`build_stage`]'s NLP.
pub fn build_joint(
    problems: &[Problem],
    formulation: Formulation,
    init: Option<&Mlp>,
    proximal: Option<&Proximal>,
    defect_weight: Option<f64>,
) -> Result<JointNlp, TrainError> {
    let started = Instant::now();
    let problem = problems
        .first()
        .ok_or_else(|| TrainError::Unsupported("no trajectory to build".into()))?;
    let spec = &problem.model;
    // The pre-fit improves a random start; a given model is used as it is.
    if spec.time_basis.is_some() {
        return Err(TrainError::Unsupported(
            "collocation handles networks with constant weights; this problem's model has time-dependent weights (train it with `colloc train`)".into(),
        ));
    }
    if let Some(m) = init {
        if m.normalization.is_some() {
            return Err(TrainError::Unsupported(
                "this collocation NLP works in the data's own coordinates; a normalized model is \
                 trained through `collocation::train`, which restates the problem in its coordinates"
                    .into(),
            ));
        }
        if m.time_basis.is_some() {
            return Err(TrainError::Unsupported(
                "collocation starts only from models with constant weights; the given model has time-dependent weights".into(),
            ));
        }
        if m.structure != spec.structure {
            return Err(TrainError::Unsupported(format!(
                "the given model is {}, the problem asks for {}",
                m.structure.name(),
                spec.structure.name()
            )));
        }
    }
    let d = problem.data.dim();
    if let Some(other) = problems.iter().find(|p| p.data.dim() != d) {
        return Err(TrainError::Unsupported(format!(
            "{} has {} states, {} has {d}; one network needs one state dimension",
            other.path.display(),
            other.data.dim(),
            problem.path.display()
        )));
    }
    let do_prefit = problem.prefit && init.is_none();
    let init = match init {
        Some(m) => {
            m.check_fits(d, spec.time_input)?;
            m.clone()
        }
        None => spec
            .draw(problem.init_seed())?
            .with_structure(spec.structure.clone(), None)?,
    };
    init.activation.require_smooth()?;
    let coupling = Coupling::of(&init.structure, d);
    let trains: Vec<Vec<usize>> = problems
        .iter()
        .map(|p| p.data.indices(Split::Train))
        .collect();
    let observations: usize = trains.iter().map(Vec::len).sum();

    // Start: local linear smoothing of each trajectory's training observations at its nodes.
    let start_states: Vec<Vec<Vec<f64>>> = problems
        .iter()
        .zip(&trains)
        .map(|(p, train)| smoothed_states(p, train))
        .collect();

    let prefit_started = Instant::now();
    let (init, prefit) = if do_prefit {
        let parts: Vec<(&Problem, &[Vec<f64>])> = problems
            .iter()
            .zip(&start_states)
            .map(|(p, s)| (p, s.as_slice()))
            .collect();
        let report = prefit_joint(&parts, &init);
        let outcome = report.outcome();
        (report.model, Some(outcome))
    } else {
        (init, None)
    };
    let prefit_s = if do_prefit {
        prefit_started.elapsed().as_secs_f64()
    } else {
        0.0
    };

    let mut m = Model::new();
    let mut state_blocks = Vec::with_capacity(problems.len());
    for (j, (p, start)) in problems.iter().zip(&start_states).enumerate() {
        let state_bound = p.state_bound.unwrap_or(f64::INFINITY);
        state_blocks.push(
            m.add_variables(
                VarSpec::new(block_name("states", j), &[p.nodes.len(), d])
                    .bounds(-state_bound, state_bound)
                    .start_each(start.concat()),
            )?,
        );
    }
    // θ's IPOPT scaling: in every stage but the exact stage after a defect continuation,
    // which thus meets IPOPT's tolerances unscaled.
    let exact_after_stages = defect_weight.is_none() && !problem.defect_penalties.is_empty();
    let theta_scaling = if exact_after_stages {
        1.0
    } else {
        problem.parameter_scaling
    };
    let theta = add_theta(&mut m, problem, &init, theta_scaling)?;

    // Per trajectory: one constraint per collocation point and state, D·Y, the known part of
    // the structure and the data fit.
    let mut equations = Vec::with_capacity(problems.len());
    for (j, ((p, states), train)) in problems.iter().zip(&state_blocks).zip(&trains).enumerate() {
        let nodes = &p.nodes;
        let points = nodes.collocation_points();
        let colloc = m.add_constraints(ConSpec::equal_zero(
            block_name("collocation", j),
            points.len() * d,
        ))?;
        let first_point = points.start;
        let row = |k: usize, i: usize| colloc.row((k - first_point) * d + i);
        let defects = match defect_weight {
            Some(w) => {
                let rows = points.len() * d;
                let s = m.add_variables(VarSpec::new(block_name("defects", j), &[rows]))?;
                m.add_linear_triplets(
                    "defects",
                    (0..rows).map(|r| (colloc.row(r), s.at(&[r]), -1.0)),
                );
                m.add_l2(L2Regularization::new(
                    block_name("defect_penalty", j),
                    s.indices(),
                    defect_term_weight(problems, w),
                ));
                Some(s)
            }
            None => None,
        };

        // D·Y (finite elements: only the few nonzeros of each row enter the Jacobian).
        let dm = differentiation_matrix(nodes);
        let mut differentiation = Vec::with_capacity(dm.nnz() * d);
        differentiation.extend(dm.triplets().flat_map(|(r, jj, v)| {
            (0..d).map(move |i| (row(first_point + r, i), states.at(&[jj, i]), v))
        }));
        m.add_linear_triplets("differentiation", differentiation);

        // The known part of the structure (second order: q' = v; gray box: A·y).
        m.add_linear_triplets(
            "known_dynamics",
            points.clone().flat_map(|k| {
                let coupling = &coupling;
                coupling
                    .linear
                    .iter()
                    .map(move |&(i, jj, c)| (row(k, i), states.at(&[k, jj]), -c))
            }),
        );

        // Data fit at the observation times.
        let t_obs: Vec<f64> = train.iter().map(|&k| p.data.t[k]).collect();
        let l = interpolation_matrix(nodes, &t_obs)?;
        add_fit(&mut m, &l, states, train, p, d, observations)?;
        equations.push((colloc, defects));
    }
    m.add_l2(L2Regularization::new(
        "regularization",
        theta.indices(),
        problem.lambda,
    ));
    if let Some(p) = proximal {
        let indices: Vec<usize> = theta.indices().collect();
        if p.center.len() != indices.len() {
            return Err(TrainError::Unsupported(format!(
                "proximal center has {} entries for {} parameters",
                p.center.len(),
                indices.len()
            )));
        }
        m.add_least_squares(LeastSquares::on_variables(
            "proximal",
            &indices,
            p.center.clone(),
            p.weight,
        ));
    }

    let mut initial_rows = vec![Vec::new(); problems.len()];
    for (j, ((p, states), train)) in problems.iter().zip(&state_blocks).zip(&trains).enumerate() {
        if !p.fix_initial_state {
            continue;
        }
        let first = train[0];
        let c = m.add_constraints(ConSpec::with_bounds(
            block_name("initial_state", j),
            p.data.y[first].clone(),
            p.data.y[first].clone(),
        ))?;
        let l0 = interpolation_matrix(&p.nodes, &[p.data.t[first]])?;
        m.add_linear_triplets(
            "initial_state",
            l0.row(0).flat_map(|(jj, v)| {
                let c = &c;
                (0..d).map(move |i| (c.row(i), states.at(&[jj, i]), v))
            }),
        );
        initial_rows[j].extend((0..d).map(|i| c.row(i)));
    }

    // The full formulation's per-point, per-unit blocks (one hidden layer).
    let mut network_blocks = Vec::new();
    for (j, ((p, states), (colloc, _))) in problems
        .iter()
        .zip(&state_blocks)
        .zip(&equations)
        .enumerate()
    {
        let first_point = p.nodes.collocation_points().start;
        // The network's outputs drive the rows of `coupling.output_states`.
        let network_row =
            |k: usize, o: usize| colloc.row((k - first_point) * d + coupling.output_states[o]);
        match formulation {
            Formulation::Reduced => add_reduced_network(
                &mut m,
                &init,
                states,
                &theta,
                (p.nodes.collocation_points(), &p.nodes.times),
                (spec.time_input, j),
                &network_row,
            )?,
            Formulation::Full => network_blocks.extend(add_full_network(
                &mut m,
                &init,
                states,
                &theta,
                (&start_states[j], j),
                p,
                &network_row,
            )?),
        }
    }

    let mut nlp = m.build()?;
    let global_grids = problems.iter().all(|p| p.nodes.elements.is_empty());
    if formulation == Formulation::Full && global_grids && !network_blocks.is_empty() {
        // Each point's and hidden unit's (z, h) with their two equations is a block meeting
        // only that point's states and rows and that unit's weights: eliminated onto the
        // states, θ and the collocation rows, whose dense Schur complement is the reduced
        // formulation's KKT order (colloc_solvers' Schur solver; MUMPS factorized the whole
        // system ~6× slower).
        nlp.set_kkt_blocks(KktBlocks {
            chain: network_blocks,
            coupling: BlockCoupling::Independent,
            ..Default::default()
        });
    }
    // One trajectory on one global grid (without the penalty stages' slacks): the states after
    // the first node and their collocation rows form a square block whose Jacobian is an
    // initial-value operator, eliminated through its LU (colloc_solvers' square-block solver;
    // the dense LDLᵀ of the whole matrix took ~2× as long on `vanderpol.toml`). Only when
    // the remaining unknowns (θ, the first node's states and rows) are fewer than the block's
    // states: for Lorenz's [3, 50, 50, 3] on 120 points (2903 parameters against 357 states)
    // the Schur complement is nearly the whole matrix, and its elimination lost digits (the
    // learned chaotic dynamics' sensitivities) so that the dense LDLᵀ answered anyway.
    let chained = problems.len() > 1 || !problem.nodes.elements.is_empty();
    let block_states = problem.nodes.len().saturating_sub(1) * d;
    let square = !chained
        && equations.iter().all(|(_, defects)| defects.is_none())
        && theta.len() + 2 * d <= block_states;
    if formulation == Formulation::Reduced && (chained || square) {
        // Finite elements: each element's own states and collocation equations form a block
        // coupled only to its neighbours; θ couples everything and is eliminated last (see
        // colloc_solvers' block-arrow solver). The first state (and the initial-state rows)
        // open the first block: with y(t0) free the forward elimination is a Kalman-type
        // recursion (the data downstream pin the state), whereas with y(t0) eliminated last
        // it would be single shooting, whose sensitivities grow like the dynamics' expanding
        // modes (measured: multipliers of 1e7 and a wrong inertia on a 375-unit window).
        // Several trajectories: their chains one after another (they meet only in θ); a
        // trajectory on a global grid is one block.
        let mut chain = Vec::new();
        let mut global_rows = Vec::new();
        let mut global_variables: Vec<usize> = theta.indices().collect();
        for (j, p) in problems.iter().enumerate() {
            let states = &state_blocks[j];
            let (colloc, defects) = &equations[j];
            let first_point = p.nodes.collocation_points().start;
            let row = |k: usize, i: usize| colloc.row((k - first_point) * d + i);
            let defect =
                |k: usize, i: usize| defects.as_ref().map(|s| s.at(&[(k - first_point) * d + i]));
            // A block of nodes `owned` with their collocation rows.
            let block = |owned: std::ops::Range<usize>| KktBlock {
                variables: owned
                    .clone()
                    .flat_map(|k| (0..d).map(move |i| (k, i)))
                    .map(|(k, i)| states.at(&[k, i]))
                    .chain(
                        owned
                            .clone()
                            .flat_map(|k| (0..d).filter_map(move |i| defect(k, i))),
                    )
                    .collect(),
                constraints: owned.flat_map(|k| (0..d).map(move |i| row(k, i))).collect(),
            };
            if p.nodes.elements.is_empty() {
                // Global collocation (rows at every node): the trajectory is one square block
                // but for its first node, whose states (and slacks), collocation rows and
                // initial-state rows join θ's block. The block's Jacobian is then `D` without
                // its first row and column minus ∂F/∂y, an initial-value operator that is
                // nonsingular; with the first node in, `D`'s null space (the constants) left
                // the block singular wherever ∂F/∂y nearly vanished, and each such
                // factorization cost IPOPT a regularized retry.
                chain.push(block(1..p.nodes.len()));
                let first = block(0..1);
                global_variables.extend(first.variables);
                global_rows.extend(first.constraints);
                global_rows.append(&mut initial_rows[j]);
                continue;
            }
            let mut blocks: Vec<KktBlock> = p
                .nodes
                .elements
                .iter()
                .map(|(first, local)| block(first + 1..first + local.len()))
                .collect();
            if let Some(first) = blocks.first_mut() {
                first
                    .variables
                    .splice(0..0, (0..d).map(|i| states.at(&[0, i])));
                first
                    .constraints
                    .splice(0..0, std::mem::take(&mut initial_rows[j]));
            }
            chain.extend(blocks);
        }
        nlp.set_kkt_blocks(KktBlocks {
            chain,
            global: KktBlock {
                variables: global_variables,
                constraints: global_rows,
            },
            coupling: if square {
                BlockCoupling::Square
            } else {
                BlockCoupling::Chain
            },
        });
    }
    let trajectories = state_blocks
        .into_iter()
        .zip(equations)
        .zip(start_states)
        .map(|((states, (_, defects)), start_states)| TrajectoryBlocks {
            states,
            defects,
            start_states,
        })
        .collect();
    Ok(JointNlp {
        nlp,
        trajectories,
        theta,
        init,
        build_s: started.elapsed().as_secs_f64() - prefit_s,
        prefit_s,
        prefit,
    })
}

/// Local linear smoothing of a problem's training observations (rows `train`) at its nodes:
/// the collocation states' start.
fn smoothed_states(problem: &Problem, train: &[usize]) -> Vec<Vec<f64>> {
    let d = problem.data.dim();
    let nodes = &problem.nodes;
    let t_obs: Vec<f64> = train.iter().map(|&k| problem.data.t[k]).collect();
    let series: Vec<Vec<f64>> = (0..d)
        .map(|i| train.iter().map(|&k| problem.data.y[k][i]).collect())
        .collect();
    let bw = bandwidth(problem.smoothing, &t_obs, &series);
    let per_state: Vec<Vec<f64>> = series
        .iter()
        .map(|y| local_linear(&t_obs, y, &nodes.times, bw))
        .collect();
    (0..nodes.len())
        .map(|k| (0..d).map(|i| per_state[i][k]).collect())
        .collect()
}

/// The network parameters θ as a variable block, bounded by `[bounds] parameters`, starting
/// at `init`'s parameters.
fn add_theta(
    m: &mut Model,
    problem: &Problem,
    init: &Mlp,
    scaling: f64,
) -> Result<VarBlock, TrainError> {
    let pb = problem.parameter_bound.unwrap_or(f64::INFINITY);
    let mut spec = VarSpec::new("theta", &[init.n_params()])
        .bounds(-pb, pb)
        .start_each(init.params.clone());
    if scaling != 1.0 {
        spec = spec.scaling(scaling);
    }
    Ok(m.add_variables(spec)?)
}

/// Adds `−F_θ(Y_k, t_k)` to the rows `row(k, o)` in the reduced form: with one hidden layer one
/// element per point `k` and hidden unit (the point's states, the unit's incoming weights and
/// bias, its outgoing weights); with more, one `ReducedNetwork` term over all points. The
/// output biases enter as linear terms.
fn add_reduced_network(
    m: &mut Model,
    init: &Mlp,
    states: &VarBlock,
    theta: &VarBlock,
    (points, times): (std::ops::Range<usize>, &[f64]),
    (time_input, trajectory): (bool, usize),
    row: &dyn Fn(usize, usize) -> usize,
) -> Result<(), TrainError> {
    let (d_in, d) = (init.state_inputs(), init.n_outputs());
    if init.layers.len() > 3 {
        // Deeper networks: one structured term over all points.
        let network_points = points
            .clone()
            .map(|k| NetworkPoint {
                states: (0..d_in).map(|i| states.at(&[k, i])).collect(),
                time: times[k],
                rows: (0..d).map(|o| row(k, o)).collect(),
            })
            .collect();
        m.add_structured(ReducedNetwork::new(
            block_name("network", trajectory),
            init,
            theta.index(0),
            network_points,
        ))?;
    } else {
        add_reduced_units(
            m,
            init,
            states,
            theta,
            (points.clone(), times),
            (time_input, trajectory),
            row,
        )?;
    }
    let last = init.layers.len() - 2;
    m.add_linear_triplets(
        "output_bias",
        points
            .flat_map(|k| (0..d).map(move |o| (k, o)))
            .map(|(k, o)| (row(k, o), theta.index(init.bias_index(last, o)), -1.0)),
    );
    Ok(())
}

/// One element per point and hidden unit (one hidden layer).
fn add_reduced_units(
    m: &mut Model,
    init: &Mlp,
    states: &VarBlock,
    theta: &VarBlock,
    (points, times): (std::ops::Range<usize>, &[f64]),
    (time_input, trajectory): (bool, usize),
    row: &dyn Fn(usize, usize) -> usize,
) -> Result<(), TrainError> {
    let (d_in, d, hidden) = (init.state_inputs(), init.n_outputs(), init.layers[1]);
    let n_in = 2 * d_in + 1 + d + usize::from(time_input);
    let mut units = ElementGroup::new(block_name("network", trajectory), n_in, d);
    units.reserve(points.len() * hidden);
    let mut inputs = Vec::with_capacity(n_in);
    for k in points.clone() {
        let t = times[k];
        let targets: Vec<Target> = (0..d).map(|o| Target::Constraint(row(k, o))).collect();
        for j in 0..hidden {
            inputs.clear();
            inputs.extend((0..d_in).map(|i| states.at(&[k, i])));
            inputs.extend((0..d_in).map(|i| theta.index(init.weight_index(0, j, i))));
            if time_input {
                inputs.push(theta.index(init.weight_index(0, j, d_in)));
            }
            inputs.push(theta.index(init.bias_index(0, j)));
            inputs.extend((0..d).map(|o| theta.index(init.weight_index(1, o, j))));
            let unit = ReducedUnit {
                states: d_in,
                time: time_input.then_some(t),
                activation: init.activation,
            };
            units.push(unit, &inputs, &targets)?;
        }
    }
    m.add_elements(units)?;
    Ok(())
}

fn add_fit(
    m: &mut Model,
    l: &SparseMatrix,
    states: &VarBlock,
    train: &[usize],
    problem: &Problem,
    d: usize,
    observations: usize,
) -> Result<(), TrainError> {
    let mut a =
        sprs::TriMat::with_capacity((train.len() * d, states.offset + states.len()), l.nnz() * d);
    let mut target = Vec::with_capacity(train.len() * d);
    for (r, &k) in train.iter().enumerate() {
        for i in 0..d {
            for (j, v) in l.row(r) {
                a.add_triplet(r * d + i, states.at(&[j, i]), v);
            }
            target.push(problem.data.y[k][i]);
        }
    }
    m.add_least_squares(LeastSquares {
        name: "data_fit".into(),
        matrix: a.to_csr(),
        target,
        weight: 1.0 / observations as f64,
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn add_full_network(
    m: &mut Model,
    init: &Mlp,
    states: &VarBlock,
    theta: &VarBlock,
    (start_states, trajectory): (&[Vec<f64>], usize),
    problem: &Problem,
    row: &dyn Fn(usize, usize) -> usize,
) -> Result<Vec<KktBlock>, TrainError> {
    let name = |base: String| block_name(&base, trajectory);
    let nodes = &problem.nodes;
    let (d, d_out) = (init.state_inputs(), init.n_outputs());
    // Network variables at the collocation points, `[point − first, unit]`.
    let points = nodes.collocation_points();
    let (n, first) = (points.len(), points.start);
    let time_input = problem.model.time_input;
    let n_layers = init.layers.len() - 1;
    // Forward pass at the start to start z and h consistently.
    let mut z_start: Vec<Vec<Vec<f64>>> = vec![Vec::with_capacity(n); n_layers - 1];
    let mut h_start: Vec<Vec<Vec<f64>>> = vec![Vec::with_capacity(n); n_layers - 1];
    for (k, y) in start_states.iter().enumerate().skip(first) {
        let mut x = y.clone();
        if time_input {
            x.push(nodes.times[k]);
        }
        for l in 0..n_layers - 1 {
            let (n_in, n_out) = (init.layers[l], init.layers[l + 1]);
            let z: Vec<f64> = (0..n_out)
                .map(|j| {
                    (0..n_in)
                        .map(|i| init.params[init.weight_index(l, j, i)] * x[i])
                        .sum::<f64>()
                        + init.params[init.bias_index(l, j)]
                })
                .collect();
            let h: Vec<f64> = z.iter().map(|&v| init.activation.apply(v)).collect();
            z_start[l].push(z);
            h_start[l].push(h.clone());
            x = h;
        }
    }
    let mut products = ElementGroup::new(name("products".into()), 2, 1);
    let mut activations = ElementGroup::new(name("activations".into()), 1, 1);
    let mut prev: Option<VarBlock> = None;
    let mut blocks = Vec::new();
    for l in 0..n_layers - 1 {
        let (n_in, width) = (init.layers[l], init.layers[l + 1]);
        let z = m.add_variables(
            VarSpec::new(name(format!("z{}", l + 1)), &[n, width]).start_each(z_start[l].concat()),
        )?;
        let h = m.add_variables(
            VarSpec::new(name(format!("h{}", l + 1)), &[n, width]).start_each(h_start[l].concat()),
        )?;
        let pre = m.add_constraints(ConSpec::equal_zero(
            name(format!("pre{}", l + 1)),
            n * width,
        ))?;
        let act = m.add_constraints(ConSpec::equal_zero(
            name(format!("act{}", l + 1)),
            n * width,
        ))?;
        let mut lin = Vec::new();
        for (p, k) in points.clone().enumerate() {
            for j in 0..width {
                let r = pre.row(p * width + j);
                lin.push((r, z.at(&[p, j]), 1.0));
                lin.push((r, theta.index(init.bias_index(l, j)), -1.0));
                for i in 0..n_in {
                    let w = theta.index(init.weight_index(l, j, i));
                    match (&prev, l == 0 && time_input && i == d) {
                        (_, true) => lin.push((r, w, -nodes.times[k])),
                        (None, false) => products.push(
                            Product { c: -1.0 },
                            &[w, states.at(&[k, i])],
                            &[Target::Constraint(r)],
                        )?,
                        (Some(h_prev), false) => products.push(
                            Product { c: -1.0 },
                            &[w, h_prev.at(&[p, i])],
                            &[Target::Constraint(r)],
                        )?,
                    }
                }
                let ra = act.row(p * width + j);
                lin.push((ra, h.at(&[p, j]), 1.0));
                activations.push(
                    Activated {
                        activation: init.activation,
                    },
                    &[z.at(&[p, j])],
                    &[Target::Constraint(ra)],
                )?;
            }
        }
        m.add_linear_triplets(&format!("layer{}", l + 1), lin);
        if n_layers == 2 {
            // One hidden layer: (z, h) of a point and unit meet no other point's or unit's.
            blocks.extend((0..n).flat_map(|p| {
                let (z, h, pre, act) = (&z, &h, &pre, &act);
                (0..width).map(move |j| KktBlock {
                    variables: vec![z.at(&[p, j]), h.at(&[p, j])],
                    constraints: vec![pre.row(p * width + j), act.row(p * width + j)],
                })
            }));
        }
        prev = Some(h);
    }
    let last =
        prev.ok_or_else(|| TrainError::Unsupported("the network needs a hidden layer".into()))?;
    let l = n_layers - 1;
    let width = init.layers[l];
    let mut lin = Vec::new();
    for (p, k) in points.enumerate() {
        for o in 0..d_out {
            lin.push((row(k, o), theta.index(init.bias_index(l, o)), -1.0));
            for j in 0..width {
                products.push(
                    Product { c: -1.0 },
                    &[theta.index(init.weight_index(l, o, j)), last.at(&[p, j])],
                    &[Target::Constraint(row(k, o))],
                )?;
            }
        }
    }
    m.add_linear_triplets("output", lin);
    m.add_elements(products)?;
    m.add_elements(activations)?;
    Ok(blocks)
}

/// Weight of `Σ‖s_k‖²` in the objective for the defect weight `w`: `w/N`, `N` the collocation
/// points of all `problems`.
pub(super) fn defect_term_weight(problems: &[Problem], w: f64) -> f64 {
    let points: usize = problems
        .iter()
        .map(|p| p.nodes.collocation_points().len())
        .sum();
    w / points as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_dual::{Dual2SVec64, DualSVec64};

    #[test]
    fn reduced_unit_closed_forms_match_dual_numbers() {
        // (states, time, activation, outputs): black boxes have as many outputs as states,
        // second-order and gray-box models fewer.
        for (d, time, activation, n_out) in [
            (2, None, Activation::Tanh, 2),
            (2, Some(0.7), Activation::Gelu, 2),
            (3, Some(-1.3), Activation::Softplus, 3),
            (3, None, Activation::Sigmoid, 3),
            (2, Some(0.4), Activation::Tanh, 1),
            (2, None, Activation::Gelu, 1),
            (3, None, Activation::Tanh, 1),
        ] {
            let unit = ReducedUnit {
                states: d,
                time,
                activation,
            };
            let ni = 2 * d + usize::from(time.is_some()) + 1 + n_out;
            let x: Vec<f64> = (0..ni)
                .map(|i| 0.3 * ((i * 37 % 11) as f64) - 1.2)
                .collect();
            let weights: Vec<f64> = (0..n_out).map(|o| 0.5 - 0.8 * o as f64).collect();
            // Dual numbers: the whole Jacobian and Hessian (16 inputs at most here).
            let xs: Vec<DualSVec64<16>> = x
                .iter()
                .enumerate()
                .map(|(a, &v)| DualSVec64::<16>::from_re(v).derivative(a))
                .collect();
            let mut ys = vec![DualSVec64::<16>::from_re(0.0); n_out];
            unit.eval(&xs, &mut ys);
            let mut shared = vec![0.0; unit.shared_len()];
            unit.share(&x, &mut shared);
            unit.finish_shared(&mut shared);
            let mut values = vec![0.0; n_out];
            unit.closed_values(&x, &shared, &mut values);
            for (o, y) in ys.iter().enumerate() {
                assert!((values[o] - y.re).abs() < 1e-15, "value {o}");
            }
            let mut jac = vec![0.0; n_out * ni];
            unit.jacobian(&x, &shared, &mut jac);
            // The loops specialized for common sizes give the general loops' bits.
            let mut jac_any = vec![0.0; n_out * ni];
            unit.jacobian_any(&x, &shared, &mut jac_any);
            assert_eq!(jac, jac_any);
            assert_eq!(unit.pre_activation(&x), unit.pre_activation_any(&x));
            for o in 0..n_out {
                let g = ys[o].eps.0.as_ref().unwrap();
                for a in 0..ni {
                    assert!(
                        (jac[o * ni + a] - g[a]).abs() < 1e-13,
                        "jacobian ({o}, {a})"
                    );
                    // The entries left out of the pattern are zero.
                    if unit.jacobian_is_zero(o, a) {
                        assert_eq!(g[a], 0.0, "declared zero: jacobian ({o}, {a})");
                    }
                }
            }
            let zeros = (0..n_out)
                .flat_map(|o| (0..ni).map(move |a| (o, a)))
                .filter(|&(o, a)| unit.jacobian_is_zero(o, a))
                .count();
            assert_eq!(zeros, n_out * (n_out - 1), "v_o' does not enter output o");
            let xs2: Vec<Dual2SVec64<16>> = x
                .iter()
                .enumerate()
                .map(|(a, &v)| Dual2SVec64::<16>::from_re(v).derivative(a))
                .collect();
            let mut ys2 = vec![Dual2SVec64::<16>::from_re(0.0); n_out];
            unit.eval(&xs2, &mut ys2);
            let mut hess = vec![0.0; ni * (ni + 1) / 2];
            unit.weighted_hessian(&x, &shared, &weights, &mut hess);
            let mut hess_any = vec![0.0; ni * (ni + 1) / 2];
            unit.weighted_hessian_any(&x, &shared, &weights, &mut hess_any);
            assert_eq!(hess, hess_any);
            let mut p = 0;
            for a in 0..ni {
                for b in 0..=a {
                    let exact: f64 = ys2
                        .iter()
                        .zip(&weights)
                        .map(|(y, w)| w * y.v2.0.as_ref().map_or(0.0, |h| h[(a, b)]))
                        .sum();
                    assert!(
                        (hess[p] - exact).abs() < 1e-12,
                        "{activation}: hessian ({a}, {b}): {} vs {exact}",
                        hess[p]
                    );
                    p += 1;
                }
            }
        }
    }
}
