//! The foreign-function `unsafe` code of colloc (the only other `unsafe` is one CPU-checked
//! call in `colloc-models`' `wide.rs`): declarations of IPOPT's C interface (`IpStdCInterface.h`,
//! Ipopt 3.11) and the trampolines that call a Rust [`NlpEvaluator`] from IPOPT's callbacks.
//!
//! [`solve_raw`] is the one entry point: it creates an `IpoptProblem`, sets options, runs
//! `IpoptSolve` with a pointer to a [`CallbackState`] as user data, and frees the problem on
//! every path. Trampolines never unwind into C: panics are caught and recorded.
#![allow(unsafe_code)]

use super::block_kkt::BlockArrowLdlt;
use super::dense_kkt::{DenseLdlt, Inertia, KktPolicy, Singular};
use super::info::{IterationInfo, KktSolverCounts};
use super::schur_kkt::SchurLdlt;
use super::settings::IpoptOption;
use super::square_kkt::SquareBlockLdlt;
use super::CallbackState;
use crate::nlp::NlpEvaluator;
use crate::nlp::{BlockCoupling, KktBlocks};
use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

type Number = f64;
type Index = c_int;
type Bool = c_int;
type UserDataPtr = *mut c_void;
const TRUE: Bool = 1;
const FALSE: Bool = 0;

#[repr(C)]
struct IpoptProblemInfo {
    _private: [u8; 0],
}
type IpoptProblem = *mut IpoptProblemInfo;

type EvalF = unsafe extern "C" fn(Index, *mut Number, Bool, *mut Number, UserDataPtr) -> Bool;
type EvalGradF = unsafe extern "C" fn(Index, *mut Number, Bool, *mut Number, UserDataPtr) -> Bool;
type EvalG =
    unsafe extern "C" fn(Index, *mut Number, Bool, Index, *mut Number, UserDataPtr) -> Bool;
type EvalJacG = unsafe extern "C" fn(
    Index,
    *mut Number,
    Bool,
    Index,
    Index,
    *mut Index,
    *mut Index,
    *mut Number,
    UserDataPtr,
) -> Bool;
type EvalH = unsafe extern "C" fn(
    Index,
    *mut Number,
    Bool,
    Number,
    Index,
    *mut Number,
    Bool,
    Index,
    *mut Index,
    *mut Index,
    *mut Number,
    UserDataPtr,
) -> Bool;
type IntermediateCb = unsafe extern "C" fn(
    Index,
    Index,
    Number,
    Number,
    Number,
    Number,
    Number,
    Number,
    Number,
    Number,
    Index,
    UserDataPtr,
) -> Bool;

#[link(name = "ipopt")]
extern "C" {
    fn CreateIpoptProblem(
        n: Index,
        x_l: *mut Number,
        x_u: *mut Number,
        m: Index,
        g_l: *mut Number,
        g_u: *mut Number,
        nele_jac: Index,
        nele_hess: Index,
        index_style: Index,
        eval_f: Option<EvalF>,
        eval_g: Option<EvalG>,
        eval_grad_f: Option<EvalGradF>,
        eval_jac_g: Option<EvalJacG>,
        eval_h: Option<EvalH>,
    ) -> IpoptProblem;
    fn FreeIpoptProblem(problem: IpoptProblem);
    fn AddIpoptStrOption(problem: IpoptProblem, keyword: *mut c_char, val: *mut c_char) -> Bool;
    fn AddIpoptNumOption(problem: IpoptProblem, keyword: *mut c_char, val: Number) -> Bool;
    fn AddIpoptIntOption(problem: IpoptProblem, keyword: *mut c_char, val: c_int) -> Bool;
    fn OpenIpoptOutputFile(
        problem: IpoptProblem,
        file_name: *mut c_char,
        print_level: c_int,
    ) -> Bool;
    fn SetIpoptProblemScaling(
        problem: IpoptProblem,
        obj_scaling: Number,
        x_scaling: *mut Number,
        g_scaling: *mut Number,
    ) -> Bool;
    fn SetIntermediateCallback(problem: IpoptProblem, cb: Option<IntermediateCb>) -> Bool;
    fn IpoptSolve(
        problem: IpoptProblem,
        x: *mut Number,
        g: *mut Number,
        obj_val: *mut Number,
        mult_g: *mut Number,
        mult_x_l: *mut Number,
        mult_x_u: *mut Number,
        user_data: UserDataPtr,
    ) -> c_int;
}

/// Everything IPOPT needs besides the callbacks. Vectors are owned so their pointers stay valid.
pub(crate) struct RawProblem {
    pub x_lower: Vec<f64>,
    pub x_upper: Vec<f64>,
    pub g_lower: Vec<f64>,
    pub g_upper: Vec<f64>,
    pub nnz_jac: Index,
    pub nnz_hess: Index,
    pub options: Vec<(String, IpoptOption)>,
    pub scaling: Option<(f64, Vec<f64>, Vec<f64>)>,
    pub output_file: Option<(String, i32)>,
    /// Which factorization the KKT systems get (see `dense_kkt`).
    pub kkt_policy: KktPolicy,
    /// The NLP's block partition, for the block solvers.
    pub kkt_blocks: Option<BlockHint>,
    /// Skip the unperturbed trial factorization after repeated wrong inertia (see
    /// `IpoptSettings::skip_unperturbed_trial`).
    pub skip_unperturbed_trial: bool,
}

/// In/out arrays of `IpoptSolve`: the start on entry, the solution on return.
pub(crate) struct RawIterate {
    pub x: Vec<f64>,
    pub g: Vec<f64>,
    pub objective: f64,
    pub mult_g: Vec<f64>,
    pub mult_x_lower: Vec<f64>,
    pub mult_x_upper: Vec<f64>,
}

/// Why a problem could not be set up.
pub(crate) enum RawError {
    /// CreateIpoptProblem returned NULL.
    Create,
    /// An option name or value was rejected (name, value as text).
    Option(String, String),
    /// The output file could not be opened.
    OutputFile(String),
    /// A string contained an interior NUL byte.
    Nul(String),
}

fn cstring(s: &str) -> Result<CString, RawError> {
    CString::new(s).map_err(|_| RawError::Nul(s.to_string()))
}

/// Creates the problem, sets options, solves, frees. Returns IPOPT's status code.
pub(crate) fn solve_raw<E: NlpEvaluator>(
    problem: &mut RawProblem,
    iterate: &mut RawIterate,
    state: &mut CallbackState<'_, '_, E>,
) -> Result<c_int, RawError> {
    let n = iterate.x.len() as Index;
    let m = problem.g_lower.len() as Index;
    let eval_h: Option<EvalH> = Some(eval_h::<E>);
    // SAFETY: the bound arrays have n and m entries and are only read (copied) by IPOPT;
    // the callbacks are valid function pointers for the lifetime of the process.
    let raw = unsafe {
        CreateIpoptProblem(
            n,
            problem.x_lower.as_mut_ptr(),
            problem.x_upper.as_mut_ptr(),
            m,
            problem.g_lower.as_mut_ptr(),
            problem.g_upper.as_mut_ptr(),
            problem.nnz_jac,
            problem.nnz_hess,
            0,
            Some(eval_f::<E>),
            Some(eval_g::<E>),
            Some(eval_grad_f::<E>),
            Some(eval_jac_g::<E>),
            eval_h,
        )
    };
    if raw.is_null() {
        return Err(RawError::Create);
    }
    let guard = ProblemGuard(raw);
    let _policy = KktPolicyGuard::set(
        problem.kkt_policy,
        problem.kkt_blocks.clone(),
        problem.skip_unperturbed_trial,
    );
    let result = configure::<E>(guard.0, problem).map(|()| {
        // SAFETY: all arrays have the sizes IPOPT expects (x, mult_x_*: n; g, mult_g: m);
        // `state` outlives the call and is only accessed through the user-data pointer
        // while IpoptSolve runs, on this thread.
        unsafe {
            IpoptSolve(
                guard.0,
                iterate.x.as_mut_ptr(),
                iterate.g.as_mut_ptr(),
                &mut iterate.objective,
                iterate.mult_g.as_mut_ptr(),
                iterate.mult_x_lower.as_mut_ptr(),
                iterate.mult_x_upper.as_mut_ptr(),
                state as *mut CallbackState<'_, '_, E> as UserDataPtr,
            )
        }
    });
    drop(guard);
    result
}

/// Frees the problem on every path.
struct ProblemGuard(IpoptProblem);

impl Drop for ProblemGuard {
    fn drop(&mut self) {
        // SAFETY: the pointer came from CreateIpoptProblem, is non-null and freed once.
        unsafe { FreeIpoptProblem(self.0) }
    }
}

fn configure<E: NlpEvaluator>(raw: IpoptProblem, problem: &mut RawProblem) -> Result<(), RawError> {
    for (name, value) in &problem.options {
        let key = cstring(name)?;
        // SAFETY: key and value are valid NUL-terminated strings that IPOPT copies.
        let ok = unsafe {
            match value {
                IpoptOption::Int(v) => AddIpoptIntOption(raw, key.as_ptr() as *mut c_char, *v),
                IpoptOption::Num(v) => AddIpoptNumOption(raw, key.as_ptr() as *mut c_char, *v),
                IpoptOption::Str(v) => {
                    let val = cstring(v)?;
                    AddIpoptStrOption(
                        raw,
                        key.as_ptr() as *mut c_char,
                        val.as_ptr() as *mut c_char,
                    )
                }
            }
        };
        if ok == FALSE {
            let text = match value {
                IpoptOption::Int(v) => v.to_string(),
                IpoptOption::Num(v) => v.to_string(),
                IpoptOption::Str(v) => v.clone(),
            };
            return Err(RawError::Option(name.clone(), text));
        }
    }
    if let Some((obj, xs, gs)) = &mut problem.scaling {
        // SAFETY: xs has n and gs has m entries; IPOPT copies them.
        let ok = unsafe { SetIpoptProblemScaling(raw, *obj, xs.as_mut_ptr(), gs.as_mut_ptr()) };
        if ok == FALSE {
            return Err(RawError::Option("scaling".into(), "rejected".into()));
        }
    }
    if let Some((path, level)) = &problem.output_file {
        let name = cstring(path)?;
        // SAFETY: a valid NUL-terminated path that IPOPT copies.
        let ok = unsafe { OpenIpoptOutputFile(raw, name.as_ptr() as *mut c_char, *level) };
        if ok == FALSE {
            return Err(RawError::OutputFile(path.clone()));
        }
    }
    // SAFETY: a valid function pointer; IPOPT passes our user data back to it.
    unsafe { SetIntermediateCallback(raw, Some(intermediate::<E>)) };
    Ok(())
}

/// Runs `f` on the callback state, timing it, catching panics, turning errors into FALSE.
///
/// # Safety
/// `user_data` must be the `CallbackState<E>` pointer passed to `IpoptSolve`.
unsafe fn with_state<E: NlpEvaluator>(
    user_data: UserDataPtr,
    f: impl FnOnce(&mut CallbackState<'_, '_, E>) -> Result<(), crate::nlp::EvalError>,
    counter: fn(&mut super::SolveStats) -> &mut super::CallStats,
) -> Bool {
    // SAFETY: guaranteed by the caller; IPOPT calls back on the solving thread only, one
    // callback at a time, so this is the only live reference.
    let state = unsafe { &mut *(user_data as *mut CallbackState<'_, '_, E>) };
    if state.panic.is_some() {
        return FALSE;
    }
    let start = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| f(state)));
    let dt = start.elapsed().as_secs_f64();
    let stats = &mut state.stats;
    stats.eval_s += dt;
    let c = counter(stats);
    c.calls += 1;
    c.seconds += dt;
    match outcome {
        Ok(Ok(())) => TRUE,
        Ok(Err(e)) => {
            state.stats.eval_errors += 1;
            state
                .stats
                .first_eval_error
                .get_or_insert_with(|| e.to_string());
            FALSE
        }
        Err(payload) => {
            state.panic = Some(panic_message(payload.as_ref()));
            FALSE
        }
    }
}

/// Answers IPOPT's request for a sparsity structure (`values` null): `fill` writes the
/// model's pattern, converted into IPOPT's `nele` row and column indices. FALSE when an index
/// does not fit IPOPT's integers or `fill` panics (the panic is kept for the error).
///
/// # Safety
/// `user_data` as for [`with_state`]; `i_row` and `j_col` point to `nele` writable indices.
unsafe fn structure<E: NlpEvaluator>(
    user_data: UserDataPtr,
    nele: Index,
    i_row: *mut Index,
    j_col: *mut Index,
    fill: impl FnOnce(&E, &mut [usize], &mut [usize]),
) -> Bool {
    // SAFETY: guaranteed by the caller, as in `with_state`.
    let state = unsafe { &mut *(user_data as *mut CallbackState<'_, '_, E>) };
    let len = nele.max(0) as usize;
    // SAFETY: IPOPT hands over `nele` indices in each array.
    let (rows, cols) = unsafe {
        (
            std::slice::from_raw_parts_mut(i_row, len),
            std::slice::from_raw_parts_mut(j_col, len),
        )
    };
    let nlp = &*state.nlp;
    match catch_unwind(AssertUnwindSafe(|| {
        super::write_structure(|r, c| fill(nlp, r, c), rows, cols)
    })) {
        Ok(true) => TRUE,
        Ok(false) => FALSE,
        Err(payload) => {
            state.panic = Some(panic_message(payload.as_ref()));
            FALSE
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_string())
}

/// Converts IPOPT's `(pointer, length)` to a slice; an empty slice for length 0.
///
/// # Safety
/// `ptr` must point to `len` valid numbers for the duration of the callback.
unsafe fn slice<'a>(ptr: *const Number, len: Index) -> &'a [f64] {
    if len <= 0 || ptr.is_null() {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(ptr, len as usize) }
    }
}

/// Mutable variant of [`slice`].
///
/// # Safety
/// As for [`slice`], and no other reference to the memory exists during the callback.
unsafe fn slice_mut<'a>(ptr: *mut Number, len: Index) -> &'a mut [f64] {
    if len <= 0 || ptr.is_null() {
        &mut []
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts_mut(ptr, len as usize) }
    }
}

// SAFETY (all trampolines below): IPOPT passes arrays of the documented sizes (x: n, g and
// lambda: m, grad: n, values/iRow/jCol: nele) valid for the duration of the call, and the
// user-data pointer given to IpoptSolve.

unsafe extern "C" fn eval_f<E: NlpEvaluator>(
    n: Index,
    x: *mut Number,
    _new_x: Bool,
    obj: *mut Number,
    ud: UserDataPtr,
) -> Bool {
    // SAFETY: see the note above the trampolines.
    unsafe {
        let x = slice(x, n);
        with_state::<E>(
            ud,
            |s| s.nlp.objective(x).map(|f| *obj = f),
            |st| &mut st.objective,
        )
    }
}

unsafe extern "C" fn eval_grad_f<E: NlpEvaluator>(
    n: Index,
    x: *mut Number,
    _new_x: Bool,
    grad: *mut Number,
    ud: UserDataPtr,
) -> Bool {
    // SAFETY: see the note above the trampolines.
    unsafe {
        let x = slice(x, n);
        let grad = slice_mut(grad, n);
        with_state::<E>(ud, |s| s.nlp.gradient(x, grad), |st| &mut st.gradient)
    }
}

unsafe extern "C" fn eval_g<E: NlpEvaluator>(
    n: Index,
    x: *mut Number,
    _new_x: Bool,
    m: Index,
    g: *mut Number,
    ud: UserDataPtr,
) -> Bool {
    // SAFETY: see the note above the trampolines.
    unsafe {
        let x = slice(x, n);
        let g = slice_mut(g, m);
        with_state::<E>(ud, |s| s.nlp.constraints(x, g), |st| &mut st.constraints)
    }
}

unsafe extern "C" fn eval_jac_g<E: NlpEvaluator>(
    n: Index,
    x: *mut Number,
    _new_x: Bool,
    _m: Index,
    nele: Index,
    i_row: *mut Index,
    j_col: *mut Index,
    values: *mut Number,
    ud: UserDataPtr,
) -> Bool {
    // SAFETY: see the note above the trampolines.
    unsafe {
        if values.is_null() {
            return structure::<E>(ud, nele, i_row, j_col, |nlp, rows, cols| {
                nlp.jacobian_structure(rows, cols)
            });
        }
        let x = slice(x, n);
        let values = slice_mut(values, nele);
        with_state::<E>(
            ud,
            |s| s.nlp.jacobian_values(x, values),
            |st| &mut st.jacobian,
        )
    }
}

unsafe extern "C" fn eval_h<E: NlpEvaluator>(
    n: Index,
    x: *mut Number,
    _new_x: Bool,
    obj_factor: Number,
    m: Index,
    lambda: *mut Number,
    _new_lambda: Bool,
    nele: Index,
    i_row: *mut Index,
    j_col: *mut Index,
    values: *mut Number,
    ud: UserDataPtr,
) -> Bool {
    // SAFETY: see the note above the trampolines.
    unsafe {
        if values.is_null() {
            return structure::<E>(ud, nele, i_row, j_col, |nlp, rows, cols| {
                nlp.hessian_structure(rows, cols)
            });
        }
        let x = slice(x, n);
        let lambda = slice(lambda, m);
        let values = slice_mut(values, nele);
        with_state::<E>(
            ud,
            |s| s.nlp.hessian_values(x, obj_factor, lambda, values),
            |st| &mut st.hessian,
        )
    }
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn intermediate<E: NlpEvaluator>(
    alg_mod: Index,
    iter_count: Index,
    obj_value: Number,
    inf_pr: Number,
    inf_du: Number,
    mu: Number,
    d_norm: Number,
    regularization_size: Number,
    alpha_du: Number,
    alpha_pr: Number,
    ls_trials: Index,
    ud: UserDataPtr,
) -> Bool {
    let info = IterationInfo {
        iteration: iter_count.max(0) as usize,
        restoration: alg_mod == 1,
        objective: obj_value,
        inf_pr,
        inf_du,
        mu,
        d_norm,
        regularization: regularization_size,
        alpha_du,
        alpha_pr,
        ls_trials: ls_trials.max(0) as usize,
    };
    // SAFETY: ud is the CallbackState pointer given to IpoptSolve; IPOPT calls back on the
    // solving thread, one callback at a time.
    let state = unsafe { &mut *(ud as *mut CallbackState<'_, '_, E>) };
    INERTIA_TRIALS.with(|t| t.set(t.get().new_iterate(info.restoration)));
    if state.panic.is_some() {
        return FALSE;
    }
    match catch_unwind(AssertUnwindSafe(|| state.on_iteration(&info))) {
        Ok(true) => TRUE,
        Ok(false) => FALSE,
        Err(payload) => {
            state.panic = Some(panic_message(payload.as_ref()));
            FALSE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// MUMPS serialization.
//
// Debian's sequential MUMPS 5.5 keeps Fortran module state (e.g. `load_flops` in
// dmumps_load.F), so two MUMPS calls running at the same time crash the process ("Attempt to
// DEALLOCATE unallocated 'load_flops'"). Ipopt >= 3.14 serializes its MUMPS calls with a mutex;
// Ipopt 3.11 does not. We do it here: this definition of `dmumps_c` is exported from the
// executable, so the dynamic linker binds libipopt's calls to it; it takes a process-wide lock
// and forwards to the real `dmumps_c` found with `dlsym(RTLD_NEXT)`. Everything else in IPOPT
// (function evaluations, line search, vector algebra) still runs concurrently.

extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// glibc's `RTLD_NEXT`: search the objects loaded after this one.
const RTLD_NEXT: *mut c_void = -1isize as *mut c_void;

type DmumpsC = unsafe extern "C" fn(id: *mut c_void);

static MUMPS_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
static REAL_DMUMPS_C: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Number of MUMPS calls that went through the lock (for tests).
pub(crate) static MUMPS_CALLS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// The real `dmumps_c`, found once.
fn real_dmumps_c() -> DmumpsC {
    let real = *REAL_DMUMPS_C.get_or_init(|| {
        // SAFETY: a valid NUL-terminated symbol name; RTLD_NEXT skips this definition.
        unsafe { dlsym(RTLD_NEXT, c"dmumps_c".as_ptr()) as usize }
    });
    if real == 0 {
        // No real MUMPS loaded after us: nothing sensible to call. IPOPT only calls this when
        // it was linked against MUMPS, so this cannot happen with a working installation.
        std::process::abort();
    }
    // SAFETY: `real` is the address of the real `dmumps_c`, which has this signature.
    unsafe { std::mem::transmute::<usize, DmumpsC>(real) }
}

/// The leading fields of MUMPS 5.5's `DMUMPS_STRUC_C` (`dmumps_c.h`), up to `infog`: the
/// ones IPOPT 3.11 sets or reads. Only ever accessed through a pointer to the full struct.
#[repr(C)]
pub(crate) struct DmumpsStrucPrefix {
    sym: c_int,
    par: c_int,
    job: c_int,
    comm_fortran: c_int,
    icntl: [c_int; 60],
    keep: [c_int; 500],
    cntl: [f64; 15],
    dkeep: [f64; 230],
    keep8: [i64; 150],
    n: c_int,
    nblk: c_int,
    nz_alloc: c_int,
    nz: c_int,
    nnz: i64,
    irn: *mut c_int,
    jcn: *mut c_int,
    a: *mut f64,
    nz_loc: c_int,
    nnz_loc: i64,
    irn_loc: *mut c_int,
    jcn_loc: *mut c_int,
    a_loc: *mut f64,
    nelt: c_int,
    eltptr: *mut c_int,
    eltvar: *mut c_int,
    a_elt: *mut f64,
    blkptr: *mut c_int,
    blkvar: *mut c_int,
    perm_in: *mut c_int,
    sym_perm: *mut c_int,
    uns_perm: *mut c_int,
    colsca: *mut f64,
    rowsca: *mut f64,
    colsca_from_mumps: c_int,
    rowsca_from_mumps: c_int,
    rhs: *mut f64,
    redrhs: *mut f64,
    rhs_sparse: *mut f64,
    sol_loc: *mut f64,
    rhs_loc: *mut f64,
    irhs_sparse: *mut c_int,
    irhs_ptr: *mut c_int,
    isol_loc: *mut c_int,
    irhs_loc: *mut c_int,
    nrhs: c_int,
    lrhs: c_int,
    lredrhs: c_int,
    nz_rhs: c_int,
    lsol_loc: c_int,
    nloc_rhs: c_int,
    lrhs_loc: c_int,
    schur_mloc: c_int,
    schur_nloc: c_int,
    schur_lld: c_int,
    mblock: c_int,
    nblock: c_int,
    nprow: c_int,
    npcol: c_int,
    info: [c_int; 80],
    infog: [c_int; 80],
}

/// How many iterates in a row must have had an unperturbed KKT matrix of the wrong inertia
/// before the unperturbed trial is skipped.
const SKIP_AFTER_FAILED_TRIALS: usize = 2;

/// The KKT factorizations of the solve running on this thread, and IPOPT's inertia trials.
///
/// Each IPOPT iteration first factorizes the KKT matrix unperturbed (δ_w = 0); when its inertia
/// is wrong (negative curvature of the Lagrangian on the constraints' null space, as in most
/// iterations of these nonconvex fits) IPOPT adds δ_w·I, starting from a third of the last
/// iteration's δ_w, and factorizes again. Once the unperturbed trial has failed in
/// [`SKIP_AFTER_FAILED_TRIALS`] iterations in a row, the first factorization of each further
/// (non-restoration) iteration is answered "wrong inertia" without factorizing, so IPOPT goes
/// straight to its perturbation — what IPOPT itself does for a Hessian it has found
/// structurally degenerate. δ_w still shrinks by 3× per iteration that needs no more, so where
/// no perturbation is needed it fades geometrically.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct InertiaTrials {
    /// Skipping allowed for this solve.
    enabled: bool,
    /// The next factorization is the first of a new (non-restoration) iterate.
    first_pending: bool,
    /// That first factorization was carried out (not skipped).
    first_was_real: bool,
    /// That first factorization found the matrix singular (IPOPT then tests for degenerate
    /// constraints, a different correction, which skipping must not disturb).
    first_was_singular: bool,
    /// Factorizations since the current iterate began.
    this_iterate: usize,
    /// Iterates in a row whose unperturbed trial failed.
    failed_streak: usize,
    /// Factorizations carried out in this solve.
    pub factorizations: usize,
    /// Unperturbed trials skipped in this solve.
    pub skipped: usize,
}

impl InertiaTrials {
    fn new(enabled: bool) -> Self {
        Self {
            enabled,
            ..Self::default()
        }
    }

    /// Called at each IPOPT iteration (intermediate callback), before its factorizations.
    fn new_iterate(mut self, restoration: bool) -> Self {
        if self.first_was_real {
            // A second factorization of the same iterate means the first had the wrong
            // inertia (unless it was singular).
            self.failed_streak = if self.this_iterate >= 2 && !self.first_was_singular {
                self.failed_streak + 1
            } else {
                0
            };
        }
        self.first_pending = !restoration;
        self.first_was_real = false;
        self.first_was_singular = false;
        self.this_iterate = 0;
        self
    }

    /// Called after a factorization carried out: `singular` when the matrix was singular.
    fn factorized(&mut self, singular: bool) {
        if self.this_iterate == 1 && self.first_was_real {
            self.first_was_singular = singular;
        }
    }

    /// Called for each factorization request; true: answer "wrong inertia" without factorizing.
    fn skip_this_factorization(&mut self) -> bool {
        let first = std::mem::take(&mut self.first_pending);
        if first && self.enabled && self.failed_streak >= SKIP_AFTER_FAILED_TRIALS {
            self.skipped += 1;
            return true;
        }
        self.first_was_real |= first;
        self.this_iterate += 1;
        self.factorizations += 1;
        false
    }
}

/// Records the outcome of a factorization carried out on this thread.
fn note_factorized(singular: bool) {
    INERTIA_TRIALS.with(|t| {
        let mut r = t.get();
        r.factorized(singular);
        t.set(r);
    });
}

/// The factorizations of the last solve on this thread by linear solver (read after
/// `IpoptSolve`).
pub(crate) fn kkt_solver_counts() -> KktSolverCounts {
    KKT_SOLVERS.with(std::cell::Cell::get)
}

/// Counts one factorization by the solver `pick` selects.
fn count_factorization(pick: fn(&mut KktSolverCounts) -> &mut usize) {
    KKT_SOLVERS.with(|c| {
        let mut counts = c.get();
        *pick(&mut counts) += 1;
        c.set(counts);
    });
}

/// The factorization counts of the last solve on this thread (read after `IpoptSolve`).
pub(crate) fn inertia_trials() -> InertiaTrials {
    INERTIA_TRIALS.with(std::cell::Cell::get)
}

thread_local! {
    /// Inertia-trial state and factorization counts of the solve running on this thread.
    static INERTIA_TRIALS: std::cell::Cell<InertiaTrials> = const {
        std::cell::Cell::new(InertiaTrials {
            enabled: false,
            first_pending: false,
            first_was_real: false,
            first_was_singular: false,
            this_iterate: 0,
            failed_streak: 0,
            factorizations: 0,
            skipped: 0,
        })
    };
    /// The factorizations of the solve running on this thread, by linear solver.
    static KKT_SOLVERS: std::cell::Cell<KktSolverCounts> = const {
        std::cell::Cell::new(KktSolverCounts { dense: 0, blocks: 0, schur: 0, square: 0, mumps: 0 })
    };
    /// The KKT policy of the solve running on this thread (set around `IpoptSolve`).
    static KKT_POLICY: std::cell::Cell<KktPolicy> = const { std::cell::Cell::new(KktPolicy::Mumps) };
    /// The block partition of the solve running on this thread.
    static KKT_BLOCKS: std::cell::RefCell<Option<BlockHint>> = const { std::cell::RefCell::new(None) };
    /// The first MUMPS allocation failure on this thread: (INFO(1), INFO(2)).
    static MUMPS_MEMORY_FAILURE: std::cell::Cell<Option<(c_int, c_int)>> = const { std::cell::Cell::new(None) };
}

/// Takes (and clears) this thread's record of a MUMPS allocation failure: INFO(1) = −13 and
/// INFO(2), the size MUMPS tried to allocate (negative: in millions of entries).
pub(crate) fn take_mumps_memory_failure() -> Option<(c_int, c_int)> {
    MUMPS_MEMORY_FAILURE.with(std::cell::Cell::take)
}

/// A KKT solver that answers an instance's MUMPS calls in its place.
enum Replacement {
    /// Dense LAPACK LDLᵀ (`dense_kkt`).
    Dense(DenseLdlt),
    /// Block-arrow elimination (`block_kkt`).
    Block(Box<BlockArrowLdlt>),
    /// Independent blocks onto a dense Schur complement (`schur_kkt`).
    Schur(Box<SchurLdlt>),
    /// A square constraint block through its LU (`square_kkt`).
    Square(Box<SquareBlockLdlt>),
}

impl Replacement {
    fn order(&self) -> usize {
        match self {
            Self::Dense(d) => d.order(),
            Self::Block(b) => b.order(),
            Self::Schur(s) => s.order(),
            Self::Square(s) => s.order(),
        }
    }

    fn factorize(&mut self, rows: &[i32], cols: &[i32], vals: &[f64]) -> Result<Inertia, Singular> {
        match self {
            Self::Dense(d) => {
                DENSE_FACTORIZATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                count_factorization(|c| &mut c.dense);
                d.factorize(rows, cols, vals)
            }
            Self::Block(b) => {
                BLOCK_FACTORIZATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                count_factorization(|c| &mut c.blocks);
                b.factorize(vals)
            }
            Self::Schur(s) => {
                count_factorization(|c| &mut c.schur);
                s.factorize(vals)
            }
            Self::Square(s) => {
                let result = s.factorize(vals);
                if s.fell_back() {
                    count_factorization(|c| &mut c.dense);
                } else {
                    count_factorization(|c| &mut c.square);
                }
                result
            }
        }
    }

    fn solve(&mut self, rhs: &mut [f64]) -> bool {
        match self {
            Self::Dense(d) => d.solve(rhs),
            Self::Block(b) => b.solve(rhs),
            Self::Schur(s) => s.solve(rhs),
            Self::Square(s) => s.solve(rhs),
        }
    }
}

/// MUMPS instances (by struct address) whose systems another solver answers.
static REPLACEMENTS: std::sync::Mutex<Vec<(usize, Option<Box<Replacement>>)>> =
    std::sync::Mutex::new(Vec::new());

/// Number of dense KKT factorizations carried out (for tests).
pub(crate) static DENSE_FACTORIZATIONS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// Number of block-arrow KKT factorizations carried out (for tests).
pub(crate) static BLOCK_FACTORIZATIONS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// An NLP's block partition with its numbers of variables and constraints: the KKT matrices
/// it describes have order `n_vars + n_cons`, the variables first. Other matrices (IPOPT's
/// restoration phase adds slacks) go to MUMPS or the dense solver.
#[derive(Clone, Debug)]
pub(crate) struct BlockHint {
    pub partition: Arc<KktBlocks>,
    pub n_vars: usize,
    pub n_cons: usize,
}

/// Sets this thread's KKT policy and block partition for the lifetime of the guard.
pub(crate) struct KktPolicyGuard(KktPolicy, Option<BlockHint>);

impl KktPolicyGuard {
    /// Also starts this thread's inertia-trial record afresh (skipping allowed or not).
    pub(crate) fn set(
        policy: KktPolicy,
        blocks: Option<BlockHint>,
        skip_unperturbed_trial: bool,
    ) -> Self {
        INERTIA_TRIALS.with(|t| t.set(InertiaTrials::new(skip_unperturbed_trial)));
        KKT_SOLVERS.with(|c| c.set(KktSolverCounts::default()));
        Self(
            KKT_POLICY.with(|p| p.replace(policy)),
            KKT_BLOCKS.with(|b| b.replace(blocks)),
        )
    }
}

impl Drop for KktPolicyGuard {
    fn drop(&mut self) {
        KKT_POLICY.with(|p| p.set(self.0));
        KKT_BLOCKS.with(|b| *b.borrow_mut() = self.1.take());
    }
}

/// Takes the replacement solver of instance `key` out of the registry (None: MUMPS answers).
fn take_replacement(key: usize) -> Option<Box<Replacement>> {
    let mut reg = REPLACEMENTS.lock().unwrap_or_else(|p| p.into_inner());
    reg.iter_mut()
        .find(|(k, _)| *k == key)
        .and_then(|(_, d)| d.take())
}

fn put_replacement(key: usize, solver: Option<Box<Replacement>>) {
    let mut reg = REPLACEMENTS.lock().unwrap_or_else(|p| p.into_inner());
    match reg.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = solver,
        None => reg.push((key, solver)),
    }
}

fn forget_replacement(key: usize) -> bool {
    let mut reg = REPLACEMENTS.lock().unwrap_or_else(|p| p.into_inner());
    let before = reg.len();
    reg.retain(|(k, _)| *k != key);
    reg.len() != before
}

/// Interposed MUMPS entry point. Calls of an instance whose analysis (JOB = 1) the solve's
/// [`KktPolicy`] sends to the dense solver are answered here (analysis, factorization with
/// INFOG(12) = number of negative pivots, INFO(1) = −10 when singular, solve); all other calls
/// are serialized and forwarded to the real MUMPS.
///
/// # Safety
/// Called by libipopt with a valid `DMUMPS_STRUC_C` pointer.
#[no_mangle]
pub unsafe extern "C" fn dmumps_c(id: *mut c_void) {
    let key = id as usize;
    let s = id as *mut DmumpsStrucPrefix;
    // SAFETY: `id` points to a DMUMPS_STRUC_C, whose prefix has this layout.
    let job = unsafe { (*s).job };
    match job {
        1 => {
            // SAFETY: IPOPT set n, nz, irn, jcn before the analysis.
            let (n, nz) = unsafe { ((*s).n, (*s).nz) };
            let policy = KKT_POLICY.with(std::cell::Cell::get);
            let block = KKT_BLOCKS.with(|b| {
                let b = b.borrow();
                let hint = b.as_ref()?;
                let (partition, n_vars) = (&hint.partition, &hint.n_vars);
                if n <= 0
                    || nz < 0
                    || !policy.use_blocks()
                    || n as usize != hint.n_vars + hint.n_cons
                {
                    return None;
                }
                // SAFETY: IPOPT set irn, jcn (nz entries) before the analysis.
                let (rows, cols) = unsafe {
                    (
                        slice_raw((*s).irn, nz as usize),
                        slice_raw((*s).jcn, nz as usize),
                    )
                };
                Some(match partition.coupling {
                    BlockCoupling::Chain => Replacement::Block(Box::new(BlockArrowLdlt::analyse(
                        n as usize, *n_vars, rows, cols, partition,
                    )?)),
                    BlockCoupling::Independent => Replacement::Schur(Box::new(SchurLdlt::analyse(
                        n as usize, *n_vars, rows, cols, partition,
                    )?)),
                    BlockCoupling::Square => Replacement::Square(Box::new(
                        SquareBlockLdlt::analyse(n as usize, *n_vars, rows, cols, partition)?,
                    )),
                })
            });
            if let Some(block) = block {
                put_replacement(key, Some(Box::new(block)));
                // SAFETY: INFO/INFOG are plain arrays in the struct.
                unsafe { set_info(s, 0) };
                return;
            }
            if n > 0 && nz >= 0 && policy.use_dense(n as usize, nz as usize) {
                put_replacement(
                    key,
                    Some(Box::new(Replacement::Dense(DenseLdlt::new(n as usize)))),
                );
                // SAFETY: as above; INFO/INFOG are plain arrays in the struct.
                unsafe { set_info(s, 0) };
                return;
            }
            forget_replacement(key);
        }
        2 | 3 => {
            if job == 2
                && INERTIA_TRIALS.with(|t| {
                    let mut r = t.get();
                    let skip = r.skip_this_factorization();
                    t.set(r);
                    skip
                })
            {
                // SAFETY: n is set; INFO/INFOG are plain arrays in the struct. Every eigenvalue
                // "negative" is a wrong inertia for any KKT matrix with variables; IPOPT then
                // perturbs and calls again (it never solves with a wrong-inertia factorization).
                unsafe {
                    (*s).infog[11] = (*s).n;
                    set_info(s, 0);
                }
                return;
            }
            if let Some(mut solver) = take_replacement(key) {
                // SAFETY: for JOB = 2 IPOPT has filled `a` (nz values) for the pattern
                // irn/jcn given at the analysis; for JOB = 3 `rhs` holds n values.
                unsafe {
                    let n = solver.order();
                    let code = if job == 2 {
                        let nz = (*s).nz.max(0) as usize;
                        let rows = slice_raw((*s).irn, nz);
                        let cols = slice_raw((*s).jcn, nz);
                        let vals = slice_raw((*s).a, nz);
                        let code = match solver.factorize(rows, cols, vals) {
                            Ok(inertia) => {
                                (*s).infog[11] = inertia.negative as c_int;
                                0
                            }
                            Err(_) => -10,
                        };
                        note_factorized(code == -10);
                        code
                    } else {
                        let rhs = std::slice::from_raw_parts_mut((*s).rhs, n);
                        if solver.solve(rhs) {
                            0
                        } else {
                            -1
                        }
                    };
                    set_info(s, code);
                }
                put_replacement(key, Some(solver));
                return;
            }
        }
        -2 => {
            forget_replacement(key);
        }
        _ => {}
    }
    let real = real_dmumps_c();
    // A panic cannot happen while the lock is held (the callee is C), so poisoning is moot.
    let _guard = MUMPS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    MUMPS_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: forwarding the caller's valid pointer to the real `dmumps_c`; afterwards INFO is
    // a plain array in the struct.
    let (info1, info2) = unsafe {
        real(id);
        ((*s).info[0], (*s).info[1])
    };
    if job == 2 {
        count_factorization(|c| &mut c.mumps);
        note_factorized(info1 == -10);
    }
    if info1 == -13 {
        MUMPS_MEMORY_FAILURE.with(|f| {
            if f.get().is_none() {
                f.set(Some((info1, info2)));
            }
        });
    }
}

/// Sets INFO(1) and INFOG(1).
///
/// # Safety
/// `s` points to a valid `DMUMPS_STRUC_C`.
unsafe fn set_info(s: *mut DmumpsStrucPrefix, code: c_int) {
    // SAFETY: see the function's contract.
    unsafe {
        (*s).info[0] = code;
        (*s).infog[0] = code;
    }
}

/// A slice over `len` elements at `ptr` (empty for a null pointer or zero length).
///
/// # Safety
/// A non-null `ptr` points to `len` initialized elements that outlive the slice.
unsafe fn slice_raw<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: see the function's contract.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

// ---------------------------------------------------------------------------------------------
// LAPACK (Bunch–Kaufman LDLᵀ), for the dense KKT solver.

extern "C" {
    fn dsytrf_(
        uplo: *const c_char,
        n: *const c_int,
        a: *mut f64,
        lda: *const c_int,
        ipiv: *mut c_int,
        work: *mut f64,
        lwork: *const c_int,
        info: *mut c_int,
    );
    fn dsytrs_(
        uplo: *const c_char,
        n: *const c_int,
        nrhs: *const c_int,
        a: *const f64,
        lda: *const c_int,
        ipiv: *const c_int,
        b: *mut f64,
        ldb: *const c_int,
        info: *mut c_int,
    );
    fn dsytrs2_(
        uplo: *const c_char,
        n: *const c_int,
        nrhs: *const c_int,
        a: *mut f64,
        lda: *const c_int,
        ipiv: *const c_int,
        b: *mut f64,
        ldb: *const c_int,
        work: *mut f64,
        info: *mut c_int,
    );
    fn dgetrf_(
        m: *const c_int,
        n: *const c_int,
        a: *mut f64,
        lda: *const c_int,
        ipiv: *mut c_int,
        info: *mut c_int,
    );
    fn dgetrs_(
        trans: *const c_char,
        n: *const c_int,
        nrhs: *const c_int,
        a: *const f64,
        lda: *const c_int,
        ipiv: *const c_int,
        b: *mut f64,
        ldb: *const c_int,
        info: *mut c_int,
    );
    fn dsytri_(
        uplo: *const c_char,
        n: *const c_int,
        a: *mut f64,
        lda: *const c_int,
        ipiv: *const c_int,
        work: *mut f64,
        info: *mut c_int,
    );
}

extern "C" {
    fn dgemm_(
        transa: *const c_char,
        transb: *const c_char,
        m: *const c_int,
        n: *const c_int,
        k: *const c_int,
        alpha: *const f64,
        a: *const f64,
        lda: *const c_int,
        b: *const f64,
        ldb: *const c_int,
        beta: *const f64,
        c: *mut f64,
        ldc: *const c_int,
    );
    fn dsyrk_(
        uplo: *const c_char,
        trans: *const c_char,
        n: *const c_int,
        k: *const c_int,
        alpha: *const f64,
        a: *const f64,
        lda: *const c_int,
        beta: *const f64,
        c: *mut f64,
        ldc: *const c_int,
    );
    fn dsyr2k_(
        uplo: *const c_char,
        trans: *const c_char,
        n: *const c_int,
        k: *const c_int,
        alpha: *const f64,
        a: *const f64,
        lda: *const c_int,
        b: *const f64,
        ldb: *const c_int,
        beta: *const f64,
        c: *mut f64,
        ldc: *const c_int,
    );
    fn dpotrf_(
        uplo: *const c_char,
        n: *const c_int,
        a: *mut f64,
        lda: *const c_int,
        info: *mut c_int,
    );
    fn dpotrs_(
        uplo: *const c_char,
        n: *const c_int,
        nrhs: *const c_int,
        a: *const f64,
        lda: *const c_int,
        b: *mut f64,
        ldb: *const c_int,
        info: *mut c_int,
    );
}

/// BLAS `dsyrk('L', 'T')`: the lower triangle of `c` (n×n, column-major) becomes
/// `alpha·aᵀ·a + beta·c` for the column-major k×n matrix `a`.
pub(crate) fn blas_dsyrk_lower_t(
    n: usize,
    k: usize,
    alpha: f64,
    a: &[f64],
    beta: f64,
    c: &mut [f64],
) {
    assert!(a.len() >= n * k && c.len() >= n * n);
    if n == 0 {
        return;
    }
    let (ni, ki, lda) = (n as c_int, k as c_int, k.max(1) as c_int);
    // SAFETY: the slices have the sizes BLAS reads and writes (checked above).
    unsafe {
        dsyrk_(
            c"L".as_ptr(),
            c"T".as_ptr(),
            &ni,
            &ki,
            &alpha,
            a.as_ptr(),
            &lda,
            &beta,
            c.as_mut_ptr(),
            &ni,
        );
    }
}

/// BLAS `dsyr2k('U', 'T')`: the upper triangle of `c` (n×n, column-major) becomes
/// `alpha·(aᵀ·b + bᵀ·a) + beta·c` for the column-major k×n matrices `a` and `b`.
pub(crate) fn blas_dsyr2k_upper_t(
    n: usize,
    k: usize,
    alpha: f64,
    a: &[f64],
    b: &[f64],
    beta: f64,
    c: &mut [f64],
) {
    if n == 0 {
        return;
    }
    assert!(a.len() >= n * k && b.len() >= n * k && c.len() >= n * n);
    let (ni, ki, lk) = (n as c_int, k as c_int, k.max(1) as c_int);
    // SAFETY: the slices cover every element BLAS reads and writes (checked above).
    unsafe {
        dsyr2k_(
            c"U".as_ptr(),
            c"T".as_ptr(),
            &ni,
            &ki,
            &alpha,
            a.as_ptr(),
            &lk,
            b.as_ptr(),
            &lk,
            &beta,
            c.as_mut_ptr(),
            &ni,
        );
    }
}

/// BLAS `dgemm`: `c ← alpha·op(a)·op(b) + beta·c` with `op(x) = xᵀ` when its flag is set;
/// `op(a)` is m×k, `op(b)` k×n, `c` m×n, all column-major with the given leading dimensions.
#[allow(clippy::too_many_arguments)]
pub(crate) fn blas_dgemm(
    (ta, tb): (bool, bool),
    (m, n, k): (usize, usize, usize),
    alpha: f64,
    (a, lda): (&[f64], usize),
    (b, ldb): (&[f64], usize),
    beta: f64,
    (c, ldc): (&mut [f64], usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    // Stored shapes: a is (rows × cols) = (k × m) when transposed, else (m × k); same for b.
    let (ar, ac) = if ta { (k, m) } else { (m, k) };
    let (br, bc) = if tb { (n, k) } else { (k, n) };
    assert!(lda >= ar.max(1) && ldb >= br.max(1) && ldc >= m);
    assert!(ac == 0 || a.len() >= lda * (ac - 1) + ar);
    assert!(bc == 0 || b.len() >= ldb * (bc - 1) + br);
    assert!(c.len() >= ldc * (n - 1) + m);
    let flag = |t: bool| if t { c"T".as_ptr() } else { c"N".as_ptr() };
    let (mi, ni, ki) = (m as c_int, n as c_int, k as c_int);
    let (la, lb, lc) = (lda.max(1) as c_int, ldb.max(1) as c_int, ldc as c_int);
    // SAFETY: the slices cover every element BLAS reads and writes (checked above).
    unsafe {
        dgemm_(
            flag(ta),
            flag(tb),
            &mi,
            &ni,
            &ki,
            &alpha,
            a.as_ptr(),
            &la,
            b.as_ptr(),
            &lb,
            &beta,
            c.as_mut_ptr(),
            &lc,
        );
    }
}

/// LAPACK `dpotrf('L')` on the column-major n×n `a`; returns INFO (> 0: not positive definite).
pub(crate) fn lapack_dpotrf(n: usize, a: &mut [f64]) -> c_int {
    assert!(a.len() >= n * n);
    let (ni, lda) = (n as c_int, n.max(1) as c_int);
    let mut info: c_int = 0;
    // SAFETY: the slice has the size LAPACK reads and writes (checked above).
    unsafe { dpotrf_(c"L".as_ptr(), &ni, a.as_mut_ptr(), &lda, &mut info) };
    info
}

/// LAPACK `dpotrs('L')` for one right-hand side with the output of [`lapack_dpotrf`].
pub(crate) fn lapack_dpotrs(n: usize, a: &[f64], b: &mut [f64]) -> c_int {
    assert!(a.len() >= n * n && b.len() >= n);
    let (ni, lda, one) = (n as c_int, n.max(1) as c_int, 1 as c_int);
    let mut info: c_int = 0;
    // SAFETY: the slices have the sizes LAPACK reads and writes (checked above).
    unsafe {
        dpotrs_(
            c"L".as_ptr(),
            &ni,
            &one,
            a.as_ptr(),
            &lda,
            b.as_mut_ptr(),
            &lda,
            &mut info,
        )
    };
    info
}

/// Result of [`lapack_dsytrf`].
pub(crate) struct DsytrfOutput {
    /// LAPACK's INFO.
    pub info: c_int,
    /// WORK(1): the optimal workspace size (after a query).
    pub work_size: f64,
}

/// `dsytrf('U')` on the column-major n×n `a`; `query` asks for the workspace size only.
pub(crate) fn lapack_dsytrf(
    n: usize,
    a: &mut [f64],
    ipiv: &mut [c_int],
    work: &mut [f64],
    query: bool,
) -> DsytrfOutput {
    assert!(a.len() >= n * n && ipiv.len() >= n && !work.is_empty());
    let (ni, lda) = (n as c_int, n.max(1) as c_int);
    let lwork: c_int = if query { -1 } else { work.len() as c_int };
    let mut info: c_int = 0;
    // SAFETY: the slices have the sizes LAPACK reads and writes (checked above).
    unsafe {
        dsytrf_(
            c"U".as_ptr(),
            &ni,
            a.as_mut_ptr(),
            &lda,
            ipiv.as_mut_ptr(),
            work.as_mut_ptr(),
            &lwork,
            &mut info,
        );
    }
    DsytrfOutput {
        info,
        work_size: work[0],
    }
}

/// `dsytri('U')`: overwrites the output of [`lapack_dsytrf`] with the upper triangle of the
/// inverse (`work` holds at least n values); returns INFO.
pub(crate) fn lapack_dsytri(n: usize, a: &mut [f64], ipiv: &[c_int], work: &mut [f64]) -> c_int {
    if n == 0 {
        return 0;
    }
    assert!(a.len() >= n * n && ipiv.len() >= n && work.len() >= n);
    let ni = n as c_int;
    let mut info: c_int = 0;
    // SAFETY: the slices have the sizes LAPACK reads and writes (checked above).
    unsafe {
        dsytri_(
            c"U".as_ptr(),
            &ni,
            a.as_mut_ptr(),
            &ni,
            ipiv.as_ptr(),
            work.as_mut_ptr(),
            &mut info,
        );
    }
    info
}

/// `dsytrs('U')` for one right-hand side with the output of [`lapack_dsytrf`]; returns INFO.
pub(crate) fn lapack_dsytrs(n: usize, a: &[f64], ipiv: &[c_int], b: &mut [f64]) -> c_int {
    lapack_dsytrs_many(n, a, ipiv, (b, n.max(1)), 1)
}

/// `dsytrs('U')` for `nrhs` right-hand sides, the columns of the column-major `b` with leading
/// dimension `ldb`; returns INFO.
pub(crate) fn lapack_dsytrs_many(
    n: usize,
    a: &[f64],
    ipiv: &[c_int],
    (b, ldb): (&mut [f64], usize),
    nrhs: usize,
) -> c_int {
    if n == 0 || nrhs == 0 {
        return 0;
    }
    assert!(a.len() >= n * n && ipiv.len() >= n && ldb >= n);
    assert!(b.len() >= ldb * (nrhs - 1) + n);
    let (ni, lda, nr, lb) = (n as c_int, n as c_int, nrhs as c_int, ldb as c_int);
    let mut info: c_int = 0;
    // SAFETY: the slices have the sizes LAPACK reads and writes (checked above).
    unsafe {
        dsytrs_(
            c"U".as_ptr(),
            &ni,
            &nr,
            a.as_ptr(),
            &lda,
            ipiv.as_ptr(),
            b.as_mut_ptr(),
            &lb,
            &mut info,
        );
    }
    info
}

/// LAPACK `dgetrf`: LU with partial pivoting of the column-major n×n `a`; returns INFO
/// (> 0: an exactly zero pivot).
pub(crate) fn lapack_dgetrf(n: usize, a: &mut [f64], ipiv: &mut [c_int]) -> c_int {
    if n == 0 {
        return 0;
    }
    assert!(a.len() >= n * n && ipiv.len() >= n);
    let ni = n as c_int;
    let mut info: c_int = 0;
    // SAFETY: the slices have the sizes LAPACK reads and writes (checked above).
    unsafe { dgetrf_(&ni, &ni, a.as_mut_ptr(), &ni, ipiv.as_mut_ptr(), &mut info) };
    info
}

/// LAPACK `dgetrs` with the output of [`lapack_dgetrf`]: solves `A·X = B` (or `Aᵀ·X = B` when
/// `transpose`) for the `nrhs` columns of the column-major n × nrhs `b`; returns INFO.
pub(crate) fn lapack_dgetrs(
    transpose: bool,
    n: usize,
    nrhs: usize,
    a: &[f64],
    ipiv: &[c_int],
    b: &mut [f64],
) -> c_int {
    if n == 0 || nrhs == 0 {
        return 0;
    }
    assert!(a.len() >= n * n && ipiv.len() >= n && b.len() >= n * nrhs);
    let (ni, nr) = (n as c_int, nrhs as c_int);
    let flag = if transpose {
        c"T".as_ptr()
    } else {
        c"N".as_ptr()
    };
    let mut info: c_int = 0;
    // SAFETY: the slices have the sizes LAPACK reads and writes (checked above).
    unsafe {
        dgetrs_(
            flag,
            &ni,
            &nr,
            a.as_ptr(),
            &ni,
            ipiv.as_ptr(),
            b.as_mut_ptr(),
            &ni,
            &mut info,
        )
    };
    info
}

/// `dsytrs2('U')`: the blocked (BLAS-3) solve for the `nrhs` columns of the column-major `b`
/// (leading dimension `n`) with the output of [`lapack_dsytrf`]. LAPACK converts `a` in place
/// while it works and restores it before returning; `work` holds at least n values. Returns
/// INFO.
pub(crate) fn lapack_dsytrs2(
    n: usize,
    a: &mut [f64],
    ipiv: &[c_int],
    b: &mut [f64],
    nrhs: usize,
    work: &mut [f64],
) -> c_int {
    if n == 0 || nrhs == 0 {
        return 0;
    }
    assert!(a.len() >= n * n && ipiv.len() >= n && work.len() >= n && b.len() >= n * nrhs);
    let (ni, nr) = (n as c_int, nrhs as c_int);
    let mut info: c_int = 0;
    // SAFETY: the slices have the sizes LAPACK reads and writes (checked above).
    unsafe {
        dsytrs2_(
            c"U".as_ptr(),
            &ni,
            &nr,
            a.as_mut_ptr(),
            &ni,
            ipiv.as_ptr(),
            b.as_mut_ptr(),
            &ni,
            work.as_mut_ptr(),
            &mut info,
        );
    }
    info
}

// ---------------------------------------------------------------------------------------------
// BLAS threads. OpenBLAS reads OPENBLAS_NUM_THREADS when it is loaded, before `main`; to choose
// from inside the process we call its `openblas_set_num_threads` if that symbol is present
// (it is absent with the reference BLAS, where there is nothing to set).

/// glibc's `RTLD_DEFAULT`: search the global scope.
const RTLD_DEFAULT: *mut c_void = std::ptr::null_mut();

/// Whether the program (or its environment, `OPENBLAS_NUM_THREADS`) chose the number of BLAS
/// threads; otherwise [`default_blas_threads`] sets one before the first factorization.
static BLAS_THREADS_CHOSEN: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);
static BLAS_THREADS_DEFAULTED: std::sync::Once = std::sync::Once::new();

/// Before the first BLAS/LAPACK call of colloc's own: one OpenBLAS thread unless the program
/// called [`set_openblas_threads`] or the environment set `OPENBLAS_NUM_THREADS`. Threaded
/// OpenBLAS 0.3.21 (Debian 12) factorizes with `dgetrf_parallel`, whose recursion needs more
/// stack than the 2 MB Rust gives spawned threads (test threads, rayon workers): SIGSEGV in
/// 41 of 100 runs of `tests/problems.rs`, none with 64 MB stacks or with one BLAS thread.
pub(crate) fn default_blas_threads() {
    BLAS_THREADS_DEFAULTED.call_once(|| {
        if !BLAS_THREADS_CHOSEN.load(std::sync::atomic::Ordering::SeqCst)
            && std::env::var_os("OPENBLAS_NUM_THREADS").is_none()
        {
            set_openblas_threads_raw(1);
        }
    });
}

/// Sets the number of OpenBLAS threads (the program's choice, kept from then on); returns false
/// when the BLAS is not OpenBLAS.
pub(crate) fn set_openblas_threads(n: usize) -> bool {
    BLAS_THREADS_CHOSEN.store(true, std::sync::atomic::Ordering::SeqCst);
    set_openblas_threads_raw(n)
}

fn set_openblas_threads_raw(n: usize) -> bool {
    // SAFETY: a valid NUL-terminated symbol name.
    let f = unsafe { dlsym(RTLD_DEFAULT, c"openblas_set_num_threads".as_ptr()) };
    if f.is_null() {
        return false;
    }
    // SAFETY: OpenBLAS exports `void openblas_set_num_threads(int)`.
    unsafe {
        let f = std::mem::transmute::<*mut c_void, unsafe extern "C" fn(c_int)>(f);
        f(n.clamp(1, c_int::MAX as usize) as c_int);
    }
    true
}

// ---------------------------------------------------------------------------------------------
// Memory reuse. glibc serves large requests (≥ 32 MB always, smaller ones adaptively) with fresh
// `mmap`s and returns them on `free`, so every IPOPT iteration that allocates a Jacobian or
// Hessian value array of tens of MB pays for the kernel zeroing new pages (15 % of a profile of a
// 20,000-point solve). `mallopt` makes glibc keep and reuse them, for the whole process; without
// glibc's `mallopt` nothing is done.

/// glibc's `M_TRIM_THRESHOLD` and `M_MMAP_MAX` (`malloc.h`).
const M_TRIM_THRESHOLD: c_int = -1;
const M_MMAP_MAX: c_int = -4;

/// Asks glibc's allocator to serve every request from its heap and keep freed memory for reuse
/// (`mallopt(M_MMAP_MAX, 0)`, `mallopt(M_TRIM_THRESHOLD, 1 GiB)`); false when the C library
/// has no `mallopt` or refuses.
pub(crate) fn malloc_retain_freed_memory() -> bool {
    // SAFETY: a valid NUL-terminated symbol name.
    let f = unsafe { dlsym(RTLD_DEFAULT, c"mallopt".as_ptr()) };
    if f.is_null() {
        return false;
    }
    // SAFETY: glibc exports `int mallopt(int param, int value)`; both settings are documented
    // and may be changed at any time.
    unsafe {
        let f = std::mem::transmute::<*mut c_void, unsafe extern "C" fn(c_int, c_int) -> c_int>(f);
        f(M_MMAP_MAX, 0) == 1 && f(M_TRIM_THRESHOLD, 1 << 30) == 1
    }
}

/// The core OpenBLAS selected for its kernels (`openblas_get_corename`), if OpenBLAS is loaded.
pub(crate) fn openblas_core_name() -> Option<String> {
    // SAFETY: a valid NUL-terminated symbol name.
    let f = unsafe { dlsym(RTLD_DEFAULT, c"openblas_get_corename".as_ptr()) };
    if f.is_null() {
        return None;
    }
    // SAFETY: OpenBLAS exports `char* openblas_get_corename(void)` returning a static string.
    unsafe {
        let f = std::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> *const c_char>(f);
        let p = f();
        (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::{DmumpsStrucPrefix, InertiaTrials, SKIP_AFTER_FAILED_TRIALS};
    use std::mem::offset_of;

    /// One iterate with `n` factorization requests; returns how many were skipped.
    fn iterate(t: &mut InertiaTrials, n: usize, restoration: bool) -> usize {
        *t = t.new_iterate(restoration);
        (0..n).filter(|_| t.skip_this_factorization()).count()
    }

    #[test]
    fn unperturbed_trials_are_skipped_only_after_repeated_failures() {
        let mut t = InertiaTrials::new(true);
        // Iterates whose unperturbed trial fails (two or more factorizations each).
        for _ in 0..SKIP_AFTER_FAILED_TRIALS {
            assert_eq!(iterate(&mut t, 2, false), 0);
        }
        // Now the first request of each iterate is skipped, never a later one.
        assert_eq!(iterate(&mut t, 2, false), 1);
        assert_eq!(iterate(&mut t, 1, false), 1);
        // Restoration iterates are never skipped and leave the record alone.
        assert_eq!(iterate(&mut t, 3, true), 0);
        assert_eq!(iterate(&mut t, 1, false), 1);
        assert_eq!(
            (t.factorizations, t.skipped),
            (8, 3),
            "2 + 2 + 1 real, 3 in restoration"
        );

        // An unperturbed trial that succeeds (one factorization) resets the streak.
        let mut t = InertiaTrials::new(true);
        iterate(&mut t, 2, false);
        iterate(&mut t, 1, false);
        iterate(&mut t, 2, false);
        assert_eq!(
            iterate(&mut t, 2, false),
            0,
            "one failure since the success"
        );

        // A singular first factorization (IPOPT's degeneracy tests follow) does not count.
        let mut t = InertiaTrials::new(true);
        for _ in 0..5 {
            t = t.new_iterate(false);
            assert!(!t.skip_this_factorization());
            t.factorized(true);
            assert!(!t.skip_this_factorization());
            t.factorized(false);
        }
        assert_eq!((t.failed_streak, t.skipped), (0, 0));

        // Disabled: nothing is skipped.
        let mut t = InertiaTrials::new(false);
        let skipped: usize = (0..10).map(|_| iterate(&mut t, 2, false)).sum();
        assert_eq!((skipped, t.factorizations), (0, 20));
    }

    #[test]
    fn mumps_struct_prefix_matches_the_c_header() {
        // Offsets printed by a C program with offsetof() on MUMPS 5.5.1's dmumps_c.h (x86-64).
        assert_eq!(offset_of!(DmumpsStrucPrefix, job), 8);
        assert_eq!(offset_of!(DmumpsStrucPrefix, n), 5416);
        assert_eq!(offset_of!(DmumpsStrucPrefix, nz), 5428);
        assert_eq!(offset_of!(DmumpsStrucPrefix, nnz), 5432);
        assert_eq!(offset_of!(DmumpsStrucPrefix, irn), 5440);
        assert_eq!(offset_of!(DmumpsStrucPrefix, a), 5456);
        assert_eq!(offset_of!(DmumpsStrucPrefix, rhs), 5600);
        assert_eq!(offset_of!(DmumpsStrucPrefix, nrhs), 5672);
        assert_eq!(offset_of!(DmumpsStrucPrefix, info), 5728);
        assert_eq!(offset_of!(DmumpsStrucPrefix, infog), 6048);
    }
}
