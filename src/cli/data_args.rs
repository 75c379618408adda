//! `--dataset` and how its text is read ([`TextArgs`], shared by `cache`, `collect` and
//! `train`), and how the text becomes token windows ([`DataArgs`], for `cache` and `collect`;
//! `train` takes `--num-tokens`, `--seq-len` and `--model-batch-size` among its config keys).

use clap::Args;

use crate::data::{PackConfig, SourceOptions, TextSpec, TxtDocuments};
use crate::hub::HubSettings;

/// Where the text comes from and how to read it.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Text")]
pub struct TextArgs {
    /// A .txt, .jsonl or .parquet file, a folder of them, or a Hugging Face dataset repo id
    /// (`org/name`), streamed shard by shard.
    #[arg(long, value_name = "PATH|REPO")]
    pub dataset: Option<String>,

    /// JSON field or parquet column holding the text.
    #[arg(long, default_value = "text", value_name = "NAME")]
    pub text_field: String,

    /// How a .txt file splits into documents: paragraph (blank-line separated), line, or file.
    #[arg(long, default_value = "paragraph", value_name = "UNIT")]
    pub txt_documents: TxtDocuments,

    /// Hub datasets: the split to read.
    #[arg(long, default_value = "train")]
    pub split: String,

    /// Hub datasets: the configuration (subset) to read.
    #[arg(long, value_name = "NAME")]
    pub dataset_config: Option<String>,

    /// Hub datasets: a glob over repo paths, replacing split and config selection.
    #[arg(long, value_name = "GLOB")]
    pub data_files: Option<String>,

    /// Hub datasets: branch, tag or commit.
    #[arg(long, default_value = "main")]
    pub revision: String,
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

    pub fn source_options(&self) -> SourceOptions {
        SourceOptions {
            text_field: self.text_field.clone(),
            txt_documents: self.txt_documents,
            split: self.split.clone(),
            config: self.dataset_config.clone(),
            data_files: self.data_files.clone(),
            revision: self.revision.clone(),
        }
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
    /// `--dataset` and `--num-tokens`, or an error saying the command needs them.
    pub fn require(&self, command: &str) -> anyhow::Result<(&str, u64)> {
        use anyhow::Context;
        let dataset = self.text.dataset.as_deref().with_context(|| {
            format!("`saectl {command}` needs --dataset (a file, folder or Hugging Face dataset)")
        })?;
        let num_tokens = self
            .num_tokens
            .with_context(|| format!("`saectl {command}` needs --num-tokens"))?;
        Ok((dataset, num_tokens))
    }

    pub fn source_options(&self) -> SourceOptions {
        self.text.source_options()
    }

    pub fn hub_settings(&self) -> HubSettings {
        HubSettings::from_env()
    }

    /// Packing for a run that starts after `start_window` windows already done.
    pub fn pack_config(&self, start_window: u64) -> anyhow::Result<PackConfig> {
        let config = PackConfig {
            num_tokens: self.num_tokens,
            start_window,
            ..PackConfig::new(self.model_batch_size, self.seq_len)
        };
        config.validate()?;
        Ok(config)
    }
}
