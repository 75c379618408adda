//! A full disk (ENOSPC) during `cache`, `collect`, `train` and `merge`, for real: each command
//! writes to a small tmpfs mounted by the test (docs/reliability.md). The run fails in one
//! line that names the path and the cause, the last complete state stays readable, nothing
//! temporary is left behind, and once the file system is made larger the same command (or
//! `train --resume`) finishes with exactly the files of a run that never ran short.
//!
//! Mounting needs root (CI runs as root); elsewhere each test prints why it is skipped. The
//! reference run writes to the same mount point, so paths recorded in files agree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use saectl::cache::ActivationCache;
use saectl::collect::Collector;
use saectl::samples::SamplesDir;
use saectl::util::lock::LOCK_FILE_NAME;

use super::reliability::{temporaries, train_args, walk};
use super::small_fs::SmallFs;
use super::util::{assert_ok, cache_command, collect, path_str, saectl, stderr, strs, write_sae};

/// Every file under `dir` by relative path, with its bytes (the run lock's file aside: it
/// names its last holder; and a training run's wall-clock fields, [`untimed`]).
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walk(dir)
        .into_iter()
        .filter(|p| p.is_file() && p.file_name().unwrap() != LOCK_FILE_NAME)
        .map(|p| {
            (
                p.strip_prefix(dir).unwrap().to_path_buf(),
                untimed(&p, std::fs::read(&p).unwrap()),
            )
        })
        .collect()
}

/// `bytes` of the file `path` without the wall-clock fields that differ between any two runs:
/// `elapsed_s` and `tokens_per_s` of `metrics.jsonl`, `elapsed_s` of `trainer_state.json`.
fn untimed(path: &Path, bytes: Vec<u8>) -> Vec<u8> {
    let strip = |text: &str| {
        let mut value: serde_json::Value = serde_json::from_str(text).unwrap();
        let map = value.as_object_mut().unwrap();
        map.remove("elapsed_s").expect("a timed file has elapsed_s");
        map.remove("tokens_per_s");
        value.to_string()
    };
    let text = || String::from_utf8(bytes.clone()).unwrap();
    match path.file_name().unwrap().to_str().unwrap() {
        "metrics.jsonl" => text()
            .lines()
            .map(strip)
            .collect::<Vec<_>>()
            .join("\n")
            .into(),
        "trainer_state.json" => strip(&text()).into(),
        _ => bytes,
    }
}

/// Bytes a tmpfs needs for `files` (whole pages).
fn pages(files: &BTreeMap<PathBuf, Vec<u8>>) -> u64 {
    files
        .values()
        .map(|b| (b.len() as u64).div_ceil(4096) * 4096)
        .sum()
}

fn assert_same(got: &BTreeMap<PathBuf, Vec<u8>>, want: &BTreeMap<PathBuf, Vec<u8>>) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in want {
        assert!(&got[name] == bytes, "{} differs", name.display());
    }
}

/// One line naming a path on the small file system and the cause, a non-zero exit.
fn assert_disk_full(output: &Output, fs: &SmallFs) {
    let stderr = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        errors[0].contains("No space left on device") && errors[0].contains(path_str(fs.path())),
        "{stderr}"
    );
}

/// Runs `run` (the command writing `out` on `fs`) once with room, keeps its files, then
/// again on a file system of `fraction` of their size: it must fail cleanly (`check` looks at
/// what is left), then finish after the file system grows (`resume`) with the same files.
fn full_then_resumed(
    fs: &SmallFs,
    out: &Path,
    fraction: f64,
    run: &dyn Fn() -> Output,
    check: &dyn Fn(&Path),
    resume: &dyn Fn() -> Output,
) {
    assert_ok(&run());
    let want = files(out);
    std::fs::remove_dir_all(out).unwrap();
    fs.resize(((pages(&want) as f64 * fraction) as u64).max(4096));
    let output = run();
    eprintln!(
        "{} of {} bytes: {}",
        (pages(&want) as f64 * fraction) as u64,
        pages(&want),
        stderr(&output).trim()
    );
    assert_disk_full(&output, fs);
    assert!(
        temporaries(fs.path()).is_empty(),
        "{:?}",
        temporaries(fs.path())
    );
    check(out);
    fs.resize(64 << 20);
    assert_ok(&resume());
    assert!(temporaries(fs.path()).is_empty());
    assert_same(&files(out), &want);
}

#[test]
fn a_full_disk_during_cache_keeps_the_shards_written_and_resumes() {
    let Some(fs) = SmallFs::mount("cache") else {
        return;
    };
    let out = fs.path().join("cache");
    let run = || {
        cache_command(&out, 480, &[("--sequences-per-shard", "3")])
            .args(["--cache-dtype", "f32"])
            .run()
    };
    let check = |out: &Path| {
        // Some shards were written (the disk filled mid-way); the index names only whole
        // ones, and every one of them reads.
        let cache = ActivationCache::open(out).unwrap();
        assert!(cache.index().num_sequences > 0);
        for shard in cache.shards() {
            shard.unwrap();
        }
    };
    full_then_resumed(&fs, &out, 0.5, &run, &check, &run);
}

#[test]
fn a_full_disk_during_collect_keeps_the_last_state_and_resumes() {
    let Some(fs) = SmallFs::mount("collect") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (cache_dir, checkpoint) = (dir.path().join("cache"), dir.path().join("sae"));
    assert_ok(&cache_command(&cache_dir, 480, &[]).run());
    write_sae(&checkpoint, 64);
    let out = fs.path().join("samples");
    let source = [
        "--activations",
        path_str(&cache_dir),
        "--save-every-tokens",
        "48",
        "--batch-sequences",
        "3",
    ];
    let run = || collect(&checkpoint, &out, &source);
    let check = |out: &Path| {
        // Earlier saves went through (the disk filled mid-way); the last one loads.
        let collector = Collector::load_state(&SamplesDir::new(out).state()).unwrap();
        assert!(collector.sequences_seen() > 0);
    };
    full_then_resumed(&fs, &out, 0.6, &run, &check, &run);
}

#[test]
fn a_full_disk_during_train_keeps_the_last_checkpoint_and_resumes() {
    let Some(fs) = SmallFs::mount("train") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    assert_ok(&cache_command(&cache_dir, 128, &[]).run());
    let out = fs.path().join("run");
    let args = train_args(&cache_dir, &out);
    let run = || saectl(&strs(&args));
    let check = |out: &Path| {
        // `latest_checkpoint` names a checkpoint that loads.
        let latest = std::fs::read_to_string(out.join("latest_checkpoint")).unwrap();
        let checkpoint = out.join(latest.trim());
        saectl::sae::import::load_any(&checkpoint, &candle_core::Device::Cpu).unwrap();
    };
    let resume = || saectl(&["train", "--resume", path_str(&out)]);
    // 95% of the final size fills the disk while the last checkpoint is written, after the
    // first is complete (with the compact collector state, 85% filled it before the first).
    full_then_resumed(&fs, &out, 0.95, &run, &check, &resume);
}

#[test]
fn a_full_disk_during_merge_leaves_nothing_and_merges_later() {
    let Some(fs) = SmallFs::mount("merge") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (cache_dir, checkpoint) = (dir.path().join("cache"), dir.path().join("sae"));
    assert_ok(&cache_command(&cache_dir, 320, &[]).run());
    write_sae(&checkpoint, 64);
    let shards: Vec<PathBuf> = (0..2).map(|i| dir.path().join(format!("s{i}"))).collect();
    for (i, shard) in shards.iter().enumerate() {
        let spec = format!("{i}/2");
        let source = ["--activations", path_str(&cache_dir), "--shard", &spec];
        assert_ok(&collect(&checkpoint, shard, &source));
    }
    let out = fs.path().join("merged");
    let run = || {
        saectl(&[
            "merge",
            path_str(&shards[0]),
            path_str(&shards[1]),
            "--out",
            path_str(&out),
        ])
    };
    let check = |out: &Path| {
        assert!(!out.exists(), "a failed merge leaves no folder");
        assert_eq!(std::fs::read_dir(fs.path()).unwrap().count(), 0);
    };
    full_then_resumed(&fs, &out, 0.5, &run, &check, &run);
}
