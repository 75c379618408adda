//! [`HubSettings`]: where the Hugging Face cache is, which token to send, whether the network
//! may be used, and which Hub to ask — resolved from the environment as Python's
//! `huggingface_hub` resolves it, because hf-hub 0.4.3 reads none of it (DESIGN.md §6.7).
//!
//! Resolving never fails: a command that reads only local files must run without `HOME` or
//! any `HF_*` variable. A missing cache folder is an error only when a Hub call needs one
//! ([`HubSettings::cache_dir`]).

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::anyhow;

/// The Hub that `HF_ENDPOINT` replaces.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How to reach the Hub. Build it with [`HubSettings::from_env`] (or `from_vars` in tests).
#[derive(Clone, PartialEq, Eq)]
pub struct HubSettings {
    /// The `hub` cache folder (holding `models--org--name/`, `datasets--org--name/`); `None`
    /// when neither `HF_HUB_CACHE`, `HF_HOME`, `XDG_CACHE_HOME` nor a home folder is set.
    pub cache_dir: Option<PathBuf>,
    pub token: Option<String>,
    /// Never touch the network (`HF_HUB_OFFLINE`).
    pub offline: bool,
    /// `HF_ENDPOINT` without a trailing `/`, else [`DEFAULT_ENDPOINT`].
    pub endpoint: String,
    /// Let hf-hub draw its download progress bar on stderr (for the command line only:
    /// library code does not print).
    pub progress: bool,
}

impl HubSettings {
    /// Reads `HF_HUB_CACHE`, `HF_HOME`, `XDG_CACHE_HOME`, `HOME`/`USERPROFILE`, `HF_TOKEN`,
    /// `HF_TOKEN_PATH`, `HF_HUB_OFFLINE` and `HF_ENDPOINT` from the process environment.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`HubSettings::from_env`] over any variable lookup (tests pass a map). As in
    /// `huggingface_hub`: cache `HF_HUB_CACHE`, else `HF_HOME/hub`, else
    /// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`; token `HF_TOKEN`,
    /// else the file `HF_TOKEN_PATH`, else `HF_HOME/token` (what `huggingface-cli login`
    /// writes); offline when `HF_HUB_OFFLINE` is `1`, `true`, `yes` or `on` (any case).
    /// Empty values count as unset.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        let hf_home = var("HF_HOME").map(PathBuf::from).or_else(|| {
            let cache = var("XDG_CACHE_HOME").map(PathBuf::from).or_else(|| {
                let home = var("HOME").or_else(|| var("USERPROFILE"))?;
                Some(Path::new(&home).join(".cache"))
            })?;
            Some(cache.join("huggingface"))
        });
        let cache_dir = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| hf_home.as_ref().map(|home| home.join("hub")));
        let token_file = var("HF_TOKEN_PATH")
            .map(PathBuf::from)
            .or_else(|| hf_home.map(|home| home.join("token")));
        let token = var("HF_TOKEN")
            .or_else(|| std::fs::read_to_string(token_file?).ok())
            .map(|token| token.trim().to_owned())
            .filter(|token| !token.is_empty());
        let offline = var("HF_HUB_OFFLINE").is_some_and(|value| {
            let value = value.trim().to_ascii_lowercase();
            matches!(value.as_str(), "1" | "true" | "yes" | "on")
        });
        let endpoint = var("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        Self {
            cache_dir,
            token,
            offline,
            endpoint: endpoint.trim().trim_end_matches('/').to_owned(),
            progress: false,
        }
    }

    /// The cache folder, or an error saying how to name one.
    pub fn cache_dir(&self) -> anyhow::Result<&Path> {
        self.cache_dir.as_deref().ok_or_else(|| {
            anyhow!(
                "cannot find the Hugging Face cache: set HF_HUB_CACHE or HF_HOME \
                 (HOME is unset)"
            )
        })
    }
}

impl fmt::Debug for HubSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a secret: say whether there is one, never what it is.
        f.debug_struct("HubSettings")
            .field("cache_dir", &self.cache_dir)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("offline", &self.offline)
            .field("endpoint", &self.endpoint)
            .field("progress", &self.progress)
            .finish()
    }
}
