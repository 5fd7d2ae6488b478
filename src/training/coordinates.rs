//! Training in standardized coordinates (`[model] normalize = true`, or a model that carries
//! a [`Normalization`]): the problem is restated in the coordinates
//! ([`Problem::in_coordinates`]), the network trained there by any method, and the result
//! given back as a model with its normalization, scored in the data's own units.

use super::smoothing::{bandwidth, local_linear};
use crate::problem::{Problem, Split};
use colloc_models::{Mlp, Normalization, Structure};

/// The standardized coordinates of a problem's training observations: each state shifted by
/// its mean and divided by its standard deviation (1 for a constant state); time shifted to
/// the window start and divided by `[model] time_scale`, or else by `1/r`, where `r` is the
/// root mean square rate of change of the standardized states (finite differences of the
/// observations smoothed as `[solver] smoothing` says), so that the standardized states change
/// at a rate of order one. For a second-order model the positions are standardized so, `T` is
/// `1/rms(v_i/σ_i)` (the positions' rate, from the observed velocities) and the velocities are
/// left unshifted and divided by `σ_i/T`, which keeps `q' = v` ([`Normalization::second_order`]).
pub fn standardization(problem: &Problem) -> Normalization {
    let train = problem.data.indices(Split::Train);
    let d = problem.data.dim();
    let m = train.len().max(1) as f64;
    let series: Vec<Vec<f64>> = (0..d)
        .map(|i| train.iter().map(|&k| problem.data.y[k][i]).collect())
        .collect();
    let shift: Vec<f64> = series.iter().map(|s| s.iter().sum::<f64>() / m).collect();
    let scale: Vec<f64> = series
        .iter()
        .zip(&shift)
        .map(|(s, mu)| {
            let sd = (s.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / m).sqrt();
            if sd.is_finite() && sd > 1e-12 * (1.0 + mu.abs()) {
                sd
            } else {
                1.0
            }
        })
        .collect();
    if problem.model.structure == Structure::SecondOrder {
        // Keep q' = v: positions standardized, velocities unshifted and scaled by σ_q/T with
        // T from the velocities themselves (rms of v_i/σ_q,i is the positions' rate).
        let h = d / 2;
        let time_scale = problem.model.time_scale.unwrap_or_else(|| {
            let (series, scale) = (&series, &scale);
            unit_rate_time_scale(
                (0..h).flat_map(|i| series[h + i].iter().map(move |v| v / scale[i])),
            )
        });
        return Normalization::second_order(&shift[..h], &scale[..h], problem.t0, time_scale);
    }
    let time_scale = problem.model.time_scale.unwrap_or_else(|| {
        let t: Vec<f64> = train.iter().map(|&k| problem.data.t[k]).collect();
        let bw = bandwidth(problem.smoothing, &t, &series);
        let mut rates = Vec::with_capacity(d * t.len());
        for (s, sd) in series.iter().zip(&scale) {
            let smooth = local_linear(&t, s, &t, bw);
            rates
                .extend((1..t.len()).map(|k| (smooth[k] - smooth[k - 1]) / (t[k] - t[k - 1]) / sd));
        }
        unit_rate_time_scale(rates.into_iter())
    });
    Normalization {
        state_shift: shift,
        state_scale: scale,
        time_shift: problem.t0,
        time_scale,
    }
}

/// The time unit `1/rms(rates)` in which standardized states change at rate one (1 when the
/// rates are all zero or not finite).
fn unit_rate_time_scale(rates: impl Iterator<Item = f64>) -> f64 {
    let (mut total, mut count) = (0.0, 0usize);
    for r in rates {
        total += r * r;
        count += 1;
    }
    let rms = (total / count.max(1) as f64).sqrt();
    if rms.is_finite() && rms > 0.0 {
        1.0 / rms
    } else {
        1.0
    }
}

/// The coordinates training works in: those of the starting model `init` if it has them,
/// else the standardization of the data when `normalize` (the trainer's setting: `[model]
/// normalize`, or [`Problem::collocation_normalize`]), else none (the data's own). A starting
/// model in the data's own coordinates cannot serve a problem that asks for standardized ones
/// (its network would see other inputs).
pub fn training_coordinates(
    problem: &Problem,
    normalize: bool,
    init: Option<&Mlp>,
) -> Result<Option<Normalization>, String> {
    match init {
        Some(m) if m.normalization.is_some() => Ok(m.normalization.clone()),
        Some(_) if normalize => Err(
            "the starting model works in the data's own coordinates, but the problem asks for \
             standardized ones (`normalize = true` in `[model]`, or in `[solver]` for colloc \
             solve and admm); start from a normalized model, or train in the data's units \
             (`--normalize false`)"
                .into(),
        ),
        _ => Ok(normalize.then(|| standardization(problem))),
    }
}

/// States in standardized coordinates mapped back to the data's own.
pub fn states_from_normalized(n: &Normalization, states: &[Vec<f64>]) -> Vec<Vec<f64>> {
    states.iter().map(|z| n.state_from_normalized(z)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::collocation::LearnedOde;
    use colloc_models::Activation;
    use colloc_solvers::ode::{Dopri5, OdeSystem};

    struct Toy;
    impl OdeSystem for Toy {
        fn dim(&self) -> usize {
            2
        }
        fn rhs(&self, _t: f64, y: &[f64], dy: &mut [f64]) {
            dy[0] = 3.0 * y[1];
            dy[1] = -3.0 * (y[0] - 10.0);
        }
    }

    #[test]
    fn a_normalized_model_is_the_ode_of_its_coordinates() {
        // Simulating a normalized model in the data's units equals simulating its network in
        // the standardized coordinates and mapping back.
        let n = Normalization {
            state_shift: vec![10.0, -1.0],
            state_scale: vec![4.0, 0.5],
            time_shift: 2.0,
            time_scale: 0.3,
        };
        let net = Mlp::xavier(&[3, 6, 2], Activation::Gelu, true, 4).unwrap();
        let model = net.clone().with_normalization(Some(n.clone())).unwrap();
        let times = [2.0, 2.4, 3.1];
        let y0 = [11.0, -0.7];
        let solver = Dopri5::with_tolerances(1e-11, 1e-13);
        let direct = solver
            .solve(&LearnedOde { model: &model }, 2.0, &y0, &times)
            .unwrap();
        let tau: Vec<f64> = times.iter().map(|&t| n.time_to_normalized(t)).collect();
        let inner = solver
            .solve(
                &LearnedOde { model: &net },
                tau[0],
                &n.state_to_normalized(&y0),
                &tau,
            )
            .unwrap();
        for (a, z) in direct.y.iter().zip(&inner.y) {
            for (u, v) in a.iter().zip(n.state_from_normalized(z)) {
                assert!((u - v).abs() < 1e-8, "{u} vs {v}");
            }
        }
    }

    #[test]
    fn standardization_centres_scales_and_picks_a_unit_rate() {
        // y = (10 + 2 cos 3t, −2 sin 3t) over two periods: standardized states oscillate with
        // amplitude √2 and angular frequency 3, so their rms rate is 3 and T ≈ 1/3.
        let h = 4.0 * std::f64::consts::PI / 3.0 / 400.0;
        let t: Vec<f64> = (0..=400).map(|k| k as f64 * h).collect();
        let sol = Dopri5::with_tolerances(1e-11, 1e-13)
            .solve(&Toy, 0.0, &[12.0, 0.0], &t)
            .unwrap();
        let dir =
            std::env::temp_dir().join(format!("colloc-standardization-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut csv = String::from("t,y1,y2\n");
        for (tk, y) in t.iter().zip(&sol.y) {
            csv += &format!("{tk},{},{}\n", y[0], y[1]);
        }
        std::fs::write(dir.join("toy.csv"), csv).unwrap();
        let toml = format!(
            "[data]\ncsv = \"toy.csv\"\n[train]\nt1 = {}\n[collocation]\npoints = 20\n\
             [model]\nlayers = [2, 4, 2]\nnormalize = true\n[solver]\nsmoothing = 1.0\n",
            t[400]
        );
        std::fs::write(dir.join("toy.toml"), toml).unwrap();
        let mut problem = crate::problem::load(&dir.join("toy.toml")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let n = standardization(&problem);
        assert!(
            (n.state_shift[0] - 10.0).abs() < 0.01,
            "{:?}",
            n.state_shift
        );
        assert!(n.state_shift[1].abs() < 0.01);
        assert!(
            (n.state_scale[0] - 2f64.sqrt()).abs() < 0.01,
            "{:?}",
            n.state_scale
        );
        assert!((n.time_scale - 1.0 / 3.0).abs() < 0.01, "{}", n.time_scale);
        assert_eq!(n.time_shift, 0.0);
        assert_eq!(
            training_coordinates(&problem, problem.model.normalize, None).unwrap(),
            Some(n)
        );
        problem.model.time_scale = Some(0.7);
        assert_eq!(standardization(&problem).time_scale, 0.7);
    }
}
