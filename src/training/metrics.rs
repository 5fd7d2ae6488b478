//! Error measures.

/// Mean squared error over all entries of the listed rows (`None` when there are none, or
/// when a prediction is missing: NaN).
pub fn mse(pred: &[Vec<f64>], truth: &[Vec<f64>], rows: &[usize]) -> Option<f64> {
    let mut s = 0.0;
    let mut n = 0usize;
    for &k in rows {
        for (p, t) in pred[k].iter().zip(&truth[k]) {
            s += (p - t).powi(2);
            n += 1;
        }
    }
    (n > 0 && !s.is_nan()).then(|| s / n as f64)
}
