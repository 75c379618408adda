//! `saectl dashboard`: every feature of an SAE in one offline HTML file.
//!
//! What the page shows is the per-feature view of the collection, [`crate::features`] (the
//! folder and its collector state, every feature's examples, the tokenizer, the neighbours),
//! which `saectl export` reads too. Here: [`prompts`] runs the model on `--prompts` texts for
//! the prompt view; [`encode`] packs everything into an index (`index.rs`) and compressed
//! shards; [`html`] writes the page with its hand-written script and style
//! (`assets/dashboard/`). The page needs no server and no network; docs/dashboard.md
//! describes what it shows and the file's format. [`synthetic`] makes the large test folder.

pub mod bytes;
pub mod encode;
pub mod html;
mod index;
pub mod prompts;
pub mod synthetic;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};

use crate::analyze::decoder::DecoderDirections;
use crate::features::input::FolderInput;
use crate::features::model::{ExampleCounts, FeatureSet};
use crate::features::similar;
use crate::features::tokenizer::{token_texts, TokenizerSource};
use encode::{Neighbours, Provenance};
pub use html::SplitMode;
use prompts::PromptsConfig;

/// The file name `saectl dashboard DIR` writes into DIR, and `report` looks for.
pub const DASHBOARD_FILE_NAME: &str = "dashboard.html";

/// A validated `dashboard` invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct DashboardConfig {
    pub samples: PathBuf,
    pub out: PathBuf,
    /// The SAE, for decoder-cosine neighbours.
    pub checkpoint: Option<PathBuf>,
    pub tokenizer: Option<PathBuf>,
    pub counts: ExampleCounts,
    pub split: SplitMode,
    /// Texts to precompute the prompt view for (needs `checkpoint`).
    pub prompts: Option<PromptsConfig>,
}

/// What `run` wrote, for the command to report.
#[derive(Clone, Debug, PartialEq)]
pub struct DashboardOutcome {
    pub files: html::WrittenFiles,
    pub features: usize,
    pub examples: usize,
    pub shards: usize,
    pub tokenizer: TokenizerSource,
    /// Examples that came with per-token activations.
    pub token_activations: usize,
    /// Texts in the prompt view.
    pub prompts: usize,
    /// What the user should read (the model the prompts ran on, a device fallback).
    pub notes: Vec<String>,
    pub seconds: f64,
}

/// Builds and writes the dashboard; `stage` hears what is being done (for a progress line).
pub fn run(config: &DashboardConfig, stage: &mut dyn FnMut(&str)) -> Result<DashboardOutcome> {
    let started = Instant::now();
    stage("reading the samples folder");
    let input = FolderInput::load(&config.samples)?;
    let tokenizer_source = TokenizerSource::resolve(config.tokenizer.as_deref(), &input.summary)?;
    let tokenizer = tokenizer_source.load()?;
    let directions = match &config.checkpoint {
        Some(path) => {
            stage("reading the decoder");
            let directions = DecoderDirections::load(path)?;
            directions.check_width(Some(input.summary.d_sae), path)?;
            Some(directions)
        }
        None => None,
    };
    let mut notes = Vec::new();
    let prompts = match (&config.prompts, &config.checkpoint) {
        (Some(prompts), Some(checkpoint)) => {
            stage("running the model on the prompts");
            let recorded = input.summary.source.model.as_deref();
            let recorded_tokenizer = input.summary.source.tokenizer.as_deref().map(Path::new);
            let tokenizer = config.tokenizer.as_deref().or(recorded_tokenizer);
            Some(prompts::compute(
                prompts, checkpoint, recorded, tokenizer, &mut notes,
            )?)
        }
        (Some(_), None) => bail!("--prompts needs the SAE: give --checkpoint"),
        (None, _) => None,
    };
    stage("reading out every feature");
    let model = FeatureSet::from_collector(
        &input.collector,
        &input.flag_config(),
        config.counts,
        input.logit_effects.as_ref().map(|l| l.features.as_slice()),
    );
    let token_activations = (model.features.iter())
        .flat_map(|f| f.groups.iter().flat_map(|g| &g.examples))
        .filter(|e| e.token_activations.is_some())
        .count();
    stage("finding similar features");
    let neighbours = Neighbours {
        tokens: similar::token_overlap(&model),
        contexts: similar::context_overlap(&model, config_block(&model)),
        decoder: directions
            .as_ref()
            .map(|d| similar::decoder_cosine(d, d.row(0).map_or(0, <[f32]>::len)))
            .transpose()?,
    };
    stage("encoding");
    let provenance = provenance(&input);
    let mut encoded = encode::encode(&model, &neighbours, &provenance, |ids| {
        token_texts(&tokenizer, ids)
    });
    encoded.prompts = prompts.as_ref().map(encode::prompts_block);
    stage("writing");
    if let Some(parent) = config.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            bail!(
                "cannot write {}: folder {} does not exist",
                config.out.display(),
                parent.display()
            );
        }
    }
    let files = html::write(&config.out, &provenance.title, &encoded, config.split)?;
    Ok(DashboardOutcome {
        files,
        features: model.features.len(),
        examples: model.example_count(),
        shards: encoded.shards.len(),
        tokenizer: tokenizer_source,
        token_activations,
        prompts: prompts.map_or(0, |p| p.texts.len()),
        notes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The block of the context-overlap measure: one context window.
fn config_block(model: &FeatureSet) -> u32 {
    model.facts.context_size as u32 + 1
}

fn provenance(input: &FolderInput) -> Provenance {
    let source = input.summary.source.to_map();
    let text = |key: &str| source.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let name = folder_name(&input.dir);
    let what = text("checkpoint")
        .or_else(|| text("model"))
        .unwrap_or_else(|| "samples".to_string());
    Provenance {
        title: format!("{name} · {} features", input.summary.d_sae),
        label_key: format!(
            "{}#{}",
            text("checkpoint").unwrap_or_else(|| what.clone()),
            input.summary.d_sae
        ),
        source,
    }
}

fn folder_name(dir: &Path) -> String {
    dir.canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string())
}

/// The dashboard beside a report at `report`, if one was written there.
pub fn beside(report: &Path) -> Option<PathBuf> {
    let path = report.parent().map_or_else(
        || PathBuf::from(DASHBOARD_FILE_NAME),
        |p| p.join(DASHBOARD_FILE_NAME),
    );
    path.is_file().then_some(path)
}
