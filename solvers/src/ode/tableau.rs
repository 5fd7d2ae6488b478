//! Butcher tableaus as data.

/// An explicit Runge–Kutta tableau with `S` stages.
#[derive(Clone, Debug)]
pub struct Tableau<const S: usize> {
    /// Nodes `c`.
    pub c: [f64; S],
    /// Lower-triangular coefficients `a[i][j]`, `j < i`.
    pub a: [[f64; S]; S],
    /// Weights of the propagated solution.
    pub b: [f64; S],
    /// Weights of the embedded lower-order solution (error estimate), if any.
    pub b_embedded: Option<[f64; S]>,
}

/// The classical 4th-order Runge–Kutta method.
pub const RK4: Tableau<4> = Tableau {
    c: [0.0, 0.5, 0.5, 1.0],
    a: [
        [0.0; 4],
        [0.5, 0.0, 0.0, 0.0],
        [0.0, 0.5, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
    ],
    b: [1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
    b_embedded: None,
};

/// Dormand–Prince 5(4) (first same as last: stage 7 is f at the new point).
pub const DOPRI5: Tableau<7> = Tableau {
    c: [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0],
    a: [
        [0.0; 7],
        [1.0 / 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0, 0.0, 0.0],
        [
            19372.0 / 6561.0,
            -25360.0 / 2187.0,
            64448.0 / 6561.0,
            -212.0 / 729.0,
            0.0,
            0.0,
            0.0,
        ],
        [
            9017.0 / 3168.0,
            -355.0 / 33.0,
            46732.0 / 5247.0,
            49.0 / 176.0,
            -5103.0 / 18656.0,
            0.0,
            0.0,
        ],
        [
            35.0 / 384.0,
            0.0,
            500.0 / 1113.0,
            125.0 / 192.0,
            -2187.0 / 6784.0,
            11.0 / 84.0,
            0.0,
        ],
    ],
    b: [
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
        0.0,
    ],
    b_embedded: Some([
        5179.0 / 57600.0,
        0.0,
        7571.0 / 16695.0,
        393.0 / 640.0,
        -92097.0 / 339200.0,
        187.0 / 2100.0,
        1.0 / 40.0,
    ]),
};

/// Dense-output coefficients of Dopri5 (Hairer's `dense` d-coefficients, 4th order).
pub const DOPRI5_DENSE: [f64; 7] = [
    -12715105075.0 / 11282082432.0,
    0.0,
    87487479700.0 / 32700410799.0,
    -10690763975.0 / 1880347072.0,
    701980252875.0 / 199316789632.0,
    -1453857185.0 / 822651844.0,
    69997945.0 / 29380423.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    fn consistent<const S: usize>(t: &Tableau<S>) {
        assert!((t.b.iter().sum::<f64>() - 1.0).abs() < 1e-14);
        for i in 0..S {
            assert!(
                (t.a[i].iter().sum::<f64>() - t.c[i]).abs() < 1e-14,
                "row {i}: Σa ≠ c"
            );
        }
        if let Some(e) = t.b_embedded {
            assert!((e.iter().sum::<f64>() - 1.0).abs() < 1e-14);
        }
    }

    #[test]
    fn tableaus_are_consistent() {
        consistent(&RK4);
        consistent(&DOPRI5);
        // Order conditions up to 3 for Dopri5's b: Σ b c = 1/2, Σ b c² = 1/3.
        let bc: f64 = DOPRI5.b.iter().zip(DOPRI5.c).map(|(b, c)| b * c).sum();
        let bc2: f64 = DOPRI5.b.iter().zip(DOPRI5.c).map(|(b, c)| b * c * c).sum();
        assert!((bc - 0.5).abs() < 1e-14 && (bc2 - 1.0 / 3.0).abs() < 1e-14);
    }
}
