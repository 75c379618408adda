//! The key/value cache of incremental decoding: each layer's rotated keys and values of the
//! tokens already run, so that the next token costs one position instead of the whole prefix.
//!
//! Gemma-2 alternates sliding-window and global attention. A global layer keeps every key; a
//! sliding layer keeps only the last `window − 1`, because a query at position `p` sees the
//! keys `p − window + 1 ..= p` and every later query sits further right. The queries of a pass
//! over new tokens at `len..len + s` therefore attend over the keys at `key_start(window) ..
//! len + s`, with the same mask rule as the uncached pass (`block::attention_mask_at`), so a
//! cached pass computes exactly what the full forward computes for those positions (tested to
//! float tolerance in `tests/cli/model/kv_cache.rs`, past the window and on both layer kinds).
//!
//! The cache belongs to one sequence batch and one model; [`Gemma2::logits_cached`] checks
//! both. It grows by concatenation (a copy per pass), which is fine for the hundreds of tokens
//! `saectl steer` generates.
//!
//! [`Gemma2::logits_cached`]: super::Gemma2::logits_cached

use candle_core::{Result, Tensor};

use super::config::Gemma2Config;

/// One layer's cached keys and values.
#[derive(Debug, Clone)]
pub(crate) struct LayerKv {
    /// `[batch, kv_heads, kept, head_dim]`, rotated; `None` when nothing is kept.
    k: Option<Tensor>,
    v: Option<Tensor>,
    /// Keys a later token can still see: `window − 1` on a sliding layer, all on a global one.
    keep: Option<usize>,
}

impl LayerKv {
    /// Appends this pass's `k, v` (`[b, kv, s, hd]`) and returns every key and value its
    /// queries attend over (`[b, kv, kept + s, hd]`); afterwards only what later tokens can
    /// see is kept.
    pub(crate) fn extend(&mut self, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
        let (k, v) = match (self.k.take(), self.v.take()) {
            (Some(old_k), Some(old_v)) => (
                Tensor::cat(&[&old_k, &k], 2)?,
                Tensor::cat(&[&old_v, &v], 2)?,
            ),
            _ => (k, v),
        };
        let total = k.dim(2)?;
        let kept = self.keep.map_or(total, |keep| keep.min(total));
        if kept > 0 {
            self.k = Some(k.narrow(2, total - kept, kept)?);
            self.v = Some(v.narrow(2, total - kept, kept)?);
        }
        Ok((k, v))
    }

    fn kept(&self) -> usize {
        self.k.as_ref().map_or(0, |k| k.dim(2).unwrap_or(0))
    }
}

/// The cache of one batch of sequences: every layer's keys and values, and how many tokens
/// they cover. Make one with [`Gemma2::new_kv_cache`](super::Gemma2::new_kv_cache).
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<LayerKv>,
    /// Tokens run so far: the position of the next one.
    len: usize,
    /// Rows of the batch the cache holds (set by the first pass).
    batch: Option<usize>,
}

impl KvCache {
    /// An empty cache for blocks `0..layers` of a model with `config`.
    pub(crate) fn new(config: &Gemma2Config, layers: usize) -> Self {
        let layers = (0..layers)
            .map(|layer| LayerKv {
                k: None,
                v: None,
                keep: config.sliding_window_of(layer).map(|w| w - 1),
            })
            .collect();
        Self {
            layers,
            len: 0,
            batch: None,
        }
    }

    /// Tokens the cache covers (the position the next token takes).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of layers it holds.
    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    /// Position of the first key a pass attends over on a layer with this `window` (`None`:
    /// global): everything on a global layer, the last `window − 1` cached keys on a sliding one.
    pub(crate) fn key_start(&self, window: Option<usize>) -> usize {
        match window {
            Some(window) => self.len.saturating_sub(window - 1),
            None => 0,
        }
    }

    pub(crate) fn layer_mut(&mut self, layer: usize) -> Result<&mut LayerKv> {
        let n = self.layers.len();
        self.layers.get_mut(layer).ok_or_else(|| {
            candle_core::Error::Msg(format!("the KV cache has {n} layers, not {}", layer + 1))
        })
    }

    /// Checks a pass of `batch` rows can continue this cache, before any layer changes it.
    pub(crate) fn check_batch(&self, batch: usize) -> Result<()> {
        match self.batch {
            Some(rows) if rows != batch => candle_core::bail!(
                "the KV cache holds {rows} sequences but the input has {batch} rows"
            ),
            _ => Ok(()),
        }
    }

    /// Records a completed pass over `tokens` new positions of `batch` rows.
    pub(crate) fn advance(&mut self, batch: usize, tokens: usize) -> Result<()> {
        self.batch = Some(batch);
        self.len += tokens;
        // Every layer must now keep what `key_start` promises the next pass.
        for layer in &self.layers {
            let expected = match layer.keep {
                Some(keep) => self.len.min(keep),
                None => self.len,
            };
            if layer.kept() != expected {
                candle_core::bail!(
                    "internal error: a KV-cache layer keeps {} keys, expected {expected}",
                    layer.kept()
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// Keys whose every entry is their position, `[1, 1, s, 1]`.
    fn positions(range: std::ops::Range<usize>) -> Tensor {
        let values: Vec<f32> = range.clone().map(|p| p as f32).collect();
        Tensor::from_vec(values, (1, 1, range.len(), 1), &Device::Cpu).unwrap()
    }

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn a_sliding_layer_keeps_the_last_window_minus_one_keys() {
        let mut layer = LayerKv {
            k: None,
            v: None,
            keep: Some(3),
        };
        // A prompt of 5, then single tokens: each pass sees the kept keys plus its own.
        let (k, _) = layer.extend(positions(0..5), positions(0..5)).unwrap();
        assert_eq!(flat(&k), [0., 1., 2., 3., 4.]);
        assert_eq!(layer.kept(), 3);
        let (k, v) = layer.extend(positions(5..6), positions(5..6)).unwrap();
        assert_eq!(flat(&k), [2., 3., 4., 5.]);
        assert_eq!(flat(&v), [2., 3., 4., 5.]);
        let (k, _) = layer.extend(positions(6..8), positions(6..8)).unwrap();
        assert_eq!(flat(&k), [3., 4., 5., 6., 7.]);
        assert_eq!(layer.kept(), 3);
    }

    #[test]
    fn a_global_layer_keeps_everything_and_key_start_follows_the_window() {
        let config = crate::model::Gemma2Config::from_json(
            r#"{"vocab_size": 16, "hidden_size": 8, "intermediate_size": 16,
                "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
                "head_dim": 4, "sliding_window": 4}"#,
        )
        .unwrap();
        let mut cache = KvCache::new(&config, 2);
        let ones = |s| Tensor::ones((1, 1, s, 4), DType::F32, &Device::Cpu).unwrap();
        for (pass, s) in [6usize, 1, 1].into_iter().enumerate() {
            let start = cache.len();
            for layer in 0..2 {
                let (k, _) = cache
                    .layer_mut(layer)
                    .unwrap()
                    .extend(ones(s), ones(s))
                    .unwrap();
                // Layer 0 slides (HF's default: even layers), layer 1 is global.
                let window = config.sliding_window_of(layer);
                assert_eq!(
                    k.dim(2).unwrap(),
                    start + s - cache.key_start(window),
                    "pass {pass}"
                );
            }
            cache.advance(1, s).unwrap();
        }
        assert_eq!(cache.len(), 8);
        assert_eq!(cache.key_start(Some(4)), 5);
        assert_eq!(cache.key_start(None), 0);
        assert!(cache.check_batch(1).is_ok());
        let err = cache.check_batch(2).unwrap_err().to_string();
        assert!(err.contains("holds 1 sequences"), "{err}");
    }
}
