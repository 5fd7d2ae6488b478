//! The Gram matrix `AᵀA` of a least-squares term, whose constant Hessian it is.
//!
//! A data fit on a global grid has rows `L_k ⊗ e_i`: every observation's row of the
//! interpolation matrix, once per state. Its columns fall into one block per state, linked by
//! the rows and each covered by a dense row (an observation between nodes), so each block of
//! `AᵀA` is dense and is accumulated row by row with contiguous (vectorized) updates; rows with
//! fewer entries (an observation on a node) add theirs at their positions. Other matrices
//! (finite elements, whose neighbouring elements share a boundary column and no row covers the
//! chain) take sprs's sparse product. Both sum every entry over the rows of `A` in their order,
//! starting from zero, so they agree to the bit.

use sprs::CsMat;

/// The lower triangle of `AᵀA` for the CSR matrix `a`: entries `(i, j, value)` with `j ≤ i`,
/// sorted by `i` and then `j`, each value `Σ_r a[r, i]·a[r, j]` summed over the rows `r` in
/// ascending order; one entry per structural nonzero of the product.
///
/// `blocks` are `a`'s dense blocks ([`dense_blocks`]), if it has them.
pub(crate) fn gram_lower(
    a: &CsMat<f64>,
    blocks: Option<&[DenseBlock]>,
) -> Vec<(usize, usize, f64)> {
    match blocks {
        Some(blocks) => blocked_gram(a, blocks),
        None => sparse_gram(a),
    }
}

/// A set of columns that rows of `A` link (a connected component), one of whose rows covers
/// them all, so that its block of `AᵀA` is dense.
pub(crate) struct DenseBlock {
    /// The columns, ascending.
    pub columns: Vec<usize>,
    /// The rows with entries in them, ascending.
    pub rows: Vec<usize>,
}

/// The column blocks of `a` when every one is dense (some row has an entry in each of its
/// columns); else `None`. Empty rows belong to no block.
pub(crate) fn dense_blocks(a: &CsMat<f64>) -> Option<Vec<DenseBlock>> {
    let (indptr, indices) = (a.indptr(), a.indices());
    let pattern = |r: usize| &indices[indptr.outer_inds_sz(r)];
    // Union–find over the columns, each row linking its columns.
    let mut parent: Vec<usize> = (0..a.cols()).collect();
    fn root(parent: &mut [usize], mut c: usize) -> usize {
        while parent[c] != c {
            parent[c] = parent[parent[c]];
            c = parent[c];
        }
        c
    }
    for r in 0..a.rows() {
        if let Some((&first, rest)) = pattern(r).split_first() {
            let f = root(&mut parent, first);
            for &c in rest {
                let rc = root(&mut parent, c);
                parent[rc] = f;
            }
        }
    }
    let mut block_of = vec![usize::MAX; a.cols()];
    let mut blocks: Vec<DenseBlock> = Vec::new();
    let mut widest: Vec<usize> = Vec::new();
    for r in 0..a.rows() {
        let Some(&first) = pattern(r).first() else {
            continue;
        };
        let rc = root(&mut parent, first);
        if block_of[rc] == usize::MAX {
            block_of[rc] = blocks.len();
            blocks.push(DenseBlock {
                columns: Vec::new(),
                rows: Vec::new(),
            });
            widest.push(0);
        }
        let b = block_of[rc];
        blocks[b].rows.push(r);
        widest[b] = widest[b].max(pattern(r).len());
    }
    for c in 0..a.cols() {
        let rc = root(&mut parent, c);
        if block_of[rc] != usize::MAX {
            blocks[block_of[rc]].columns.push(c);
        }
    }
    blocks
        .iter()
        .zip(&widest)
        .all(|(b, &w)| w == b.columns.len())
        .then_some(blocks)
}

/// [`gram_lower`] block by block: a dense lower triangle per block, each row adding its outer
/// product (contiguously when it covers the block, at its columns' positions otherwise).
fn blocked_gram(a: &CsMat<f64>, blocks: &[DenseBlock]) -> Vec<(usize, usize, f64)> {
    let (indptr, indices, data) = (a.indptr(), a.indices(), a.data());
    let range = |r: usize| indptr.outer_inds_sz(r);
    let triangle = |m: usize| m * (m + 1) / 2;
    let mut out = Vec::with_capacity(blocks.iter().map(|b| triangle(b.columns.len())).sum());
    let mut position = vec![0usize; a.cols()];
    for block in blocks {
        let m = block.columns.len();
        for (k, &c) in block.columns.iter().enumerate() {
            position[c] = k;
        }
        // Row k of the lower triangle at k(k+1)/2: its entries (k, 0..=k), contiguous.
        let mut lower = vec![0.0; triangle(m)];
        for &r in &block.rows {
            let v = &data[range(r)];
            if v.len() == m {
                for (k, &vk) in v.iter().enumerate() {
                    let row = &mut lower[triangle(k)..triangle(k + 1)];
                    for (c, &vl) in row.iter_mut().zip(&v[..=k]) {
                        *c += vk * vl;
                    }
                }
            } else {
                let cols = &indices[range(r)];
                for (k, &vk) in v.iter().enumerate() {
                    let pk = triangle(position[cols[k]]);
                    for (&cl, &vl) in cols[..=k].iter().zip(&v[..=k]) {
                        lower[pk + position[cl]] += vk * vl;
                    }
                }
            }
        }
        for (k, &i) in block.columns.iter().enumerate() {
            let row = &lower[triangle(k)..triangle(k + 1)];
            out.extend(
                block.columns[..=k]
                    .iter()
                    .zip(row)
                    .map(|(&j, &v)| (i, j, v)),
            );
        }
    }
    out.sort_unstable_by_key(|&(i, j, _)| (i, j));
    out
}

/// [`gram_lower`] through sprs's sparse product `Aᵀ·A` (which sums each entry over the rows
/// of `A` in their order).
fn sparse_gram(a: &CsMat<f64>) -> Vec<(usize, usize, f64)> {
    let at: CsMat<f64> = a.transpose_view().to_csr();
    let ata: CsMat<f64> = &at * a;
    ata.iter()
        .filter(|&(_, (i, j))| j <= i)
        .map(|(&v, (i, j))| (i, j, v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A data fit's matrix: `rows` observations' dense rows over `points` nodes, once per
    /// state, state `i`'s rows on the columns `offset + j·d + i` (as the collocation build
    /// lays them out). With `at_node`, the first observation lies on the first node (its rows
    /// have one entry, as the interpolation gives there); `shared` adds a column to both
    /// states' rows (then no row covers the block they form).
    fn fit_matrix(rows: usize, points: usize, d: usize, at_node: bool, shared: bool) -> CsMat<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let offset = 5;
        let cols = offset + points * d + 1;
        let mut tri = sprs::TriMat::new((rows * d, cols));
        for r in 0..rows {
            for i in 0..d {
                if at_node && r == 0 {
                    tri.add_triplet(i, offset + i, 1.0);
                    continue;
                }
                for j in 0..points {
                    tri.add_triplet(r * d + i, offset + j * d + i, rng.gen_range(-1.0..1.0));
                }
                if shared {
                    tri.add_triplet(r * d + i, cols - 1, rng.gen_range(-1.0..1.0));
                }
            }
        }
        tri.to_csr()
    }

    #[test]
    fn blocked_gram_equals_the_sparse_product_to_the_bit() {
        for (rows, points, d, at_node) in [
            (30, 7, 2, false),
            (30, 7, 2, true),
            (200, 40, 3, true),
            (5, 1, 1, false),
            (2, 12, 2, false),
        ] {
            let a = fit_matrix(rows, points, d, at_node, false);
            assert_eq!(dense_blocks(&a).map(|b| b.len()), Some(d));
            let fast = gram_lower(&a, dense_blocks(&a).as_deref());
            let reference = sparse_gram(&a);
            assert_eq!(fast.len(), d * points * (points + 1) / 2);
            assert_eq!(fast.len(), reference.len());
            for (f, s) in fast.iter().zip(&reference) {
                assert_eq!((f.0, f.1), (s.0, s.1));
                assert_eq!(f.2.to_bits(), s.2.to_bits(), "entry ({}, {})", f.0, f.1);
            }
        }
    }

    #[test]
    fn blocks_no_row_covers_take_the_sparse_product() {
        // Two states' rows sharing a column, and a chain of elements sharing boundary nodes.
        let shared = fit_matrix(20, 6, 2, false, true);
        let mut chain = sprs::TriMat::new((9, 7));
        for r in 0..9 {
            let first = 2 * (r / 3);
            for c in first..first + 3 {
                chain.add_triplet(r, c, (r * 7 + c) as f64 / 10.0 - 1.5);
            }
        }
        let chain: CsMat<f64> = chain.to_csr();
        for a in [shared, chain] {
            assert!(dense_blocks(&a).is_none());
            assert_eq!(gram_lower(&a, dense_blocks(&a).as_deref()), sparse_gram(&a));
            // A brute-force check of the values themselves.
            let dense = a.to_dense();
            for &(i, j, v) in &gram_lower(&a, dense_blocks(&a).as_deref()) {
                let expect: f64 = (0..a.rows()).map(|r| dense[[r, i]] * dense[[r, j]]).sum();
                assert!((v - expect).abs() <= 1e-12 * expect.abs().max(1.0));
            }
        }
    }

    #[test]
    fn empty_rows_and_an_empty_matrix_give_what_the_product_gives() {
        let mut tri = sprs::TriMat::new((4, 3));
        tri.add_triplet(1, 0, 2.0);
        tri.add_triplet(1, 2, -1.0);
        tri.add_triplet(3, 0, 0.5);
        tri.add_triplet(3, 2, 4.0);
        let a: CsMat<f64> = tri.to_csr();
        assert_eq!(
            gram_lower(&a, dense_blocks(&a).as_deref()),
            vec![(0, 0, 4.25), (2, 0, 0.0), (2, 2, 17.0)]
        );
        assert_eq!(gram_lower(&a, dense_blocks(&a).as_deref()), sparse_gram(&a));
        let empty: CsMat<f64> = sprs::TriMat::new((3, 2)).to_csr();
        assert!(gram_lower(&empty, dense_blocks(&empty).as_deref()).is_empty());
    }
}
