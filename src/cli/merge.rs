//! `saectl merge S1 S2 … --out S`: samples folders collected on disjoint shards of a corpus
//! (`collect --shard I/N` on other GPUs or machines) become the folder one run over the whole
//! corpus writes, byte for byte.
//!
//! The samples' text is decoded again from token ids, so merge needs the tokenizer: `--tokenizer`,
//! or the one the folders' recorded source points to (the `--tokenizer` given to collect, the
//! activation cache's copy, or the model's own).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::collect::{merge_folders, write_merged};
use crate::data::TokenizerDecoder;
use crate::util::paths::check_apart;

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
        check_apart(&args.out, "--out", input, "the input folder")?;
    }
    let merged = merge_folders(&args.inputs)?;
    let tokenizer_path = match &args.tokenizer {
        Some(path) => path.clone(),
        None => merged.recorded_tokenizer()?,
    };
    let decoder = TokenizerDecoder::from_file(&tokenizer_path)?;
    write_merged(&args.out, &merged, &decoder)?;
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
