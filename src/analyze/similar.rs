//! The features most similar to one feature, by the combined similarity score
//! (see [`super::similarity`]); ties go to the lower feature index. Features with a combined
//! score of zero share neither an activating token nor a context token and are never listed.

use anyhow::Result;
use serde::Serialize;

use super::decoder::DecoderDirections;
use super::similarity::{Profiler, Similarity};
use super::stats::by_score_then_index;
use super::text::visible_token;
use super::tokens::{top_token, TokenShare};
use crate::samples::SamplesFolder;

/// The neighbours of one feature.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimilarFeatures {
    pub feature: u32,
    /// Other features of the folder that were compared.
    pub candidates: usize,
    pub neighbours: Vec<Neighbour>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Neighbour {
    /// 1-based.
    pub rank: usize,
    pub feature: u32,
    pub similarity: Similarity,
    pub top_token: Option<TokenShare>,
}

/// The `top_k` features most similar to `feature`.
pub fn similar(
    folder: &SamplesFolder,
    feature: u32,
    top_k: usize,
    decoder: Option<&DecoderDirections>,
) -> Result<SimilarFeatures> {
    let profiler = Profiler::new(folder, decoder);
    let target = profiler.profile(folder.feature(feature)?);
    let mut scored: Vec<(u32, Similarity)> = folder
        .features
        .iter()
        .filter(|&(&other, _)| other != feature)
        .map(|(&other, file)| (other, Similarity::between(&target, &profiler.profile(file))))
        .collect();
    let candidates = scored.len();
    scored.retain(|(_, s)| s.combined > 0.0);
    scored.sort_by(|a, b| by_score_then_index(a.1.combined, a.0, b.1.combined, b.0));
    let neighbours = scored
        .into_iter()
        .take(top_k)
        .enumerate()
        .map(|(i, (other, similarity))| Neighbour {
            rank: i + 1,
            feature: other,
            similarity,
            top_token: top_token(folder, &folder.features[&other]),
        })
        .collect();
    Ok(SimilarFeatures {
        feature,
        candidates,
        neighbours,
    })
}

impl SimilarFeatures {
    pub fn render_text(&self) -> String {
        let mut out = format!(
            "Features most similar to feature {} (compared with {} others; combined = mean of the measures):\n",
            self.feature, self.candidates
        );
        if self.neighbours.is_empty() {
            out += "  (none: no other feature shares an activating or context token)\n";
            return out;
        }
        out += &format!("{:>4}  {:>7}  {:>8}", "rank", "feature", "combined");
        for (measure, _) in self.neighbours[0].similarity.measures() {
            out += &format!("  {:>8}", measure.short_name());
        }
        out += "  top token\n";
        for n in &self.neighbours {
            out += &format!(
                "{:>4}  {:>7}  {:>8.4}",
                n.rank, n.feature, n.similarity.combined
            );
            for (_, value) in n.similarity.measures() {
                out += &format!("  {value:>8.4}");
            }
            let token = n.top_token.as_ref().map_or(String::new(), |t| {
                format!("{} ×{}", visible_token(&t.text), t.count)
            });
            out += &format!("  {token}\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::test_support::{file_with, folder_with};

    #[test]
    fn ranks_by_combined_score_and_drops_unrelated_features() {
        let folder = folder_with(vec![
            file_with(1, &[(5, "a", 1.0), (6, "b", 1.0)]),
            file_with(2, &[(5, "a", 1.0)]),
            file_with(3, &[(5, "a", 1.0), (6, "b", 1.0)]),
            file_with(4, &[(8, "z", 1.0)]),
            file_with(5, &[(6, "b", 1.0)]),
        ]);
        let view = similar(&folder, 1, 10, None).unwrap();
        let order: Vec<u32> = view.neighbours.iter().map(|n| n.feature).collect();
        // 3 is identical; 2 and 5 tie at a third and go by index; 4 shares nothing.
        assert_eq!(order, vec![3, 2, 5]);
        assert_eq!(view.candidates, 4);
        assert_eq!(similar(&folder, 1, 1, None).unwrap().neighbours.len(), 1);
        assert!(view.render_text().contains("tokens   context"));
    }
}
