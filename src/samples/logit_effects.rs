//! `logit_effects.json`: for every feature, the output tokens its decoder direction promotes
//! and suppresses most, through the model's final norm and unembedding (the formula is in
//! [`crate::model::unembed`]; `collect::compute_logit_effects` fills the file).
//!
//! The file depends on the SAE and the model only, never on the corpus: every shard of a
//! collection writes the same one, and `merge` carries it after checking that they agree. It
//! is a saectl addition to the samples folder (readers of the original's layout ignore it).
//! It holds every feature, so it is written with one feature per line — the header keys
//! pretty-printed as elsewhere — to stay small, greppable and diffable at d_sae 16k and more.
//!
//! The values follow the field's convention (TransformerLens, SAEDashboard, Neuronpedia):
//! **not centred** over the vocabulary, with each feature's vocabulary mean beside them
//! (`vocab_mean`) for whoever wants the centred ones. The header names the convention
//! (`convention`); version 1 files, written before it existed, hold centred values and no
//! means, and are still read.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The file's format version: 2 names its convention and keeps each feature's vocabulary mean;
/// 1 (read, never written) held centred values.
pub const LOGIT_EFFECTS_FORMAT: u32 = 2;
/// Tokens listed per feature and direction.
pub const LOGIT_TOKENS: usize = 10;
/// What the values are, recorded in the file for readers.
pub const LOGIT_EFFECTS_FORMULA: &str =
    "(W_dec[f] * (1 + w_final_norm)) . W_U[t], not centred (TransformerLens W_U with fold_ln; \
     Gemma-2: W_U = W_E); vocab_mean: its mean over all tokens t";

/// Whether the values have their vocabulary mean subtracted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogitConvention {
    /// As TransformerLens, SAEDashboard and Neuronpedia show them (what saectl writes).
    Uncentred,
    /// Minus the feature's mean over the vocabulary (files of format version 1).
    #[default]
    Centred,
}

/// One token and the feature's effect on its logit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenEffect {
    pub token_id: u32,
    pub text: String,
    pub value: f32,
}

/// A feature's most promoted (`top`, descending) and most suppressed (`bottom`, ascending)
/// tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureLogitEffects {
    pub feature_idx: u32,
    pub top: Vec<TokenEffect>,
    pub bottom: Vec<TokenEffect>,
    /// The feature's effect averaged over the vocabulary (absent in version 1 files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab_mean: Option<f32>,
}

/// The file's header: everything but the features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogitEffectsHeader {
    pub format_version: u32,
    pub formula: String,
    /// Centred or not (version 1 files, which lack the key, are centred).
    #[serde(default)]
    pub convention: LogitConvention,
    /// The model the unembedding came from, as given to `collect --model`.
    pub model: String,
    pub checkpoint: String,
    pub d_sae: u64,
    pub vocab_size: u64,
    pub tokens_per_feature: usize,
}

/// `logit_effects.json`, every feature in index order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogitEffects {
    #[serde(flatten)]
    pub header: LogitEffectsHeader,
    pub features: Vec<FeatureLogitEffects>,
}

impl LogitEffects {
    /// The entry of `feature`, if the file has it.
    pub fn feature(&self, feature: u32) -> Option<&FeatureLogitEffects> {
        let at = self
            .features
            .binary_search_by_key(&feature, |f| f.feature_idx)
            .ok()?;
        Some(&self.features[at])
    }

    /// The file's text: header keys pretty-printed, then one feature per line.
    pub fn to_json(&self) -> Result<String> {
        let header = serde_json::to_string_pretty(&self.header)?;
        let header = header
            .strip_suffix("\n}")
            .context("unexpected header JSON")?;
        let lines = self
            .features
            .iter()
            .map(|f| serde_json::to_string(f).map(|line| format!("    {line}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(format!(
            "{header},\n  \"features\": [\n{}\n  ]\n}}\n",
            lines.join(",\n")
        ))
    }

    /// Parses the file's text (what [`to_json`](Self::to_json) writes, or a version 1 file),
    /// checking its version, its convention and that the features are in index order.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let effects: Self = serde_json::from_slice(bytes)?;
        match (effects.header.format_version, effects.header.convention) {
            (1, LogitConvention::Centred) | (LOGIT_EFFECTS_FORMAT, _) => {}
            (1, _) => bail!("a format version 1 file can only hold centred values"),
            (version, _) => bail!(
                "format version {version} is not supported (this build reads 1 and {LOGIT_EFFECTS_FORMAT})"
            ),
        }
        if !effects
            .features
            .windows(2)
            .all(|w| w[0].feature_idx < w[1].feature_idx)
        {
            bail!("features are not in index order");
        }
        Ok(effects)
    }

    /// What to add to `feature`'s values to have them in `convention`: 0 when they already
    /// are, ∓ its vocabulary mean otherwise; `None` when the file has no mean for it.
    pub fn shift_to(
        &self,
        feature: &FeatureLogitEffects,
        convention: LogitConvention,
    ) -> Option<f32> {
        match (self.header.convention, convention) {
            (from, to) if from == to => Some(0.0),
            (LogitConvention::Centred, LogitConvention::Uncentred) => feature.vocab_mean,
            (LogitConvention::Uncentred, LogitConvention::Centred) => {
                feature.vocab_mean.map(|m| -m)
            }
            _ => unreachable!("two conventions"),
        }
    }

    /// Whether two shards' files describe the same SAE and model: equal headers, and per
    /// feature the same values rank by rank (within float noise: shards may run on different
    /// hardware) on the same tokens (which may swap only where their values tie).
    pub fn check_agrees(&self, other: &Self) -> Result<()> {
        if self == other {
            return Ok(());
        }
        if self.header != other.header {
            bail!(
                "their headers differ: {:?} vs {:?}",
                self.header,
                other.header
            );
        }
        if self.features.len() != other.features.len() {
            bail!(
                "one lists {} features, the other {}",
                self.features.len(),
                other.features.len()
            );
        }
        for (a, b) in self.features.iter().zip(&other.features) {
            let means_agree = match (a.vocab_mean, b.vocab_mean) {
                (Some(x), Some(y)) => close(x, y),
                (x, y) => x.is_none() && y.is_none(),
            };
            let same = a.feature_idx == b.feature_idx
                && means_agree
                && lists_agree(&a.top, &b.top)
                && lists_agree(&a.bottom, &b.bottom);
            if !same {
                bail!("they differ at feature {}", a.feature_idx);
            }
        }
        Ok(())
    }
}

/// Equal within float noise (shards may run on different hardware).
fn close(x: f32, y: f32) -> bool {
    (x - y).abs() <= 1e-3 * x.abs().max(y.abs()).max(1.0)
}

/// Rank by rank: values within float noise, tokens equal unless the value ties a neighbour.
fn lists_agree(a: &[TokenEffect], b: &[TokenEffect]) -> bool {
    a.len() == b.len()
        && (0..a.len()).all(|i| {
            let tied = |list: &[TokenEffect]| {
                let v = list[i].value;
                (i > 0 && close(list[i - 1].value, v))
                    || (i + 1 < list.len() && close(list[i + 1].value, v))
            };
            close(a[i].value, b[i].value) && (a[i].token_id == b[i].token_id || tied(a))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effect(token_id: u32, value: f32) -> TokenEffect {
        TokenEffect {
            token_id,
            text: format!("t{token_id}"),
            value,
        }
    }

    fn sample() -> LogitEffects {
        LogitEffects {
            header: LogitEffectsHeader {
                format_version: LOGIT_EFFECTS_FORMAT,
                formula: LOGIT_EFFECTS_FORMULA.into(),
                convention: LogitConvention::Uncentred,
                model: "m".into(),
                checkpoint: "c".into(),
                d_sae: 2,
                vocab_size: 9,
                tokens_per_feature: 2,
            },
            features: vec![
                FeatureLogitEffects {
                    feature_idx: 0,
                    top: vec![effect(3, 2.0), effect(4, 1.0)],
                    bottom: vec![effect(5, -2.0), effect(6, -1.0)],
                    vocab_mean: Some(0.25),
                },
                FeatureLogitEffects {
                    feature_idx: 1,
                    top: vec![effect(7, 1.5), effect(8, 1.5)],
                    bottom: vec![effect(1, -0.5), effect(2, -0.25)],
                    vocab_mean: Some(-0.125),
                },
            ],
        }
    }

    #[test]
    fn writes_one_feature_per_line_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let folder = crate::samples::SamplesDir::new(dir.path());
        let effects = sample();
        folder.write_logit_effects(&effects).unwrap();
        let text = std::fs::read_to_string(folder.logit_effects()).unwrap();
        assert!(text.starts_with("{\n  \"format_version\": 2,\n"), "{text}");
        assert!(text.contains("\"convention\": \"uncentred\""), "{text}");
        assert_eq!(
            text.lines().filter(|l| l.contains("feature_idx")).count(),
            2
        );
        assert_eq!(folder.read_logit_effects().unwrap(), Some(effects.clone()));
        assert_eq!(effects.feature(1).unwrap().top[0].token_id, 7);
        assert!(effects.feature(2).is_none());
        let none = crate::samples::SamplesDir::new(&dir.path().join("none"));
        assert_eq!(none.read_logit_effects().unwrap(), None);
        let mut unordered = effects.clone();
        unordered.features.swap(0, 1);
        let err = LogitEffects::from_json(unordered.to_json().unwrap().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("index order"), "{err}");
    }

    #[test]
    fn version_1_files_read_as_centred_and_shift_by_their_mean() {
        // A version 1 file as saectl wrote it: no convention, no means.
        let v1 = r#"{"format_version": 1, "formula": "centred", "model": "m", "checkpoint": "c",
            "d_sae": 1, "vocab_size": 9, "tokens_per_feature": 1,
            "features": [{"feature_idx": 0, "top": [{"token_id": 3, "text": "t3", "value": 2.0}],
                          "bottom": [{"token_id": 5, "text": "t5", "value": -2.0}]}]}"#;
        let old = LogitEffects::from_json(v1.as_bytes()).unwrap();
        assert_eq!(old.header.convention, LogitConvention::Centred);
        let feature = &old.features[0];
        assert_eq!(old.shift_to(feature, LogitConvention::Centred), Some(0.0));
        assert_eq!(old.shift_to(feature, LogitConvention::Uncentred), None);
        let v1_uncentred = v1.replace("\"formula\"", "\"convention\": \"uncentred\", \"formula\"");
        assert!(LogitEffects::from_json(v1_uncentred.as_bytes()).is_err());
        let v3 = v1.replace("\"format_version\": 1", "\"format_version\": 3");
        let err = LogitEffects::from_json(v3.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("version 3"), "{err}");
        let new = sample();
        let f = &new.features[0];
        assert_eq!(new.shift_to(f, LogitConvention::Centred), Some(-0.25));
        assert_eq!(new.shift_to(f, LogitConvention::Uncentred), Some(0.0));
    }

    #[test]
    fn agreement_allows_float_noise_and_tied_swaps_only() {
        let a = sample();
        a.check_agrees(&a).unwrap();
        let mut noisy = a.clone();
        noisy.features[0].top[0].value += 1e-5;
        a.check_agrees(&noisy).unwrap();
        let mut swapped = a.clone();
        swapped.features[1].top.swap(0, 1);
        a.check_agrees(&swapped).unwrap();
        let mut other_token = a.clone();
        other_token.features[0].top[0].token_id = 8;
        let err = a.check_agrees(&other_token).unwrap_err().to_string();
        assert!(err.contains("feature 0"), "{err}");
        let mut other_value = a.clone();
        other_value.features[0].bottom[1].value = -1.1;
        assert!(a.check_agrees(&other_value).is_err());
        let mut other_mean = a.clone();
        other_mean.features[1].vocab_mean = Some(0.5);
        assert!(a.check_agrees(&other_mean).is_err());
        let mut other_model = a.clone();
        other_model.header.model = "n".into();
        assert!(a.check_agrees(&other_model).is_err());
    }
}
