//! The harness every integration test shares (as ripgrep's `tests/util.rs`): [`Saectl`], the
//! one way to run the real binary; the fixtures' paths and shapes; the assertions made about
//! a run; golden files; and the stage helpers several test files use (a cache of the fixture
//! corpus, a random SAE at its hook, a collection).
//!
//! Golden files — tests/golden/ and docs/cli.md — are rewritten by running the tests with
//! `UPDATE_DOCS=1` (`UPDATE_DOCS=1 cargo test --test cli`); review the diff before committing.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::Device;
use saectl::sae::checkpoint::{save, CheckpointMeta};
use saectl::sae::{Sae, SaeConfig, SaeKind, SaeWeights};

/// The hook the fixture tests read (the tiny Gemma-2 has 3 blocks of width 64).
pub const HOOK: &str = "blocks.2.hook_resid_post";
/// The random test SAE: width, active latents, and what a collection keeps of it.
pub const D_SAE: usize = 48;
const K: usize = 4;
pub const SEQ_LEN: usize = 16;
pub const MAX_SAMPLES: usize = 6;

/// The environment variable that rewrites golden files instead of comparing with them.
pub const UPDATE: &str = "UPDATE_DOCS";

/// `saectl` with arguments, run as a user would.
pub struct Saectl {
    command: Command,
    /// Bytes written to the command's standard input (none: stdin is inherited).
    stdin: Option<Vec<u8>>,
}

impl Saectl {
    /// `saectl args…` (the subcommand first).
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(env!("CARGO_BIN_EXE_saectl"));
        command.args(args);
        Self {
            command,
            stdin: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// An empty environment (no HOME, no HF_* variable).
    pub fn env_clear(mut self) -> Self {
        self.command.env_clear();
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Feeds `bytes` to the command's standard input.
    pub fn stdin(mut self, bytes: &[u8]) -> Self {
        self.stdin = Some(bytes.to_vec());
        self
    }

    pub fn run(mut self) -> Output {
        let Some(bytes) = self.stdin else {
            return self.command.output().expect("saectl runs");
        };
        use std::io::Write;
        use std::process::Stdio;
        let mut child = self
            .command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("saectl starts");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(&bytes)
            .expect("saectl reads its input");
        child.wait_with_output().expect("saectl runs")
    }

    /// Runs it and asserts that it succeeded.
    pub fn ok(self) -> Output {
        let output = self.run();
        assert_ok(&output);
        output
    }
}

/// Runs `saectl args…`.
pub fn saectl(args: &[&str]) -> Output {
    Saectl::new(args).run()
}

/// A path under tests/fixtures/.
pub fn fixture(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
        .to_string_lossy()
        .into_owned()
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn assert_ok(output: &Output) {
    assert!(output.status.success(), "saectl failed: {}", stderr(output));
}

/// What a successful run printed on stdout.
pub fn stdout(output: &Output) -> String {
    assert_ok(output);
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

/// Exit code 1, nothing on stdout, and exactly one line on stderr: `error: …` with `needle`.
pub fn assert_one_line_error(output: &Output, needle: &str) {
    let stderr = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "more than one line: {stderr}"
    );
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr}");
    assert!(output.stdout.is_empty(), "{:?}", output.stdout);
}

/// `actual` equals the golden file `name` under tests/golden/ (rewritten with `UPDATE_DOCS=1`).
pub fn assert_golden(name: &str, actual: &[u8]) {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os(UPDATE).is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, actual).unwrap();
    }
    let expected = std::fs::read(&golden)
        .unwrap_or_else(|_| panic!("no golden file {} ({UPDATE}=1 writes it)", golden.display()));
    assert!(
        expected == actual,
        "{name} differs from {}; rerun with {UPDATE}=1 if the change is intended:\n{}",
        golden.display(),
        String::from_utf8_lossy(actual)
    );
}

/// `saectl cache` on the fixture model and corpus, not yet run; `overrides` replace the value
/// of a flag.
pub fn cache_command(out: &Path, num_tokens: u64, overrides: &[(&str, &str)]) -> Saectl {
    let num_tokens = num_tokens.to_string();
    let out = out.to_string_lossy().into_owned();
    let (model, tokenizer, dataset) = (
        fixture("tiny-gemma2"),
        fixture("tokenizer/tokenizer.json"),
        fixture("corpus/tiny.jsonl"),
    );
    let mut flags: Vec<(&str, &str)> = vec![
        ("--model", &model),
        ("--tokenizer", &tokenizer),
        ("--hook", HOOK),
        ("--dataset", &dataset),
        ("--num-tokens", &num_tokens),
        ("--seq-len", "16"),
        ("--model-batch-size", "3"),
        ("--sequences-per-shard", "5"),
        ("--device", "cpu"),
        ("--out", &out),
    ];
    for (flag, value) in overrides {
        flags
            .iter_mut()
            .filter(|(f, _)| f == flag)
            .for_each(|entry| entry.1 = value);
    }
    Saectl::new(["cache"]).args(flags.iter().flat_map(|(flag, value)| [*flag, *value]))
}

/// Runs [`cache_command`].
pub fn cache(out: &Path, num_tokens: u64, overrides: &[(&str, &str)]) -> Output {
    cache_command(out, num_tokens, overrides).run()
}

/// A random TopK SAE of width [`D_SAE`] at [`HOOK`], saved in `dir`.
pub fn write_sae(dir: &Path, d_in: usize) -> Sae {
    write_sae_seeded(dir, d_in, 7)
}

/// [`write_sae`] from another seed.
pub fn write_sae_seeded(dir: &Path, d_in: usize, seed: u64) -> Sae {
    let mut config = SaeConfig::new(SaeKind::TopK, d_in, D_SAE, Some(K));
    config.hook_name = Some(HOOK.to_string());
    let weights = SaeWeights::init(&config, seed, &Device::Cpu).unwrap();
    let sae = Sae::new(config.clone(), weights).unwrap();
    save(dir, &sae, &CheckpointMeta::new(config)).unwrap();
    sae
}

/// `saectl collect` of `checkpoint` into `out` keeping [`MAX_SAMPLES`] samples of every
/// feature above 0, from `source` (`--activations DIR`, or [`live_args`]).
pub fn collect(checkpoint: &Path, out: &Path, source: &[&str]) -> Output {
    let (max, features) = (MAX_SAMPLES.to_string(), D_SAE.to_string());
    Saectl::new(["collect", "--checkpoint", path_str(checkpoint)])
        .args(["--out", path_str(out)])
        .args(["--max-samples-per-feature", &max])
        .args(["--samples-per-feature-to-save", &max])
        .args(["--top-features-to-save", &features])
        .args(["--sample-activation-threshold", "0.0", "--device", "cpu"])
        .args(source)
        .run()
}

/// The flags of a live collection over `num_tokens` of the fixture corpus.
pub fn live_args(num_tokens: u64) -> Vec<String> {
    [
        "--model",
        &fixture("tiny-gemma2"),
        "--tokenizer",
        &fixture("tokenizer/tokenizer.json"),
        "--dataset",
        &fixture("corpus/tiny.jsonl"),
        "--num-tokens",
        &num_tokens.to_string(),
        "--seq-len",
        &SEQ_LEN.to_string(),
        "--model-batch-size",
        "3",
    ]
    .map(String::from)
    .to_vec()
}

/// `strings` as the `&str`s a command takes.
pub fn strs(strings: &[String]) -> Vec<&str> {
    strings.iter().map(String::as_str).collect()
}

/// The `feature_XXXXX_samples.json` files of a folder, by name, with their bytes.
pub fn feature_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| path_str(p.file_name().unwrap().as_ref()).starts_with("feature_"))
        .map(|p| {
            (
                PathBuf::from(p.file_name().unwrap()),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}
