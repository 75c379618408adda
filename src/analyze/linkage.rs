//! Average-linkage agglomerative clustering of a similarity matrix, with a deterministic
//! tie-break.
//!
//! Every item starts as its own cluster; the two clusters with the highest average pairwise
//! similarity merge (Lance–Williams update: the merged row is the size-weighted mean of the
//! two rows), until the best pair falls below the threshold or is not above zero. A cluster is
//! named after its lowest member, and equally good pairs merge lowest pair first.
//!
//! Rescanning all pairs after each merge costs O(n²) per merge. Instead each cluster caches
//! its best partner (highest similarity, then lowest index); after a merge only the merged
//! row and the rows whose partner was one of the two merged clusters are rescanned, so a
//! merge typically costs O(n). The choice made is exactly the full scan's (tested against it).

/// Similarities of every pair, row-major `[n, n]`, symmetric.
pub(crate) struct SimilarityMatrix {
    pub n: usize,
    pub values: Vec<f64>,
}

impl SimilarityMatrix {
    /// The matrix of `similarity(i, j)` for `i < j` (mirrored; 1 on the diagonal).
    pub fn from_fn(n: usize, similarity: impl Fn(usize, usize) -> f64) -> Self {
        let mut values = vec![0.0; n * n];
        for i in 0..n {
            values[i * n + i] = 1.0;
            for j in i + 1..n {
                let s = similarity(i, j);
                values[i * n + j] = s;
                values[j * n + i] = s;
            }
        }
        Self { n, values }
    }

    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.values[i * self.n + j]
    }

    /// Mean similarity over the pairs of `group` (0 for fewer than two items).
    pub fn mean_within(&self, group: &[usize]) -> f64 {
        let (mut sum, mut pairs) = (0.0, 0usize);
        for (k, &i) in group.iter().enumerate() {
            for &j in &group[k + 1..] {
                sum += self.get(i, j);
                pairs += 1;
            }
        }
        sum / pairs.max(1) as f64
    }
}

/// The groups of item indices (each ascending, groups by lowest member) left when no two
/// clusters average at least `min_similarity` and above zero.
pub(crate) fn average_linkage(
    similarity: &SimilarityMatrix,
    min_similarity: f64,
) -> Vec<Vec<usize>> {
    let mut state = Agglomeration::new(similarity);
    while let Some((s, i, j)) = state.next_pair() {
        if s < min_similarity || s <= 0.0 {
            break;
        }
        state.merge(i, j);
    }
    (0..state.n)
        .filter(|&i| state.active[i])
        .map(|i| std::mem::take(&mut state.members[i]))
        .collect()
}

/// No partner (a lone active cluster).
const NONE: (f64, usize) = (f64::NEG_INFINITY, usize::MAX);

struct Agglomeration {
    n: usize,
    /// Current cluster-to-cluster average similarities, `[n, n]`.
    link: Vec<f64>,
    members: Vec<Vec<usize>>,
    active: Vec<bool>,
    /// Per active cluster: its best partner's similarity and index.
    best: Vec<(f64, usize)>,
}

impl Agglomeration {
    fn new(similarity: &SimilarityMatrix) -> Self {
        let n = similarity.n;
        let mut state = Self {
            n,
            link: similarity.values.clone(),
            members: (0..n).map(|i| vec![i]).collect(),
            active: vec![true; n],
            best: vec![NONE; n],
        };
        for i in 0..n {
            state.best[i] = state.row_best(i);
        }
        state
    }

    /// Highest similarity in row `i` among active clusters, lowest index on ties.
    fn row_best(&self, i: usize) -> (f64, usize) {
        let mut best = NONE;
        for k in (0..self.n).filter(|&k| k != i && self.active[k]) {
            let s = self.link[i * self.n + k];
            if best.1 == usize::MAX || s > best.0 {
                best = (s, k);
            }
        }
        best
    }

    /// The best pair `(similarity, i, j)`, `i < j`: the lowest row holding the highest cached
    /// value, with its partner. (Were the partner lower, its own row would hold the same value
    /// and be lower still.)
    fn next_pair(&self) -> Option<(f64, usize, usize)> {
        let mut pick: Option<(f64, usize, usize)> = None;
        for i in (0..self.n).filter(|&i| self.active[i] && self.best[i].1 != usize::MAX) {
            let (s, j) = self.best[i];
            if pick.is_none_or(|(b, _, _)| s > b) {
                pick = Some((s, i, j));
            }
        }
        pick
    }

    /// Merges cluster `j` into `i` and refreshes the cached partners that may have changed.
    fn merge(&mut self, i: usize, j: usize) {
        let n = self.n;
        let (size_i, size_j) = (self.members[i].len() as f64, self.members[j].len() as f64);
        for k in (0..n).filter(|&k| self.active[k] && k != i && k != j) {
            let merged =
                (size_i * self.link[i * n + k] + size_j * self.link[j * n + k]) / (size_i + size_j);
            self.link[i * n + k] = merged;
            self.link[k * n + i] = merged;
        }
        let moved = std::mem::take(&mut self.members[j]);
        self.members[i].extend(moved);
        self.members[i].sort_unstable();
        self.active[j] = false;
        self.best[j] = NONE;
        self.best[i] = self.row_best(i);
        for k in (0..n).filter(|&k| self.active[k] && k != i) {
            let (s, partner) = self.best[k];
            if partner == i || partner == j {
                self.best[k] = self.row_best(k);
            } else {
                let v = self.link[k * n + i];
                if v > s || (v == s && i < partner) {
                    self.best[k] = (v, i);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain algorithm: rescan every pair after each merge.
    fn full_scan_reference(similarity: &SimilarityMatrix, min_similarity: f64) -> Vec<Vec<usize>> {
        let n = similarity.n;
        let mut link = similarity.values.clone();
        let mut members: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
        let mut active = vec![true; n];
        loop {
            let mut best: Option<(f64, usize, usize)> = None;
            for i in (0..n).filter(|&i| active[i]) {
                for j in (i + 1..n).filter(|&j| active[j]) {
                    let s = link[i * n + j];
                    if best.is_none_or(|(b, _, _)| s > b) {
                        best = Some((s, i, j));
                    }
                }
            }
            let Some((s, i, j)) = best else { break };
            if s < min_similarity || s <= 0.0 {
                break;
            }
            let (si, sj) = (members[i].len() as f64, members[j].len() as f64);
            for k in (0..n).filter(|&k| active[k] && k != i && k != j) {
                let merged = (si * link[i * n + k] + sj * link[j * n + k]) / (si + sj);
                link[i * n + k] = merged;
                link[k * n + i] = merged;
            }
            let moved = std::mem::take(&mut members[j]);
            members[i].extend(moved);
            members[i].sort_unstable();
            active[j] = false;
        }
        (0..n)
            .filter(|&i| active[i])
            .map(|i| members[i].clone())
            .collect()
    }

    #[test]
    fn cached_partners_choose_exactly_as_a_full_scan() {
        // Similarities on a coarse grid, so that ties are frequent.
        let mut seed: u64 = 0x5eed;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for _ in 0..300 {
            let n = 1 + next() % 14;
            let grid: Vec<f64> = (0..n * n).map(|_| (next() % 5) as f64 / 4.0).collect();
            let matrix = SimilarityMatrix::from_fn(n, |i, j| grid[i * n + j]);
            for threshold in [0.0, 0.3, 0.5, 0.75] {
                assert_eq!(
                    average_linkage(&matrix, threshold),
                    full_scan_reference(&matrix, threshold),
                    "n = {n}, threshold = {threshold}"
                );
            }
        }
    }

    #[test]
    fn average_linkage_does_not_chain() {
        // 0~1 and 1~2 are similar, 0 and 2 share nothing: single linkage at 0.3 would merge
        // all three; average linkage stops at the average 0.25.
        let values = [[1.0, 0.8, 0.0], [0.8, 1.0, 0.5], [0.0, 0.5, 1.0]];
        let matrix = SimilarityMatrix::from_fn(3, |i, j| values[i][j]);
        assert_eq!(average_linkage(&matrix, 0.3), vec![vec![0, 1], vec![2]]);
    }

    #[test]
    fn ties_merge_the_lowest_pair_first() {
        let matrix = SimilarityMatrix::from_fn(3, |_, _| 0.5);
        assert_eq!(average_linkage(&matrix, 0.5), vec![vec![0, 1, 2]]);
        assert_eq!(
            average_linkage(&matrix, 0.6),
            vec![vec![0], vec![1], vec![2]]
        );
        let matrix = SimilarityMatrix::from_fn(4, |i, j| {
            if (i, j) == (2, 3) || (i, j) == (0, 1) {
                0.9
            } else {
                0.0
            }
        });
        assert_eq!(average_linkage(&matrix, 0.3), vec![vec![0, 1], vec![2, 3]]);
    }

    #[test]
    fn mean_within_a_group() {
        let matrix = SimilarityMatrix::from_fn(3, |i, j| (i + j) as f64 / 10.0);
        assert!((matrix.mean_within(&[0, 1, 2]) - (0.1 + 0.2 + 0.3) / 3.0).abs() < 1e-12);
        assert_eq!(matrix.mean_within(&[1]), 0.0);
    }
}
