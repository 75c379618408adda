//! `logit_effects.json`: for every feature, the output tokens its decoder direction promotes
//! and suppresses most, through the model's final norm and unembedding (the formula is in
//! [`crate::model::unembed`]).
//!
//! The file depends on the SAE and the model only, never on the corpus: every shard of a
//! collection writes the same one, and `merge` carries it after checking that they agree. It
//! is a saectl addition to the samples folder (readers of the original's layout ignore it).
//! It holds every feature, so it is written with one feature per line — the header keys
//! pretty-printed as elsewhere — to stay small, greppable and diffable at d_sae 16k and more.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::folder_write::TokenDecoder;
use crate::model::{DirectionLogits, Unembedding};
use crate::sae::Sae;
use crate::util::atomic::write_atomic;

pub const LOGIT_EFFECTS_FILE_NAME: &str = "logit_effects.json";
const FORMAT_VERSION: u32 = 1;
/// Tokens listed per feature and direction.
pub const LOGIT_TOKENS: usize = 10;
/// What the values are, recorded in the file for readers.
const FORMULA: &str = "(W_dec[f] * (1 + w_final_norm)) . W_U[t], minus its mean over all tokens t \
                       (TransformerLens W_U with fold_ln and center_unembed; Gemma-2: W_U = W_E)";

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
}

/// The file's header: everything but the features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogitEffectsHeader {
    pub format_version: u32,
    pub formula: String,
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
    /// Computes the effects of every decoder row of `sae` (chunked, on the unembedding's
    /// device) and decodes the tokens.
    pub fn compute(
        sae: &Sae,
        unembed: &Unembedding,
        decoder: &dyn TokenDecoder,
        model: &str,
        checkpoint: &str,
    ) -> Result<Self> {
        let w_dec = &sae.weights().w_dec; // [d_sae, d_in]
        let logits = unembed
            .top_tokens(w_dec, LOGIT_TOKENS)
            .context("failed to compute the logit effects")?;
        let effects = |pairs: &[(u32, f32)]| -> Vec<TokenEffect> {
            pairs
                .iter()
                .map(|&(token_id, value)| TokenEffect {
                    token_id,
                    text: decoder.decode(&[token_id]),
                    value,
                })
                .collect()
        };
        let features = logits
            .iter()
            .enumerate()
            .map(|(f, DirectionLogits { top, bottom })| FeatureLogitEffects {
                feature_idx: f as u32,
                top: effects(top),
                bottom: effects(bottom),
            })
            .collect();
        Ok(Self {
            header: LogitEffectsHeader {
                format_version: FORMAT_VERSION,
                formula: FORMULA.to_string(),
                model: model.to_string(),
                checkpoint: checkpoint.to_string(),
                d_sae: sae.config().d_sae as u64,
                vocab_size: unembed.vocab_size() as u64,
                tokens_per_feature: LOGIT_TOKENS,
            },
            features,
        })
    }

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

    /// Writes `dir/logit_effects.json` atomically. No folder sync here: `collect` writes it
    /// before the samples folder, whose write syncs the folder.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_atomic(
            &dir.join(LOGIT_EFFECTS_FILE_NAME),
            self.to_json()?.as_bytes(),
        )
    }

    /// Reads `dir/logit_effects.json`; `None` when the folder has none.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(LOGIT_EFFECTS_FILE_NAME);
        if !path.exists() {
            return Ok(None);
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("failed to read {}", path.display()))?;
        let effects: Self = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a valid logit effects file", path.display()))?;
        if effects.header.format_version != FORMAT_VERSION {
            bail!(
                "{}: format version {} is not supported (this build reads {FORMAT_VERSION})",
                path.display(),
                effects.header.format_version
            );
        }
        if !effects
            .features
            .windows(2)
            .all(|w| w[0].feature_idx < w[1].feature_idx)
        {
            bail!("{}: features are not in index order", path.display());
        }
        Ok(Some(effects))
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
            let same = a.feature_idx == b.feature_idx
                && lists_agree(&a.top, &b.top)
                && lists_agree(&a.bottom, &b.bottom);
            if !same {
                bail!("they differ at feature {}", a.feature_idx);
            }
        }
        Ok(())
    }
}

/// Rank by rank: values within float noise, tokens equal unless the value ties a neighbour.
fn lists_agree(a: &[TokenEffect], b: &[TokenEffect]) -> bool {
    let close = |x: f32, y: f32| (x - y).abs() <= 1e-3 * x.abs().max(y.abs()).max(1.0);
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
                format_version: FORMAT_VERSION,
                formula: FORMULA.into(),
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
                },
                FeatureLogitEffects {
                    feature_idx: 1,
                    top: vec![effect(7, 1.5), effect(8, 1.5)],
                    bottom: vec![effect(1, -0.5), effect(2, -0.25)],
                },
            ],
        }
    }

    #[test]
    fn writes_one_feature_per_line_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let effects = sample();
        effects.write(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOGIT_EFFECTS_FILE_NAME)).unwrap();
        assert!(text.starts_with("{\n  \"format_version\": 1,\n"), "{text}");
        assert_eq!(
            text.lines().filter(|l| l.contains("feature_idx")).count(),
            2
        );
        assert_eq!(
            LogitEffects::read(dir.path()).unwrap(),
            Some(effects.clone())
        );
        assert_eq!(effects.feature(1).unwrap().top[0].token_id, 7);
        assert!(effects.feature(2).is_none());
        assert_eq!(LogitEffects::read(&dir.path().join("none")).unwrap(), None);
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
        let mut other_model = a.clone();
        other_model.header.model = "n".into();
        assert!(a.check_agrees(&other_model).is_err());
    }
}
