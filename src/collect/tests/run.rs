//! The collect stage driven as a library ([`crate::collect::run`]), without the binary: what
//! it reports, what it records, and that running it again resumes instead of redoing.

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::cache::{CacheDtype, CacheSpec, CacheWriter};
use crate::collect::{self, Activations, CollectConfig, CollectEvent, CollectSource};
use crate::sae::checkpoint::{save, CheckpointMeta};
use crate::sae::{Sae, SaeConfig, SaeKind, SaeWeights};
use crate::samples::{CollectorConfig, SamplesDir, SaveConfig};

const D_IN: usize = 8;
const SEQ_LEN: usize = 16;
const SEQUENCES: usize = 6;
const HOOK: &str = "blocks.0.hook_resid_post";

fn fixture(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// A cache of `SEQUENCES` rows of smoothly varying activations, and a random TopK SAE at its
/// hook.
fn write_inputs(dir: &Path) {
    let spec = CacheSpec {
        model: "synthetic".into(),
        hook_point: HOOK.into(),
        d_in: D_IN,
        seq_len: SEQ_LEN,
        dtype: CacheDtype::F32,
        special_token_ids: vec![2],
        source: Default::default(),
    };
    let mut writer = CacheWriter::create_or_resume(&dir.join("cache"), spec, 4, None).unwrap();
    let values: Vec<f32> = (0..SEQUENCES * SEQ_LEN * D_IN)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let acts = Tensor::from_vec(values, (SEQUENCES, SEQ_LEN, D_IN), &Device::Cpu).unwrap();
    let tokens: Vec<u32> = (0..SEQUENCES * SEQ_LEN)
        .map(|t| {
            if t % SEQ_LEN == 0 {
                2
            } else {
                10 + t as u32 % 50
            }
        })
        .collect();
    writer.push(&tokens, &acts).unwrap();
    writer.finish(true).unwrap();
    let mut config = SaeConfig::new(SaeKind::TopK, D_IN, 24, Some(3));
    config.hook_name = Some(HOOK.into());
    let sae = Sae::new(
        config.clone(),
        SaeWeights::init(&config, 5, &Device::Cpu).unwrap(),
    )
    .unwrap();
    save(&dir.join("sae"), &sae, &CheckpointMeta::new(config)).unwrap();
}

fn source(dir: &Path) -> CollectSource {
    CollectSource {
        checkpoint: dir.join("sae").display().to_string(),
        activations: Activations::Cache {
            dir: dir.join("cache"),
            model: None,
            tokenizer: Some(fixture("tokenizer/tokenizer.json")),
        },
        hook: None,
    }
}

fn config(max_samples: usize) -> CollectConfig {
    CollectConfig {
        collector: CollectorConfig {
            max_samples_per_feature: max_samples,
            sample_activation_threshold: 0.0,
            ..CollectorConfig::default()
        },
        save: SaveConfig::default(),
        batch_sequences: 4,
        save_every_tokens: 40,
        shard: None,
        logit_effects: true,
        allow_nonfinite: false,
    }
}

fn collect(
    dir: &Path,
    max_samples: usize,
) -> anyhow::Result<(collect::CollectSummary, Vec<CollectEvent>)> {
    let mut events = Vec::new();
    let out = dir.join("samples");
    let summary = collect::run(
        &source(dir),
        &out,
        config(max_samples),
        &Device::Cpu,
        &mut |event| events.push(event),
    )?;
    Ok((summary, events))
}

#[test]
fn a_collection_reports_its_progress_records_its_source_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path());
    let (summary, events) = collect(dir.path(), 4).unwrap();
    let tokens = (SEQUENCES * SEQ_LEN) as u64;
    assert_eq!(events[0], CollectEvent::Start { tokens });
    let batches: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            CollectEvent::Batch { tokens } => Some(*tokens),
            _ => None,
        })
        .collect();
    // Cache files of 4 sequences, batches of at most 4 within a file, gathered into one feed
    // of the collector (together they hold fewer values than `ingest_hits_hint`).
    assert_eq!(batches, vec![tokens]);
    assert_eq!(summary.tokens, tokens);
    assert_eq!(summary.d_sae, 24);
    assert_eq!(summary.special_tokens_excluded, SEQUENCES as u64);
    assert!(summary.features_with_samples > 0);
    let folder = SamplesDir::new(&dir.path().join("samples"));
    let recorded = folder.read_summary().unwrap().unwrap();
    assert_eq!(recorded.source.model.as_deref(), Some("synthetic"));
    assert_eq!(recorded.source.hook_point.as_deref(), Some(HOOK));
    assert_eq!(recorded.source.sae_kind.as_deref(), Some("topk"));
    assert_eq!(recorded.sequences_seen, SEQUENCES as u64);
    assert!(folder.state().is_file() && folder.read_logit_effects().unwrap().is_none());

    // Run again: the folder holds the whole collection, so nothing is redone or changed.
    let before = std::fs::read(folder.summary()).unwrap();
    let (again, events) = collect(dir.path(), 4).unwrap();
    assert_eq!(
        events,
        vec![
            CollectEvent::Resuming {
                sequences: SEQUENCES as u64
            },
            CollectEvent::Start { tokens: 0 },
        ]
    );
    assert_eq!(again.tokens, 0);
    assert_eq!(std::fs::read(folder.summary()).unwrap(), before);

    // Other settings are another collection: refused, the folder kept.
    let err = collect(dir.path(), 5).unwrap_err().to_string();
    assert!(err.contains("other settings; use another --out"), "{err}");
    assert_eq!(std::fs::read(folder.summary()).unwrap(), before);
}
