//! `--dataset` and how its text is read ([`TextArgs`], shared by `cache`, `collect` and
//! `train`), and how the text becomes token windows ([`DataArgs`], for `cache` and `collect`;
//! `train` takes `--num-tokens`, `--seq-len` and `--model-batch-size` among its config keys).

use clap::Args;

use super::overlay::Given;
use crate::data::{SourceOptions, TextSpec, TxtDocuments};

/// Where the text comes from and how to read it.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Text")]
pub struct TextArgs {
    /// A .txt, .jsonl or .parquet file, a folder of them, or a Hugging Face dataset repo id
    /// (`org/name`), streamed shard by shard.
    #[arg(long, value_name = "PATH|REPO")]
    pub dataset: Option<String>,

    /// JSON field or parquet column holding the text [default: text].
    #[arg(long, value_name = "NAME")]
    pub text_field: Option<String>,

    /// How a .txt file splits into documents: paragraph (blank-line separated), line, or file
    /// [default: paragraph].
    #[arg(long, value_name = "UNIT")]
    pub txt_documents: Option<TxtDocuments>,

    /// Hub datasets: the split to read [default: train].
    #[arg(long, value_name = "SPLIT")]
    pub split: Option<String>,

    /// Hub datasets: the configuration (subset) to read.
    #[arg(long, value_name = "NAME")]
    pub dataset_config: Option<String>,

    /// Hub datasets: a glob over repo paths, replacing split and config selection.
    #[arg(long, value_name = "GLOB")]
    pub data_files: Option<String>,

    /// Hub datasets: branch, tag or commit [default: main].
    #[arg(long, value_name = "REVISION")]
    pub revision: Option<String>,
}

impl TextArgs {
    /// `--dataset` and how to read it, when a dataset is given.
    pub fn text_spec(&self) -> Option<TextSpec> {
        let dataset = self.dataset.clone()?;
        Some(TextSpec {
            dataset,
            options: self.source_options(),
        })
    }

    /// How to read the text: the given flags laid over [`SourceOptions::default`].
    pub fn source_options(&self) -> SourceOptions {
        let mut options = SourceOptions::default();
        self.overlay(&mut options);
        options
    }

    /// The flags that say how to read the text, when given (`--dataset` aside).
    pub fn given(&self) -> Vec<String> {
        self.overlay(&mut SourceOptions::default())
    }

    /// Lays the given flags over `options`; both sides are destructured field by field, so a
    /// flag or an option added on one side alone does not compile.
    fn overlay(&self, options: &mut SourceOptions) -> Vec<String> {
        let TextArgs {
            dataset: _,
            text_field,
            txt_documents,
            split,
            dataset_config,
            data_files,
            revision,
        } = self;
        let SourceOptions {
            text_field: field_slot,
            txt_documents: documents_slot,
            split: split_slot,
            config: config_slot,
            data_files: files_slot,
            revision: revision_slot,
        } = options;
        let mut given = Given::default();
        given.set("text_field", text_field, field_slot);
        given.set("txt_documents", txt_documents, documents_slot);
        given.set("split", split, split_slot);
        given.set_some("dataset_config", dataset_config, config_slot);
        given.set_some("data_files", data_files, files_slot);
        given.set("revision", revision, revision_slot);
        given.into_flags()
    }
}

/// The text plus how much of it to read and how to cut it into windows.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    #[command(flatten)]
    pub text: TextArgs,

    /// Tokens to process (rounded up to whole sequences).
    #[arg(long, value_name = "N", help_heading = "Text")]
    pub num_tokens: Option<u64>,

    /// Tokens per sequence (one BOS per document; documents are packed across rows).
    #[arg(long, default_value_t = 128, value_name = "N", help_heading = "Text")]
    pub seq_len: usize,

    /// Sequences per model forward pass.
    #[arg(long, default_value_t = 8, value_name = "N", help_heading = "Text")]
    pub model_batch_size: usize,
}

impl DataArgs {
    /// The text (`--dataset` and how to read it) and `--num-tokens`, or an error saying the
    /// command needs them.
    pub fn require(&self, command: &str) -> anyhow::Result<(TextSpec, u64)> {
        use anyhow::Context;
        let text = self.text.text_spec().with_context(|| {
            format!("`saectl {command}` needs --dataset (a file, folder or Hugging Face dataset)")
        })?;
        let num_tokens = self
            .num_tokens
            .with_context(|| format!("`saectl {command}` needs --num-tokens"))?;
        Ok((text, num_tokens))
    }
}
