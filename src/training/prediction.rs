//! Using a trained model: its learned ODE integrated from a given state at chosen times
//! (Dopri5 with dense output, the tolerances of every evaluation in colloc), and scored against
//! measurements.

use super::collocation::LearnedOde;
use colloc_models::Mlp;
use colloc_solvers::ode::{Dopri5, OdeError};

/// Integration tolerances of a prediction (those of the evaluations after training).
const RTOL: f64 = 1e-7;
/// Absolute tolerance, see [`RTOL`].
const ATOL: f64 = 1e-9;

/// Why a prediction could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PredictionError {
    /// The initial state does not fit the model.
    #[error("the model has {expected} states, the initial state has {got} values")]
    InitialState {
        /// States of the model.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// A value that must be finite is not.
    #[error("{what} must be finite, got {value}")]
    NonFinite {
        /// Which value.
        what: String,
        /// The value.
        value: f64,
    },
    /// The output times are not increasing from the start time.
    #[error("{0}")]
    Times(String),
    /// The learned ODE could not be integrated (it blows up or becomes too stiff).
    #[error("the learned ODE could not be integrated past t = {t:.6}: {source}")]
    Integration {
        /// How far the integration got.
        t: f64,
        /// The integrator's error.
        source: OdeError,
    },
}

/// A trajectory of the learned ODE.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Output times.
    pub t: Vec<f64>,
    /// States at the output times.
    pub y: Vec<Vec<f64>>,
    /// Right-hand-side evaluations.
    pub nfe: usize,
}

/// Most output times [`even_times`] makes (80 MB of times, more per state).
pub const MAX_POINTS: usize = 10_000_000;

/// `n` evenly spaced times from `t0` to `t1` (both included), `2 ≤ n ≤` [`MAX_POINTS`].
pub fn even_times(t0: f64, t1: f64, n: usize) -> Result<Vec<f64>, PredictionError> {
    finite("t0", t0)?;
    finite("t1", t1)?;
    if t1 <= t0 || !(2..=MAX_POINTS).contains(&n) {
        return Err(PredictionError::Times(format!(
            "need t1 > t0 and 2 to {MAX_POINTS} points, got t0 = {t0}, t1 = {t1}, {n} points"
        )));
    }
    Ok((0..n)
        .map(|k| {
            if k + 1 == n {
                t1
            } else {
                t0 + (t1 - t0) * k as f64 / (n - 1) as f64
            }
        })
        .collect())
}

/// The learned ODE of `model` integrated from `y0` at `t0`, reported at `times` (increasing,
/// none before `t0`).
pub fn simulate(
    model: &Mlp,
    t0: f64,
    y0: &[f64],
    times: &[f64],
) -> Result<Prediction, PredictionError> {
    let d = model.state_inputs();
    if y0.len() != d {
        return Err(PredictionError::InitialState {
            expected: d,
            got: y0.len(),
        });
    }
    finite("t0", t0)?;
    for (i, &v) in y0.iter().enumerate() {
        finite(&format!("initial state value {}", i + 1), v)?;
    }
    if let Some(k) = (0..times.len()).find(|&k| !times[k].is_finite()) {
        return Err(PredictionError::NonFinite {
            what: format!("output time {}", k + 1),
            value: times[k],
        });
    }
    if let Some(&first) = times.first() {
        if first < t0 {
            return Err(PredictionError::Times(format!(
                "the first output time {first} is before the start time {t0}"
            )));
        }
    }
    if let Some(k) = (1..times.len()).find(|&k| times[k] <= times[k - 1]) {
        return Err(PredictionError::Times(format!(
            "output times must increase: time {} is {} after {}",
            k + 1,
            times[k],
            times[k - 1]
        )));
    }
    let solution = Dopri5::with_tolerances(RTOL, ATOL)
        .solve(&LearnedOde { model }, t0, y0, times)
        .map_err(|source| PredictionError::Integration {
            t: source.time_reached().unwrap_or(t0),
            source,
        })?;
    Ok(Prediction {
        t: times.to_vec(),
        y: solution.y,
        nfe: solution.stats.nfe,
    })
}

/// Mean squared error of `prediction` against `observed` (same shape): over all entries, and
/// per state.
pub fn mse_per_state(prediction: &[Vec<f64>], observed: &[Vec<f64>]) -> (f64, Vec<f64>) {
    let d = observed.first().map_or(0, Vec::len);
    let mut per_state = vec![0.0; d];
    for (p, o) in prediction.iter().zip(observed) {
        for (s, (a, b)) in per_state.iter_mut().zip(p.iter().zip(o)) {
            *s += (a - b) * (a - b);
        }
    }
    let n = observed.len().max(1) as f64;
    let total = per_state.iter().sum::<f64>() / (n * d.max(1) as f64);
    per_state.iter_mut().for_each(|s| *s /= n);
    (total, per_state)
}

fn finite(what: &str, value: f64) -> Result<(), PredictionError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(PredictionError::NonFinite {
            what: what.into(),
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use colloc_models::Activation;

    /// A [1, 1, 1] tanh network with zero hidden weights and output bias −1: y' = −1, so
    /// y(t) = y0 − (t − t0), a closed form to check against.
    fn constant_slope() -> Mlp {
        let mut m = Mlp::xavier(&[1, 1, 1], Activation::Tanh, false, 0).unwrap();
        m.params.iter_mut().for_each(|p| *p = 0.0);
        let last = m.params.len() - 1;
        m.params[last] = -1.0;
        m
    }

    #[test]
    fn a_known_ode_is_reproduced_at_the_requested_times() {
        let m = constant_slope();
        let times = even_times(1.0, 3.0, 5).unwrap();
        assert_eq!(times, vec![1.0, 1.5, 2.0, 2.5, 3.0]);
        let p = simulate(&m, 1.0, &[2.0], &times).unwrap();
        for (t, y) in p.t.iter().zip(&p.y) {
            assert!((y[0] - (2.0 - (t - 1.0))).abs() < 1e-12, "{t}: {y:?}");
        }
        assert!(p.nfe > 0);
        let observed: Vec<Vec<f64>> = p.y.iter().map(|y| vec![y[0] + 0.5]).collect();
        let (total, per_state) = mse_per_state(&p.y, &observed);
        assert!((total - 0.25).abs() < 1e-12 && (per_state[0] - 0.25).abs() < 1e-12);
    }

    #[test]
    fn bad_requests_are_refused_with_what_is_wrong() {
        let m = constant_slope();
        let e = simulate(&m, 0.0, &[1.0, 2.0], &[1.0]).unwrap_err();
        assert!(e.to_string().contains("1 states"), "{e}");
        let e = simulate(&m, 0.0, &[f64::NAN], &[1.0]).unwrap_err();
        assert!(e.to_string().contains("initial state value 1"), "{e}");
        let e = simulate(&m, 2.0, &[1.0], &[1.0, 3.0]).unwrap_err();
        assert!(e.to_string().contains("before the start time"), "{e}");
        let e = simulate(&m, 0.0, &[1.0], &[1.0, 1.0]).unwrap_err();
        assert!(e.to_string().contains("must increase"), "{e}");
        assert!(even_times(1.0, 1.0, 10).is_err());
        assert!(even_times(0.0, 1.0, 1).is_err());
        assert!(even_times(0.0, 1.0, MAX_POINTS + 1).is_err());
        assert!(even_times(0.0, f64::INFINITY, 10).is_err());
    }
}
