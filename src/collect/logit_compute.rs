//! Computing `logit_effects.json` (its format is [`crate::samples::LogitEffects`]): every
//! decoder row of the SAE through the model's final norm and unembedding.

use anyhow::{Context, Result};

use crate::data::TokenDecoder;
use crate::model::{DirectionLogits, Unembedding};
use crate::sae::Sae;
use crate::samples::{
    FeatureLogitEffects, LogitEffects, LogitEffectsHeader, TokenEffect, LOGIT_EFFECTS_FORMAT,
    LOGIT_EFFECTS_FORMULA, LOGIT_TOKENS,
};

/// The effects of every decoder row of `sae` (chunked, on the unembedding's device), tokens
/// decoded; `model` and `checkpoint` are recorded as given.
pub fn compute_logit_effects(
    sae: &Sae,
    unembed: &Unembedding,
    decoder: &dyn TokenDecoder,
    model: &str,
    checkpoint: &str,
) -> Result<LogitEffects> {
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
    Ok(LogitEffects {
        header: LogitEffectsHeader {
            format_version: LOGIT_EFFECTS_FORMAT,
            formula: LOGIT_EFFECTS_FORMULA.to_string(),
            model: model.to_string(),
            checkpoint: checkpoint.to_string(),
            d_sae: sae.config().d_sae as u64,
            vocab_size: unembed.vocab_size() as u64,
            tokens_per_feature: LOGIT_TOKENS,
        },
        features,
    })
}
