//! Token text made safe for Markdown, and the activating token marked inside its context.
//!
//! Token text is arbitrary: `*`, `_`, `#`, `|`, `<b>`, `$x$` or a backslash from the corpus
//! must show as themselves, not as emphasis, headings, table cells, HTML or maths. Every
//! ASCII punctuation character may be backslash-escaped in CommonMark, so escaping the ones
//! with a meaning in CommonMark or GitHub Markdown is always safe. Newlines would end the
//! list item they sit in, so they show as `⏎` (see [`crate::analyze::text`]).

use crate::analyze::text::{visible_controls, visible_token, ContextParts};

/// Characters with a meaning in CommonMark or GitHub Flavored Markdown (emphasis, code,
/// links, HTML, headings, tables, strikethrough, maths, entities).
const SPECIAL: &[char] = &[
    '\\', '`', '*', '_', '[', ']', '<', '>', '#', '|', '~', '$', '&',
];

/// Backslash-escapes every Markdown-active character of `text`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if SPECIAL.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Running text from a token stream: control characters visible, then escaped.
pub fn inline(text: &str) -> String {
    escape(&visible_controls(text))
}

/// A token shown on its own: spaces visible as `␣` too, then escaped.
pub fn token(text: &str) -> String {
    escape(&visible_token(text))
}

/// The context with its activating token in bold, between ellipses:
/// `…the fluffy **cat** sat…`. The token's own leading and trailing whitespace stays outside
/// the bold (`** cat**` would not render as bold); a whitespace-only token shows as `␣`/`⏎`
/// in bold. When the token could not be located the context is shown unmarked.
pub fn marked_context(parts: Option<ContextParts<'_>>, context_text: &str) -> String {
    let Some(parts) = parts else {
        return format!("…{}…", inline(context_text));
    };
    let token = parts.token;
    let core = token.trim_matches(char::is_whitespace);
    let (lead, core, trail) = if core.is_empty() {
        ("", visible_token(token), "")
    } else {
        let start = token.len() - token.trim_start_matches(char::is_whitespace).len();
        let end = start + core.len();
        (&token[..start], visible_controls(core), &token[end..])
    };
    format!(
        "…{}{}{}{}{}…",
        inline(parts.prefix),
        inline(lead),
        bold(&core),
        inline(trail),
        inline(parts.suffix)
    )
}

/// `**text**` when that is sure to render as bold, else `<b>text</b>`: CommonMark only
/// opens (closes) `**` before (after) a non-punctuation character when it touches a word,
/// and a token such as `.` inside `a.b` would show literal asterisks.
fn bold(visible: &str) -> String {
    let alphanumeric_edges = visible.chars().next().is_some_and(char::is_alphanumeric)
        && visible.chars().last().is_some_and(char::is_alphanumeric);
    if alphanumeric_edges {
        format!("**{}**", escape(visible))
    } else {
        format!("<b>{}</b>", escape(visible))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(prefix: &'a str, token: &'a str, suffix: &'a str) -> Option<ContextParts<'a>> {
        Some(ContextParts {
            prefix,
            token,
            suffix,
        })
    }

    #[test]
    fn escapes_markdown_characters() {
        assert_eq!(
            escape(r"a*b_c `d` [e](f) <g> #h |i| ~j~ $k$ &l; \m"),
            r"a\*b\_c \`d\` \[e\](f) \<g\> \#h \|i\| \~j\~ \$k\$ \&l; \\m"
        );
        assert_eq!(escape("plain words, 1. 2-3!"), "plain words, 1. 2-3!");
    }

    #[test]
    fn newlines_and_spaces_become_visible() {
        assert_eq!(inline("a\nb c"), "a⏎b c");
        assert_eq!(token(" cat"), "␣cat");
        assert_eq!(token("  "), "␣␣");
        assert_eq!(token("\n"), "⏎");
        assert_eq!(token("*"), r"\*");
    }

    #[test]
    fn marks_the_token_in_bold_with_its_whitespace_outside() {
        assert_eq!(
            marked_context(parts("the fluffy", " cat", " sat"), ""),
            "…the fluffy **cat** sat…"
        );
        assert_eq!(
            marked_context(parts("walk", "ing", " on"), ""),
            "…walk**ing** on…"
        );
    }

    #[test]
    fn whitespace_and_punctuation_tokens_stay_visible_and_bold() {
        assert_eq!(marked_context(parts("a", " ", "b"), ""), "…a<b>␣</b>b…");
        assert_eq!(
            marked_context(parts("end", "\n", "next"), ""),
            "…end<b>⏎</b>next…"
        );
        assert_eq!(
            marked_context(parts("x", "*", "y\nz"), ""),
            r"…x<b>\*</b>y⏎z…"
        );
        assert_eq!(marked_context(parts("", "<b>", ""), ""), r"…<b>\<b\></b>…");
    }

    #[test]
    fn an_unlocated_token_leaves_the_context_unmarked() {
        assert_eq!(marked_context(None, "the | cat"), r"…the \| cat…");
    }
}
