//! Hugging Face dataset repos through hf-hub 0.4.3: settings from the environment, file
//! listing (online or from the local cache), and shard fetching, cache first.
//!
//! hf-hub reads neither `HF_TOKEN` nor `HF_HUB_OFFLINE` nor `HF_HUB_CACHE` (DESIGN §6.7), so
//! [`HubOptions::from_env`] resolves them the way `huggingface_hub` does. With
//! `HF_HUB_OFFLINE=1` nothing touches the network: files are listed from the cached snapshot
//! and a shard missing from it is an error that says so. Online, a shard already in the
//! snapshot of the listed revision is used as is; only missing shards are downloaded, one at
//! a time, when the stream reaches them. Downloads show no progress bar: library code does
//! not print.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use hf_hub::api::sync::{Api, ApiBuilder};
use hf_hub::{Cache, Repo, RepoType};

/// How to reach the Hub: cache folder, token, offline switch, endpoint.
#[derive(Clone)]
pub struct HubOptions {
    /// The hub cache (`…/huggingface/hub`), holding `datasets--org--name` folders.
    pub cache_dir: PathBuf,
    pub token: Option<String>,
    /// Never touch the network (`HF_HUB_OFFLINE`).
    pub offline: bool,
    pub endpoint: String,
}

impl fmt::Debug for HubOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a secret: say whether there is one, never what it is.
        f.debug_struct("HubOptions")
            .field("cache_dir", &self.cache_dir)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("offline", &self.offline)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl HubOptions {
    /// Resolves the options from the process environment (see [`HubOptions::from_vars`]).
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Resolves the options from `var`, as `huggingface_hub` does: cache `HF_HUB_CACHE`, else
    /// `HF_HOME/hub`, else `~/.cache/huggingface/hub` (`XDG_CACHE_HOME` honoured); token
    /// `HF_TOKEN`, else the file `HF_TOKEN_PATH`, else `HF_HOME/token`; offline when
    /// `HF_HUB_OFFLINE` is `1`, `true`, `yes` or `on`; endpoint `HF_ENDPOINT`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let home = var("HOME")
            .or_else(|| var("USERPROFILE"))
            .unwrap_or_default();
        let hf_home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            let cache = var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(&home).join(".cache"));
            cache.join("huggingface")
        });
        let cache_dir = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let token_path = var("HF_TOKEN_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("token"));
        let token = var("HF_TOKEN").or_else(|| {
            let text = std::fs::read_to_string(token_path).ok()?;
            Some(text.trim().to_owned()).filter(|t| !t.is_empty())
        });
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
        });
        let endpoint = var("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".to_owned());
        Self {
            cache_dir,
            token,
            offline,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
        }
    }
}

/// One dataset revision: its commit, its files, and the means to fetch them.
#[derive(Clone)]
pub(crate) struct HubDataset {
    pub repo_id: String,
    pub commit: String,
    pub files: Vec<String>,
    snapshot: PathBuf,
    /// The client and the repo at the requested revision; `None` offline.
    api: Option<(Api, Repo)>,
}

impl HubDataset {
    /// Lists the files of `repo_id` at `revision`, from the Hub or, offline, from the cache.
    pub fn open(repo_id: &str, revision: &str, options: &HubOptions) -> Result<Self> {
        let repo_dir = options
            .cache_dir
            .join(Repo::dataset(repo_id.to_owned()).folder_name());
        if options.offline {
            return open_cached(repo_id, revision, &repo_dir);
        }
        let repo = Repo::with_revision(repo_id.to_owned(), RepoType::Dataset, revision.to_owned());
        let api = ApiBuilder::from_cache(Cache::new(options.cache_dir.clone()))
            .with_token(options.token.clone())
            .with_endpoint(options.endpoint.clone())
            .with_progress(false)
            .build()
            .context("failed to set up the Hugging Face Hub client")?;
        let info = api.repo(repo.clone()).info().map_err(|err| {
            anyhow!(
                "failed to list the files of dataset `{repo_id}` (revision {revision}) on \
                 {}: {err}. It is not a local file or folder either. If it is private or \
                 gated, set HF_TOKEN; to use the local cache only, set HF_HUB_OFFLINE=1",
                options.endpoint
            )
        })?;
        Ok(Self {
            repo_id: repo_id.to_owned(),
            snapshot: repo_dir.join("snapshots").join(&info.sha),
            commit: info.sha,
            files: info.siblings.into_iter().map(|s| s.rfilename).collect(),
            api: Some((api, repo)),
        })
    }

    /// A local path for `file`: the cached copy if there is one, else a download.
    pub fn fetch(&self, file: &str) -> Result<PathBuf> {
        let cached = self.snapshot.join(file);
        if cached.is_file() {
            return Ok(cached);
        }
        let Some((api, repo)) = &self.api else {
            bail!(
                "{}:{file} is not in the local cache ({}) and HF_HUB_OFFLINE is set",
                self.repo_id,
                self.snapshot.display()
            );
        };
        api.repo(repo.clone())
            .download(file)
            .with_context(|| format!("failed to download {}:{file}", self.repo_id))
    }
}

impl fmt::Debug for HubDataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HubDataset({}@{})", self.repo_id, self.commit)
    }
}

fn open_cached(repo_id: &str, revision: &str, repo_dir: &Path) -> Result<HubDataset> {
    let commit = cached_commit(revision, repo_dir).ok_or_else(|| {
        anyhow!(
            "dataset `{repo_id}` (revision {revision}) is not a local file or folder and is \
             not in the Hugging Face cache ({}); HF_HUB_OFFLINE is set, so it cannot be \
             downloaded",
            repo_dir.display()
        )
    })?;
    let snapshot = repo_dir.join("snapshots").join(&commit);
    let mut files = Vec::new();
    list_snapshot(&snapshot, "", &mut files)?;
    Ok(HubDataset {
        repo_id: repo_id.to_owned(),
        commit,
        files,
        snapshot,
        api: None,
    })
}

/// The commit a cached revision points at: `refs/<revision>`, or the revision itself when it
/// is a commit hash with a snapshot folder.
fn cached_commit(revision: &str, repo_dir: &Path) -> Option<String> {
    if let Ok(text) = std::fs::read_to_string(repo_dir.join("refs").join(revision)) {
        return Some(text.trim().to_owned());
    }
    repo_dir
        .join("snapshots")
        .join(revision)
        .is_dir()
        .then(|| revision.to_owned())
}

/// Repo paths of the files in a snapshot (symlinks into `blobs/`; dangling ones are skipped).
fn list_snapshot(dir: &Path, prefix: &str, files: &mut Vec<String>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("failed to list the cached snapshot {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let repo_path = format!("{prefix}{name}");
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => list_snapshot(&path, &format!("{repo_path}/"), files)?,
            Ok(meta) if meta.is_file() => files.push(repo_path),
            _ => {}
        }
    }
    Ok(())
}
