//! The only `unsafe` code of colloc: declarations of IPOPT's C interface (`IpStdCInterface.h`,
//! Ipopt 3.11) and the trampolines that call a Rust [`NlpEvaluator`] from IPOPT's callbacks.
//!
//! [`solve_raw`] is the one entry point: it creates an `IpoptProblem`, sets options, runs
//! `IpoptSolve` with a pointer to a [`CallbackState`] as user data, and frees the problem on
//! every path. Trampolines never unwind into C: panics are caught and recorded.
#![allow(unsafe_code)]

use super::info::IterationInfo;
use super::settings::IpoptOption;
use super::CallbackState;
use crate::nlp::NlpEvaluator;
use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
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
            let state = &*(ud as *const CallbackState<'_, '_, E>);
            let len = nele.max(0) as usize;
            std::slice::from_raw_parts_mut(i_row, len).copy_from_slice(&state.jac_rows);
            std::slice::from_raw_parts_mut(j_col, len).copy_from_slice(&state.jac_cols);
            return TRUE;
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
            let state = &*(ud as *const CallbackState<'_, '_, E>);
            let len = nele.max(0) as usize;
            std::slice::from_raw_parts_mut(i_row, len).copy_from_slice(&state.hess_rows);
            std::slice::from_raw_parts_mut(j_col, len).copy_from_slice(&state.hess_cols);
            return TRUE;
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

/// Interposed MUMPS entry point: serializes the call, then forwards it.
///
/// # Safety
/// Called by libipopt with a valid `DMUMPS_STRUC_C` pointer, which is forwarded unchanged.
#[no_mangle]
pub unsafe extern "C" fn dmumps_c(id: *mut c_void) {
    let real = *REAL_DMUMPS_C.get_or_init(|| {
        // SAFETY: a valid NUL-terminated symbol name; RTLD_NEXT skips this definition.
        unsafe { dlsym(RTLD_NEXT, c"dmumps_c".as_ptr()) as usize }
    });
    if real == 0 {
        // No real MUMPS loaded after us: nothing sensible to call. IPOPT only calls this when
        // it was linked against MUMPS, so this cannot happen with a working installation.
        std::process::abort();
    }
    // A panic cannot happen while the lock is held (the callee is C), so poisoning is moot.
    let _guard = MUMPS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    MUMPS_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: `real` is the address of the real `dmumps_c`, which has this signature.
    unsafe {
        let f: DmumpsC = std::mem::transmute::<usize, DmumpsC>(real);
        f(id)
    }
}

// ---------------------------------------------------------------------------------------------
// BLAS threads. OpenBLAS reads OPENBLAS_NUM_THREADS when it is loaded, before `main`; to choose
// from inside the process we call its `openblas_set_num_threads` if that symbol is present
// (it is absent with the reference BLAS, where there is nothing to set).

/// glibc's `RTLD_DEFAULT`: search the global scope.
const RTLD_DEFAULT: *mut c_void = std::ptr::null_mut();

/// Sets the number of OpenBLAS threads; returns false when the BLAS is not OpenBLAS.
pub(crate) fn set_openblas_threads(n: usize) -> bool {
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
