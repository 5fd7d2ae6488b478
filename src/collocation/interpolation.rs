//! Barycentric interpolation from the nodes to arbitrary times.

use super::{CollocationError, Nodes, SparseMatrix};

/// `L` (M × N) with `(L·y)_k = p(times[k])`, the interpolating polynomial of the node values
/// `y` (second barycentric form). Times may be irregular, unordered or have gaps, but must lie
/// in `[t0, T]` (interpolation, not extrapolation); a time within `1e-14·(T − t0)` of a node
/// gives the unit row of that node.
///
/// With finite elements each time is interpolated in the element that holds it (found by
/// bisection), so a row holds at most `points_per_element` entries.
pub fn interpolation_matrix(
    nodes: &Nodes,
    times: &[f64],
) -> Result<SparseMatrix, CollocationError> {
    rows_at(nodes, times, |nodes, t, row| {
        let s = nodes.to_reference(t);
        if let Some(j) = nodes.reference.iter().position(|&x| (s - x).abs() < 2e-14) {
            row.fill(0.0);
            row[j] = 1.0;
            return;
        }
        let mut total = 0.0;
        for ((r, &x), &w) in row.iter_mut().zip(&nodes.reference).zip(&nodes.weights) {
            *r = w / (s - x);
            total += *r;
        }
        row.iter_mut().for_each(|r| *r /= total);
    })
}

/// `L'` (M × N) with `(L'·y)_k = p'(times[k])`, the derivative of the interpolating polynomial
/// of the node values `y`, at arbitrary times in `[t0, T]`. Away from the nodes by the
/// derivative of the barycentric formula, `p'(t) = Σ_j w_j (p(t) − y_j)/(t − t_j)² / Σ_j w_j/(t −
/// t_j)`; at a node by the differentiation-matrix row of that node. With finite elements each
/// time is differentiated in the element that holds it (at a shared boundary: the element on
/// its left, as [`super::differentiation_matrix`] does).
pub fn derivative_matrix(nodes: &Nodes, times: &[f64]) -> Result<SparseMatrix, CollocationError> {
    rows_at(nodes, times, |nodes, t, row| {
        let (x, w) = (&nodes.reference, &nodes.weights);
        let n = x.len();
        let s = nodes.to_reference(t);
        let scale = 2.0 / (nodes.t1 - nodes.t0);
        if let Some(i) = x.iter().position(|&xi| (s - xi).abs() < 1e-10) {
            // At a node: the row of D (diagonal by negative row sum).
            let mut diag = 0.0;
            for j in 0..n {
                if j != i {
                    row[j] = (w[j] / w[i]) / (x[i] - x[j]);
                    diag -= row[j];
                }
            }
            row[i] = diag;
        } else {
            // p' = Σ_j y_j [ℓ_j S − w_j/((s − x_j)² b)] with b = Σ_i w_i/(s − x_i),
            // ℓ_j = (w_j/(s − x_j))/b and S = Σ_i w_i/(s − x_i)² / b.
            let total: f64 = x.iter().zip(w).map(|(&xj, &wj)| wj / (s - xj)).sum();
            let curvature: f64 = x
                .iter()
                .zip(w)
                .map(|(&xj, &wj)| wj / (s - xj).powi(2))
                .sum();
            for j in 0..n {
                let e = w[j] / (s - x[j]);
                row[j] = (e / total) * (curvature / total) - e / (s - x[j]) / total;
            }
        }
        row.iter_mut().for_each(|r| *r *= scale);
    })
}

/// One row per time, from `row(nodes, t, buffer)` on the nodes of the interval or of the
/// element that holds `t` (found by bisection; at a shared boundary the element on its left),
/// after checking that `t` lies in `[t0, T]`; entries that are exactly zero are left out.
fn rows_at(
    nodes: &Nodes,
    times: &[f64],
    row: impl Fn(&Nodes, f64, &mut [f64]),
) -> Result<SparseMatrix, CollocationError> {
    let mut l = SparseMatrix::new(nodes.len());
    let span = nodes.t1 - nodes.t0;
    let mut buffer = Vec::new();
    for (k, &t) in times.iter().enumerate() {
        if !(t.is_finite() && t >= nodes.t0 - 1e-12 * span && t <= nodes.t1 + 1e-12 * span) {
            return Err(CollocationError::TimeOutsideInterval {
                index: k,
                t,
                t0: nodes.t0,
                t1: nodes.t1,
            });
        }
        let (first, local) = match nodes.elements.is_empty() {
            true => (0, nodes),
            false => {
                let e = nodes
                    .elements
                    .partition_point(|(_, local)| local.t1 < t)
                    .min(nodes.elements.len() - 1);
                let (first, local) = &nodes.elements[e];
                (*first, local)
            }
        };
        buffer.clear();
        buffer.resize(local.len(), 0.0);
        row(local, t.clamp(local.t0, local.t1), &mut buffer);
        // Exact zeros (the other nodes of a node's unit row) stay out of the pattern.
        l.push_row(
            buffer
                .iter()
                .enumerate()
                .filter(|(_, &v)| v != 0.0)
                .map(|(c, &v)| (first + c, v)),
        );
    }
    Ok(l)
}

/// The interpolating polynomial of `values` (one per node) evaluated at `times`.
pub fn interpolate(
    nodes: &Nodes,
    values: &[f64],
    times: &[f64],
) -> Result<Vec<f64>, CollocationError> {
    Ok(interpolation_matrix(nodes, times)?.mul_vec(values))
}

#[cfg(test)]
mod tests {
    use super::super::NodeKind;
    use super::*;

    #[test]
    fn reproduces_polynomials_at_irregular_times() {
        for kind in NodeKind::ALL {
            let nodes = Nodes::new(kind, 12, 0.0, 15.0).unwrap();
            let p = |t: f64| (t / 15.0).powi(11) - 2.0 * (t / 15.0).powi(3) + 0.5;
            let values: Vec<f64> = nodes.times.iter().map(|&t| p(t)).collect();
            // Irregular, unordered, with a gap, both ends and one node exactly.
            let times = [0.0, 0.013, 3.7, 2.2, 11.9, 14.999, 15.0, nodes.times[4]];
            let l = interpolation_matrix(&nodes, &times).unwrap();
            for (k, &t) in times.iter().enumerate() {
                assert!(
                    (l.row(k).map(|(_, v)| v).sum::<f64>() - 1.0).abs() < 1e-13,
                    "{kind}: row {k} does not sum to 1"
                );
                let v: f64 = l.row(k).map(|(j, a)| a * values[j]).sum();
                assert!((v - p(t)).abs() < 1e-12, "{kind}: p({t}) = {} vs {v}", p(t));
            }
            assert_eq!(l.row(7).collect::<Vec<_>>(), vec![(4, 1.0)]);
        }
    }

    #[test]
    fn differentiates_polynomials_at_irregular_times_globally_and_in_elements() {
        let p = |t: f64| (t / 15.0).powi(4) - 2.0 * (t / 15.0).powi(3) + 0.5 * t;
        let dp = |t: f64| 4.0 * (t / 15.0).powi(3) / 15.0 - 6.0 * (t / 15.0).powi(2) / 15.0 + 0.5;
        // Irregular, unordered, both ends, a node and an element boundary.
        let times = [0.0, 0.013, 3.7, 2.2, 11.9, 14.999, 15.0, 3.0, 7.77];
        for kind in NodeKind::ALL {
            for nodes in [
                Nodes::new(kind, 12, 0.0, 15.0).unwrap(),
                Nodes::finite_elements(kind, 5, 6, 0.0, 15.0).unwrap(),
            ] {
                let values: Vec<f64> = nodes.times.iter().map(|&t| p(t)).collect();
                let dl = derivative_matrix(&nodes, &times).unwrap();
                let got = dl.mul_vec(&values);
                for (k, &t) in times.iter().enumerate() {
                    assert!(
                        (got[k] - dp(t)).abs() < 1e-11,
                        "{kind}, {} elements: p'({t}) = {} vs {}",
                        nodes.elements.len(),
                        dp(t),
                        got[k]
                    );
                }
                let node = derivative_matrix(&nodes, &[nodes.times[4]]).unwrap();
                assert!((node.mul_vec(&values)[0] - dp(nodes.times[4])).abs() < 1e-11);
            }
        }
        // A non-polynomial: spectral accuracy between the nodes.
        let nodes = Nodes::new(NodeKind::Chebyshev, 40, 0.0, 15.0).unwrap();
        let values: Vec<f64> = nodes.times.iter().map(|&t| t.sin()).collect();
        let got = derivative_matrix(&nodes, &times).unwrap().mul_vec(&values);
        for (k, &t) in times.iter().enumerate() {
            assert!((got[k] - t.cos()).abs() < 1e-8, "sin' at {t}: {}", got[k]);
        }
        assert!(derivative_matrix(&nodes, &[15.5]).is_err());
    }

    #[test]
    fn times_outside_the_interval_are_rejected() {
        let nodes = Nodes::new(NodeKind::Chebyshev, 10, 0.0, 15.0).unwrap();
        let err = interpolate(&nodes, &[0.0; 10], &[1.0, 15.5]).unwrap_err();
        assert_eq!(
            err,
            CollocationError::TimeOutsideInterval {
                index: 1,
                t: 15.5,
                t0: 0.0,
                t1: 15.0
            }
        );
        assert!(interpolate(&nodes, &[0.0; 10], &[f64::NAN]).is_err());
    }
}
