//! Sparsity patterns fixed once at build time, and the gather maps that assemble global
//! derivative values from constant parts and element-local buffers.

use super::derivatives::NO_SLOT;
use rayon::prelude::*;

/// Where a contribution to a global nonzero comes from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Source {
    /// A constant value (linear terms, constant Hessians), summed once at build time.
    Const(f64),
    /// An entry of an element-local buffer ("arena"), summed at every evaluation.
    Arena(usize),
}

/// For each global slot `k`: `constant[k] + Σ arena[src[ptr[k]..ptr[k+1]]]`.
///
/// Offsets and arena positions are 32-bit (the model builder refuses arenas beyond `u32::MAX`
/// entries): an assembly streams these index arrays once per evaluation, and halving them
/// matters once IPOPT's factorization has evicted them from the cache.
#[derive(Clone, Debug, Default)]
pub(crate) struct Gather {
    pub constant: Vec<f64>,
    ptr: Vec<u32>,
    src: Vec<u32>,
}

/// The largest magnitude [`summable`] accepts. A slot sums one constant and at most one
/// contribution per arena entry, and the model builder refuses arenas beyond `u32::MAX` entries:
/// at most 2³² + 1 terms of at most 1e298 each stay below 4.3e307 < `f64::MAX`.
const SUMMABLE_MAGNITUDE: f64 = 1e298;

/// True when `v` is finite and small enough that any sum of a slot's terms is finite too (NaN
/// fails the comparison). An assembly whose terms are all summable needs no pass over its
/// result to check it for IPOPT: on the 200-point Van der Pol problem that pass over the
/// Jacobian (145,000 values IPOPT has just allocated, out of cache) cost 6 ms of 31 per
/// solve.
#[inline(always)]
pub(crate) fn summable(v: f64) -> bool {
    v.abs() <= SUMMABLE_MAGNITUDE
}

/// Minimum number of slots per parallel task.
const MIN_SLOTS: usize = 2048;

impl Gather {
    /// True when some slot reads the arena.
    pub fn reads_arena(&self) -> bool {
        !self.src.is_empty()
    }

    /// `out[k] = scale · constant[k] + Σ arena[...]`.
    pub fn assemble(&self, arena: &[f64], scale: f64, out: &mut [f64]) {
        out.par_iter_mut()
            .with_min_len(MIN_SLOTS)
            .enumerate()
            .for_each(|(k, v)| {
                let mut s = scale * self.constant[k];
                for &p in &self.src[self.ptr[k] as usize..self.ptr[k + 1] as usize] {
                    s += arena[p as usize];
                }
                *v = s;
            });
    }

    /// `out[k] = scale · constant[k]`: the start of an assembly by scattering (see
    /// [`Gather::slots`]). Returns whether every value written is [`summable`].
    pub fn fill_constants(&self, scale: f64, out: &mut [f64]) -> bool {
        let mut ok = true;
        for (v, c) in out.iter_mut().zip(&self.constant) {
            *v = scale * c;
            ok &= summable(*v);
        }
        ok
    }

    /// The inverse map: for each of the `arena_len` arena entries, the slot it feeds
    /// ([`NO_SLOT`] for none). Scattering the arena in order through it sums each slot's
    /// sources in the order [`Gather::assemble`] does.
    pub fn slots(&self, arena_len: usize) -> Vec<u32> {
        debug_assert!(
            !self.ptr.is_empty(),
            "restore the dropped sources before asking for slots"
        );
        let mut slots = vec![NO_SLOT; arena_len];
        for k in 0..self.constant.len() {
            for &p in &self.src[self.ptr[k] as usize..self.ptr[k + 1] as usize] {
                slots[p as usize] = k as u32;
            }
        }
        slots
    }

    /// Drops the source lists, keeping the constants, once the inverse map of
    /// [`Gather::slots`] assembles instead (on long series the Hessian's lists take hundreds of
    /// megabytes); [`Gather::restore_sources`] rebuilds them.
    pub fn drop_sources(&mut self) {
        self.ptr = Vec::new();
        self.src = Vec::new();
    }

    /// Rebuilds dropped source lists from this gather's `slots`: each slot's arena positions
    /// in ascending order, as the builder made them. Does nothing when they are present.
    pub fn restore_sources(&mut self, slots: &[u32]) {
        if !self.ptr.is_empty() {
            return;
        }
        let n = self.constant.len();
        let mut ptr = vec![0u32; n + 1];
        for &s in slots.iter().filter(|&&s| s != NO_SLOT) {
            ptr[s as usize + 1] += 1;
        }
        for k in 0..n {
            ptr[k + 1] += ptr[k];
        }
        let mut next = ptr.clone();
        let mut src = vec![0u32; ptr[n] as usize];
        for (p, &s) in slots.iter().enumerate().filter(|(_, &s)| s != NO_SLOT) {
            let at = &mut next[s as usize];
            src[*at as usize] = p as u32;
            *at += 1;
        }
        self.ptr = ptr;
        self.src = src;
    }

    /// `out[slots[p]] += arena[p]` for the arena entries `range`, in order. Returns whether
    /// every entry is [`summable`].
    pub fn scatter(
        slots: &[u32],
        arena: &[f64],
        range: std::ops::Range<usize>,
        out: &mut [f64],
    ) -> bool {
        let mut ok = true;
        for (&slot, &v) in slots[range.clone()].iter().zip(&arena[range]) {
            ok &= summable(v);
            if slot != NO_SLOT {
                out[slot as usize] += v;
            }
        }
        ok
    }

    /// `out[k] += Σ arena[...]` (constants ignored).
    pub fn add_arena(&self, arena: &[f64], out: &mut [f64]) {
        out.par_iter_mut()
            .with_min_len(MIN_SLOTS)
            .enumerate()
            .for_each(|(k, v)| {
                for &p in &self.src[self.ptr[k] as usize..self.ptr[k + 1] as usize] {
                    *v += arena[p as usize];
                }
            });
    }
}

/// The order of a merged pattern's slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotOrder {
    /// By row, then column (the Jacobian: a constraint row's entries come from the elements
    /// of its own point; and the Hessian of a model whose structured term lists a dense block
    /// row by row, see `StructuredTerm::prefers_row_ordered_hessian`).
    RowMajor,
    /// By column, then row. For the lower triangle of the Hessian this groups a state's
    /// couplings to every network parameter (rows after the states) in its column: the
    /// entries one collocation point's elements feed lie together, so assembling them (and
    /// the KKT solver's reading of them) walks memory in order instead of striding over all
    /// points once per parameter. Measured on `vanderpol-long.toml` (20,001 points, 40
    /// iterations; with the Hessian then scattered, see `SCATTER_MAX_ENTRIES`): the same
    /// iterates, Hessian 147 vs 261 ms per call inside IPOPT, whole process 0.90× the wall
    /// and 0.84× the CPU time (paired farm-bench, 3 runs each).
    ColumnMajor,
}

/// Collects `(row, col, source)` contributions, then merges duplicates into a sorted pattern.
pub(crate) struct PatternBuilder {
    entries: Vec<(u64, Source)>,
    order: SlotOrder,
}

/// A merged pattern: slot `k` is `(rows[k], cols[k])`, in the builder's [`SlotOrder`]
/// (32-bit indices, as IPOPT's).
pub(crate) struct Pattern {
    pub rows: Vec<u32>,
    pub cols: Vec<u32>,
    pub gather: Gather,
    order: SlotOrder,
}

impl Pattern {
    /// The slot of entry `(row, col)`, if the pattern has it.
    pub fn slot(&self, row: usize, col: usize) -> Option<usize> {
        let (Ok(row), Ok(col)) = (u32::try_from(row), u32::try_from(col)) else {
            return None;
        };
        let (major, minor, key) = match self.order {
            SlotOrder::RowMajor => (&self.rows, &self.cols, (row, col)),
            SlotOrder::ColumnMajor => (&self.cols, &self.rows, (col, row)),
        };
        let from = major.partition_point(|&r| r < key.0);
        let to = major.partition_point(|&r| r <= key.0);
        let at = from + minor[from..to].partition_point(|&c| c < key.1);
        (at < to && minor[at] == key.1).then_some(at)
    }
}

impl PatternBuilder {
    /// An empty builder whose pattern will be sorted in `order`.
    pub fn new(order: SlotOrder) -> Self {
        Self {
            entries: Vec::new(),
            order,
        }
    }

    pub fn push(&mut self, row: usize, col: usize, source: Source) {
        let (major, minor) = match self.order {
            SlotOrder::RowMajor => (row, col),
            SlotOrder::ColumnMajor => (col, row),
        };
        self.entries
            .push((((major as u64) << 32) | minor as u64, source));
    }

    pub fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
    }

    /// Sorts (stably, so each slot sums its sources in insertion order) and merges.
    pub fn finish(mut self) -> Pattern {
        self.entries.par_sort_by_key(|e| e.0);
        // Exact capacities: on long series the pattern is the largest structure kept.
        let slots = self
            .entries
            .iter()
            .enumerate()
            .filter(|(k, e)| *k == 0 || self.entries[k - 1].0 != e.0)
            .count();
        let mut rows = Vec::with_capacity(slots);
        let mut cols = Vec::with_capacity(slots);
        let mut constant = Vec::with_capacity(slots);
        let mut ptr = Vec::with_capacity(slots + 1);
        ptr.push(0);
        let mut src = Vec::with_capacity(self.entries.len());
        let mut last = None;
        for (key, source) in self.entries {
            if last != Some(key) {
                if last.is_some() {
                    ptr.push(src.len() as u32);
                }
                let (major, minor) = ((key >> 32) as u32, (key & 0xffff_ffff) as u32);
                let (row, col) = match self.order {
                    SlotOrder::RowMajor => (major, minor),
                    SlotOrder::ColumnMajor => (minor, major),
                };
                rows.push(row);
                cols.push(col);
                constant.push(0.0);
                last = Some(key);
            }
            match source {
                Source::Const(v) => *constant.last_mut().expect("slot was pushed") += v,
                Source::Arena(p) => src.push(p as u32),
            }
        }
        if last.is_some() {
            ptr.push(src.len() as u32);
        }
        Pattern {
            rows,
            cols,
            gather: Gather { constant, ptr, src },
            order: self.order,
        }
    }
}

/// A gather over a dense range of slots `0..n` (gradient entries, constraint rows).
pub(crate) fn dense_gather(n: usize, contributions: &[(usize, usize)]) -> Gather {
    let mut count = vec![0usize; n + 1];
    for &(slot, _) in contributions {
        count[slot + 1] += 1;
    }
    for k in 0..n {
        count[k + 1] += count[k];
    }
    let ptr = count.iter().map(|&c| c as u32).collect();
    let mut next = count;
    let mut src = vec![0; contributions.len()];
    for &(slot, p) in contributions {
        src[next[slot]] = p as u32;
        next[slot] += 1;
    }
    Gather {
        constant: vec![0.0; n],
        ptr,
        src,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both orders merge duplicates the same way (sources in insertion order), list the same
    /// entries, sort them as promised, and find every slot.
    #[test]
    fn patterns_sort_in_either_order_and_find_their_slots() {
        let entries = [
            (3, 0, Source::Arena(0)),
            (1, 1, Source::Const(2.0)),
            (3, 2, Source::Arena(1)),
            (2, 0, Source::Arena(2)),
            (3, 0, Source::Arena(3)),
            (1, 1, Source::Const(0.5)),
            (2, 2, Source::Arena(4)),
        ];
        let mut merged = Vec::new();
        for order in [SlotOrder::RowMajor, SlotOrder::ColumnMajor] {
            let mut b = PatternBuilder::new(order);
            for &(r, c, s) in &entries {
                b.push(r, c, s);
            }
            let p = b.finish();
            let keys: Vec<(usize, usize)> = p
                .rows
                .iter()
                .zip(&p.cols)
                .map(|(&r, &c)| (r as usize, c as usize))
                .collect();
            let mut sorted = keys.clone();
            match order {
                SlotOrder::RowMajor => sorted.sort(),
                SlotOrder::ColumnMajor => sorted.sort_by_key(|&(r, c)| (c, r)),
            }
            assert_eq!(keys, sorted, "{order:?}");
            for (k, &(r, c)) in keys.iter().enumerate() {
                assert_eq!(p.slot(r, c), Some(k));
            }
            assert_eq!(p.slot(0, 0), None);
            assert_eq!(p.slot(3, 1), None);
            // Each slot's value: constant + its sources, in insertion order.
            let arena = [1.0, 10.0, 100.0, 1000.0, 10000.0];
            let mut out = vec![0.0; keys.len()];
            p.gather.assemble(&arena, 1.0, &mut out);
            // Sources dropped for a scattered assembly come back the same.
            let slots = p.gather.slots(arena.len());
            let mut restored = p.gather.clone();
            restored.drop_sources();
            restored.restore_sources(&slots);
            assert_eq!(
                (&restored.ptr, &restored.src),
                (&p.gather.ptr, &p.gather.src)
            );
            let mut by_entry: Vec<((usize, usize), f64)> = keys.into_iter().zip(out).collect();
            by_entry.sort_by_key(|e| e.0);
            merged.push(by_entry);
        }
        assert_eq!(merged[0], merged[1]);
        assert_eq!(
            merged[0],
            vec![
                ((1, 1), 2.5),
                ((2, 0), 100.0),
                ((2, 2), 10000.0),
                ((3, 0), 1001.0),
                ((3, 2), 10.0)
            ]
        );
    }
}
