//! Runs a loop compiled for the widest vector instructions the CPU has.
//!
//! colloc is built for the baseline x86-64 (SSE2, two `f64` per instruction), so that one
//! binary runs on any x86-64 machine. [`with_avx2`] calls a closure through a copy compiled
//! with AVX2 (four `f64`) when the running CPU has it. Only elementwise loops belong here:
//! the instructions differ, the IEEE operations and their order do not (Rust never fuses a
//! multiply and an add on its own), so both copies give the same bits.
//!
//! The one `unsafe` of this crate: calling a `#[target_feature]` function, which is sound
//! only after checking that the CPU has the feature.
#![allow(unsafe_code)]

/// Calls `body`, compiled with AVX2 enabled when the CPU supports it. `body` must be
/// `#[inline(always)]` code (a closure over an inlined loop) for the wider copy to exist.
#[inline(always)]
pub(crate) fn with_avx2<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { avx2(body) };
        }
    }
    body()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn avx2<R>(body: impl FnOnce() -> R) -> R {
    body()
}
