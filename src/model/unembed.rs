//! A residual direction read through the model's output: final norm and unembedding, giving
//! the tokens a direction (an SAE feature's decoder row) promotes and suppresses most.
//!
//! The logit effect of direction `d` on token `t` is
//!
//! ```text
//! effect(d, t) = (d ⊙ (1 + w_norm)) · W_U[t]
//! ```
//!
//! with `w_norm` the final RMSNorm's weight (Gemma stores `w`, applies `1 + w`) and `W_U` the
//! unembedding (`[vocab, d_model]`; Gemma-2 ties it to the token embedding). This is the
//! direction times TransformerLens's `W_U` with the final norm folded in (`fold_ln`), the
//! matrix SAELens dashboards and Neuronpedia multiply decoder rows by. It is **not centred**
//! over the vocabulary: TransformerLens turns `center_unembed` off for models with a final
//! logit soft-cap (Gemma-2), so SAEDashboard and Neuronpedia show these values as they are.
//! The vocabulary mean of each direction's effects comes along ([`DirectionLogits::mean`]):
//! subtracting it gives the centred convention ("more or less likely than an average token"),
//! with the same ranking. Why this and nothing more: RMSNorm of a lone direction divides it by
//! its RMS, a positive scalar, so only the elementwise `1 + w` changes which tokens rank first;
//! the final soft-cap is monotonic. The values are per unit of the direction, not of any real
//! activation.
//!
//! The full `[directions, vocab]` matrix is never copied to the host or sorted: per chunk of
//! directions, the vocabulary is cut into blocks, the `k` blocks with the largest maxima are
//! selected on the device (sorting at most a few thousand block maxima per row, within
//! candle's CUDA sort limit, DESIGN §6.6), and only those blocks travel to the host, where the
//! final `k` are picked, ties going to the lower token id. Any token of the true top `k` lies
//! in one of those blocks (its block's maximum is at least its value, and at most `k − 1`
//! blocks can have a larger one unless values tie exactly), so the result is exact up to
//! exact ties at the `k`-th value.

use anyhow::{bail, Context};
use candle_core::{DType, Device, Result, Tensor, D};

use super::config::Gemma2Config;
use super::loading::{load_tensors, LoadOptions, ModelSource};
use crate::hub::HubSettings;

/// Vocabulary block width (at least; grown so a row has at most `MAX_BLOCKS` blocks).
const BLOCK: usize = 128;
/// Block maxima sorted per row: below candle's CUDA `arg_sort` limit of 8192 columns.
const MAX_BLOCKS: usize = 4096;
/// Logits computed at once: `[chunk, vocab]` f32 stays under this many elements (256 MiB).
const CHUNK_ELEMENTS: usize = 64 << 20;

/// The tokens a direction moves most: `(token, effect)` pairs, strongest first, uncentred.
#[derive(Clone, Debug, PartialEq)]
pub struct DirectionLogits {
    /// Largest effects, descending (ties: lower token id first).
    pub top: Vec<(u32, f32)>,
    /// Smallest (most negative) effects, ascending (ties: lower token id first).
    pub bottom: Vec<(u32, f32)>,
    /// The direction's effect averaged over the whole vocabulary (the centring term).
    pub mean: f32,
}

/// The final norm's scale and the unembedding, in f32 on the model's device.
pub struct Unembedding {
    /// `1 + w` of the final RMSNorm, `[1, d_model]`.
    norm_scale: Tensor,
    /// `[vocab, d_model]`.
    w_u: Tensor,
    /// The mean row of `w_u`, `[d_model, 1]`: gives each direction's vocabulary mean.
    mean_row: Tensor,
}

impl Unembedding {
    /// From the final norm's stored weight `w` (`[d_model]`) and the unembedding
    /// (`[vocab, d_model]`), any dtype.
    pub fn new(norm_weight: &Tensor, w_u: &Tensor) -> Result<Self> {
        let (vocab, d_model) = w_u.dims2()?;
        if norm_weight.dims() != [d_model] || vocab == 0 {
            candle_core::bail!(
                "final norm weight {:?} does not fit the unembedding {:?}",
                norm_weight.dims(),
                w_u.dims()
            );
        }
        let w_u = w_u.to_dtype(DType::F32)?;
        let norm_scale = (norm_weight.to_dtype(DType::F32)? + 1.0)?.unsqueeze(0)?;
        let mean_row = w_u.mean(0)?.unsqueeze(1)?;
        Ok(Self {
            norm_scale,
            w_u,
            mean_row,
        })
    }

    /// Loads the final norm and the unembedding of a Gemma-2 checkpoint — and nothing else:
    /// only the shards holding them are fetched. `embedding` is the token embedding when it is
    /// already in memory (a model loaded up to a hook); with tied weights it is the
    /// unembedding.
    pub fn load(
        source: &ModelSource,
        config: &Gemma2Config,
        device: &Device,
        hub: &HubSettings,
        embedding: Option<&Tensor>,
    ) -> anyhow::Result<Self> {
        let (vocab, d_model) = (config.vocab_size, config.hidden_size);
        let (norm_shape, matrix_shape) = ([d_model], [vocab, d_model]);
        let mut wanted: Vec<(&str, &[usize])> = vec![("model.norm.weight", &norm_shape)];
        let matrix_name = if config.tie_word_embeddings {
            "model.embed_tokens.weight"
        } else {
            "lm_head.weight"
        };
        let reuse = config.tie_word_embeddings && embedding.is_some();
        if !reuse {
            wanted.push((matrix_name, &matrix_shape));
        }
        let options = LoadOptions {
            device: device.clone(),
            dtype: DType::F32,
            layers: None,
        };
        let mut tensors = load_tensors(source, &wanted, &options, hub)?;
        let w_u = match (reuse, embedding) {
            (true, Some(embedding)) => embedding.to_device(device)?,
            _ => tensors.pop().context("the unembedding was not read")?,
        };
        Self::new(&tensors[0], &w_u)
            .with_context(|| format!("the final norm and unembedding of {source}"))
    }

    pub fn vocab_size(&self) -> usize {
        self.w_u.dim(0).unwrap_or(0)
    }

    pub fn d_model(&self) -> usize {
        self.w_u.dim(1).unwrap_or(0)
    }

    /// The `k` most promoted and most suppressed tokens of each row of `directions`
    /// (`[n, d_model]`, any dtype and device).
    pub fn top_tokens(
        &self,
        directions: &Tensor,
        k: usize,
    ) -> anyhow::Result<Vec<DirectionLogits>> {
        let vocab = self.vocab_size();
        let block = BLOCK.max(vocab.div_ceil(MAX_BLOCKS));
        let chunk = (CHUNK_ELEMENTS / vocab).max(1);
        self.top_tokens_with(directions, k, block, chunk)
    }

    /// [`top_tokens`](Self::top_tokens) with the block width and the chunk of rows given.
    fn top_tokens_with(
        &self,
        directions: &Tensor,
        k: usize,
        block: usize,
        chunk: usize,
    ) -> anyhow::Result<Vec<DirectionLogits>> {
        let (n, d_model) = directions.dims2()?;
        if d_model != self.d_model() {
            bail!(
                "directions of width {d_model} do not fit the model's d_model {}",
                self.d_model()
            );
        }
        let k = k.min(self.vocab_size());
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(chunk.max(1)) {
            let rows = chunk.min(n - start);
            // [rows, d_model]: each direction as the final norm scales it
            let dirs = directions
                .narrow(0, start, rows)?
                .to_device(self.w_u.device())?
                .to_dtype(DType::F32)?
                .broadcast_mul(&self.norm_scale)?;
            let logits = dirs.matmul(&self.w_u.t()?)?; // [rows, vocab]
            let means = dirs
                .matmul(&self.mean_row)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let top = largest(&logits, k, block)?;
            let bottom = largest(&logits.neg()?, k, block)?;
            for (row, (top, bottom)) in top.into_iter().zip(bottom).enumerate() {
                let (mean, feature) = (means[row], start + row);
                let signed = |pairs: Vec<(u32, f32)>,
                              sign: f32|
                 -> anyhow::Result<Vec<(u32, f32)>> {
                    pairs
                        .into_iter()
                        .map(|(token, v)| {
                            let value = sign * v;
                            if !value.is_finite() {
                                bail!("direction {feature} gives a non-finite logit for token {token}");
                            }
                            Ok((token, value))
                        })
                        .collect()
                };
                if !mean.is_finite() {
                    bail!("direction {feature} gives a non-finite mean logit");
                }
                out.push(DirectionLogits {
                    top: signed(top, 1.0)?,
                    bottom: signed(bottom, -1.0)?,
                    mean,
                });
            }
        }
        Ok(out)
    }
}

/// Per row of `values` (`[rows, vocab]` f32), the `k` largest `(column, value)` pairs,
/// descending, ties to the lower column; see the module docs for the block selection.
fn largest(values: &Tensor, k: usize, block: usize) -> Result<Vec<Vec<(u32, f32)>>> {
    let (rows, vocab) = values.dims2()?;
    let n_blocks = vocab.div_ceil(block);
    let pad = n_blocks * block - vocab;
    let padded = if pad > 0 {
        let fill = Tensor::full(f32::NEG_INFINITY, (rows, pad), values.device())?;
        Tensor::cat(&[values, &fill], 1)?
    } else {
        values.clone()
    };
    let blocks = padded.reshape((rows, n_blocks, block))?; // [rows, n_blocks, block]
    let kept = k.min(n_blocks);
    let order = blocks
        .max(D::Minus1)?
        .contiguous()?
        .arg_sort_last_dim(false)?; // [rows, n_blocks]
    let chosen = order.narrow(1, 0, kept)?.contiguous()?; // [rows, kept]
    let index = chosen
        .unsqueeze(2)?
        .broadcast_as((rows, kept, block))?
        .contiguous()?;
    let gathered = blocks.contiguous()?.gather(&index, 1)?; // [rows, kept, block]
    let chosen = chosen.to_vec2::<u32>()?;
    let gathered = gathered.flatten_all()?.to_vec1::<f32>()?;
    let mut result = Vec::with_capacity(rows);
    for (row, blocks_of_row) in chosen.iter().enumerate() {
        let mut candidates: Vec<(u32, f32)> = Vec::with_capacity(kept * block);
        for (slot, &b) in blocks_of_row.iter().enumerate() {
            let at = (row * kept + slot) * block;
            for (offset, &value) in gathered[at..at + block].iter().enumerate() {
                let column = b as usize * block + offset;
                if column < vocab {
                    candidates.push((column as u32, value));
                }
            }
        }
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        candidates.truncate(k);
        result.push(candidates);
    }
    Ok(result)
}

#[cfg(test)]
#[path = "../../tests/support/logit_reference.rs"]
mod logit_reference;

#[cfg(test)]
mod tests {
    use super::logit_reference;
    use super::*;
    use crate::util::rng::SplitMix64;

    fn random(rng: &mut SplitMix64, shape: (usize, usize)) -> Tensor {
        let data: Vec<f32> = (0..shape.0 * shape.1)
            .map(|_| rng.next_f32() * 2.0 - 1.0)
            .collect();
        Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
    }

    /// Every logit in f64, sorted, and their mean: the definition, with no blocks and no device.
    fn brute_force(dirs: &Tensor, norm_w: &Tensor, w_u: &Tensor, k: usize) -> Vec<DirectionLogits> {
        let (w, w_u) = (
            norm_w.to_vec1::<f32>().unwrap(),
            w_u.to_vec2::<f32>().unwrap(),
        );
        let as_f32 =
            |ranked: Vec<(u32, f64)>| ranked.into_iter().map(|(t, v)| (t, v as f32)).collect();
        dirs.to_vec2::<f32>()
            .unwrap()
            .iter()
            .map(|d| {
                let (top, bottom, mean) = logit_reference::ranked_logits(d, &w, &w_u, k);
                DirectionLogits {
                    top: as_f32(top),
                    bottom: as_f32(bottom),
                    mean: mean as f32,
                }
            })
            .collect()
    }

    fn assert_close(got: &[DirectionLogits], want: &[DirectionLogits]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            for (a, b) in [(&g.top, &w.top), (&g.bottom, &w.bottom)] {
                let ids = |v: &[(u32, f32)]| v.iter().map(|p| p.0).collect::<Vec<_>>();
                assert_eq!(ids(a), ids(b));
                for (x, y) in a.iter().zip(b) {
                    assert!((x.1 - y.1).abs() < 1e-4, "{} vs {}", x.1, y.1);
                }
            }
            assert!((g.mean - w.mean).abs() < 1e-4, "{} vs {}", g.mean, w.mean);
        }
    }

    #[test]
    fn blocks_and_chunks_give_the_brute_force_top_tokens() {
        let mut rng = SplitMix64(11);
        let (n, d, vocab) = (9, 12, 203);
        let (dirs, norm_w, w_u) = (
            random(&mut rng, (n, d)),
            random(&mut rng, (1, d)).flatten_all().unwrap(),
            random(&mut rng, (vocab, d)),
        );
        let unembed = Unembedding::new(&norm_w, &w_u).unwrap();
        let want = brute_force(&dirs, &norm_w, &w_u, 7);
        // One block per row, several blocks with a padded last one, one row per chunk.
        for (block, chunk) in [(256, 16), (16, 4), (10, 1), (1, 9)] {
            let got = unembed.top_tokens_with(&dirs, 7, block, chunk).unwrap();
            assert_close(&got, &want);
        }
        assert_close(&unembed.top_tokens(&dirs, 7).unwrap(), &want);
    }

    #[test]
    fn the_norm_weight_changes_the_ranking() {
        // Direction (1, 1); token 0 is (2, 0), token 1 is (0, 1.5). Without the norm token 0
        // wins; with 1 + w = (0.5, 2) token 1 does (1 × 0.5 × 2 = 1 < 1 × 2 × 1.5 = 3).
        let dirs = Tensor::new(&[[1f32, 1.0]], &Device::Cpu).unwrap();
        let w_u = Tensor::new(&[[2f32, 0.0], [0.0, 1.5]], &Device::Cpu).unwrap();
        let plain = Unembedding::new(&Tensor::new(&[0f32, 0.0], &Device::Cpu).unwrap(), &w_u);
        let normed = Unembedding::new(&Tensor::new(&[-0.5f32, 1.0], &Device::Cpu).unwrap(), &w_u);
        assert_eq!(plain.unwrap().top_tokens(&dirs, 1).unwrap()[0].top[0].0, 0);
        let got = normed.unwrap().top_tokens(&dirs, 1).unwrap();
        // Logits (1, 3), as they are, and their mean 2 (the centred values would be ±1).
        assert_eq!(got[0].top, vec![(1, 3.0)]);
        assert_eq!(got[0].bottom, vec![(0, 1.0)]);
        assert_eq!(got[0].mean, 2.0);
    }

    #[test]
    fn shapes_are_checked() {
        let w_u = Tensor::zeros((5, 4), DType::F32, &Device::Cpu).unwrap();
        let bad_norm = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
        assert!(Unembedding::new(&bad_norm, &w_u).is_err());
        let norm = Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap();
        let unembed = Unembedding::new(&norm, &w_u).unwrap();
        let dirs = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        let err = unembed.top_tokens(&dirs, 3).unwrap_err().to_string();
        assert!(err.contains("d_model 4"), "{err}");
        // k larger than the vocabulary: the whole vocabulary, ordered.
        let dirs = Tensor::zeros((1, 4), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(unembed.top_tokens(&dirs, 50).unwrap()[0].top.len(), 5);
    }
}
