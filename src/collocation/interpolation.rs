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
    let n = nodes.len();
    let mut l = SparseMatrix::new(n);
    let mut row = vec![0.0; n];
    for (k, &t) in times.iter().enumerate() {
        let span = nodes.t1 - nodes.t0;
        if !(t.is_finite() && t >= nodes.t0 - 1e-12 * span && t <= nodes.t1 + 1e-12 * span) {
            return Err(CollocationError::TimeOutsideInterval {
                index: k,
                t,
                t0: nodes.t0,
                t1: nodes.t1,
            });
        }
        if !nodes.elements.is_empty() {
            let e = nodes
                .elements
                .partition_point(|(_, local)| local.t1 < t)
                .min(nodes.elements.len() - 1);
            let (first, local) = &nodes.elements[e];
            let t_in = t.clamp(local.t0, local.t1);
            let local_row = interpolation_matrix(local, &[t_in])?;
            l.push_row(local_row.row(0).map(|(c, v)| (first + c, v)));
            continue;
        }
        let s = nodes.to_reference(t);
        if let Some(j) = nodes.reference.iter().position(|&x| (s - x).abs() < 2e-14) {
            l.push_row([(j, 1.0)]);
            continue;
        }
        let mut total = 0.0;
        for ((r, &x), &w) in row.iter_mut().zip(&nodes.reference).zip(&nodes.weights) {
            *r = w / (s - x);
            total += *r;
        }
        l.push_row(row.iter().map(|r| r / total).enumerate());
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
