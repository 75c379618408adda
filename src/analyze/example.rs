//! One stored sample as the views show it: ranked, its context cut around the activating
//! token, in the original's terminal layout. Shared by the feature report, the comparison and
//! the interval samples of the feature view.

use serde::Serialize;

use super::text::{context_parts, marked_terminal, visible_controls, ContextParts};
use super::tokens::activating_token;
use crate::samples::format::ActivationSample;

/// One stored sample as the views show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Example {
    /// 1-based rank among the feature's samples.
    pub rank: usize,
    pub activation: f32,
    /// The activating token's id and text.
    pub token: Option<u32>,
    pub text: String,
    pub context_text: String,
    /// The context before and after the activating token; `None` when the token could not be
    /// located in a context that records no split (folders of the Python original).
    pub context_prefix: Option<String>,
    pub context_suffix: Option<String>,
    pub position: u32,
    pub sequence_idx: u64,
}

impl Example {
    pub fn new(rank: usize, sample: &ActivationSample) -> Self {
        let parts = context_parts(sample);
        Self {
            rank,
            activation: sample.activation_value,
            token: activating_token(sample),
            text: sample.text.clone(),
            context_text: sample.context_text.clone(),
            context_prefix: parts.map(|p| p.prefix.to_string()),
            context_suffix: parts.map(|p| p.suffix.to_string()),
            position: sample.position,
            sequence_idx: sample.sequence_idx,
        }
    }

    /// The context cut around the activating token, when it was located.
    pub fn parts(&self) -> Option<ContextParts<'_>> {
        Some(ContextParts {
            prefix: self.context_prefix.as_deref()?,
            token: &self.text,
            suffix: self.context_suffix.as_deref()?,
        })
    }
}

/// Numbered examples of the given samples, best first.
pub(crate) fn examples_of<'a>(samples: impl Iterator<Item = &'a ActivationSample>) -> Vec<Example> {
    samples
        .enumerate()
        .map(|(i, sample)| Example::new(i + 1, sample))
        .collect()
}

/// One example in the original's layout.
pub(crate) fn render_example(example: &Example) -> String {
    format!(
        "[Example {}] Activation: {:.4}\n  Activating text: '{}'\n  Context: {}\n  Position in sequence: {}\n",
        example.rank,
        example.activation,
        visible_controls(&example.text),
        marked_terminal(example.parts(), &example.context_text),
        example.position
    )
}
