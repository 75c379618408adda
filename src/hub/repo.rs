//! [`HubRepo`]: one model or dataset repository at one revision, answering file requests
//! from the local cache first and from the Hub only when that is allowed.
//!
//! hf-hub 0.4.3 (the ureq 2 sync client, DESIGN.md §6.7) does the downloading; the cache
//! lookup, the offline rule and the messages are ours. Offline, nothing touches the network:
//! files come from the cached snapshot, and a missing one is an error naming the file, the
//! repo and the cache folder.

use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{bail, Context};
use hf_hub::api::sync::{Api, ApiBuilder};
use hf_hub::{Cache, Repo, RepoType};

use super::cache::{cached_commit, snapshot_dir, snapshot_files};
use super::settings::HubSettings;

/// The kinds of repository saectl reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoKind {
    Model,
    Dataset,
}

impl RepoKind {
    /// `model` or `dataset`, for messages.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Dataset => "dataset",
        }
    }

    fn repo_type(self) -> RepoType {
        match self {
            Self::Model => RepoType::Model,
            Self::Dataset => RepoType::Dataset,
        }
    }
}

/// The files of a repository at one commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoListing {
    /// The commit the revision resolved to.
    pub commit: String,
    /// Repo paths, `/`-separated.
    pub files: Vec<String>,
}

/// One repository at one revision. The Hub client is built on the first network call only.
pub struct HubRepo {
    settings: HubSettings,
    kind: RepoKind,
    repo_id: String,
    repo: Repo,
    api: OnceLock<Api>,
}

impl HubRepo {
    /// `revision` is a branch, tag or commit hash (`main` when `None`).
    pub fn new(
        settings: HubSettings,
        kind: RepoKind,
        repo_id: &str,
        revision: Option<&str>,
    ) -> Self {
        let revision = revision.unwrap_or("main").to_owned();
        let repo = Repo::with_revision(repo_id.to_owned(), kind.repo_type(), revision);
        Self {
            settings,
            kind,
            repo_id: repo_id.to_owned(),
            repo,
            api: OnceLock::new(),
        }
    }

    /// The same repository pinned to `commit`, so that files fetched after a listing come
    /// from the listed commit even if the branch moves meanwhile.
    pub fn at_commit(&self, commit: &str) -> Self {
        Self::new(
            self.settings.clone(),
            self.kind,
            &self.repo_id,
            Some(commit),
        )
    }

    pub fn repo_id(&self) -> &str {
        &self.repo_id
    }

    pub fn revision(&self) -> &str {
        self.repo.revision()
    }

    pub fn kind(&self) -> RepoKind {
        self.kind
    }

    pub fn is_offline(&self) -> bool {
        self.settings.offline
    }

    /// `models--org--name/` (or `datasets--…`) in the cache, when there is a cache folder.
    fn repo_dir(&self) -> Option<PathBuf> {
        Some(
            self.settings
                .cache_dir
                .as_ref()?
                .join(self.repo.folder_name()),
        )
    }

    /// The commit the revision points at in the local cache, if the cache knows it.
    pub fn cached_commit(&self) -> Option<String> {
        cached_commit(&self.repo_dir()?, self.revision())
    }

    /// The cached copy of `filename` at this revision, if any.
    pub fn cached(&self, filename: &str) -> Option<PathBuf> {
        let repo_dir = self.repo_dir()?;
        let commit = cached_commit(&repo_dir, self.revision())?;
        let path = snapshot_dir(&repo_dir, &commit).join(filename);
        path.is_file().then_some(path)
    }

    /// `filename` from the cache, else downloaded into it (unless offline).
    pub fn get(&self, filename: &str) -> anyhow::Result<PathBuf> {
        if let Some(path) = self.cached(filename) {
            return Ok(path);
        }
        let what = self.describe(filename);
        let cache_dir = self.settings.cache_dir()?;
        if self.settings.offline {
            bail!(
                "{what} is not in the local Hugging Face cache ({}) and HF_HUB_OFFLINE is set; \
                 download it once while online, or unset HF_HUB_OFFLINE",
                cache_dir.display()
            );
        }
        let hint = self.access_hint();
        self.api()?
            .repo(self.repo.clone())
            .download(filename)
            .with_context(|| format!("failed to download {what}{hint}"))
    }

    /// The revision's commit and files: from the Hub (one request), or offline from the
    /// cached snapshot — which holds only the files downloaded so far.
    pub fn list(&self) -> anyhow::Result<RepoListing> {
        let cache_dir = self.settings.cache_dir()?;
        if self.settings.offline {
            return self.list_cached(cache_dir.display());
        }
        let info = self
            .api()?
            .repo(self.repo.clone())
            .info()
            .with_context(|| {
                format!(
                    "failed to list the files of {} on {}{}; to use the local cache only, set \
                 HF_HUB_OFFLINE=1",
                    self.describe(""),
                    self.settings.endpoint,
                    self.access_hint()
                )
            })?;
        Ok(RepoListing {
            commit: info.sha,
            files: info.siblings.into_iter().map(|s| s.rfilename).collect(),
        })
    }

    fn list_cached(&self, cache_dir: impl fmt::Display) -> anyhow::Result<RepoListing> {
        let (Some(repo_dir), Some(commit)) = (self.repo_dir(), self.cached_commit()) else {
            bail!(
                "{} is not in the local Hugging Face cache ({cache_dir}) and HF_HUB_OFFLINE \
                 is set, so it cannot be downloaded",
                self.describe("")
            );
        };
        let files = snapshot_files(&snapshot_dir(&repo_dir, &commit))?;
        Ok(RepoListing { commit, files })
    }

    /// Why a request may have been refused, when no token was sent.
    fn access_hint(&self) -> &'static str {
        match self.settings.token {
            Some(_) => "",
            None => {
                " (private and gated repositories, such as google/gemma-2-*, need HF_TOKEN \
                 and an accepted license)"
            }
        }
    }

    fn api(&self) -> anyhow::Result<&Api> {
        // The callers check first, with better messages; this keeps the rule in one place.
        if self.settings.offline {
            bail!(
                "HF_HUB_OFFLINE is set and {} needs the network",
                self.describe("")
            );
        }
        if let Some(api) = self.api.get() {
            return Ok(api);
        }
        // `from_cache`, not `new`: `new` looks up the home folder and panics without one.
        let cache = Cache::new(self.settings.cache_dir()?.to_path_buf());
        let api = ApiBuilder::from_cache(cache)
            .with_token(self.settings.token.clone())
            .with_endpoint(self.settings.endpoint.clone())
            .with_progress(self.settings.progress)
            .build()
            .context("failed to set up the Hugging Face Hub client")?;
        Ok(self.api.get_or_init(|| api))
    }

    /// `` `config.json` of model `google/gemma-2-2b` (revision main)``, for messages.
    pub fn describe(&self, filename: &str) -> String {
        let file = match filename {
            "" => String::new(),
            name => format!("`{name}` of "),
        };
        let (kind, id, revision) = (self.kind.noun(), &self.repo_id, self.revision());
        format!("{file}{kind} `{id}` (revision {revision})")
    }
}

impl fmt::Debug for HubRepo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the settings: they hold the token.
        write!(
            f,
            "HubRepo({} {}@{})",
            self.kind.noun(),
            self.repo_id,
            self.revision()
        )
    }
}
