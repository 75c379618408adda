//! Regenerates the embedded demo model in `assets/demo-model/` (or the folder given):
//! `cargo run --release --example train_demo_model [-- OUT_DIR]`, or `just demo-model`.
//!
//! Deterministic: the same source gives the same weights on the same platform (docs/demo.md).

use std::io::Write;
use std::path::PathBuf;

use saectl::demo::lm::{train_demo_lm, LmTrainConfig};

fn main() -> anyhow::Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("assets/demo-model"));
    let config = LmTrainConfig::default();
    let steps = config.steps;
    let report = train_demo_lm(&config, &out, |step, loss| {
        if step % 25 == 0 || step + 1 == steps {
            eprint!("\rstep {step:>5}/{steps}  loss {loss:.4}   ");
            let _ = std::io::stderr().flush();
        }
    })?;
    eprintln!();
    println!(
        "{} parameters, {} training tokens, {:.0} s\nheld-out cross-entropy (nats/token): \
         model {:.4}, bigram {:.4}, unigram {:.4}\nwritten to {}",
        report.parameters,
        report.train_tokens,
        report.seconds,
        report.eval_loss,
        report.bigram_loss,
        report.unigram_loss,
        out.display()
    );
    Ok(())
}
