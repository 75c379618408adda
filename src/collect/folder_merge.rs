//! `saectl merge`: samples folders collected on disjoint shards of a corpus become the folder
//! one run over the whole corpus writes.
//!
//! A folder's feature files hold only its top features' best samples, so they cannot be
//! merged; the collector state beside them (`collector_state.safetensors`) holds everything,
//! and [`Collector::merge`] of disjoint shards is exact. So a merge loads every state, checks
//! that the folders are shards of one collection (same SAE width, collector and save
//! settings, same recorded source apart from the shard; disjoint sequence ranges), merges,
//! and writes the folder from the merged state exactly as `collect` writes its own, with the
//! shards' `logit_effects.json` (which depends on the SAE and model only) carried over. The new
//! folder is assembled under a temporary name beside `--out` and renamed into place, so a
//! failed merge never leaves half a folder.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::collector::Collector;
use super::folder_write::write_samples_folder;
use super::ranges::SequenceRanges;
use crate::data::TokenDecoder;
use crate::samples::{
    CollectionSettings, CollectionSource, LogitEffects, SamplesDir, SaveConfig,
    LOGIT_EFFECTS_FILE_NAME, STATE_FILE_NAME, SUMMARY_FILE_NAME,
};
use crate::util::atomic::{sync_parent, umask_mode, write_atomic, TEMP_PREFIX};

/// One input folder, loaded.
struct ShardFolder {
    dir: PathBuf,
    collector: Collector,
    settings: CollectionSettings,
    source: CollectionSource,
    /// `logit_effects.json`, parsed and as bytes.
    logit_effects: Option<(LogitEffects, Vec<u8>)>,
}

/// The merged collection, ready to be written.
pub struct MergedFolders {
    pub collector: Collector,
    pub save: SaveConfig,
    /// The shards' common source, without the shard.
    pub source: CollectionSource,
    /// Sequences inside the merged span that no input covered (a shard left out?).
    pub gaps: Vec<std::ops::Range<u64>>,
    /// `logit_effects.json` to carry (the shards' files agree), as bytes.
    pub logit_effects: Option<Vec<u8>>,
    /// Things the user should know (the CLI prints them).
    pub notes: Vec<String>,
}

/// Loads and checks every folder in `dirs` and merges their collectors.
pub fn merge_folders(dirs: &[PathBuf]) -> Result<MergedFolders> {
    if dirs.len() < 2 {
        bail!("give at least two samples folders to merge");
    }
    let folders = dirs
        .iter()
        .map(|dir| load_shard_folder(dir))
        .collect::<Result<Vec<_>>>()?;
    let first = &folders[0];
    for other in &folders[1..] {
        check_compatible(first, other)?;
    }
    check_disjoint(&folders)?;
    let mut collector = first.collector.clone();
    for other in &folders[1..] {
        collector
            .merge(&other.collector)
            .with_context(|| format!("cannot merge {}", other.dir.display()))?;
    }
    let gaps = collector.sequence_ranges().gaps();
    let (logit_effects, notes) = carried_logit_effects(&folders)?;
    Ok(MergedFolders {
        // The shards' save settings (checked equal above), so the folder and its flags are
        // the ones the single run writes.
        save: first.settings.save.clone(),
        source: first.source.without_shard(),
        collector,
        gaps,
        logit_effects,
        notes,
    })
}

impl MergedFolders {
    /// The tokenizer the collection used, from its recorded source
    /// ([`super::recorded_tokenizer`]).
    pub fn recorded_tokenizer(&self) -> Result<PathBuf> {
        super::recorded_tokenizer(&self.source)
    }
}

/// The logit effects of the shards that have them, checked to agree; the copy of the shard
/// earliest in the corpus is kept, so the result does not depend on the argument order.
fn carried_logit_effects(folders: &[ShardFolder]) -> Result<(Option<Vec<u8>>, Vec<String>)> {
    let mut with: Vec<&ShardFolder> = folders
        .iter()
        .filter(|f| f.logit_effects.is_some())
        .collect();
    let Some(&first) = with.first() else {
        return Ok((None, Vec::new()));
    };
    let (reference, _) = first.logit_effects.as_ref().expect("filtered");
    for other in &with[1..] {
        let (effects, _) = other.logit_effects.as_ref().expect("filtered");
        reference.check_agrees(effects).with_context(|| {
            format!(
                "the {LOGIT_EFFECTS_FILE_NAME} of {} and {} disagree (different models?)",
                first.dir.display(),
                other.dir.display()
            )
        })?;
    }
    let mut notes = Vec::new();
    if with.len() < folders.len() {
        notes.push(format!(
            "{} of {} folders have no {LOGIT_EFFECTS_FILE_NAME} (collected without --model); \
             the others' is kept",
            folders.len() - with.len(),
            folders.len()
        ));
    }
    with.sort_by_key(|f| {
        let ranges = f.collector.sequence_ranges().as_slice();
        ranges.first().map_or(u64::MAX, |r| r.start)
    });
    let bytes = with[0]
        .logit_effects
        .as_ref()
        .map(|(_, bytes)| bytes.clone());
    Ok((bytes, notes))
}

/// Writes `merged` to `out`, which must not exist or be an empty folder: the folder is built
/// beside it and renamed into place.
pub fn write_merged(out: &Path, merged: &MergedFolders, decoder: &dyn TokenDecoder) -> Result<()> {
    check_out(out)?;
    let parent = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent)
        .with_context(|| format!("failed to create {}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}merge-"))
        .permissions(umask_mode(true))
        .tempdir_in(parent)
        .with_context(|| {
            format!(
                "failed to create a temporary folder in {}",
                parent.display()
            )
        })?;
    let staged = SamplesDir::new(staging.path());
    merged.collector.save_state(&staged.state())?;
    write_samples_folder(
        &staged,
        &merged.collector,
        decoder,
        &merged.save,
        merged.source.clone(),
    )?;
    if let Some(bytes) = &merged.logit_effects {
        write_atomic(&staged.logit_effects(), bytes)?;
    }
    // An empty `out` is replaced (rename(2) allows it); anything else was refused above.
    let staged = staging.keep();
    std::fs::rename(&staged, out).with_context(|| {
        // Leave nothing behind on failure.
        let _ = std::fs::remove_dir_all(&staged);
        format!(
            "failed to move the merged folder into place at {}",
            out.display()
        )
    })?;
    // The files were synced in the staging folder; the folder's new name needs its parent's.
    sync_parent(out)
}

fn check_out(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        bail!("--out {} exists and is not a folder", out.display());
    }
    let mut entries =
        std::fs::read_dir(out).with_context(|| format!("failed to list {}", out.display()))?;
    if entries.next().is_some() {
        bail!(
            "--out {} is not empty: merge writes a new folder (remove it, or choose another)",
            out.display()
        );
    }
    Ok(())
}

fn load_shard_folder(dir: &Path) -> Result<ShardFolder> {
    if !dir.is_dir() {
        bail!("{} is not a samples folder (no such folder)", dir.display());
    }
    let folder = SamplesDir::new(dir);
    let state = folder.state();
    if !state.is_file() {
        bail!(
            "{} has no {STATE_FILE_NAME}: only folders written by `saectl collect` can be merged \
             (their feature files alone hold too little)",
            dir.display()
        );
    }
    let summary = folder.read_summary()?.with_context(|| {
        format!(
            "{} has a collector state but no collection_summary.json",
            dir.display()
        )
    })?;
    let settings = summary.settings.clone().with_context(|| {
        format!(
            "{}: the collection summary records no settings",
            dir.display()
        )
    })?;
    let collector = Collector::load_state(&state)?;
    if summary.d_sae != collector.d_sae() as u64
        || summary.sequences_seen != collector.sequences_seen()
    {
        bail!(
            "{}: {SUMMARY_FILE_NAME} does not match {STATE_FILE_NAME} (a write was interrupted?)",
            dir.display()
        );
    }
    let logit_effects = match folder.read_logit_effects()? {
        Some(effects) => {
            let path = folder.logit_effects();
            let bytes = std::fs::read(&path)
                .with_context(|| format!("failed to read {}", path.display()))?;
            Some((effects, bytes))
        }
        None => None,
    };
    Ok(ShardFolder {
        dir: dir.to_path_buf(),
        collector,
        settings,
        source: summary.source,
        logit_effects,
    })
}

/// The same SAE width, settings and source (shard keys aside), or an error naming the first
/// difference.
fn check_compatible(a: &ShardFolder, b: &ShardFolder) -> Result<()> {
    let names = || format!("{} and {}", a.dir.display(), b.dir.display());
    if a.collector.d_sae() != b.collector.d_sae() {
        bail!(
            "{} come from SAEs of different widths (d_sae {} and {})",
            names(),
            a.collector.d_sae(),
            b.collector.d_sae()
        );
    }
    if a.settings != b.settings {
        bail!(
            "{} were collected with different settings: {}",
            names(),
            settings_difference(&a.settings, &b.settings)
        );
    }
    if a.collector.special_tokens() != b.collector.special_tokens() {
        bail!(
            "{} skip different special tokens (different tokenizers?)",
            names()
        );
    }
    let difference = a
        .source
        .without_shard()
        .first_difference(&b.source.without_shard());
    if let Some((key, va, vb)) = difference {
        bail!(
            "{} were collected from different sources: `{key}` is {va} and {vb}",
            names()
        );
    }
    Ok(())
}

/// `max_samples_per_feature 100 vs 50` for the first differing setting.
fn settings_difference(a: &CollectionSettings, b: &CollectionSettings) -> String {
    let (ja, jb) = (serde_json::to_value(a), serde_json::to_value(b));
    if let (Ok(serde_json::Value::Object(ja)), Ok(serde_json::Value::Object(jb))) = (ja, jb) {
        for (key, va) in &ja {
            if jb.get(key) != Some(va) {
                let vb = jb.get(key).map_or("nothing".into(), |v| v.to_string());
                return format!("{key} {va} vs {vb}");
            }
        }
    }
    format!("{a:?} vs {b:?}")
}

/// Every pair of folders covers disjoint sequences (checked before merging, to name them).
fn check_disjoint(folders: &[ShardFolder]) -> Result<()> {
    for (i, a) in folders.iter().enumerate() {
        for b in &folders[i + 1..] {
            let (ra, rb): (&SequenceRanges, &SequenceRanges) =
                (a.collector.sequence_ranges(), b.collector.sequence_ranges());
            if let Some((x, y)) = ra.first_overlap(rb) {
                bail!(
                    "{} (sequences {}..{}) and {} (sequences {}..{}) overlap: shards must cover \
                     disjoint parts of the corpus (the same folder twice, or two runs with \
                     different --shard/--num-tokens?)",
                    a.dir.display(),
                    x.start,
                    x.end,
                    b.dir.display(),
                    y.start,
                    y.end
                );
            }
        }
    }
    Ok(())
}
