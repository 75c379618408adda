//! The dashboard's data, encoded: one **index** block (JSON) and one binary **shard** per
//! [`SHARD_SIZE`] features, each gzip-compressed (the page inflates them with the browser's
//! `DecompressionStream`).
//!
//! - The index holds what the list, the filters and the search need for every feature
//!   (counts, max/mean/std, flag bits, top token), the **vocabulary** — each distinct token
//!   id used anywhere, ranked by frequency so common tokens get one-byte codes, with its text
//!   stored once — and the search postings (marked token → features, promoted logit token →
//!   features).
//! - A shard holds the features' pages. Text is stored once per shard: the windows of all its
//!   examples are merged per sequence into a **context pool** of vocabulary codes, and each
//!   example is (pool offset, length, marked index, activation, sequence, position, sparse
//!   per-token activations as (index, u8 of the feature's max)).
//!
//! The byte layout is documented in docs/dashboard.md and read by `assets/dashboard/dashboard.js`.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::bytes::{gzip, gzip_fast, ByteWriter};
use crate::features::model::{Example, FeatureData, FeatureSet, GroupKind};
use crate::features::similar::NeighbourLists;
use crate::util::parallel;

/// Features per shard: a shard is inflated whole when one of its features is shown.
pub const SHARD_SIZE: usize = 128;
/// Version of the data layout, checked by the page.
pub const DATA_FORMAT_VERSION: u32 = 1;

/// The three neighbour lists of every feature (decoder cosine only with a checkpoint).
pub struct Neighbours {
    pub tokens: NeighbourLists,
    pub contexts: NeighbourLists,
    pub decoder: Option<NeighbourLists>,
}

/// Who the dashboard describes, shown in its header and recorded with exported labels.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Provenance {
    pub title: String,
    /// The summary's `source` (model, checkpoint, dataset, …).
    pub source: serde_json::Map<String, serde_json::Value>,
    /// What labels are kept under in the browser: the SAE's identity, so labels survive a
    /// rebuilt dashboard of the same SAE.
    pub label_key: String,
}

/// The encoded blocks, gzip-compressed, and the raw sizes (for the size report).
pub struct Encoded {
    pub index: Vec<u8>,
    pub shards: Vec<Vec<u8>>,
    pub raw_bytes: usize,
    /// The prompt view's block (`--prompts`), gzip-compressed JSON.
    pub prompts: Option<Vec<u8>>,
}

/// Token ids ↔ dashboard codes, most frequent first. Token ids are dense (below the
/// tokenizer's vocabulary size), so vectors indexed by id beat hashing the ~14M tokens of a
/// 16k-feature dashboard.
pub(super) struct Vocabulary {
    code_of: Vec<u32>,
    pub(super) ids: Vec<u32>,
}

impl Vocabulary {
    fn new(model: &FeatureSet) -> Self {
        let mut counts: Vec<u64> = Vec::new();
        let mut count = |t: u32| {
            let t = t as usize;
            if t >= counts.len() {
                counts.resize(t + 1, 0);
            }
            counts[t] += 1;
        };
        for feature in &model.features {
            for example in feature.groups.iter().flat_map(|g| &g.examples) {
                example.tokens.iter().for_each(|&t| count(t));
            }
            if let Some((top, bottom)) = &feature.logits {
                top.iter().chain(bottom).for_each(|&(t, _)| count(t));
            }
            if let Some(t) = feature.flags.top_token {
                count(t);
            }
        }
        let mut ids: Vec<u32> = (0..counts.len() as u32)
            .filter(|&t| counts[t as usize] > 0)
            .collect();
        ids.sort_by(|&a, &b| counts[b as usize].cmp(&counts[a as usize]).then(a.cmp(&b)));
        let mut code_of = vec![u32::MAX; counts.len()];
        for (code, &t) in ids.iter().enumerate() {
            code_of[t as usize] = code as u32;
        }
        Self { code_of, ids }
    }

    pub(super) fn code(&self, token: u32) -> u32 {
        self.code_of[token as usize]
    }
}

/// Encodes `model` on every core; `texts` decodes token ids one by one.
pub fn encode(
    model: &FeatureSet,
    neighbours: &Neighbours,
    provenance: &Provenance,
    texts: impl Fn(&[u32]) -> Vec<String>,
) -> Encoded {
    encode_on(parallel::cores(), model, neighbours, provenance, texts)
}

/// [`encode`] with `threads` encoding the shards; the bytes do not depend on it.
pub fn encode_on(
    threads: usize,
    model: &FeatureSet,
    neighbours: &Neighbours,
    provenance: &Provenance,
    texts: impl Fn(&[u32]) -> Vec<String>,
) -> Encoded {
    let vocab = Vocabulary::new(model);
    let vocab_texts = texts(&vocab.ids);
    let chunks: Vec<&[FeatureData]> = model.features.chunks(SHARD_SIZE).collect();
    let ((index_raw, index), shards) = std::thread::scope(|scope| {
        // The index is one more independent piece: built beside the shards.
        let index = scope.spawn(|| {
            let mut index = super::index::index(model, provenance, &vocab, vocab_texts);
            index.has_decoder = neighbours.decoder.is_some();
            let json = serde_json::to_vec(&index).expect("the index always serialises");
            (json.len(), gzip(&json))
        });
        let shards: Vec<(usize, Vec<u8>)> = parallel::map(threads, chunks.len(), |s| {
            let raw = shard(chunks[s], s * SHARD_SIZE, neighbours, &vocab);
            (raw.len(), gzip_fast(&raw))
        });
        let index = index
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (index, shards)
    });
    let raw_bytes = index_raw + shards.iter().map(|(raw, _)| raw).sum::<usize>();
    Encoded {
        index,
        shards: shards.into_iter().map(|(_, packed)| packed).collect(),
        raw_bytes,
        prompts: None,
    }
}

/// The prompt view's block: its JSON, gzip-compressed like the index.
pub fn prompts_block(prompts: &super::prompts::PromptsData) -> Vec<u8> {
    gzip(&serde_json::to_vec(prompts).expect("the prompts always serialise"))
}

/// Windows of one shard merged per sequence: where each example's tokens start in the pool.
struct Pool {
    codes: Vec<u32>,
    /// (sequence, first position) of each example window → pool offset.
    offset_of: HashMap<(u64, u32), usize>,
}

impl Pool {
    fn new(features: &[FeatureData], vocab: &Vocabulary) -> Self {
        let mut by_sequence: BTreeMap<u64, Vec<&Example>> = BTreeMap::new();
        for example in features
            .iter()
            .flat_map(|f| f.groups.iter().flat_map(|g| &g.examples))
        {
            by_sequence
                .entry(example.sequence)
                .or_default()
                .push(example);
        }
        let mut pool = Self {
            codes: Vec::new(),
            offset_of: HashMap::new(),
        };
        for (sequence, mut examples) in by_sequence {
            examples.sort_by_key(|e| (e.start(), std::cmp::Reverse(e.tokens.len())));
            // The current span: its first position and where it starts in the pool.
            let mut span: Option<(u32, usize)> = None;
            for example in examples {
                let start = example.start();
                let end = start + example.tokens.len() as u32;
                if let Some((span_start, span_offset)) = span {
                    let span_end = span_start + (pool.codes.len() - span_offset) as u32;
                    if start <= span_end && pool.agrees(span_offset, span_start, example, vocab) {
                        for &t in &example.tokens[(span_end.min(end) - start) as usize..] {
                            pool.codes.push(vocab.code(t));
                        }
                        pool.offset_of.insert(
                            (sequence, start),
                            span_offset + (start - span_start) as usize,
                        );
                        continue;
                    }
                }
                span = Some((start, pool.codes.len()));
                pool.offset_of.insert((sequence, start), pool.codes.len());
                pool.codes
                    .extend(example.tokens.iter().map(|&t| vocab.code(t)));
            }
        }
        pool
    }

    /// Whether the example's tokens equal the span's where they overlap (they always do for
    /// one collection; a mismatch starts a new span rather than show wrong text).
    fn agrees(
        &self,
        span_offset: usize,
        span_start: u32,
        example: &Example,
        vocab: &Vocabulary,
    ) -> bool {
        let from = span_offset + (example.start() - span_start) as usize;
        self.codes[from..]
            .iter()
            .zip(&example.tokens)
            .all(|(&code, &t)| code == vocab.code(t))
    }
}

fn shard(
    features: &[FeatureData],
    first: usize,
    neighbours: &Neighbours,
    vocab: &Vocabulary,
) -> Vec<u8> {
    let pool = Pool::new(features, vocab);
    let mut w = ByteWriter::default();
    w.usize(pool.codes.len());
    for &code in &pool.codes {
        w.varint(u64::from(code));
    }
    // Each feature's record is prefixed by its length so the page decodes only the one shown.
    let records: Vec<Vec<u8>> = features
        .iter()
        .enumerate()
        .map(|(i, feature)| {
            let f = first + i;
            let mut record = ByteWriter::default();
            feature_page(&mut record, feature, &pool, vocab);
            for list in [
                Some(&neighbours.tokens[f]),
                Some(&neighbours.contexts[f]),
                neighbours.decoder.as_ref().map(|d| &d[f]),
            ] {
                let list = list.map_or(&[][..], Vec::as_slice);
                record.usize(list.len());
                for &(g, score) in list {
                    record.varint(u64::from(g));
                    record.f32(score);
                }
            }
            record.bytes
        })
        .collect();
    w.usize(records.len());
    for record in &records {
        w.usize(record.len());
    }
    for record in records {
        w.bytes.extend(record);
    }
    w.bytes
}

fn feature_page(w: &mut ByteWriter, feature: &FeatureData, pool: &Pool, vocab: &Vocabulary) {
    let flags = &feature.flags;
    w.f32(flags.top_token_share as f32);
    w.varint(flags.token_sample_size);
    w.f32(flags.special_token_share as f32);
    w.varint(flags.top_position_bin.map_or(0, |b| u64::from(b) + 1));
    w.f32(flags.top_position_share as f32);
    w.varint(u64::from(feature.histogram_first_bin));
    w.usize(feature.histogram.len());
    for &count in &feature.histogram {
        w.varint(count);
    }
    let max = feature.statistics.max_activation as f32;
    w.usize(feature.groups.len());
    for group in &feature.groups {
        match &group.kind {
            GroupKind::Top => w.u8(0),
            GroupKind::Interval {
                index,
                lower,
                upper,
                count,
            } => {
                w.u8(1);
                w.varint(u64::from(*index));
                w.opt_f32(*lower);
                w.opt_f32(*upper);
                w.varint(*count);
            }
        }
        w.usize(group.examples.len());
        for example in &group.examples {
            w.usize(pool.offset_of[&(example.sequence, example.start())]);
            w.usize(example.tokens.len());
            w.varint(u64::from(example.at));
            w.f32(example.activation);
            w.varint(example.sequence);
            w.varint(u64::from(example.position));
            token_activations(w, example, max);
        }
    }
    let (top, bottom) = feature
        .logits
        .as_ref()
        .map_or((&[][..], &[][..]), |(t, b)| (t.as_slice(), b.as_slice()));
    for list in [top, bottom] {
        w.usize(list.len());
        for &(t, value) in list {
            w.varint(u64::from(vocab.code(t)));
            w.f32(value);
        }
    }
}

/// `0` when absent, else `n + 1` then `n` pairs (index, value as a step of max/255; at least 1
/// so a non-zero activation never shows as zero).
fn token_activations(w: &mut ByteWriter, example: &Example, max: f32) {
    let Some(values) = &example.token_activations else {
        w.u8(0);
        return;
    };
    w.usize(values.len() + 1);
    for &(i, v) in values {
        w.varint(u64::from(i));
        let step = if max > 0.0 {
            (v / max * 255.0).round().clamp(1.0, 255.0)
        } else {
            1.0
        };
        w.u8(step as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::model::{CollectionFacts, ExampleGroup};
    use crate::samples::format::{FeatureFlags, FeatureStatistics};
    use crate::samples::FlagConfig;

    fn example(sequence: u64, position: u32, at: u32, tokens: &[u32]) -> Example {
        Example {
            sequence,
            position,
            tokens: tokens.to_vec(),
            at,
            activation: 1.0,
            token_activations: None,
        }
    }

    fn feature(examples: Vec<Example>) -> FeatureData {
        FeatureData {
            statistics: FeatureStatistics {
                feature_idx: 0,
                max_activation: 1.0,
                mean_activation: 1.0,
                num_samples: 0,
                activation_count: 0,
                all_time_max: None,
                min_activation: Some(0.0),
                std_activation: Some(0.0),
                firing_count: 0,
                density: 0.0,
                activation_sum: Default::default(),
                activation_sum_squares: Default::default(),
            },
            flags: FeatureFlags::default(),
            histogram_first_bin: 0,
            histogram: Vec::new(),
            groups: vec![ExampleGroup {
                kind: GroupKind::Top,
                examples,
            }],
            logits: None,
        }
    }

    #[test]
    fn the_blocks_do_not_depend_on_the_thread_count() {
        use crate::dashboard::synthetic::{write_synthetic_folder, SyntheticSpec};
        use crate::features::model::ExampleCounts;
        use crate::features::similar;
        // 700 features: six shards, the last one short.
        let dir = tempfile::tempdir().unwrap();
        let spec = SyntheticSpec {
            d_sae: 700,
            vocab: 500,
            tokens: 20_000,
            seq_len: 64,
            seed: 5,
        };
        let collector = write_synthetic_folder(dir.path(), spec).unwrap();
        let model = FeatureSet::from_collector(
            &collector,
            &Default::default(),
            ExampleCounts { top: 20 },
            None,
        );
        assert!(model.example_count() > 5_000);
        let neighbours = Neighbours {
            tokens: similar::token_overlap(&model),
            contexts: similar::context_overlap(&model, 21),
            decoder: None,
        };
        let texts = |ids: &[u32]| ids.iter().map(|t| format!("w{t}")).collect();
        let serial = encode_on(1, &model, &neighbours, &Provenance::default(), texts);
        assert_eq!(serial.shards.len(), 700usize.div_ceil(SHARD_SIZE));
        for threads in [2, 5] {
            let parallel = encode_on(threads, &model, &neighbours, &Provenance::default(), texts);
            assert_eq!(parallel.index, serial.index, "{threads} threads");
            assert_eq!(parallel.shards, serial.shards, "{threads} threads");
            assert_eq!(parallel.raw_bytes, serial.raw_bytes);
        }
    }

    #[test]
    fn the_pool_stores_overlapping_windows_once_and_every_example_reads_back() {
        // Sequence 5: tokens 10.. at positions 0..; windows [2,6), [4,9), [8,10) overlap or
        // touch; sequence 6 has its own span; a window that disagrees starts a new span.
        let seq5: Vec<u32> = (10..20).collect();
        let features = vec![
            feature(vec![
                example(5, 3, 1, &seq5[2..6]),
                example(5, 6, 2, &seq5[4..9]),
            ]),
            feature(vec![
                example(5, 9, 1, &seq5[8..10]),
                example(6, 0, 0, &[7, 8]),
                example(6, 1, 0, &[99]),
            ]),
        ];
        let model = FeatureSet {
            facts: CollectionFacts {
                d_sae: 2,
                tokens_seen: 0,
                sequences_seen: 0,
                activation_threshold: 0.1,
                context_size: 20,
                flags: FlagConfig::default(),
            },
            features: features.clone(),
        };
        let vocab = Vocabulary::new(&model);
        let pool = Pool::new(&features, &vocab);
        // seq 5 positions 2..10 (8 tokens) + seq 6: [7, 8] and the disagreeing [99].
        assert_eq!(pool.codes.len(), 8 + 2 + 1);
        for e in features.iter().flat_map(|f| &f.groups[0].examples) {
            let at = pool.offset_of[&(e.sequence, e.start())];
            let read: Vec<u32> = pool.codes[at..at + e.tokens.len()]
                .iter()
                .map(|&c| vocab.ids[c as usize])
                .collect();
            assert_eq!(read, e.tokens, "{e:?}");
        }
    }
}
