//! Smoothing of noisy observations, used to start the collocation states.

use crate::problem::{Smoothing, SmoothingMethod};

/// Local linear regression with a Gaussian kernel of width `bandwidth`, evaluated at `at`:
/// for each evaluation time, the weighted least-squares line through the observations.
/// Unlike a kernel mean it has no bias at the ends of the window. Falls back to the kernel
/// mean where the local design is singular. With ascending `t`, only the observations within
/// 10 bandwidths are summed (the others weigh below 2e-22), so the cost is linear in the number
/// of evaluation times.
pub fn local_linear(t: &[f64], y: &[f64], at: &[f64], bandwidth: f64) -> Vec<f64> {
    let ascending = t.windows(2).all(|w| w[0] <= w[1]);
    at.iter()
        .map(|&s| {
            let window = kernel_window(t, ascending, s, bandwidth);
            let (mut sw, mut swx, mut swxx, mut swy, mut swxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (&tk, &yk) in t[window.clone()].iter().zip(&y[window]) {
                let x = tk - s;
                let w = (-0.5 * (x / bandwidth).powi(2)).exp();
                sw += w;
                swx += w * x;
                swxx += w * x * x;
                swy += w * yk;
                swxy += w * x * yk;
            }
            let det = sw * swxx - swx * swx;
            if det.abs() > 1e-12 * sw * swxx.max(1e-300) {
                (swxx * swy - swx * swxy) / det
            } else if sw > 0.0 {
                swy / sw
            } else {
                0.0
            }
        })
        .collect()
}

/// The observations within 10 bandwidths of `s` (all of them when `t` is not ascending).
fn kernel_window(t: &[f64], ascending: bool, s: f64, bandwidth: f64) -> std::ops::Range<usize> {
    if ascending {
        let reach = 10.0 * bandwidth;
        t.partition_point(|&tk| tk < s - reach)..t.partition_point(|&tk| tk <= s + reach)
    } else {
        0..t.len()
    }
}

/// Leave-one-out cross-validation score of [`local_linear`] with `bandwidth` on the
/// observations `(t, y)` of every series in `ys`: the mean of `((y_k − ŷ_k)/(1 − H_kk))²`,
/// where `H_kk` is the weight of `y_k` in its own fit (the exact leave-one-out residual of a
/// linear smoother), with the observations [`local_linear`] would sum. Infinite when some
/// point is fitted by itself alone (`H_kk ≈ 1`).
pub fn leave_one_out_score(t: &[f64], ys: &[Vec<f64>], bandwidth: f64) -> f64 {
    let ascending = t.windows(2).all(|w| w[0] <= w[1]);
    let mut total = 0.0;
    let mut count = 0usize;
    for (k, &s) in t.iter().enumerate() {
        let window = kernel_window(t, ascending, s, bandwidth);
        let (mut sw, mut swx, mut swxx) = (0.0, 0.0, 0.0);
        let mut weights = Vec::with_capacity(window.len());
        for &tk in &t[window.clone()] {
            let x = tk - s;
            let w = (-0.5 * (x / bandwidth).powi(2)).exp();
            sw += w;
            swx += w * x;
            swxx += w * x * x;
            weights.push((w, x));
        }
        let det = sw * swxx - swx * swx;
        if det.abs() <= 1e-12 * sw * swxx.max(1e-300) {
            return f64::INFINITY;
        }
        // ŷ(s) = Σ_j l_j y_j with l_j = w_j (swxx − swx x_j)/det; H_kk = l_k (x_k = 0, w_k = 1).
        let h_kk = swxx / det;
        if h_kk >= 1.0 - 1e-9 {
            return f64::INFINITY;
        }
        for y in ys {
            let fit: f64 = weights
                .iter()
                .zip(&y[window.clone()])
                .map(|(&(w, x), yj)| w * (swxx - swx * x) / det * yj)
                .sum();
            total += ((y[k] - fit) / (1.0 - h_kk)).powi(2);
            count += 1;
        }
    }
    total / count.max(1) as f64
}

/// The bandwidth among `factors × mean spacing` with the smallest
/// [`leave_one_out_score`] over all series (the first factor when none is finite).
pub fn cross_validated_bandwidth(t: &[f64], ys: &[Vec<f64>], factors: &[f64]) -> f64 {
    let mut best = (f64::INFINITY, bandwidth_from_spacing(t, factors[0]));
    for &f in factors {
        let bw = bandwidth_from_spacing(t, f);
        let score = leave_one_out_score(t, ys, bw);
        if score < best.0 {
            best = (score, bw);
        }
    }
    best.1
}

/// The bandwidth `[solver] smoothing` asks for on observations `ys` (one series per state)
/// at times `t`: a factor of the mean spacing, or cross-validated among 0.5 · 1.2^i (i < 15)
/// times it.
pub fn bandwidth(smoothing: Smoothing, t: &[f64], ys: &[Vec<f64>]) -> f64 {
    match smoothing {
        Smoothing::Factor(f) => bandwidth_from_spacing(t, f),
        Smoothing::Method(SmoothingMethod::Cv) => {
            let factors: Vec<f64> = (0..15).map(|i| 0.5 * 1.2f64.powi(i)).collect();
            cross_validated_bandwidth(t, ys, &factors)
        }
    }
}

/// A bandwidth of `factor` times the mean spacing of `t`.
pub fn bandwidth_from_spacing(t: &[f64], factor: f64) -> f64 {
    let span = t.last().copied().unwrap_or(1.0) - t.first().copied().unwrap_or(0.0);
    factor * span / (t.len().max(2) - 1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leave_one_out_score_equals_refitting_without_each_point() {
        let t: Vec<f64> = (0..15).map(|k| (k as f64 * 0.37).powf(1.2)).collect();
        let y: Vec<f64> = t.iter().map(|x| x.cos() + 0.1 * (7.0 * x).sin()).collect();
        let bw = 0.6;
        let mut explicit = 0.0;
        for k in 0..t.len() {
            let (tk, yk): (Vec<f64>, Vec<f64>) = t
                .iter()
                .zip(&y)
                .enumerate()
                .filter(|(j, _)| *j != k)
                .map(|(_, (a, b))| (*a, *b))
                .unzip();
            let fit = local_linear(&tk, &yk, &[t[k]], bw)[0];
            explicit += (y[k] - fit).powi(2);
        }
        explicit /= t.len() as f64;
        let score = leave_one_out_score(&t, &[y], bw);
        assert!(
            (score - explicit).abs() < 1e-12 * explicit,
            "{score} vs {explicit}"
        );
    }

    #[test]
    fn cross_validation_smooths_more_the_noisier_the_data() {
        // A fast sine sampled at 40 points: without noise the best smoother follows the data
        // closely; with noise it averages over more neighbours.
        let t: Vec<f64> = (0..40).map(|k| k as f64 * 0.1).collect();
        let factors: Vec<f64> = (0..15).map(|i| 0.5 * 1.2f64.powi(i)).collect();
        let draws = crate::problem::normal_draws(4, 40);
        let noise = |k: usize| draws[k];
        let mut chosen = Vec::new();
        for amplitude in [0.0, 0.3, 1.0] {
            let y: Vec<f64> = t
                .iter()
                .enumerate()
                .map(|(k, x)| (3.0 * x).sin() + amplitude * noise(k))
                .collect();
            let bw = cross_validated_bandwidth(&t, std::slice::from_ref(&y), &factors);
            // The choice is the grid's best score.
            let best = factors
                .iter()
                .map(|f| {
                    leave_one_out_score(
                        &t,
                        std::slice::from_ref(&y),
                        bandwidth_from_spacing(&t, *f),
                    )
                })
                .fold(f64::INFINITY, f64::min);
            assert_eq!(leave_one_out_score(&t, &[y], bw), best);
            chosen.push(bw);
        }
        assert!(chosen[0] < chosen[1] && chosen[1] < chosen[2], "{chosen:?}");
    }

    #[test]
    fn reproduces_lines_exactly_and_smooths_noise() {
        let t: Vec<f64> = (0..50).map(|k| k as f64 * 0.1).collect();
        let line: Vec<f64> = t.iter().map(|x| 2.0 * x - 1.0).collect();
        let fit = local_linear(&t, &line, &[0.0, 2.45, 4.9], 0.3);
        for (f, x) in fit.iter().zip([0.0, 2.45, 4.9]) {
            assert!((f - (2.0 * x - 1.0)).abs() < 1e-10);
        }
        // Alternating noise of amplitude 0.1 on a sine is mostly removed.
        let noisy: Vec<f64> = t
            .iter()
            .enumerate()
            .map(|(k, x)| x.sin() + if k % 2 == 0 { 0.1 } else { -0.1 })
            .collect();
        let fit = local_linear(&t, &noisy, &t, bandwidth_from_spacing(&t, 3.0));
        let err: Vec<f64> = fit
            .iter()
            .zip(&t)
            .map(|(f, x)| (f - x.sin()).abs())
            .collect();
        let max = err.iter().fold(0.0f64, |m, e| m.max(*e));
        let rms = (err.iter().map(|e| e * e).sum::<f64>() / err.len() as f64).sqrt();
        eprintln!("smoothing: max error {max}, rms {rms} (noise 0.1)");
        // Measured: max 0.052 (curvature bias h²/2·|f''| at the peaks); rms below the noise.
        assert!(max < 0.07 && rms < 0.05, "max {max}, rms {rms}");
    }
}
