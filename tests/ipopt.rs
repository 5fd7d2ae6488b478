//! The IPOPT binding's behaviour beyond reaching optima: stopping from the callback,
//! evaluation errors, panics, rejected options, the derivative checker catching a wrong
//! Hessian, user scaling, and silence.

use colloc::nlp::hock_schittkowski;
use colloc::nlp::{ConSpec, Element, ElementGroup, Model, Nlp, Scalar, Target, VarSpec};
use colloc::solvers::ipopt::{
    derivative_check, DerivativeTestOrder, IpoptError, IpoptOption, IpoptSettings, IpoptSolver,
    IterationInfo, SolveStatus, TerminationStatus,
};
use colloc::solvers::{EvalError, NlpDims, NlpEvaluator, NlpScaling};

/// Wraps an NLP and tampers with one of its answers.
struct Tampered {
    inner: Nlp,
    hessian_offset: f64,
    nan_objective_after: Option<usize>,
    panic_in_gradient: bool,
    /// Panic when IPOPT asks for the Hessian structure (the solver's own check before the
    /// solve asks first and is answered).
    panic_in_structure_request: bool,
    structure_calls: std::cell::Cell<usize>,
    calls: usize,
}

impl Tampered {
    fn new(inner: Nlp) -> Self {
        Self {
            inner,
            hessian_offset: 0.0,
            nan_objective_after: None,
            panic_in_gradient: false,
            panic_in_structure_request: false,
            structure_calls: std::cell::Cell::new(0),
            calls: 0,
        }
    }
}

impl NlpEvaluator for Tampered {
    fn dims(&self) -> NlpDims {
        self.inner.dims()
    }
    fn bounds(&self, a: &mut [f64], b: &mut [f64], c: &mut [f64], d: &mut [f64]) {
        self.inner.bounds(a, b, c, d)
    }
    fn initial_point(&self, x: &mut [f64]) {
        self.inner.initial_point(x)
    }
    fn scaling(&self) -> Option<NlpScaling> {
        self.inner.scaling()
    }
    fn jacobian_structure(&self, r: &mut [usize], c: &mut [usize]) {
        self.inner.jacobian_structure(r, c)
    }
    fn hessian_structure(&self, r: &mut [usize], c: &mut [usize]) {
        self.structure_calls.set(self.structure_calls.get() + 1);
        assert!(
            !(self.panic_in_structure_request && self.structure_calls.get() > 1),
            "deliberate panic in the structure"
        );
        self.inner.hessian_structure(r, c)
    }
    fn objective(&mut self, x: &[f64]) -> Result<f64, EvalError> {
        self.calls += 1;
        match self.nan_objective_after {
            Some(k) if self.calls > k => Err(EvalError::Domain("tampered".into())),
            _ => self.inner.objective(x),
        }
    }
    fn gradient(&mut self, x: &[f64], g: &mut [f64]) -> Result<(), EvalError> {
        assert!(!self.panic_in_gradient, "deliberate panic in gradient");
        self.inner.gradient(x, g)
    }
    fn constraints(&mut self, x: &[f64], g: &mut [f64]) -> Result<(), EvalError> {
        self.inner.constraints(x, g)
    }
    fn jacobian_values(&mut self, x: &[f64], v: &mut [f64]) -> Result<(), EvalError> {
        self.inner.jacobian_values(x, v)
    }
    fn hessian_values(
        &mut self,
        x: &[f64],
        s: f64,
        l: &[f64],
        v: &mut [f64],
    ) -> Result<(), EvalError> {
        self.inner.hessian_values(x, s, l, v)?;
        v[0] += self.hessian_offset;
        Ok(())
    }
}

#[test]
fn callback_returning_false_stops_with_the_last_iterate() {
    let mut p = hock_schittkowski::hs071().unwrap();
    let solver = IpoptSolver::new(IpoptSettings::default()).unwrap();
    let mut seen = Vec::new();
    let mut observer = |it: &IterationInfo| {
        seen.push(it.iteration);
        it.iteration < 3
    };
    let sol = solver
        .solve_with(&mut p.nlp, None, Some(&mut observer))
        .unwrap();
    assert_eq!(sol.status, SolveStatus::UserRequestedStop);
    assert_eq!(sol.termination(), TerminationStatus::Interrupted);
    assert_eq!(seen, vec![0, 1, 2, 3]);
    assert_eq!(sol.stats.iterations, 3);
    assert!(sol.x.iter().all(|v| v.is_finite()));
    assert!(sol.stats.objective.calls > 0 && sol.stats.hessian.calls > 0);
    assert!(sol.stats.eval_s > 0.0 && sol.stats.eval_s < sol.stats.wall_s);
}

#[test]
fn evaluation_errors_give_a_status_not_a_crash() {
    let p = hock_schittkowski::hs071().unwrap();
    let mut t = Tampered::new(p.nlp);
    t.nan_objective_after = Some(3);
    let sol = IpoptSolver::new(IpoptSettings {
        max_iter: 50,
        ..Default::default()
    })
    .unwrap()
    .solve(&mut t)
    .unwrap();
    assert!(!sol.is_success(), "{}", sol.status);
    assert!(sol.stats.eval_errors > 0);
    assert!(sol
        .stats
        .first_eval_error
        .as_deref()
        .unwrap_or("")
        .contains("tampered"));
}

#[test]
fn a_panicking_evaluator_is_reported_as_an_error() {
    // In an evaluation, and when IPOPT asks for a structure (the trampoline writes it into
    // IPOPT's arrays).
    for (in_structure, expected) in [
        (false, "deliberate panic"),
        (true, "panic in the structure"),
    ] {
        let p = hock_schittkowski::hs071().unwrap();
        let mut t = Tampered::new(p.nlp);
        t.panic_in_gradient = !in_structure;
        t.panic_in_structure_request = in_structure;
        match IpoptSolver::new(IpoptSettings::default())
            .unwrap()
            .solve(&mut t)
        {
            Err(IpoptError::CallbackPanicked(msg)) => assert!(msg.contains(expected), "{msg}"),
            other => panic!("expected CallbackPanicked, got {other:?}"),
        }
    }
}

#[test]
fn rejected_options_and_settings_are_named() {
    let mut p = hock_schittkowski::hs071().unwrap();
    let mut s = IpoptSettings::default();
    s.options
        .insert("no_such_option".into(), IpoptOption::Num(1.0));
    let err = IpoptSolver::new(s).unwrap().solve(&mut p.nlp).unwrap_err();
    assert_eq!(
        err,
        IpoptError::InvalidOption {
            name: "no_such_option".into(),
            value: "1".into()
        }
    );
    let mut s = IpoptSettings::default();
    s.options
        .insert("mu_strategy".into(), IpoptOption::Str("sideways".into()));
    let err = IpoptSolver::new(s).unwrap().solve(&mut p.nlp).unwrap_err();
    assert!(err.to_string().contains("mu_strategy"), "{err}");
    let err = IpoptSolver::new(IpoptSettings {
        tol: -1.0,
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("`tol`"), "{err}");
}

#[test]
fn derivative_checker_flags_a_wrong_hessian() {
    let p = hock_schittkowski::hs071().unwrap();
    let mut t = Tampered::new(p.nlp);
    assert_eq!(
        derivative_check(&mut t, DerivativeTestOrder::Second, None, None)
            .unwrap()
            .errors,
        0
    );
    t.hessian_offset = 0.5;
    let report = derivative_check(&mut t, DerivativeTestOrder::Second, None, None).unwrap();
    assert!(report.errors >= 1, "{}", report.log);
    // First order does not look at the Hessian.
    assert_eq!(
        derivative_check(&mut t, DerivativeTestOrder::First, None, None)
            .unwrap()
            .errors,
        0
    );
}

struct Square;
impl Element for Square {
    fn eval<S: Scalar>(&self, x: &[S], out: &mut [S]) {
        out[0] = x[0] * x[0];
    }
}

#[test]
fn user_scaling_reaches_the_same_optimum() {
    // min (1e3 x0)² + (x1 − 2)²  s.t.  x0 + x1 ≥ 1, with badly scaled x0 and a scaled row.
    let build = |scaled: bool| {
        let mut m = Model::new();
        let spec = VarSpec::new("x", &[2]).start(3.0);
        let x = m
            .add_variables(if scaled {
                spec.scaling_each(vec![1e3, 1.0])
            } else {
                spec
            })
            .unwrap();
        let row = ConSpec::new("c", 1, 1.0, f64::INFINITY);
        let c = m
            .add_constraints(if scaled { row.scaling(10.0) } else { row })
            .unwrap();
        m.add_linear_triplets(
            "c",
            [(c.row(0), x.index(0), 1.0), (c.row(0), x.index(1), 1.0)],
        );
        let mut g = ElementGroup::new("sq", 1, 1);
        g.push(Square, &[x.index(0)], &[Target::Objective]).unwrap();
        m.add_elements(g).unwrap();
        m.add_least_squares(colloc::nlp::LeastSquares::on_variables(
            "fit",
            &[x.index(1)],
            vec![2.0],
            1.0,
        ));
        m.add_l2(colloc::nlp::L2Regularization::new(
            "big",
            [x.index(0)],
            1e6 - 1.0,
        ));
        m.build().unwrap()
    };
    let solver = IpoptSolver::new(IpoptSettings::default()).unwrap();
    let mut plain = build(false);
    let mut scaled = build(true);
    assert!(scaled.scaling().is_some() && plain.scaling().is_none());
    let a = solver.solve(&mut plain).unwrap();
    let b = solver.solve(&mut scaled).unwrap();
    assert!(a.is_success() && b.is_success());
    assert!(
        (a.objective - b.objective).abs() < 1e-8,
        "{} vs {}",
        a.objective,
        b.objective
    );
    assert!(
        (b.x[1] - 2.0).abs() < 1e-6 && b.x[0].abs() < 1e-6,
        "{:?}",
        b.x
    );
}
