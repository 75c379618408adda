//! `saectl collect --shard I/N` and `saectl merge`: shards of a cache or of a live corpus,
//! merged, write the folder of one run byte for byte; a resumed shard equals an uninterrupted
//! one; bad merges fail in one line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use saectl::cache::ActivationCache;
use saectl::collect::{sweep_cache, Collector};
use saectl::sae::import::load_any;
use saectl::samples::CollectorConfig;

use super::util::{
    assert_ok, assert_one_line_error, cache, collect, fixture, live_args, path_str, stderr, strs,
    write_sae, write_sae_seeded, Saectl, D_SAE, HOOK, MAX_SAMPLES,
};

fn merge(inputs: &[&Path], out: &Path, extra: &[&str]) -> Output {
    Saectl::new(["merge"])
        .args(inputs)
        .arg("--out")
        .arg(out)
        .args(extra)
        .run()
}

/// Every file of a folder by name, contents as bytes (all of it: JSON, state, logit effects),
/// but the run lock `collect` leaves behind (empty; `merge` takes none).
fn all_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != saectl::util::lock::LOCK_FILE_NAME)
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

fn assert_same_folder(got: &Path, want: &Path) {
    let (got, want) = (all_files(got), all_files(want));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &want {
        assert!(
            &got[name] == bytes,
            "{name} differs:\n{}\nvs\n{}",
            String::from_utf8_lossy(&got[name]),
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn cache_shards_merge_into_the_single_run_and_a_resumed_shard_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (cache_dir, checkpoint) = (dir.path().join("cache"), dir.path().join("sae"));
    // 19 sequences in cache files of 5: shards 0..6, 6..12, 12..19 cut through files.
    assert_ok(&cache(&cache_dir, 300, &[]));
    write_sae(&checkpoint, 64);
    let cache_arg = cache_dir.to_str().unwrap();
    let whole = dir.path().join("whole");
    assert_ok(&collect(&checkpoint, &whole, &["--activations", cache_arg]));
    let shards: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("shard{i}")))
        .collect();
    for (i, shard) in shards.iter().enumerate() {
        let flag = format!("{i}/3");
        let args = [
            "--activations",
            cache_arg,
            "--shard",
            &flag,
            "--batch-sequences",
            "4",
        ];
        assert_ok(&collect(&checkpoint, shard, &args));
    }
    let merged = dir.path().join("merged");
    let paths: Vec<&Path> = shards.iter().map(PathBuf::as_path).collect();
    let output = merge(&paths, &merged, &[]);
    assert_ok(&output);
    assert!(stderr(&output).contains("19 sequences: 0..19"));
    assert_same_folder(&merged, &whole);

    // An interrupted shard 1/3: its first 2 sequences collected and saved, as a periodic save
    // leaves them; the same command then resumes and ends where an uninterrupted run does.
    let partial = dir.path().join("partial");
    std::fs::create_dir(&partial).unwrap();
    let sae = load_any(&checkpoint, &candle_core::Device::Cpu).unwrap();
    let opened = ActivationCache::open(&cache_dir).unwrap();
    let config = CollectorConfig {
        max_samples_per_feature: MAX_SAMPLES,
        sample_activation_threshold: 0.0,
        ..CollectorConfig::default()
    };
    let specials = opened.index().spec.special_token_ids.clone();
    let mut collector = Collector::new(config, D_SAE, &specials).unwrap();
    sweep_cache(&opened, &sae, &mut collector, 3, 6..8, |_, _| Ok(())).unwrap();
    collector
        .save_state(&partial.join("collector_state.safetensors"))
        .unwrap();
    std::fs::copy(
        shards[1].join("collection_summary.json"),
        partial.join("collection_summary.json"),
    )
    .unwrap();
    let output = collect(
        &checkpoint,
        &partial,
        &["--activations", cache_arg, "--shard", "1/3"],
    );
    assert_ok(&output);
    assert!(stderr(&output).contains("resuming"));
    assert_same_folder(&partial, &shards[1]);
    // Resuming it as another shard is refused.
    assert_one_line_error(
        &collect(
            &checkpoint,
            &partial,
            &["--activations", cache_arg, "--shard", "2/3"],
        ),
        "another source",
    );
}

#[test]
fn live_shards_merge_into_the_single_run() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("sae");
    write_sae(&checkpoint, 64);
    let args = live_args(300);
    let whole = dir.path().join("whole");
    assert_ok(&collect(&checkpoint, &whole, &strs(&args)));
    let mut shards = Vec::new();
    for i in 0..3 {
        let shard = dir.path().join(format!("shard{i}"));
        let mut shard_args = args.clone();
        shard_args.extend(["--shard".to_string(), format!("{i}/3")]);
        assert_ok(&collect(&checkpoint, &shard, &strs(&shard_args)));
        shards.push(shard);
    }
    let merged = dir.path().join("merged");
    // Out of order: the result does not depend on it.
    let paths = [
        shards[2].as_path(),
        shards[0].as_path(),
        shards[1].as_path(),
    ];
    assert_ok(&merge(&paths, &merged, &[]));
    assert_same_folder(&merged, &whole);
}

#[test]
fn bad_merges_fail_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (cache_dir, checkpoint) = (dir.path().join("cache"), dir.path().join("sae"));
    assert_ok(&cache(&cache_dir, 100, &[]));
    write_sae(&checkpoint, 64);
    let cache_arg = cache_dir.to_str().unwrap();
    let shard = |name: &str, checkpoint: &Path, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec!["--activations", cache_arg];
        args.extend(extra);
        assert_ok(&collect(checkpoint, &out, &args));
        out
    };
    let first = shard("first", &checkpoint, &["--shard", "0/2"]);
    let second = shard("second", &checkpoint, &["--shard", "1/2"]);
    let out = dir.path().join("out");

    // No state file: a folder of the Python original, or feature files copied alone.
    let bare = dir.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    std::fs::copy(
        first.join("collection_summary.json"),
        bare.join("collection_summary.json"),
    )
    .unwrap();
    assert_one_line_error(
        &merge(&[&first, &bare], &out, &[]),
        "has no collector_state.safetensors",
    );
    assert_one_line_error(
        &merge(&[&first, &dir.path().join("missing")], &out, &[]),
        "no such folder",
    );
    // The same shard twice, or a shard and the whole run.
    assert_one_line_error(&merge(&[&first, &first], &out, &[]), "overlap");
    let whole = shard("whole", &checkpoint, &[]);
    assert_one_line_error(&merge(&[&whole, &second], &out, &[]), "overlap");
    // Other settings, another SAE width, another checkpoint.
    let other_settings = dir.path().join("other-settings");
    let output = Saectl::new(["collect", "--checkpoint", path_str(&checkpoint)])
        .args([
            "--activations",
            cache_arg,
            "--shard",
            "1/2",
            "--device",
            "cpu",
        ])
        .args(["--max-samples-per-feature", "3"])
        .arg("--out")
        .arg(&other_settings)
        .run();
    assert_ok(&output);
    assert_one_line_error(
        &merge(&[&first, &other_settings], &out, &[]),
        "different settings: max_samples_per_feature",
    );
    let narrow_sae = dir.path().join("narrow-sae");
    {
        // Same d_in, fewer features.
        use saectl::sae::checkpoint::{save, CheckpointMeta};
        use saectl::sae::{Sae, SaeConfig, SaeKind, SaeWeights};
        let mut config = SaeConfig::new(SaeKind::TopK, 64, 24, Some(4));
        config.hook_name = Some(HOOK.to_string());
        let weights = SaeWeights::init(&config, 3, &candle_core::Device::Cpu).unwrap();
        let sae = Sae::new(config.clone(), weights).unwrap();
        save(&narrow_sae, &sae, &CheckpointMeta::new(config)).unwrap();
    }
    let narrow = shard("narrow", &narrow_sae, &["--shard", "1/2"]);
    assert_one_line_error(&merge(&[&first, &narrow], &out, &[]), "different widths");
    let other_sae = dir.path().join("other-sae");
    write_sae_seeded(&other_sae, 64, 99);
    let other = shard("other", &other_sae, &["--shard", "1/2"]);
    assert_one_line_error(
        &merge(&[&first, &other], &out, &[]),
        "different sources: `checkpoint`",
    );
    // --out must be new (or empty), and never an input.
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    assert_one_line_error(&merge(&[&first, &second], &out, &[]), "not empty");
    assert_one_line_error(
        &merge(&[&first, &second], &first, &[]),
        "is one of the inputs",
    );
    assert!(!dir.path().read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".saectl")));
    // A good merge into an empty folder works; a tokenizer that cannot be read fails.
    std::fs::remove_file(out.join("notes.txt")).unwrap();
    assert_ok(&merge(&[&second, &first], &out, &[]));
    assert_one_line_error(
        &merge(
            &[&first, &second],
            &dir.path().join("out2"),
            &["--tokenizer", &fixture("missing/tokenizer.json")],
        ),
        "failed to load tokenizer",
    );
}
