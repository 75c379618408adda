//! The collector state file: saved and loaded, a collector is unchanged — statistics to the
//! bit, every kept sample, the feature view — and keeps ingesting and merging exactly as the
//! original would; shards merged through state files write the single run's bytes.

use std::path::Path;

use super::support::{dense, ingest_dense, SplitMix, WordDecoder};
use crate::collect::{write_samples_folder, Collector};
use crate::samples::{CollectorConfig, SamplesDir, SaveConfig, STATE_FILE_NAME};

fn random_collector(seed: u64, first_sequence: u64, config: CollectorConfig) -> Collector {
    let mut collector = Collector::new(config, 12, &[2]).unwrap();
    feed_random(&mut collector, seed, first_sequence);
    collector
}

/// Six random batches of four sequences from `first_sequence` on: BOS-like special tokens
/// now and then, values up to 2.
fn feed_random(collector: &mut Collector, seed: u64, first_sequence: u64) {
    let mut rng = SplitMix(seed);
    for batch in 0..6u64 {
        let tokens: Vec<u32> = (0..40)
            .map(|_| {
                if rng.below(9) == 0 {
                    2
                } else {
                    rng.below(30) as u32 + 3
                }
            })
            .collect();
        let hits: Vec<_> = (0..60)
            .map(|_| {
                (
                    rng.below(4) as usize,
                    rng.below(10) as usize,
                    rng.below(12) as usize,
                    rng.next_f32() * 2.0,
                )
            })
            .collect();
        ingest_dense(
            collector,
            &tokens,
            10,
            &dense(4, 10, 12, &hits),
            first_sequence + batch * 4,
        );
    }
}

fn assert_same(a: &Collector, b: &Collector) {
    assert_eq!(
        (
            a.tokens_seen(),
            a.sequences_seen(),
            a.special_tokens_excluded()
        ),
        (
            b.tokens_seen(),
            b.sequences_seen(),
            b.special_tokens_excluded()
        )
    );
    assert_eq!(a.special_tokens(), b.special_tokens());
    assert_eq!(a.sequence_ranges(), b.sequence_ranges());
    assert_eq!(a.config(), b.config());
    assert_eq!(a.position_tokens(), b.position_tokens());
    for f in 0..a.d_sae() as u32 {
        assert_eq!(a.statistics(f), b.statistics(f), "feature {f}");
        assert_eq!(a.top_samples(f), b.top_samples(f), "feature {f}");
        assert_eq!(a.interval_store(f), b.interval_store(f), "feature {f}");
        assert_eq!(a.intervals(f), b.intervals(f), "feature {f}");
        assert_eq!(a.token_sample(f), b.token_sample(f), "feature {f}");
        assert_eq!(
            a.activation_histogram(f),
            b.activation_histogram(f),
            "feature {f}"
        );
        assert_eq!(a.position_histogram(f), b.position_histogram(f));
        assert_eq!(a.special_activations(f), b.special_activations(f));
    }
}

/// Every file of a folder, by name.
fn folder_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(entry.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn merged_shards_write_the_bytes_of_one_run() {
    let config = CollectorConfig {
        max_samples_per_feature: 4,
        samples_per_interval: 2,
        ..CollectorConfig::default()
    };
    let mut whole = Collector::new(config.clone(), 12, &[2]).unwrap();
    feed_random(&mut whole, 1, 0);
    feed_random(&mut whole, 2, 24);
    let dir = tempfile::tempdir().unwrap();
    random_collector(1, 0, config.clone())
        .save_state(&dir.path().join("left"))
        .unwrap();
    random_collector(2, 24, config)
        .save_state(&dir.path().join("right"))
        .unwrap();
    // Merged in the other order than the stream's.
    let mut merged = Collector::load_state(&dir.path().join("right")).unwrap();
    merged
        .merge(&Collector::load_state(&dir.path().join("left")).unwrap())
        .unwrap();
    assert_same(&merged, &whole);
    for (name, collector) in [("merged", &merged), ("whole", &whole)] {
        let out = dir.path().join(name);
        std::fs::create_dir(&out).unwrap();
        collector.save_state(&out.join(STATE_FILE_NAME)).unwrap();
        let save = SaveConfig {
            top_features_to_save: 12,
            ..SaveConfig::default()
        };
        write_samples_folder(
            &SamplesDir::new(&out),
            collector,
            &WordDecoder,
            &save,
            Default::default(),
        )
        .unwrap();
    }
    let (merged, whole) = (
        folder_bytes(&dir.path().join("merged")),
        folder_bytes(&dir.path().join("whole")),
    );
    assert!(merged.len() > 5, "{} files", merged.len());
    assert_eq!(merged, whole);
}

#[test]
fn a_saved_and_loaded_collector_is_unchanged() {
    for config in [
        CollectorConfig::default(),
        CollectorConfig {
            max_samples_per_feature: 3,
            sample_context_size: 0,
            ..CollectorConfig::original()
        },
    ] {
        let collector = random_collector(5, 0, config);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE_NAME);
        collector.save_state(&path).unwrap();
        assert_same(&Collector::load_state(&path).unwrap(), &collector);
    }
}

#[test]
fn loaded_states_keep_collecting_and_merge_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (left, right) = (
        random_collector(1, 0, CollectorConfig::default()),
        random_collector(2, 24, CollectorConfig::default()),
    );
    left.save_state(&dir.path().join("left")).unwrap();
    right.save_state(&dir.path().join("right")).unwrap();
    let mut merged = Collector::load_state(&dir.path().join("left")).unwrap();
    merged
        .merge(&Collector::load_state(&dir.path().join("right")).unwrap())
        .unwrap();
    let mut expected = left.clone();
    expected.merge(&right).unwrap();
    assert_same(&merged, &expected);
    // Resume: more batches into the loaded collector equal more batches into the original.
    let mut resumed = Collector::load_state(&dir.path().join("left")).unwrap();
    let mut uninterrupted = left;
    for collector in [&mut resumed, &mut uninterrupted] {
        ingest_dense(
            collector,
            &[7; 20],
            10,
            &dense(2, 10, 12, &[(0, 3, 5, 9.0), (1, 4, 6, 0.5)]),
            100,
        );
    }
    assert_same(&resumed, &uninterrupted);
}

#[test]
fn corrupt_and_truncated_states_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE_NAME);
    random_collector(3, 0, CollectorConfig::default())
        .save_state(&path)
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let truncated = format!("{:#}", Collector::load_state(&path).unwrap_err());
    assert!(
        truncated.contains(STATE_FILE_NAME) && truncated.contains("not a valid collector state"),
        "{truncated}"
    );
    std::fs::write(&path, b"{not safetensors").unwrap();
    assert!(format!("{:#}", Collector::load_state(&path).unwrap_err()).contains(STATE_FILE_NAME));
    let missing = format!(
        "{:#}",
        Collector::load_state(&dir.path().join("nope")).unwrap_err()
    );
    assert!(
        missing.contains("failed to read collector state"),
        "{missing}"
    );
}

/// Batch `b` of a fixed random stream: 4 rows of 10 tokens, numbered from sequence `4b`.
fn stream_batch(collector: &mut Collector, b: u64) {
    let mut rng = SplitMix(1000 + b);
    let tokens: Vec<u32> = (0..40).map(|_| rng.below(30) as u32 + 2).collect();
    let hits: Vec<_> = (0..50)
        .map(|_| {
            (
                rng.below(4) as usize,
                rng.below(10) as usize,
                rng.below(12) as usize,
                rng.next_f32() * 2.0,
            )
        })
        .collect();
    ingest_dense(collector, &tokens, 10, &dense(4, 10, 12, &hits), 4 * b);
}

#[test]
fn merged_shards_write_the_state_file_of_one_run() {
    let fresh = || Collector::new(CollectorConfig::default(), 12, &[2]).unwrap();
    let mut whole = fresh();
    (0..9).for_each(|b| stream_batch(&mut whole, b));
    let mut shards = [fresh(), fresh(), fresh()];
    for b in 0..9 {
        stream_batch(&mut shards[(b / 3) as usize], b);
    }
    // Merged out of order: the result must not depend on it.
    let [first, second, third] = shards;
    let mut merged = third;
    merged.merge(&first).unwrap();
    merged.merge(&second).unwrap();
    assert_eq!(merged.sequence_ranges().to_string(), "0..36");
    let dir = tempfile::tempdir().unwrap();
    whole.save_state(&dir.path().join("whole")).unwrap();
    merged.save_state(&dir.path().join("merged")).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("whole")).unwrap(),
        std::fs::read(dir.path().join("merged")).unwrap()
    );
    let loaded = Collector::load_state(&dir.path().join("merged")).unwrap();
    assert_eq!(loaded.sequence_ranges(), whole.sequence_ranges());
}

#[test]
fn overlapping_collectors_do_not_merge() {
    let fresh = || Collector::new(CollectorConfig::default(), 12, &[2]).unwrap();
    let (mut a, mut b) = (fresh(), fresh());
    (0..3).for_each(|i| stream_batch(&mut a, i));
    (2..4).for_each(|i| stream_batch(&mut b, i));
    let before = a.clone();
    let err = a.merge(&b).unwrap_err().to_string();
    assert!(err.contains("same sequences (0..12 and 8..16)"), "{err}");
    assert_same(&a, &before);
}

#[test]
fn states_without_ranges_started_at_sequence_zero() {
    use safetensors::SafeTensors;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE_NAME);
    let collector = random_collector(4, 0, CollectorConfig::default());
    collector.save_state(&path).unwrap();
    // Rewrite the header as a build without shards wrote it: no `sequence_ranges`.
    let bytes = std::fs::read(&path).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata = metadata.metadata().clone().unwrap();
    let mut header: serde_json::Value =
        serde_json::from_str(&metadata["saectl_collector"]).unwrap();
    header.as_object_mut().unwrap().remove("sequence_ranges");
    metadata.insert("saectl_collector".into(), header.to_string());
    let old = safetensors::serialize(tensors.tensors(), Some(metadata)).unwrap();
    std::fs::write(&path, old).unwrap();
    let loaded = Collector::load_state(&path).unwrap();
    assert_eq!(loaded.sequence_ranges().to_string(), "0..24");
    assert_same(&loaded, &collector);
}

/// A state file with its header edited and, optionally, one tensor's bytes replaced (same
/// dtype and shape).
fn rewritten(
    bytes: &[u8],
    edit: impl FnOnce(&mut serde_json::Value),
    tensor: Option<(&str, Vec<u8>)>,
) -> Vec<u8> {
    use safetensors::tensor::{SafeTensors, TensorView};
    let (_, metadata) = SafeTensors::read_metadata(bytes).unwrap();
    let key = "saectl_collector";
    let text = &metadata.metadata().as_ref().unwrap()[key];
    let mut header: serde_json::Value = serde_json::from_str(text).unwrap();
    edit(&mut header);
    let tensors = SafeTensors::deserialize(bytes).unwrap();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| match &tensor {
            Some((target, data)) if *target == name => {
                let view = TensorView::new(view.dtype(), view.shape().to_vec(), data).unwrap();
                (name, view)
            }
            _ => (name, view),
        })
        .collect();
    let metadata = std::collections::HashMap::from([(key.to_string(), header.to_string())]);
    safetensors::serialize(views, Some(metadata)).unwrap()
}

/// Found by fuzzing (`fuzz/` collector_state) or by reading the loader: header values that
/// size allocations, and counters that overflow the sums of readouts, are refused with a
/// sentence instead of an abort or a panic.
#[test]
fn hostile_states_are_clear_errors() {
    let collector = random_collector(5, 0, CollectorConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE_NAME);
    collector.save_state(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let error = |bytes: &[u8]| format!("{:#}", Collector::from_state_bytes(bytes).unwrap_err());
    // A header asking for 10^12 features (hundreds of TB of per-feature state).
    let huge = rewritten(&bytes, |h| h["d_sae"] = 1_000_000_000_000u64.into(), None);
    assert!(error(&huge).contains("says d_sae 1000000000000 but tensor counts is [12, 2]"));
    // A special token id of 4·10^9 (a 4 GB lookup table).
    let special = rewritten(
        &bytes,
        |h| h["special_tokens"] = vec![4_000_000_000u32].into(),
        None,
    );
    assert!(error(&special).contains("special token id 4000000000 is beyond any vocabulary"));
    // Histogram counts near 2^64: their sum overflowed in the interval readout (fuzzing).
    let d = collector.d_sae();
    let histogram: Vec<u8> = (0..d * crate::collect::bins::ACTIVATION_BINS)
        .flat_map(|_| (u64::MAX / 3).to_le_bytes())
        .collect();
    let overflowing = rewritten(&bytes, |_| {}, Some(("histogram", histogram)));
    assert!(error(&overflowing).contains("the counts of feature 0 do not agree"));
    // Tokens seen that the position counts do not account for.
    let tokens = rewritten(&bytes, |h| h["tokens_seen"] = 7.into(), None);
    assert!(error(&tokens).contains("position_tokens do not add up to tokens_seen 7"));
    // The unedited bytes still load.
    Collector::from_state_bytes(&rewritten(&bytes, |_| {}, None)).unwrap();
}
