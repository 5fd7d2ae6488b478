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
    /// [`Gather::slots`]).
    pub fn fill_constants(&self, scale: f64, out: &mut [f64]) {
        for (v, c) in out.iter_mut().zip(&self.constant) {
            *v = scale * c;
        }
    }

    /// The inverse map: for each of the `arena_len` arena entries, the slot it feeds
    /// ([`NO_SLOT`] for none). Scattering the arena in order through it sums each slot's
    /// sources in the order [`Gather::assemble`] does.
    pub fn slots(&self, arena_len: usize) -> Vec<u32> {
        let mut slots = vec![NO_SLOT; arena_len];
        for k in 0..self.constant.len() {
            for &p in &self.src[self.ptr[k] as usize..self.ptr[k + 1] as usize] {
                slots[p as usize] = k as u32;
            }
        }
        slots
    }

    /// `out[slots[p]] += arena[p]` for the arena entries `range`, in order.
    pub fn scatter(slots: &[u32], arena: &[f64], range: std::ops::Range<usize>, out: &mut [f64]) {
        for (&slot, &v) in slots[range.clone()].iter().zip(&arena[range]) {
            if slot != NO_SLOT {
                out[slot as usize] += v;
            }
        }
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

/// Collects `(row, col, source)` contributions, then merges duplicates into a sorted pattern.
#[derive(Default)]
pub(crate) struct PatternBuilder {
    entries: Vec<(u64, Source)>,
}

/// A merged pattern: slot `k` is `(rows[k], cols[k])`, sorted by row then column.
pub(crate) struct Pattern {
    pub rows: Vec<usize>,
    pub cols: Vec<usize>,
    pub gather: Gather,
}

impl PatternBuilder {
    pub fn push(&mut self, row: usize, col: usize, source: Source) {
        self.entries
            .push((((row as u64) << 32) | col as u64, source));
    }

    pub fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
    }

    /// Sorts (stably, so each slot sums its sources in insertion order) and merges.
    pub fn finish(mut self) -> Pattern {
        self.entries.par_sort_by_key(|e| e.0);
        let mut rows = Vec::new();
        let mut cols = Vec::new();
        let mut constant = Vec::new();
        let mut ptr = vec![0];
        let mut src = Vec::with_capacity(self.entries.len());
        let mut last = None;
        for (key, source) in self.entries {
            if last != Some(key) {
                if last.is_some() {
                    ptr.push(src.len() as u32);
                }
                rows.push((key >> 32) as usize);
                cols.push((key & 0xffff_ffff) as usize);
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
