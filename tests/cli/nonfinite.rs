//! NaN and infinite activations in a cache (docs/reliability.md): `collect` stops at the first
//! one in one line by default; `--allow-nonfinite` skips and counts them, the count goes into
//! `collection_summary.json` and survives a resume and a merge.

use std::path::Path;

use saectl::samples::SamplesDir;
use safetensors::{Dtype, SafeTensors};

use super::util::{
    assert_ok, assert_one_line_error, cache_command, collect, feature_files, path_str, saectl,
    stderr, write_sae,
};

/// Overwrites one activation of token `(sequence, position)` in the cache's shard `file` with
/// `value`, in place.
fn poison(cache_dir: &Path, file: &str, sequence: usize, position: usize, value: f32) {
    let path = cache_dir.join(file);
    let mut bytes = std::fs::read(&path).unwrap();
    let (header, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
    let info = metadata.info("activations").unwrap();
    let [_, seq_len, d_in] = info.shape[..] else {
        panic!("activations are [sequences, seq_len, d_in]")
    };
    assert_eq!(info.dtype, Dtype::F32, "the test caches in f32");
    let encoded = value.to_le_bytes();
    let element = (sequence * seq_len + position) * d_in + d_in / 2;
    let start = 8 + header + info.data_offsets.0 + element * encoded.len();
    bytes[start..start + encoded.len()].copy_from_slice(&encoded);
    std::fs::write(&path, bytes).unwrap();
}

fn summary_skipped(dir: &Path) -> Option<u64> {
    let summary = SamplesDir::new(dir).read_summary().unwrap().unwrap();
    summary.nonfinite.map(|n| n.tokens_skipped)
}

#[test]
fn nonfinite_activations_stop_collect_or_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (cache_dir, checkpoint) = (dir.path().join("cache"), dir.path().join("sae"));
    // 20 sequences of 16 tokens, in shards of 6 (5 asked, rounded up to whole model batches).
    assert_ok(
        &cache_command(&cache_dir, 320, &[])
            .args(["--cache-dtype", "f32"])
            .run(),
    );
    write_sae(&checkpoint, 64);
    let index = std::fs::read_to_string(cache_dir.join("cache_index.json")).unwrap();
    assert!(index.contains(r#""num_sequences": 6"#), "{index}");
    // Sequence 7 is the second of shard 1; sequence 15 the fourth of shard 2.
    poison(&cache_dir, "shard_00001.safetensors", 1, 3, f32::NAN);
    poison(&cache_dir, "shard_00002.safetensors", 3, 0, f32::INFINITY);
    let activations = ["--activations", path_str(&cache_dir)];
    let with = |extra: &[&'static str]| {
        let mut args = activations.to_vec();
        args.extend_from_slice(extra);
        args
    };

    // By default: one line naming the first bad token, and no folder left behind.
    let stopped = dir.path().join("stopped");
    let output = collect(&checkpoint, &stopped, &activations);
    assert_one_line_error(&output, "sequence 7, position 3 are NaN or infinite");
    assert_one_line_error(&output, "--allow-nonfinite");
    assert!(
        !stopped.exists(),
        "a collection that saved nothing leaves no folder"
    );

    // Skipped and counted: said on stderr and recorded in the summary.
    let whole = dir.path().join("whole");
    let output = collect(&checkpoint, &whole, &with(&["--allow-nonfinite"]));
    assert_ok(&output);
    assert!(
        stderr(&output).contains("skipped 2 tokens"),
        "{}",
        stderr(&output)
    );
    assert_eq!(summary_skipped(&whole), Some(2));
    // Without skipping, the summary has no such key (existing keys unchanged).
    let clean = dir.path().join("clean");
    assert_ok(&collect(&checkpoint, &clean, &with(&["--shard", "0/4"])));
    assert_eq!(summary_skipped(&clean), None);

    // Stopped after a save, then resumed with the flag: the same folder as one run.
    let resumed = dir.path().join("resumed");
    let every = ["--save-every-tokens", "32", "--batch-sequences", "2"];
    let output = collect(&checkpoint, &resumed, &with(&every));
    assert_one_line_error(&output, "sequence 7, position 3");
    let output = collect(
        &checkpoint,
        &resumed,
        &with(&[&every[..], &["--allow-nonfinite"]].concat()),
    );
    assert_ok(&output);
    assert!(stderr(&output).contains("resuming"), "{}", stderr(&output));
    assert_eq!(feature_files(&resumed), feature_files(&whole));
    assert_eq!(summary_skipped(&resumed), Some(2));

    // Shards count their own; the merge sums them and equals the one run.
    let shards: Vec<_> = (0..2)
        .map(|i| dir.path().join(format!("shard{i}")))
        .collect();
    for (i, shard) in shards.iter().enumerate() {
        let spec = format!("{i}/2");
        let args = with(&["--allow-nonfinite", "--shard"]);
        let mut args: Vec<&str> = args;
        args.push(&spec);
        assert_ok(&collect(&checkpoint, shard, &args));
    }
    assert_eq!(summary_skipped(&shards[0]), Some(1));
    assert_eq!(summary_skipped(&shards[1]), Some(1));
    let merged = dir.path().join("merged");
    assert_ok(&saectl(&[
        "merge",
        path_str(&shards[0]),
        path_str(&shards[1]),
        "--out",
        path_str(&merged),
    ]));
    assert_eq!(summary_skipped(&merged), Some(2));
    assert_eq!(feature_files(&merged), feature_files(&whole));
}
