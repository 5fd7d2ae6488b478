//! Accelerations of the ADMM map `(θ̄, u) ↦ (θ̄⁺, u⁺)`: Anderson mixing and Nesterov
//! momentum with restart, on the packed vector `z = (θ̄, u_1/s, …, u_N/s)`.

use super::anderson::Anderson;
use super::momentum::Momentum;
use super::{norm, AdmmState};

/// One Anderson step on `z = (θ̄, u_1/ρ, …, u_N/ρ)`: `(previous, previous_duals)` is the
/// iterate the sub-problems were solved at, `state` holds its image under the ADMM update and
/// receives the accelerated iterate. Safeguard: the history is dropped when the fixed-point
/// residual `‖T(z) − z‖` more than doubles.
pub(super) fn accelerate(
    state: &mut AdmmState,
    previous: &[f64],
    previous_duals: &[Vec<f64>],
    memory: usize,
) {
    let rho = state.rho;
    let z = pack(previous, previous_duals, rho);
    let tz = pack(&state.consensus, &state.duals, rho);
    let acc = state.anderson.get_or_insert_with(|| Anderson::new(memory));
    let residual = norm(tz.iter().zip(&z).map(|(a, b)| a - b));
    if let Some(last) = acc.residuals.last() {
        if residual > 2.0 * norm(last.iter().copied()) {
            acc.reset();
        }
    }
    let next = acc.step(&z, &tz);
    unpack(state, &next, rho);
}

/// `z = (θ̄, u_1/s, …, u_N/s)`: the consensus and the duals divided by `dual_scale`, in one
/// vector (the accelerations' variable).
fn pack(consensus: &[f64], duals: &[Vec<f64>], dual_scale: f64) -> Vec<f64> {
    let mut z = consensus.to_vec();
    for u in duals {
        z.extend(u.iter().map(|v| v / dual_scale));
    }
    z
}

/// The inverse of [`pack`]: θ̄ and `u_i = s · z_i` into `state`.
fn unpack(state: &mut AdmmState, z: &[f64], dual_scale: f64) {
    let p = state.consensus.len();
    state.consensus.copy_from_slice(&z[..p]);
    for (i, u) in state.duals.iter_mut().enumerate() {
        for (v, w) in u.iter_mut().zip(&z[p * (i + 1)..p * (i + 2)]) {
            *v = dual_scale * w;
        }
    }
}

/// One Nesterov step with restart on `z = (θ̄, u_1, …, u_N)` (Goldstein et al. 2014, Alg. 8):
/// `(previous, previous_duals)` is the point the sub-problems were solved at, `state` holds
/// the ADMM update `z_k` and receives the point for the next sub-problems.
pub(super) fn extrapolate(
    state: &mut AdmmState,
    previous: &[f64],
    previous_duals: &[Vec<f64>],
    restart_factor: f64,
) {
    let rho = state.rho;
    let n = state.duals.len() as f64;
    let squared =
        |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum() };
    let dual_change: f64 = state
        .duals
        .iter()
        .zip(previous_duals)
        .map(|(u, v)| squared(u, v))
        .sum();
    let combined = dual_change / rho + rho * n * squared(&state.consensus, previous);
    let mut z = pack(&state.consensus, &state.duals, 1.0);
    match &mut state.momentum {
        Some(m) => m.advance(combined, restart_factor, &mut z),
        None => state.momentum = Some(Momentum::new(combined, &z)),
    }
    unpack(state, &z, 1.0);
}
