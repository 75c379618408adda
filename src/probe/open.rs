//! Opening a [`Probe`] from what a user names: the SAE (a folder, a file or a Hub path), the
//! hook it reads (or the one its checkpoint names), the model and the device. `inspect`,
//! `steer` and the dashboard's prompt view all open their probe here, so the three agree on
//! which hook, which tokenizer and which layers are loaded.

use anyhow::{bail, Context, Result};

use super::Probe;
use crate::data::{Bos, DocumentTokenizer};
use crate::hub::HubSettings;
use crate::model::{resolve_device, DeviceChoice, HookPoint, ModelSpec};
use crate::sae::hub_path::resolve_checkpoint;
use crate::sae::import::load_any;

/// What to open.
#[derive(Clone, Debug)]
pub struct ProbeSpec {
    /// The SAE, as `--checkpoint` takes it.
    pub checkpoint: String,
    /// The hook to read the SAE at; `None`: the one its checkpoint names.
    pub hook: Option<String>,
    pub model: ModelSpec,
    pub device: DeviceChoice,
    /// Load the whole model with its head (generation) instead of only the layers up to the
    /// hook.
    pub whole: bool,
}

/// An opened probe and the notes a user should read (device fallback, a hook other than the
/// SAE's own).
pub struct Opened {
    pub probe: Probe,
    pub notes: Vec<String>,
}

/// Loads the SAE, then the model, and checks that they fit.
pub fn open(spec: &ProbeSpec) -> Result<Opened> {
    let hub = HubSettings::from_env();
    let path = resolve_checkpoint(&spec.checkpoint, &hub)?;
    let resolved = resolve_device(spec.device)?;
    let sae = load_any(&path, &resolved.device)?;
    let trained_at = sae.config().hook_name.clone();
    let hook = match (&spec.hook, &trained_at) {
        (Some(hook), _) | (None, Some(hook)) => hook.clone(),
        (None, None) => bail!("the checkpoint names no hook point; give one with --hook"),
    };
    let hook: HookPoint = hook.parse()?;
    let opened = spec.model.locate(std::slice::from_ref(&hook))?.load(
        (!spec.whole).then(|| hook.layers_needed()),
        &resolved.device,
    )?;
    let tokenizer = DocumentTokenizer::from_file(&opened.tokenizer, Bos::FromTokenizer)
        .with_context(|| format!("cannot use the tokenizer of {}", spec.model.model))?;
    let mut notes = Vec::new();
    if let (Some(asked), Some(trained)) = (&spec.hook, &trained_at) {
        if asked != trained {
            notes.push(format!(
                "the SAE was trained at {trained}; reading it at {asked} as --hook asks"
            ));
        }
    }
    notes.extend(resolved.note);
    Ok(Opened {
        probe: Probe::new(opened.model, sae, tokenizer, hook)?,
        notes,
    })
}
