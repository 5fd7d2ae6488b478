//! Random symmetric KKT matrices for the KKT solvers' tests.

/// Uniform numbers in [−1, 1) from a seeded linear congruential generator.
pub(crate) fn uniform(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

/// Adds `v` at (i, j) and (j, i) of the dense symmetric `a` (once on the diagonal).
pub(crate) fn add_symmetric(a: &mut [Vec<f64>], i: usize, j: usize, v: f64) {
    a[i][j] += v;
    if i != j {
        a[j][i] += v;
    }
}

/// Fills the rows and columns `range` of `a` with a dense symmetric block: diagonal
/// `diagonal + u`, off-diagonal `0.3·u` (u uniform in [−1, 1), drawn row by row).
pub(crate) fn add_dense_block(
    a: &mut [Vec<f64>],
    range: std::ops::Range<usize>,
    diagonal: f64,
    rand: &mut impl FnMut() -> f64,
) {
    for i in range.clone() {
        add_symmetric(a, i, i, diagonal + rand());
        for j in range.start..i {
            add_symmetric(a, i, j, 0.3 * rand());
        }
    }
}

/// The lower triangle's entries as IPOPT gives them (1-based rows and columns, values): the
/// nonzeros and the whole diagonal.
pub(crate) fn lower_entries(a: &[Vec<f64>]) -> (Vec<i32>, Vec<i32>, Vec<f64>) {
    let (mut r, mut c, mut v) = (vec![], vec![], vec![]);
    for (i, row) in a.iter().enumerate() {
        for (j, &x) in row.iter().enumerate().take(i + 1) {
            if x != 0.0 || i == j {
                r.push(i as i32 + 1);
                c.push(j as i32 + 1);
                v.push(x);
            }
        }
    }
    (r, c, v)
}
