//! `collector_state.safetensors` (resume and merge): the bytes as a collector state; a state
//! that loads then takes two batches, as a resumed collection does (its stores' floors, the
//! histogram's and the interval strata's, come from the hostile counts and samples), and is
//! written out as a samples folder, as `merge` does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use saectl::collect::{write_samples_folder, Collector, FeatureActivations, TokenBatch};
use saectl::data::TokenDecoder;
use saectl::samples::{SamplesDir, SaveConfig};

struct Ids;

impl TokenDecoder for Ids {
    fn decode(&self, ids: &[u32]) -> String {
        format!("{ids:?}")
    }
}

/// Rows and tokens per row of each batch fed after the restore.
const ROWS: usize = 4;
const SEQ_LEN: usize = 16;
/// Values per token.
const K: usize = 4;

/// Feeds batch `round`: every token fires `K` features spread over the dictionary, with
/// values from below any threshold to far above any kept max, on a few token ids (special
/// ones among them). An ingest may refuse (the error is the answer); it must not panic.
fn feed(collector: &mut Collector, round: usize) {
    let d_sae = collector.d_sae();
    let k = K.min(d_sae);
    let tokens: Vec<u32> = (0..ROWS * SEQ_LEN).map(|t| (t * 5 + round) as u32 % 7).collect();
    let Ok(batch) = TokenBatch::new(&tokens, ROWS, SEQ_LEN, collector.sequences_seen()) else {
        return;
    };
    let offsets: Vec<usize> = (0..=ROWS * SEQ_LEN).map(|t| t * k).collect();
    let mut indices = Vec::new();
    let mut values = Vec::new();
    // Distinct features per token, as an SAE gives: `k` evenly spaced from a moving start.
    let stride = d_sae / k;
    for t in 0..ROWS * SEQ_LEN {
        let start = t * 7919 + round * 31;
        for j in 0..k {
            indices.push(((start + j * stride) % d_sae) as u32);
            values.push([0.0, 0.05, 0.7, 3.5, 1e4][(t + j + round) % 5]);
        }
    }
    let activations = FeatureActivations::Sparse {
        offsets: &offsets,
        indices: &indices,
        values: &values,
        d_sae,
    };
    let _ = collector.ingest(&batch, &activations);
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut collector) = Collector::from_state_bytes(data) else {
        return;
    };
    // Feeding a state of a huge dictionary costs time per feature, not per finding.
    if collector.d_sae() <= 1 << 16 {
        feed(&mut collector, 0);
        feed(&mut collector, 1);
    }
    let dir = saectl_fuzz::empty_folder();
    let _ = write_samples_folder(
        &SamplesDir::new(dir),
        &collector,
        &Ids,
        &SaveConfig::default(),
        Default::default(),
    );
});
