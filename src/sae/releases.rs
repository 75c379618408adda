//! SAEs by their published names: `--checkpoint RELEASE/SAE_ID`, as SAELens names them (e.g.
//! `gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical`), resolved through a table
//! that ships with saectl (`releases.txt`, generated from SAELens's registry by
//! `scripts/make_release_table.py`): per release, the Hub repo, the model its SAEs read, the
//! checkpoint format and the hook; per SAE, its folder in the repo.
//!
//! Resolution is offline: the table turns a release name into a Hub path
//! (`google/gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82/params.npz`), which
//! [`super::hub_path`] then fetches like any other. An unknown SAE id of a known release is an
//! error that lists what the release has near it, before anything is downloaded.

use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

/// The table, compiled in.
const TABLE: &str = include_str!("releases.txt");

/// How a release stores its SAEs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseFormat {
    /// Gemma Scope: `params.npz` in each SAE's folder.
    GemmaScope,
    /// SAELens folders: `cfg.json` + `sae_weights.safetensors`.
    SaeLens,
}

/// One release of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Release {
    pub name: String,
    /// The Hub model repository holding its SAEs.
    pub repo: String,
    /// The model (Hub id) whose activations its SAEs read.
    pub model: String,
    pub format: ReleaseFormat,
    /// The hook, `{layer}` standing for the `layer_N` of an SAE's path and `{id}` for its id.
    hook: String,
    /// (SAE id, folder in the repo), in table order.
    pub saes: Vec<(String, String)>,
}

/// One SAE of a release, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ReleaseSae {
    pub release: String,
    pub id: String,
    pub repo: String,
    pub model: String,
    /// The hook point its SAE reads (TransformerLens name).
    pub hook: String,
    /// What [`super::hub_path::resolve_checkpoint`] fetches: `repo/folder/params.npz` for
    /// Gemma Scope, `repo/folder` for a SAELens folder.
    pub hub_path: String,
}

impl Release {
    /// The hook of the SAE at `path` with id `id`.
    fn hook_of(&self, id: &str, path: &str) -> Option<String> {
        let layer = path
            .split('/')
            .find_map(|part| part.strip_prefix("layer_")?.parse::<usize>().ok());
        if self.hook.contains("{layer}") {
            return Some(self.hook.replace("{layer}", &layer?.to_string()));
        }
        Some(self.hook.replace("{id}", id))
    }

    fn resolve(&self, id: &str, path: &str) -> Result<ReleaseSae> {
        let hook = self
            .hook_of(id, path)
            .with_context(|| format!("release table: {}/{id} has no layer", self.name))?;
        let hub_path = match self.format {
            ReleaseFormat::GemmaScope => format!("{}/{path}/params.npz", self.repo),
            ReleaseFormat::SaeLens => format!("{}/{path}", self.repo),
        };
        Ok(ReleaseSae {
            release: self.name.clone(),
            id: id.to_string(),
            repo: self.repo.clone(),
            model: self.model.clone(),
            hook,
            hub_path,
        })
    }
}

/// Every release of the table, in table order.
pub fn releases() -> &'static [Release] {
    static PARSED: OnceLock<Vec<Release>> = OnceLock::new();
    PARSED.get_or_init(|| parse(TABLE).expect("the shipped release table parses (tested)"))
}

/// The SAE `spec` names when its first part is a release of the table; `None` when it is not
/// (a local path or a Hub path), an error when the release has no such SAE.
pub fn lookup(spec: &str) -> Result<Option<ReleaseSae>> {
    let spec = spec.trim_matches('/');
    let Some((name, id)) = spec.split_once('/') else {
        return Ok(None);
    };
    let Some(release) = releases().iter().find(|r| r.name == name) else {
        return Ok(None);
    };
    match release.saes.iter().find(|(sae_id, _)| sae_id == id) {
        Some((id, path)) => release.resolve(id, path).map(Some),
        None => bail!("{}", unknown_id(release, id)),
    }
}

/// "release X has no SAE Y", with the ids that share Y's folder prefix (or a few examples).
fn unknown_id(release: &Release, id: &str) -> String {
    let prefix = id.rsplit_once('/').map_or("", |(head, _)| head);
    let mut near: Vec<&str> = release
        .saes
        .iter()
        .map(|(sae_id, _)| sae_id.as_str())
        .filter(|sae_id| !prefix.is_empty() && sae_id.starts_with(&format!("{prefix}/")))
        .collect();
    let what = if near.is_empty() {
        near = release
            .saes
            .iter()
            .take(3)
            .map(|(i, _)| i.as_str())
            .collect();
        "its SAE ids look like"
    } else {
        "under that folder it has"
    };
    format!(
        "release {} has no SAE {id:?}; {what} {} ({} SAEs in all; `saectl collect --list-releases` lists the releases)",
        release.name,
        near.join(", "),
        release.saes.len()
    )
}

/// Parses the table format (see `releases.txt`'s header).
fn parse(text: &str) -> Result<Vec<Release>> {
    let mut releases: Vec<Release> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = || format!("releases.txt line {}", number + 1);
        if fields[0] == "release" {
            let [_, name, repo, model, format, hook] = fields[..] else {
                bail!("{}: a release line has 6 fields", at());
            };
            let format = match format {
                "gemma-scope" => ReleaseFormat::GemmaScope,
                "saelens" => ReleaseFormat::SaeLens,
                other => bail!("{}: unknown format {other}", at()),
            };
            releases.push(Release {
                name: name.into(),
                repo: repo.into(),
                model: model.into(),
                format,
                hook: hook.into(),
                saes: Vec::new(),
            });
            continue;
        }
        let release = releases
            .last_mut()
            .with_context(|| format!("{}: an SAE before any release", at()))?;
        match fields[..] {
            [id, path] => release.saes.push((id.into(), path.into())),
            [id] => release
                .saes
                .extend(expand(id).into_iter().map(|id| (id.clone(), id))),
            _ => bail!("{}: an SAE line has 1 or 2 fields", at()),
        }
    }
    Ok(releases)
}

/// `a_{1,2}b` → `a_1b`, `a_2b` (one brace group at most).
fn expand(pattern: &str) -> Vec<String> {
    let (Some(open), Some(close)) = (pattern.find('{'), pattern.find('}')) else {
        return vec![pattern.to_string()];
    };
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    pattern[open + 1..close]
        .split(',')
        .map(|choice| format!("{head}{choice}{tail}"))
        .collect()
}

/// The table as `collect --list-releases` prints it: one line per release.
pub fn describe() -> String {
    let mut out =
        String::from("SAEs by published name: --checkpoint RELEASE/SAE_ID (SAELens's names)\n\n");
    for release in releases() {
        let example = &release.saes[0].0;
        out.push_str(&format!(
            "{}  ({} SAEs, {} at {}, model {})\n    e.g. {}/{}\n",
            release.name,
            release.saes.len(),
            match release.format {
                ReleaseFormat::GemmaScope => "params.npz",
                ReleaseFormat::SaeLens => "SAELens folders",
            },
            release.repo,
            release.model,
            release.name,
            example
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses_and_resolves_canonical_gemma_scope() {
        assert!(releases().len() >= 15);
        let sae = lookup("gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical")
            .unwrap()
            .unwrap();
        assert_eq!(
            sae.hub_path,
            "google/gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82/params.npz"
        );
        assert_eq!(sae.hook, "blocks.12.hook_resid_post");
        assert_eq!(sae.model, "google/gemma-2-2b");
        let mlp = lookup("gemma-scope-9b-pt-mlp/layer_20/width_16k/average_l0_17")
            .unwrap()
            .unwrap();
        assert_eq!(mlp.hook, "blocks.20.hook_mlp_out");
        assert_eq!(mlp.model, "google/gemma-2-9b");
        let folder = lookup("gemma-2-2b-res-matryoshka-dc/blocks.7.hook_resid_post")
            .unwrap()
            .unwrap();
        assert_eq!(
            folder.hub_path,
            "chanind/gemma-2-2b-batch-topk-matryoshka-saes-w-32k-l0-40/standard/blocks.7.hook_resid_post"
        );
        assert_eq!(folder.hook, "blocks.7.hook_resid_post");
        // Every SAE of the table resolves to a hook saectl reads (a layer's residual stream
        // or MLP output; `model::HookPoint` parses these, but `sae` may not import `model`).
        for release in releases() {
            for (id, path) in &release.saes {
                let sae = release.resolve(id, path).unwrap();
                let layer = super::super::checkpoint::hook_layer(&sae.hook);
                let kind = sae.hook.rsplit('.').next().unwrap();
                assert!(
                    layer.is_some() && ["hook_resid_post", "hook_mlp_out"].contains(&kind),
                    "{id}: {}",
                    sae.hook
                );
            }
        }
    }

    #[test]
    fn other_specs_pass_through_and_unknown_ids_list_their_neighbours() {
        assert_eq!(lookup("runs/l12").unwrap(), None);
        assert_eq!(
            lookup("google/gemma-scope-2b-pt-res/layer_3").unwrap(),
            None
        );
        assert_eq!(lookup("plain").unwrap(), None);
        let err = lookup("gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_83")
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no SAE"), "{err}");
        assert!(
            err.contains("layer_12/width_16k/average_l0_82"),
            "the neighbours are listed: {err}"
        );
        let err = lookup("gemma-scope-2b-pt-res/nonsense")
            .unwrap_err()
            .to_string();
        assert!(err.contains("look like"), "{err}");
    }

    #[test]
    fn the_format_parses_and_expands() {
        let table = "# c\nrelease r org/repo google/m gemma-scope blocks.{layer}.hook_mlp_out\n\
                     layer_3/w/l0_{1,20}\nlayer_4/w/canonical layer_4/w/l0_9\n\
                     release s org/other google/m saelens {id}\nblocks.1.hook_resid_post f/x\n";
        let parsed = parse(table).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(
            parsed[0].saes,
            vec![
                ("layer_3/w/l0_1".to_string(), "layer_3/w/l0_1".to_string()),
                ("layer_3/w/l0_20".into(), "layer_3/w/l0_20".into()),
                ("layer_4/w/canonical".into(), "layer_4/w/l0_9".into()),
            ]
        );
        let sae = parsed[1]
            .resolve("blocks.1.hook_resid_post", "f/x")
            .unwrap();
        assert_eq!(sae.hub_path, "org/other/f/x");
        assert!(parse("layer_3 x\n").is_err());
        assert!(parse("release r a b weird h\n").is_err());
    }
}
