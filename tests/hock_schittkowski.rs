//! Hock–Schittkowski problems built with the modeling layer and solved by IPOPT, against
//! their published optima; IPOPT's own derivative checker on each; warm starts; concurrency.

use colloc::nlp::hock_schittkowski::{self, ReferenceProblem};
use colloc::solvers::ipopt::{
    derivative_check, kkt_factorization_counts, DerivativeTestOrder, IpoptSettings, IpoptSolver,
    SolveStatus, WarmStart,
};
use colloc::solvers::NlpEvaluator;
use rayon::prelude::*;

fn check_optimum(p: &ReferenceProblem, x: &[f64], f: f64) {
    let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1.0);
    assert!(
        rel(f, p.f_opt) < 1e-6,
        "{}: objective {f} vs published {}",
        p.name,
        p.f_opt
    );
    for (i, (&xi, &xo)) in x.iter().zip(&p.x_opt).enumerate() {
        assert!(
            rel(xi, xo) < 1e-6,
            "{}: x[{i}] = {xi} vs published {xo}",
            p.name
        );
    }
}

#[test]
fn every_problem_reaches_its_published_optimum() {
    // With MUMPS, with the dense LAPACK KKT solver, and with the automatic choice (default).
    for linear_solver in ["mumps", "dense", "auto"] {
        let settings = IpoptSettings {
            linear_solver: linear_solver.into(),
            ..Default::default()
        };
        let solver = IpoptSolver::new(settings).unwrap();
        for mut p in hock_schittkowski::all().unwrap() {
            let (dense_before, _) = kkt_factorization_counts();
            let sol = solver.solve(&mut p.nlp).unwrap();
            assert_eq!(
                sol.status,
                SolveStatus::SolveSucceeded,
                "{} ({linear_solver}): {}",
                p.name,
                sol.status
            );
            eprintln!(
                "{} ({linear_solver}): f = {:.10}, {} iterations",
                p.name, sol.objective, sol.stats.iterations
            );
            check_optimum(&p, &sol.x, sol.objective);
            if linear_solver == "dense" {
                assert!(kkt_factorization_counts().0 > dense_before, "{}", p.name);
            }
        }
    }
}

#[test]
fn dense_and_mumps_kkt_solvers_take_the_same_path() {
    // Same matrices, same inertia: IPOPT should take the same steps up to rounding.
    let solve = |linear_solver: &str, p: &mut ReferenceProblem| {
        let settings = IpoptSettings {
            linear_solver: linear_solver.into(),
            ..Default::default()
        };
        IpoptSolver::new(settings)
            .unwrap()
            .solve(&mut p.nlp)
            .unwrap()
    };
    for mut p in hock_schittkowski::all().unwrap() {
        let mumps = solve("mumps", &mut p);
        let dense = solve("dense", &mut p);
        assert_eq!(mumps.stats.iterations, dense.stats.iterations, "{}", p.name);
        for (a, b) in mumps.x.iter().zip(&dense.x) {
            assert!(
                (a - b).abs() <= 1e-7 * a.abs().max(1.0),
                "{}: {a} vs {b}",
                p.name
            );
        }
    }
}

#[test]
fn ipopt_derivative_checker_finds_no_errors() {
    for mut p in hock_schittkowski::all().unwrap() {
        let report = derivative_check(&mut p.nlp, DerivativeTestOrder::Second, None, None).unwrap();
        assert_eq!(report.errors, 0, "{}: {}", p.name, report.log);
    }
}

#[test]
fn warm_start_from_the_optimum_takes_at_most_three_iterations() {
    let solver = IpoptSolver::new(IpoptSettings::default()).unwrap();
    for mut p in hock_schittkowski::all().unwrap() {
        let cold = solver.solve(&mut p.nlp).unwrap();
        let warm = solver
            .solve_with(&mut p.nlp, Some(&WarmStart::from_solution(&cold)), None)
            .unwrap();
        eprintln!(
            "{}: cold {} iterations, warm {} iterations",
            p.name, cold.stats.iterations, warm.stats.iterations
        );
        assert!(warm.is_success(), "{}: {}", p.name, warm.status);
        assert!(
            warm.stats.iterations <= 3,
            "{}: warm start took {} iterations",
            p.name,
            warm.stats.iterations
        );
        check_optimum(&p, &warm.x, warm.objective);
    }
}

#[test]
fn concurrent_solves_match_sequential_solves() {
    for linear_solver in ["mumps", "dense"] {
        concurrent_matches_sequential(linear_solver);
    }
}

fn concurrent_matches_sequential(linear_solver: &str) {
    let settings = IpoptSettings {
        linear_solver: linear_solver.into(),
        ..Default::default()
    };
    let solver = IpoptSolver::new(settings).unwrap();
    let solve_all = |parallel: bool| -> Vec<(Vec<f64>, f64, usize)> {
        let mut problems: Vec<_> = (0..3)
            .flat_map(|_| hock_schittkowski::all().unwrap())
            .collect();
        let run = |p: &mut ReferenceProblem| {
            let s = solver.solve(&mut p.nlp).unwrap();
            (s.x, s.objective, s.stats.iterations)
        };
        if parallel {
            problems.par_iter_mut().map(run).collect()
        } else {
            problems.iter_mut().map(run).collect()
        }
    };
    let sequential = solve_all(false);
    for _ in 0..3 {
        assert_eq!(solve_all(true), sequential);
    }
}

#[test]
fn limited_memory_hessian_also_solves_hs071() {
    let settings = IpoptSettings {
        hessian: colloc::solvers::ipopt::HessianMode::LimitedMemory,
        ..Default::default()
    };
    let solver = IpoptSolver::new(settings).unwrap();
    let mut p = hock_schittkowski::hs071().unwrap();
    let sol = solver.solve(&mut p.nlp).unwrap();
    assert!(sol.is_success(), "{}", sol.status);
    check_optimum(&p, &sol.x, sol.objective);
    assert_eq!(p.nlp.dims().n_vars, 4);
}
