//! `HubSettings::from_vars`: the `huggingface_hub` rules, and no failure without a home.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::hub::{HubSettings, DEFAULT_ENDPOINT};

fn settings(vars: &[(&str, &str)]) -> HubSettings {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    HubSettings::from_vars(|name| vars.get(name).cloned())
}

fn cache_of(vars: &[(&str, &str)]) -> Option<PathBuf> {
    settings(vars).cache_dir
}

#[test]
fn cache_folder_follows_the_python_rules() {
    let path = |p: &str| Some(PathBuf::from(p));
    assert_eq!(
        cache_of(&[("HOME", "/h")]),
        path("/h/.cache/huggingface/hub")
    );
    assert_eq!(
        cache_of(&[("USERPROFILE", "/u")]),
        path("/u/.cache/huggingface/hub")
    );
    assert_eq!(
        cache_of(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/x")]),
        path("/x/huggingface/hub")
    );
    assert_eq!(
        cache_of(&[("HOME", "/h"), ("HF_HOME", "/hf")]),
        path("/hf/hub")
    );
    assert_eq!(
        cache_of(&[("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/c")]),
        path("/c")
    );
    // Empty values count as unset.
    assert_eq!(
        cache_of(&[("HOME", "/h"), ("HF_HOME", " "), ("HF_HUB_CACHE", "")]),
        path("/h/.cache/huggingface/hub")
    );
}

#[test]
fn nothing_set_is_not_an_error_until_the_cache_is_needed() {
    let bare = HubSettings::from_vars(|_| None);
    assert_eq!(bare.cache_dir, None);
    assert_eq!(bare.token, None);
    assert!(!bare.offline);
    assert_eq!(bare.endpoint, DEFAULT_ENDPOINT);
    let err = bare.cache_dir().unwrap_err().to_string();
    assert!(err.contains("set HF_HUB_CACHE or HF_HOME"), "{err}");
    let with_cache = settings(&[("HF_HUB_CACHE", "/c")]);
    assert_eq!(with_cache.cache_dir().unwrap(), Path::new("/c"));
}

#[test]
fn token_comes_from_the_variable_or_the_token_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "hf_file\n").unwrap();
    std::fs::write(dir.path().join("other"), "  hf_other \n").unwrap();
    let home = dir.path().to_str().unwrap();
    let other = dir.path().join("other");
    let other = other.to_str().unwrap();
    assert_eq!(
        settings(&[("HF_HOME", home)]).token.as_deref(),
        Some("hf_file")
    );
    let both = [("HF_HOME", home), ("HF_TOKEN_PATH", other)];
    assert_eq!(settings(&both).token.as_deref(), Some("hf_other"));
    let env = [("HF_HOME", home), ("HF_TOKEN", " hf_env ")];
    assert_eq!(settings(&env).token.as_deref(), Some("hf_env"));
    // HF_HUB_CACHE moves the cache, not the token file.
    let moved = [("HF_HOME", home), ("HF_HUB_CACHE", "/cache")];
    assert_eq!(settings(&moved).token.as_deref(), Some("hf_file"));
    assert_eq!(settings(&[("HOME", "/nonexistent")]).token, None);
}

#[test]
fn offline_and_endpoint_come_from_the_environment() {
    for on in ["1", "true", "TRUE", "True", "yes", "on", " 1 "] {
        assert!(settings(&[("HF_HUB_OFFLINE", on)]).offline, "{on}");
    }
    for off in ["0", "false", "no", "off", ""] {
        assert!(!settings(&[("HF_HUB_OFFLINE", off)]).offline, "{off}");
    }
    let mirror = settings(&[("HF_ENDPOINT", "https://mirror.example/")]);
    assert_eq!(mirror.endpoint, "https://mirror.example");
}

#[test]
fn debug_output_hides_the_token() {
    let shown = format!("{:?}", settings(&[("HF_TOKEN", "hf_secret")]));
    assert!(!shown.contains("hf_secret"), "{shown}");
    assert!(shown.contains("<set>"), "{shown}");
}
