//! Learning-rate schedules: pure functions of the step, so a resumed run needs no state.
//!
//! The original built these from torch schedulers: `warmup_only` (linear `step / warmup`),
//! `decay_only` (cosine annealing to `min_lr`) and `warmup_decay` (linear warmup, then a cosine
//! to **zero** — its `min_lr` was read but unused there). saectl's `warmup_decay` decays to
//! `min_lr` like `decay`: a schedule whose floor setting is silently ignored is a bug.

use super::config::{ScheduleKind, TrainConfig};

/// The learning rate for `step` (0-based; the rate used by that step's update).
pub fn lr_at(cfg: &TrainConfig, step: u64) -> f64 {
    let total = cfg.total_steps();
    let warmup = cfg.warmup_steps;
    match cfg.scheduler_type {
        ScheduleKind::None => cfg.lr,
        ScheduleKind::Warmup => cfg.lr * warmup_factor(step, warmup),
        ScheduleKind::Decay => cosine(cfg.lr, cfg.min_lr(), step, total),
        ScheduleKind::WarmupDecay if step < warmup => cfg.lr * warmup_factor(step, warmup),
        ScheduleKind::WarmupDecay => cosine(
            cfg.lr,
            cfg.min_lr(),
            step - warmup,
            total.saturating_sub(warmup),
        ),
    }
}

/// `step / warmup` capped at 1, as the original's `LambdaLR` (the first step has rate 0).
fn warmup_factor(step: u64, warmup: u64) -> f64 {
    if warmup == 0 {
        return 1.0;
    }
    (step as f64 / warmup as f64).min(1.0)
}

/// Cosine from `lr` at step 0 to `min_lr` at `steps` (torch's `CosineAnnealingLR` closed form).
fn cosine(lr: f64, min_lr: f64, step: u64, steps: u64) -> f64 {
    if steps == 0 {
        return min_lr;
    }
    let progress = (step as f64 / steps as f64).min(1.0);
    min_lr + (lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kind: ScheduleKind) -> TrainConfig {
        TrainConfig {
            scheduler_type: kind,
            lr: 1.0,
            min_lr: Some(0.1),
            warmup_steps: 10,
            batch_size: 1,
            num_tokens: 110,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn none_is_constant_and_warmup_is_linear() {
        assert_eq!(lr_at(&cfg(ScheduleKind::None), 57), 1.0);
        let warm = cfg(ScheduleKind::Warmup);
        assert_eq!(lr_at(&warm, 0), 0.0);
        assert_eq!(lr_at(&warm, 5), 0.5);
        assert_eq!(lr_at(&warm, 10), 1.0);
        assert_eq!(lr_at(&warm, 100), 1.0);
    }

    #[test]
    fn decay_goes_from_lr_to_min_lr() {
        let decay = cfg(ScheduleKind::Decay);
        assert_eq!(lr_at(&decay, 0), 1.0);
        assert!((lr_at(&decay, 55) - 0.55).abs() < 1e-12);
        assert!((lr_at(&decay, 110) - 0.1).abs() < 1e-12);
        let both = cfg(ScheduleKind::WarmupDecay);
        assert_eq!(lr_at(&both, 5), 0.5);
        assert_eq!(lr_at(&both, 10), 1.0);
        assert!((lr_at(&both, 60) - 0.55).abs() < 1e-12);
        assert!((lr_at(&both, 110) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn default_min_lr_is_one_percent() {
        let mut decay = cfg(ScheduleKind::Decay);
        decay.min_lr = None;
        assert!((lr_at(&decay, 110) - 0.01).abs() < 1e-12);
    }
}
