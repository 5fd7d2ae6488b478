//! A KKT solver for NLPs whose unknowns are mostly small independent groups, each coupled to
//! a few of the remaining ("global") unknowns: the sparse Schur complement onto the global
//! unknowns, factorized densely.
//!
//! The full-space formulation of a one-hidden-layer network is the case: at every collocation
//! point and hidden unit, the pre-activation `z`, the activation `h` and their two equations
//! (`z = w·y + b`, `h = σ(z)`) form a 4 × 4 KKT block that meets only that point's states and
//! collocation rows and that unit's weights. MUMPS, seeing the parameters' dense columns,
//! factorizes the whole 26,000-row system as sparse (~160 ms per factorization for
//! `vanderpol.toml`). Eliminating the blocks instead leaves a Schur complement on the states,
//! parameters and collocation rows — the order of the reduced-space KKT matrix — which is
//! dense and goes to LAPACK's blocked Bunch–Kaufman `dsytrf`, as the reduced formulation's does.
//!
//! Each block `A_e` is factorized with `dsytrf` (for its inertia) and inverted explicitly;
//! `Q_e = A_e⁻¹ W_e` and `W_eᵀ Q_e` use only the `m_e` global unknowns the block touches, so the
//! cost is `Σ_e (b_e² m_e + b_e m_e²)` plus the dense factorization. By Sylvester's law the
//! inertia is the blocks' plus the Schur complement's. Each block must be nonsingular: the
//! network block's Jacobian in `(z, h)` is unit lower triangular, so it always is.

use super::dense_kkt::{ldlt_inertia, Inertia, Singular};
use super::ffi::{lapack_dsytrf, lapack_dsytri, lapack_dsytrs};
use crate::nlp::KktBlocks;
use rayon::prelude::*;

/// The largest Schur complement factorized (memory: 8·g² bytes, 200 MB at this order).
pub(crate) const MAX_SCHUR_ORDER: usize = 5000;

/// Blocks eliminated per parallel task (contiguous in the flat arrays).
const BLOCKS_PER_TASK: usize = 256;

/// Where block `e`'s data lie in the flat arrays: entry `e` to `e + 1` of each prefix sum.
#[derive(Debug, Default)]
struct Layout {
    /// Rows (KKT indices) and pivots: `b_e` each.
    rows: Vec<usize>,
    /// Neighbours (Schur positions of the global unknowns the block touches): `m_e` each.
    neighbours: Vec<usize>,
    /// The block matrix, then its inverse: `b_e²` each.
    matrix: Vec<usize>,
    /// `Q_e = A_e⁻¹ W_e`: `b_e·m_e` each.
    q: Vec<usize>,
    /// `W_eᵀ Q_e`: `m_e²` each.
    s: Vec<usize>,
    /// The value slots: see [`SchurLdlt::slots`].
    slots: Vec<usize>,
}

/// One block's slices of the flat arrays, for its elimination.
struct BlockSlices<'a> {
    slots: &'a [(u32, u32)],
    a: &'a mut [f64],
    q: &'a mut [f64],
    s: &'a mut [f64],
    pivots: &'a mut [i32],
}

impl BlockSlices<'_> {
    /// Assembles, factorizes and eliminates the block (`m` neighbours, `w` scratch): its
    /// inertia, or `Singular`.
    fn eliminate(
        self,
        m: usize,
        values: &[f64],
        scale: f64,
        (w, work): (&mut Vec<f64>, &mut Vec<f64>),
    ) -> Result<Inertia, Singular> {
        let b = self.pivots.len();
        let a = self.a;
        a.fill(0.0);
        w.clear();
        w.resize(b * m, 0.0);
        for &(at, index) in self.slots {
            let at = at as usize;
            if at < b * b {
                a[at] += values[index as usize];
            } else {
                w[at - b * b] += values[index as usize];
            }
        }
        if work.len() < 64 * b.max(1) {
            work.resize(64 * b.max(1), 0.0);
        }
        let out = lapack_dsytrf(b, a, self.pivots, work, false);
        if out.info != 0 {
            return Err(Singular);
        }
        let inertia = ldlt_inertia(b, a, self.pivots, scale);
        if inertia.zero > 0 || lapack_dsytri(b, a, self.pivots, work) != 0 {
            return Err(Singular);
        }
        for j in 0..b {
            for i in j + 1..b {
                a[i + j * b] = a[j + i * b];
            }
        }
        // Q = A⁻¹ W, S = Wᵀ Q (symmetric; both triangles written).
        for c in 0..m {
            let wc = &w[c * b..(c + 1) * b];
            for i in 0..b {
                let mut v = 0.0;
                for (k, wk) in wc.iter().enumerate() {
                    v += a[i + k * b] * wk;
                }
                self.q[i + c * b] = v;
            }
        }
        for c in 0..m {
            let qc = &self.q[c * b..(c + 1) * b];
            for r in 0..=c {
                let wr = &w[r * b..(r + 1) * b];
                let v: f64 = wr.iter().zip(qc).map(|(x, y)| x * y).sum();
                self.s[r + c * m] = v;
                self.s[c + r * m] = v;
            }
        }
        Ok(inertia)
    }
}

/// The factorization of a KKT matrix by eliminating independent small blocks onto a dense
/// Schur complement.
#[derive(Debug)]
pub(crate) struct SchurLdlt {
    n: usize,
    layout: Layout,
    /// Every block's rows (KKT indices), block after block.
    rows: Vec<usize>,
    /// Every block's neighbours (Schur positions, sorted within a block).
    neighbours: Vec<usize>,
    /// (offset, value index) per block: `a[offset]` (upper triangle of the block) or, from
    /// `b²` on, `W_e[offset − b²]` receives the value; sorted within a block.
    slots: Vec<(u32, u32)>,
    /// The blocks' matrices, then their full inverses (column-major `b × b` each).
    a: Vec<f64>,
    /// `Q_e` (column-major `b × m` each).
    q: Vec<f64>,
    /// `W_eᵀ Q_e` (column-major `m × m` each).
    s: Vec<f64>,
    /// The blocks' Bunch–Kaufman pivots.
    block_pivots: Vec<i32>,
    /// KKT index of each global unknown (Schur position order).
    global: Vec<usize>,
    /// (offset in `c`'s upper triangle, value index) of the global–global entries, sorted.
    corner_slots: Vec<(usize, usize)>,
    /// `g × g` column-major: the Schur complement (upper triangle), then its factor.
    c: Vec<f64>,
    pivots: Vec<i32>,
    work: Vec<f64>,
    /// Solve scratch: the global part of the right-hand side.
    xg: Vec<f64>,
    factorized: bool,
}

/// Prefix sums of `sizes`.
fn prefix(sizes: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut out = vec![0];
    let mut total = 0;
    for size in sizes {
        total += size;
        out.push(total);
    }
    out
}

impl SchurLdlt {
    /// Checks the partition against the KKT pattern (1-based triangle entries `rows`, `cols`
    /// of a matrix of order `n` whose first `n_vars` rows are the variables and the rest the
    /// constraints): every block's rows must meet no other block's. `None` when it does not
    /// fit or the Schur complement would exceed [`MAX_SCHUR_ORDER`].
    pub fn analyse(
        n: usize,
        n_vars: usize,
        rows: &[i32],
        cols: &[i32],
        partition: &KktBlocks,
    ) -> Option<Self> {
        const GLOBAL: u32 = u32::MAX;
        let k = partition.chain.len();
        // (block, local row) of each KKT index; GLOBAL for the rest.
        let mut member = vec![(GLOBAL, 0u32); n];
        let mut block_rows = Vec::new();
        let mut row_sizes = Vec::with_capacity(k);
        for (e, block) in partition.chain.iter().enumerate() {
            let members = block.kkt_rows(n_vars);
            let before = block_rows.len();
            for (l, i) in members.enumerate() {
                if i >= n || member[i].0 != GLOBAL {
                    return None;
                }
                member[i] = (u32::try_from(e).ok()?, l as u32);
                block_rows.push(i);
            }
            if block_rows.len() == before {
                return None;
            }
            row_sizes.push(block_rows.len() - before);
        }
        let global: Vec<usize> = (0..n).filter(|&i| member[i].0 == GLOBAL).collect();
        let g = global.len();
        if g > MAX_SCHUR_ORDER {
            return None;
        }
        let mut position = vec![usize::MAX; n];
        for (p, &i) in global.iter().enumerate() {
            position[i] = p;
        }
        // Each block's neighbours.
        let mut neighbour_lists = vec![Vec::new(); k];
        for (&ri, &ci) in rows.iter().zip(cols) {
            let (i, j) = (ri as usize - 1, ci as usize - 1);
            if i >= n || j >= n {
                return None;
            }
            let (mi, mj) = (member[i], member[j]);
            match (mi.0 == GLOBAL, mj.0 == GLOBAL) {
                (false, false) if mi.0 != mj.0 => return None,
                (false, true) => neighbour_lists[mi.0 as usize].push(position[j]),
                (true, false) => neighbour_lists[mj.0 as usize].push(position[i]),
                _ => {}
            }
        }
        for list in &mut neighbour_lists {
            list.sort_unstable();
            list.dedup();
        }
        let nbr_sizes: Vec<usize> = neighbour_lists.iter().map(Vec::len).collect();
        let mut layout = Layout {
            rows: prefix(row_sizes.iter().copied()),
            neighbours: prefix(nbr_sizes.iter().copied()),
            matrix: prefix(row_sizes.iter().map(|b| b * b)),
            q: prefix(row_sizes.iter().zip(&nbr_sizes).map(|(b, m)| b * m)),
            s: prefix(nbr_sizes.iter().map(|m| m * m)),
            slots: Vec::new(),
        };
        let neighbours = neighbour_lists.concat();
        let mut block_slots = vec![Vec::new(); k];
        let mut corner_slots = Vec::new();
        for (index, (&ri, &ci)) in rows.iter().zip(cols).enumerate() {
            let (i, j) = (ri as usize - 1, ci as usize - 1);
            let (mi, mj) = (member[i], member[j]);
            let index32 = u32::try_from(index).ok()?;
            match (mi.0 == GLOBAL, mj.0 == GLOBAL) {
                (true, true) => {
                    let (p, q) = (position[i], position[j]);
                    corner_slots.push((p.min(q) + p.max(q) * g, index));
                }
                (false, false) => {
                    let e = mi.0 as usize;
                    let (p, q) = (mi.1 as usize, mj.1 as usize);
                    let at = p.min(q) + p.max(q) * row_sizes[e];
                    block_slots[e].push((u32::try_from(at).ok()?, index32));
                }
                _ => {
                    let (local, glob) = if mi.0 != GLOBAL { (mi, j) } else { (mj, i) };
                    let e = local.0 as usize;
                    let b = row_sizes[e];
                    let list = &neighbours[layout.neighbours[e]..layout.neighbours[e + 1]];
                    let col = list.binary_search(&position[glob]).ok()?;
                    let at = b * b + local.1 as usize + col * b;
                    block_slots[e].push((u32::try_from(at).ok()?, index32));
                }
            }
        }
        for list in &mut block_slots {
            list.sort_unstable();
        }
        layout.slots = prefix(block_slots.iter().map(Vec::len));
        corner_slots.par_sort_unstable();
        Some(Self {
            n,
            a: vec![0.0; layout.matrix[k]],
            q: vec![0.0; layout.q[k]],
            s: vec![0.0; layout.s[k]],
            block_pivots: vec![0; layout.rows[k]],
            layout,
            rows: block_rows,
            neighbours,
            slots: block_slots.concat(),
            global,
            corner_slots,
            c: vec![0.0; g * g],
            pivots: vec![0; g],
            work: Vec::new(),
            xg: vec![0.0; g],
            factorized: false,
        })
    }

    /// Order of the KKT matrix.
    pub fn order(&self) -> usize {
        self.n
    }

    /// Number of blocks.
    fn blocks(&self) -> usize {
        self.layout.rows.len() - 1
    }

    /// Eliminates every block (in parallel, [`BLOCKS_PER_TASK`] at a time): their inertia.
    fn eliminate_blocks(&mut self, values: &[f64], scale: f64) -> Result<Inertia, Singular> {
        let layout = &self.layout;
        let k = self.blocks();
        // Split the flat arrays into the tasks' contiguous pieces.
        let mut tasks = Vec::with_capacity(k.div_ceil(BLOCKS_PER_TASK));
        let (mut a, mut q, mut s, mut piv) = (
            &mut self.a[..],
            &mut self.q[..],
            &mut self.s[..],
            &mut self.block_pivots[..],
        );
        for first in (0..k).step_by(BLOCKS_PER_TASK) {
            let last = (first + BLOCKS_PER_TASK).min(k);
            let cut = |p: &[usize]| p[last] - p[first];
            let (a0, a1) = std::mem::take(&mut a).split_at_mut(cut(&layout.matrix));
            let (q0, q1) = std::mem::take(&mut q).split_at_mut(cut(&layout.q));
            let (s0, s1) = std::mem::take(&mut s).split_at_mut(cut(&layout.s));
            let (p0, p1) = std::mem::take(&mut piv).split_at_mut(cut(&layout.rows));
            tasks.push((first..last, a0, q0, s0, p0));
            (a, q, s, piv) = (a1, q1, s1, p1);
        }
        let slots = &self.slots;
        tasks
            .into_par_iter()
            .map_init(
                || (Vec::new(), Vec::new()),
                |(w, work), (range, mut a, mut q, mut s, mut piv)| {
                    let mut inertia = Inertia::default();
                    for e in range {
                        let size = |p: &[usize]| p[e + 1] - p[e];
                        let (a_e, a_rest) =
                            std::mem::take(&mut a).split_at_mut(size(&layout.matrix));
                        let (q_e, q_rest) = std::mem::take(&mut q).split_at_mut(size(&layout.q));
                        let (s_e, s_rest) = std::mem::take(&mut s).split_at_mut(size(&layout.s));
                        let (p_e, p_rest) =
                            std::mem::take(&mut piv).split_at_mut(size(&layout.rows));
                        (a, q, s, piv) = (a_rest, q_rest, s_rest, p_rest);
                        inertia += BlockSlices {
                            slots: &slots[layout.slots[e]..layout.slots[e + 1]],
                            a: a_e,
                            q: q_e,
                            s: s_e,
                            pivots: p_e,
                        }
                        .eliminate(
                            size(&layout.neighbours),
                            values,
                            scale,
                            (w, work),
                        )?;
                    }
                    Ok(inertia)
                },
            )
            .try_reduce(Inertia::default, |mut x, y| {
                x += y;
                Ok(x)
            })
    }

    /// Factorizes the matrix with the values of the analysed pattern; its inertia.
    pub fn factorize(&mut self, values: &[f64]) -> Result<Inertia, Singular> {
        self.factorized = false;
        let g = self.global.len();
        let scale = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut inertia = self.eliminate_blocks(values, scale)?;
        for j in 0..g {
            self.c[j * g..j * g + j + 1].fill(0.0);
        }
        for &(at, index) in &self.corner_slots {
            self.c[at] += values[index];
        }
        let layout = &self.layout;
        for e in 0..self.blocks() {
            let list = &self.neighbours[layout.neighbours[e]..layout.neighbours[e + 1]];
            let m = list.len();
            let s = &self.s[layout.s[e]..layout.s[e + 1]];
            for (cl, &cg) in list.iter().enumerate() {
                // Neighbours are sorted, so rl ≤ cl gives row ≤ column: the upper triangle.
                let column = &mut self.c[cg * g..];
                for (rl, &rg) in list[..=cl].iter().enumerate() {
                    column[rg] -= s[rl + cl * m];
                }
            }
        }
        if g > 0 {
            if self.work.is_empty() {
                let query = lapack_dsytrf(g, &mut self.c, &mut self.pivots, &mut [0.0], true);
                self.work = vec![0.0; (query.work_size.max(1.0) as usize).max(g)];
            }
            let out = lapack_dsytrf(g, &mut self.c, &mut self.pivots, &mut self.work, false);
            if out.info != 0 {
                return Err(Singular);
            }
            let corner = ldlt_inertia(g, &self.c, &self.pivots, scale);
            if corner.zero > 0 {
                return Err(Singular);
            }
            inertia += corner;
        }
        self.factorized = true;
        Ok(inertia)
    }

    /// Solves with the last successful factorization, in place.
    pub fn solve(&mut self, rhs: &mut [f64]) -> bool {
        if !self.factorized || rhs.len() != self.n {
            return false;
        }
        let layout = &self.layout;
        let k = layout.rows.len() - 1;
        let xg = &mut self.xg;
        for (x, &i) in xg.iter_mut().zip(&self.global) {
            *x = rhs[i];
        }
        // Forward: r_G −= Q_eᵀ r_B, and t_B = A_e⁻¹ r_B (kept in rhs).
        let mut local = [0.0f64; 16];
        let mut heap = Vec::new();
        for e in 0..k {
            let rows = &self.rows[layout.rows[e]..layout.rows[e + 1]];
            let b = rows.len();
            let r: &mut [f64] = if b <= local.len() {
                &mut local[..b]
            } else {
                heap.resize(b, 0.0);
                &mut heap[..]
            };
            for (v, &i) in r.iter_mut().zip(rows) {
                *v = rhs[i];
            }
            let list = &self.neighbours[layout.neighbours[e]..layout.neighbours[e + 1]];
            let q = &self.q[layout.q[e]..layout.q[e + 1]];
            for (qc, &p) in q.chunks_exact(b).zip(list) {
                xg[p] -= qc.iter().zip(r.iter()).map(|(x, y)| x * y).sum::<f64>();
            }
            let a = &self.a[layout.matrix[e]..layout.matrix[e + 1]];
            for (i, &row) in rows.iter().enumerate() {
                let mut v = 0.0;
                for (k, rk) in r.iter().enumerate() {
                    v += a[i + k * b] * rk;
                }
                rhs[row] = v;
            }
        }
        let g = self.global.len();
        if g > 0 && lapack_dsytrs(g, &self.c, &self.pivots, xg) != 0 {
            return false;
        }
        // Back: x_B = t_B − Q_e x_G.
        for e in 0..k {
            let rows = &self.rows[layout.rows[e]..layout.rows[e + 1]];
            let b = rows.len();
            let list = &self.neighbours[layout.neighbours[e]..layout.neighbours[e + 1]];
            let q = &self.q[layout.q[e]..layout.q[e + 1]];
            for (qc, &p) in q.chunks_exact(b).zip(list) {
                let x = xg[p];
                for (&row, qv) in rows.iter().zip(qc) {
                    rhs[row] -= qv * x;
                }
            }
        }
        for (&i, &v) in self.global.iter().zip(xg.iter()) {
            rhs[i] = v;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipopt::dense_kkt::DenseLdlt;
    use crate::ipopt::test_matrices::{add_dense_block, add_symmetric, lower_entries, uniform};
    use crate::nlp::{BlockCoupling, KktBlock};

    /// A KKT matrix (lower-triangle entries, 1-based) of a network-like structure: `k` blocks of
    /// two variables and two constraints, each touching a few of `gv` global variables and `gc`
    /// global constraints; global variables with a dense Hessian, constraint rows on them.
    /// Returns the pattern, values, the order, the number of variables and the partition.
    #[allow(clippy::type_complexity)]
    fn network_like(
        k: usize,
        (gv, gc): (usize, usize),
        seed: u64,
    ) -> (Vec<i32>, Vec<i32>, Vec<f64>, usize, usize, KktBlocks) {
        let mut rand = uniform(seed);
        // Variables: globals 0..gv, then per block (z, h); constraints: globals 0..gc, then per
        // block (pre, act).
        let n_vars = gv + 2 * k;
        let n = n_vars + gc + 2 * k;
        let mut a = vec![vec![0.0; n]; n];
        let set = add_symmetric;
        add_dense_block(&mut a, 0..gv, 3.0, &mut rand);
        for c in 0..gc {
            for v in 0..gv {
                if (c + v) % 3 == 0 {
                    set(&mut a, n_vars + c, v, rand());
                }
            }
            set(&mut a, n_vars + c, n_vars + c, -1e-3);
        }
        let mut chain = Vec::new();
        for e in 0..k {
            let (z, h) = (gv + 2 * e, gv + 2 * e + 1);
            let (pre, act) = (gc + 2 * e, gc + 2 * e + 1);
            let slope = 0.5 + 0.4 * rand();
            set(&mut a, z, z, rand()); // λ·σ''(z): either sign
            set(&mut a, n_vars + pre, z, 1.0);
            set(&mut a, n_vars + act, z, -slope);
            set(&mut a, n_vars + act, h, 1.0);
            // The pre-activation row meets a few global variables (weights, states); h meets a
            // global constraint (the collocation row) and a weight in the Hessian.
            for t in 0..3 {
                set(&mut a, n_vars + pre, (e * 7 + t * 5) % gv, rand());
            }
            set(&mut a, n_vars + (e % gc), h, rand());
            set(&mut a, h, (e * 3) % gv, 0.2 * rand());
            chain.push(KktBlock {
                variables: vec![z, h],
                constraints: vec![pre, act],
            });
        }
        let (r, c, v) = lower_entries(&a);
        let partition = KktBlocks {
            chain,
            coupling: BlockCoupling::Independent,
            ..Default::default()
        };
        (r, c, v, n, n_vars, partition)
    }

    #[test]
    fn schur_elimination_matches_the_dense_factorization() {
        for seed in 1..6 {
            let (r, c, v, n, n_vars, partition) = network_like(40, (12, 9), seed);
            let mut dense = DenseLdlt::new(n);
            let expected = dense.factorize(&r, &c, &v).expect("nonsingular");
            let mut schur = SchurLdlt::analyse(n, n_vars, &r, &c, &partition).expect("fits");
            let inertia = schur.factorize(&v).expect("nonsingular");
            assert_eq!(inertia, expected, "seed {seed}");
            let rhs: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            let (mut x_dense, mut x_schur) = (rhs.clone(), rhs.clone());
            assert!(dense.solve(&mut x_dense));
            assert!(schur.solve(&mut x_schur));
            let err = x_dense
                .iter()
                .zip(&x_schur)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            let size = x_dense.iter().fold(0.0f64, |m, a| m.max(a.abs()));
            assert!(err <= 1e-9 * size, "seed {seed}: {err} vs {size}");
        }
    }

    #[test]
    fn blocks_that_meet_each_other_are_refused() {
        let (mut r, mut c, mut v, n, n_vars, partition) = network_like(10, (6, 4), 3);
        // An entry between block 0's z and block 1's h.
        let (z0, h1): (usize, usize) = (6, 6 + 3);
        r.push(h1 as i32 + 1);
        c.push(z0 as i32 + 1);
        v.push(0.5);
        assert!(SchurLdlt::analyse(n, n_vars, &r, &c, &partition).is_none());
        // A row claimed by two blocks.
        let mut twice = partition.clone();
        twice.chain[1].variables[0] = twice.chain[0].variables[0];
        r.pop();
        c.pop();
        assert!(SchurLdlt::analyse(n, n_vars, &r, &c, &twice).is_none());
    }

    #[test]
    fn a_singular_block_is_reported() {
        let (r, c, mut v, n, n_vars, partition) = network_like(10, (6, 4), 4);
        // Zero block 2's whole KKT block (its act row then has only its coupling: singular).
        let rows: Vec<usize> = partition.chain[2].kkt_rows(n_vars).collect();
        for (k, (&ri, &ci)) in r.iter().zip(&c).enumerate() {
            let (i, j) = (ri as usize - 1, ci as usize - 1);
            if rows.contains(&i) && rows.contains(&j) {
                v[k] = 0.0;
            }
        }
        let mut schur = SchurLdlt::analyse(n, n_vars, &r, &c, &partition).expect("fits");
        assert_eq!(schur.factorize(&v), Err(Singular));
        assert!(!schur.solve(&mut vec![1.0; n]));
    }
}
