//! Showing token text to people: invisible characters made visible, and a sample's context
//! split around its activating token so that the token can be marked.
//!
//! Token text is exactly what the tokenizer decoded: it may be a lone space, a newline, or
//! carry a leading space (`" cat"`). Printed raw, a newline breaks a report line in two and a
//! space-only token looks like nothing. Both the terminal views and the Markdown report go
//! through these helpers, so a token looks the same everywhere.

use crate::samples::format::ActivationSample;

/// Replaces control characters by visible symbols: newline `⏎`, tab `⇥`, carriage return
/// `␍`, any other C0 control by its Unicode control picture (U+2400 + code), DEL by `␡`.
pub fn visible_controls(text: &str) -> String {
    text.chars().map(visible_control).collect()
}

fn visible_control(c: char) -> char {
    match c {
        '\n' => '⏎',
        '\t' => '⇥',
        '\u{7f}' => '␡',
        c if (c as u32) < 0x20 => char::from_u32(0x2400 + c as u32).unwrap_or('�'),
        c => c,
    }
}

/// A token shown alone: control characters and also spaces made visible (`␣`), so `" cat"`
/// and `"cat"` differ on screen; the empty string shows as `∅`.
pub fn visible_token(text: &str) -> String {
    if text.is_empty() {
        return "∅".to_string();
    }
    visible_controls(text).replace(' ', "␣")
}

/// A sample's context cut around its activating token (raw text, nothing escaped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextParts<'a> {
    pub prefix: &'a str,
    pub token: &'a str,
    pub suffix: &'a str,
}

/// Splits a sample's context around its activating token, or `None` when the token cannot be
/// located. saectl records the split (`context_prefix` / `context_suffix`); for folders of
/// the Python original, which did not, the token's first occurrence in the context is taken.
pub fn context_parts(sample: &ActivationSample) -> Option<ContextParts<'_>> {
    let token = sample.text.as_str();
    if !sample.context_prefix.is_empty() || !sample.context_suffix.is_empty() {
        return Some(ContextParts {
            prefix: &sample.context_prefix,
            token,
            suffix: &sample.context_suffix,
        });
    }
    let context = sample.context_text.as_str();
    if token.is_empty() {
        return (context.is_empty()).then_some(ContextParts {
            prefix: "",
            token,
            suffix: "",
        });
    }
    let start = context.find(token)?;
    Some(ContextParts {
        prefix: &context[..start],
        token,
        suffix: &context[start + token.len()..],
    })
}

/// The context as the terminal views print it: `...the fluffy [[ cat]] sat...`, the token
/// between double brackets (unmarked when it could not be located).
pub fn marked_terminal(parts: Option<ContextParts<'_>>, context_text: &str) -> String {
    match parts {
        Some(parts) => format!(
            "...{}[[{}]]{}...",
            visible_controls(parts.prefix),
            visible_controls(parts.token),
            visible_controls(parts.suffix)
        ),
        None => format!("...{}...", visible_controls(context_text)),
    }
}

/// [`marked_terminal`] of a sample.
pub fn marked_context_terminal(sample: &ActivationSample) -> String {
    marked_terminal(context_parts(sample), &sample.context_text)
}

/// Formats an optional number with `digits` decimals, or `n/a` when it was not recorded.
pub fn fmt_opt(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.digits$}"))
}

/// A density as a percentage, or `n/a` when it was not recorded.
pub fn fmt_density(density: Option<f64>) -> String {
    density.map_or_else(|| "n/a".to_string(), |d| format!("{:.4}%", d * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::test_support::sample;

    #[test]
    fn control_characters_become_visible() {
        assert_eq!(visible_controls("a\nb\tc\r\u{1}\u{7f}"), "a⏎b⇥c␍␁␡");
        assert_eq!(visible_token(" cat"), "␣cat");
        assert_eq!(visible_token("\n"), "⏎");
        assert_eq!(visible_token(""), "∅");
    }

    #[test]
    fn marks_the_token_from_the_recorded_split() {
        let s = sample("the fluffy", " cat", " sat\non");
        assert_eq!(
            marked_context_terminal(&s),
            "...the fluffy[[ cat]] sat⏎on..."
        );
    }

    #[test]
    fn finds_the_token_in_a_legacy_context() {
        let mut s = sample("", " cat", "");
        s.context_text = "the fluffy cat sat".to_string();
        let parts = context_parts(&s).unwrap();
        assert_eq!(
            (parts.prefix, parts.token, parts.suffix),
            ("the fluffy", " cat", " sat")
        );
        s.context_text = "no match".to_string();
        assert_eq!(context_parts(&s), None);
        assert_eq!(marked_context_terminal(&s), "...no match...");
    }

    #[test]
    fn a_context_of_only_the_token_is_marked() {
        let s = sample("", "cat", "");
        assert_eq!(marked_context_terminal(&s), "...[[cat]]...");
    }
}
