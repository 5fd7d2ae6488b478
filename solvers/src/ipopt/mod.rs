//! A safe binding to the system IPOPT (3.11, C interface), laid out one concept per file:
//! [`settings`](IpoptSettings), [`status`](SolveStatus), [`solution`](IpoptSolution),
//! [`info`](IterationInfo); `ffi.rs` holds all of its `unsafe` code.
//!
//! ```no_run
//! # use colloc_solvers::ipopt::{IpoptSettings, IpoptSolver};
//! # fn demo(nlp: &mut impl colloc_solvers::NlpEvaluator) -> Result<(), colloc_solvers::ipopt::IpoptError> {
//! let solver = IpoptSolver::new(IpoptSettings::default())?;
//! let solution = solver.solve(nlp)?;
//! println!("{} after {} iterations", solution.status, solution.stats.iterations);
//! # Ok(()) }
//! ```

mod block_kkt;
mod dense_kkt;
mod ffi;
mod schur_kkt;
mod square_kkt;
#[cfg(test)]
mod test_matrices;
/// Safe BLAS/LAPACK wrappers for [`crate::linalg`].
pub(crate) mod ffi_linalg {
    pub(crate) use super::ffi::{
        blas_dgemm, blas_dsyrk_lower_t, default_blas_threads, lapack_dpotrf, lapack_dpotrs,
    };
}
mod info;
mod settings;
mod solution;
mod status;

pub use info::{CallStats, IterationInfo, KktSolverCounts, SolveStats};
pub use settings::{
    HessianMode, IpoptOption, IpoptSettings, COLLOC_LINEAR_SOLVERS, EXTERNAL_LINEAR_SOLVERS,
};
pub use solution::{IpoptSolution, WarmStart};
pub use status::{ResultStatus, SolveStatus, TerminationStatus};

use crate::nlp::NlpEvaluator;
use ffi::{RawError, RawIterate, RawProblem};
use std::time::Instant;

/// Why a solve could not be set up or carried out. Normal outcomes (solved, iteration limit,
/// infeasible, stopped) are not errors: they are [`IpoptSolution::status`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum IpoptError {
    /// A settings field is invalid.
    #[error("invalid IPOPT setting `{field}`: {reason}")]
    InvalidSettings {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// IPOPT rejected an option (unknown name or invalid value).
    #[error("IPOPT rejected option `{name}` = {value}")]
    InvalidOption {
        /// Option name.
        name: String,
        /// Value as text.
        value: String,
    },
    /// A vector has the wrong length.
    #[error("{what} has length {got}, the problem needs {expected}")]
    DimensionMismatch {
        /// Which vector.
        what: &'static str,
        /// Length given.
        got: usize,
        /// Length needed.
        expected: usize,
    },
    /// The problem is too large for IPOPT's 32-bit indices.
    #[error("the problem is too large for IPOPT's 32-bit indices: {0}")]
    TooLarge(String),
    /// IPOPT refused to create the problem (e.g. no variables).
    #[error("IPOPT could not create the problem: {0}")]
    CreateFailed(String),
    /// IPOPT could not open the output file.
    #[error("IPOPT could not open output file {0}")]
    OutputFile(String),
    /// A callback (evaluator or iteration observer) panicked; the solve was stopped.
    #[error("a callback panicked during the solve: {0}")]
    CallbackPanicked(String),
    /// A file for the derivative checker could not be read or written.
    #[error("derivative checker log {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
}

/// State shared with the FFI trampolines during one solve.
pub(crate) struct CallbackState<'a, 'o, E> {
    pub nlp: &'a mut E,
    pub stats: SolveStats,
    pub observer: Option<&'a mut (dyn FnMut(&IterationInfo) -> bool + 'o)>,
    pub panic: Option<String>,
}

impl<E> CallbackState<'_, '_, E> {
    /// Records the iteration and asks the observer whether to go on.
    pub fn on_iteration(&mut self, info: &IterationInfo) -> bool {
        self.stats.iterations = info.iteration;
        match self.observer.as_mut() {
            Some(f) => f(info),
            None => true,
        }
    }
}

/// IPOPT with fixed settings; solves any number of problems, also concurrently from several
/// threads (each solve creates its own IPOPT problem).
#[derive(Clone, Debug)]
pub struct IpoptSolver {
    settings: IpoptSettings,
}

fn to_index(what: &str, v: usize) -> Result<i32, IpoptError> {
    i32::try_from(v).map_err(|_| IpoptError::TooLarge(format!("{what} = {v}")))
}

fn check_indices(what: &str, v: &[usize]) -> Result<(), IpoptError> {
    v.iter().try_for_each(|&i| to_index(what, i).map(drop))
}

/// Writes a structure the evaluator gives as `usize` indices (`fill`) into IPOPT's 32-bit
/// arrays; false when an index does not fit (checked before the solve). The structure is
/// made anew for each of IPOPT's requests (one per solve) instead of being kept through the
/// solve: on long series a 32-bit copy takes a hundred megabytes.
pub(crate) fn write_structure(
    fill: impl FnOnce(&mut [usize], &mut [usize]),
    rows: &mut [i32],
    cols: &mut [i32],
) -> bool {
    let (mut r, mut c) = (vec![0; rows.len()], vec![0; cols.len()]);
    fill(&mut r, &mut c);
    rows.iter_mut()
        .zip(&r)
        .chain(cols.iter_mut().zip(&c))
        .all(|(to, &from)| i32::try_from(from).map(|v| *to = v).is_ok())
}

impl IpoptSolver {
    /// A solver with validated settings.
    pub fn new(settings: IpoptSettings) -> Result<Self, IpoptError> {
        settings.validate()?;
        Ok(Self { settings })
    }

    /// The settings.
    pub fn settings(&self) -> &IpoptSettings {
        &self.settings
    }

    /// Solves from the evaluator's initial point.
    pub fn solve<E: NlpEvaluator>(&self, nlp: &mut E) -> Result<IpoptSolution, IpoptError> {
        self.solve_with(nlp, None, None)
    }

    /// Solves from a warm start (if given), calling `observer` after every iteration; the
    /// observer returning `false` stops the solve with [`SolveStatus::UserRequestedStop`] and
    /// the solution then holds the last iterate.
    pub fn solve_with<E: NlpEvaluator>(
        &self,
        nlp: &mut E,
        warm: Option<&WarmStart>,
        observer: Option<&mut dyn FnMut(&IterationInfo) -> bool>,
    ) -> Result<IpoptSolution, IpoptError> {
        let started = Instant::now();
        ffi::default_blas_threads();
        let d = nlp.dims();
        let (n, m) = (d.n_vars, d.n_cons);
        to_index("n_vars", n)?;
        to_index("n_cons", m)?;
        let hessian = self.settings.hessian == HessianMode::Exact;

        let mut problem = RawProblem {
            x_lower: vec![0.0; n],
            x_upper: vec![0.0; n],
            g_lower: vec![0.0; m],
            g_upper: vec![0.0; m],
            nnz_jac: to_index("nnz_jac", d.nnz_jac)?,
            nnz_hess: if hessian {
                to_index("nnz_hess", d.nnz_hess)?
            } else {
                0
            },
            options: self
                .settings
                .to_options(warm.is_some_and(WarmStart::has_multipliers)),
            scaling: None,
            kkt_policy: self.settings.kkt_policy(),
            kkt_blocks: None,
            skip_unperturbed_trial: self.settings.skip_unperturbed_trial,
            output_file: self
                .settings
                .output_file
                .as_ref()
                .map(|p| (p.display().to_string(), self.settings.file_print_level)),
        };
        nlp.bounds(
            &mut problem.x_lower,
            &mut problem.x_upper,
            &mut problem.g_lower,
            &mut problem.g_upper,
        );
        // The block-arrow solver reads IPOPT's KKT rows as variables then constraints: true
        // when every constraint is an equality and no variable is fixed (IPOPT would remove it).
        let all_equalities = problem.g_lower == problem.g_upper;
        let none_fixed = problem
            .x_lower
            .iter()
            .zip(&problem.x_upper)
            .all(|(l, u)| l < u);
        if all_equalities && none_fixed {
            problem.kkt_blocks = nlp.kkt_blocks().map(|partition| ffi::BlockHint {
                partition,
                n_vars: n,
                n_cons: m,
            });
        }
        // IPOPT's infinity is ±1e19 (nlp_lower/upper_bound_inf); map ±∞ onto it.
        for v in problem.x_lower.iter_mut().chain(problem.g_lower.iter_mut()) {
            *v = v.max(-1e19);
        }
        for v in problem.x_upper.iter_mut().chain(problem.g_upper.iter_mut()) {
            *v = v.min(1e19);
        }
        if let Some(s) = nlp.scaling() {
            check_len("variable scaling", s.variables.len(), n)?;
            check_len("constraint scaling", s.constraints.len(), m)?;
            problem.options.insert(
                0,
                (
                    "nlp_scaling_method".into(),
                    IpoptOption::Str("user-scaling".into()),
                ),
            );
            problem.scaling = Some((s.objective, s.variables, s.constraints));
        }

        let mut iterate = RawIterate {
            x: vec![0.0; n],
            g: vec![0.0; m],
            objective: f64::NAN,
            mult_g: vec![0.0; m],
            mult_x_lower: vec![0.0; n],
            mult_x_upper: vec![0.0; n],
        };
        match warm {
            Some(w) => {
                check_len("warm start x", w.x.len(), n)?;
                iterate.x.copy_from_slice(&w.x);
                for (what, src, dst, len) in [
                    ("warm start mult_g", &w.mult_g, &mut iterate.mult_g, m),
                    (
                        "warm start mult_x_lower",
                        &w.mult_x_lower,
                        &mut iterate.mult_x_lower,
                        n,
                    ),
                    (
                        "warm start mult_x_upper",
                        &w.mult_x_upper,
                        &mut iterate.mult_x_upper,
                        n,
                    ),
                ] {
                    if let Some(v) = src {
                        check_len(what, v.len(), len)?;
                        dst.copy_from_slice(v);
                    }
                }
            }
            None => nlp.initial_point(&mut iterate.x),
        }

        // The structure must fit IPOPT's 32-bit indices; the trampolines write it into IPOPT's
        // arrays when asked (`write_structure`).
        {
            let (mut rows, mut cols) = (vec![0; d.nnz_jac], vec![0; d.nnz_jac]);
            nlp.jacobian_structure(&mut rows, &mut cols);
            check_indices("jacobian row", &rows)?;
            check_indices("jacobian column", &cols)?;
        }
        if hessian {
            let (mut rows, mut cols) = (vec![0; d.nnz_hess], vec![0; d.nnz_hess]);
            nlp.hessian_structure(&mut rows, &mut cols);
            check_indices("hessian row", &rows)?;
            check_indices("hessian column", &cols)?;
        }
        let mut state = CallbackState {
            nlp,
            stats: SolveStats::default(),
            observer,
            panic: None,
        };

        let _ = ffi::take_mumps_memory_failure();
        let code = ffi::solve_raw(&mut problem, &mut iterate, &mut state).map_err(|e| match e {
            RawError::Create => {
                IpoptError::CreateFailed(format!("n = {n}, m = {m}, nnz_jac = {}", d.nnz_jac))
            }
            RawError::Option(name, value) => IpoptError::InvalidOption { name, value },
            RawError::OutputFile(p) => IpoptError::OutputFile(p),
            RawError::Nul(s) => IpoptError::InvalidOption {
                name: s,
                value: "contains a NUL byte".into(),
            },
        })?;
        if let Some(msg) = state.panic {
            return Err(IpoptError::CallbackPanicked(msg));
        }
        let status = SolveStatus::from_code(code).unwrap_or(SolveStatus::InternalError);
        let mut stats = state.stats;
        stats.wall_s = started.elapsed().as_secs_f64();
        let trials = ffi::inertia_trials();
        stats.kkt_factorizations = trials.factorizations;
        stats.kkt_solvers = ffi::kkt_solver_counts();
        stats.skipped_inertia_trials = trials.skipped;
        if let Some(name) = self
            .settings
            .external_linear_solver()
            .filter(|_| status == SolveStatus::InvalidOption)
        {
            stats.linear_solver_error = Some(format!(
                "IPOPT could not use linear_solver = {name:?}: its library is not installed here (Debian's Ipopt ships MUMPS only); use one of {}",
                settings::COLLOC_LINEAR_SOLVERS.join(", ")
            ));
        }
        if let Some((_, size)) = ffi::take_mumps_memory_failure() {
            let amount = if size < 0 {
                format!("{} million entries", -(size as i64))
            } else {
                format!("{size} entries")
            };
            stats.linear_solver_error = Some(format!(
                "MUMPS ran out of memory factorizing the KKT system (INFO(1) = -13, tried to allocate {amount}); the NLP is too large or too densely coupled for this machine"
            ));
        }
        Ok(IpoptSolution {
            status,
            x: iterate.x,
            objective: iterate.objective,
            constraints: iterate.g,
            mult_g: iterate.mult_g,
            mult_x_lower: iterate.mult_x_lower,
            mult_x_upper: iterate.mult_x_upper,
            stats,
        })
    }
}

fn check_len(what: &'static str, got: usize, expected: usize) -> Result<(), IpoptError> {
    if got == expected {
        Ok(())
    } else {
        Err(IpoptError::DimensionMismatch {
            what,
            got,
            expected,
        })
    }
}

/// Sets the number of threads of the BLAS behind IPOPT/MUMPS when it is OpenBLAS (returns
/// false otherwise). One thread was as fast as two on this project's 2-core machines and
/// leaves the second core to concurrent solves and evaluations (docs/platform.md, "BLAS").
/// Without this call (or `OPENBLAS_NUM_THREADS`) colloc sets one thread before its first
/// solve or factorization: threaded OpenBLAS 0.3.21 overflows the 2 MB stack of spawned
/// threads in its LU factorization, so with more threads solve on the main thread or on
/// threads with large stacks (docs/platform.md, "BLAS").
pub fn set_blas_threads(n: usize) -> bool {
    ffi::set_openblas_threads(n)
}

/// Makes the process's C allocator (glibc) keep freed memory for reuse instead of returning
/// large blocks to the kernel, which zeroes them again on the next allocation. IPOPT allocates
/// its Jacobian and Hessian value arrays anew each iteration; on a 20,000-point problem (tens of
/// MB each) this cut page faults from 2.3 M to 1.3 M and wall time by ~5 % (paired runs), for
/// ~5 % more peak memory (docs/platform.md, "Memory").
/// Process-wide, so it is the program's choice: the `colloc` binary calls it at startup.
/// Returns false when the C library offers no such setting.
pub fn retain_freed_memory() -> bool {
    ffi::malloc_retain_freed_memory()
}

/// The kernel family OpenBLAS chose for this CPU (e.g. "SkylakeX", "Haswell", "Prescott"), or
/// `None` when the BLAS is not OpenBLAS.
pub fn blas_core_name() -> Option<String> {
    ffi::openblas_core_name()
}

/// OpenBLAS reads `OPENBLAS_CORETYPE` when it is loaded. On some virtual machines its CPU
/// detection falls back to the generic "Prescott" kernels although the CPU has AVX2/AVX-512
/// (seen on this project's machines: 1.2× slower solves, other rounding). Then this runs the
/// current program again, once, with the same arguments and the right core type (`exec`: it
/// does not return on success). Failing that, or when the user set `OPENBLAS_CORETYPE`, the
/// program carries on unchanged. For programs only (the `colloc` binary, examples).
pub fn rerun_with_detected_blas_core() {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os("OPENBLAS_CORETYPE").is_some()
            || std::env::var_os("COLLOC_BLAS_REEXEC").is_some()
        {
            return;
        }
        let detected = blas_core_name().unwrap_or_default();
        if !detected.eq_ignore_ascii_case("prescott") {
            return;
        }
        let core = if std::arch::is_x86_feature_detected!("avx512f") {
            "SkylakeX"
        } else if std::arch::is_x86_feature_detected!("avx2") {
            "Haswell"
        } else {
            return;
        };
        if let Ok(exe) = std::env::current_exe() {
            // `exec` only returns on failure; then the run continues unchanged.
            let _ = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env("OPENBLAS_CORETYPE", core)
                .env("COLLOC_BLAS_REEXEC", "1")
                .exec();
        }
    }
}

/// Process-wide counts of KKT factorizations by the dense solver and of calls into MUMPS
/// (diagnostics: which linear solver the solves of this process used).
pub fn kkt_factorization_counts() -> (usize, usize) {
    use std::sync::atomic::Ordering::Relaxed;
    (
        ffi::DENSE_FACTORIZATIONS.load(Relaxed),
        ffi::MUMPS_CALLS.load(Relaxed),
    )
}

/// Process-wide count of KKT factorizations by the block-arrow solver (NLPs with a
/// [`KktBlocks`](crate::KktBlocks) partition).
pub fn block_factorization_count() -> usize {
    ffi::BLOCK_FACTORIZATIONS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Which derivatives IPOPT's derivative checker compares with finite differences.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DerivativeTestOrder {
    /// Gradient and Jacobian.
    First,
    /// Gradient, Jacobian and Hessian of the Lagrangian.
    Second,
}

/// What IPOPT's derivative checker found.
#[derive(Clone, Debug, PartialEq)]
pub struct DerivativeCheckReport {
    /// Number of entries flagged as wrong.
    pub errors: usize,
    /// The checker's lines from IPOPT's log.
    pub log: String,
}

static CHECK_COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Runs IPOPT's derivative checker (`derivative_test`) at the evaluator's initial point
/// (IPOPT perturbs it slightly) and reports the number of flagged entries.
pub fn derivative_check<E: NlpEvaluator>(
    nlp: &mut E,
    order: DerivativeTestOrder,
    perturbation: Option<f64>,
    tol: Option<f64>,
) -> Result<DerivativeCheckReport, IpoptError> {
    let k = CHECK_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "colloc-derivative-check-{}-{k}.log",
        std::process::id()
    ));
    let mut settings = IpoptSettings {
        max_iter: 0,
        output_file: Some(path.clone()),
        file_print_level: 5,
        ..Default::default()
    };
    let test = match order {
        DerivativeTestOrder::First => "first-order",
        DerivativeTestOrder::Second => "second-order",
    };
    settings
        .options
        .insert("derivative_test".into(), IpoptOption::Str(test.into()));
    settings.options.insert(
        "derivative_test_print_all".into(),
        IpoptOption::Str("no".into()),
    );
    if let Some(p) = perturbation {
        settings
            .options
            .insert("derivative_test_perturbation".into(), IpoptOption::Num(p));
    }
    if let Some(t) = tol {
        settings
            .options
            .insert("derivative_test_tol".into(), IpoptOption::Num(t));
    }
    let solve = IpoptSolver::new(settings).and_then(|s| s.solve(nlp));
    let text = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    solve?;
    let text = text.map_err(|e| IpoptError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let log: String = text
        .lines()
        .skip_while(|l| !l.contains("Starting derivative checker"))
        .take_while(|l| {
            !l.starts_with("Number of nonzeros") && !l.starts_with("Total number of variables")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let errors = if text.contains("No errors detected by derivative checker") {
        0
    } else if let Some(line) = text
        .lines()
        .find(|l| l.contains("Derivative checker detected"))
    {
        line.split_whitespace()
            .find_map(|w| w.parse::<usize>().ok())
            .ok_or_else(|| IpoptError::Io {
                path: path.display().to_string(),
                message: format!("cannot parse {line:?}"),
            })?
    } else {
        return Err(IpoptError::Io {
            path: path.display().to_string(),
            message: "no derivative checker summary in the log".into(),
        });
    };
    Ok(DerivativeCheckReport { errors, log })
}
