//! The terminal views of `inspect` and `steer`: plain text, one table per text, token text
//! made visible the way `analyze` shows it (spaces as `␣`, newlines as `⏎`).

use std::fmt::Write;

use super::feature_context::FeatureInfo;
use super::inspect::{InspectResult, TextReport};
use super::steer::{Continuation, SteerMode, SteerResult};
use crate::analyze::text::{visible_controls, visible_token};
use crate::model::StopReason;

/// Widest token column before it is cut.
const TOKEN_WIDTH: usize = 16;

impl InspectResult {
    /// Per text: the token table, then the features that fire most.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for (i, text) in self.texts.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let _ = writeln!(
                out,
                "text {} of {} ({} tokens, SAE at {}): {}",
                i + 1,
                self.texts.len(),
                text.tokens.len(),
                self.hook,
                visible_controls(&text.text)
            );
            self.render_tokens(text, &mut out);
            self.render_totals(text, &mut out);
        }
        out
    }

    fn render_tokens(&self, text: &TextReport, out: &mut String) {
        let width = text
            .tokens
            .iter()
            .map(|t| shown_token(&t.text).chars().count())
            .max()
            .unwrap_or(5)
            .clamp(5, TOKEN_WIDTH);
        let _ = writeln!(
            out,
            "\n  {:>5}  {:<width$}  top features (activation)",
            "pos", "token"
        );
        for token in &text.tokens {
            let features: Vec<String> = token
                .features
                .iter()
                .map(|a| {
                    let label = self
                        .label(a.feature)
                        .map_or(String::new(), |l| format!(" [{l}]"));
                    format!("{} {:.2}{label}", a.feature, a.activation)
                })
                .collect();
            let listed = match (token.special, features.is_empty()) {
                (true, true) => "(special token: not reported)".to_string(),
                (false, true) => "—".to_string(),
                _ => features.join("   "),
            };
            let _ = writeln!(
                out,
                "  {:>5}  {:<width$}  {listed}",
                token.position,
                shown_token(&token.text)
            );
        }
    }

    fn render_totals(&self, text: &TextReport, out: &mut String) {
        if text.top_features.is_empty() {
            let _ = writeln!(out, "\n  no feature fired on this text");
            return;
        }
        let _ = writeln!(
            out,
            "\n  features that fire most (sum of activations over the text):\n  {:>7}  {:>9}  {:>8}  {:>5}  {:>6}  {}",
            "feature", "sum", "max", "at", "tokens", self.info_heading()
        );
        let samples = self.samples_folder.is_some();
        for f in &text.top_features {
            let at = shown_token(&text.tokens[f.max_position].text);
            let info = self.features.get(&f.feature);
            let _ = writeln!(
                out,
                "  {:>7}  {:>9.2}  {:>8.2}  {:>5}  {:>6}  {}",
                f.feature,
                f.sum,
                f.max,
                f.max_position,
                f.tokens,
                describe(info, samples, at)
            );
        }
    }

    /// What the last column of the totals shows.
    fn info_heading(&self) -> String {
        let first = match self.samples_folder {
            Some(_) => "fires on (in the samples folder)",
            None => "token of max",
        };
        if self.features.values().any(|i| i.label.is_some()) {
            format!("{first}   label")
        } else {
            first.to_string()
        }
    }

    fn label(&self, feature: u32) -> Option<&str> {
        self.features.get(&feature)?.label.as_deref()
    }
}

/// The last column of a feature: its top tokens in the samples folder (`cat ×4, dog ×2 (max
/// 5.1)`) or, without one, the token where it peaked in this text; then its label.
fn describe(info: Option<&FeatureInfo>, samples: bool, at: String) -> String {
    let mut text = if samples {
        let tokens: Vec<String> = info
            .map(|i| i.top_tokens.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|t| format!("{} ×{}", visible_token(&t.text), t.count))
            .collect();
        match info.and_then(|i| i.max_activation) {
            Some(max) => format!("{} (max {max:.2})", tokens.join(", ")),
            None => "(not in the samples folder)".to_string(),
        }
    } else {
        at
    };
    if let Some(label) = info.and_then(|i| i.label.as_ref()) {
        let _ = write!(text, "   {label}");
    }
    text
}

/// A token for a table cell: visible, and cut to the column.
fn shown_token(text: &str) -> String {
    let shown = visible_token(text);
    if shown.chars().count() <= TOKEN_WIDTH {
        shown
    } else {
        let cut: String = shown.chars().take(TOKEN_WIDTH - 1).collect();
        cut + "…"
    }
}

impl SteerResult {
    /// Per prompt: the prompt, then the unsteered and the steered continuation one above the
    /// other, so that they line up word for word where they agree.
    pub fn render_text(&self) -> String {
        let edits: Vec<String> = self
            .edits
            .iter()
            .map(|e| match self.mode {
                SteerMode::Add => format!("{} {:+}", e.feature, e.value),
                SteerMode::Clamp => format!("{} = {}", e.feature, e.value),
            })
            .collect();
        let what = match self.mode {
            SteerMode::Add => "adding strength × decoder direction",
            SteerMode::Clamp => "clamping the activation",
        };
        let mut out = format!(
            "steering at {} by {what}: feature {}; {}, at most {} new tokens\n",
            self.hook,
            edits.join(", feature "),
            self.sampling,
            self.max_new_tokens
        );
        for (i, prompt) in self.prompts.iter().enumerate() {
            let _ = writeln!(
                out,
                "\nprompt {} of {}: {}",
                i + 1,
                self.prompts.len(),
                visible_controls(&prompt.prompt)
            );
            let _ = writeln!(
                out,
                "  unsteered: {}",
                shown_continuation(&prompt.unsteered)
            );
            let _ = writeln!(out, "  steered:   {}", shown_continuation(&prompt.steered));
        }
        out
    }
}

fn shown_continuation(c: &Continuation) -> String {
    let text = visible_controls(&c.text);
    match c.stop {
        StopReason::StopToken => format!("{text} ⏹"),
        StopReason::MaxNewTokens => format!("{text} …"),
    }
}
