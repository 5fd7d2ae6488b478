//! A block-arrow KKT solver that stands in for MUMPS when the NLP supplies a chain partition
//! ([`KktBlocks`]): finite-element collocation couples each element only to its neighbours,
//! while the network parameters couple every point.
//!
//! With the KKT matrix ordered as the chain blocks `B_0, …, B_{K−1}` and then the global block
//! `G`, it is block tridiagonal with a dense last block row and column ("arrow"). Block
//! Gaussian elimination in that order keeps the pattern: each block `A_e` (Schur-updated by its
//! predecessor) is factorized with LAPACK's Bunch–Kaufman `dsytrf` (for its inertia) and
//! inverted explicitly (it is small), its neighbour's block and coupling to `G` are updated,
//! and finally the dense Schur complement `C − Σ_e W_eᵀ A_e⁻¹ W_e` on `G` is formed by one
//! BLAS-3 product (split over two threads by columns) and factorized. The cost is linear in
//! the number of blocks. MUMPS, seeing θ's dense columns, builds fronts of ~800 rows for 2000
//! points and, once IPOPT regularizes, delays pivots until the fronts reach thousands of rows
//! (seconds per factorization). By Sylvester's law the inertia IPOPT needs is the sum of the
//! blocks' inertias.
//!
//! Pivoting happens inside blocks only, so each block's KKT matrix must be nonsingular — true
//! for an element's states with their collocation equations (its Jacobian block is the
//! element's differentiation matrix minus `∂F/∂y`). A singular block is reported as a
//! singular KKT matrix, which IPOPT answers by regularizing.

use super::dense_kkt::{ldlt_inertia, Inertia, Singular};
use super::ffi::{blas_dgemm, lapack_dsytrf, lapack_dsytrs_many};
use crate::nlp::KktBlocks;
use rayon::slice::ParallelSliceMut;

/// Where a matrix entry is added.
#[derive(Clone, Copy, Debug)]
enum Slot {
    /// `blocks[offset]` (upper triangle of a chain block).
    Block(usize),
    /// `couplings[offset]` (block `e` rows × block `e+1` columns).
    Coupling(usize),
    /// `wt[offset]` (global row × chain column of `Wᵀ`).
    Global(usize),
    /// `c[offset]` (upper triangle of the global block).
    Corner(usize),
}

/// The factorization of a block-arrow KKT matrix.
#[derive(Debug)]
pub(crate) struct BlockArrowLdlt {
    n: usize,
    /// Block sizes and first stacked row of each chain block.
    sizes: Vec<usize>,
    starts: Vec<usize>,
    /// Chain rows in all (`R`) and the order of the global block (`g`).
    rows: usize,
    g: usize,
    /// Stacked position of each KKT index (chain: 0..R; global: R + j).
    position: Vec<usize>,
    /// Destination and index of each matrix entry given at the analysis, sorted by
    /// destination (so the assembly writes each array in order).
    slots: Vec<(Slot, usize)>,
    /// Chain blocks, each column-major `b×b` at `block_at[e]`: the (Schur-updated) matrix, then
    /// its explicit inverse.
    blocks: Vec<f64>,
    block_at: Vec<usize>,
    /// Couplings to the next block, column-major `b_e × b_{e+1}`, at `coupling_at[e]`.
    couplings: Vec<f64>,
    coupling_at: Vec<usize>,
    /// Global-to-chain coupling `Wᵀ`, column-major `g × R` (Schur-updated): block `e`'s
    /// columns are contiguous.
    wt: Vec<f64>,
    /// `(A_e⁻¹ W_e)ᵀ`, column-major `g × R`.
    qt: Vec<f64>,
    /// Global block, column-major `g × g`, then its factor.
    c: Vec<f64>,
    corner_pivots: Vec<i32>,
    work: Vec<f64>,
    factorized: bool,
}

impl BlockArrowLdlt {
    /// Prepares the solver for the KKT pattern of IPOPT (`n` rows: `n_vars` variables, then
    /// one row per constraint; 1-based triangle entries), or returns `None` when the partition
    /// does not cover the matrix exactly once or an entry couples non-neighbouring blocks.
    pub fn analyse(
        n: usize,
        n_vars: usize,
        rows: &[i32],
        cols: &[i32],
        partition: &KktBlocks,
    ) -> Option<Self> {
        const UNSET: usize = usize::MAX;
        let mut block_of = vec![UNSET; n];
        let mut position = vec![UNSET; n];
        let mut sizes = Vec::with_capacity(partition.chain.len());
        let mut starts = Vec::with_capacity(partition.chain.len());
        let kkt_rows = |b: &crate::nlp::KktBlock| {
            b.variables
                .iter()
                .copied()
                .chain(b.constraints.iter().map(move |&j| n_vars + j))
                .collect::<Vec<usize>>()
        };
        let mut next = 0;
        for (e, block) in partition.chain.iter().enumerate() {
            let members = kkt_rows(block);
            if members.is_empty() {
                return None;
            }
            starts.push(next);
            sizes.push(members.len());
            for i in members {
                if i >= n || block_of[i] != UNSET {
                    return None;
                }
                block_of[i] = e;
                position[i] = next;
                next += 1;
            }
        }
        let r = next;
        let global = kkt_rows(&partition.global);
        let g = global.len();
        for (j, i) in global.into_iter().enumerate() {
            if i >= n || block_of[i] != UNSET {
                return None;
            }
            block_of[i] = partition.chain.len();
            position[i] = r + j;
        }
        if block_of.contains(&UNSET) {
            return None;
        }
        let k = sizes.len();
        let mut block_at = Vec::with_capacity(k);
        let mut coupling_at = Vec::with_capacity(k);
        let (mut nb, mut nc) = (0, 0);
        for e in 0..k {
            block_at.push(nb);
            nb += sizes[e] * sizes[e];
            coupling_at.push(nc);
            if e + 1 < k {
                nc += sizes[e] * sizes[e + 1];
            }
        }
        let mut slots = Vec::with_capacity(rows.len());
        for (&ri, &ci) in rows.iter().zip(cols) {
            let (i, j) = (ri as usize - 1, ci as usize - 1);
            if i >= n || j >= n {
                return None;
            }
            let (bi, bj) = (block_of[i], block_of[j]);
            let (pi, pj) = (position[i], position[j]);
            let slot = match (bi == k, bj == k) {
                (true, true) => {
                    let (a, b) = (pi.min(pj) - r, pi.max(pj) - r);
                    Slot::Corner(a + b * g)
                }
                (false, true) => Slot::Global((pj - r) + pi * g),
                (true, false) => Slot::Global((pi - r) + pj * g),
                (false, false) if bi == bj => {
                    let (a, b) = (pi.min(pj) - starts[bi], pi.max(pj) - starts[bi]);
                    Slot::Block(block_at[bi] + a + b * sizes[bi])
                }
                (false, false) if bi.abs_diff(bj) == 1 => {
                    // Row in the earlier block, column in the later one.
                    let (e, pe, pf) = if bi < bj { (bi, pi, pj) } else { (bj, pj, pi) };
                    let (a, b) = (pe - starts[e], pf - starts[e + 1]);
                    Slot::Coupling(coupling_at[e] + a + b * sizes[e])
                }
                _ => return None,
            };
            slots.push((slot, slots.len()));
        }
        let key = |s: &Slot| match *s {
            Slot::Block(at) => (0, at),
            Slot::Coupling(at) => (1, at),
            Slot::Global(at) => (2, at),
            Slot::Corner(at) => (3, at),
        };
        // The index breaks ties (duplicates), so the order is the stable sort's.
        slots.par_sort_unstable_by_key(|&(slot, index)| (key(&slot), index));
        Some(Self {
            n,
            sizes,
            starts,
            rows: r,
            g,
            position,
            slots,
            blocks: vec![0.0; nb],
            block_at,
            couplings: vec![0.0; nc],
            coupling_at,
            wt: vec![0.0; r * g],
            qt: vec![0.0; r * g],
            c: vec![0.0; g * g],
            corner_pivots: vec![0; g],
            work: Vec::new(),
            factorized: false,
        })
    }

    /// Order of the matrix.
    pub fn order(&self) -> usize {
        self.n
    }

    /// Assembles the values (in the order of the analysed pattern, duplicates summed) and
    /// factorizes.
    pub fn factorize(&mut self, values: &[f64]) -> Result<Inertia, Singular> {
        self.factorized = false;
        self.blocks.fill(0.0);
        self.couplings.fill(0.0);
        self.wt.fill(0.0);
        self.c.fill(0.0);
        for &(slot, index) in &self.slots {
            let v = values[index];
            match slot {
                Slot::Block(at) => self.blocks[at] += v,
                Slot::Coupling(at) => self.couplings[at] += v,
                Slot::Global(at) => self.wt[at] += v,
                Slot::Corner(at) => self.c[at] += v,
            }
        }
        let scale = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let (r, g) = (self.rows, self.g);
        let widest = self.sizes.iter().copied().max().unwrap_or(0);
        if self.work.len() < 64 * widest.max(g).max(1) {
            self.work = vec![0.0; 64 * widest.max(g).max(1)];
        }
        let mut factor = vec![0.0; widest * widest];
        let mut pivots = vec![0; widest];
        let mut x = vec![0.0; widest * widest];
        let mut total = Inertia {
            positive: 0,
            negative: 0,
            zero: 0,
        };
        let k = self.sizes.len();
        for e in 0..k {
            let (b, start, at) = (self.sizes[e], self.starts[e], self.block_at[e]);
            let (head, tail) = self.blocks.split_at_mut(at + b * b);
            let block = &mut head[at..];
            // Bunch–Kaufman for the inertia, then the explicit inverse (kept in place).
            let factor = &mut factor[..b * b];
            factor.copy_from_slice(block);
            let pivots = &mut pivots[..b];
            if lapack_dsytrf(b, factor, pivots, &mut self.work, false).info != 0 {
                return Err(Singular);
            }
            total += ldlt_inertia(b, factor, pivots, scale);
            block.fill(0.0);
            block.iter_mut().step_by(b + 1).for_each(|v| *v = 1.0);
            if lapack_dsytrs_many(b, factor, pivots, (block, b), b) != 0 {
                return Err(Singular);
            }
            let inverse: &[f64] = block;
            // Q_eᵀ = W_eᵀ A_e⁻¹.
            let cols = start * g..(start + b) * g;
            blas_dgemm(
                (false, false),
                (g, b, b),
                1.0,
                (&self.wt[cols.clone()], g),
                (inverse, b),
                0.0,
                (&mut self.qt[cols.clone()], g),
            );
            if e + 1 == k {
                continue;
            }
            // The next block: A_{e+1} −= E_eᵀ A_e⁻¹ E_e, W_{e+1}ᵀ −= Q_eᵀ E_e.
            let bn = self.sizes[e + 1];
            let coupling = &self.couplings[self.coupling_at[e]..self.coupling_at[e] + b * bn];
            let x = &mut x[..b * bn];
            blas_dgemm(
                (false, false),
                (b, bn, b),
                1.0,
                (inverse, b),
                (coupling, b),
                0.0,
                (x, b),
            );
            let next = &mut tail[..bn * bn];
            blas_dgemm(
                (true, false),
                (bn, bn, b),
                -1.0,
                (coupling, b),
                (x, b),
                1.0,
                (next, bn),
            );
            let next_cols = (start + b) * g..(start + b + bn) * g;
            blas_dgemm(
                (false, false),
                (g, bn, b),
                -1.0,
                (&self.qt[cols], g),
                (coupling, b),
                1.0,
                (&mut self.wt[next_cols], g),
            );
        }
        // Global block: C −= Wᵀ Q over the whole chain at once.
        if g > 0 {
            if r > 0 {
                // Two column halves of C on two threads (single-threaded BLAS each): the
                // largest product of the factorization, and bitwise independent of the split.
                let half = g / 2;
                let (left, right) = self.c.split_at_mut(half * g);
                let (wt, qt) = (&self.wt, &self.qt);
                let product = |cols: std::ops::Range<usize>, c: &mut [f64]| {
                    blas_dgemm(
                        (false, true),
                        (g, cols.len(), r),
                        -1.0,
                        (wt, g),
                        (&qt[cols.start..], g),
                        1.0,
                        (c, g),
                    );
                };
                rayon::join(|| product(0..half, left), || product(half..g, right));
            }
            let out = lapack_dsytrf(
                g,
                &mut self.c,
                &mut self.corner_pivots,
                &mut self.work,
                false,
            );
            if out.info != 0 {
                return Err(Singular);
            }
            total += ldlt_inertia(g, &self.c, &self.corner_pivots, scale);
        }
        if total.zero > 0 {
            return Err(Singular);
        }
        self.factorized = true;
        Ok(total)
    }

    /// Solves the system in place (`rhs` in KKT order) with the last factorization.
    pub fn solve(&mut self, rhs: &mut [f64]) -> bool {
        if !self.factorized || rhs.len() != self.n {
            return false;
        }
        let (r, g) = (self.rows, self.g);
        let mut stacked = vec![0.0; r + g];
        for (i, &v) in rhs.iter().enumerate() {
            stacked[self.position[i]] = v;
        }
        let (chain, global) = stacked.split_at_mut(r);
        let k = self.sizes.len();
        let mut z = vec![0.0; self.sizes.iter().copied().max().unwrap_or(0)];
        // Forward: r'_{e+1} = r_{e+1} − E_eᵀ A_e⁻¹ r'_e; r'_G = r_G − Σ W_eᵀ A_e⁻¹ r'_e.
        for e in 0..k {
            let (b, start) = (self.sizes[e], self.starts[e]);
            let z = &mut z[..b];
            self.block_apply(e, &chain[start..start + b], z);
            let wt = &self.wt[start * g..(start + b) * g];
            for (column, &zi) in wt.chunks_exact(g).zip(z.iter()) {
                global
                    .iter_mut()
                    .zip(column)
                    .for_each(|(v, w)| *v -= w * zi);
            }
            if e + 1 < k {
                let bn = self.sizes[e + 1];
                let coupling = &self.couplings[self.coupling_at[e]..self.coupling_at[e] + b * bn];
                let next = &mut chain[start + b..start + b + bn];
                for (v, column) in next.iter_mut().zip(coupling.chunks_exact(b)) {
                    *v -= column.iter().zip(z.iter()).map(|(a, b)| a * b).sum::<f64>();
                }
            }
        }
        if g > 0 && lapack_dsytrs_many(g, &self.c, &self.corner_pivots, (global, g), 1) != 0 {
            return false;
        }
        // Backward: x_e = A_e⁻¹ (r'_e − E_e x_{e+1} − W_e x_G).
        let mut t = vec![0.0; z.len()];
        for e in (0..k).rev() {
            let (b, start) = (self.sizes[e], self.starts[e]);
            let t = &mut t[..b];
            t.copy_from_slice(&chain[start..start + b]);
            let wt = &self.wt[start * g..(start + b) * g];
            for (ti, column) in t.iter_mut().zip(wt.chunks_exact(g)) {
                *ti -= column
                    .iter()
                    .zip(global.iter())
                    .map(|(a, b)| a * b)
                    .sum::<f64>();
            }
            if e + 1 < k {
                let bn = self.sizes[e + 1];
                let coupling = &self.couplings[self.coupling_at[e]..self.coupling_at[e] + b * bn];
                let next = &chain[start + b..start + b + bn];
                for (&x, column) in next.iter().zip(coupling.chunks_exact(b)) {
                    t.iter_mut().zip(column).for_each(|(ti, ci)| *ti -= ci * x);
                }
            }
            self.block_apply(e, t, &mut chain[start..start + b]);
        }
        for (i, v) in rhs.iter_mut().enumerate() {
            *v = stacked[self.position[i]];
        }
        true
    }

    /// `out ← A_e⁻¹ v` with block `e`'s explicit inverse (symmetric, column-major).
    fn block_apply(&self, e: usize, v: &[f64], out: &mut [f64]) {
        let (b, at) = (self.sizes[e], self.block_at[e]);
        let inverse = &self.blocks[at..at + b * b];
        for (o, column) in out.iter_mut().zip(inverse.chunks_exact(b)) {
            *o = column.iter().zip(v).map(|(a, b)| a * b).sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::dense_kkt::DenseLdlt;
    use super::*;
    use crate::nlp::KktBlock;

    /// A KKT matrix of a chain of `k` "elements" (2 states + 2 equations each, coupled to the
    /// previous element's states) plus 3 global variables coupled to everything; returns the
    /// lower-triangle entries (1-based), the partition and the number of variables.
    fn chain_kkt(k: usize, seed: u64) -> (Vec<i32>, Vec<i32>, Vec<f64>, KktBlocks, usize) {
        let mut state = seed;
        let mut rand = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        };
        // Eleven global unknowns: every quarter of the Schur product is exercised.
        const NT: usize = 11;
        let n_vars = 2 * k + NT;
        let mut entries = std::collections::BTreeMap::new();
        let mut put = |i: usize, j: usize, v: f64| {
            let (a, b) = (i.max(j), i.min(j));
            *entries.entry((a, b)).or_insert(0.0) += v;
        };
        let theta = |t: usize| 2 * k + t;
        for e in 0..k {
            for s in 0..2 {
                let x = 2 * e + s;
                // Indefinite Hessian diagonal, coupling to the previous element and to θ.
                put(x, x, 0.5 + rand());
                if e > 0 {
                    put(x, 2 * (e - 1) + s, 0.2 * rand());
                }
                for t in 0..NT {
                    put(x, theta(t), 0.3 * rand());
                }
                // Equation row: own states (dominant), previous states, θ.
                let c = n_vars + 2 * e + s;
                put(c, x, 3.0 + rand());
                put(c, 2 * e + 1 - s, rand());
                if e > 0 {
                    put(c, 2 * (e - 1) + s, -2.0 + rand());
                }
                for t in 0..NT {
                    put(c, theta(t), rand());
                }
            }
        }
        for t in 0..NT {
            put(theta(t), theta(t), 1.0 + rand());
        }
        put(theta(1), theta(0), 0.4);
        // Duplicate entries must be summed.
        put(0, 0, 0.0);
        let mut rows = Vec::new();
        let mut cols = Vec::new();
        let mut vals = Vec::new();
        for ((i, j), v) in entries {
            rows.push(i as i32 + 1);
            cols.push(j as i32 + 1);
            vals.push(v);
        }
        rows.push(1);
        cols.push(1);
        vals.push(0.25);
        let partition = KktBlocks {
            chain: (0..k)
                .map(|e| KktBlock {
                    variables: vec![2 * e, 2 * e + 1],
                    constraints: vec![2 * e, 2 * e + 1],
                })
                .collect(),
            global: KktBlock {
                variables: (0..NT).map(theta).collect(),
                constraints: vec![],
            },
        };
        (rows, cols, vals, partition, n_vars)
    }

    #[test]
    fn block_arrow_elimination_matches_the_dense_factorization() {
        for (k, seed) in [(1, 3), (2, 5), (7, 11), (40, 17)] {
            let (rows, cols, vals, partition, n_vars) = chain_kkt(k, seed);
            let n = n_vars + 2 * k;
            let mut block = BlockArrowLdlt::analyse(n, n_vars, &rows, &cols, &partition)
                .expect("the partition fits");
            let mut dense = DenseLdlt::new(n);
            let inertia = block.factorize(&vals).unwrap();
            assert_eq!(
                inertia,
                dense.factorize(&rows, &cols, &vals).unwrap(),
                "k = {k}"
            );
            let rhs: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            let (mut x, mut y) = (rhs.clone(), rhs.clone());
            assert!(block.solve(&mut x) && dense.solve(&mut y));
            let err = x
                .iter()
                .zip(&y)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            let size = y.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(err < 1e-10 * size, "k = {k}: {err:e} (|x| = {size})");
        }
    }

    #[test]
    fn partitions_that_do_not_fit_are_refused() {
        let (rows, cols, _, partition, n_vars) = chain_kkt(4, 1);
        let n = n_vars + 8;
        // Blocks 0 and 2 swapped: entries couple blocks two apart.
        let mut swapped = partition.clone();
        swapped.chain.swap(0, 2);
        assert!(BlockArrowLdlt::analyse(n, n_vars, &rows, &cols, &swapped).is_none());
        // A variable left out, or given twice.
        let mut missing = partition.clone();
        missing.chain[1].variables.pop();
        assert!(BlockArrowLdlt::analyse(n, n_vars, &rows, &cols, &missing).is_none());
        let mut twice = partition;
        twice.global.variables.push(0);
        assert!(BlockArrowLdlt::analyse(n, n_vars, &rows, &cols, &twice).is_none());
    }
}
