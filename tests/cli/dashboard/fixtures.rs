//! Samples folders for the dashboard tests, made with the real collector and folder writer:
//! hostile tokens, a folder where nothing fired, a one-feature SAE.

use std::path::Path;

use saectl::collect::{write_samples_folder, Collector, FeatureActivations, TokenBatch};
use saectl::dashboard::synthetic::word_level_tokenizer_json;
use saectl::data::TokenizerDecoder;
use saectl::samples::{CollectionSource, CollectorConfig, SamplesDir, SaveConfig, STATE_FILE_NAME};

/// Tokens a page must show as text: markup, entities, NUL, a right-to-left override, emoji,
/// a lone byte's replacement character, a 2,000-character token.
pub fn hostile_tokens() -> Vec<String> {
    let mut tokens: Vec<String> = ["<pad>", "<eos>", "<bos>", "<unk>", "plain", "words"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    tokens.extend(
        [
            "<script>alert(1)</script>",
            "&amp;",
            "\u{0}nul",
            "\u{202e}evil",
            "🦊emoji",
            "\u{fffd}",
            "<img src=x onerror=alert(2)>",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    tokens.push("long".repeat(500));
    tokens
}

/// Index of the first hostile token in [`hostile_tokens`].
pub const FIRST_HOSTILE: u32 = 6;

/// A samples folder whose features each fire on one token: feature `i` on token
/// `FIRST_HOSTILE + i`, feature `d_sae - 1` on "plain".
pub fn write_folder(
    dir: &Path,
    tokens: &[String],
    d_sae: usize,
    fires: impl Fn(u32) -> Option<(usize, f32)>,
) {
    std::fs::create_dir_all(dir).unwrap();
    let tokenizer_path = dir.join("tokenizer.json");
    std::fs::write(
        &tokenizer_path,
        word_level_tokenizer_json(tokens, &["<pad>", "<eos>", "<bos>", "<unk>"]),
    )
    .unwrap();
    let (rows, seq_len) = (8usize, 16usize);
    let ids: Vec<u32> = (0..rows * seq_len)
        .map(|i| {
            if i % seq_len == 0 {
                2
            } else {
                4 + ((i * 7 + i / seq_len) % (tokens.len() - 4)) as u32
            }
        })
        .collect();
    let mut values = vec![0.0f32; ids.len() * d_sae];
    for (t, &id) in ids.iter().enumerate() {
        if let Some((f, v)) = fires(id) {
            values[t * d_sae + f] = v + (t % 5) as f32 * 0.1;
        }
    }
    let mut collector = Collector::new(CollectorConfig::default(), d_sae, &[0, 1, 2, 3]).unwrap();
    collector
        .ingest(
            &TokenBatch::new(&ids, rows, seq_len, 0).unwrap(),
            &FeatureActivations::Dense {
                values: &values,
                d_sae,
            },
        )
        .unwrap();
    collector.save_state(&dir.join(STATE_FILE_NAME)).unwrap();
    let source = CollectionSource {
        tokenizer: Some(tokenizer_path.display().to_string()),
        checkpoint: Some("fixture".into()),
        ..CollectionSource::default()
    };
    write_samples_folder(
        &SamplesDir::new(dir),
        &collector,
        &TokenizerDecoder::from_file(&tokenizer_path).unwrap(),
        &SaveConfig::default(),
        source,
    )
    .unwrap();
}

/// Hostile tokens, one feature per hostile token plus one on "plain".
pub fn hostile_folder(dir: &Path) -> usize {
    let tokens = hostile_tokens();
    let hostile = tokens.len() - FIRST_HOSTILE as usize;
    let d_sae = hostile + 1;
    write_folder(dir, &tokens, d_sae, |id| {
        if id >= FIRST_HOSTILE {
            Some(((id - FIRST_HOSTILE) as usize, 2.0))
        } else if id == 4 {
            Some((hostile, 1.0))
        } else {
            None
        }
    });
    d_sae
}
