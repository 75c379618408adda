//! Everything an export is made from, gathered once: the per-feature view of the collection,
//! each token's text, the decoder (neighbours and alignments), the labels, the logit effects'
//! convention, and what is known about the model and the SAE for the metadata rows.
//!
//! Only what is on disk is read: the recorded checkpoint is used when it exists locally, the
//! model's `config.json` is read from its folder or the local Hugging Face cache. What is not
//! at hand is left empty and said in a note.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::build::{feature_rows, FeatureInputs, FeatureRows, Names};
use super::rows::{ModelRow, SourceRow, SourceSetRow};
use super::{ExportConfig, Target};
use crate::analyze::decoder::DecoderDirections;
use crate::features::input::FolderInput;
use crate::features::model::{ExampleCounts, FeatureSet};
use crate::features::read_labels;
use crate::features::similar::{decoder_cosine, NeighbourLists};
use crate::features::tokenizer::{token_texts, TokenizerSource};
use crate::hub::{HubRepo, HubSettings, RepoKind};
use crate::model::{read_config, ModelSource};
use crate::sae::checkpoint::CFG_FILE;
use crate::sae::releases;
use crate::samples::{CollectionSummary, LogitConvention};

/// The model as the `Model` row describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelFacts {
    pub layers: usize,
    /// MLP neurons per layer (`intermediate_size`), 0 when unknown.
    pub neurons_per_layer: usize,
    pub dimension: Option<usize>,
    /// The Hub organisation, for `owner`.
    pub organisation: Option<String>,
    pub hub_id: Option<String>,
}

/// Everything the writers need.
pub struct Prepared {
    pub set: FeatureSet,
    pub summary: CollectionSummary,
    pub target: Target,
    pub layer: usize,
    pub names: Names,
    pub model: ModelFacts,
    pub labels: BTreeMap<u32, String>,
    pub neighbours: Option<NeighbourLists>,
    pub directions: Option<DecoderDirections>,
    /// The checkpoint the neighbours came from.
    pub checkpoint: Option<PathBuf>,
    /// Per feature, what turns its logit values into Neuronpedia's convention.
    logit_shifts: Vec<f32>,
    /// The convention of the written logit values (`None`: the folder has none).
    pub logit_convention: Option<LogitConvention>,
    texts: HashMap<u32, String>,
    pub per_token_examples: usize,
    pub examples: usize,
    pub notes: Vec<String>,
}

/// Reads everything `config` names.
pub fn prepare(config: &ExportConfig, stage: &mut dyn FnMut(&str)) -> Result<Prepared> {
    stage("reading the samples folder");
    let input = FolderInput::load(&config.samples)?;
    let summary = input.summary.clone();
    let layer = resolve_layer(config.target.layer, &summary)?;
    let model = model_facts(&summary, config.model_layers)?;
    if layer >= model.layers {
        bail!(
            "--layer {layer} is outside the model's {} layers",
            model.layers
        );
    }
    let tokenizer = TokenizerSource::resolve(config.tokenizer.as_deref(), &summary)?.load()?;
    let mut notes = Vec::new();
    let checkpoint = config.checkpoint.clone().or_else(|| {
        let recorded = summary.source.checkpoint.as_deref().map(PathBuf::from);
        recorded.filter(|path| path.exists())
    });
    let directions = match &checkpoint {
        Some(path) => {
            stage("reading the decoder");
            let directions = DecoderDirections::load(path)?;
            directions.check_width(Some(summary.d_sae), path)?;
            Some(directions)
        }
        None => {
            notes.push("no checkpoint at hand (give --checkpoint): the decoder-cosine neighbours and neuron alignments are left empty".into());
            None
        }
    };
    stage("reading out every feature");
    let set = FeatureSet::from_collector(
        &input.collector,
        &input.flag_config(),
        ExampleCounts {
            top: config.top_examples,
        },
        input.logit_effects.as_ref().map(|l| l.features.as_slice()),
    );
    let (examples, per_token_examples) = example_counts(&set);
    if per_token_examples < examples {
        notes.push(format!(
            "{} of {examples} examples have no per-token activations (the collection recorded only the marked token): their other tokens are written as 0",
            examples - per_token_examples
        ));
    }
    let labels = match &config.labels {
        Some(path) => read_labels(path)?,
        None => BTreeMap::new(),
    };
    if let Some((&feature, _)) = labels.range(summary.d_sae as u32..).next() {
        bail!(
            "the labels name feature {feature}, but the SAE has {} features",
            summary.d_sae
        );
    }
    stage("finding similar features");
    let neighbours = directions
        .as_ref()
        .map(|d| decoder_cosine(d, d.row(0).map_or(0, <[f32]>::len)))
        .transpose()?;
    let (logit_shifts, logit_convention) = logit_shifts(&input, &mut notes);
    stage("decoding tokens");
    let texts = texts_of(&set, &tokenizer);
    let target = config.target.clone();
    let names = Names {
        model_id: target.model_id.clone(),
        source_id: target.source_id(layer),
        source_set: target.source_set.clone(),
        creator_id: target.creator_id.clone(),
        data_source: summary
            .source
            .dataset
            .clone()
            .or_else(|| summary.source.activations.clone()),
    };
    Ok(Prepared {
        set,
        summary,
        target,
        layer,
        names,
        model,
        labels,
        neighbours,
        directions,
        checkpoint,
        logit_shifts,
        logit_convention,
        texts,
        per_token_examples,
        examples,
        notes,
    })
}

impl Prepared {
    /// The rows of feature `f`.
    pub fn rows(&self, f: u32) -> FeatureRows {
        let text = |t: u32| self.token_text(t);
        feature_rows(
            &self.names,
            &FeatureInputs {
                index: f,
                data: &self.set.features[f as usize],
                text: &text,
                logit_shift: self.logit_shifts.get(f as usize).copied().unwrap_or(0.0),
                neighbours: self.neighbours.as_ref().map(|n| n[f as usize].as_slice()),
                directions: self.directions.as_ref(),
                label: self.labels.get(&f).map(String::as_str),
            },
        )
    }

    pub fn token_text(&self, token: u32) -> String {
        self.texts
            .get(&token)
            .cloned()
            .unwrap_or_else(|| format!("⟨{token}⟩"))
    }

    /// Whether feature `f` never fired.
    pub fn is_dead(&self, f: u32) -> bool {
        self.set.features[f as usize].flags.dead
    }

    pub fn model_row(&self) -> ModelRow {
        let id = &self.target.model_id;
        ModelRow {
            id: id.clone(),
            displayName: id.clone(),
            displayNameShort: id.clone(),
            creatorId: self.target.creator_id.clone(),
            owner: self
                .model
                .organisation
                .clone()
                .unwrap_or_else(|| self.target.creator_name.clone()),
            layers: self.model.layers as u64,
            neuronsPerLayer: self.model.neurons_per_layer as u64,
            dimension: self.model.dimension.map(|d| d as u64),
            instruct: id.ends_with("-it"),
            visibility: "PUBLIC",
            inferenceEnabled: false,
            website: self
                .model
                .hub_id
                .as_ref()
                .map(|hub| format!("https://huggingface.co/{hub}")),
        }
    }

    /// The source set's description: what the SAE is (at most 128 characters, the API's limit).
    pub fn description(&self) -> String {
        let source = &self.summary.source;
        let kind = source.sae_kind.as_deref().unwrap_or("SAE");
        let hook = source.hook_point.as_deref().unwrap_or("an unknown hook");
        let text = format!("saectl {kind}, {} features, at {hook}", self.summary.d_sae);
        text.chars()
            .take(super::limits::API_MAX_DESCRIPTION_CHARS)
            .collect()
    }

    pub fn source_set_row(&self) -> SourceSetRow {
        SourceSetRow {
            modelId: self.target.model_id.clone(),
            name: self.target.source_set.clone(),
            description: self.description(),
            creatorName: self.target.creator_name.clone(),
            creatorId: self.target.creator_id.clone(),
            urls: Vec::new(),
            visibility: "PUBLIC",
            hasDashboards: true,
            showCorrelated: false,
        }
    }

    pub fn source_row(&self) -> SourceRow {
        let recorded = self.summary.source.checkpoint.as_deref().unwrap_or("");
        let release = releases::lookup(recorded).ok().flatten();
        let hub = release
            .as_ref()
            .map(|sae| sae.hub_path.clone())
            .or_else(|| hub_path(recorded));
        let (repo, folder) = match hub.as_deref().map(split_hub_path) {
            Some((repo, folder)) => (Some(repo), Some(folder)),
            None => (None, None),
        };
        SourceRow {
            id: self.names.source_id.clone(),
            modelId: self.target.model_id.clone(),
            setName: self.target.source_set.clone(),
            creatorId: self.target.creator_id.clone(),
            visibility: "PUBLIC",
            hasDashboards: true,
            inferenceEnabled: false,
            saelensConfig: self.checkpoint.as_deref().and_then(sae_lens_config),
            saelensRelease: release.as_ref().map(|r| r.release.clone()),
            saelensSaeId: release.as_ref().map(|r| r.id.clone()),
            hfRepoId: repo,
            hfFolderId: folder,
            num_prompts: Some(self.summary.sequences_seen),
            num_tokens_in_prompt: self.summary.source.seq_len,
            dataset: self.names.data_source.clone(),
            notes: Some(format!(
                "exported by saectl {} from a collection of {} tokens",
                env!("CARGO_PKG_VERSION"),
                self.summary.tokens_seen
            )),
        }
    }
}

/// The layer: `--layer`, else the collection's hook's.
fn resolve_layer(given: Option<usize>, summary: &CollectionSummary) -> Result<usize> {
    if let Some(layer) = given {
        return Ok(layer);
    }
    let hook = summary.source.hook_point.as_deref();
    hook.and_then(crate::sae::checkpoint::hook_layer)
        .with_context(|| {
            format!(
                "the collection records no hook layer ({}): give --layer",
                hook.unwrap_or("no hook point")
            )
        })
}

/// The model's size from its `config.json`, read from its folder or the local Hub cache (no
/// download); `--model-layers` when it is not at hand.
fn model_facts(summary: &CollectionSummary, layers: Option<usize>) -> Result<ModelFacts> {
    let model = summary.source.model.clone();
    let source = model.as_deref().and_then(|m| m.parse::<ModelSource>().ok());
    let hub_id = match &source {
        Some(ModelSource::Hub { repo_id, .. }) => Some(repo_id.clone()),
        _ => None,
    };
    let config_path = match &source {
        Some(ModelSource::Local(dir)) => Some(dir.join("config.json")).filter(|p| p.is_file()),
        Some(ModelSource::Hub { repo_id, revision }) => HubRepo::new(
            HubSettings::from_env(),
            RepoKind::Model,
            repo_id,
            revision.as_deref(),
        )
        .cached("config.json"),
        None => None,
    };
    let config = config_path.as_deref().map(read_config).transpose()?;
    let Some(layers) = layers.or(config.as_ref().map(|c| c.num_hidden_layers)) else {
        bail!(
            "the model's layer count is unknown ({} has no config.json at hand): give --model-layers",
            model.as_deref().unwrap_or("the collection names no model, and it")
        );
    };
    Ok(ModelFacts {
        layers,
        neurons_per_layer: config.as_ref().map_or(0, |c| c.intermediate_size),
        dimension: config.as_ref().map(|c| c.hidden_size),
        organisation: hub_id
            .as_deref()
            .and_then(|id| id.split_once('/'))
            .map(|(org, _)| org.to_string()),
        hub_id,
    })
}

/// Examples, and those with per-token activations.
fn example_counts(set: &FeatureSet) -> (usize, usize) {
    let examples = set
        .features
        .iter()
        .flat_map(|f| &f.groups)
        .flat_map(|g| &g.examples);
    examples.fold((0, 0), |(all, recorded), e| {
        (
            all + 1,
            recorded + usize::from(e.token_activations.is_some()),
        )
    })
}

/// Per feature, the shift to Neuronpedia's (uncentred) convention, and the convention the
/// values end up in.
fn logit_shifts(
    input: &FolderInput,
    notes: &mut Vec<String>,
) -> (Vec<f32>, Option<LogitConvention>) {
    let Some(effects) = &input.logit_effects else {
        notes.push("the folder has no logit effects (collect with the model at hand): pos_str and neg_str are left empty".into());
        return (Vec::new(), None);
    };
    let want = LogitConvention::Uncentred;
    let shifts: Option<Vec<f32>> = effects
        .features
        .iter()
        .map(|f| effects.shift_to(f, want))
        .collect();
    match shifts {
        Some(shifts) => (shifts, Some(want)),
        None => {
            notes.push("the logit effects are centred over the vocabulary (a folder from an older saectl) and Neuronpedia's are not: the values differ from Neuronpedia's by each feature's vocabulary mean (the rankings agree); collect again to match".into());
            (Vec::new(), Some(effects.header.convention))
        }
    }
}

/// The text of every token id the export writes.
fn texts_of(set: &FeatureSet, tokenizer: &tokenizers::Tokenizer) -> HashMap<u32, String> {
    let mut ids: Vec<u32> = Vec::new();
    for feature in &set.features {
        for example in feature.groups.iter().flat_map(|g| &g.examples) {
            ids.extend_from_slice(&example.tokens);
        }
        if let Some((top, bottom)) = &feature.logits {
            ids.extend(top.iter().chain(bottom).map(|&(t, _)| t));
        }
    }
    ids.sort_unstable();
    ids.dedup();
    let texts = token_texts(tokenizer, &ids);
    ids.into_iter().zip(texts).collect()
}

/// `org/name/…` of a checkpoint given as a Hub path (not on disk), with the file name of a
/// Gemma Scope `params.npz` dropped.
fn hub_path(spec: &str) -> Option<String> {
    if spec.is_empty() || Path::new(spec).exists() || spec.starts_with(['/', '.']) {
        return None;
    }
    (spec.matches('/').count() >= 2).then(|| spec.trim_matches('/').to_string())
}

/// (`org/name`, folder) of a Hub path.
fn split_hub_path(path: &str) -> (String, String) {
    let folder_path = path.strip_suffix("/params.npz").unwrap_or(path);
    let mut parts = folder_path.splitn(3, '/');
    let (org, name, folder) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    (format!("{org}/{name}"), folder.to_string())
}

/// The checkpoint's SAELens `cfg.json`, when it is a folder that has one.
fn sae_lens_config(checkpoint: &Path) -> Option<serde_json::Value> {
    let bytes = std::fs::read(checkpoint.join(CFG_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_paths_split_into_repo_and_folder() {
        assert_eq!(
            split_hub_path(
                "google/gemma-scope-2b-pt-res/layer_3/width_16k/average_l0_8/params.npz"
            ),
            (
                "google/gemma-scope-2b-pt-res".to_string(),
                "layer_3/width_16k/average_l0_8".to_string()
            )
        );
        assert_eq!(
            hub_path("org/name/folder").as_deref(),
            Some("org/name/folder")
        );
        assert_eq!(hub_path("runs/l12"), None);
        assert_eq!(hub_path("/abs/a/b"), None);
    }
}
