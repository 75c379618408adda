//! Progress bars for long work: tokens/s and ETA on a terminal, nothing when stderr is not one.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar counting tokens towards `total`, drawn on stderr only when it is a terminal.
pub fn token_bar(total: u64, what: &str) -> ProgressBar {
    count_bar(total, what, "tokens")
}

/// A bar counting `unit`s (tokens, texts, prompts) towards `total`, on stderr only when it is
/// a terminal.
pub fn count_bar(total: u64, what: &str, unit: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let template = format!(
        "{what} {{bar:40.cyan/blue}} {{human_pos}}/{{human_len}} {unit} \
         [{{elapsed_precise}} < {{eta_precise}}, {{per_sec}}] {{msg}}"
    );
    bar.set_style(ProgressStyle::with_template(&template).expect("progress template is valid"));
    bar
}
