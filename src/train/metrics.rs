//! `metrics.jsonl`: one JSON object per logged step, appended as the run goes.
//!
//! Appending (not rewriting) keeps the cost flat over a long run; on resume, lines past the
//! checkpoint's step are dropped ([`truncate_after`]) so the file reads as one run.
//!
//! Two fields are timing, not results: `elapsed_s` (the run's wall clock, continued across
//! resumes from the checkpoint's own count, [`RunClock`]) and `tokens_per_s` (over the interval
//! since the previous logged line). They differ between otherwise identical runs, so
//! comparisons of runs ignore exactly them ([`without_timing`]).

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::checkpoint::RunPosition;
use super::eval::LossRecovered;
use super::step::StepStats;
use crate::util::atomic::write_atomic;

/// One line of `metrics.jsonl`. `step` counts completed steps (the first line has step 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsLine {
    pub step: u64,
    pub tokens: u64,
    /// Seconds the run had trained at this step, over every resumed part (0 in files
    /// written before it existed).
    #[serde(default)]
    pub elapsed_s: f64,
    /// Tokens per second since the previous logged line (or since the run or its resume
    /// started).
    #[serde(default)]
    pub tokens_per_s: f64,
    pub loss: f64,
    pub mse: f64,
    pub fvu: f64,
    pub l0: f64,
    pub dead: usize,
    pub aux_loss: f64,
    pub l1_loss: f64,
    /// JumpReLU's L0 penalty (absent in files written before it existed).
    #[serde(default)]
    pub l0_loss: f64,
    pub lr: f64,
    pub threshold: f32,
    /// The loss-recovered evaluation, on the lines of the steps that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_clean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_sae: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_zero: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_mean: Option<f64>,
    /// `(ce_zero − ce_sae) / (ce_zero − ce_clean)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_recovered: Option<f64>,
    /// `(ce_mean − ce_sae) / (ce_mean − ce_clean)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce_recovered_mean: Option<f64>,
}

impl MetricsLine {
    pub fn new(step: u64, tokens: u64, stats: &StepStats) -> Self {
        Self {
            step,
            tokens,
            elapsed_s: 0.0,
            tokens_per_s: 0.0,
            loss: stats.loss,
            mse: stats.mse,
            fvu: stats.fvu,
            l0: stats.l0,
            dead: stats.dead,
            aux_loss: stats.aux_loss,
            l1_loss: stats.l1_loss,
            l0_loss: stats.l0_loss,
            lr: stats.lr,
            threshold: stats.threshold,
            ce_clean: None,
            ce_sae: None,
            ce_zero: None,
            ce_mean: None,
            ce_recovered: None,
            ce_recovered_mean: None,
        }
    }

    /// Adds an evaluation's losses to the line.
    pub fn set_eval(&mut self, eval: &LossRecovered) {
        self.ce_clean = Some(eval.ce_clean);
        self.ce_sae = Some(eval.ce_sae);
        self.ce_zero = Some(eval.ce_zero);
        self.ce_mean = Some(eval.ce_mean);
        self.ce_recovered = eval.recovered();
        self.ce_recovered_mean = eval.recovered_mean();
    }
}

/// `line` with its timing fields zeroed: what two runs of the same data must agree on.
pub fn without_timing(line: &MetricsLine) -> MetricsLine {
    MetricsLine {
        elapsed_s: 0.0,
        tokens_per_s: 0.0,
        ..line.clone()
    }
}

/// The run's wall clock: seconds trained, continued from a checkpoint's count on resume, and
/// the token rate between logged lines.
pub struct RunClock {
    started: Instant,
    /// Seconds trained before this process took over (the checkpoint's count).
    base_s: f64,
    /// Elapsed seconds and tokens at the previous logged line (or at the start).
    last: (f64, u64),
}

impl RunClock {
    /// Starts counting from `position` (the default for a fresh run).
    pub fn start(position: RunPosition) -> Self {
        Self {
            started: Instant::now(),
            base_s: position.elapsed_s,
            last: (position.elapsed_s, position.tokens),
        }
    }

    /// Seconds trained so far, over every part of the run.
    pub fn elapsed_s(&self) -> f64 {
        self.base_s + self.started.elapsed().as_secs_f64()
    }

    /// Writes the elapsed time and the rate since the previous stamped line into `line`.
    pub fn stamp(&mut self, line: &mut MetricsLine) {
        let now = self.elapsed_s();
        let (then, tokens_then) = self.last;
        line.elapsed_s = now;
        line.tokens_per_s = match now - then {
            interval if interval > 0.0 => line.tokens.saturating_sub(tokens_then) as f64 / interval,
            _ => 0.0,
        };
        self.last = (now, line.tokens);
    }
}

/// Appends `line` to `path` (created if missing).
pub fn append(path: &Path, line: &MetricsLine) -> Result<()> {
    let mut text = serde_json::to_string(line)?;
    text.push('\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .with_context(|| format!("failed to append to {}", path.display()))
}

/// Every line of `path` (none if it does not exist).
pub fn read(path: &Path) -> Result<Vec<MetricsLine>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).with_context(|| format!("bad line in {}", path.display()))
        })
        .collect()
}

/// Drops the lines logged after `step` (they belong to the interrupted part of a run).
pub fn truncate_after(path: &Path, step: u64) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let mut text = String::new();
    for line in read(path)?.into_iter().filter(|line| line.step <= step) {
        text.push_str(&serde_json::to_string(&line)?);
        text.push('\n');
    }
    // No folder sync: the metrics are a log; the checkpoint written next syncs the run folder.
    write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files written before the timing fields existed still read, with zeros there.
    #[test]
    fn lines_without_timing_read_as_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let old = r#"{"step":1,"tokens":8,"loss":1.0,"mse":1.0,"fvu":1.0,"l0":2.0,"dead":0,"aux_loss":0.0,"l1_loss":0.0,"lr":0.1,"threshold":0.0}"#;
        std::fs::write(&path, format!("{old}\n")).unwrap();
        let line = &read(&path).unwrap()[0];
        assert_eq!(
            (line.step, line.elapsed_s, line.tokens_per_s),
            (1, 0.0, 0.0)
        );
    }

    /// The clock continues from a checkpoint's count, and the rate is over the interval since
    /// the previous stamp.
    #[test]
    fn the_clock_continues_and_rates_cover_one_interval() {
        let stats = StepStats {
            loss: 0.0,
            mse: 0.0,
            fvu: 0.0,
            aux_loss: 0.0,
            l1_loss: 0.0,
            l0_loss: 0.0,
            l0: 0.0,
            dead: 0,
            lr: 0.0,
            threshold: 0.0,
        };
        let mut clock = RunClock::start(RunPosition {
            tokens: 100,
            elapsed_s: 50.0,
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut first = MetricsLine::new(1, 300, &stats);
        clock.stamp(&mut first);
        assert!(
            first.elapsed_s > 50.0 && first.elapsed_s < 60.0,
            "{first:?}"
        );
        let interval = first.elapsed_s - 50.0;
        assert!((first.tokens_per_s - 200.0 / interval).abs() < 1e-6 * first.tokens_per_s);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut second = MetricsLine::new(2, 400, &stats);
        clock.stamp(&mut second);
        let interval = second.elapsed_s - first.elapsed_s;
        assert!(interval > 0.0);
        assert!((second.tokens_per_s - 100.0 / interval).abs() < 1e-6 * second.tokens_per_s);
    }
}
