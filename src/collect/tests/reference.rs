//! Randomized comparison with a brute-force reference.
//!
//! The reference sees the whole stream at once: it lists every activation above the
//! threshold (skipping special tokens when asked), deduplicates per (feature, sequence)
//! greedily best-first when asked, sorts by (activation desc, sequence, position) and cuts at
//! `max_samples_per_feature`. Statistics are recomputed with a two-pass f64 sum. The feature
//! view is recomputed from the same list: histograms by searching the bin edges, interval
//! samples by assigning every activation to its interval for the final max and keeping the
//! `samples_per_interval` lowest priorities of each, the token sample as the 64 lowest
//! `(priority, token)` pairs; every sample's context activations by reading the feature's
//! value on each token of its window. The streaming collector must give exactly the same
//! samples — dense or sparse input, in one batch or many, on one thread or several, in one
//! collector or merged from shards — and the same statistics.

use proptest::prelude::*;

use crate::collect::bins::{
    bin_lower, bin_upper, priority, row_key, ACTIVATION_BINS, POSITION_BIN_STARTS,
};
use crate::collect::{
    fixed_k_offsets, Collector, FeatureActivations, TokenBatch, TOKEN_SAMPLE_SIZE,
};
use crate::samples::CollectorConfig;

const SPECIAL: u32 = 2;

/// A random stream: `rows × seq` tokens and their dense activations.
#[derive(Clone, Debug)]
struct Stream {
    seq: usize,
    d_sae: usize,
    tokens: Vec<u32>,
    values: Vec<f32>,
}

fn stream() -> impl Strategy<Value = Stream> {
    (1usize..7, 1usize..12, 1usize..9).prop_flat_map(|(rows, seq, d_sae)| {
        let n = rows * seq;
        // Few distinct levels so ties are common; zeros dominate as in a real SAE.
        let level = prop_oneof![6 => Just(0.0f32), 1 => Just(0.05), 2 => Just(0.3), 2 => Just(0.7), 1 => Just(1.5), 1 => 0.0f32..2.0];
        (
            Just(seq),
            Just(d_sae),
            proptest::collection::vec(prop_oneof![1 => Just(SPECIAL), 6 => 3u32..40], n),
            proptest::collection::vec(level, n * d_sae),
        )
            .prop_map(|(seq, d_sae, tokens, values)| Stream { seq, d_sae, tokens, values })
    })
}

/// A longer stream where each feature fires in one burst of a few tokens per row: windows
/// hold several activations (deduplication drops some, ranked high or low), between rows
/// where a feature is silent.
fn bursty_stream() -> impl Strategy<Value = Stream> {
    (2usize..10, 2usize..12, 1usize..4).prop_flat_map(|(rows, seq, d_sae)| {
        let n = rows * seq;
        let level =
            prop_oneof![1 => Just(0.3f32), 1 => Just(0.7), 1 => Just(1.5), 2 => 0.0f32..2.0];
        (
            Just(seq),
            Just(d_sae),
            proptest::collection::vec(prop_oneof![1 => Just(SPECIAL), 6 => 3u32..40], n),
            proptest::collection::vec(level, n * d_sae),
            // Per (row, feature): where its burst starts and how long it is.
            proptest::collection::vec((0usize..12, 0usize..4), rows * d_sae),
        )
            .prop_map(|(seq, d_sae, tokens, mut values, bursts)| {
                for (t, row_values) in values.chunks_mut(d_sae).enumerate() {
                    let (row, position) = (t / seq, t % seq);
                    for (feature, value) in row_values.iter_mut().enumerate() {
                        let (start, len) = bursts[row * d_sae + feature];
                        if !(start..start + len).contains(&position) {
                            *value = 0.0;
                        }
                    }
                }
                Stream {
                    seq,
                    d_sae,
                    tokens,
                    values,
                }
            })
    })
}

fn config() -> impl Strategy<Value = CollectorConfig> {
    (
        1usize..5,
        0usize..7,
        prop_oneof![Just(0.1f32), Just(0.0), Just(0.3)],
        any::<bool>(),
        any::<bool>(),
        0usize..5,
        0usize..4,
    )
        .prop_map(
            |(max_samples, context, threshold, exclude, dedup, intervals, per_interval)| {
                CollectorConfig {
                    max_samples_per_feature: max_samples,
                    sample_context_size: context,
                    sample_activation_threshold: threshold,
                    exclude_special_tokens: exclude,
                    dedup_context_windows: dedup,
                    interval_count: intervals,
                    samples_per_interval: per_interval,
                }
            },
        )
}

/// One activation above the threshold on a counted token.
struct Activation {
    value: f32,
    row: usize,
    position: usize,
}

/// Every activation of `feature` above the threshold on counted tokens, in stream order.
fn activations(stream: &Stream, config: &CollectorConfig, feature: usize) -> Vec<Activation> {
    let mut out = Vec::new();
    for (t, &token) in stream.tokens.iter().enumerate() {
        let value = stream.values[t * stream.d_sae + feature];
        let excluded = config.exclude_special_tokens && token == SPECIAL;
        if !excluded && value > config.sample_activation_threshold {
            out.push(Activation {
                value,
                row: t / stream.seq,
                position: t % stream.seq,
            });
        }
    }
    out
}

/// The bin of `v`, found by searching the edges (the collector shifts bits).
fn bin_by_edges(v: f32) -> usize {
    let v = f64::from(v);
    (0..ACTIVATION_BINS)
        .find(|&b| bin_lower(b) <= v && v < bin_upper(b))
        .unwrap()
}

fn reference_histogram(acts: &[Activation]) -> Vec<u64> {
    let mut counts = vec![0; ACTIVATION_BINS];
    acts.iter().for_each(|a| counts[bin_by_edges(a.value)] += 1);
    counts
}

fn reference_positions(acts: &[Activation]) -> Vec<u64> {
    let starts = POSITION_BIN_STARTS;
    let mut counts = vec![0; starts.len()];
    for a in acts {
        let bin = (0..starts.len())
            .rev()
            .find(|&b| a.position as u32 >= starts[b])
            .unwrap();
        counts[bin] += 1;
    }
    counts
}

/// The interval of an activation for the final `max`: that of its bin's middle.
fn reference_interval(value: f32, max: f32, n: usize) -> usize {
    let b = bin_by_edges(value);
    let mid = if b == 0 {
        f64::NEG_INFINITY
    } else if b == ACTIVATION_BINS - 1 {
        f64::INFINITY
    } else {
        (bin_lower(b) + bin_upper(b)) / 2.0
    };
    if (n as f64) * mid < f64::from(max) {
        0
    } else {
        ((n as f64 * mid / f64::from(max)).floor() as usize).min(n - 1)
    }
}

/// A sample as the reference sees it: activation, sequence, position, context tokens, and the
/// feature's firing values on the context (`(index, value)`).
type SampleRef = (f32, u64, u32, Vec<u32>, Vec<(u32, f32)>);

/// Per interval: (activation count, samples).
type IntervalRef = (u64, Vec<SampleRef>);

/// The window of the token at (`row`, `position`) and the feature's firing values on it —
/// every token of the window, special tokens included.
fn window(
    stream: &Stream,
    half: usize,
    feature: usize,
    row: usize,
    position: usize,
) -> (Vec<u32>, Vec<(u32, f32)>) {
    let range = position.saturating_sub(half)..(position + half + 1).min(stream.seq);
    let row_start = row * stream.seq;
    let context = stream.tokens[row_start + range.start..row_start + range.end].to_vec();
    let acts = range
        .clone()
        .filter_map(|p| {
            let v = stream.values[(row_start + p) * stream.d_sae + feature];
            (v > 0.0).then_some(((p - range.start) as u32, v))
        })
        .collect();
    (context, acts)
}

fn reference_intervals(
    stream: &Stream,
    config: &CollectorConfig,
    feature: usize,
    acts: &[Activation],
) -> Vec<IntervalRef> {
    let n = config.interval_count;
    if n == 0 || config.samples_per_interval == 0 || acts.is_empty() {
        return Vec::new();
    }
    let max = acts.iter().map(|a| a.value).fold(f32::MIN, f32::max);
    let half = config.context_half_width();
    (0..n)
        .map(|i| {
            let mut members: Vec<(u64, &Activation)> = acts
                .iter()
                .filter(|a| reference_interval(a.value, max, n) == i)
                .map(|a| {
                    let key = priority(row_key(a.row as u64), a.position as u32, feature as u32);
                    (key, a)
                })
                .collect();
            let count = members.len() as u64;
            members.sort_by_key(|&(key, a)| (key, a.row, a.position));
            members.truncate(config.samples_per_interval);
            let mut samples: Vec<SampleRef> = members
                .iter()
                .map(|(_, a)| {
                    let (context, acts) = window(stream, half, feature, a.row, a.position);
                    (a.value, a.row as u64, a.position as u32, context, acts)
                })
                .collect();
            samples.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
            (count, samples)
        })
        .collect()
}

fn reference_token_sample(stream: &Stream, feature: usize, acts: &[Activation]) -> Vec<(u64, u32)> {
    let mut pairs: Vec<(u64, u32)> = acts
        .iter()
        .map(|a| {
            let key = priority(row_key(a.row as u64), a.position as u32, feature as u32);
            // Ranked by the priority's top 32 bits, then the token.
            (
                key >> 32 << 32,
                stream.tokens[a.row * stream.seq + a.position],
            )
        })
        .collect();
    pairs.sort_unstable();
    pairs.truncate(TOKEN_SAMPLE_SIZE);
    pairs
}

fn collected_intervals(collector: &Collector, feature: usize) -> Vec<IntervalRef> {
    collector
        .intervals(feature as u32)
        .into_iter()
        .map(|view| {
            let samples = view.samples.into_iter().map(sample_ref).collect();
            (view.activation_count, samples)
        })
        .collect()
}

/// The feature view of every feature against the reference.
fn assert_view_matches_reference(collector: &Collector, stream: &Stream, config: &CollectorConfig) {
    for feature in 0..stream.d_sae {
        let acts = activations(stream, config, feature);
        assert_eq!(
            collector.activation_histogram(feature as u32),
            reference_histogram(&acts),
            "histogram of feature {feature}"
        );
        assert_eq!(
            collector
                .position_histogram(feature as u32)
                .unwrap()
                .to_vec(),
            reference_positions(&acts),
            "positions of feature {feature}"
        );
        assert_eq!(
            collected_intervals(collector, feature),
            reference_intervals(stream, config, feature, &acts),
            "intervals of feature {feature}"
        );
        assert_eq!(
            collector.token_sample(feature as u32),
            reference_token_sample(stream, feature, &acts),
            "token sample of feature {feature}"
        );
        let special = (0..stream.tokens.len())
            .filter(|&t| stream.tokens[t] == SPECIAL)
            .filter(|&t| {
                stream.values[t * stream.d_sae + feature] > config.sample_activation_threshold
            })
            .count() as u64;
        assert_eq!(collector.special_activations(feature as u32), special);
    }
}

fn sample_ref(s: crate::collect::StoredSample) -> SampleRef {
    (
        s.activation,
        s.sequence_idx,
        s.position,
        s.context_tokens,
        s.context_activations,
    )
}

/// The reference's top samples of `feature`.
fn reference_top(stream: &Stream, config: &CollectorConfig, feature: usize) -> Vec<SampleRef> {
    let half = config.context_half_width();
    let mut kept = Vec::new();
    for (row, row_tokens) in stream.tokens.chunks(stream.seq).enumerate() {
        let mut candidates: Vec<(f32, usize)> = (0..stream.seq)
            .filter(|&p| !(config.exclude_special_tokens && row_tokens[p] == SPECIAL))
            .map(|p| {
                (
                    stream.values[(row * stream.seq + p) * stream.d_sae + feature],
                    p,
                )
            })
            .filter(|&(v, _)| v > config.sample_activation_threshold)
            .collect();
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut accepted: Vec<usize> = Vec::new();
        for (v, p) in candidates {
            if config.dedup_context_windows && accepted.iter().any(|&q| q.abs_diff(p) <= half) {
                continue;
            }
            accepted.push(p);
            let (context, acts) = window(stream, half, feature, row, p);
            kept.push((v, row as u64, p as u32, context, acts));
        }
    }
    kept.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    kept.truncate(config.max_samples_per_feature);
    kept
}

fn collected_top(collector: &Collector, feature: usize) -> Vec<SampleRef> {
    collector
        .top_samples(feature as u32)
        .into_iter()
        .map(sample_ref)
        .collect()
}

/// Feeds rows `[from, to)` of `stream`, `rows_per_batch` at a time, densely or sparsely.
fn feed(
    collector: &mut Collector,
    stream: &Stream,
    from: usize,
    to: usize,
    rows_per_batch: usize,
    sparse: bool,
) {
    let (seq, d_sae) = (stream.seq, stream.d_sae);
    let mut row = from;
    while row < to {
        let end = (row + rows_per_batch).min(to);
        let tokens = TokenBatch::new(
            &stream.tokens[row * seq..end * seq],
            end - row,
            seq,
            row as u64,
        )
        .unwrap();
        let values = &stream.values[row * seq * d_sae..end * seq * d_sae];
        if sparse {
            // Every feature as an explicit (index, value) pair, zeros included: the collector
            // must ignore zero slots exactly as the dense path does.
            let indices: Vec<u32> = (0..values.len()).map(|i| (i % d_sae) as u32).collect();
            let offsets = fixed_k_offsets((end - row) * seq, d_sae);
            let batch = FeatureActivations::Sparse {
                offsets: &offsets,
                indices: &indices,
                values,
                d_sae,
            };
            collector.ingest(&tokens, &batch).unwrap();
        } else {
            collector
                .ingest(&tokens, &FeatureActivations::Dense { values, d_sae })
                .unwrap();
        }
        row = end;
    }
}

fn assert_matches_reference(collector: &Collector, stream: &Stream, config: &CollectorConfig) {
    let rows = stream.tokens.len() / stream.seq;
    let counted: Vec<usize> = (0..rows * stream.seq)
        .filter(|&t| !(config.exclude_special_tokens && stream.tokens[t] == SPECIAL))
        .collect();
    assert_eq!(collector.tokens_seen(), counted.len() as u64);
    for feature in 0..stream.d_sae {
        assert_eq!(
            collected_top(collector, feature),
            reference_top(stream, config, feature),
            "feature {feature}"
        );
        let above: Vec<f64> = counted
            .iter()
            .map(|&t| stream.values[t * stream.d_sae + feature])
            .filter(|&v| v > config.sample_activation_threshold)
            .map(f64::from)
            .collect();
        let firing = counted
            .iter()
            .filter(|&&t| stream.values[t * stream.d_sae + feature] > 0.0)
            .count();
        let stats = collector.statistics(feature as u32).unwrap();
        assert_eq!(stats.activation_count, above.len() as u64);
        assert_eq!(stats.firing_count, firing as u64);
        if !above.is_empty() {
            let mean = above.iter().sum::<f64>() / above.len() as f64;
            let var = above.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / above.len() as f64;
            assert!((stats.mean_activation - mean).abs() <= 1e-12 * mean.abs().max(1.0));
            assert!((stats.std_activation.unwrap() - var.sqrt()).abs() <= 1e-7);
            assert_eq!(
                stats.max_activation,
                above.iter().cloned().fold(f64::MIN, f64::max)
            );
            assert_eq!(
                stats.min_activation,
                Some(above.iter().cloned().fold(f64::MAX, f64::min))
            );
        }
    }
    assert_view_matches_reference(collector, stream, config);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn streaming_equals_brute_force(stream in stream(), config in config(), rows_per_batch in 1usize..4, sparse in any::<bool>(), backwards in any::<bool>(), threads in 1usize..4) {
        let mut collector = Collector::new(config.clone(), stream.d_sae, &[SPECIAL]).unwrap();
        collector.set_threads(threads);
        let rows = stream.tokens.len() / stream.seq;
        if backwards {
            // Batches arriving out of order (shards fed to one collector): ties must still go
            // to the earlier token.
            for row in (0..rows).rev() {
                feed(&mut collector, &stream, row, row + 1, 1, sparse);
            }
        } else {
            feed(&mut collector, &stream, 0, rows, rows_per_batch, sparse);
        }
        assert_matches_reference(&collector, &stream, &config);
    }

    #[test]
    fn a_batch_in_parts_equals_its_parts_as_batches(stream in stream(), config in config(), part_rows in 1usize..4, threads in 1usize..4) {
        let (seq, d_sae) = (stream.seq, stream.d_sae);
        let rows = stream.tokens.len() / seq;
        let mut separate = Collector::new(config.clone(), d_sae, &[SPECIAL]).unwrap();
        feed(&mut separate, &stream, 0, rows, part_rows, false);
        // The same rows as one batch whose activations come in parts, dense and sparse in turn.
        let mut gathered = Collector::new(config.clone(), d_sae, &[SPECIAL]).unwrap();
        gathered.set_threads(threads);
        let indices: Vec<u32> = (0..stream.values.len()).map(|i| (i % d_sae) as u32).collect();
        let starts: Vec<usize> = (0..rows).step_by(part_rows).chain([rows]).collect();
        let offsets: Vec<Vec<usize>> = starts
            .windows(2)
            .map(|w| fixed_k_offsets((w[1] - w[0]) * seq, d_sae))
            .collect();
        // Part `i` is sparse where `sparse(i)`, dense elsewhere.
        let parts_where = |sparse: fn(usize) -> bool| {
            starts
                .windows(2)
                .enumerate()
                .map(|(i, w)| {
                    let span = w[0] * seq * d_sae..w[1] * seq * d_sae;
                    if sparse(i) {
                        FeatureActivations::Sparse {
                            offsets: &offsets[i],
                            indices: &indices[span.clone()],
                            values: &stream.values[span],
                            d_sae,
                        }
                    } else {
                        FeatureActivations::Dense { values: &stream.values[span], d_sae }
                    }
                })
                .collect::<Vec<_>>()
        };
        let parts = parts_where(|i| i % 2 == 1);
        let tokens = TokenBatch::new(&stream.tokens, rows, seq, 0).unwrap();
        gathered.ingest_parts(&tokens, &parts).unwrap();
        prop_assert_eq!(gathered.state_bytes().unwrap(), separate.state_bytes().unwrap());
        // All parts sparse: the scan reads them in place instead of copying them out.
        let sparse_parts = parts_where(|_| true);
        let mut all_sparse = Collector::new(config.clone(), d_sae, &[SPECIAL]).unwrap();
        all_sparse.set_threads(threads);
        all_sparse.ingest_parts(&tokens, &sparse_parts).unwrap();
        prop_assert_eq!(all_sparse.state_bytes().unwrap(), separate.state_bytes().unwrap());
        assert_matches_reference(&gathered, &stream, &config);
        // Parts that do not cover the batch are refused.
        prop_assert!(gathered.ingest_parts(&tokens, &parts[..parts.len() - 1]).is_err() || parts.len() == 1);
    }

    /// A collector restored from its state, or merged into a fresh one, keeps collecting
    /// exactly: the floors it derives (from its stores and from its histogram, which counts
    /// values deduplication dropped) must hold for what it has not seen.
    #[test]
    fn restored_and_merged_collectors_keep_collecting_exactly(stream in bursty_stream(), config in config(), split in 0usize..10) {
        let rows = stream.tokens.len() / stream.seq;
        let split = split.min(rows);
        let mut first = Collector::new(config.clone(), stream.d_sae, &[SPECIAL]).unwrap();
        feed(&mut first, &stream, 0, split, 1, false);
        let mut restored = Collector::from_state_bytes(&first.state_bytes().unwrap()).unwrap();
        feed(&mut restored, &stream, split, rows, 1, true);
        assert_matches_reference(&restored, &stream, &config);
        let mut merged = Collector::new(config.clone(), stream.d_sae, &[SPECIAL]).unwrap();
        merged.merge(&first).unwrap();
        feed(&mut merged, &stream, split, rows, 2, false);
        assert_matches_reference(&merged, &stream, &config);
        // And one collector fed it all in turn.
        feed(&mut first, &stream, split, rows, 1, false);
        assert_matches_reference(&first, &stream, &config);
    }

    #[test]
    fn merged_shards_equal_one_collector(stream in stream(), config in config(), split in 0usize..7) {
        let rows = stream.tokens.len() / stream.seq;
        let split = split.min(rows);
        let mut whole = Collector::new(config.clone(), stream.d_sae, &[SPECIAL]).unwrap();
        feed(&mut whole, &stream, 0, rows, 2, false);
        let mut left = Collector::new(config.clone(), stream.d_sae, &[SPECIAL]).unwrap();
        let mut right = left.clone();
        // Shards on different thread counts: a merge must not care.
        right.set_threads(3);
        feed(&mut left, &stream, 0, split, 1, false);
        feed(&mut right, &stream, split, rows, 3, true);
        // Merge in the "wrong" order: the result must not depend on it.
        right.merge(&left).unwrap();
        for feature in 0..stream.d_sae as u32 {
            prop_assert_eq!(right.top_samples(feature), whole.top_samples(feature));
            prop_assert_eq!(right.statistics(feature), whole.statistics(feature));
            prop_assert_eq!(right.interval_store(feature), whole.interval_store(feature));
            prop_assert_eq!(right.intervals(feature), whole.intervals(feature));
            prop_assert_eq!(right.token_sample(feature), whole.token_sample(feature));
            prop_assert_eq!(right.activation_histogram(feature), whole.activation_histogram(feature));
        }
        assert_view_matches_reference(&right, &stream, &config);
        prop_assert_eq!(right.tokens_seen(), whole.tokens_seen());
        prop_assert_eq!(right.special_tokens_excluded(), whole.special_tokens_excluded());
    }
}
