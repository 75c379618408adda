//! Text sources: resolving `--dataset` to an ordered list of files, and streaming their
//! documents lazily, file after file.
//!
//! An existing path is local (a file, or a folder read recursively in sorted order); any
//! other `org/name` is a Hugging Face dataset repo whose shards for one split are listed up
//! front and fetched one at a time as the stream reaches them. Nothing holds more than the
//! current document (or parquet batch) in memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::document::{Document, DocumentOrigin, RawDocument};
use super::files::{list_folder, Format};
use super::jsonl::JsonlReader;
use super::parquet::ParquetReader;
use super::split::{select_shards, ShardSelection};
use super::txt::{TxtDocuments, TxtReader};
use crate::hub::{HubRepo, HubSettings, RepoKind};

/// How to read a source: the `--text-field`, `--txt-documents`, `--split`, `--config`,
/// `--data-files` and `--revision` flags. The last four apply to Hub datasets only. The
/// defaults here are the flags' defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceOptions {
    /// The JSON field or parquet column holding the text.
    pub text_field: String,
    pub txt_documents: TxtDocuments,
    pub split: String,
    pub config: Option<String>,
    /// A glob over repo paths that replaces split and config selection.
    pub data_files: Option<String>,
    pub revision: String,
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            text_field: "text".to_owned(),
            txt_documents: TxtDocuments::default(),
            split: "train".to_owned(),
            config: None,
            data_files: None,
            revision: "main".to_owned(),
        }
    }
}

/// `--dataset` and how to read it, as a run records it (`run.json`'s `text`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextSpec {
    pub dataset: String,
    #[serde(flatten)]
    pub options: SourceOptions,
}

impl TextSpec {
    /// `dataset` read with the default options.
    pub fn new(dataset: &str) -> Self {
        Self {
            dataset: dataset.to_string(),
            options: SourceOptions::default(),
        }
    }
}

/// One file of a source, in reading order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceFile {
    Local(PathBuf),
    /// A path inside the Hub dataset repo.
    Hub(String),
}

/// What a source resolved to, for provenance files (the activation cache's index).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSummary {
    /// `--dataset` as given.
    pub spec: String,
    /// `file`, `folder` or `hub`.
    pub kind: String,
    /// The Hub commit read, for Hub datasets.
    pub commit: Option<String>,
    /// Files in reading order: local paths, or paths inside the repo.
    pub files: Vec<String>,
    pub text_field: String,
    pub txt_documents: TxtDocuments,
}

/// A resolved text source.
#[derive(Clone, Debug)]
pub struct DataSource {
    summary: SourceSummary,
    files: Vec<SourceFile>,
    ignored: Vec<PathBuf>,
    /// The dataset repo pinned to the listed commit, for Hub sources.
    hub: Option<Arc<HubRepo>>,
    text_field: Arc<str>,
    txt_documents: TxtDocuments,
}

impl DataSource {
    /// Resolves `spec`: an existing path is local; otherwise `org/name` is a Hub dataset,
    /// whose files are listed now (online, or from the cache when offline).
    pub fn resolve(spec: &str, options: &SourceOptions, hub: &HubSettings) -> Result<Self> {
        let path = Path::new(spec);
        let mut source = Self {
            summary: SourceSummary {
                spec: spec.to_owned(),
                kind: "file".to_owned(),
                commit: None,
                files: Vec::new(),
                text_field: options.text_field.clone(),
                txt_documents: options.txt_documents,
            },
            files: Vec::new(),
            ignored: Vec::new(),
            hub: None,
            text_field: options.text_field.as_str().into(),
            txt_documents: options.txt_documents,
        };
        if path.is_dir() {
            let listing = list_folder(path)?;
            source.summary.kind = "folder".to_owned();
            source.files = listing.files.into_iter().map(SourceFile::Local).collect();
            source.ignored = listing.ignored;
        } else if path.exists() {
            Format::of_path(path)?;
            source.files = vec![SourceFile::Local(path.to_path_buf())];
        } else if is_hub_id(spec) {
            let (repo, shards) = open_hub_dataset(spec, options, hub)?;
            source.summary.kind = "hub".to_owned();
            // Pinned by `open_hub_dataset`: the revision is the listed commit.
            source.summary.commit = Some(repo.revision().to_owned());
            source.files = shards.into_iter().map(SourceFile::Hub).collect();
            source.hub = Some(Arc::new(repo));
        } else {
            bail!(
                "no such file or folder `{spec}`, and it is not a Hugging Face dataset id \
                 (org/name)"
            );
        }
        source.summary.files = source.files.iter().map(|f| file_label(f, None)).collect();
        Ok(source)
    }

    /// The files to read, in order.
    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    /// Files of a local folder passed over (unsupported types or not regular files).
    pub fn ignored(&self) -> &[PathBuf] {
        &self.ignored
    }

    pub fn summary(&self) -> &SourceSummary {
        &self.summary
    }

    /// A fresh stream of the source's documents, from the first.
    pub fn documents(&self) -> DocumentStream {
        DocumentStream {
            source: self.clone(),
            next_file: 0,
            current: None,
            next_index: 0,
            finished: false,
        }
    }
}

/// Lists the dataset and picks the shards of the requested split. The repo comes back
/// pinned to the listed commit, so every shard is read from the same one.
fn open_hub_dataset(
    spec: &str,
    options: &SourceOptions,
    hub: &HubSettings,
) -> Result<(HubRepo, Vec<String>)> {
    let repo = HubRepo::new(
        hub.clone(),
        RepoKind::Dataset,
        spec,
        Some(&options.revision),
    );
    let listing = repo.list().with_context(|| {
        format!(
            "`{spec}` (revision {}) is not a local file or folder, and it cannot be read as \
             a Hugging Face dataset",
            options.revision
        )
    })?;
    let selection = ShardSelection {
        split: &options.split,
        config: options.config.as_deref(),
        data_files: options.data_files.as_deref(),
    };
    let shards = select_shards(&listing.files, &selection)
        .map_err(|err| err.context(format!("dataset `{spec}` at commit {}", listing.commit)))?;
    Ok((repo.at_commit(&listing.commit), shards))
}

/// `org/name` with the characters the Hub allows.
fn is_hub_id(spec: &str) -> bool {
    let valid = |part: &str| {
        !part.is_empty()
            && !part.starts_with('.')
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(spec.split_once('/'), Some((org, name)) if valid(org) && valid(name))
}

/// How a file is named in origins and messages: the path, or `org/name:path/in/repo`.
fn file_label(file: &SourceFile, hub: Option<&HubRepo>) -> String {
    match (file, hub) {
        (SourceFile::Local(path), _) => path.display().to_string(),
        (SourceFile::Hub(path), Some(repo)) => format!("{}:{path}", repo.repo_id()),
        (SourceFile::Hub(path), None) => path.clone(),
    }
}

type Reader = Box<dyn Iterator<Item = Result<RawDocument>> + Send>;

/// The documents of a [`DataSource`], read lazily; numbered in reading order. After an error
/// the stream ends.
pub struct DocumentStream {
    source: DataSource,
    next_file: usize,
    current: Option<(Reader, Arc<str>)>,
    next_index: u64,
    finished: bool,
}

impl DocumentStream {
    /// Number of files opened so far (the current one included).
    pub fn files_opened(&self) -> usize {
        self.next_file
    }

    /// The file being read, as named in document origins.
    pub fn current_file(&self) -> Option<&str> {
        self.current.as_ref().map(|(_, name)| &**name)
    }

    fn open(&self, file: &SourceFile) -> Result<(Reader, Arc<str>)> {
        let hub = self.source.hub.as_deref();
        let name: Arc<str> = file_label(file, hub).into();
        let path = match (file, hub) {
            (SourceFile::Local(path), _) => path.clone(),
            (SourceFile::Hub(path), Some(repo)) => repo.get(path)?,
            (SourceFile::Hub(path), None) => bail!("{path}: a Hub file without its dataset"),
        };
        let field = self.source.text_field.clone();
        let reader: Reader = match Format::of_path(Path::new(&*name))? {
            Format::Txt => Box::new(TxtReader::open(
                &path,
                name.clone(),
                self.source.txt_documents,
            )?),
            Format::Jsonl => Box::new(JsonlReader::open(&path, name.clone(), field)?),
            Format::Parquet => Box::new(ParquetReader::open(&path, name.clone(), field)?),
        };
        Ok((reader, name))
    }

    fn next_document(&mut self) -> Result<Option<Document>> {
        loop {
            if let Some((reader, name)) = self.current.as_mut() {
                if let Some(raw) = reader.next() {
                    let (locator, text) = raw?;
                    let index = self.next_index;
                    self.next_index += 1;
                    let origin = DocumentOrigin {
                        file: name.clone(),
                        locator,
                    };
                    let text = text.unwrap_or_default();
                    return Ok(Some(Document {
                        index,
                        origin,
                        text,
                    }));
                }
                self.current = None;
            }
            let Some(file) = self.source.files.get(self.next_file) else {
                return Ok(None);
            };
            let file = file.clone();
            self.next_file += 1;
            self.current = Some(self.open(&file)?);
        }
    }
}

impl Iterator for DocumentStream {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let item = self.next_document().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.finished = true;
        }
        item
    }
}
