//! Neuronpedia's limits, each with the place that sets it (docs/export.md).

/// Features per `features/batch-N.jsonl.gz`: what Neuronpedia's own exports use
/// (`utils/neuronpedia-utils/neuronpedia_utils/export-data.py`).
pub const FEATURES_PER_FILE: usize = 1024;
/// Lines per file: the importer inserts 65,000 lines per statement (`lib/db/import.ts`); a
/// file within it is one statement.
pub const MAX_LINES_PER_FILE: usize = 65_000;
/// Files per folder: the importer lists a folder with one S3 `ListObjectsV2` call, which
/// returns at most 1,000 keys (`lib/utils/s3.ts`).
pub const MAX_FILES_PER_FOLDER: usize = 999;

/// `POST /api/feature/upload-batch` (`app/api/feature/upload-batch/route.tsx`): features per
/// call, logit tokens per list, tokens per example, characters per explanation, the largest
/// feature index.
pub const API_FEATURES_PER_BATCH: usize = 128;
pub const API_MAX_LOGITS: usize = 20;
pub const API_MAX_TOKENS: usize = 1024;
pub const API_MAX_EXPLANATION_CHARS: usize = 512;
pub const API_MAX_INDEX: u32 = 10_000_000;
/// `POST /api/source-set/new`: characters of the description.
pub const API_MAX_DESCRIPTION_CHARS: usize = 128;
/// `POST /api/model/new`: layers.
pub const API_MAX_LAYERS: usize = 127;
