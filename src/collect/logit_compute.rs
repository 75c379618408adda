//! Computing `logit_effects.json` (its format is [`crate::samples::LogitEffects`]): every
//! decoder row of the SAE through the model's final norm and unembedding, and when a
//! collection writes it.

use anyhow::{bail, Context, Result};

use super::collector::Collector;
use super::run::{CollectEvent, Stage};
use super::saver::FolderSaver;
use crate::data::TokenDecoder;
use crate::model::{DirectionLogits, HookPoint, HookSite, ModelSpec, OpenedModel, Unembedding};
use crate::sae::Sae;
use crate::samples::{
    FeatureLogitEffects, LogitConvention, LogitEffects, LogitEffectsHeader, TokenEffect,
    LOGIT_EFFECTS_FORMAT, LOGIT_EFFECTS_FORMULA, LOGIT_TOKENS,
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
        .map(
            |(f, DirectionLogits { top, bottom, mean })| FeatureLogitEffects {
                feature_idx: f as u32,
                top: effects(top),
                bottom: effects(bottom),
                vocab_mean: Some(*mean),
            },
        )
        .collect();
    Ok(LogitEffects {
        header: LogitEffectsHeader {
            format_version: LOGIT_EFFECTS_FORMAT,
            formula: LOGIT_EFFECTS_FORMULA.to_string(),
            convention: LogitConvention::Uncentred,
            model: model.to_string(),
            checkpoint: checkpoint.to_string(),
            d_sae: sae.config().d_sae as u64,
            vocab_size: unembed.vocab_size() as u64,
            tokens_per_feature: LOGIT_TOKENS,
        },
        features,
    })
}

/// Where the logit effects' unembedding comes from.
pub(super) enum LogitSource<'a> {
    /// The model loaded for a live collection.
    Model {
        opened: &'a OpenedModel,
        model: &'a ModelSpec,
    },
    /// A model's final norm and unembedding alone (a cache made from `cache_model`).
    Unembedding {
        model: &'a ModelSpec,
        cache_model: &'a str,
    },
}

impl Stage<'_> {
    /// Writes the logit effects unless the user opted out, the model is not at hand, the hook
    /// is not in the residual stream (the MLP's normalized input), or the folder already holds
    /// this collection's (a resumed collection keeps its own). A fresh collection without them
    /// must not keep another collection's file.
    pub(super) fn logit_effects(
        &mut self,
        source: Option<LogitSource<'_>>,
        hook: &HookPoint,
        collector: &Collector,
        saver: &FolderSaver,
    ) -> Result<()> {
        let fresh = collector.sequences_seen() == 0;
        let Some(source) = source.filter(|_| self.config.logit_effects) else {
            return self.drop_stale_logit_effects(fresh);
        };
        if hook.site == HookSite::Ln2Normalized {
            self.note(format!(
                "no logit effects: {hook} is not in the residual stream"
            ));
            return self.drop_stale_logit_effects(fresh);
        }
        if !fresh && self.out.logit_effects().exists() {
            return Ok(());
        }
        let (unembed, model) = match source {
            LogitSource::Model { opened, model } => (opened.unembedding()?, &model.model),
            LogitSource::Unembedding { model, cache_model } => {
                if model.model != cache_model {
                    self.note(format!(
                        "the cache was made from {cache_model}; the logit effects use {}",
                        model.model
                    ));
                }
                (unembedding_of(model, &self.sae)?, &model.model)
            }
        };
        let checkpoint = &self.source.checkpoint;
        let effects =
            compute_logit_effects(&self.sae, &unembed, saver.decoder(), model, checkpoint)?;
        self.out.create()?;
        self.out.write_logit_effects(&effects)?;
        (self.on_progress)(CollectEvent::LogitEffects {
            features: effects.features.len(),
            path: self.out.logit_effects(),
        });
        Ok(())
    }

    fn drop_stale_logit_effects(&self, fresh: bool) -> Result<()> {
        if fresh {
            self.out.remove_logit_effects()?;
        }
        Ok(())
    }
}

/// The final norm and unembedding of `model` alone (no block), on the SAE's device, checked
/// to have the SAE's width.
fn unembedding_of(model: &ModelSpec, sae: &Sae) -> Result<Unembedding> {
    let located = model.locate(&[])?;
    let (d_in, d_model) = (sae.config().d_in, located.config.hidden_size);
    if d_model != d_in {
        bail!(
            "the SAE reads d_in {d_in} but {} has d_model {d_model}: not the model of these activations",
            model.model
        );
    }
    located.unembedding(sae.weights().w_dec.device())
}
