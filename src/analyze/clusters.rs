//! Groups of features that look alike: average-linkage agglomerative clustering on the
//! combined similarity (see [`super::similarity`]).
//!
//! Every feature starts alone; the two clusters with the highest average pairwise similarity
//! merge, again and again, until no pair of clusters averages at least `min_similarity` (and
//! above zero: features that share nothing never join). Average linkage is used rather than
//! connected components of the "similar enough" graph because components chain: A~B and B~C
//! would put A and C together even when they share nothing. Ties go to the pair of clusters
//! with the lowest feature indices, so the result is deterministic (see [`super::linkage`]).
//! The n² similarity matrix bounds the size: only the [`MAX_CLUSTER_FEATURES`] most active
//! features take part.

use std::collections::BTreeMap;

use serde::Serialize;

use super::decoder::DecoderDirections;
use super::linkage::{average_linkage, SimilarityMatrix};
use super::similarity::{FeatureProfile, Profiler, Similarity};
use super::stats::ranked_features;
use super::text::visible_token;
use super::tokens::token_shares;
use crate::samples::SamplesFolder;

/// Features clustered at most (the most active ones).
pub const MAX_CLUSTER_FEATURES: usize = 1000;

/// Shared tokens listed per cluster.
const SHARED_TOKENS_SHOWN: usize = 5;

/// The clusters of a folder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Clusters {
    pub min_similarity: f64,
    pub features_in_folder: usize,
    /// Features with samples that took part (at most [`MAX_CLUSTER_FEATURES`]).
    pub features_considered: usize,
    /// Clusters of two or more features, largest first (then lowest member first).
    pub clusters: Vec<Cluster>,
    /// Considered features that joined no cluster, ascending.
    pub unclustered: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cluster {
    /// 1-based, in the order listed.
    pub id: usize,
    /// Ascending.
    pub members: Vec<u32>,
    /// Mean combined similarity over the member pairs.
    pub cohesion: f64,
    /// Activating tokens of at least two members, most members first.
    pub shared_tokens: Vec<ClusterToken>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterToken {
    pub token: u32,
    pub text: String,
    /// Members with a stored sample on this token.
    pub features: usize,
    /// Those members' samples on it.
    pub samples: usize,
}

/// Clusters the folder's features at `min_similarity`.
pub fn clusters(
    folder: &SamplesFolder,
    min_similarity: f64,
    decoder: Option<&DecoderDirections>,
) -> Clusters {
    let features = considered_features(folder);
    let profiler = Profiler::new(folder, decoder);
    let profiles: Vec<FeatureProfile> = features
        .iter()
        .map(|f| profiler.profile(&folder.features[f]))
        .collect();
    let similarity = SimilarityMatrix::from_fn(profiles.len(), |i, j| {
        Similarity::between(&profiles[i], &profiles[j]).combined
    });
    let groups = average_linkage(&similarity, min_similarity);
    let mut found: Vec<Cluster> = Vec::new();
    let mut unclustered = Vec::new();
    for group in groups {
        if group.len() < 2 {
            unclustered.push(features[group[0]]);
            continue;
        }
        let members: Vec<u32> = group.iter().map(|&i| features[i]).collect();
        found.push(Cluster {
            id: 0,
            cohesion: similarity.mean_within(&group),
            shared_tokens: shared_tokens(folder, &members),
            members,
        });
    }
    found.sort_by(|a, b| {
        (b.members.len().cmp(&a.members.len())).then(a.members[0].cmp(&b.members[0]))
    });
    for (i, cluster) in found.iter_mut().enumerate() {
        cluster.id = i + 1;
    }
    unclustered.sort_unstable();
    Clusters {
        min_similarity,
        features_in_folder: folder.features.len(),
        features_considered: features.len(),
        clusters: found,
        unclustered,
    }
}

/// The most active features with samples, at most [`MAX_CLUSTER_FEATURES`], ascending.
fn considered_features(folder: &SamplesFolder) -> Vec<u32> {
    let mut features: Vec<u32> = ranked_features(folder)
        .into_iter()
        .filter(|f| !folder.features[f].top_samples.is_empty())
        .take(MAX_CLUSTER_FEATURES)
        .collect();
    features.sort_unstable();
    features
}

/// Activating tokens shared by at least two of `members`.
fn shared_tokens(folder: &SamplesFolder, members: &[u32]) -> Vec<ClusterToken> {
    let mut by_token: BTreeMap<u32, ClusterToken> = BTreeMap::new();
    for feature in members {
        for share in token_shares(folder, &folder.features[feature]) {
            let entry = by_token.entry(share.token).or_insert_with(|| ClusterToken {
                token: share.token,
                text: share.text.clone(),
                features: 0,
                samples: 0,
            });
            entry.features += 1;
            entry.samples += share.count;
        }
    }
    let mut shared: Vec<ClusterToken> =
        by_token.into_values().filter(|t| t.features >= 2).collect();
    shared.sort_by(|a, b| {
        b.features
            .cmp(&a.features)
            .then(b.samples.cmp(&a.samples))
            .then(a.token.cmp(&b.token))
    });
    shared.truncate(SHARED_TOKENS_SHOWN);
    shared
}

impl Clusters {
    pub fn render_text(&self) -> String {
        let mut out = format!(
            "Clusters (average linkage on combined similarity, min similarity {:.2}): {} {}, {} of {} features unclustered\n",
            self.min_similarity,
            self.clusters.len(),
            if self.clusters.len() == 1 { "cluster" } else { "clusters" },
            self.unclustered.len(),
            self.features_considered
        );
        if self.features_considered < self.features_in_folder {
            out += &format!(
                "  (only the {} most active of {} features were clustered)\n",
                self.features_considered, self.features_in_folder
            );
        }
        for cluster in &self.clusters {
            let members: Vec<String> = cluster.members.iter().map(u32::to_string).collect();
            let tokens: Vec<String> = cluster
                .shared_tokens
                .iter()
                .map(|t| format!("{} ({} features)", visible_token(&t.text), t.features))
                .collect();
            let tokens = if tokens.is_empty() {
                "(none)".to_string()
            } else {
                tokens.join(", ")
            };
            out += &format!(
                "\nCluster {}: {} features, cohesion {:.4}\n  members: {}\n  shared tokens: {tokens}\n",
                cluster.id,
                cluster.members.len(),
                cluster.cohesion,
                members.join(", ")
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::test_support::{feature_file, folder_with};

    /// Two topics (tokens 1–3 and 7–9) of three features each, every pair of a topic at
    /// combined similarity 7/12 (token overlap 1/3, context cosine 5/6), plus a loner.
    fn crafted_folder() -> SamplesFolder {
        folder_with(vec![
            feature_file(
                10,
                &[(1, " cat", 1.0, &[1, 2, 3]), (2, " dog", 1.0, &[2, 1, 3])],
            ),
            feature_file(
                11,
                &[(1, " cat", 1.0, &[1, 2, 3]), (3, " owl", 1.0, &[3, 1, 2])],
            ),
            feature_file(
                12,
                &[(2, " dog", 1.0, &[2, 1, 3]), (3, " owl", 1.0, &[3, 1, 2])],
            ),
            feature_file(
                20,
                &[(7, " red", 1.0, &[7, 8, 9]), (8, " blue", 1.0, &[8, 7, 9])],
            ),
            feature_file(
                21,
                &[(7, " red", 1.0, &[7, 8, 9]), (9, " green", 1.0, &[9, 7, 8])],
            ),
            feature_file(
                22,
                &[
                    (8, " blue", 1.0, &[8, 7, 9]),
                    (9, " green", 1.0, &[9, 7, 8]),
                ],
            ),
            feature_file(30, &[(50, " tax", 1.0, &[50, 51])]),
        ])
    }

    #[test]
    fn finds_the_two_topics_and_leaves_the_loner() {
        let view = clusters(&crafted_folder(), 0.3, None);
        let groups: Vec<Vec<u32>> = view.clusters.iter().map(|c| c.members.clone()).collect();
        assert_eq!(groups, vec![vec![10, 11, 12], vec![20, 21, 22]]);
        assert_eq!(view.unclustered, vec![30]);
        assert_eq!(view.clusters[0].shared_tokens[0].text, " cat");
        assert_eq!(view.clusters[0].shared_tokens[0].features, 2);
        assert!((view.clusters[0].cohesion - 7.0 / 12.0).abs() < 1e-12);
        assert!(view.clusters.iter().all(|c| c.cohesion >= 0.3));
        assert!(view.render_text().contains("Cluster 2: 3 features"));
    }

    #[test]
    fn a_high_threshold_clusters_nothing_and_zero_never_joins_strangers() {
        let view = clusters(&crafted_folder(), 1.0, None);
        assert!(view.clusters.is_empty());
        assert_eq!(view.unclustered.len(), 7);
        let view = clusters(&crafted_folder(), 0.0, None);
        // The loner shares nothing with anyone, so even at 0 it stays alone.
        assert_eq!(view.unclustered, vec![30]);
    }
}
