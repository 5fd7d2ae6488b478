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

use super::coordinates::{states_from_normalized, training_coordinates};
use super::deep_network::{NetworkPoint, ReducedNetwork};
use super::metrics::mse;
use super::prefit::{levenberg_marquardt, PrefitReport, PrefitSettings};
use super::smoothing::{bandwidth, local_linear};
use crate::collocation::{
    derivative_matrix, differentiation_matrix, interpolation_matrix, CollocationError, Nodes,
    SparseMatrix,
};
use crate::nlp::{
    ConSpec, Element, ElementGroup, L2Regularization, LeastSquares, Model, ModelError, Nlp, Scalar,
    Target, VarBlock, VarSpec,
};
use crate::problem::{Formulation, Problem, RefinementStart, Split};
use colloc_models::{Activation, Mlp, Structure};
use colloc_solvers::ipopt::{
    IpoptError, IpoptOption, IpoptSettings, IpoptSolution, IpoptSolver, IterationInfo, WarmStart,
};
use colloc_solvers::ode::{Dopri5, OdeError, OdeSystem};
use colloc_solvers::{KktBlock, KktBlocks, NlpDims, NlpEvaluator};
use std::time::Instant;

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
    /// A further trajectory of an ADMM run could not be used.
    #[error("ADMM trajectory {path}: {message}")]
    Trajectory {
        /// Its problem file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

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

    // Inputs x = [y (d), w (d), w_t?, b, v (d_out)]; z = w·y (+ w_t t) + b; out_o = −v_o σ(z).
    fn jacobian(&self, x: &[f64], out: &mut [f64]) {
        let (z, g, v0) = self.pre_activation(x);
        let (s, s1) = self.activation.value_and_derivative(z);
        let ni = x.len();
        for (o, row) in out.chunks_exact_mut(ni).enumerate() {
            let v = x[v0 + o];
            for (r, ga) in row[..v0].iter_mut().zip(&g[..v0]) {
                *r = -v * s1 * ga;
            }
            row[v0 + o] = -s;
        }
    }

    // Σ_o λ_o ∇²out_o = −W (σ'' ∇z∇zᵀ + σ' ∇²z) − σ' Σ_o λ_o (e_{v_o}∇zᵀ + ∇z e_{v_o}ᵀ),
    // W = Σ_o λ_o v_o, and ∇²z has 1 at (y_i, w_i).
    fn weighted_hessian(&self, x: &[f64], weights: &[f64], out: &mut [f64]) {
        let d = self.states;
        let (z, g, v0) = self.pre_activation(x);
        let (_, s1, s2) = self.activation.value_and_derivatives(z);
        let w_sum: f64 = weights.iter().zip(&x[v0..]).map(|(l, v)| l * v).sum();
        let at = |a: usize, b: usize| a * (a + 1) / 2 + b;
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
}

impl ReducedUnit {
    /// `z`, `∇z` over the inputs before the outgoing weights (zero-padded to 16), and the
    /// index of the first outgoing weight.
    fn pre_activation(&self, x: &[f64]) -> (f64, [f64; 16], usize) {
        let d = self.states;
        let mut g = [0.0; 16];
        let mut z = 0.0;
        for i in 0..d {
            z += x[i] * x[d + i];
            g[i] = x[d + i];
            g[d + i] = x[i];
        }
        let mut next = 2 * d;
        if let Some(t) = self.time {
            z += x[next] * t;
            g[next] = t;
            next += 1;
        }
        z += x[next];
        g[next] = 1.0;
        (z, g, next + 1)
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
}

/// Most collocation points the derivative pre-fit uses (evenly spread).
const PREFIT_POINTS: usize = 4000;

/// Fits θ to derivative estimates of the smoothed states: with `Y_s` fixed,
/// `min_θ (1/N) Σ_k ‖(D·Y_s)_k − F_θ(Y_s,k, t_k)‖² + λ‖θ‖²` by Levenberg–Marquardt (see
/// [`super::prefit`]). Used to start θ of the collocation NLP in a better basin than a bare
/// Xavier draw.
pub fn prefit(problem: &Problem, init: &Mlp, start_states: &[Vec<f64>]) -> PrefitReport {
    let nodes = &problem.nodes;
    let d = problem.data.dim();
    let dm = differentiation_matrix(nodes);
    // At most PREFIT_POINTS evenly spread points: enough for ~160 parameters, and the
    // Levenberg–Marquardt Gram matrix costs O(points · parameters²) per iteration.
    let all = nodes.collocation_points();
    let stride = all.len().div_ceil(PREFIT_POINTS).max(1);
    let points: Vec<usize> = all.clone().step_by(stride).collect();
    let inputs: Vec<Vec<f64>> = points
        .iter()
        .map(|&k| {
            let mut x = start_states[k].clone();
            if problem.model.time_input {
                x.push(nodes.times[k]);
            }
            x
        })
        .collect();
    // The network's share of each derivative: (D·Y_s) minus the known part of the structure.
    let coupling = Coupling::of(&init.structure, d);
    let targets: Vec<Vec<f64>> = points
        .iter()
        .map(|&k| (k, k - all.start))
        .map(|(k, r)| {
            let derivative: Vec<f64> = (0..d)
                .map(|i| dm.row(r).map(|(j, v)| v * start_states[j][i]).sum())
                .collect();
            coupling.network_share(&derivative, &start_states[k])
        })
        .collect();
    let settings = PrefitSettings {
        parameter_bound: problem.parameter_bound.unwrap_or(f64::INFINITY),
        ..PrefitSettings::default()
    };
    levenberg_marquardt(init, &inputs, &targets, problem.lambda, &settings)
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
/// [`train`]'s defect continuation.
pub fn build_stage(
    problem: &Problem,
    formulation: Formulation,
    init: Option<&Mlp>,
    proximal: Option<&Proximal>,
    defect_weight: Option<f64>,
) -> Result<CollocationNlp, TrainError> {
    let started = Instant::now();
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
    let do_prefit = problem.prefit && init.is_none();
    let init = match init {
        Some(m) => {
            m.check_fits(problem.data.dim(), spec.time_input)?;
            m.clone()
        }
        None => spec
            .draw(problem.init_seed())?
            .with_structure(spec.structure.clone(), None)?,
    };
    init.activation.require_smooth()?;
    let coupling = Coupling::of(&init.structure, problem.data.dim());
    let nodes = &problem.nodes;
    let (n, d) = (nodes.len(), problem.data.dim());
    let train = problem.data.indices(Split::Train);
    let t_obs: Vec<f64> = train.iter().map(|&k| problem.data.t[k]).collect();

    // Start: local linear smoothing of the training observations at the nodes.
    let series: Vec<Vec<f64>> = (0..d)
        .map(|i| train.iter().map(|&k| problem.data.y[k][i]).collect())
        .collect();
    let bw = bandwidth(problem.smoothing, &t_obs, &series);
    let per_state: Vec<Vec<f64>> = series
        .iter()
        .map(|y| local_linear(&t_obs, y, &nodes.times, bw))
        .collect();
    let start_states: Vec<Vec<f64>> = (0..n)
        .map(|k| (0..d).map(|i| per_state[i][k]).collect())
        .collect();

    let prefit_started = Instant::now();
    let init = if do_prefit {
        prefit(problem, &init, &start_states).model
    } else {
        init
    };
    let prefit_s = if do_prefit {
        prefit_started.elapsed().as_secs_f64()
    } else {
        0.0
    };

    let mut m = Model::new();
    let state_bound = problem.state_bound.unwrap_or(f64::INFINITY);
    let states = m.add_variables(
        VarSpec::new("states", &[n, d])
            .bounds(-state_bound, state_bound)
            .start_each(start_states.concat()),
    )?;
    // θ's IPOPT scaling: in every stage but the exact stage after a defect continuation,
    // which thus meets IPOPT's tolerances unscaled.
    let exact_after_stages = defect_weight.is_none() && !problem.defect_penalties.is_empty();
    let theta_scaling = if exact_after_stages {
        1.0
    } else {
        problem.parameter_scaling
    };
    let theta = add_theta(&mut m, problem, &init, theta_scaling)?;
    // One constraint per collocation point and state; `row(k, i)` for node `k`.
    let points = nodes.collocation_points();
    let colloc = m.add_constraints(ConSpec::equal_zero("collocation", points.len() * d))?;
    let first_point = points.start;
    let row = |k: usize, i: usize| colloc.row((k - first_point) * d + i);
    let defects = match defect_weight {
        Some(w) => {
            let rows = points.len() * d;
            let s = m.add_variables(VarSpec::new("defects", &[rows]))?;
            m.add_linear_triplets(
                "defects",
                (0..rows).map(|r| (colloc.row(r), s.at(&[r]), -1.0)),
            );
            m.add_l2(L2Regularization::new(
                "defect_penalty",
                s.indices(),
                defect_term_weight(problem, w),
            ));
            Some(s)
        }
        None => None,
    };
    let defect = |k: usize, i: usize| defects.as_ref().map(|s| s.at(&[(k - first_point) * d + i]));

    // D·Y (finite elements: only the few nonzeros of each row enter the Jacobian).
    let dm = differentiation_matrix(nodes);
    m.add_linear_triplets(
        "differentiation",
        dm.triplets().flat_map(|(r, j, v)| {
            let states = &states;
            (0..d).map(move |i| (row(first_point + r, i), states.at(&[j, i]), v))
        }),
    );

    // The known part of the structure (second order: q' = v; gray box: A·y).
    m.add_linear_triplets(
        "known_dynamics",
        points.clone().flat_map(|k| {
            let (states, coupling) = (&states, &coupling);
            coupling
                .linear
                .iter()
                .map(move |&(i, j, c)| (row(k, i), states.at(&[k, j]), -c))
        }),
    );
    // The network's outputs drive the rows of `coupling.output_states`.
    let network_row = |k: usize, o: usize| row(k, coupling.output_states[o]);

    // Data fit at the observation times.
    let l = interpolation_matrix(nodes, &t_obs)?;
    add_fit(&mut m, &l, &states, &train, problem, d)?;
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

    let mut initial_rows = Vec::new();
    if problem.fix_initial_state {
        let first = train[0];
        let c = m.add_constraints(ConSpec::with_bounds(
            "initial_state",
            problem.data.y[first].clone(),
            problem.data.y[first].clone(),
        ))?;
        let l0 = interpolation_matrix(nodes, &[problem.data.t[first]])?;
        m.add_linear_triplets(
            "initial_state",
            l0.row(0).flat_map(|(j, v)| {
                let (c, states) = (&c, &states);
                (0..d).map(move |i| (c.row(i), states.at(&[j, i]), v))
            }),
        );
        initial_rows.extend((0..d).map(|i| c.row(i)));
    }

    match formulation {
        Formulation::Reduced => add_reduced_network(
            &mut m,
            &init,
            &states,
            &theta,
            (points.clone(), &nodes.times),
            spec.time_input,
            &network_row,
        )?,
        Formulation::Full => add_full_network(
            &mut m,
            &init,
            &states,
            &theta,
            &start_states,
            problem,
            &network_row,
        )?,
    }

    let mut nlp = m.build()?;
    if formulation == Formulation::Reduced && !nodes.elements.is_empty() {
        // Finite elements: each element's own states and collocation equations form a block
        // coupled only to its neighbours; θ couples everything and is eliminated last (see
        // colloc_solvers' block-arrow solver). The first state (and the initial-state rows)
        // open the first block: with y(t0) free the forward elimination is a Kalman-type
        // recursion (the data downstream pin the state), whereas with y(t0) eliminated last
        // it would be single shooting, whose sensitivities grow like the dynamics' expanding
        // modes (measured: multipliers of 1e7 and a wrong inertia on a 375-unit window).
        let mut chain: Vec<KktBlock> = nodes
            .elements
            .iter()
            .map(|(first, local)| {
                let owned = first + 1..first + local.len();
                KktBlock {
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
                }
            })
            .collect();
        if let Some(first) = chain.first_mut() {
            first
                .variables
                .splice(0..0, (0..d).map(|i| states.at(&[0, i])));
            first.constraints.splice(0..0, initial_rows);
        }
        nlp.set_kkt_blocks(KktBlocks {
            chain,
            global: KktBlock {
                variables: theta.indices().collect(),
                constraints: Vec::new(),
            },
        });
    }
    Ok(CollocationNlp {
        nlp,
        states,
        theta,
        defects,
        init,
        start_states,
        build_s: started.elapsed().as_secs_f64() - prefit_s,
        prefit_s,
    })
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
    time_input: bool,
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
            "network",
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
            time_input,
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
    time_input: bool,
    row: &dyn Fn(usize, usize) -> usize,
) -> Result<(), TrainError> {
    let (d_in, d, hidden) = (init.state_inputs(), init.n_outputs(), init.layers[1]);
    let n_in = 2 * d_in + 1 + d + usize::from(time_input);
    let mut units = ElementGroup::new("network", n_in, d);
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
        weight: 1.0 / train.len() as f64,
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn add_full_network(
    m: &mut Model,
    init: &Mlp,
    states: &VarBlock,
    theta: &VarBlock,
    start_states: &[Vec<f64>],
    problem: &Problem,
    row: &dyn Fn(usize, usize) -> usize,
) -> Result<(), TrainError> {
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
    let mut products = ElementGroup::new("products", 2, 1);
    let mut activations = ElementGroup::new("activations", 1, 1);
    let mut prev: Option<VarBlock> = None;
    for l in 0..n_layers - 1 {
        let (n_in, width) = (init.layers[l], init.layers[l + 1]);
        let z = m.add_variables(
            VarSpec::new(format!("z{}", l + 1), &[n, width]).start_each(z_start[l].concat()),
        )?;
        let h = m.add_variables(
            VarSpec::new(format!("h{}", l + 1), &[n, width]).start_each(h_start[l].concat()),
        )?;
        let pre = m.add_constraints(ConSpec::equal_zero(format!("pre{}", l + 1), n * width))?;
        let act = m.add_constraints(ConSpec::equal_zero(format!("act{}", l + 1), n * width))?;
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
    Ok(())
}

/// The learned ODE `y' = f_θ(y[, t])`.
pub struct LearnedOde<'a> {
    /// The network.
    pub model: &'a Mlp,
}

impl OdeSystem for LearnedOde<'_> {
    fn dim(&self) -> usize {
        self.model.state_inputs()
    }
    fn rhs(&self, t: f64, y: &[f64], dy: &mut [f64]) {
        if self.model.is_plain() && y.len() < 16 {
            // The common case without allocations.
            let mut input = [0.0; 16];
            let k = y.len();
            input[..k].copy_from_slice(y);
            let n = if self.model.time_input {
                input[k] = t;
                k + 1
            } else {
                k
            };
            let mut scratch = [0.0; 256];
            if 2 * self.model.max_width() <= scratch.len() {
                self.model
                    .forward_with(&self.model.params, &input[..n], dy, &mut scratch);
                return;
            }
        }
        self.model.vector_field(t, y, dy);
    }
}

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
            build_s: self.build_s,
            prefit_s: self.prefit_s,
            solve_s: stats.wall_s,
            eval_s: stats.eval_s,
        };
        self.stages.iter().fold(exact, |t, s| {
            t + SolveTotals {
                iterations: s.iterations,
                kkt_factorizations: s.kkt_factorizations,
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
}

/// Figures of a trained model on the problem's data.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Evaluation {
    /// Collocation states (interpolated to the training times) vs training observations.
    pub fit_mse: Option<f64>,
    /// Simulation vs training observations.
    pub train_mse: Option<f64>,
    /// Simulation vs test observations.
    pub test_mse: Option<f64>,
    /// Simulation vs noise-free training states.
    pub train_mse_clean: Option<f64>,
    /// Simulation vs noise-free test states.
    pub test_mse_clean: Option<f64>,
    /// Simulated states at every data time (NaN where the simulation failed).
    #[serde(skip)]
    pub prediction: Vec<Vec<f64>>,
    /// Fitted collocation states at the training times.
    #[serde(skip)]
    pub fitted: Vec<Option<Vec<f64>>>,
    /// The collocation polynomial against the learned ODE between the nodes: root mean square
    /// over the midpoints of consecutive nodes of `‖p'(t) − F_θ(p(t), t)‖` (zero at the
    /// collocation points by construction). Large values mean the fitted states satisfy the
    /// ODE only at the nodes — the grid is too coarse for the learned dynamics, and the
    /// simulation may leave the fitted trajectory.
    pub collocation_defect_rms: Option<f64>,
    /// The largest `‖p'(t) − F_θ(p(t), t)‖` over those midpoints.
    pub collocation_defect_max: Option<f64>,
    /// `collocation_defect_rms` divided by the root mean square of `‖p'(t)‖` there.
    pub collocation_defect_relative: Option<f64>,
    /// Why the simulation failed, if it did.
    pub simulation_error: Option<String>,
    /// Right-hand-side evaluations of the simulation.
    pub simulation_nfe: usize,
}

/// Simulates the learned ODE from the fitted state at `t0` over all data times, and compares.
pub fn evaluate(
    problem: &Problem,
    model: &Mlp,
    states: &[Vec<f64>],
) -> Result<Evaluation, TrainError> {
    let nodes = &problem.nodes;
    let d = problem.data.dim();
    let data = &problem.data;
    let train = data.indices(Split::Train);
    let column = |i: usize| states.iter().map(|y| y[i]).collect::<Vec<f64>>();
    let l0 = interpolation_matrix(nodes, &[problem.t0])?;
    let y0: Vec<f64> = (0..d).map(|i| l0.mul_vec(&column(i))[0]).collect();
    let t_train: Vec<f64> = train.iter().map(|&k| data.t[k]).collect();
    let l = interpolation_matrix(nodes, &t_train)?;
    let fitted_cols: Vec<Vec<f64>> = (0..d).map(|i| l.mul_vec(&column(i))).collect();
    let mut fitted = vec![None; data.t.len()];
    for (r, &k) in train.iter().enumerate() {
        fitted[k] = Some((0..d).map(|i| fitted_cols[i][r]).collect());
    }
    let fit_pred: Vec<Vec<f64>> = fitted
        .iter()
        .map(|f| f.clone().unwrap_or_else(|| vec![f64::NAN; d]))
        .collect();
    let defect = collocation_defect(nodes, model, states)?;
    let ev = Evaluation {
        fit_mse: mse(&fit_pred, &data.y, &train),
        fitted,
        collocation_defect_rms: defect.map(|d| d.rms),
        collocation_defect_max: defect.map(|d| d.max),
        collocation_defect_relative: defect.map(|d| d.relative),
        ..Default::default()
    };

    Ok(simulate_and_score(problem, model, problem.t0, &y0, ev))
}

/// `collocation_defect_relative` from which `colloc solve` warns that the grid is too coarse
/// for the learned dynamics. Measured on `problems/vanderpol-admm.toml` (300 Chebyshev points
/// on [0, 30]) over seeds 0–4: the fits whose simulation follows the data had 0.009–0.010, the
/// three whose simulation left the fitted trajectory (train MSE 2.1–2.4) 0.023–0.041; with 600
/// points those three reached 2e-4 and train MSE 0.019. `vanderpol.toml`: 0.0009.
pub const DEFECT_WARNING_RELATIVE: f64 = 0.02;

/// How far the collocation polynomial is from solving the learned ODE between the nodes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CollocationDefect {
    /// Root mean square of `‖p'(t) − F_θ(p(t), t)‖` over the midpoints of consecutive nodes.
    pub rms: f64,
    /// Its largest value there.
    pub max: f64,
    /// `rms` divided by the root mean square of `‖p'(t)‖` there.
    pub relative: f64,
}

/// The defect `p'(t) − F_θ(p(t), t)` of the collocation polynomial `p` through `states` (one
/// row per node, in the model's units) at the midpoints of consecutive nodes, where the
/// collocation equations do not hold it to zero. `None` when the defect cannot be evaluated
/// (fewer than two nodes, or a non-finite value).
pub fn collocation_defect(
    nodes: &Nodes,
    model: &Mlp,
    states: &[Vec<f64>],
) -> Result<Option<CollocationDefect>, TrainError> {
    let d = states.first().map_or(0, Vec::len);
    let midpoints: Vec<f64> = nodes
        .times
        .windows(2)
        .filter(|w| w[1] > w[0])
        .map(|w| 0.5 * (w[0] + w[1]))
        .collect();
    if midpoints.is_empty() || d == 0 || states.len() != nodes.len() {
        return Ok(None);
    }
    let values = interpolation_matrix(nodes, &midpoints)?;
    let slopes = derivative_matrix(nodes, &midpoints)?;
    let column = |i: usize| states.iter().map(|y| y[i]).collect::<Vec<f64>>();
    let y: Vec<Vec<f64>> = (0..d).map(|i| values.mul_vec(&column(i))).collect();
    let dy: Vec<Vec<f64>> = (0..d).map(|i| slopes.mul_vec(&column(i))).collect();
    let ode = LearnedOde { model };
    let (mut squares, mut scale, mut max) = (0.0_f64, 0.0_f64, 0.0_f64);
    let (mut point, mut f) = (vec![0.0; d], vec![0.0; d]);
    for (m, &t) in midpoints.iter().enumerate() {
        for i in 0..d {
            point[i] = y[i][m];
        }
        ode.rhs(t, &point, &mut f);
        let norm2: f64 = (0..d).map(|i| (dy[i][m] - f[i]).powi(2)).sum();
        squares += norm2;
        scale += (0..d).map(|i| dy[i][m].powi(2)).sum::<f64>();
        max = max.max(norm2.sqrt());
    }
    let count = midpoints.len() as f64;
    let rms = (squares / count).sqrt();
    let relative = rms / (scale / count).sqrt();
    Ok((rms.is_finite() && max.is_finite()).then_some(CollocationDefect { rms, max, relative }))
}

/// Simulates the learned ODE from `(t_start, y_start)` over every data time from `t_start` on
/// (Dopri5, rtol 1e-7, atol 1e-9) and fills the simulation figures of `ev`: `train_mse`,
/// `test_mse`, the `_clean` ones for generated data, `prediction` (NaN before `t_start` and
/// where the simulation failed), `simulation_error`, `simulation_nfe`.
pub fn simulate_and_score(
    problem: &Problem,
    model: &Mlp,
    t_start: f64,
    y_start: &[f64],
    mut ev: Evaluation,
) -> Evaluation {
    let data = &problem.data;
    let d = data.dim();
    let train = data.indices(Split::Train);
    let test = data.indices(Split::Test);
    let times: Vec<f64> = data.t.iter().copied().filter(|&t| t >= t_start).collect();
    let offset = data.t.len() - times.len();
    let solver = Dopri5::with_tolerances(1e-7, 1e-9);
    let ode = LearnedOde { model };
    let mut sim = solver.solve(&ode, t_start, y_start, &times);
    let mut prediction = vec![vec![f64::NAN; d]; data.t.len()];
    if let (Err(e), Some(&last_train)) = (&sim, train.last()) {
        // A model that blows up in the test window still has its training-window figures
        // (the test figures stay empty and the error is reported).
        let t_end = data.t[last_train];
        let train_times: Vec<f64> = times.iter().copied().filter(|&t| t <= t_end).collect();
        if let Ok(partial) = solver.solve(&ode, t_start, y_start, &train_times) {
            ev.simulation_error = Some(format!(
                "the test window could not be simulated: {}",
                describe(e)
            ));
            sim = Ok(partial);
        }
    }
    match sim {
        Ok(s) => {
            ev.simulation_nfe = s.stats.nfe;
            for (k, y) in s.y.into_iter().enumerate() {
                prediction[offset + k] = y;
            }
            ev.train_mse = mse(&prediction, &data.y, &train);
            ev.test_mse = mse(&prediction, &data.y, &test);
            if let Some(clean) = &data.clean {
                ev.train_mse_clean = mse(&prediction, clean, &train);
                ev.test_mse_clean = mse(&prediction, clean, &test);
            }
        }
        Err(e) => ev.simulation_error = Some(describe(&e)),
    }
    ev.prediction = prediction;
    ev
}

/// Where and why a simulation of the learned ODE stopped.
fn describe(e: &OdeError) -> String {
    match e.time_reached() {
        Some(t) => format!("the learned ODE could not be integrated past t = {t:.4}: {e}"),
        None => e.to_string(),
    }
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
/// With `[model] normalize = true`, or a starting model that carries a normalization, the
/// network is trained on the problem restated in standardized coordinates
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
    let mut run = train_on_grid(problem, formulation, init, None, 0, observer)?;
    let Some(refinement) = problem.refinement else {
        return Ok(run);
    };
    let mut current = problem.clone();
    let mut rounds = Vec::new();
    loop {
        let defect = run.evaluation.collocation_defect_relative;
        let Some(defect) = defect.filter(|&d| run.solution.is_success() && d > refinement.defect)
        else {
            break;
        };
        let nodes = current.nodes.refined()?;
        if nodes.len() > refinement.max_points {
            break;
        }
        let (model, start) = match refinement.start {
            RefinementStart::Data => (None, None),
            RefinementStart::Solution => {
                // The coarse collocation polynomial at the new nodes, and the coarse θ.
                let l = interpolation_matrix(&current.nodes, &nodes.times)?;
                let columns: Vec<Vec<f64>> = (0..current.data.dim())
                    .map(|i| l.mul_vec(&run.states.iter().map(|y| y[i]).collect::<Vec<f64>>()))
                    .collect();
                let start: Vec<Vec<f64>> = (0..nodes.len())
                    .map(|k| columns.iter().map(|c| c[k]).collect())
                    .collect();
                (Some(run.model.clone()), Some(start))
            }
        };
        let first_iteration = run.history.last().map_or(0, |it| it.iteration + 1);
        rounds.push(RefinementRound::of(&run, defect));
        current.nodes = nodes;
        run = train_on_grid(
            &current,
            formulation,
            model.as_ref().or(init),
            start.as_deref(),
            first_iteration,
            observer,
        )
        .map(|mut next| {
            next.history.splice(0..0, std::mem::take(&mut run.history));
            next
        })?;
    }
    run.refinements = rounds;
    Ok(run)
}

impl RefinementRound {
    fn of(run: &CollocationRun, defect: f64) -> Self {
        Self {
            points: run.nodes.len(),
            status: run.solution.status.to_string(),
            objective: run.solution.objective,
            collocation_defect_relative: defect,
            totals: run.grid_totals(),
        }
    }
}

/// [`train`] on the problem's own grid: the states start from `start` (one row per node, in
/// the data's units) when given, else from the smoothed data; iteration numbers start at
/// `first_iteration`.
fn train_on_grid(
    problem: &Problem,
    formulation: Formulation,
    init: Option<&Mlp>,
    start: Option<&[Vec<f64>]>,
    first_iteration: usize,
    observer: &mut dyn FnMut(&IterationInfo) -> bool,
) -> Result<CollocationRun, TrainError> {
    let coordinates = training_coordinates(problem, init).map_err(TrainError::Unsupported)?;
    let mut run = match &coordinates {
        None => train_network(problem, formulation, init, start, first_iteration, observer)?,
        Some(n) => {
            let inner = problem
                .in_coordinates(n)
                .map_err(|e| TrainError::Unsupported(e.to_string()))?;
            let network = init.map(Mlp::network_only);
            let start: Option<Vec<Vec<f64>>> =
                start.map(|s| s.iter().map(|y| n.state_to_normalized(y)).collect());
            let mut run = train_network(
                &inner,
                formulation,
                network.as_ref(),
                start.as_deref(),
                first_iteration,
                observer,
            )?;
            run.model = run.model.with_normalization(Some(n.clone()))?;
            run.states = states_from_normalized(n, &run.states);
            run.nodes = problem.nodes.clone();
            run
        }
    };
    run.evaluation = evaluate(problem, &run.model, &run.states)?;
    Ok(run)
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

/// [`train`] in the network's own coordinates, without the evaluation.
fn train_network(
    problem: &Problem,
    formulation: Formulation,
    init: Option<&Mlp>,
    start: Option<&[Vec<f64>]>,
    first_iteration: usize,
    observer: &mut dyn FnMut(&IterationInfo) -> bool,
) -> Result<CollocationRun, TrainError> {
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
    // The previous stage: its variable layout and solution (an NLP is dropped before the
    // next one is built, so two large NLPs are never held at once).
    let mut previous: Option<(Layout, IpoptSolution)> = None;
    // The relaxed NLP, built once: later penalty stages only change its weight.
    let mut relaxed: Option<CollocationNlp> = None;
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
                built
                    .nlp
                    .set_l2_weight("defect_penalty", defect_term_weight(problem, w))
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
            None => build_stage(
                problem,
                formulation,
                start_model.as_ref(),
                None,
                defect_weight,
            )?,
        };
        prefit_s += built.prefit_s;
        build_s += built.build_s;
        let warm = match (&previous, start) {
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
                objective: solution.objective,
                max_defect: built.defects.as_ref().map_or(0.0, |s| {
                    s.slice(&solution.x).iter().fold(0.0, |m, v| m.max(v.abs()))
                }),
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
    let (n, d) = (problem.nodes.len(), problem.data.dim());
    let states: Vec<Vec<f64>> = (0..n)
        .map(|k| {
            (0..d)
                .map(|i| solution.x[built.states.at(&[k, i])])
                .collect()
        })
        .collect();
    let model = model_at(&built, &solution.x);
    Ok(CollocationRun {
        model,
        states,
        dims: built.dims,
        solution,
        history,
        stages,
        build_s,
        prefit_s,
        evaluation: Evaluation::default(),
        nodes: problem.nodes.clone(),
        refinements: Vec::new(),
    })
}

/// The NLP's own starting point with the states replaced by `states` (one row per node).
fn start_at_states(built: &CollocationNlp, states: &[Vec<f64>]) -> Result<WarmStart, TrainError> {
    let mut x = vec![0.0; built.nlp.dims().n_vars];
    built.nlp.initial_point(&mut x);
    let d = states.first().map_or(0, Vec::len);
    if states.len() * d != built.states.indices().len() {
        return Err(TrainError::Unsupported(format!(
            "{} starting states of dimension {d} for a grid of {} values",
            states.len(),
            built.states.indices().len()
        )));
    }
    for (k, y) in states.iter().enumerate() {
        for (i, &v) in y.iter().enumerate() {
            x[built.states.at(&[k, i])] = v;
        }
    }
    Ok(WarmStart::primal(x))
}

/// Where a stage's states and θ sit in its variables.
struct Layout {
    states: VarBlock,
    theta: VarBlock,
    init: Mlp,
    dims: NlpDims,
}

impl Layout {
    fn of(built: &CollocationNlp) -> Self {
        Self {
            states: built.states.clone(),
            theta: built.theta.clone(),
            init: built.init.clone(),
            dims: built.nlp.dims(),
        }
    }
}

/// Weight of `Σ‖s_k‖²` in the objective for the defect weight `w`: `w/N`, `N` collocation
/// points.
fn defect_term_weight(problem: &Problem, w: f64) -> f64 {
    w / problem.nodes.collocation_points().len() as f64
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
    next: &CollocationNlp,
    with_multipliers: bool,
) -> WarmStart {
    let n = next.nlp.dims().n_vars;
    let copy = |from: &[f64], fill: f64| {
        let mut to = vec![fill; n];
        for (a, b) in [(&before.states, &next.states), (&before.theta, &next.theta)] {
            to[b.indices()].copy_from_slice(a.slice(from));
        }
        to
    };
    let mut x = copy(&solution.x, 0.0);
    if let Some(s) = &next.defects {
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
    use num_dual::{Dual2SVec64, DualSVec64};

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

    #[test]
    fn reduced_unit_closed_forms_match_dual_numbers() {
        for (d, time, activation) in [
            (2, None, Activation::Tanh),
            (2, Some(0.7), Activation::Gelu),
            (3, Some(-1.3), Activation::Softplus),
            (3, None, Activation::Sigmoid),
        ] {
            let unit = ReducedUnit {
                states: d,
                time,
                activation,
            };
            let ni = 2 * d + usize::from(time.is_some()) + 1 + d;
            let x: Vec<f64> = (0..ni)
                .map(|i| 0.3 * ((i * 37 % 11) as f64) - 1.2)
                .collect();
            let weights: Vec<f64> = (0..d).map(|o| 0.5 - 0.8 * o as f64).collect();
            // Dual numbers: the whole Jacobian and Hessian (16 inputs at most here).
            let xs: Vec<DualSVec64<16>> = x
                .iter()
                .enumerate()
                .map(|(a, &v)| DualSVec64::<16>::from_re(v).derivative(a))
                .collect();
            let mut ys = vec![DualSVec64::<16>::from_re(0.0); d];
            unit.eval(&xs, &mut ys);
            let mut jac = vec![0.0; d * ni];
            unit.jacobian(&x, &mut jac);
            for o in 0..d {
                let g = ys[o].eps.0.as_ref().unwrap();
                for a in 0..ni {
                    assert!(
                        (jac[o * ni + a] - g[a]).abs() < 1e-13,
                        "jacobian ({o}, {a})"
                    );
                }
            }
            let xs2: Vec<Dual2SVec64<16>> = x
                .iter()
                .enumerate()
                .map(|(a, &v)| Dual2SVec64::<16>::from_re(v).derivative(a))
                .collect();
            let mut ys2 = vec![Dual2SVec64::<16>::from_re(0.0); d];
            unit.eval(&xs2, &mut ys2);
            let mut hess = vec![0.0; ni * (ni + 1) / 2];
            unit.weighted_hessian(&x, &weights, &mut hess);
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
