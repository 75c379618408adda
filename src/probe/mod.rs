//! Probing features live, on a model and an SAE at its hook: which features fire on a given
//! text ([`inspect`]) and what a feature does when pushed ([`steer`]).
//!
//! Both run on a [`Probe`] ([`open::open`] loads one): the model (to the hook for `inspect`; whole, with its head, for
//! `steer`), the SAE and the tokenizer. The results are plain serde data, rendered to text
//! here ([`InspectResult::render_text`], [`SteerResult::render_text`]) or written as JSON by the
//! CLI; the dashboard's prompt view calls [`inspect()`] for its precomputed texts.
//! What the samples folder and a labels file say about a feature comes from
//! [`FeatureContext`]. See docs/probe.md for the definitions (ranking, windows, the exact
//! steering and clamping formulas, and where the hook sits in Hugging Face's model).

mod feature_context;
pub mod inspect;
pub mod open;
mod render;
pub mod steer;
mod windows;

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};

pub use feature_context::{read_labels, FeatureContext, FeatureInfo, TokenCount};
pub use inspect::{
    inspect, Activation, FeatureOverText, InspectConfig, InspectResult, TextReport, TokenFeatures,
};
pub use steer::{
    steer, steer_tokens, Continuation, FeatureEdit, SteerConfig, SteerMode, SteerResult,
    SteeredPrompt, Steering,
};
pub use windows::{plan_windows, Window};

use crate::data::DocumentTokenizer;
use crate::model::{Gemma2, HookPoint};
use crate::sae::Sae;

/// What `inspect` and `steer` run on: a model loaded at least to `hook`, the SAE that reads
/// the activation there, and the model's tokenizer.
pub struct Probe {
    pub model: Gemma2,
    pub sae: Sae,
    pub tokenizer: DocumentTokenizer,
    pub hook: HookPoint,
}

impl Probe {
    /// Checks that the pieces fit: the SAE's width is the model's, and the hook is loaded.
    pub fn new(
        model: Gemma2,
        sae: Sae,
        tokenizer: DocumentTokenizer,
        hook: HookPoint,
    ) -> Result<Self> {
        if sae.config().d_in != model.d_model() {
            bail!(
                "the SAE reads d_in {} but the model's d_model is {} (at {hook})",
                sae.config().d_in,
                model.d_model()
            );
        }
        if hook.layers_needed() > model.loaded_layers() {
            bail!(
                "hook {hook} needs {} layers, but the model has {} loaded",
                hook.layers_needed(),
                model.loaded_layers()
            );
        }
        Ok(Self {
            model,
            sae,
            tokenizer,
            hook,
        })
    }

    /// The ids of `text` as the model reads a document: the tokenizer's BOS (if it has one),
    /// then the text's tokens.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids: Vec<u32> = self.tokenizer.bos_id().into_iter().collect();
        ids.extend(self.tokenizer.encode(text)?);
        Ok(ids)
    }

    /// Generated tokens as text, special tokens left out.
    pub fn decode(&self, tokens: &[u32]) -> String {
        self.tokenizer
            .tokenizer()
            .decode(tokens, true)
            .unwrap_or_else(|err| format!("<decode error: {err}>"))
    }

    /// One token's text, raw (special tokens by their name).
    pub fn token_text(&self, id: u32) -> String {
        self.tokenizer
            .tokenizer()
            .decode(&[id], false)
            .unwrap_or_else(|err| format!("<decode error: {err}>"))
    }
}

/// Texts, one per line of `path` (empty lines skipped); `-` reads standard input.
pub fn read_texts(path: &Path) -> Result<Vec<String>> {
    let content = if path.as_os_str() == "-" {
        let mut content = String::new();
        std::io::stdin()
            .read_to_string(&mut content)
            .context("failed to read texts from standard input")?;
        content
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("failed to read texts from {}", path.display()))?
    };
    let texts: Vec<String> = content
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_string)
        .collect();
    if texts.is_empty() {
        bail!("{} holds no text (one per line)", path.display());
    }
    Ok(texts)
}

#[cfg(test)]
mod tests;
