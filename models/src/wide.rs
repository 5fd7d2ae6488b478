//! Runs a loop compiled for the widest vector instructions the CPU has.
//!
//! colloc is built for the baseline x86-64 (SSE2, two `f64` per instruction), so that one
//! binary runs on any x86-64 machine. [`with_wide_vectors`] calls a closure through a copy
//! compiled with AVX-512F (eight `f64`) or AVX2 (four) when the running CPU has it. Only
//! elementwise loops belong here: the instructions differ, the IEEE operations and their order
//! do not (Rust never fuses a multiply and an add on its own), so every copy gives the same
//! bits. Measured on an Intel Xeon with AVX-512 (2026-11-29, `farm-bench -n 8` of `epoch_cost 1
//! 4000 1`, the three Lotka–Volterra trainers): AVX-512F / AVX2 median wall ratio 0.885; the
//! same `model.json` bytes from `colloc solve` and `colloc train`.
//!
//! The one `unsafe` of this crate: calling a `#[target_feature]` function, which is sound
//! only after checking that the CPU has the feature.
#![allow(unsafe_code)]

/// Calls `body`, compiled with AVX-512F or AVX2 enabled when the CPU supports it. `body` must
/// be `#[inline(always)]` code (a closure over an inlined loop) for the wider copies to exist.
#[inline(always)]
pub(crate) fn with_wide_vectors<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            return unsafe { avx512(body) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { avx2(body) };
        }
    }
    body()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn avx512<R>(body: impl FnOnce() -> R) -> R {
    body()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn avx2<R>(body: impl FnOnce() -> R) -> R {
    body()
}
