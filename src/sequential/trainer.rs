//! The epoch loop shared by the sequential trainers: loss and exact gradient of the chosen
//! method, the uncoupled training MSE that selects the best parameters (Algorithm 1 of the
//! homotopy paper, used for every method), and an AdamW step.

use super::neural_ode::NeuralOde;
use super::settings::{SequentialSettings, TrainMethod};
use super::spline::{default_smoothing, SmoothingSpline};
use colloc_models::Mlp;
use colloc_solvers::ode::adjoint::{
    gradient, solve_recorded, DifferentiableSystem, Gradient, Method,
};
use colloc_solvers::ode::{Dopri5Settings, OdeError, OdeSystem};
use colloc_solvers::optim::{Adam, AdamSettings};
use std::time::Instant;

/// Observations a trainer fits: times (increasing) and states.
#[derive(Clone, Debug)]
pub struct Series {
    /// Times.
    pub t: Vec<f64>,
    /// States, one vector per time.
    pub y: Vec<Vec<f64>>,
}

/// One epoch of the learning curve.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EpochRecord {
    /// Epoch (0-based).
    pub epoch: usize,
    /// The method's loss (homotopy: on the coupled trajectory; shooting: data + continuity).
    pub loss: f64,
    /// MSE of the uncoupled trajectory from the start (the first observation unless given or
    /// learned) vs the training data.
    pub train_mse: f64,
    /// Homotopy parameter (0 for the other methods).
    pub lambda: f64,
    /// Seconds since training started.
    pub time_s: f64,
    /// Right-hand-side evaluations since training started (forward solves).
    pub nfe: usize,
}

/// The outcome of a sequential training run.
#[derive(Clone, Debug)]
pub struct TrainReport {
    /// The model with the best training MSE.
    pub best: Mlp,
    /// Its epoch.
    pub best_epoch: usize,
    /// Its training MSE.
    pub best_mse: f64,
    /// The states its trajectories start from at their first observation times, one per
    /// series: the first observation (or the given start), or the learned start with
    /// `learn_initial_state`.
    pub best_starts: Vec<Vec<f64>>,
    /// Per-epoch record.
    pub curve: Vec<EpochRecord>,
    /// Right-hand-side evaluations of all forward solves.
    pub nfe: usize,
    /// Why training stopped before its last epoch, if it did (integration failure, observer).
    pub stopped: Option<String>,
    /// True when the observer asked to stop.
    pub interrupted: bool,
}

/// Why a trainer cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SequentialError {
    /// Too few observations for the method.
    #[error("{0}")]
    Data(String),
    /// The first solve failed.
    #[error("the first integration failed: {0}")]
    Ode(#[from] OdeError),
}

/// Mean over all entries of (a − b)², with its cotangents 2(a − b)/count when asked.
fn mse_and_cotangents(pred: &[Vec<f64>], obs: &[Vec<f64>]) -> (f64, Vec<Vec<f64>>) {
    let count = pred.iter().map(Vec::len).sum::<usize>().max(1) as f64;
    let mut sum = 0.0;
    let cot = pred
        .iter()
        .zip(obs)
        .map(|(p, o)| {
            p.iter()
                .zip(o)
                .map(|(a, b)| {
                    sum += (a - b) * (a - b);
                    2.0 * (a - b) / count
                })
                .collect()
        })
        .collect();
    (sum / count, cot)
}

/// The model coupled to the data: `u' = f_θ(u, t) − λk·(u − û(t))`.
struct Coupled<'a> {
    base: &'a NeuralOde<'a>,
    spline: &'a SmoothingSpline,
    gain: f64,
}

impl OdeSystem for Coupled<'_> {
    fn dim(&self) -> usize {
        self.base.dim()
    }
    fn rhs(&self, t: f64, y: &[f64], dy: &mut [f64]) {
        self.base.rhs(t, y, dy);
        self.add_coupling(t, y, dy);
    }
}

impl Coupled<'_> {
    /// `dy −= λk·(y − û(t))`.
    fn add_coupling(&self, t: f64, y: &[f64], dy: &mut [f64]) {
        let mut u_hat = [0.0; 32];
        let n = y.len();
        if n <= 32 {
            self.spline.eval(t, &mut u_hat[..n]);
            for i in 0..n {
                dy[i] -= self.gain * (y[i] - u_hat[i]);
            }
        } else {
            let mut u_hat = vec![0.0; n];
            self.spline.eval(t, &mut u_hat);
            for i in 0..n {
                dy[i] -= self.gain * (y[i] - u_hat[i]);
            }
        }
    }
}

impl DifferentiableSystem for Coupled<'_> {
    fn n_params(&self) -> usize {
        self.base.n_params()
    }
    fn vjp(&self, t: f64, y: &[f64], w: &[f64], grad_y: &mut [f64], grad_params: &mut [f64]) {
        self.base.vjp(t, y, w, grad_y, grad_params);
        for (g, wi) in grad_y.iter_mut().zip(w) {
            *g -= self.gain * wi;
        }
    }
    fn begin_tape(&self) -> Option<u64> {
        self.base.begin_tape()
    }
    fn rhs_taped(&self, t: f64, y: &[f64], dy: &mut [f64], slot: usize) {
        self.base.rhs_taped(t, y, dy, slot);
        self.add_coupling(t, y, dy);
    }
    fn vjp_taped(
        &self,
        tape: u64,
        slot: usize,
        t: f64,
        y: &[f64],
        w: &[f64],
        grad_y: &mut [f64],
        grad_params: &mut [f64],
    ) {
        self.base
            .vjp_taped(tape, slot, t, y, w, grad_y, grad_params);
        for (g, wi) in grad_y.iter_mut().zip(w) {
            *g -= self.gain * wi;
        }
    }
}

/// Loss and gradient of one epoch.
struct EpochEval {
    loss: f64,
    grad: Vec<f64>,
    /// The uncoupled training MSE when the loss computation produced it.
    train_mse: Option<f64>,
    nfe: usize,
}

/// Trains `init` on `data` with the method of `settings`, the trajectory started from `start`
/// (default: the first observation) at the first observation time — or, with
/// `learn_initial_state`, from `start` plus a trained correction. `observer` sees every epoch
/// and may stop training by returning false; the best parameters so far are returned either
/// way.
pub fn train(
    init: &Mlp,
    start: Option<&[f64]>,
    data: &Series,
    settings: &SequentialSettings,
    observer: &mut dyn FnMut(&EpochRecord) -> bool,
) -> Result<TrainReport, SequentialError> {
    train_many(
        init,
        &[start],
        std::slice::from_ref(data),
        settings,
        observer,
    )
}

/// [`train`] on several series (experiments) at once: one network, each series its own
/// trajectory from its own start (`starts[j]`, default its first observation; learned per
/// series with `learn_initial_state`), its own homotopy spline or shooting segments. The loss
/// is the observation-weighted mean of the series' losses (series j weighs `n_j/Σn`), so for
/// the data term it is the MSE over all observations; the best parameters are selected by
/// the pooled uncoupled MSE. The trained vector holds θ, then each series' corrections.
pub fn train_many(
    init: &Mlp,
    starts: &[Option<&[f64]>],
    data: &[Series],
    settings: &SequentialSettings,
    observer: &mut dyn FnMut(&EpochRecord) -> bool,
) -> Result<TrainReport, SequentialError> {
    if data.is_empty() || starts.len() != data.len() {
        return Err(SequentialError::Data(format!(
            "{} series and {} starts: need one start (or none) per series",
            data.len(),
            starts.len()
        )));
    }
    for (series, start) in data.iter().zip(starts) {
        let n_obs = series.t.len();
        if n_obs < 2 {
            return Err(SequentialError::Data(format!(
                "sequential training needs at least 2 training observations, got {n_obs}"
            )));
        }
        let d = series.y[0].len();
        if let Some(s) = start {
            if s.len() != d || s.iter().any(|v| !v.is_finite()) {
                return Err(SequentialError::Data(format!(
                    "the start state needs {d} finite values, got {s:?}"
                )));
            }
        }
    }
    let objective = Objectives::new(init, starts, data, settings)?;
    let total = settings.total_epochs();
    let mut params = objective.initial_vector();
    let n_theta = init.n_params();
    let mut adam = Adam::new(
        AdamSettings {
            learning_rate: settings.method_learning_rate(),
            weight_decay: settings.weight_decay,
            ..Default::default()
        },
        params.len(),
    );
    let started = Instant::now();
    let mut report = TrainReport {
        best: init.clone(),
        best_epoch: 0,
        best_mse: f64::INFINITY,
        best_starts: objective.starts_of(&params),
        // Reserved up front for ordinary budgets only: the epoch count is the user's.
        curve: Vec::with_capacity(total.min(100_000)),
        nfe: 0,
        stopped: None,
        interrupted: false,
    };

    for epoch in 0..total {
        let lambda = match settings.method {
            TrainMethod::Homotopy => settings.homotopy.lambda_at(epoch),
            _ => 0.0,
        };
        let eval = match objective.epoch(&params, lambda) {
            Ok(e) => e,
            Err(e) => {
                report.stopped = Some(format!("epoch {epoch}: integration failed: {e}"));
                break;
            }
        };
        report.nfe += eval.nfe;
        let train_mse = match eval.train_mse {
            Some(m) => m,
            None => match objective.uncoupled(&params, false) {
                Ok(u) => {
                    report.nfe += u.nfe;
                    u.loss
                }
                // The uncoupled model blew up: it cannot be the best; keep training.
                Err(_) => f64::INFINITY,
            },
        };
        if train_mse <= report.best_mse {
            report.best_mse = train_mse;
            report.best_epoch = epoch;
            report.best.params.copy_from_slice(&params[..n_theta]);
            report.best_starts = objective.starts_of(&params);
        }
        let record = EpochRecord {
            epoch,
            loss: eval.loss,
            train_mse,
            lambda,
            time_s: started.elapsed().as_secs_f64(),
            nfe: report.nfe,
        };
        let go_on = observer(&record);
        report.curve.push(record);
        if !go_on {
            report.stopped = Some(format!("stopped by the user after epoch {epoch}"));
            report.interrupted = true;
            break;
        }
        if eval.grad.iter().any(|g| !g.is_finite()) {
            report.stopped = Some(format!("epoch {epoch}: non-finite gradient"));
            break;
        }
        adam.step(&mut params, &eval.grad);
    }
    if report.curve.is_empty() {
        if let Some(why) = &report.stopped {
            return Err(SequentialError::Data(why.clone()));
        }
    }
    Ok(report)
}

/// The epoch loss of several series as one function of the trained vector `θ | corrections of
/// series 0 | corrections of series 1 | …`: each series' [`Objective`] on θ and its own
/// corrections, weighted by its share of the observations.
struct Objectives<'a> {
    parts: Vec<Objective<'a>>,
    /// Series j's share of all observations.
    weights: Vec<f64>,
    /// Where series j's corrections begin in the trained vector (and, last, its length).
    offsets: Vec<usize>,
    n_theta: usize,
}

impl<'a> Objectives<'a> {
    fn new(
        init: &'a Mlp,
        starts: &[Option<&[f64]>],
        data: &'a [Series],
        settings: &'a SequentialSettings,
    ) -> Result<Self, SequentialError> {
        let parts = data
            .iter()
            .zip(starts)
            .map(|(series, start)| Objective::new(init, *start, series, settings))
            .collect::<Result<Vec<_>, _>>()?;
        let total: usize = data.iter().map(|s| s.t.len()).sum();
        let weights = data
            .iter()
            .map(|s| s.t.len() as f64 / total as f64)
            .collect();
        let n_theta = init.n_params();
        let mut offsets = vec![n_theta];
        for part in &parts {
            let extra = part.initial_vector().len() - n_theta;
            offsets.push(offsets[offsets.len() - 1] + extra);
        }
        Ok(Self {
            parts,
            weights,
            offsets,
            n_theta,
        })
    }

    /// θ of `init`, then every series' zero corrections.
    fn initial_vector(&self) -> Vec<f64> {
        let mut params = self.parts[0].init.params.clone();
        params.resize(self.offsets[self.offsets.len() - 1], 0.0);
        params
    }

    /// Every series' start.
    fn starts_of(&self, params: &[f64]) -> Vec<Vec<f64>> {
        if self.parts.len() == 1 {
            return vec![self.parts[0].start_of(params)];
        }
        (0..self.parts.len())
            .map(|j| self.parts[j].start_of(&self.local_owned(params, j)))
            .collect()
    }

    /// Series j's own vector: θ and its corrections.
    fn local_owned(&self, params: &[f64], j: usize) -> Vec<f64> {
        let mut v = params[..self.n_theta].to_vec();
        v.extend_from_slice(&params[self.offsets[j]..self.offsets[j + 1]]);
        v
    }

    /// The weighted sum of the series' evaluations (one series: its own, untouched).
    fn combine(
        &self,
        params: &[f64],
        each: impl Fn(&Objective<'a>, &[f64]) -> Result<EpochEval, OdeError>,
    ) -> Result<EpochEval, OdeError> {
        if self.parts.len() == 1 {
            return each(&self.parts[0], params);
        }
        let mut total = EpochEval {
            loss: 0.0,
            grad: vec![0.0; params.len()],
            train_mse: Some(0.0),
            nfe: 0,
        };
        for (j, (part, w)) in self.parts.iter().zip(&self.weights).enumerate() {
            let local = self.local_owned(params, j);
            let e = each(part, &local)?;
            total.loss += w * e.loss;
            total.nfe += e.nfe;
            total.train_mse = match (total.train_mse, e.train_mse) {
                (Some(a), Some(b)) => Some(a + w * b),
                _ => None,
            };
            if !e.grad.is_empty() {
                for (g, v) in total.grad[..self.n_theta].iter_mut().zip(&e.grad) {
                    *g += w * v;
                }
                let own = &mut total.grad[self.offsets[j]..self.offsets[j + 1]];
                for (g, v) in own.iter_mut().zip(&e.grad[self.n_theta..]) {
                    *g = w * v;
                }
            }
        }
        Ok(total)
    }

    /// The pooled uncoupled MSE, with its gradient when asked.
    fn uncoupled(&self, params: &[f64], with_grad: bool) -> Result<EpochEval, OdeError> {
        let mut e = self.combine(params, |part, p| part.uncoupled(p, with_grad))?;
        if !with_grad {
            e.grad.clear();
        }
        Ok(e)
    }

    /// The weighted method losses at homotopy parameter `lambda`.
    fn epoch(&self, params: &[f64], lambda: f64) -> Result<EpochEval, OdeError> {
        self.combine(params, |part, p| part.epoch(p, lambda))
    }
}

/// The loss of one epoch of the chosen method as a function of the trained vector — θ, then
/// the correction of the first observation (with `learn_initial_state`), then (shooting) the
/// corrections of the other segments' starts — with its exact gradient.
struct Objective<'a> {
    init: &'a Mlp,
    data: &'a Series,
    settings: &'a SequentialSettings,
    method: Method,
    /// The homotopy's smoothing spline of the data.
    spline: Option<SmoothingSpline>,
    /// Multiple shooting's segment boundaries.
    segments: Vec<usize>,
    /// The start without correction: the given one, else the first observation.
    base: Vec<f64>,
}

impl<'a> Objective<'a> {
    fn new(
        init: &'a Mlp,
        start: Option<&[f64]>,
        data: &'a Series,
        settings: &'a SequentialSettings,
    ) -> Result<Self, SequentialError> {
        let n_obs = data.t.len();
        let method = Method::Dopri5(Dopri5Settings {
            rtol: settings.rtol,
            atol: settings.atol,
            max_steps: settings.max_steps,
            ..Default::default()
        });
        let spline = match settings.method {
            TrainMethod::Homotopy => {
                let channels: Vec<Vec<f64>> = (0..data.y[0].len())
                    .map(|i| data.y.iter().map(|y| y[i]).collect())
                    .collect();
                let p = settings
                    .homotopy
                    .smoothing
                    .unwrap_or_else(|| default_smoothing(&data.t));
                Some(SmoothingSpline::fit(&data.t, &channels, p).ok_or_else(|| {
                    SequentialError::Data(format!(
                        "the homotopy trainer's smoothing spline needs at least 3 increasing times, got {n_obs}"
                    ))
                })?)
            }
            _ => None,
        };
        let segments = match settings.method {
            TrainMethod::Shooting => {
                let m = settings.shooting.segments;
                if n_obs < m + 1 {
                    return Err(SequentialError::Data(format!(
                        "{m} shooting segments (`sequential.shooting.segments`) need at least {} training observations, got {n_obs}",
                        m + 1
                    )));
                }
                shooting_bounds(n_obs, m)
            }
            _ => Vec::new(),
        };
        Ok(Self {
            init,
            data,
            settings,
            method,
            spline,
            segments,
            base: start.unwrap_or(&data.y[0]).to_vec(),
        })
    }

    fn n_theta(&self) -> usize {
        self.init.n_params()
    }

    fn learn_start(&self) -> bool {
        self.settings.learn_initial_state
    }

    /// The trained vector at the start: θ of `init`, then zero corrections.
    fn initial_vector(&self) -> Vec<f64> {
        let d = self.base.len();
        let corrections = usize::from(self.learn_start()) + self.segments.len().saturating_sub(2);
        let mut params = self.init.params.clone();
        params.resize(params.len() + d * corrections, 0.0);
        params
    }

    /// The state the trajectory starts from: the base, plus its correction when learned.
    fn start_of(&self, params: &[f64]) -> Vec<f64> {
        if self.learn_start() {
            let at = self.n_theta();
            self.base
                .iter()
                .zip(&params[at..at + self.base.len()])
                .map(|(y, e)| y + e)
                .collect()
        } else {
            self.base.clone()
        }
    }

    /// The gradient in θ and, when learned, in the start correction.
    fn full_gradient(&self, g: Gradient) -> Vec<f64> {
        let mut grad = g.params;
        if self.learn_start() {
            grad.extend(g.initial_state);
        }
        grad
    }

    /// The uncoupled MSE from the start, with its gradient when asked.
    fn uncoupled(&self, params: &[f64], with_grad: bool) -> Result<EpochEval, OdeError> {
        let data = self.data;
        let sys = NeuralOde::new(self.init, &params[..self.n_theta()]);
        let tr = solve_recorded(
            &self.method,
            &sys,
            data.t[0],
            &self.start_of(params),
            &data.t,
        )?;
        let (mse, cot) = mse_and_cotangents(&tr.y, &data.y);
        let grad = if with_grad {
            self.full_gradient(gradient(&tr, &sys, &cot))
        } else {
            Vec::new()
        };
        Ok(EpochEval {
            loss: mse,
            grad,
            train_mse: Some(mse),
            nfe: tr.stats.nfe,
        })
    }

    /// The method's loss and gradient at homotopy parameter `lambda` (0 for the others).
    fn epoch(&self, params: &[f64], lambda: f64) -> Result<EpochEval, OdeError> {
        let data = self.data;
        match self.settings.method {
            TrainMethod::Vanilla => self.uncoupled(params, true),
            // λ = 0 (the last homotopy step): the coupled system is the model itself.
            TrainMethod::Homotopy if lambda == 0.0 => self.uncoupled(params, true),
            TrainMethod::Homotopy => {
                let spline = self.spline.as_ref().expect("fitted for the homotopy");
                let base = NeuralOde::new(self.init, &params[..self.n_theta()]);
                let sys = Coupled {
                    base: &base,
                    spline,
                    gain: lambda * self.settings.homotopy.coupling,
                };
                let start = self.start_of(params);
                let tr = solve_recorded(&self.method, &sys, data.t[0], &start, &data.t)?;
                let (loss, cot) = mse_and_cotangents(&tr.y, &data.y);
                Ok(EpochEval {
                    loss,
                    grad: self.full_gradient(gradient(&tr, &sys, &cot)),
                    train_mse: None,
                    nfe: tr.stats.nfe,
                })
            }
            TrainMethod::Shooting => shooting_epoch(
                self.init,
                params,
                data,
                &self.segments,
                self.settings.shooting.continuity,
                (&self.base, self.learn_start()),
                &self.method,
            ),
        }
    }
}

/// Segment boundaries of multiple shooting: `n` points split as `numpy.array_split` does (the
/// first `n mod m` segments one point longer); segment j owns points `b[j]..b[j + 1]`.
fn shooting_bounds(n: usize, m: usize) -> Vec<usize> {
    let (len, extra) = (n / m, n % m);
    let mut b = vec![0];
    for j in 0..m {
        b.push(b[j] + len + usize::from(j < extra));
    }
    b
}

/// Multiple shooting (Appendix D; as the paper's code): segment 0 starts from `start.0` (the
/// first observation unless given; plus a trainable correction ε_0 when `start.1`), segment
/// j > 0 from the observation at its first point plus a trainable correction ε_j; every
/// segment but the last runs on to the first point of the next one. Loss = MSE of the
/// concatenated segment predictions + β · mean over inner boundaries and states of (segment
/// end − next segment's start)². `params` holds θ then the corrections (`dim × m` when the
/// start is learned, else `dim × (m − 1)` from ε_1); the gradient has the same layout.
fn shooting_epoch(
    init: &Mlp,
    params: &[f64],
    data: &Series,
    bounds: &[usize],
    beta: f64,
    start: (&[f64], bool),
    method: &Method,
) -> Result<EpochEval, OdeError> {
    let (base, learn_start) = start;
    let m = bounds.len() - 1;
    let d = data.y[0].len();
    let n_theta = init.n_params();
    let theta = &params[..n_theta];
    let count = (data.t.len() * d) as f64;
    let boundary_count = ((m - 1) * d).max(1) as f64;
    let sys = NeuralOde::new(init, theta);
    let mut grad = vec![0.0; params.len()];
    let (mut data_sum, mut continuity_sum, mut nfe) = (0.0, 0.0, 0);
    // Where segment j's correction ε_j sits in `params`, if it has one.
    let correction = |j: usize| -> Option<usize> {
        match (learn_start, j) {
            (true, _) => Some(n_theta + j * d),
            (false, 0) => None,
            (false, _) => Some(n_theta + (j - 1) * d),
        }
    };
    let start_of = |j: usize| -> Vec<f64> {
        let y = if j == 0 { base } else { &data.y[bounds[j]] };
        match correction(j) {
            None => y.to_vec(),
            Some(at) => y
                .iter()
                .zip(&params[at..at + d])
                .map(|(a, e)| a + e)
                .collect(),
        }
    };
    for j in 0..m {
        let last_segment = j + 1 == m;
        let a = bounds[j];
        let b = if last_segment {
            bounds[j + 1] - 1
        } else {
            bounds[j + 1]
        };
        let tr = solve_recorded(method, &sys, data.t[a], &start_of(j), &data.t[a..=b])?;
        nfe += tr.stats.nfe;
        let mut cot = vec![vec![0.0; d]; tr.y.len()];
        for (r, k) in (a..=b).enumerate() {
            if k == b && !last_segment {
                // Continuity with the next segment's start y[b] + ε_(j+1).
                let next = correction(j + 1).expect("inner segments have corrections");
                for i in 0..d {
                    let e = tr.y[r][i] - data.y[k][i] - params[next + i];
                    continuity_sum += e * e;
                    let c = 2.0 * beta * e / boundary_count;
                    cot[r][i] = c;
                    grad[next + i] -= c;
                }
            } else {
                for ((c, p), o) in cot[r].iter_mut().zip(&tr.y[r]).zip(&data.y[k]) {
                    let e = p - o;
                    data_sum += e * e;
                    *c = 2.0 * e / count;
                }
            }
        }
        let g = gradient(&tr, &sys, &cot);
        for (a, b) in grad.iter_mut().zip(&g.params) {
            *a += b;
        }
        if let Some(at) = correction(j) {
            for (a, b) in grad[at..at + d].iter_mut().zip(&g.initial_state) {
                *a += b;
            }
        }
    }
    Ok(EpochEval {
        loss: data_sum / count + beta * continuity_sum / boundary_count,
        grad,
        train_mse: None,
        nfe,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use colloc_models::Activation;

    fn harmonic() -> Series {
        let t: Vec<f64> = (0..31).map(|i| 0.1 * i as f64).collect();
        let y = t.iter().map(|t| vec![t.cos(), -t.sin()]).collect();
        Series { t, y }
    }

    #[test]
    fn each_method_gradient_matches_finite_differences() {
        let init = Mlp::xavier(&[2, 6, 2], Activation::Gelu, false, 3).unwrap();
        let data = harmonic();
        for method in TrainMethod::ALL {
            for learn_initial_state in [false, true] {
                let settings = tight(method, learn_initial_state);
                let objective =
                    Objective::new(&init, Some(&[0.9, 0.15]), &data, &settings).unwrap();
                // A start off the first observation, and nonzero corrections.
                let n = init.n_params();
                let p = with_corrections(objective.initial_vector(), n);
                let lambda = coupled_lambda(method);
                let label = format!("{method} (learned start {learn_initial_state})");
                assert_gradient_matches(&p, n, &label, |q| objective.epoch(q, lambda).unwrap());
            }
        }
    }

    /// Several series: the weighted loss's gradient in θ and in every series' own corrections
    /// matches finite differences, for every method with and without learned starts; the
    /// pooled training MSE is the observation-weighted mean of the series' own.
    #[test]
    fn several_series_gradient_matches_finite_differences() {
        let init = Mlp::xavier(&[2, 6, 2], Activation::Gelu, false, 3).unwrap();
        let first = harmonic();
        // A second series: another start, fewer points over a shorter window.
        let second = Series {
            t: first.t[..14].to_vec(),
            y: first.t[..14]
                .iter()
                .map(|&t| vec![0.5 * (t + 0.4).cos(), -0.5 * (t + 0.4).sin()])
                .collect(),
        };
        let data = [first, second];
        for method in TrainMethod::ALL {
            for learn_initial_state in [false, true] {
                let mut settings = tight(method, learn_initial_state);
                settings.shooting.segments = 3;
                let objective =
                    Objectives::new(&init, &[Some(&[0.9, 0.15]), None], &data, &settings).unwrap();
                let n = init.n_params();
                let p = with_corrections(objective.initial_vector(), n);
                assert!(p.len() > n || !learn_initial_state && method != TrainMethod::Shooting);
                let lambda = coupled_lambda(method);
                let label = format!("{method} (learned start {learn_initial_state})");
                assert_gradient_matches(&p, n, &label, |q| objective.epoch(q, lambda).unwrap());
                // Pooled MSE: each series' own uncoupled MSE weighted by its points.
                let pooled = objective.uncoupled(&p, false).unwrap().loss;
                let own: Vec<f64> = (0..2)
                    .map(|j| {
                        let local = objective.local_owned(&p, j);
                        objective.parts[j].uncoupled(&local, false).unwrap().loss
                    })
                    .collect();
                let (a, b) = (data[0].t.len() as f64, data[1].t.len() as f64);
                let expected = (own[0] * a + own[1] * b) / (a + b);
                assert!(
                    (pooled - expected).abs() < 1e-14 * expected,
                    "{pooled} vs {expected}"
                );
            }
        }
    }

    /// Settings of `method` with tight integration tolerances, for finite differences.
    fn tight(method: TrainMethod, learn_initial_state: bool) -> SequentialSettings {
        SequentialSettings {
            method,
            learn_initial_state,
            rtol: 1e-10,
            atol: 1e-12,
            ..Default::default()
        }
    }

    /// `p` with nonzero corrections after its first `n` entries.
    fn with_corrections(mut p: Vec<f64>, n: usize) -> Vec<f64> {
        for (k, v) in p[n..].iter_mut().enumerate() {
            *v += 0.01 * (k as f64 - 2.0);
        }
        p
    }

    /// The homotopy at λ = 1 (the coupled system); the other methods at 0.
    fn coupled_lambda(method: TrainMethod) -> f64 {
        if method == TrainMethod::Homotopy {
            1.0
        } else {
            0.0
        }
    }

    /// The gradient of `eval` at `p` against central differences in every fifth of the first
    /// `n` entries (θ) and every entry after them (the corrections).
    fn assert_gradient_matches(
        p: &[f64],
        n: usize,
        label: &str,
        eval: impl Fn(&[f64]) -> EpochEval,
    ) {
        let grad = eval(p).grad;
        assert_eq!(grad.len(), p.len());
        let h = 1e-6;
        for i in (0..n).step_by(5).chain(n..p.len()) {
            let fd = central_difference(p, i, h, |q| eval(q).loss);
            assert!(
                (grad[i] - fd).abs() < 1e-5 * fd.abs().max(1e-2),
                "{label}: entry {i}: {} vs {fd}",
                grad[i]
            );
        }
    }

    /// `(f(p + h e_i) − f(p − h e_i)) / 2h`.
    fn central_difference(p: &[f64], i: usize, h: f64, f: impl Fn(&[f64]) -> f64) -> f64 {
        let (mut up, mut dn) = (p.to_vec(), p.to_vec());
        up[i] += h;
        dn[i] -= h;
        (f(&up) - f(&dn)) / (2.0 * h)
    }

    #[test]
    fn shooting_gradient_in_the_segment_corrections_matches_finite_differences() {
        let init = Mlp::xavier(&[2, 6, 2], Activation::Gelu, false, 5).unwrap();
        let data = harmonic();
        let bounds = shooting_bounds(data.t.len(), 4);
        assert_eq!(bounds, vec![0, 8, 16, 24, 31]);
        let m = Method::Dopri5(Dopri5Settings {
            rtol: 1e-11,
            atol: 1e-13,
            ..Default::default()
        });
        let mut p = init.params.clone();
        let n = init.n_params();
        p.extend((0..6).map(|i| 0.01 * (i as f64 - 2.5)));
        let beta = 0.3;
        let g = shooting_epoch(&init, &p, &data, &bounds, beta, (&data.y[0], false), &m)
            .unwrap()
            .grad;
        let h = 1e-6;
        for i in (n..n + 6).chain([0, 7]) {
            let fd = central_difference(&p, i, h, |q| {
                shooting_epoch(&init, q, &data, &bounds, beta, (&data.y[0], false), &m)
                    .unwrap()
                    .loss
            });
            assert!(
                (g[i] - fd).abs() < 1e-6 * fd.abs().max(1e-3),
                "parameter {i}: {} vs {fd}",
                g[i]
            );
        }
    }

    #[test]
    fn vanilla_training_reduces_the_error_and_keeps_the_best() {
        let init = Mlp::xavier(&[2, 8, 2], Activation::Gelu, false, 1).unwrap();
        let settings = SequentialSettings {
            epochs: 150,
            learning_rate: 0.02,
            ..Default::default()
        };
        let r = train(&init, None, &harmonic(), &settings, &mut |_| true).unwrap();
        let first = r.curve[0].train_mse;
        assert!(r.best_mse < 0.2 * first, "{} vs {first}", r.best_mse);
        let min = r
            .curve
            .iter()
            .map(|c| c.train_mse)
            .fold(f64::INFINITY, f64::min);
        assert_eq!(r.best_mse, min);
        assert_eq!(r.curve[r.best_epoch].train_mse, min);
        // Deterministic.
        let again = train(&init, None, &harmonic(), &settings, &mut |_| true).unwrap();
        assert_eq!(again.best.params, r.best.params);
    }

    #[test]
    fn a_learned_start_corrects_a_bad_first_observation() {
        // The first observation is off the true start (1, 0) by (0.4, −0.4).
        let mut data = harmonic();
        data.y[0] = vec![1.4, -0.4];
        let init = Mlp::xavier(&[2, 8, 2], Activation::Gelu, false, 1).unwrap();
        let fixed = SequentialSettings {
            epochs: 400,
            learning_rate: 0.02,
            ..Default::default()
        };
        let learned = SequentialSettings {
            learn_initial_state: true,
            ..fixed.clone()
        };
        let a = train(&init, None, &data, &fixed, &mut |_| true).unwrap();
        let b = train(&init, None, &data, &learned, &mut |_| true).unwrap();
        assert_eq!(a.best_starts[0], data.y[0]);
        let off = ((b.best_starts[0][0] - 1.0).powi(2) + b.best_starts[0][1].powi(2)).sqrt();
        // The first observation is data too, so the fit leans towards it (measured: 0.32 off,
        // against 0.57 for the observation).
        assert!(
            off < 0.6 * 0.4 * 2f64.sqrt(),
            "learned start {:?}",
            b.best_starts[0]
        );
        assert!(
            b.best_mse < 0.5 * a.best_mse,
            "{} vs {}",
            b.best_mse,
            a.best_mse
        );
        // A given start is where the learned one begins; a wrong length is refused.
        let c = train(&init, Some(&[1.0, 0.0]), &data, &learned, &mut |r| {
            r.epoch < 1
        })
        .unwrap();
        assert!(c.best_starts[0]
            .iter()
            .zip([1.0, 0.0])
            .all(|(s, t)| (s - t).abs() < 0.05));
        let e = train(&init, Some(&[1.0]), &data, &learned, &mut |_| true).unwrap_err();
        // Not learned, a given start is the start.
        let d = train(&init, Some(&[1.0, 0.0]), &data, &fixed, &mut |r| {
            r.epoch < 1
        })
        .unwrap();
        assert_eq!(d.best_starts[0], vec![1.0, 0.0]);
        assert!(e.to_string().contains("needs 2 finite values"), "{e}");
    }

    #[test]
    fn observer_can_stop_and_bad_data_is_refused() {
        let init = Mlp::xavier(&[2, 4, 2], Activation::Tanh, false, 1).unwrap();
        let r = train(
            &init,
            None,
            &harmonic(),
            &SequentialSettings::default(),
            &mut |rec| rec.epoch < 4,
        )
        .unwrap();
        assert_eq!(r.curve.len(), 5);
        assert!(r.stopped.unwrap().contains("stopped by the user"));
        let short = Series {
            t: vec![0.0, 0.1, 0.2],
            y: vec![vec![1.0, 0.0]; 3],
        };
        let s = SequentialSettings {
            method: TrainMethod::Shooting,
            ..Default::default()
        };
        let e = train(&init, None, &short, &s, &mut |_| true).unwrap_err();
        assert!(
            e.to_string()
                .contains("5 shooting segments (`sequential.shooting.segments`) need at least 6"),
            "{e}"
        );
    }
}
