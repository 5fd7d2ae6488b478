//! Integrators against closed-form solutions: accuracy, tolerance honoured, order of
//! convergence, dense output, counters and bad input.

use colloc_solvers::ode::{Dopri5, OdeError, OdeSolution, OdeSystem, Rk4};

/// y'' = −ω² y as a first-order system; y(t) = cos ωt, y'(t) = −ω sin ωt.
struct Oscillator {
    omega: f64,
}
impl OdeSystem for Oscillator {
    fn dim(&self) -> usize {
        2
    }
    fn rhs(&self, _t: f64, y: &[f64], dy: &mut [f64]) {
        dy[0] = y[1];
        dy[1] = -self.omega * self.omega * y[0];
    }
}

fn oscillator_error(sol: &OdeSolution, omega: f64) -> f64 {
    sol.t
        .iter()
        .zip(&sol.y)
        .map(|(t, y)| {
            (y[0] - (omega * t).cos())
                .abs()
                .max((y[1] + omega * (omega * t).sin()).abs())
        })
        .fold(0.0, f64::max)
}

#[test]
fn dopri5_matches_closed_forms_at_dense_output_times() {
    // y' = −2t y, y = exp(−t²).
    let sys = (1, |t: f64, y: &[f64], dy: &mut [f64]| {
        dy[0] = -2.0 * t * y[0]
    });
    let times: Vec<f64> = (0..=60).map(|i| i as f64 * 0.05).collect();
    let sol = Dopri5::with_tolerances(1e-10, 1e-12)
        .solve(&sys, 0.0, &[1.0], &times)
        .unwrap();
    for (t, y) in sol.t.iter().zip(&sol.y) {
        assert!(
            (y[0] - (-t * t).exp()).abs() < 1e-9,
            "t = {t}: {} vs {}",
            y[0],
            (-t * t).exp()
        );
    }
    assert_eq!(
        sol.stats.nfe,
        6 * (sol.stats.accepted + sol.stats.rejected) + 2
    );
    // At a looser tolerance there are fewer steps than output times, so most values come
    // from the dense output, and they are still accurate to about the tolerance.
    let sol = Dopri5::with_tolerances(1e-6, 1e-8)
        .solve(&sys, 0.0, &[1.0], &times)
        .unwrap();
    let err = sol
        .t
        .iter()
        .zip(&sol.y)
        .map(|(t, y)| (y[0] - (-t * t).exp()).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "rtol 1e-6: {} steps for {} outputs, max error {err:e}",
        sol.stats.accepted,
        times.len()
    );
    assert!(sol.stats.accepted < times.len(), "{:?}", sol.stats); // measured: 37 steps for 61 outputs
    assert!(err < 5e-6, "dense output error {err:e}"); // measured: 9.8e-7
}

#[test]
fn dopri5_error_follows_the_tolerance() {
    let sys = Oscillator { omega: 2.0 };
    let times: Vec<f64> = (1..=200).map(|i| i as f64 * 0.1).collect();
    let mut last = f64::INFINITY;
    for tol in [1e-4, 1e-6, 1e-8, 1e-10] {
        let sol = Dopri5::with_tolerances(tol, tol)
            .solve(&sys, 0.0, &[1.0, 0.0], &times)
            .unwrap();
        let err = oscillator_error(&sol, 2.0);
        eprintln!(
            "tol {tol:e}: max error {err:e} over t in [0, 20], {} steps, nfe {}",
            sol.stats.accepted, sol.stats.nfe
        );
        assert!(err < 1000.0 * tol, "tol {tol:e}: error {err:e}");
        assert!(
            err < 0.1 * last,
            "tol {tol:e}: error {err:e} vs {last:e} at the looser tolerance"
        );
        last = err;
    }
}

#[test]
fn rk4_converges_with_order_four() {
    let sys = Oscillator { omega: 1.0 };
    let times = [5.0];
    let err = |substeps| {
        oscillator_error(
            &Rk4 { substeps }
                .solve(&sys, 0.0, &[1.0, 0.0], &times)
                .unwrap(),
            1.0,
        )
    };
    let (e1, e2, e3) = (err(50), err(100), err(200));
    let (r1, r2) = (e1 / e2, e2 / e3);
    eprintln!("RK4 error ratios when halving h: {r1:.2}, {r2:.2}");
    assert!(
        (14.0..18.0).contains(&r1) && (14.0..18.0).contains(&r2),
        "ratios {r1}, {r2}"
    );
    let sol = Rk4 { substeps: 10 }
        .solve(&sys, 0.0, &[1.0, 0.0], &[1.0, 2.0])
        .unwrap();
    assert_eq!(sol.stats.nfe, 4 * 20);
}

#[test]
fn forced_van_der_pol_agrees_between_integrators() {
    // u' = v, v' = μ(1 − u²)v − u + A cos(ωt), μ = A = ω = 1 (the paper's system).
    let sys = (2, |t: f64, y: &[f64], dy: &mut [f64]| {
        dy[0] = y[1];
        dy[1] = (1.0 - y[0] * y[0]) * y[1] - y[0] + t.cos();
    });
    let times: Vec<f64> = (1..=30).map(|i| i as f64).collect();
    let a = Dopri5::with_tolerances(1e-11, 1e-13)
        .solve(&sys, 0.0, &[0.0, 1.0], &times)
        .unwrap();
    let b = Rk4 { substeps: 400 }
        .solve(&sys, 0.0, &[0.0, 1.0], &times)
        .unwrap();
    for (ya, yb) in a.y.iter().zip(&b.y) {
        assert!(
            (ya[0] - yb[0]).abs() < 1e-8 && (ya[1] - yb[1]).abs() < 1e-8,
            "{ya:?} vs {yb:?}"
        );
    }
}

#[test]
fn bad_input_is_reported() {
    let sys = Oscillator { omega: 1.0 };
    let d = Dopri5::default();
    assert_eq!(
        d.solve(&sys, 0.0, &[1.0, 0.0], &[1.0, 0.5]).unwrap_err(),
        OdeError::BadOutputTimes { index: 1, t: 0.5 }
    );
    assert!(matches!(
        d.solve(&sys, 0.0, &[1.0], &[1.0]),
        Err(OdeError::BadInitialState(_))
    ));
    assert!(matches!(
        d.solve(&sys, 0.0, &[f64::NAN, 0.0], &[1.0]),
        Err(OdeError::BadInitialState(_))
    ));
    // Blow-up in finite time: y' = y², y(0) = 1 explodes at t = 1.
    let blow = (1, |_t: f64, y: &[f64], dy: &mut [f64]| dy[0] = y[0] * y[0]);
    assert!(Dopri5::default().solve(&blow, 0.0, &[1.0], &[2.0]).is_err());
    // Output at t0 is the initial state.
    let sol = d.solve(&sys, 0.0, &[1.0, 0.0], &[0.0, 0.0, 1.0]).unwrap();
    assert_eq!(sol.y[0], vec![1.0, 0.0]);
}
