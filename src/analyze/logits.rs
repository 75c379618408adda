//! A feature's logit effects (from `logit_effects.json`) as the views show them: the tokens
//! its decoder direction promotes and suppresses most, each with its effect.

use crate::samples::TokenEffect;

/// Tokens shown per line (the file holds up to 10).
pub const LOGIT_TOKENS_SHOWN: usize = 10;

/// `␣cat +1.234, ␣dog +1.100`, each token shown with `show` (terminal or Markdown), or
/// `(none)`.
pub fn logit_line(effects: &[TokenEffect], show: impl Fn(&str) -> String) -> String {
    if effects.is_empty() {
        return "(none)".to_string();
    }
    let shown: Vec<String> = effects
        .iter()
        .take(LOGIT_TOKENS_SHOWN)
        .map(|e| format!("{} {:+.3}", show(&e.text), e.value))
        .collect();
    shown.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::text::visible_token;

    #[test]
    fn shows_tokens_with_signed_effects() {
        let effects = [
            TokenEffect {
                token_id: 5,
                text: " cat".into(),
                value: 1.23456,
            },
            TokenEffect {
                token_id: 6,
                text: "".into(),
                value: -0.5,
            },
        ];
        assert_eq!(logit_line(&effects, visible_token), "␣cat +1.235, ∅ -0.500");
        assert_eq!(logit_line(&[], visible_token), "(none)");
    }
}
