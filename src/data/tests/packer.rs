//! Packing rules on hand-written ids, and a randomized comparison with a direct
//! transcription of the original's `get_batch_tokens` loop.

use crate::data::packer::Packer;
use crate::data::{BatchEnd, DocumentOrigin, Locator, PackConfig, WindowBatch};

const BOS: u32 = 2;

fn origin(row: u64) -> DocumentOrigin {
    DocumentOrigin {
        file: "t.jsonl".into(),
        locator: Locator::Line(row + 1),
    }
}

/// Packs `documents` to the end and returns every batch.
fn pack(config: PackConfig, documents: &[Vec<u32>]) -> (Vec<WindowBatch>, Packer) {
    let mut packer = Packer::new(config, Some(BOS)).unwrap();
    let mut batches = Vec::new();
    for (index, ids) in documents.iter().enumerate() {
        if packer.budget_reached() {
            break;
        }
        packer.push_document(index as u64, &origin(index as u64), ids.clone());
        batches.extend(std::iter::from_fn(|| packer.pop_batch()));
    }
    packer.finish();
    batches.extend(std::iter::from_fn(|| packer.pop_batch()));
    (batches, packer)
}

fn rows(batches: &[WindowBatch]) -> Vec<Vec<u32>> {
    batches
        .iter()
        .flat_map(|b| (0..b.rows).map(|r| b.row(r).to_vec()))
        .collect()
}

/// The worked example of docs/data.md §4: A, B, an empty D, C; seq_len 4, batch 2.
const EXAMPLE: [&[u32]; 4] = [&[10, 11, 12], &[20, 21], &[], &[30, 31, 32, 33, 34]];

fn example() -> Vec<Vec<u32>> {
    EXAMPLE.iter().map(|d| d.to_vec()).collect()
}

#[test]
fn one_bos_per_document_and_windows_cross_documents() {
    let (batches, packer) = pack(PackConfig::new(2, 4), &example());
    assert_eq!(
        rows(&batches),
        [[2, 10, 11, 12], [2, 20, 21, 2], [30, 31, 32, 33]]
    );
    assert_eq!((batches[0].rows, batches[1].rows), (2, 1));
    assert_eq!(
        (batches[0].first_sequence, batches[1].first_sequence),
        (0, 2)
    );
    let starts: Vec<_> = batches
        .iter()
        .flat_map(|b| &b.origins)
        .map(|o| (o.document, o.token_offset, o.documents))
        .collect();
    assert_eq!(starts, [(0, 0, 1), (1, 0, 2), (3, 1, 1)]);
    assert_eq!(batches[1].origins[0].origin.to_string(), "t.jsonl:4");
    let counts = packer.counts();
    assert_eq!((counts.documents_read, counts.documents_empty), (4, 1));
    assert_eq!((counts.tokens_read, counts.tokens_packed), (13, 12));
    assert_eq!(counts.tokens_unused, 1);
    assert_eq!((counts.windows, counts.batches), (3, 2));
}

#[test]
fn worked_example_with_dropped_tails() {
    let mut config = PackConfig::new(2, 4);
    config.batch_end = BatchEnd::DropDocumentTail;
    let (batches, packer) = pack(config, &example());
    assert_eq!(rows(&batches), [[2, 10, 11, 12], [2, 20, 21, 2]]);
    let counts = packer.counts();
    assert_eq!(
        (counts.tokens_dropped, counts.windows, counts.batches),
        (5, 2, 1)
    );
}

#[test]
fn empty_documents_are_counted_not_packed() {
    let docs = [vec![], vec![10], vec![], vec![11, 12]];
    let (batches, packer) = pack(PackConfig::new(1, 5), &docs);
    assert_eq!(rows(&batches), [[2, 10, 2, 11, 12]]);
    assert_eq!(packer.counts().documents_empty, 2);
    assert_eq!(packer.counts().documents_read, 4);
}

#[test]
fn dropped_tails_restart_each_batch_on_a_document() {
    let docs = [vec![10, 11, 12, 13, 14], vec![20, 21]];
    let mut config = PackConfig::new(1, 3);
    let (carried, _) = pack(config.clone(), &docs);
    assert_eq!(rows(&carried), [[2, 10, 11], [12, 13, 14], [2, 20, 21]]);
    config.batch_end = BatchEnd::DropDocumentTail;
    let (dropped, packer) = pack(config, &docs);
    assert_eq!(rows(&dropped), [[2, 10, 11], [2, 20, 21]]);
    assert_eq!(packer.counts().tokens_dropped, 3);
}

#[test]
fn the_token_budget_stops_after_whole_windows() {
    let mut config = PackConfig::new(4, 4);
    config.num_tokens = Some(9); // ceil(9 / 4) = 3 windows
    let docs = [(0..20).collect::<Vec<u32>>(), vec![99]];
    let (batches, packer) = pack(config, &docs);
    assert_eq!(rows(&batches).len(), 3);
    assert!(packer.budget_reached());
    let counts = packer.counts();
    assert_eq!(counts.documents_read, 1, "the budget stops reading");
    assert_eq!(counts.tokens_unused, 21 - 12);
}

#[test]
fn long_documents_are_truncated_like_the_original() {
    let mut config = PackConfig::new(8, 2);
    config.max_document_tokens = Some(3);
    let (batches, packer) = pack(config, &[vec![10, 11, 12, 13], vec![20]]);
    assert_eq!(rows(&batches), [[2, 10], [11, 2]]);
    assert_eq!(packer.counts().tokens_unused, 1);
    let counts = packer.counts();
    assert_eq!(
        (counts.documents_truncated, counts.tokens_truncated),
        (1, 2)
    );
}

#[test]
fn resuming_gives_the_rest_of_the_same_stream() {
    let docs: Vec<Vec<u32>> = (0..20)
        .map(|d| (0..(d % 7 + 1)).map(|t| 100 * d + t).collect())
        .collect();
    let (full, _) = pack(PackConfig::new(3, 4), &docs);
    let mut config = PackConfig::new(3, 4);
    config.start_window = 4;
    let (resumed, packer) = pack(config, &docs);
    assert_eq!(rows(&resumed), rows(&full)[4..]);
    assert_eq!(resumed[0].first_sequence, 4);
    // What the collector's `TokenBatch::new` checks: ids fill [rows, seq_len] exactly.
    let batch = &resumed[0];
    assert_eq!((batch.first_sequence, batch.rows), (4, 3));
    assert_eq!(batch.tokens.len(), batch.rows * batch.seq_len);
    assert_eq!(batch.row(1), &rows(&full)[5][..]);
    assert_eq!(resumed[0].rows, 3, "batches restart at the resume point");
    assert_eq!(packer.counts().windows_skipped, 4);
    let mut config = PackConfig::new(3, 4);
    config.batch_end = BatchEnd::DropDocumentTail;
    config.start_window = 4;
    assert!(Packer::new(config, None).is_err());
}

/// The original: whole documents (BOS + ids) appended until a batch is full, then cut.
fn original_batches(docs: &[Vec<u32>], batch: usize, seq_len: usize) -> Vec<Vec<u32>> {
    let mut docs = docs.iter().filter(|d| !d.is_empty());
    let mut out = Vec::new();
    'batches: loop {
        let mut tokens = Vec::new();
        while tokens.len() < batch * seq_len {
            let Some(doc) = docs.next() else {
                break 'batches;
            };
            tokens.push(BOS);
            tokens.extend(doc);
        }
        tokens.truncate(batch * seq_len);
        out.extend(tokens.chunks(seq_len).map(<[u32]>::to_vec));
    }
    out
}

#[test]
fn matches_the_original_and_keeps_every_token_accounted_for() {
    let mut state = 0x2545_f491_u64;
    let mut random = |n: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    for case in 0..200 {
        let docs: Vec<Vec<u32>> = (0..random(30))
            .map(|d| (0..random(12)).map(|t| (d * 100 + t) as u32 + 10).collect())
            .collect();
        let (batch, seq_len) = (1 + random(4) as usize, 1 + random(6) as usize);
        let mut config = PackConfig::new(batch, seq_len);
        config.batch_end = BatchEnd::DropDocumentTail;
        let (batches, packer) = pack(config.clone(), &docs);
        let expected = original_batches(&docs, batch, seq_len);
        // The original stops at the last full batch; saectl also emits the full rows after it.
        assert_eq!(
            rows(&batches)[..expected.len()],
            expected[..],
            "case {case}"
        );
        let c = packer.counts();
        let accounted = c.tokens_packed
            + c.tokens_skipped
            + c.tokens_truncated
            + c.tokens_dropped
            + c.tokens_unused
            + c.tokens_pending;
        assert_eq!(c.tokens_read, accounted, "case {case}");
        config.batch_end = BatchEnd::Carry;
        let (carried, _) = pack(config, &docs);
        let stream: Vec<u32> = docs
            .iter()
            .filter(|d| !d.is_empty())
            .flat_map(|d| std::iter::once(BOS).chain(d.iter().copied()))
            .collect();
        let full: Vec<Vec<u32>> = stream.chunks_exact(seq_len).map(<[u32]>::to_vec).collect();
        assert_eq!(rows(&carried), full, "case {case}");
    }
}
