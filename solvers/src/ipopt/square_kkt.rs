//! A KKT solver for NLPs with a large square block of equality constraints: variables `V` and
//! as many constraints `C` whose Jacobian `J = ∂c_C/∂x_V` is square and nonsingular, meeting
//! the remaining ("global") unknowns `G` through dense couplings.
//!
//! Global collocation of one trajectory is the case: the states after the first node and their
//! collocation rows give `J = D₁ ⊗ I − ∂F/∂y`, `D₁` the differentiation matrix without its first
//! row and column — an initial-value operator, nonsingular. The dense LDLᵀ of the whole KKT
//! matrix (order 962 for `vanderpol.toml`) spends its time in Bunch–Kaufman's pivoting panels.
//! With the KKT matrix ordered `[V, C, G]`,
//!
//! ```text
//!     ⎡ H     Jᵀ  K_VG ⎤
//! K = ⎢ J     0   K_CG ⎥ ,   B = ⎡ H  Jᵀ ⎤ ,   B⁻¹ = ⎡ 0    J⁻¹         ⎤ ,
//!     ⎣ K_VGᵀ K_CGᵀ K_GG ⎦         ⎣ J  0  ⎦          ⎣ J⁻ᵀ  −J⁻ᵀ H J⁻¹ ⎦
//! ```
//!
//! so one LU factorization of `J` (order 398 there) replaces the pivoted factorization of `B`.
//! With `X = J⁻¹ K_CG` (`J⁻ᵀ K_VG`'s counterpart is never needed: `K_CGᵀ J⁻ᵀ = Xᵀ`) the Schur
//! complement onto the global unknowns is
//! `S = K_GG − K_VGᵀ X − Xᵀ K_VG + Xᵀ H X = K_GG + Xᵀ T + Tᵀ X` with `T = ½ H X − K_VG`
//! (order 166 there; one `dsyr2k`), factorized with `dsytrf` — all BLAS-3. By Sylvester's law
//! the inertia is `(|V| + p, |V| + q, z)` with `(p, q, z)` that of `S`: a saddle block with a
//! square nonsingular `J` has `|V|` positive and `|V|` negative eigenvalues whatever `H` is.
//! `H` (the states' Hessian: a small block per point when the data lie on the nodes) is
//! applied entry by entry, or as a dense matrix when it has many entries.
//!
//! The shortcut needs the `C × C` block to be zero. When IPOPT regularizes the constraints
//! (`−δ_c I`, for a singular Jacobian), `J` is singular or the elimination grows the entries
//! by more than [`MAX_GROWTH`], the matrix is factorized densely instead, as the dense solver
//! would.

use super::dense_kkt::{ldlt_inertia, DenseLdlt, Inertia, Singular};
use super::ffi::{
    blas_dgemm, blas_dsyr2k_upper_t, lapack_dgetrf, lapack_dgetrs, lapack_dsytrf, lapack_dsytrs,
};
use crate::nlp::KktBlocks;

/// The largest ratio of the Schur complement's largest entry to the KKT matrix's for which the
/// elimination is trusted (measured: up to 5e4 on `vanderpol.toml` and 1e5 on
/// `brusselator.toml`, whose paths are the dense solver's; 1e6–1e13 on Lotka–Volterra in the
/// data's units, where pivots of the Schur complement drowned in the rounding of its large
/// entries and IPOPT, told the matrix was singular, regularized its constraints from then on).
const MAX_GROWTH: f64 = 1e5;

/// Factorizations in a row that fell back for growth after which the dense LDLᵀ answers the
/// rest of the solve directly (Lotka–Volterra in the data's units: 1.3× the dense solver's
/// time when every factorization tried the shortcut first; the single model of
/// `vanderpol-admm.toml` has a run of 3 and is faster with the shortcut afterwards).
const STICKY_FALLBACK: usize = 8;

/// Where a matrix entry is added.
#[derive(Clone, Copy, Debug)]
enum Slot {
    /// `H[i, j]` (both orders are applied: `H` is kept as a symmetric list of entries).
    Hessian(u32, u32),
    /// `J[i + j·m]` (column-major `m × m`).
    Jacobian(usize),
    /// A constraint-constraint entry, which must be zero for the shortcut.
    ConstraintPair,
    /// `K_VG[i + p·m]`.
    StateCoupling(usize),
    /// `K_CG[i + p·m]`.
    RowCoupling(usize),
    /// `S[min + max·g]` (upper triangle of the global block).
    Global(usize),
}

/// The factorization of a KKT matrix with one square constraint block.
#[derive(Debug)]
pub(crate) struct SquareBlockLdlt {
    n: usize,
    /// `|V| = |C|`.
    m: usize,
    /// `|G|`.
    g: usize,
    /// KKT indices of the block's variables, its constraints, and the global unknowns.
    vars: Vec<usize>,
    cons: Vec<usize>,
    global: Vec<usize>,
    /// One slot per matrix entry, in IPOPT's order.
    slots: Vec<Slot>,
    /// `H` as (row, column, value), both triangles (the diagonal once), and as a dense matrix
    /// (column-major `m × m`), which is used when `H` has many entries (data between the
    /// nodes couple the states through the interpolation).
    hessian: Vec<(u32, u32, f64)>,
    hessian_dense: Vec<f64>,
    /// Whether `H` is applied entry by entry (decided from the pattern: at most one entry in
    /// 16) rather than as a dense matrix.
    sparse_hessian: bool,
    /// LU factor of `J` and its pivots.
    jacobian: Vec<f64>,
    pivots: Vec<i32>,
    /// `X = J⁻¹ K_CG` and `T = ½ H X − K_VG` (column-major `m × g`); the couplings are kept
    /// for the solve.
    x: Vec<f64>,
    t: Vec<f64>,
    state_coupling: Vec<f64>,
    row_coupling: Vec<f64>,
    /// The Schur complement, then its factor (column-major `g × g`, upper triangle).
    schur: Vec<f64>,
    schur_pivots: Vec<i32>,
    work: Vec<f64>,
    /// The 1-based pattern, for the dense fallback.
    rows: Vec<i32>,
    cols: Vec<i32>,
    dense: Option<DenseLdlt>,
    /// Whether the last factorization took the dense fallback.
    fell_back: bool,
    /// Factorizations in a row that fell back for growth; from [`STICKY_FALLBACK`] on, the
    /// shortcut is not tried again (the sensitivities that defeat it rarely shrink).
    grown_in_a_row: usize,
    factorized: bool,
}

impl SquareBlockLdlt {
    /// Prepares the solver for the KKT pattern of IPOPT (`n` rows: `n_vars` variables, then one
    /// row per constraint; 1-based triangle entries) and a partition with one block whose
    /// variables and constraints are equally many; `None` when the partition does not fit.
    pub fn analyse(
        n: usize,
        n_vars: usize,
        rows: &[i32],
        cols: &[i32],
        partition: &KktBlocks,
    ) -> Option<Self> {
        let [block] = partition.chain.as_slice() else {
            return None;
        };
        let m = block.variables.len();
        if m == 0 || block.constraints.len() != m {
            return None;
        }
        // (kind, local index) of each KKT index: 0 variable of the block, 1 constraint of the
        // block, 2 global.
        let mut member = vec![(2u8, 0usize); n];
        for (l, &v) in block.variables.iter().enumerate() {
            if v >= n_vars || member[v].0 != 2 {
                return None;
            }
            member[v] = (0, l);
        }
        for (l, &c) in block.constraints.iter().enumerate() {
            let i = n_vars + c;
            if i >= n || member[i].0 != 2 {
                return None;
            }
            member[i] = (1, l);
        }
        let global: Vec<usize> = (0..n).filter(|&i| member[i].0 == 2).collect();
        let g = global.len();
        for (p, &i) in global.iter().enumerate() {
            member[i].1 = p;
        }
        let mut slots = Vec::with_capacity(rows.len());
        for (&r, &c) in rows.iter().zip(cols) {
            let (i, j) = (r as usize - 1, c as usize - 1);
            if i >= n || j >= n {
                return None;
            }
            let ((ki, li), (kj, lj)) = (member[i], member[j]);
            let slot = match (ki, kj) {
                (0, 0) => Slot::Hessian(li as u32, lj as u32),
                (1, 0) => Slot::Jacobian(li + lj * m),
                (0, 1) => Slot::Jacobian(lj + li * m),
                (1, 1) => Slot::ConstraintPair,
                (0, 2) => Slot::StateCoupling(li + lj * m),
                (2, 0) => Slot::StateCoupling(lj + li * m),
                (1, 2) => Slot::RowCoupling(li + lj * m),
                (2, 1) => Slot::RowCoupling(lj + li * m),
                _ => Slot::Global(li.min(lj) + li.max(lj) * g),
            };
            slots.push(slot);
        }
        let hessian_entries: usize = slots
            .iter()
            .map(|s| match s {
                Slot::Hessian(i, j) if i != j => 2,
                Slot::Hessian(..) => 1,
                _ => 0,
            })
            .sum();
        let sparse_hessian = hessian_entries * 16 <= m * m;
        Some(Self {
            n,
            m,
            g,
            vars: block.variables.clone(),
            cons: block.constraints.iter().map(|&c| n_vars + c).collect(),
            global,
            slots,
            hessian: Vec::new(),
            hessian_dense: if sparse_hessian {
                Vec::new()
            } else {
                vec![0.0; m * m]
            },
            sparse_hessian,
            jacobian: vec![0.0; m * m],
            pivots: vec![0; m],
            x: vec![0.0; m * g],
            t: vec![0.0; m * g],
            state_coupling: vec![0.0; m * g],
            row_coupling: vec![0.0; m * g],
            schur: vec![0.0; g * g],
            schur_pivots: vec![0; g],
            work: Vec::new(),
            rows: rows.to_vec(),
            cols: cols.to_vec(),
            dense: None,
            fell_back: false,
            grown_in_a_row: 0,
            factorized: false,
        })
    }

    /// Order of the KKT matrix.
    pub fn order(&self) -> usize {
        self.n
    }

    /// Whether the last factorization was the dense one (`C × C` block not zero, `J`
    /// singular, or the elimination grew the entries more than [`MAX_GROWTH`]).
    pub fn fell_back(&self) -> bool {
        self.fell_back
    }

    /// Assembles and factorizes the matrix with the values of the analysed pattern.
    pub fn factorize(&mut self, values: &[f64]) -> Result<Inertia, Singular> {
        self.factorized = false;
        self.fell_back = false;
        if self.grown_in_a_row >= STICKY_FALLBACK {
            return self.factorize_densely(values);
        }
        if !self.assemble(values)
            || lapack_dgetrf(self.m, &mut self.jacobian, &mut self.pivots) != 0
        {
            return self.factorize_densely(values);
        }
        let (m, g) = (self.m, self.g);
        // X = J⁻¹ K_CG.
        self.x.copy_from_slice(&self.row_coupling);
        if lapack_dgetrs(false, m, g, &self.jacobian, &self.pivots, &mut self.x) != 0 {
            return self.factorize_densely(values);
        }
        // T = ½ H X − K_VG.
        for (t, k) in self.t.iter_mut().zip(&self.state_coupling) {
            *t = -k;
        }
        if self.hessian_is_sparse() {
            for (tp, xp) in self.t.chunks_exact_mut(m).zip(self.x.chunks_exact(m)) {
                for &(i, j, v) in &self.hessian {
                    tp[i as usize] += 0.5 * v * xp[j as usize];
                }
            }
        } else {
            blas_dgemm(
                (false, false),
                (m, g, m),
                0.5,
                (&self.hessian_dense, m),
                (&self.x, m),
                1.0,
                (&mut self.t, m),
            );
        }
        // S = K_GG + Xᵀ T + Tᵀ X on the upper triangle, where K_GG was assembled (dsytrf
        // reads that one).
        blas_dsyr2k_upper_t(g, m, 1.0, &self.x, &self.t, 1.0, &mut self.schur);
        // Growth: a Schur complement far larger than the matrix it came from means the
        // elimination through `J⁻¹` cancelled large terms (an ill-conditioned `J`: the
        // trajectory's sensitivity to its first state, that of single shooting, grows with the
        // dynamics' expanding modes) and lost as many digits; then the pivoted LDLᵀ decides.
        let scale = self.schur.iter().fold(0.0f64, |s, v| s.max(v.abs()));
        let matrix_scale = values.iter().fold(0.0f64, |s, v| s.max(v.abs()));
        // (A NaN counts as growth.)
        if scale.is_nan() || scale > MAX_GROWTH * matrix_scale {
            self.grown_in_a_row += 1;
            return self.factorize_densely(values);
        }
        self.grown_in_a_row = 0;
        if self.work.is_empty() {
            let query = lapack_dsytrf(g, &mut self.schur, &mut self.schur_pivots, &mut [0.0], true);
            self.work = vec![0.0; (query.work_size.max(1.0) as usize).max(g.max(1))];
        }
        if lapack_dsytrf(
            g,
            &mut self.schur,
            &mut self.schur_pivots,
            &mut self.work,
            false,
        )
        .info
            != 0
        {
            return Err(Singular);
        }
        let mut inertia = ldlt_inertia(g, &self.schur, &self.schur_pivots, scale);
        if inertia.zero > 0 {
            return Err(Singular);
        }
        inertia.positive += m;
        inertia.negative += m;
        self.factorized = true;
        Ok(inertia)
    }

    /// Whether `H` is applied entry by entry (few entries) rather than as a dense matrix.
    fn hessian_is_sparse(&self) -> bool {
        self.sparse_hessian
    }

    /// Writes the values into `H`, `J`, the couplings and the global block; false when a
    /// constraint-constraint entry is not zero.
    fn assemble(&mut self, values: &[f64]) -> bool {
        let g = self.g;
        self.hessian.clear();
        self.hessian_dense.fill(0.0);
        self.jacobian.fill(0.0);
        self.state_coupling.fill(0.0);
        self.row_coupling.fill(0.0);
        for j in 0..g {
            self.schur[j * g..j * g + j + 1].fill(0.0);
        }
        for (slot, &v) in self.slots.iter().zip(values) {
            match *slot {
                Slot::Hessian(i, j) if !self.sparse_hessian => {
                    let m = self.m;
                    let (a, b) = (i as usize, j as usize);
                    self.hessian_dense[a + b * m] += v;
                    if a != b {
                        self.hessian_dense[b + a * m] += v;
                    }
                }
                Slot::Hessian(i, j) => {
                    if v != 0.0 {
                        self.hessian.push((i, j, v));
                        if i != j {
                            self.hessian.push((j, i, v));
                        }
                    }
                }
                Slot::Jacobian(at) => self.jacobian[at] += v,
                Slot::ConstraintPair => {
                    if v != 0.0 {
                        return false;
                    }
                }
                Slot::StateCoupling(at) => self.state_coupling[at] += v,
                Slot::RowCoupling(at) => self.row_coupling[at] += v,
                Slot::Global(at) => self.schur[at] += v,
            }
        }
        true
    }

    /// The dense LDLᵀ of the whole matrix, for the cases the shortcut does not cover.
    fn factorize_densely(&mut self, values: &[f64]) -> Result<Inertia, Singular> {
        self.fell_back = true;
        let n = self.n;
        let dense = self.dense.get_or_insert_with(|| DenseLdlt::new(n));
        let inertia = dense.factorize(&self.rows, &self.cols, values)?;
        self.factorized = true;
        Ok(inertia)
    }

    /// Solves K·x = rhs in place with the last successful factorization.
    pub fn solve(&mut self, rhs: &mut [f64]) -> bool {
        if !self.factorized || rhs.len() != self.n {
            return false;
        }
        if self.fell_back {
            return self.dense.as_ref().is_some_and(|d| d.solve(rhs));
        }
        let (m, g) = (self.m, self.g);
        // u = J⁻¹ r_C, v = r_V − H u.
        let mut u: Vec<f64> = self.cons.iter().map(|&i| rhs[i]).collect();
        if lapack_dgetrs(false, m, 1, &self.jacobian, &self.pivots, &mut u) != 0 {
            return false;
        }
        let r_v: Vec<f64> = self.vars.iter().map(|&i| rhs[i]).collect();
        let mut v = r_v.clone();
        self.subtract_hessian_times(&u, &mut v);
        // z_G = S⁻¹ (r_G − K_VGᵀ u − Xᵀ v).
        let mut z: Vec<f64> = (0..g)
            .map(|p| {
                let column = p * m..(p + 1) * m;
                rhs[self.global[p]]
                    - dot(&self.state_coupling[column.clone()], &u)
                    - dot(&self.x[column], &v)
            })
            .collect();
        if lapack_dsytrs(g, &self.schur, &self.schur_pivots, &mut z) != 0 {
            return false;
        }
        // z_V = u − X z_G; z_C = J⁻ᵀ (r_V − H z_V − K_VG z_G).
        let mut w = r_v;
        for (p, &zp) in z.iter().enumerate() {
            let column = p * m..(p + 1) * m;
            for ((ul, wl), (xl, kl)) in u.iter_mut().zip(w.iter_mut()).zip(
                self.x[column.clone()]
                    .iter()
                    .zip(&self.state_coupling[column]),
            ) {
                *ul -= xl * zp;
                *wl -= kl * zp;
            }
        }
        self.subtract_hessian_times(&u, &mut w);
        if lapack_dgetrs(true, m, 1, &self.jacobian, &self.pivots, &mut w) != 0 {
            return false;
        }
        for (l, &i) in self.vars.iter().enumerate() {
            rhs[i] = u[l];
        }
        for (l, &i) in self.cons.iter().enumerate() {
            rhs[i] = w[l];
        }
        for (p, &i) in self.global.iter().enumerate() {
            rhs[i] = z[p];
        }
        true
    }

    /// `out −= H·u`.
    fn subtract_hessian_times(&self, u: &[f64], out: &mut [f64]) {
        if self.hessian_is_sparse() {
            for &(i, j, v) in &self.hessian {
                out[i as usize] -= v * u[j as usize];
            }
        } else {
            let m = self.m;
            blas_dgemm(
                (false, false),
                (m, 1, m),
                -1.0,
                (&self.hessian_dense, m),
                (u, m),
                1.0,
                (out, m),
            );
        }
    }
}

/// `Σ aᵢ bᵢ` in order (one running sum: the block-arrow solver's four-sum `dot` rounds
/// differently, and the single model of `vanderpol-admm.toml` then took another path, 77
/// instead of 64 iterations).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipopt::test_matrices::{add_dense_block, add_symmetric, lower_entries, uniform};
    use crate::nlp::{BlockCoupling, KktBlock};

    /// A collocation-like KKT matrix (lower-triangle entries, 1-based): `m` block states with a
    /// Hessian of 2 × 2 blocks along the diagonal (or dense, `dense_hessian`), as many block
    /// rows with a nonsingular initial-value Jacobian (lower triangular with a dense lower
    /// part, plus a perturbation), `gv` global variables (dense Hessian, dense couplings to the
    /// states and rows) and `gc` global rows on everything; `cc` is put on the block rows'
    /// diagonal (IPOPT's −δ_c); `diagonal` sets the size of the Jacobian's diagonal (small:
    /// ill-conditioned). Returns the pattern, values, order, variables and partition.
    #[allow(clippy::type_complexity)]
    fn collocation_like(
        m: usize,
        (gv, gc): (usize, usize),
        (dense_hessian, cc, diagonal): (bool, f64, f64),
        seed: u64,
    ) -> (Vec<i32>, Vec<i32>, Vec<f64>, usize, usize, KktBlocks) {
        let mut rand = uniform(seed);
        // Variables: globals 0..gv, then the block's m states; constraints: globals 0..gc,
        // then the block's m rows.
        let n_vars = gv + m;
        let n = n_vars + gc + m;
        let mut a = vec![vec![0.0; n]; n];
        let set = add_symmetric;
        add_dense_block(&mut a, 0..gv, 2.0, &mut rand);
        for i in 0..m {
            let s = gv + i;
            set(&mut a, s, s, rand()); // indefinite: constraint curvature
            if i % 2 == 1 {
                set(&mut a, s, s - 1, 0.5 * rand());
            }
            if dense_hessian {
                for j in 0..i {
                    set(&mut a, s, gv + j, 0.2 * rand());
                }
            }
            for p in 0..gv {
                set(&mut a, s, p, 0.3 * rand());
            }
        }
        for r in 0..m {
            let row = n_vars + gc + r;
            set(&mut a, row, gv + r, diagonal * (1.0 + 0.25 * rand()));
            for j in 0..r {
                set(&mut a, row, gv + j, 0.5 * rand());
            }
            if r + 1 < m {
                set(&mut a, row, gv + r + 1, 0.3 * rand());
            }
            for p in 0..gv {
                set(&mut a, row, p, rand());
            }
            set(&mut a, row, row, cc);
        }
        for c in 0..gc {
            let row = n_vars + c;
            for j in 0..n_vars {
                if (c + j) % 3 == 0 {
                    set(&mut a, row, j, rand());
                }
            }
            set(&mut a, row, row, 0.0);
        }
        let (r, c, v) = lower_entries(&a);
        let partition = KktBlocks {
            chain: vec![KktBlock {
                variables: (gv..gv + m).collect(),
                constraints: (gc..gc + m).collect(),
            }],
            coupling: BlockCoupling::Square,
            ..Default::default()
        };
        (r, c, v, n, n_vars, partition)
    }

    /// Factorizes with both solvers and compares inertia and a solve.
    fn compare(m: usize, globals: (usize, usize), shape: (bool, f64, f64), seed: u64) -> bool {
        let (r, c, v, n, n_vars, partition) = collocation_like(m, globals, shape, seed);
        let mut square = SquareBlockLdlt::analyse(n, n_vars, &r, &c, &partition).unwrap();
        let mut dense = DenseLdlt::new(n);
        let expected = dense.factorize(&r, &c, &v).unwrap();
        assert_eq!(square.factorize(&v).unwrap(), expected, "seed {seed}");
        let rhs: Vec<f64> = (0..n).map(|i| ((i * 37 % 11) as f64) - 5.0).collect();
        let (mut x, mut y) = (rhs.clone(), rhs);
        assert!(dense.solve(&mut x) && square.solve(&mut y));
        let scale = x.iter().fold(0.0f64, |s, v| s.max(v.abs()));
        let error = x
            .iter()
            .zip(&y)
            .fold(0.0f64, |e, (a, b)| e.max((a - b).abs()));
        assert!(
            error <= 1e-9 * scale,
            "seed {seed}: error {error:e}, scale {scale:e}"
        );
        square.fell_back()
    }

    #[test]
    fn square_block_elimination_matches_the_dense_factorization() {
        for seed in 1..6 {
            // A Hessian of small blocks (applied entry by entry) and a dense one (BLAS).
            assert!(!compare(60, (10, 2), (false, 0.0, 4.0), seed));
            assert!(!compare(40, (7, 0), (true, 0.0, 4.0), seed));
        }
    }

    #[test]
    fn regularized_constraints_fall_back_to_the_dense_factorization() {
        // IPOPT's −δ_c on the constraint rows: the shortcut does not hold, the dense LDLᵀ
        // answers (and agrees with itself run directly).
        assert!(compare(30, (6, 1), (false, -1e-8, 4.0), 3));
    }

    #[test]
    fn an_ill_conditioned_block_falls_back_to_the_dense_factorization() {
        // A Jacobian with a tiny diagonal under a dense lower triangle: J⁻¹ grows like the
        // solution of an expanding recurrence and the Schur complement by far more than
        // MAX_GROWTH; the dense LDLᵀ answers.
        assert!(compare(40, (6, 1), (false, 0.0, 1e-3), 2));
    }

    #[test]
    fn partitions_that_do_not_fit_are_refused() {
        let (r, c, _, n, n_vars, mut partition) =
            collocation_like(10, (3, 1), (false, 0.0, 4.0), 1);
        partition.chain[0].constraints.pop();
        assert!(SquareBlockLdlt::analyse(n, n_vars, &r, &c, &partition).is_none());
        let (r, c, _, n, n_vars, mut partition) =
            collocation_like(10, (3, 1), (false, 0.0, 4.0), 1);
        partition.chain.push(KktBlock::default());
        assert!(SquareBlockLdlt::analyse(n, n_vars, &r, &c, &partition).is_none());
    }
}
