//! What saectl promises about its output folders (docs/reliability.md): files and folders
//! follow the umask, a second process on the same `--out` is refused in one line that names
//! the holder, a resumed run removes the temporaries a killed one left, and readers skip them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use saectl::util::lock::RunLock;

use super::util::{
    assert_ok, assert_one_line_error, cache, collect, fixture, live_args, saectl, write_sae,
};

/// `saectl args…` under `umask 027` (set by a shell, so this process's umask is untouched).
fn saectl_with_umask_027(args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("umask 027 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_saectl"))
        .args(args)
        .output()
        .expect("sh runs")
}

/// A tiny TopK training run on `cache_dir`: 4 steps of 16 tokens, checkpoints at 2 and 4,
/// samples collected every step.
pub(super) fn train_args(cache_dir: &Path, out: &Path) -> Vec<String> {
    [
        "train",
        "--activations",
        cache_dir.to_str().unwrap(),
        "--sae-type",
        "topk",
        "--dict-size",
        "8",
        "--top-k",
        "2",
        "--top-k-aux",
        "4",
        "--batch-size",
        "16",
        "--num-tokens",
        "64",
        "--checkpoint-freq",
        "2",
        "--eval-sequences",
        "0",
        "--save-activation-samples",
        "true",
        "--sample-collection-freq",
        "1",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Every path under `dir` (itself excluded), sorted.
pub(super) fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            paths.extend(walk(&path));
        }
        paths.push(path);
    }
    paths.sort();
    paths
}

pub(super) fn temporaries(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".saectl-tmp-")
        })
        .collect()
}

#[test]
fn every_output_follows_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let (cache_dir, run, sae) = (path("cache"), path("run"), path("sae"));
    let out = cache(&PathBuf::from(&cache_dir), 64, &[]);
    assert_ok(&out);
    // The cache again under umask 027, into a fresh folder.
    let cache_027 = path("cache027");
    let mut args = vec![
        "cache".to_string(),
        "--model".into(),
        fixture("tiny-gemma2"),
        "--tokenizer".into(),
        fixture("tokenizer/tokenizer.json"),
        "--hook".into(),
        super::util::HOOK.into(),
        "--dataset".into(),
        fixture("corpus/tiny.jsonl"),
        "--num-tokens".into(),
        "64".into(),
        "--seq-len".into(),
        "16".into(),
        "--sequences-per-shard".into(),
        "2".into(),
        "--device".into(),
        "cpu".into(),
        "--out".into(),
        cache_027.clone(),
    ];
    assert_ok(&saectl_with_umask_027(&strs(&args)));
    assert_ok(&saectl_with_umask_027(&strs(&train_args(
        Path::new(&cache_dir),
        Path::new(&run),
    ))));
    write_sae(Path::new(&sae), 64);
    let shards: Vec<String> = (0..2).map(|i| path(&format!("shard{i}"))).collect();
    for (i, shard) in shards.iter().enumerate() {
        let flag = format!("{i}/2");
        args = [
            "collect",
            "--checkpoint",
            &sae,
            "--activations",
            &cache_dir,
            "--shard",
            &flag,
            "--device",
            "cpu",
            "--out",
            shard,
        ]
        .map(String::from)
        .to_vec();
        assert_ok(&saectl_with_umask_027(&strs(&args)));
    }
    let merged = path("merged");
    assert_ok(&saectl_with_umask_027(&[
        "merge", &shards[0], &shards[1], "--out", &merged,
    ]));
    let report = path("merged/report.md");
    assert_ok(&saectl_with_umask_027(&[
        "report", &merged, "--out", &report,
    ]));
    let mut checked = 0;
    for root in [&cache_027, &run, &shards[0], &shards[1], &merged] {
        let root = Path::new(root);
        for path in std::iter::once(root.to_path_buf()).chain(walk(root)) {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            let expected = if path.is_dir() { 0o750 } else { 0o640 };
            assert_eq!(mode, expected, "{}: {mode:o}", path.display());
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} paths checked");
}

#[test]
fn a_second_process_on_the_same_out_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    std::fs::create_dir(&cache_dir).unwrap();
    // This test process plays the other saectl: it holds the folder's lock.
    let held = RunLock::acquire(&cache_dir).unwrap();
    let pid = format!("pid {}", std::process::id());
    let out = cache(&cache_dir, 64, &[]);
    assert_one_line_error(&out, &pid);
    assert_one_line_error(&out, &cache_dir.display().to_string());
    // Nothing was written beside the lock.
    let names: Vec<_> = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [".saectl-lock"]);
    drop(held);
    assert_ok(&cache(&cache_dir, 64, &[]));

    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let held = RunLock::acquire(&run).unwrap();
    let out = saectl(&strs(&train_args(&cache_dir, &run)));
    assert_one_line_error(&out, &pid);
    drop(held);
    assert_ok(&saectl(&strs(&train_args(&cache_dir, &run))));
    // Resuming takes the lock too.
    let _held = RunLock::acquire(&run).unwrap();
    let out = saectl(&[
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert_one_line_error(&out, &pid);

    // A collection, fresh and resumed, takes the samples folder's lock.
    let sae = dir.path().join("sae");
    write_sae(&sae, 64);
    let samples = dir.path().join("samples");
    let from_cache = ["--activations", cache_dir.to_str().unwrap()];
    assert_ok(&collect(&sae, &samples, &from_cache));
    let _held = RunLock::acquire(&samples).unwrap();
    assert_one_line_error(&collect(&sae, &samples, &from_cache), &pid);
}

#[test]
fn a_collection_that_fails_at_once_leaves_no_folder_and_one_that_resumes_no_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    assert_ok(&cache(&cache_dir, 64, &[]));
    let sae = dir.path().join("sae");
    write_sae(&sae, 64);
    let samples = dir.path().join("samples");
    let missing = dir.path().join("no-such-cache");
    assert_one_line_error(
        &collect(
            &sae,
            &samples,
            &["--activations", missing.to_str().unwrap()],
        ),
        "no-such-cache",
    );
    assert!(!samples.exists(), "a failed collection left {samples:?}");
    // Live over a damaged parquet file: the logit effects are written before the text fails.
    let damaged = fixture("hostile/parquet-short-dictionary-page.parquet");
    let mut live = live_args(64);
    let dataset = live.iter().position(|a| a == "--dataset").unwrap() + 1;
    live[dataset] = damaged;
    // It fails mid-run (after the line saying the logit effects were written): the last line
    // is the error, and nothing panics.
    let output = collect(&sae, &samples, &strs(&live));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("is damaged"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !samples.exists(),
        "a failed live collection left {samples:?}"
    );

    let from_cache = ["--activations", cache_dir.to_str().unwrap()];
    assert_ok(&collect(&sae, &samples, &from_cache));
    std::fs::write(samples.join(".saectl-tmp-k1l2m3"), b"half a state").unwrap();
    assert_ok(&collect(&sae, &samples, &from_cache));
    assert_eq!(temporaries(&samples), Vec::<PathBuf>::new());
}

#[test]
fn resumed_runs_remove_the_temporaries_a_killed_run_left() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    assert_ok(&cache(&cache_dir, 32, &[]));
    std::fs::write(cache_dir.join(".saectl-tmp-AbC123"), vec![0u8; 1000]).unwrap();
    assert_ok(&cache(&cache_dir, 64, &[]));
    assert_eq!(temporaries(&cache_dir), Vec::<PathBuf>::new());

    let run = dir.path().join("run");
    assert_ok(&saectl(&strs(&train_args(&cache_dir, &run))));
    // Back to the checkpoint of step 2, with a killed run's leftovers in three folders.
    let step2 = run.join("checkpoints/step_000000002");
    std::fs::write(run.join("latest_checkpoint"), "checkpoints/step_000000002").unwrap();
    for folder in [&run, &step2, &run.join("activation_samples")] {
        std::fs::write(folder.join(".saectl-tmp-x1y2z3"), b"half a file").unwrap();
    }
    assert_eq!(temporaries(&run).len(), 3);
    let out = saectl(&[
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert_ok(&out);
    assert_eq!(temporaries(&run), Vec::<PathBuf>::new());
}

#[test]
fn readers_skip_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let (cache_dir, sae) = (dir.path().join("cache"), dir.path().join("sae"));
    assert_ok(&cache(&cache_dir, 64, &[]));
    write_sae(&sae, 64);
    let cache_arg = cache_dir.to_str().unwrap();
    let shards: Vec<PathBuf> = (0..2).map(|i| dir.path().join(format!("s{i}"))).collect();
    for (i, shard) in shards.iter().enumerate() {
        let flag = format!("{i}/2");
        assert_ok(&collect(
            &sae,
            shard,
            &["--activations", cache_arg, "--shard", &flag],
        ));
    }
    let clean = dir.path().join("clean");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    assert_ok(&saectl(&[
        "merge",
        &s(&shards[0]),
        &s(&shards[1]),
        "--out",
        &s(&clean),
    ]));
    // Half-written leftovers, one of them named like a feature file behind the prefix.
    for shard in &shards {
        std::fs::write(shard.join(".saectl-tmp-9zQ"), b"{\"statistics\": ").unwrap();
        std::fs::write(shard.join(".saectl-tmp-feature_00001_samples.json"), b"[").unwrap();
    }
    let merged = dir.path().join("merged");
    assert_ok(&saectl(&[
        "merge",
        &s(&shards[0]),
        &s(&shards[1]),
        "--out",
        &s(&merged),
    ]));
    for name in ["collection_summary.json", "collector_state.safetensors"] {
        assert_eq!(
            std::fs::read(merged.join(name)).unwrap(),
            std::fs::read(clean.join(name)).unwrap(),
            "{name}"
        );
    }
    assert_eq!(temporaries(&merged), Vec::<PathBuf>::new());
    // A killed merge's staging folder goes with the next merge beside it; one whose lock is
    // held (a merge still writing) stays.
    let stale = dir.path().join(".saectl-tmp-merge-killed");
    let live = dir.path().join(".saectl-tmp-merge-running");
    for folder in [&stale, &live] {
        std::fs::create_dir(folder).unwrap();
        std::fs::write(folder.join("feature_00001_samples.json"), b"{").unwrap();
    }
    let held = RunLock::acquire(&live).unwrap();
    let again = dir.path().join("again");
    assert_ok(&saectl(&[
        "merge",
        &s(&shards[0]),
        &s(&shards[1]),
        "--out",
        &s(&again),
    ]));
    assert!(!stale.exists() && live.exists());
    drop(held);
    assert_ok(&saectl(&["analyze", &s(&shards[0])]));
    let report = dir.path().join("report.md");
    assert_ok(&saectl(&["report", &s(&shards[1]), "--out", &s(&report)]));
}

/// Found by the kill trials: a collection killed between its first state save and the
/// summary beside it was refused as "made from another source". It resumes.
#[test]
fn a_collection_cut_between_its_state_and_its_summary_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (cache_dir, sae) = (dir.path().join("cache"), dir.path().join("sae"));
    assert_ok(&cache(&cache_dir, 64, &[]));
    write_sae(&sae, 64);
    let source = ["--activations", cache_dir.to_str().unwrap()];
    let (whole, cut) = (dir.path().join("whole"), dir.path().join("cut"));
    assert_ok(&collect(&sae, &whole, &source));
    assert_ok(&collect(&sae, &cut, &source));
    std::fs::remove_file(cut.join("collection_summary.json")).unwrap();
    assert_ok(&collect(&sae, &cut, &source));
    for name in ["collection_summary.json", "collector_state.safetensors"] {
        assert_eq!(
            std::fs::read(cut.join(name)).unwrap(),
            std::fs::read(whole.join(name)).unwrap(),
            "{name}"
        );
    }
}
