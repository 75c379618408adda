//! `metrics.jsonl`: one JSON object per logged step, appended as the run goes.
//!
//! Appending (not rewriting) keeps the cost flat over a long run; on resume, lines past the
//! checkpoint's step are dropped ([`truncate_after`]) so the file reads as one run.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::eval::LossRecovered;
use super::step::StepStats;
use crate::util::atomic::write_atomic;

/// One line of `metrics.jsonl`. `step` counts completed steps (the first line has step 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsLine {
    pub step: u64,
    pub tokens: u64,
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
