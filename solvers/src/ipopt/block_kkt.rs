//! A block-arrow KKT solver that stands in for MUMPS when the NLP supplies a chain partition
//! ([`KktBlocks`]): finite-element collocation couples each element only to its neighbours,
//! while the network parameters couple every point.
//!
//! With the KKT matrix ordered as the chain blocks `B_0, …, B_{K−1}` and then the global block
//! `G`, it is block tridiagonal with a dense last block row and column ("arrow"). Block
//! Gaussian elimination in that order keeps the pattern: each block `A_e` (Schur-updated by its
//! predecessor) is factorized with LAPACK's Bunch–Kaufman `dsytrf` (for its inertia) and
//! inverted explicitly when it is small (an element: [`FACTORED_FROM`]) or kept as its factor
//! (a whole trajectory on a global grid, solved against with LAPACK's blocked `dsytrs2`),
//! its neighbour's block and coupling to `G` are updated,
//! and finally the dense Schur complement `C − Σ_e W_eᵀ A_e⁻¹ W_e` on `G` is formed by BLAS-3
//! products and factorized. The cost is linear in the number of blocks. MUMPS, seeing θ's
//! dense columns, builds fronts of ~800 rows for 2000 points and, once IPOPT regularizes,
//! delays pivots until the fronts reach thousands of rows (seconds per factorization). By
//! Sylvester's law the inertia IPOPT needs is the sum of the blocks' inertias.
//!
//! The elimination runs forward along the chain only: eliminated from the far end (or from
//! both ends at once) the chain's recurrences follow the dynamics backward in time, and on a
//! long window of a contracting system (forced Van der Pol over 150 time units) the solutions
//! drift from MUMPS's within a few iterations. The work is shared between two threads instead
//! by the global unknowns: the coupling `Wᵀ` obeys `W_{e+1}ᵀ −= W_eᵀ A_e⁻¹ E_e`, one
//! independent recurrence per global row, so `Wᵀ` is stored in row panels ([`PANELS`]), each
//! carried along the chain on its own thread once the (cheap) chain of blocks is inverted.
//!
//! Pivoting happens inside blocks only, so each block's KKT matrix must be nonsingular — true
//! for an element's states with their collocation equations (its Jacobian block is the
//! element's differentiation matrix minus `∂F/∂y`), and for a trajectory on a global grid
//! whose first node's states and rows the builder puts with θ (`D` without its first row and
//! column minus `∂F/∂y`: an initial-value operator). A singular block is reported as a
//! singular KKT matrix, which IPOPT answers by regularizing.

use super::dense_kkt::{ldlt_inertia, Inertia, Singular};
use super::ffi::{
    blas_dgemm, lapack_dsytrf, lapack_dsytri, lapack_dsytrs, lapack_dsytrs2, lapack_dsytrs_many,
};
use crate::nlp::KktBlocks;
use rayon::prelude::*;

/// Row panels of `Wᵀ` and `Qᵀ`: the global unknowns in this many groups, each carried along
/// the chain on its own thread (the machines this is tuned for have two cores).
const PANELS: usize = 2;

/// Blocks of this order and larger keep their Bunch–Kaufman factor and are solved against
/// (`dsytrs2`, BLAS-3) instead of being inverted explicitly: `dsytri` works column by column
/// (BLAS-2) and costs twice the factorization, which dominated joint solves of several
/// trajectories on global grids (one 800-row block each). Elements of finite-element chains
/// are far smaller and keep their inverses, which the chain's recurrences apply cheaply.
const FACTORED_FROM: usize = 128;

/// A chain block after its elimination, as the thread carrying `Wᵀ` receives it.
enum Eliminated {
    /// The explicit inverse (full, symmetric, column-major).
    Inverse(Vec<f64>),
    /// The Bunch–Kaufman factor (`dsytrf('U')`) and its pivots.
    Factor(Vec<f64>, Vec<i32>),
}

/// Where a matrix entry is added, other than `Wᵀ`.
#[derive(Clone, Copy, Debug)]
enum Slot {
    /// `blocks[offset]` (upper triangle of a chain block).
    Block(usize),
    /// `couplings[offset]` (block `e`'s interface rows × block `e+1` columns).
    Coupling(usize),
    /// `c[offset]` (upper triangle of the global block).
    Corner(usize),
}

/// A contiguous group of global rows of `Wᵀ` and `Qᵀ`.
#[derive(Debug)]
struct Panel {
    /// The global rows (`h` of them).
    range: std::ops::Range<usize>,
    /// `Wᵀ`'s rows, column-major `h × R` (Schur-updated along the chain): block `e`'s columns
    /// are contiguous.
    wt: Vec<f64>,
    /// `(A_e⁻¹ W_e)ᵀ`'s rows, column-major `h × R`.
    qt: Vec<f64>,
    /// Offset in `wt` and value index of each matrix entry landing in the panel, sorted (32
    /// bits each: IPOPT counts entries in 32-bit integers, and a panel of 2³² values would
    /// not fit in memory).
    slots: Vec<(u32, u32)>,
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
    /// Destination and index of each matrix entry given at the analysis outside `Wᵀ`,
    /// sorted by destination (so the assembly writes each array in order).
    slots: Vec<(Slot, usize)>,
    /// `Wᵀ` and `Qᵀ` by groups of global rows.
    panels: Vec<Panel>,
    /// Chain blocks, each column-major `b×b` at `block_at[e]`: the (Schur-updated) matrix, then
    /// its explicit inverse, or its factor for blocks of order [`FACTORED_FROM`] and more.
    blocks: Vec<f64>,
    block_at: Vec<usize>,
    /// The factors' pivots, block `e`'s at `starts[e]`.
    pivots: Vec<i32>,
    /// Couplings to the next block `E_e` on block `e`'s interface rows (those with an entry
    /// coupled to block `e + 1`, in order: the states the elements share), column-major
    /// `|I_e| × b_{e+1}`, at `coupling_at[e]`; the other rows of `E_e` are zero.
    couplings: Vec<f64>,
    coupling_at: Vec<usize>,
    interfaces: Vec<Vec<usize>>,
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
        let kkt_rows = |b: &crate::nlp::KktBlock| b.kkt_rows(n_vars).collect::<Vec<usize>>();
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
        let mut nb = 0;
        for size in &sizes {
            block_at.push(nb);
            nb += size * size;
        }
        // The global rows in PANELS contiguous groups (empty ones dropped).
        let bounds: Vec<std::ops::Range<usize>> = (0..PANELS)
            .map(|p| p * g / PANELS..(p + 1) * g / PANELS)
            .filter(|range| !range.is_empty())
            .collect();
        let panel_of: Vec<(usize, usize)> = bounds
            .iter()
            .enumerate()
            .flat_map(|(p, range)| (0..range.len()).map(move |row| (p, row)))
            .collect();
        let mut panel_slots = vec![Vec::with_capacity(rows.len() / PANELS); bounds.len()];
        let mut slots = Vec::new();
        // (block e, row in e, column in e + 1, value index) of each entry of E_e.
        let mut coupling_entries = Vec::new();
        for (index, (&ri, &ci)) in rows.iter().zip(cols).enumerate() {
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
                (false, true) => {
                    let (p, row) = panel_of[pj - r];
                    let at = u32::try_from(row + pi * bounds[p].len()).ok()?;
                    panel_slots[p].push((at, u32::try_from(index).ok()?));
                    continue;
                }
                (true, false) => {
                    let (p, row) = panel_of[pi - r];
                    let at = u32::try_from(row + pj * bounds[p].len()).ok()?;
                    panel_slots[p].push((at, u32::try_from(index).ok()?));
                    continue;
                }
                (false, false) if bi == bj => {
                    let (a, b) = (pi.min(pj) - starts[bi], pi.max(pj) - starts[bi]);
                    Slot::Block(block_at[bi] + a + b * sizes[bi])
                }
                (false, false) if bi.abs_diff(bj) == 1 => {
                    // Row in the earlier block, column in the later one.
                    let (e, pe, pf) = if bi < bj { (bi, pi, pj) } else { (bj, pj, pi) };
                    coupling_entries.push((e, pe - starts[e], pf - starts[e + 1], index));
                    continue;
                }
                _ => return None,
            };
            slots.push((slot, index));
        }
        let mut interfaces = vec![Vec::new(); k.saturating_sub(1)];
        for &(e, a, _, _) in &coupling_entries {
            interfaces[e].push(a);
        }
        let mut coupling_at = Vec::with_capacity(k);
        let mut nc = 0;
        for (e, rows) in interfaces.iter_mut().enumerate() {
            rows.sort_unstable();
            rows.dedup();
            coupling_at.push(nc);
            nc += rows.len() * sizes[e + 1];
        }
        for (e, a, b, index) in coupling_entries {
            let row = interfaces[e].binary_search(&a).ok()?;
            slots.push((
                Slot::Coupling(coupling_at[e] + row + b * interfaces[e].len()),
                index,
            ));
        }
        let key = |s: &Slot| match *s {
            Slot::Block(at) => (0, at),
            Slot::Coupling(at) => (1, at),
            Slot::Corner(at) => (2, at),
        };
        // The index breaks ties (duplicates), so the order is the stable sort's.
        slots.par_sort_unstable_by_key(|&(slot, index)| (key(&slot), index));
        let panels = bounds
            .into_iter()
            .zip(panel_slots)
            .map(|(range, mut slots)| {
                slots.par_sort_unstable();
                Panel {
                    wt: vec![0.0; range.len() * r],
                    qt: vec![0.0; range.len() * r],
                    range,
                    slots,
                }
            })
            .collect();
        Some(Self {
            n,
            sizes,
            starts,
            rows: r,
            g,
            position,
            slots,
            panels,
            blocks: vec![0.0; nb],
            block_at,
            pivots: vec![0; r],
            couplings: vec![0.0; nc],
            coupling_at,
            interfaces,
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
        let scale = self.assemble(values);
        let mut total = self.eliminate_chain(scale)?;
        let g = self.g;
        if g > 0 {
            if self.rows > 0 {
                self.subtract_schur_product();
            }
            if self.work.len() < 64 * g {
                self.work = vec![0.0; 64 * g];
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

    /// Zeroes the arrays and adds the values into them, the panels of `Wᵀ` (nearly all the
    /// entries) on their own threads; returns the largest magnitude (every entry lands in
    /// exactly one place, so it is the largest over the places).
    fn assemble(&mut self, values: &[f64]) -> f64 {
        self.blocks.fill(0.0);
        self.couplings.fill(0.0);
        self.c.fill(0.0);
        let mut largest = 0.0f64;
        for &(slot, index) in &self.slots {
            let v = values[index];
            largest = largest.max(v.abs());
            match slot {
                Slot::Block(at) => self.blocks[at] += v,
                Slot::Coupling(at) => self.couplings[at] += v,
                Slot::Corner(at) => self.c[at] += v,
            }
        }
        self.panels
            .par_iter_mut()
            .map(|panel| {
                // One pass in the order of `wt`: the slots are sorted, so duplicates are
                // adjacent and the positions no entry lands on are the gaps between them.
                let wt = &mut panel.wt;
                let (mut next, mut largest) = (0, 0.0f64);
                for &(at, index) in &panel.slots {
                    let (at, v) = (at as usize, values[index as usize]);
                    largest = largest.max(v.abs());
                    if at + 1 == next {
                        wt[at] += v;
                    } else {
                        wt[next..at].fill(0.0);
                        wt[at] = v;
                        next = at + 1;
                    }
                }
                wt[next..].fill(0.0);
                largest
            })
            .reduce(|| largest, f64::max)
    }

    /// The chain's elimination, pipelined over two threads: one inverts the blocks in order
    /// ([`ChainLayout::invert`]) and passes each inverse on; the other carries the panels of
    /// `Wᵀ` past each block as its inverse arrives ([`ChainLayout::carry`]). Returns the
    /// blocks' inertia.
    fn eliminate_chain(&mut self, scale: f64) -> Result<Inertia, Singular> {
        // Out of `self` while they change, so the layout can borrow the rest.
        let (mut blocks, mut panels, mut pivots) = (
            std::mem::take(&mut self.blocks),
            std::mem::take(&mut self.panels),
            std::mem::take(&mut self.pivots),
        );
        let layout = self.layout();
        let (sender, receiver) = std::sync::mpsc::channel::<Eliminated>();
        let (chain, carried, chain_pivots) = (&mut blocks, &mut panels, &mut pivots);
        let (inertia, carried_ok) = rayon::join(
            move || layout.invert(chain, chain_pivots, scale, sender),
            move || {
                // Ends when the sender is dropped (all blocks passed on, or a singular one).
                let mut ok = true;
                for (e, mut eliminated) in receiver.iter().enumerate() {
                    for panel in carried.iter_mut() {
                        ok &= layout.carry(e, &mut eliminated, panel);
                    }
                }
                ok
            },
        );
        (self.blocks, self.panels, self.pivots) = (blocks, panels, pivots);
        if !carried_ok {
            return Err(Singular);
        }
        inertia
    }

    /// `C −= Wᵀ Q` on the upper triangle of `C` only (all `dsytrf('U')` reads), the largest
    /// product of the factorization: `C`'s columns in pieces (two per panel of global rows),
    /// each taking the rows down to its last column (5/8 of the full product's work with two
    /// panels), on two threads (single-threaded BLAS each) in an order that gives both the
    /// same work. Each product is an independent BLAS call, so the result does not depend on
    /// which thread runs it. (Finer pieces save more of the kernel's work but repack `Wᵀ` once
    /// per piece: three per panel were slower than two on `vanderpol-long`, and one per panel
    /// leaves the threads unbalanced.)
    fn subtract_schur_product(&mut self) {
        let (r, g) = (self.rows, self.g);
        let panels = &self.panels;
        // Column ranges of C: each panel's rows split in two, with the panel holding them.
        let ranges: Vec<(usize, std::ops::Range<usize>)> = panels
            .iter()
            .enumerate()
            .flat_map(|(q, panel)| {
                let (a, h) = (panel.range.start, panel.range.len());
                let mid = a + h / 2;
                [(q, a..mid), (q, mid..a + h)]
            })
            .filter(|(_, cols)| !cols.is_empty())
            .collect();
        let mut pieces: std::collections::VecDeque<(usize, std::ops::Range<usize>, &mut [f64])> =
            std::collections::VecDeque::with_capacity(ranges.len());
        let mut rest = &mut self.c[..];
        for (q, cols) in ranges {
            let (piece, tail) = rest.split_at_mut(cols.len() * g);
            pieces.push_back((q, cols, piece));
            rest = tail;
        }
        // Pair the small pieces with the large ones: the two halves of the list carry equal work.
        let mut order = Vec::with_capacity(pieces.len());
        let mut front = true;
        while let Some(piece) = if front {
            pieces.pop_front()
        } else {
            pieces.pop_back()
        } {
            order.push(piece);
            front = !front;
        }
        let (first, second): (Vec<_>, Vec<_>) = order
            .into_iter()
            .enumerate()
            .partition(|(i, _)| (i / 2) % 2 == 0);
        type Piece<'a> = (usize, (usize, std::ops::Range<usize>, &'a mut [f64]));
        let product = |pieces: Vec<Piece>| {
            for (_, (q, cols, c)) in pieces {
                let columns = &panels[q];
                let hq = columns.range.len();
                let offset = cols.start - columns.range.start;
                for rows in panels.iter().take(q + 1) {
                    // This panel's rows down to the range's last column.
                    let h = rows.range.len();
                    let m = h.min(cols.end - rows.range.start);
                    blas_dgemm(
                        (false, true),
                        (m, cols.len(), r),
                        -1.0,
                        (&rows.wt, h),
                        (&columns.qt[offset..], hq),
                        1.0,
                        (&mut c[rows.range.start..], g),
                    );
                }
            }
        };
        rayon::join(|| product(first), || product(second));
    }

    /// Solves the system in place (`rhs` in KKT order) with the last factorization: the chain
    /// recurrences in order, the products with `Wᵀ` on two threads.
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
        // Forward: z_e = A_e⁻¹ r'_e with r'_{e+1} = r_{e+1} − E_eᵀ z_e; r'_G = r_G − Wᵀ z.
        let mut z = vec![0.0; r];
        for e in 0..k {
            let (b, start) = (self.sizes[e], self.starts[e]);
            let (done, next) = chain.split_at_mut(start + b);
            let z = &mut z[start..start + b];
            self.block_apply(e, &done[start..], z);
            if e + 1 < k {
                let (bn, rows) = (self.sizes[e + 1], &self.interfaces[e]);
                let coupling = self.layout().coupling(e);
                for (v, ec) in next[..bn]
                    .iter_mut()
                    .zip(coupling.chunks_exact(rows.len().max(1)))
                {
                    *v -= rows.iter().zip(ec).map(|(&ri, c)| c * z[ri]).sum::<f64>();
                }
            }
        }
        let mut pieces = Vec::with_capacity(self.panels.len());
        let mut rest = &mut global[..];
        for panel in &self.panels {
            let (piece, tail) = rest.split_at_mut(panel.range.len());
            pieces.push((panel, piece));
            rest = tail;
        }
        pieces.into_par_iter().for_each(|(panel, global)| {
            let h = panel.range.len();
            for (column, &zj) in panel.wt.chunks_exact(h).zip(&z) {
                global
                    .iter_mut()
                    .zip(column)
                    .for_each(|(v, w)| *v -= w * zj);
            }
        });
        if g > 0 && lapack_dsytrs_many(g, &self.c, &self.corner_pivots, (global, g), 1) != 0 {
            return false;
        }
        // Backward: x_e = A_e⁻¹ (r'_e − W_e x_G − E_e x_{e+1}), W x_G by halves of the chain.
        let mut w_x = vec![0.0; r];
        let half = r.div_ceil(2).max(1);
        let (panels, global) = (&self.panels, &*global);
        w_x.par_chunks_mut(half)
            .enumerate()
            .for_each(|(part, out)| {
                for (j, o) in out.iter_mut().enumerate() {
                    let column = part * half + j;
                    *o = panels
                        .iter()
                        .map(|panel| {
                            let h = panel.range.len();
                            let w = &panel.wt[column * h..(column + 1) * h];
                            dot(w, &global[panel.range.clone()])
                        })
                        .sum();
                }
            });
        let mut t = vec![0.0; self.widest()];
        for e in (0..k).rev() {
            let (b, start) = (self.sizes[e], self.starts[e]);
            let t = &mut t[..b];
            let (head, next) = chain.split_at_mut(start + b);
            let own = &mut head[start..];
            t.iter_mut()
                .zip(own.iter())
                .zip(&w_x[start..start + b])
                .for_each(|((t, r), w)| *t = r - w);
            if e + 1 < k {
                let (bn, rows) = (self.sizes[e + 1], &self.interfaces[e]);
                let coupling = self.layout().coupling(e);
                for (&x, ec) in next[..bn]
                    .iter()
                    .zip(coupling.chunks_exact(rows.len().max(1)))
                {
                    rows.iter().zip(ec).for_each(|(&ri, c)| t[ri] -= c * x);
                }
            }
            self.block_apply(e, t, own);
        }
        for (i, v) in rhs.iter_mut().enumerate() {
            *v = stacked[self.position[i]];
        }
        true
    }

    /// The chain's layout and couplings.
    fn layout(&self) -> ChainLayout<'_> {
        ChainLayout {
            sizes: &self.sizes,
            starts: &self.starts,
            block_at: &self.block_at,
            couplings: &self.couplings,
            coupling_at: &self.coupling_at,
            interfaces: &self.interfaces,
        }
    }

    fn widest(&self) -> usize {
        self.sizes.iter().copied().max().unwrap_or(0)
    }

    /// `out ← A_e⁻¹ v` with block `e`'s explicit inverse (symmetric, column-major) or its
    /// factor.
    fn block_apply(&self, e: usize, v: &[f64], out: &mut [f64]) {
        let (b, at) = (self.sizes[e], self.block_at[e]);
        let block = &self.blocks[at..at + b * b];
        if b >= FACTORED_FROM {
            out[..b].copy_from_slice(&v[..b]);
            let start = self.starts[e];
            // INFO is nonzero only for invalid arguments, which the sizes rule out.
            lapack_dsytrs(b, block, &self.pivots[start..start + b], &mut out[..b]);
            return;
        }
        for (o, column) in out.iter_mut().zip(block.chunks_exact(b)) {
            *o = dot(column, v);
        }
    }
}

/// The chain's layout and couplings, shared by the two threads of
/// [`BlockArrowLdlt::eliminate_chain`].
#[derive(Clone, Copy)]
struct ChainLayout<'a> {
    sizes: &'a [usize],
    starts: &'a [usize],
    block_at: &'a [usize],
    couplings: &'a [f64],
    coupling_at: &'a [usize],
    interfaces: &'a [Vec<usize>],
}

impl<'a> ChainLayout<'a> {
    /// `E_e` on block `e`'s interface rows (column-major `|I_e| × b_{e+1}`).
    fn coupling(&self, e: usize) -> &'a [f64] {
        let len = self.interfaces[e].len() * self.sizes[e + 1];
        &self.couplings[self.coupling_at[e]..self.coupling_at[e] + len]
    }

    /// Along the chain: factorizes each block `A_e` (Bunch–Kaufman, for its inertia), replaces
    /// it by its explicit inverse (full, symmetric) unless it is large enough to keep its
    /// factor (pivots into `pivots`), and updates the next one, `A_{e+1} −= E_eᵀ A_e⁻¹ E_e`
    /// (on the interface rows of `E_e` only); returns the blocks' inertia. Each block is sent
    /// to `done` as soon as it is complete.
    fn invert(
        self,
        blocks: &mut [f64],
        pivots: &mut [i32],
        scale: f64,
        done: std::sync::mpsc::Sender<Eliminated>,
    ) -> Result<Inertia, Singular> {
        let widest = self.sizes.iter().copied().max().unwrap_or(0);
        let mut work = vec![0.0; 64 * widest.max(1)];
        let mut product = vec![0.0; widest * widest];
        let mut inverse_ii = Vec::new();
        let mut total = Inertia::default();
        let k = self.sizes.len();
        for e in 0..k {
            let (b, at, start) = (self.sizes[e], self.block_at[e], self.starts[e]);
            let (head, tail) = blocks.split_at_mut(at + b * b);
            let block = &mut head[at..];
            let pivots = &mut pivots[start..start + b];
            if lapack_dsytrf(b, block, pivots, &mut work, false).info != 0 {
                return Err(Singular);
            }
            total += ldlt_inertia(b, block, pivots, scale);
            let factored = b >= FACTORED_FROM;
            if !factored {
                if lapack_dsytri(b, block, pivots, &mut work) != 0 {
                    return Err(Singular);
                }
                // dsytri leaves the upper triangle: mirror it.
                for j in 0..b {
                    for i in j + 1..b {
                        block[i + j * b] = block[j + i * b];
                    }
                }
            }
            // The receiver only stops early when its thread panicked, which rayon reports.
            let _ = done.send(if factored {
                Eliminated::Factor(block.to_vec(), pivots.to_vec())
            } else {
                Eliminated::Inverse(block.to_vec())
            });
            if e + 1 == k {
                continue;
            }
            // next −= E_Iᵀ Y with Y = (A⁻¹)_II E_I (|I|, the shared states, is small).
            let (bn, rows) = (self.sizes[e + 1], &self.interfaces[e]);
            let ni = rows.len().max(1);
            // (A⁻¹)_II, column-major |I| × |I|: read off the inverse, or solved for.
            inverse_ii.clear();
            if factored {
                let mut units = vec![0.0; b * rows.len()];
                for (column, &rj) in units.chunks_exact_mut(b).zip(rows) {
                    column[rj] = 1.0;
                }
                if lapack_dsytrs2(b, block, pivots, &mut units, rows.len(), &mut work) != 0 {
                    return Err(Singular);
                }
                inverse_ii.extend(
                    units
                        .chunks_exact(b)
                        .flat_map(|column| rows.iter().map(move |&ri| column[ri])),
                );
            } else {
                for &rj in rows {
                    inverse_ii.extend(rows.iter().map(|&ri| block[ri + rj * b]));
                }
            }
            let coupling = self.coupling(e);
            let y = &mut product[..rows.len() * bn];
            for (yc, ec) in y.chunks_exact_mut(ni).zip(coupling.chunks_exact(ni)) {
                for (i, yi) in yc.iter_mut().enumerate() {
                    *yi = (0..rows.len())
                        .zip(ec)
                        .map(|(j, v)| inverse_ii[i + j * rows.len()] * v)
                        .sum();
                }
            }
            let next = &mut tail[..bn * bn];
            for (column, yc) in next.chunks_exact_mut(bn).zip(y.chunks_exact(ni)) {
                for (v, er) in column.iter_mut().zip(coupling.chunks_exact(ni)) {
                    *v -= er.iter().zip(yc).map(|(a, b)| a * b).sum::<f64>();
                }
            }
        }
        Ok(total)
    }

    /// Carries one panel of `Wᵀ` past block `e` (`eliminated`: its inverse or factor):
    /// `Q_eᵀ = W_eᵀ A_e⁻¹` and `W_{e+1}ᵀ −= Q_eᵀ E_e` (on the interface rows of `E_e` only).
    /// False when LAPACK refuses the solve.
    fn carry(&self, e: usize, eliminated: &mut Eliminated, panel: &mut Panel) -> bool {
        let h = panel.range.len();
        let (b, start) = (self.sizes[e], self.starts[e]);
        let (wt_head, wt_tail) = panel.wt.split_at_mut((start + b) * h);
        let qt = &mut panel.qt[start * h..(start + b) * h];
        let wt = &wt_head[start * h..];
        match eliminated {
            Eliminated::Inverse(inverse) => blas_dgemm(
                (false, false),
                (h, b, b),
                1.0,
                (wt, h),
                (inverse, b),
                0.0,
                (qt, h),
            ),
            Eliminated::Factor(factor, pivots) => {
                // Q_e = A_e⁻¹ W_e: W_e (b × h) is the transpose of the panel's Wᵀ block.
                let mut q = vec![0.0; b * h];
                for (c, column) in wt.chunks_exact(h).take(b).enumerate() {
                    for (i, &w) in column.iter().enumerate() {
                        q[c + i * b] = w;
                    }
                }
                let mut work = vec![0.0; b];
                if lapack_dsytrs2(b, factor, pivots, &mut q, h, &mut work) != 0 {
                    return false;
                }
                for (c, column) in qt.chunks_exact_mut(h).enumerate() {
                    for (i, v) in column.iter_mut().enumerate() {
                        *v = q[c + i * b];
                    }
                }
            }
        }
        if e + 1 == self.sizes.len() {
            return true;
        }
        let (bn, rows) = (self.sizes[e + 1], &self.interfaces[e]);
        let coupling = self.coupling(e);
        let next = &mut wt_tail[..bn * h];
        for (column, ec) in next
            .chunks_exact_mut(h)
            .zip(coupling.chunks_exact(rows.len().max(1)))
        {
            for (&ri, &v) in rows.iter().zip(ec) {
                let q = &qt[ri * h..(ri + 1) * h];
                column.iter_mut().zip(q).for_each(|(w, q)| *w -= q * v);
            }
        }
        true
    }
}

/// `Σ aᵢ bᵢ` over the common length with four running sums (a fixed order, so the result
/// is reproducible), which the compiler keeps in vector registers: the solve's products with
/// the columns of `Wᵀ` are bound by the latency of one running sum otherwise.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut sums = [0.0; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (a4.remainder(), b4.remainder());
    for (x, y) in a4.zip(b4) {
        for l in 0..4 {
            sums[l] += x[l] * y[l];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (sums[0] + sums[1]) + (sums[2] + sums[3]) + tail
}

#[cfg(test)]
mod tests {
    use super::super::dense_kkt::DenseLdlt;
    use super::*;
    use crate::nlp::KktBlock;

    /// A KKT matrix of a chain of `k` "elements" (2 states + 2 equations each, coupled to the
    /// previous element's states) plus `nt` global variables coupled to everything; returns
    /// the lower-triangle entries (1-based), the partition and the number of variables.
    fn chain_kkt(
        k: usize,
        nt: usize,
        seed: u64,
    ) -> (Vec<i32>, Vec<i32>, Vec<f64>, KktBlocks, usize) {
        joint_kkt(k, 2, nt, seed, &[], false)
    }

    /// [`chain_kkt`] with `width` states (and equations) per element, the chain cut before
    /// the elements in `cuts` (several trajectories: no coupling between the last element of
    /// one and the first of the next) and, with `pinned`, two constraint rows in the global
    /// block (each trajectory's pinned initial state on a global grid) on element 0's states
    /// and θ.
    fn joint_kkt(
        k: usize,
        width: usize,
        nt: usize,
        seed: u64,
        cuts: &[usize],
        pinned: bool,
    ) -> (Vec<i32>, Vec<i32>, Vec<f64>, KktBlocks, usize) {
        let mut state = seed;
        let mut rand = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        };
        let w = width;
        let n_vars = w * k + nt;
        let mut entries = std::collections::BTreeMap::new();
        let mut put = |i: usize, j: usize, v: f64| {
            let (a, b) = (i.max(j), i.min(j));
            *entries.entry((a, b)).or_insert(0.0) += v;
        };
        let theta = |t: usize| w * k + t;
        for e in 0..k {
            for s in 0..w {
                let x = w * e + s;
                // Indefinite Hessian diagonal, coupling to the previous element and to θ.
                put(x, x, 0.5 + rand());
                let linked = e > 0 && !cuts.contains(&e);
                if linked {
                    put(x, w * (e - 1) + s, 0.2 * rand());
                }
                for t in 0..nt {
                    put(x, theta(t), 0.3 * rand());
                }
                // Equation row: own states (dominant), a neighbour, previous states, θ.
                let c = n_vars + w * e + s;
                put(c, x, 3.0 + rand());
                put(c, w * e + (s + 1) % w, rand());
                if linked {
                    put(c, w * (e - 1) + s, -2.0 + rand());
                }
                for t in 0..nt {
                    put(c, theta(t), rand());
                }
            }
        }
        for t in 0..nt {
            put(theta(t), theta(t), 1.0 + rand());
        }
        if nt >= 2 {
            put(theta(1), theta(0), 0.4);
        }
        // Pinned rows: after the chain's wk equations, on element 0's states (and θ).
        let global_rows: Vec<usize> = if pinned {
            vec![w * k, w * k + 1]
        } else {
            vec![]
        };
        for (s, &r) in global_rows.iter().enumerate() {
            put(n_vars + r, s, 1.0);
            for t in 0..nt {
                put(n_vars + r, theta(t), 0.1 * rand());
            }
        }
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
                    variables: (w * e..w * (e + 1)).collect(),
                    constraints: (w * e..w * (e + 1)).collect(),
                })
                .collect(),
            global: KktBlock {
                variables: (0..nt).map(theta).collect(),
                constraints: global_rows,
            },
            ..Default::default()
        };
        (rows, cols, vals, partition, n_vars)
    }

    #[test]
    fn block_arrow_elimination_matches_the_dense_factorization() {
        // Eleven global unknowns exercise every piece of the Schur product; one, a single
        // panel; none, a chain alone.
        // Several trajectories: chains cut at 3 and 5; with pinned rows in the global block.
        // Blocks of 128 rows and more (64 states) keep their factor instead of an inverse:
        // chained, cut (one per trajectory, as on global grids) and pinned.
        for (k, w, nt, seed, cuts, pinned) in [
            (1, 2, 11, 3, &[][..], false),
            (2, 2, 11, 5, &[], false),
            (7, 2, 11, 11, &[], false),
            (40, 2, 11, 17, &[], false),
            (5, 2, 1, 19, &[], false),
            (6, 2, 0, 23, &[], false),
            (7, 2, 11, 29, &[3, 5], false),
            (7, 2, 11, 31, &[3, 5], true),
            (1, 2, 4, 37, &[], true),
            (3, 64, 11, 41, &[], false),
            (3, 70, 11, 43, &[1, 2], true),
            (4, 65, 0, 47, &[2], false),
        ] {
            let (rows, cols, vals, partition, n_vars) = joint_kkt(k, w, nt, seed, cuts, pinned);
            let n = n_vars + w * k + if pinned { 2 } else { 0 };
            let mut block = BlockArrowLdlt::analyse(n, n_vars, &rows, &cols, &partition)
                .expect("the partition fits");
            let mut dense = DenseLdlt::new(n);
            let inertia = block.factorize(&vals).unwrap();
            assert_eq!(
                inertia,
                dense.factorize(&rows, &cols, &vals).unwrap(),
                "k = {k}, w = {w}"
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
            assert!(
                err < 1e-10 * size,
                "k = {k}, w = {w}: {err:e} (|x| = {size})"
            );
        }
    }

    #[test]
    fn partitions_that_do_not_fit_are_refused() {
        let (rows, cols, _, partition, n_vars) = chain_kkt(4, 11, 1);
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
