//! Files from the Hugging Face Hub: local cache first, network only when allowed.
//!
//! hf-hub 0.4.3 (ureq 2 sync client, DESIGN.md §6.7) downloads; everything around it is ours,
//! because hf-hub reads neither `HF_TOKEN`, `HF_HUB_OFFLINE` nor `HF_HUB_CACHE`:
//! - cache folder: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`
//!   (the layout Python's `huggingface_hub` shares: `models--org--name/refs/main`,
//!   `snapshots/<commit>/<file>`);
//! - token: `HF_TOKEN`, else the file `huggingface-cli login` writes (`HF_HOME/token`);
//! - `HF_HUB_OFFLINE=1` (or true/yes/on): never touch the network; a file missing from the
//!   cache is an error that says so.
//!
//! Dataset repos use the same code with [`RepoType::Dataset`].

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context};
use hf_hub::api::sync::{Api, ApiBuilder};
use hf_hub::{Cache, Repo, RepoType};

/// Where and how to reach the Hub. Build it with [`HubSettings::from_env`].
#[derive(Clone, Debug)]
pub struct HubSettings {
    /// The `hub` cache folder (holding `models--org--name/`).
    pub cache_dir: PathBuf,
    pub token: Option<String>,
    pub offline: bool,
    /// `HF_ENDPOINT`, when set (a mirror).
    pub endpoint: Option<String>,
    /// Let hf-hub draw its download progress bar on stderr (for the command line only).
    pub progress: bool,
}

impl HubSettings {
    /// Reads `HF_HUB_CACHE`, `HF_HOME`, `XDG_CACHE_HOME`, `HOME`, `HF_TOKEN`, `HF_TOKEN_PATH`,
    /// `HF_HUB_OFFLINE` and `HF_ENDPOINT` from the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`HubSettings::from_env`] over any variable lookup (tests pass a map).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let var = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        let hf_home = match var("HF_HOME") {
            Some(home) => Some(PathBuf::from(home)),
            None => var("XDG_CACHE_HOME")
                .or_else(|| var("HOME").map(|home| format!("{home}/.cache")))
                .map(|cache| Path::new(&cache).join("huggingface")),
        };
        let cache_dir = match (var("HF_HUB_CACHE"), &hf_home) {
            (Some(dir), _) => PathBuf::from(dir),
            (None, Some(home)) => home.join("hub"),
            (None, None) => bail!(
                "cannot find the Hugging Face cache: set HF_HUB_CACHE or HF_HOME (HOME is unset)"
            ),
        };
        let token_file = var("HF_TOKEN_PATH")
            .map(PathBuf::from)
            .or_else(|| hf_home.map(|home| home.join("token")));
        let token = var("HF_TOKEN").or_else(|| {
            let text = std::fs::read_to_string(token_file?).ok()?;
            Some(text.trim().to_string()).filter(|t| !t.is_empty())
        });
        let offline = var("HF_HUB_OFFLINE").is_some_and(|value| {
            matches!(
                value.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        });
        Ok(Self {
            cache_dir,
            token: token.map(|t| t.trim().to_string()),
            offline,
            endpoint: var("HF_ENDPOINT"),
            progress: false,
        })
    }
}

/// One repository at one revision, answering file requests from the cache or the network.
pub struct HubRepo {
    settings: HubSettings,
    repo_id: String,
    repo: Repo,
    api: OnceLock<Api>,
}

impl HubRepo {
    /// `revision` is a branch, tag or commit hash (`main` when `None`).
    pub fn new(
        settings: HubSettings,
        repo_id: &str,
        repo_type: RepoType,
        revision: Option<&str>,
    ) -> Self {
        let revision = revision.unwrap_or("main").to_string();
        let repo = Repo::with_revision(repo_id.to_string(), repo_type, revision);
        Self {
            settings,
            repo_id: repo_id.to_string(),
            repo,
            api: OnceLock::new(),
        }
    }

    pub fn repo_id(&self) -> &str {
        &self.repo_id
    }

    /// The cached copy of `filename`, if any. Handles branch names (through `refs/`) and
    /// commit hashes (directly under `snapshots/`).
    pub fn cached(&self, filename: &str) -> Option<PathBuf> {
        let folder = self.settings.cache_dir.join(self.repo.folder_name());
        let revision = self.repo.revision();
        let commit = if is_commit_hash(revision) {
            revision.to_string()
        } else {
            let text = std::fs::read_to_string(folder.join("refs").join(revision)).ok()?;
            text.trim().to_string()
        };
        let path = folder.join("snapshots").join(commit).join(filename);
        path.is_file().then_some(path)
    }

    /// `filename` from the cache, else downloaded into it (unless offline).
    pub fn get(&self, filename: &str) -> anyhow::Result<PathBuf> {
        if let Some(path) = self.cached(filename) {
            return Ok(path);
        }
        let what = self.describe(filename);
        if self.settings.offline {
            bail!(
                "{what} is not in the local Hugging Face cache ({}) and HF_HUB_OFFLINE is set; \
                 download it once while online, or unset HF_HUB_OFFLINE",
                self.settings.cache_dir.display()
            );
        }
        let api = self.api()?;
        let hint = if self.settings.token.is_none() {
            " (gated repositories such as google/gemma-2-* need HF_TOKEN and an accepted license)"
        } else {
            ""
        };
        api.repo(self.repo.clone())
            .get(filename)
            .with_context(|| format!("failed to download {what}{hint}"))
    }

    /// The repository's file names (one network request; an error when offline).
    pub fn list_files(&self) -> anyhow::Result<Vec<String>> {
        let api = self.api()?;
        let info = api
            .repo(self.repo.clone())
            .info()
            .with_context(|| format!("failed to list the files of {}", self.describe("")))?;
        Ok(info.siblings.into_iter().map(|s| s.rfilename).collect())
    }

    pub fn is_offline(&self) -> bool {
        self.settings.offline
    }

    fn api(&self) -> anyhow::Result<&Api> {
        if self.settings.offline {
            bail!(
                "HF_HUB_OFFLINE is set and {} needs the network (its files are not in the \
                 local Hugging Face cache {}); download them once while online, or unset HF_HUB_OFFLINE",
                self.describe(""),
                self.settings.cache_dir.display()
            );
        }
        if let Some(api) = self.api.get() {
            return Ok(api);
        }
        // `from_cache`, not `new`: `new` looks up the home folder and panics without one.
        let cache = Cache::new(self.settings.cache_dir.clone());
        let mut builder = ApiBuilder::from_cache(cache)
            .with_token(self.settings.token.clone())
            .with_progress(self.settings.progress);
        if let Some(endpoint) = &self.settings.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        let api = builder
            .build()
            .context("failed to set up the Hugging Face client")?;
        Ok(self.api.get_or_init(|| api))
    }

    /// `` `config.json` of google/gemma-2-2b (revision main)``, for messages.
    pub fn describe(&self, filename: &str) -> String {
        let file = if filename.is_empty() {
            String::new()
        } else {
            format!("`{filename}` of ")
        };
        format!("{file}{} (revision {})", self.repo_id, self.repo.revision())
    }
}

fn is_commit_hash(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> HubSettings {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HubSettings::from_vars(|name| vars.get(name).cloned()).unwrap()
    }

    #[test]
    fn cache_folder_follows_the_python_rules() {
        let s = settings(&[("HOME", "/h")]);
        assert_eq!(s.cache_dir, PathBuf::from("/h/.cache/huggingface/hub"));
        let s = settings(&[("HOME", "/h"), ("HF_HOME", "/hf")]);
        assert_eq!(s.cache_dir, PathBuf::from("/hf/hub"));
        let s = settings(&[("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/c")]);
        assert_eq!(s.cache_dir, PathBuf::from("/c"));
        assert!(HubSettings::from_vars(|_| None).is_err());
    }

    #[test]
    fn token_and_offline_come_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "hf_file\n").unwrap();
        let home = dir.path().to_str().unwrap();
        let s = settings(&[("HF_HOME", home)]);
        assert_eq!(s.token.as_deref(), Some("hf_file"));
        assert!(!s.offline);
        let s = settings(&[
            ("HF_HOME", home),
            ("HF_TOKEN", "hf_env"),
            ("HF_HUB_OFFLINE", "1"),
        ]);
        assert_eq!(s.token.as_deref(), Some("hf_env"));
        assert!(s.offline);
        assert!(settings(&[("HOME", "/h"), ("HF_HUB_OFFLINE", "TRUE")]).offline);
        assert!(!settings(&[("HOME", "/h"), ("HF_HUB_OFFLINE", "0")]).offline);
    }
}
