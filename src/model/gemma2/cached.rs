//! The forward pass over a KV cache: logits of new tokens that follow the cached ones, with an
//! optional edit of the activation at one hook point on every new position (steering).
//!
//! It is the walk of `gemma2.rs` with one difference: each block's attention step reads and
//! extends the layer's cache (`kv_cache.rs`) instead of attending within the input alone. The
//! rotary tables and masks are those of the new tokens' absolute positions, so a prompt run in
//! one pass and then token by token gives the logits of one full forward over the whole
//! sequence (`tests/cli/model/kv_cache.rs`).

use candle_core::{bail, Result, Tensor};

use super::{Gemma2, Stream};
use crate::model::block::{attention_mask_at, PassContext};
use crate::model::hook_point::HookPoint;
use crate::model::kv_cache::KvCache;

/// A change of the activation at `hook`, applied to every position a pass runs: `edit` maps
/// `[batch, new tokens, d_model]` to the same shape. What `saectl steer` adds or clamps.
pub struct HookEdit<'a> {
    pub hook: HookPoint,
    pub edit: &'a dyn Fn(&Tensor) -> Result<Tensor>,
}

impl Gemma2 {
    /// An empty KV cache for this model (one per batch of sequences generated together).
    pub fn new_kv_cache(&self) -> KvCache {
        KvCache::new(&self.config, self.loaded_layers())
    }

    /// Logits `[batch, seq, vocab]` of `input_ids [batch, seq]` following the tokens already in
    /// `cache`, which then covers them too.
    pub fn logits_cached(&self, input_ids: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        self.logits_cached_with(input_ids, cache, None)
    }

    /// [`Gemma2::logits_cached`] with `edit` applied at its hook on every new position (the
    /// cache stores the keys and values computed from the edited stream, as a forward hook in
    /// Hugging Face does). On error the cache is left as it was.
    pub fn logits_cached_with(
        &self,
        input_ids: &Tensor,
        cache: &mut KvCache,
        edit: Option<&HookEdit>,
    ) -> Result<Tensor> {
        self.check_full("logits_cached")?;
        if let Some(edit) = edit {
            self.check_hook(&edit.hook)?;
        }
        if cache.n_layers() != self.loaded_layers() {
            bail!(
                "the KV cache has {} layers but the model {}: it belongs to another model",
                cache.n_layers(),
                self.loaded_layers()
            );
        }
        let stream = self.embed_stream(input_ids)?;
        let (batch, seq, _) = stream.resid.dims3()?;
        cache.check_batch(batch)?;
        let ctx = self.cached_context(cache, seq)?;
        // Tensors are shared, so the copy is cheap; it is kept only when the pass succeeds.
        let mut work = cache.clone();
        let stream = self.walk_cached(stream, &ctx, &mut work, edit)?;
        work.advance(batch, seq)?;
        *cache = work;
        self.unembed(&stream.resid)
    }

    /// The walk of `gemma2.rs` from the embedding to the last block's output, with each
    /// attention step reading and extending `cache`, and `edit` applied at its hook.
    fn walk_cached(
        &self,
        mut stream: Stream,
        ctx: &PassContext,
        cache: &mut KvCache,
        edit: Option<&HookEdit>,
    ) -> Result<Stream> {
        for position in 0..=self.end() {
            if let Some(edit) = edit.filter(|e| e.hook.position() == position) {
                apply_edit(&mut stream, edit, self.dtype)?;
            }
            if position == self.end() {
                break;
            }
            let layer = position / 4;
            stream = match (position % 4, stream.branch) {
                (0, None) => Stream {
                    resid: self.layers[layer].attention_step_cached(
                        &stream.resid,
                        ctx,
                        cache.layer_mut(layer)?,
                    )?,
                    branch: None,
                },
                (_, branch) => {
                    let resid = stream.resid;
                    self.step(position, Stream { resid, branch }, ctx)?
                }
            };
        }
        Ok(stream)
    }

    /// Rotary tables and masks for `seq` new tokens after the `cache.len()` cached ones. The
    /// sliding layers' keys start where their window does (`KvCache::key_start`).
    fn cached_context(&self, cache: &KvCache, seq: usize) -> Result<PassContext> {
        let start = cache.len();
        let (queries, end) = (start..start + seq, start + seq);
        let (cos, sin) = self
            .rotary
            .tables_at(start, seq, self.dtype, &self.device)?;
        let causal_mask =
            attention_mask_at(queries.clone(), 0..end, None, self.dtype, &self.device)?;
        let window = (0..self.n_layers()).find_map(|l| self.config.sliding_window_of(l));
        let sliding_mask = match window {
            Some(w) => {
                let keys = cache.key_start(Some(w))..end;
                Some(attention_mask_at(
                    queries,
                    keys,
                    Some(w),
                    self.dtype,
                    &self.device,
                )?)
            }
            None => None,
        };
        Ok(PassContext {
            cos,
            sin,
            causal_mask,
            sliding_mask,
        })
    }
}

fn apply_edit(stream: &mut Stream, edit: &HookEdit, dtype: candle_core::DType) -> Result<()> {
    let original = stream.activation();
    let new = (edit.edit)(original)?;
    if new.dims() != original.dims() {
        bail!(
            "the edit at `{}` returned shape {:?}, expected {:?}",
            edit.hook,
            new.dims(),
            original.dims()
        );
    }
    stream.replace(new.to_dtype(dtype)?);
    Ok(())
}
