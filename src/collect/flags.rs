//! Feature flags: dead, ultra-rare, single-token, position-dominated, BOS-dominated.
//!
//! Pure rules over what the collector counted, applied when a folder is written (the
//! thresholds are write-time settings: they change no collected number). The rules:
//! - **dead**: never fired (> 0) on a counted token.
//! - **ultra-rare**: fired, but on fewer than `ultra_rare_density` of the counted tokens.
//! - **single-token**: the most frequent token of a uniform sample of up to 64 of its
//!   activations makes up at least `dominant_share` of the sample (an estimate: ±6 points).
//! - **position-dominated**: at least `dominant_share` of its activations fall in one
//!   position bin that holds at most 10% of all counted tokens (a *narrow* range: with
//!   sequences of 128, positions 0, 1, 2–3, 4–7 or 8–15).
//! - **BOS-dominated**: at least `dominant_share` of its activations above the threshold,
//!   counting those on special tokens (BOS, EOS, PAD…) even when they are excluded, are on
//!   special tokens.
//!
//! The share flags need at least [`MIN_ACTIVATIONS_FOR_SHARES`] activations: three
//! activations on one token say nothing.

use super::bins::POSITION_BINS;
use super::token_sample::TopToken;
use crate::samples::format::FeatureFlags;
use crate::samples::FlagConfig;

/// Activations a feature needs before a share flag can be raised.
pub const MIN_ACTIVATIONS_FOR_SHARES: u64 = 10;

/// A position bin is narrow when it holds at most this share of the counted tokens.
pub const NARROW_POSITION_SHARE: f64 = 0.1;

/// What the rules read about one feature.
#[derive(Clone, Copy, Debug)]
pub struct FlagInputs<'a> {
    pub firing_count: u64,
    pub tokens_seen: u64,
    /// Activations above the threshold on counted tokens.
    pub activation_count: u64,
    /// Activations above the threshold on special tokens.
    pub special_activations: u64,
    /// Whether special tokens were left out of `activation_count`.
    pub special_excluded: bool,
    pub top_token: Option<TopToken>,
    /// The feature's activations per position bin.
    pub positions: &'a [u64; POSITION_BINS],
    /// Counted tokens per position bin.
    pub position_tokens: &'a [u64; POSITION_BINS],
}

/// The flags of one feature (`top_token_text` is left for the writer to decode).
pub fn feature_flags(inputs: &FlagInputs<'_>, config: &FlagConfig) -> FeatureFlags {
    let enough = inputs.activation_count >= MIN_ACTIVATIONS_FOR_SHARES;
    let mut flags = FeatureFlags {
        dead: inputs.firing_count == 0,
        ultra_rare: inputs.firing_count > 0
            && (inputs.firing_count as f64) < config.ultra_rare_density * inputs.tokens_seen as f64,
        special_token_activations: inputs.special_activations,
        ..FeatureFlags::default()
    };
    if let Some(top) = inputs.top_token {
        flags.top_token = Some(top.token);
        flags.top_token_share = top.count as f64 / top.sample_size as f64;
        flags.token_sample_size = top.sample_size as u64;
        flags.single_token = enough && flags.top_token_share >= config.dominant_share;
    }
    if let Some((bin, share)) = top_narrow_position(inputs) {
        flags.top_position_bin = Some(bin as u32);
        flags.top_position_share = share;
        flags.position_dominated = enough && share >= config.dominant_share;
    }
    let with_special = inputs.activation_count
        + if inputs.special_excluded {
            inputs.special_activations
        } else {
            0
        };
    if with_special > 0 {
        flags.special_token_share = inputs.special_activations as f64 / with_special as f64;
        flags.bos_dominated = with_special >= MIN_ACTIVATIONS_FOR_SHARES
            && flags.special_token_share >= config.dominant_share;
    }
    flags
}

/// The narrow position bin holding the largest share of the feature's activations (ties:
/// the earlier bin), with that share.
fn top_narrow_position(inputs: &FlagInputs<'_>) -> Option<(usize, f64)> {
    let total_tokens: u64 = inputs.position_tokens.iter().sum();
    if inputs.activation_count == 0 || total_tokens == 0 {
        return None;
    }
    let mut best: Option<(usize, u64)> = None;
    for bin in 0..POSITION_BINS {
        let tokens = inputs.position_tokens[bin];
        let narrow = tokens > 0 && tokens as f64 <= NARROW_POSITION_SHARE * total_tokens as f64;
        if narrow && best.is_none_or(|(_, count)| inputs.positions[bin] > count) {
            best = Some((bin, inputs.positions[bin]));
        }
    }
    best.map(|(bin, count)| (bin, count as f64 / inputs.activation_count as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sequences of 128 counted tokens each: position bins hold 1, 1, 2, 4, 8, 16, 32, 64.
    const TOKENS_PER_BIN: [u64; POSITION_BINS] = [10, 10, 20, 40, 80, 160, 320, 640];
    const SPREAD: [u64; POSITION_BINS] = [0, 0, 0, 1, 1, 2, 3, 5];

    fn inputs(positions: &[u64; POSITION_BINS]) -> FlagInputs<'_> {
        FlagInputs {
            firing_count: 12,
            tokens_seen: 1280,
            activation_count: 12,
            special_activations: 0,
            special_excluded: true,
            top_token: Some(TopToken {
                token: 5,
                count: 4,
                sample_size: 12,
            }),
            positions,
            position_tokens: &TOKENS_PER_BIN,
        }
    }

    #[test]
    fn an_ordinary_feature_carries_no_flag() {
        let flags = feature_flags(&inputs(&SPREAD), &FlagConfig::default());
        assert!(
            !(flags.dead
                || flags.ultra_rare
                || flags.single_token
                || flags.position_dominated
                || flags.bos_dominated),
            "{flags:?}"
        );
        // The narrow bins are positions 0 to 15; the busiest of them is 4–7 (tied with 8–15,
        // the earlier wins).
        assert_eq!(flags.top_position_bin, Some(3));
        assert_eq!(flags.top_position_share, 1.0 / 12.0);
    }

    #[test]
    fn dead_and_ultra_rare_follow_the_firing_count() {
        let mut dead = inputs(&[0; POSITION_BINS]);
        dead.firing_count = 0;
        dead.activation_count = 0;
        dead.top_token = None;
        let flags = feature_flags(&dead, &FlagConfig::default());
        assert!(flags.dead && !flags.ultra_rare);
        let config = FlagConfig {
            ultra_rare_density: 0.01,
            ..FlagConfig::default()
        };
        // 12 of 1280 tokens is 0.94%: ultra-rare below 1%, not below 0.5%.
        assert!(feature_flags(&inputs(&SPREAD), &config).ultra_rare);
        let config = FlagConfig {
            ultra_rare_density: 0.005,
            ..config
        };
        assert!(!feature_flags(&inputs(&SPREAD), &config).ultra_rare);
    }

    #[test]
    fn share_flags_need_a_dominant_share_and_enough_activations() {
        let mut single = inputs(&SPREAD);
        single.top_token = Some(TopToken {
            token: 7,
            count: 6,
            sample_size: 12,
        });
        assert!(feature_flags(&single, &FlagConfig::default()).single_token);
        single.activation_count = 9;
        assert!(!feature_flags(&single, &FlagConfig::default()).single_token);

        let first_token = [0, 7, 1, 1, 1, 1, 0, 1];
        let flags = feature_flags(&inputs(&first_token), &FlagConfig::default());
        assert!(flags.position_dominated && flags.top_position_bin == Some(1));
        // The same share in the wide 64+ bin is what uniform positions give: no flag.
        let late = [0, 0, 0, 0, 0, 1, 1, 10];
        assert!(!feature_flags(&inputs(&late), &FlagConfig::default()).position_dominated);

        let mut bos = inputs(&SPREAD);
        bos.special_activations = 12;
        let flags = feature_flags(&bos, &FlagConfig::default());
        assert!(flags.bos_dominated && flags.special_token_share == 0.5);
        bos.special_excluded = false;
        assert!(feature_flags(&bos, &FlagConfig::default()).special_token_share == 1.0);
    }
}
