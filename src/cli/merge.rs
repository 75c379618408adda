//! `saectl merge S1 S2 … --out S`: samples folders collected on disjoint shards of a corpus
//! (`collect --shard I/N` on other GPUs or machines) become the folder one run over the whole
//! corpus writes, byte for byte.
//!
//! The samples' text is decoded again from token ids, so merge needs the tokenizer: `--tokenizer`,
//! or the one the folders' recorded source points to (the `--tokenizer` given to collect, the
//! activation cache's copy, or the model's own).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::collect::{merge_folders, write_merged, MergedFolders, TokenizerDecoder};
use crate::data::cache::ActivationCache;
use crate::hub::HubSettings;
use crate::model::{locate, ModelSource};

const EXAMPLES: &str = "\
Examples:
  saectl merge samples/l12-shard0 samples/l12-shard1 samples/l12-shard2 --out samples/l12
  saectl merge samples/l12-shard* --out samples/l12 --tokenizer gemma/tokenizer.json

The folders must come from `saectl collect --shard I/N` runs of one collection (same
checkpoint, source and settings; disjoint shards). See docs/collect.md.";

#[derive(Debug, Args)]
#[command(after_long_help = EXAMPLES)]
pub struct MergeArgs {
    /// The samples folders to merge (each with its collector_state.safetensors).
    #[arg(required = true, num_args = 2.., value_name = "DIR")]
    pub inputs: Vec<PathBuf>,

    /// The merged samples folder (must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// tokenizer.json to decode the samples with [default: the one the folders were collected
    /// with].
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
}

pub fn run(args: MergeArgs) -> Result<()> {
    for input in &args.inputs {
        if same_path(input, &args.out) {
            bail!(
                "--out {} is one of the inputs: merge writes a new folder",
                args.out.display()
            );
        }
    }
    let merged = merge_folders(&args.inputs)?;
    let tokenizer_path = match &args.tokenizer {
        Some(path) => path.clone(),
        None => recorded_tokenizer(&merged)?,
    };
    let tokenizer = crate::data::load_tokenizer(&tokenizer_path)?;
    write_merged(&args.out, &merged, &TokenizerDecoder(tokenizer))?;
    for note in &merged.notes {
        eprintln!("note: {note}");
    }
    for gap in &merged.gaps {
        eprintln!(
            "note: no folder covers sequences {}..{} (a shard left out?)",
            gap.start, gap.end
        );
    }
    eprintln!(
        "merged {} folders ({} sequences: {}) into {}",
        args.inputs.len(),
        merged.collector.sequences_seen(),
        merged.collector.sequence_ranges(),
        args.out.display()
    );
    Ok(())
}

/// The tokenizer the collection used, from its recorded source.
fn recorded_tokenizer(merged: &MergedFolders) -> Result<PathBuf> {
    let text = |key: &str| merged.source.get(key).and_then(|v| v.as_str());
    if let Some(path) = text("tokenizer") {
        return Ok(PathBuf::from(path));
    }
    if let Some(dir) = text("activations") {
        let cache = ActivationCache::open(Path::new(dir))
            .with_context(|| format!("cannot find the tokenizer of the cache {dir}"))?;
        return cache.tokenizer_path().with_context(|| {
            format!("the cache {dir} has no tokenizer.json; give one with --tokenizer")
        });
    }
    if let Some(model) = text("model").filter(|m| !m.is_empty()) {
        let source: ModelSource = model.parse()?;
        let files = locate(&source, Some(1), &HubSettings::from_env())
            .with_context(|| format!("cannot find the tokenizer of {model}"))?;
        return files
            .tokenizer
            .with_context(|| format!("{model} has no tokenizer.json; give one with --tokenizer"));
    }
    bail!("the folders record no tokenizer, cache or model; give one with --tokenizer")
}

/// Whether two paths name the same file (when both exist), or are spelled the same.
fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
