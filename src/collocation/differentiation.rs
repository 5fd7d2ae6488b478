//! The collocation differentiation matrix.

use super::{Nodes, SparseMatrix};

/// `D` with `(D·y)_r = p'(t_i)` at the `r`-th collocation point `t_i`
/// ([`Nodes::collocation_points`]), for the interpolating polynomial `p` of the values `y` at
/// the nodes: off-diagonal `D_ij = (w_j/w_i)/(t_i − t_j)`, diagonal by negative row sums
/// (exact on constants and more accurate than the closed form), computed on `[-1, 1]` and
/// scaled by `2/(T − t0)`.
///
/// With finite elements, a row differentiates the polynomial of the element a point ends or
/// lies inside (a shared boundary node: the element on its left), so a row holds at most
/// `points_per_element` entries.
pub fn differentiation_matrix(nodes: &Nodes) -> SparseMatrix {
    let mut d = SparseMatrix::new(nodes.len());
    if !nodes.elements.is_empty() {
        for (first, local) in &nodes.elements {
            let local_d = differentiation_matrix(local);
            for r in 1..local.len() {
                d.push_row(local_d.row(r).map(|(c, v)| (first + c, v)));
            }
        }
        debug_assert_eq!(d.rows, nodes.collocation_points().len());
        return d;
    }
    let (x, w) = (&nodes.reference, &nodes.weights);
    let n = x.len();
    let scale = 2.0 / (nodes.t1 - nodes.t0);
    let mut row = vec![0.0; n];
    for i in 0..n {
        let mut diag = 0.0;
        for j in 0..n {
            if i != j {
                let v = (w[j] / w[i]) / (x[i] - x[j]);
                row[j] = v * scale;
                diag -= v;
            }
        }
        row[i] = diag * scale;
        d.push_row(row.iter().copied().enumerate());
    }
    d
}

#[cfg(test)]
mod tests {
    use super::super::{NodeKind, Nodes};
    use super::*;

    fn max_rel_err(a: &[f64], b: &[f64]) -> f64 {
        let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
            / scale
    }

    #[test]
    fn exact_on_polynomials_of_degree_below_n() {
        for kind in NodeKind::ALL {
            for n in [5, 20, 60] {
                let nodes = Nodes::new(kind, n, 2.0, 17.0).unwrap();
                let d = differentiation_matrix(&nodes);
                // p(t) = ((t − 9.5)/7.5)^k, degree k < n, plus lower terms.
                for k in [0, 1, n / 2, n - 1] {
                    let s = |t: f64| (t - 9.5) / 7.5;
                    let y: Vec<f64> = nodes
                        .times
                        .iter()
                        .map(|&t| s(t).powi(k as i32) + 0.3 * s(t))
                        .collect();
                    let dy: Vec<f64> = nodes
                        .times
                        .iter()
                        .map(|&t| {
                            (k as f64 * s(t).powi(k as i32 - 1) * if k == 0 { 0.0 } else { 1.0 }
                                + 0.3)
                                / 7.5
                        })
                        .collect();
                    let err = max_rel_err(&d.mul_vec(&y), &dy);
                    assert!(
                        err < 1e-10,
                        "{kind}, n = {n}, degree {k}: relative error {err:e}"
                    );
                }
            }
        }
        // The paper's size: 200 Chebyshev points.
        let nodes = Nodes::new(NodeKind::Chebyshev, 200, 0.0, 15.0).unwrap();
        let d = differentiation_matrix(&nodes);
        let y: Vec<f64> = nodes.times.iter().map(|t| (t / 15.0).powi(7)).collect();
        let dy: Vec<f64> = nodes
            .times
            .iter()
            .map(|t| 7.0 * (t / 15.0).powi(6) / 15.0)
            .collect();
        assert!(max_rel_err(&d.mul_vec(&y), &dy) < 1e-10);
    }

    #[test]
    fn spectral_convergence_on_a_smooth_function() {
        // y = exp(sin t) on [0, 15]: the error falls geometrically with n.
        let err = |n: usize| {
            let nodes = Nodes::new(NodeKind::Chebyshev, n, 0.0, 15.0).unwrap();
            let d = differentiation_matrix(&nodes);
            let y: Vec<f64> = nodes.times.iter().map(|t| t.sin().exp()).collect();
            let dy: Vec<f64> = nodes
                .times
                .iter()
                .map(|t| t.cos() * t.sin().exp())
                .collect();
            max_rel_err(&d.mul_vec(&y), &dy)
        };
        let e: Vec<f64> = [20, 40, 60, 80].into_iter().map(err).collect();
        eprintln!("spectral convergence, max relative error of D·y for n = 20, 40, 60, 80: {e:?}");
        // Measured: 1.6e-1, 6.6e-4, 1.5e-6, 1.0e-9 — each 20 more points gain 2.4 to 3.2 digits.
        for w in e.windows(2) {
            assert!(w[1] < 1e-2 * w[0], "no geometric decrease: {e:?}");
        }
        assert!(e[3] < 1e-8, "n = 80: {:e}", e[3]);
    }
}

#[cfg(test)]
mod element_tests {
    use super::super::{interpolation_matrix, NodeKind, Nodes};
    use super::*;

    #[test]
    fn finite_elements_are_exact_on_polynomials_of_the_element_degree() {
        for kind in NodeKind::ALL {
            let (k, p) = (7, 6);
            let nodes = Nodes::finite_elements(kind, k, p, 1.0, 15.0).unwrap();
            assert_eq!(nodes.len(), k * (p - 1) + 1);
            assert!(nodes.times.windows(2).all(|w| w[0] < w[1]));
            assert_eq!((nodes.times[0], nodes.times[nodes.len() - 1]), (1.0, 15.0));
            // Degree p − 1: every element reproduces it exactly.
            let f = |t: f64| 0.5 + 0.2 * t - 0.03 * t.powi(3) + 1e-4 * t.powi(5);
            let df = |t: f64| 0.2 - 0.09 * t * t + 5e-4 * t.powi(4);
            let y: Vec<f64> = nodes.times.iter().map(|&t| f(t)).collect();
            let dy = differentiation_matrix(&nodes).mul_vec(&y);
            // Elements collocate at every node but the first.
            let points = nodes.collocation_points();
            assert_eq!(points.start, 1);
            assert_eq!(dy.len(), points.len());
            for (r, k) in points.enumerate() {
                let t = nodes.times[k];
                assert!(
                    (dy[r] - df(t)).abs() < 1e-9 * df(t).abs().max(1.0),
                    "{kind} D row {r}"
                );
            }
            let at = [1.0, 1.37, 7.0, 8.999, 14.2, 15.0];
            let v = interpolation_matrix(&nodes, &at).unwrap().mul_vec(&y);
            for (x, &t) in v.iter().zip(&at) {
                assert!(
                    (x - f(t)).abs() < 1e-10 * f(t).abs().max(1.0),
                    "{kind} L at {t}"
                );
            }
            // Each row of D touches one element only: at most p nonzeros.
            let d = differentiation_matrix(&nodes);
            for i in 0..d.rows {
                assert!(d.row(i).count() <= p);
            }
        }
        // Radau elements: the element's start and Radau points that end at the element's end.
        let radau = Nodes::finite_elements(NodeKind::Radau, 2, 3, 0.0, 2.0).unwrap();
        // Two-point Radau on [-1, 1]: −1/3 and 1.
        let expected = [0.0, 1.0 / 3.0, 1.0, 4.0 / 3.0, 2.0];
        for (a, b) in radau.times.iter().zip(expected) {
            assert!((a - b).abs() < 1e-14, "{:?}", radau.times);
        }
        // One element is global collocation.
        assert_eq!(
            Nodes::finite_elements(NodeKind::Chebyshev, 1, 9, 0.0, 2.0).unwrap(),
            Nodes::new(NodeKind::Chebyshev, 9, 0.0, 2.0).unwrap()
        );
    }
}
