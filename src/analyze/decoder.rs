//! Decoder directions of an SAE checkpoint, for the decoder-cosine similarity measure.
//!
//! Two features whose decoder rows point the same way write the same direction into the
//! residual stream, whatever text they fire on; the cosine of the rows is the standard measure
//! of feature redundancy and feature splitting. Rows are normalised once on load.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};

use crate::hub::HubSettings;
use crate::sae::hub_path::resolve_checkpoint;
use crate::sae::import::load_any;

/// Unit-norm decoder rows `W_dec [d_sae, d_in]`, row-major (zero rows stay zero).
#[derive(Clone, Debug, PartialEq)]
pub struct DecoderDirections {
    d_sae: usize,
    d_in: usize,
    rows: Vec<f32>,
}

impl DecoderDirections {
    /// Reads `W_dec` from any checkpoint `saectl collect` reads (saectl, SAELens, Gemma Scope;
    /// on disk or a Hub path).
    pub fn load(path: &Path) -> Result<Self> {
        let local = resolve_checkpoint(&path.to_string_lossy(), &HubSettings::from_env())?;
        let sae = load_any(&local, &Device::Cpu)
            .with_context(|| format!("failed to load the SAE {}", path.display()))?;
        let w_dec = sae.weights().w_dec.to_dtype(DType::F32)?;
        let (d_sae, d_in) = w_dec.dims2()?;
        Ok(Self::from_rows(
            d_sae,
            d_in,
            w_dec.flatten_all()?.to_vec1::<f32>()?,
        ))
    }

    /// Directions from raw rows (normalised here).
    pub fn from_rows(d_sae: usize, d_in: usize, mut rows: Vec<f32>) -> Self {
        for row in rows.chunks_exact_mut(d_in.max(1)) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        Self { d_sae, d_in, rows }
    }

    pub fn d_sae(&self) -> usize {
        self.d_sae
    }

    /// Feature `f`'s unit direction, or `None` outside the SAE.
    pub fn row(&self, feature: u32) -> Option<&[f32]> {
        let f = feature as usize;
        (f < self.d_sae).then(|| &self.rows[f * self.d_in..(f + 1) * self.d_in])
    }

    /// Errors when the folder was collected with an SAE of another width.
    pub fn check_width(&self, folder_d_sae: Option<u64>, checkpoint: &Path) -> Result<()> {
        match folder_d_sae {
            Some(d) if d != 0 && d as usize != self.d_sae => bail!(
                "{} has {} features but the samples folder was collected with d_sae {d}",
                checkpoint.display(),
                self.d_sae
            ),
            _ => Ok(()),
        }
    }
}

/// Cosine of two unit rows.
pub fn unit_cosine(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}
