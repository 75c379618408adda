//! The fifteen behaviours the Python original's collector tests checked (threshold, cap, order,
//! statistics, save/load, context window, empty and one-token batches, unknown feature, clear),
//! then saectl's own rules: special tokens, window deduplication, bad input.

use super::support::{dense, ingest_dense, original, SplitMix, WordDecoder};
use crate::collect::{write_samples_folder, Collector, FeatureActivations, TokenBatch};
use crate::data::TokenDecoder;
use crate::samples::{CollectorConfig, SamplesDir, SamplesFolder, SaveConfig};

fn collector(config: CollectorConfig, d_sae: usize) -> Collector {
    Collector::new(config, d_sae, &[2]).unwrap()
}

#[test]
fn initialization_keeps_settings_and_starts_empty() {
    let c = collector(original(10, 20, 0.1), 5);
    assert_eq!(c.config().max_samples_per_feature, 10);
    assert_eq!(c.config().sample_context_size, 20);
    assert_eq!(c.config().sample_activation_threshold, 0.1);
    assert!(c.features_by_max_activation().is_empty());
    assert_eq!(c.tokens_seen(), 0);
}

#[test]
fn basic_collection_stores_each_activation_under_its_feature() {
    let mut c = collector(original(10, 20, 0.1), 5);
    let values = dense(2, 10, 5, &[(0, 5, 2, 0.8), (1, 3, 4, 0.6)]);
    ingest_dense(&mut c, &(0..20).collect::<Vec<u32>>(), 10, &values, 0);
    assert_eq!(c.features_by_max_activation(), vec![2, 4]);
    assert_eq!(c.num_samples(2), 1);
    assert_eq!(c.num_samples(4), 1);
    let sample = &c.top_samples(2)[0];
    assert_eq!(
        (sample.activation, sample.sequence_idx, sample.position),
        (0.8, 0, 5)
    );
    assert_eq!(c.top_samples(4)[0].sequence_idx, 1);
}

#[test]
fn max_samples_caps_each_feature() {
    let mut c = collector(original(10, 20, 0.1), 3);
    let mut rng = SplitMix(7);
    for batch in 0..15u64 {
        let values = dense(2, 10, 3, &[(0, 5, 0, rng.next_f32() + 0.5)]);
        ingest_dense(&mut c, &[5; 20], 10, &values, batch * 2);
    }
    assert_eq!(c.num_samples(0), 10);
    assert_eq!(c.statistics(0).unwrap().activation_count, 15);
}

#[test]
fn top_samples_come_best_first() {
    let mut c = collector(original(10, 20, 0.1), 3);
    for (batch, value) in [0.3f32, 0.8, 0.5, 0.9, 0.2].into_iter().enumerate() {
        ingest_dense(
            &mut c,
            &[5; 20],
            10,
            &dense(2, 10, 3, &[(0, 5, 1, value)]),
            batch as u64 * 2,
        );
    }
    let kept: Vec<f32> = c.top_samples(1).iter().map(|s| s.activation).collect();
    assert_eq!(kept, vec![0.9, 0.8, 0.5, 0.3, 0.2]);
}

#[test]
fn threshold_is_strict() {
    let mut c = collector(original(10, 20, 0.1), 3);
    ingest_dense(
        &mut c,
        &[5; 20],
        10,
        &dense(2, 10, 3, &[(0, 5, 0, 0.05), (0, 6, 1, 0.1)]),
        0,
    );
    assert!(c.features_by_max_activation().is_empty());
    // Below the threshold it still fires: density counts it, the statistics do not.
    assert_eq!(c.statistics(0).unwrap().firing_count, 1);
    assert_eq!(c.statistics(0).unwrap().activation_count, 0);
}

#[test]
fn statistics_cover_every_activation_not_only_the_stored_ones() {
    let mut c = collector(original(2, 20, 0.1), 3);
    for (batch, value) in [0.5f32, 0.7, 0.3, 0.9].into_iter().enumerate() {
        ingest_dense(
            &mut c,
            &[5; 20],
            10,
            &dense(2, 10, 3, &[(0, 5, 0, value)]),
            batch as u64 * 2,
        );
    }
    let stats = c.statistics(0).unwrap();
    assert_eq!((stats.num_samples, stats.activation_count), (2, 4));
    assert_eq!(
        (stats.max_activation, stats.min_activation),
        (0.9f32 as f64, Some(0.3f32 as f64))
    );
    let values = [0.5f32, 0.7, 0.3, 0.9].map(f64::from);
    let mean = values.iter().sum::<f64>() / 4.0;
    let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
    assert!((stats.mean_activation - mean).abs() < 1e-15);
    assert!((stats.std_activation.unwrap() - std).abs() < 1e-15);
    assert_eq!(stats.density, 4.0 / 80.0);
}

#[test]
fn save_and_load_round_trip_loses_nothing() {
    let mut c = collector(CollectorConfig::default(), 6);
    let mut rng = SplitMix(11);
    let tokens: Vec<u32> = (0..60).map(|_| rng.below(50) as u32 + 3).collect();
    let hits: Vec<_> = (0..40)
        .map(|_| {
            (
                rng.below(3) as usize,
                rng.below(20) as usize,
                rng.below(6) as usize,
                rng.next_f32(),
            )
        })
        .collect();
    ingest_dense(&mut c, &tokens, 20, &dense(3, 20, 6, &hits), 0);
    let dir = tempfile::tempdir().unwrap();
    let save = SaveConfig {
        top_features_to_save: 4,
        samples_per_feature_to_save: 3,
        ..SaveConfig::default()
    };
    let summary = write_samples_folder(
        &SamplesDir::new(dir.path()),
        &c,
        &WordDecoder,
        &save,
        Default::default(),
    )
    .unwrap();
    let folder = SamplesFolder::load(dir.path()).unwrap();
    assert_eq!(folder.summary.as_ref(), Some(&summary));
    assert_eq!(folder.features.keys().copied().collect::<Vec<_>>().len(), 4);
    let saved: Vec<u32> = c.features_by_max_activation().into_iter().take(4).collect();
    assert_eq!(summary.features_saved, saved);
    for &f in &saved {
        let file = folder.feature(f).unwrap();
        assert_eq!(file.statistics, c.statistics(f).unwrap());
        let kept = c.top_samples(f);
        assert_eq!(file.top_samples.len(), kept.len().min(3));
        for (written, stored) in file.top_samples.iter().zip(&kept) {
            assert_eq!(written.activation_value, stored.activation);
            assert_eq!(written.context_tokens, stored.context_tokens);
            assert_eq!(written.text, WordDecoder.decode(&[stored.token()]));
        }
    }
    assert_eq!(summary.tokens_seen, 60);
    assert_eq!(summary.total_samples_seen, c.total_activations());
}

#[test]
fn context_window_is_symmetric_and_clipped_to_the_row() {
    let mut c = collector(original(10, 10, 0.1), 2);
    let tokens: Vec<u32> = (100..130).collect();
    ingest_dense(
        &mut c,
        &tokens,
        30,
        &dense(1, 30, 2, &[(0, 15, 0, 0.8), (0, 2, 1, 0.8)]),
        0,
    );
    let middle = &c.top_samples(0)[0];
    assert_eq!(middle.context_tokens, (110..=120).collect::<Vec<u32>>());
    assert_eq!(
        (middle.context_position, middle.previous_token),
        (5, Some(114))
    );
    let edge = &c.top_samples(1)[0];
    assert_eq!(edge.context_tokens, (100..=107).collect::<Vec<u32>>());
    assert_eq!(edge.context_position, 2);
}

#[test]
fn samples_show_what_activated_them() {
    // "the cat sat on the mat": a feature firing on "cat" keeps contexts that contain it,
    // and a second feature firing on "dog" keeps only dog contexts.
    let vocab = ["the", "cat", "dog", "sat", "on", "mat", "ran", "."];
    struct Vocab<'a>(&'a [&'a str]);
    impl TokenDecoder for Vocab<'_> {
        fn decode(&self, ids: &[u32]) -> String {
            ids.iter()
                .map(|&t| format!(" {}", self.0[t as usize - 3]))
                .collect()
        }
    }
    let sentences: [[u32; 6]; 4] = [
        [3, 4, 6, 7, 3, 8],
        [3, 4, 9, 10, 3, 8],
        [3, 5, 6, 7, 3, 8],
        [3, 5, 9, 10, 3, 8],
    ];
    let mut c = collector(CollectorConfig::default(), 50);
    for (row, sentence) in sentences.iter().enumerate() {
        let feature = if sentence[1] == 4 { 10 } else { 20 };
        ingest_dense(
            &mut c,
            sentence,
            6,
            &dense(1, 6, 50, &[(0, 1, feature, 0.9 - row as f32 * 0.01)]),
            row as u64,
        );
    }
    let dir = tempfile::tempdir().unwrap();
    write_samples_folder(
        &SamplesDir::new(dir.path()),
        &c,
        &Vocab(&vocab),
        &SaveConfig::default(),
        Default::default(),
    )
    .unwrap();
    let folder = SamplesFolder::load(dir.path()).unwrap();
    for sample in &folder.feature(10).unwrap().top_samples {
        assert!(sample.context_text.contains("cat") && !sample.context_text.contains("dog"));
        assert_eq!(
            (sample.text.as_str(), sample.context_prefix.as_str()),
            (" cat", " the")
        );
    }
    for sample in &folder.feature(20).unwrap().top_samples {
        assert!(sample.context_text.contains("dog") && !sample.context_text.contains("cat"));
    }
}

#[test]
fn top_samples_are_the_largest_of_a_random_stream() {
    let mut c = collector(original(5, 20, 0.2), 20);
    let mut rng = SplitMix(3);
    let mut seen = Vec::new();
    for batch in 0..50u64 {
        let value = 0.2 + rng.next_f32() * 0.8;
        seen.push(value);
        ingest_dense(
            &mut c,
            &[7; 10],
            10,
            &dense(1, 10, 20, &[(0, 5, 5, value)]),
            batch,
        );
    }
    seen.sort_by(|a, b| b.total_cmp(a));
    let kept: Vec<f32> = c.top_samples(5).iter().map(|s| s.activation).collect();
    assert_eq!(kept, seen[..5].to_vec());
    let stats = c.statistics(5).unwrap();
    assert!(
        stats.std_activation.unwrap() > 0.0 && stats.min_activation.unwrap() < stats.max_activation
    );
}

#[test]
fn empty_batches_store_nothing_but_count_tokens() {
    let mut c = collector(CollectorConfig::default(), 5);
    ingest_dense(&mut c, &[5; 20], 10, &vec![0.0; 100], 0);
    assert!(c.features_by_max_activation().is_empty());
    assert_eq!((c.tokens_seen(), c.sequences_seen()), (20, 2));
    let tokens = TokenBatch::new(&[], 0, 10, 2).unwrap();
    c.ingest(
        &tokens,
        &FeatureActivations::Dense {
            values: &[],
            d_sae: 5,
        },
    )
    .unwrap();
    assert_eq!(c.tokens_seen(), 20);
}

#[test]
fn one_token_sequences_are_collected() {
    let mut c = collector(CollectorConfig::default(), 3);
    ingest_dense(&mut c, &[42], 1, &[0.5, 0.8, 0.3], 0);
    let sample = &c.top_samples(1)[0];
    assert_eq!(
        (sample.context_tokens.clone(), sample.previous_token),
        (vec![42], None)
    );
    assert_eq!(c.features_by_max_activation(), vec![1, 0, 2]);
}

#[test]
fn unknown_features_have_no_samples() {
    let c = collector(CollectorConfig::default(), 3);
    assert!(c.top_samples(999).is_empty());
    assert_eq!(c.num_samples(999), 0);
    assert!(c.statistics(999).is_none());
    assert_eq!(c.statistics(1).unwrap().num_samples, 0);
}

#[test]
fn clear_forgets_everything() {
    let mut c = collector(original(10, 20, 0.1), 5);
    ingest_dense(&mut c, &[5; 20], 10, &vec![0.5; 100], 0);
    assert_eq!(c.features_by_max_activation().len(), 5);
    c.clear();
    assert!(c.features_by_max_activation().is_empty());
    assert_eq!((c.tokens_seen(), c.total_activations()), (0, 0));
}

#[test]
fn special_tokens_are_skipped_and_counted_unless_included() {
    // BOS (id 2) at position 0 fires strongly, as it does in real models.
    let values = dense(1, 4, 2, &[(0, 0, 0, 5.0), (0, 2, 0, 0.5)]);
    let mut skipping = collector(CollectorConfig::default(), 2);
    ingest_dense(&mut skipping, &[2, 8, 9, 10], 4, &values, 0);
    assert_eq!(
        (skipping.special_tokens_excluded(), skipping.tokens_seen()),
        (1, 3)
    );
    assert_eq!(
        skipping
            .top_samples(0)
            .iter()
            .map(|s| s.position)
            .collect::<Vec<_>>(),
        vec![2]
    );
    let mut including = collector(
        CollectorConfig {
            exclude_special_tokens: false,
            ..CollectorConfig::default()
        },
        2,
    );
    ingest_dense(&mut including, &[2, 8, 9, 10], 4, &values, 0);
    assert_eq!(
        (including.special_tokens_excluded(), including.tokens_seen()),
        (0, 4)
    );
    assert_eq!(including.top_samples(0)[0].position, 0);
}

#[test]
fn dedup_keeps_one_sample_per_context_window() {
    // Positions 10, 12 and 30 of one sequence, context 10 (half-width 5): 12 lies in 10's window.
    let values = dense(
        1,
        40,
        1,
        &[(0, 10, 0, 0.9), (0, 12, 0, 0.95), (0, 30, 0, 0.5)],
    );
    let mut dedup = collector(
        CollectorConfig {
            dedup_context_windows: true,
            ..original(10, 10, 0.1)
        },
        1,
    );
    ingest_dense(&mut dedup, &[7; 40], 40, &values, 0);
    assert_eq!(
        dedup
            .top_samples(0)
            .iter()
            .map(|s| s.position)
            .collect::<Vec<_>>(),
        vec![12, 30]
    );
    let mut plain = collector(original(10, 10, 0.1), 1);
    ingest_dense(&mut plain, &[7; 40], 40, &values, 0);
    assert_eq!(
        plain
            .top_samples(0)
            .iter()
            .map(|s| s.position)
            .collect::<Vec<_>>(),
        vec![12, 10, 30]
    );
    // Statistics count all three either way.
    assert_eq!(dedup.statistics(0).unwrap().activation_count, 3);
}

#[test]
fn bad_input_is_an_error_that_says_where() {
    let mut c = collector(CollectorConfig::default(), 4);
    let tokens = TokenBatch::new(&[5; 4], 1, 4, 0).unwrap();
    let short = c.ingest(
        &tokens,
        &FeatureActivations::Dense {
            values: &[0.0; 15],
            d_sae: 4,
        },
    );
    assert!(format!("{:#}", short.unwrap_err()).contains("expected [4, 4]"));
    let wide = c.ingest(
        &tokens,
        &FeatureActivations::Dense {
            values: &[0.0; 20],
            d_sae: 5,
        },
    );
    assert!(format!("{:#}", wide.unwrap_err()).contains("d_sae 5"));
    assert!(TokenBatch::new(&[5; 3], 1, 4, 0).is_err());
    let mut values = vec![0.0; 16];
    values[9] = f32::NAN;
    let nan = c
        .ingest(
            &tokens,
            &FeatureActivations::Dense {
                values: &values,
                d_sae: 4,
            },
        )
        .unwrap_err();
    assert!(
        format!("{nan:#}").contains("feature 1 is NaN or infinite at sequence 0, position 2"),
        "{nan:#}"
    );
    assert!(c
        .ingest(
            &tokens,
            &FeatureActivations::Dense {
                values: &[0.0; 16],
                d_sae: 4
            }
        )
        .is_err());
    // Sparse input: the first non-finite value in token order is named, whatever its feature,
    // and nothing of the batch is observed.
    let mut fresh = collector(CollectorConfig::default(), 4);
    let sparse_nan = FeatureActivations::Sparse {
        offsets: &[0, 1, 3, 4, 4],
        indices: &[0, 3, 2, 1],
        values: &[0.5, 0.25, f32::INFINITY, f32::NAN],
        d_sae: 4,
    };
    let error = fresh.ingest(&tokens, &sparse_nan).unwrap_err();
    assert!(
        format!("{error:#}").contains("feature 2 is NaN or infinite at sequence 0, position 1"),
        "{error:#}"
    );
    assert_eq!(fresh.tokens_seen(), 0);
    let sparse = FeatureActivations::Sparse {
        offsets: &[0, 1, 1, 1, 1],
        indices: &[4],
        values: &[1.0],
        d_sae: 4,
    };
    let mut fresh = collector(CollectorConfig::default(), 4);
    assert!(format!("{:#}", fresh.ingest(&tokens, &sparse).unwrap_err()).contains("out of range"));
    assert!(Collector::new(
        CollectorConfig {
            max_samples_per_feature: 0,
            ..Default::default()
        },
        4,
        &[]
    )
    .is_err());
}

#[test]
fn flags_single_out_crafted_features() {
    // Ten sequences of 16 tokens, BOS (2) first, token 7 always at position 5.
    let (rows, seq, d_sae) = (10usize, 16usize, 5usize);
    let tokens: Vec<u32> = (0..rows * seq)
        .map(|t| {
            let (row, position) = (t / seq, t % seq);
            match position {
                0 => 2,
                5 => 7,
                _ => match 3 + ((row * 7 + position * 3) % 17) as u32 {
                    7 => 20,
                    token => token,
                },
            }
        })
        .collect();
    let mut hits = Vec::new();
    for row in 0..rows {
        hits.push((row, 0, 0, 5.0)); // feature 0: BOS only
        hits.push((row, 1, 1, 0.8)); // feature 1: the first token after BOS
        hits.push((row, 5, 2, 0.6)); // feature 2: token 7
        hits.push((row, 3 + row % 12, 4, 0.4 + 0.01 * row as f32)); // feature 4: nothing special
    }
    hits.push((4, 9, 3, 0.9)); // feature 3: once
    let mut c = collector(CollectorConfig::default(), d_sae);
    ingest_dense(&mut c, &tokens, seq, &dense(rows, seq, d_sae, &hits), 0);
    let dir = tempfile::tempdir().unwrap();
    let save = SaveConfig {
        flags: crate::samples::FlagConfig {
            ultra_rare_density: 0.01,
            ..Default::default()
        },
        ..SaveConfig::default()
    };
    let summary = write_samples_folder(
        &SamplesDir::new(dir.path()),
        &c,
        &WordDecoder,
        &save,
        Default::default(),
    )
    .unwrap();
    let flagged = summary.flagged_features.unwrap();
    assert_eq!(flagged.dead, vec![0]);
    assert_eq!(flagged.bos_dominated, vec![0]);
    assert_eq!(flagged.position_dominated, vec![1]);
    assert_eq!(flagged.single_token, vec![2]);
    assert_eq!(flagged.ultra_rare, vec![3]);
    let folder = SamplesFolder::load(dir.path()).unwrap();
    let flags = folder.feature(2).unwrap().flags.clone().unwrap();
    assert_eq!(
        (
            flags.top_token,
            flags.top_token_text.as_deref(),
            flags.top_token_share
        ),
        (Some(7), Some(" tok7"), 1.0)
    );
    assert_eq!(flags.token_sample_size, 10);
    let flags = folder.feature(1).unwrap().flags.clone().unwrap();
    assert_eq!(
        (flags.top_position_bin, flags.top_position_share),
        (Some(1), 1.0)
    );
    let file = folder.feature(4).unwrap();
    let histogram = file.activation_histogram.as_ref().unwrap();
    assert_eq!(histogram.counts.iter().sum::<u64>(), 10);
    assert_eq!(histogram.edges.len(), histogram.counts.len() + 1);
    let intervals = file.interval_samples.as_ref().unwrap();
    assert_eq!(intervals.len(), 5);
    assert_eq!(
        intervals.iter().map(|i| i.activation_count).sum::<u64>(),
        10
    );
    assert!(intervals
        .iter()
        .all(|i| i.samples.len() as u64 == i.activation_count.min(5)));
    assert_eq!(c.special_activations(0), 10);
}

/// Samples admitted while a batch is ingested keep their context in the token log (lazy
/// records) until the log outweighs them; making them whole — what a long collection does
/// from time to time — changes nothing a reader or a later batch sees.
#[test]
fn lazy_records_made_whole_read_and_collect_the_same() {
    let (d_sae, seq, rows) = (40, 16, 4);
    let mut rng = SplitMix(11);
    let batches: Vec<(Vec<u32>, Vec<f32>)> = (0..12)
        .map(|_| {
            let tokens: Vec<u32> = (0..rows * seq).map(|_| 3 + rng.below(50) as u32).collect();
            let hits: Vec<(usize, usize, usize, f32)> = (0..rows * seq * 3)
                .map(|_| {
                    let (row, pos) = (rng.below(rows as u64), rng.below(seq as u64));
                    let feature = rng.below(d_sae as u64) as usize;
                    (row as usize, pos as usize, feature, rng.next_f32() * 2.0)
                })
                .collect();
            (tokens, dense(rows, seq, d_sae, &hits))
        })
        .collect();
    let mut lazy = collector(CollectorConfig::default(), d_sae);
    lazy.set_threads(2);
    for (i, (tokens, values)) in batches[..6].iter().enumerate() {
        ingest_dense(&mut lazy, tokens, seq, values, (i * rows) as u64);
    }
    let mut whole = lazy.clone();
    for block in &mut whole.blocks {
        block.make_records_whole();
    }
    assert_eq!(whole.state_bytes().unwrap(), lazy.state_bytes().unwrap());
    for (i, (tokens, values)) in batches.iter().enumerate().skip(6) {
        ingest_dense(&mut lazy, tokens, seq, values, (i * rows) as u64);
        ingest_dense(&mut whole, tokens, seq, values, (i * rows) as u64);
    }
    assert_eq!(whole.state_bytes().unwrap(), lazy.state_bytes().unwrap());
    assert!(lazy.top_samples(3).len() > 1);
}

/// A histogram cell's low count wraps at 2^32 and carries into its high part, checked only
/// once the feature has seen that many values (its count is then at least any cell's).
#[test]
fn a_cell_count_carries_past_two_to_the_thirty_two() {
    use crate::collect::bins::{activation_bin, ACTIVATION_BINS};
    let (d_sae, f) = (4, 2);
    let mut c = collector(CollectorConfig::default(), d_sae);
    let bin = activation_bin(1.0);
    let (other, index) = (activation_bin(2.0), f * ACTIVATION_BINS + bin);
    // The state of a feature that has seen 2^32 - 1 values of 1.0 and one of 2.0.
    let block = &mut c.blocks[0];
    block.set_bin_count(index, u64::from(u32::MAX) - 1);
    block.set_bin_count(f * ACTIVATION_BINS + other, 1);
    block.state[f].moments.count = u64::from(u32::MAX);
    let values = dense(1, 4, d_sae, &[(0, 1, f, 1.0), (0, 3, f, 1.0)]);
    ingest_dense(&mut c, &[5, 6, 7, 8], 4, &values, 0);
    let histogram = c.blocks[0].histogram(f);
    assert_eq!(histogram[bin], 1 << 32);
    assert_eq!(histogram[other], 1);
    assert_eq!(c.blocks[0].state[f].moments.count, (1 << 32) + 1);
}
