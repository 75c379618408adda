//! The language model: Gemma-2 on candle, read at TransformerLens hook points.
//!
//! [`HookPoint`] names a site in the residual stream (`blocks.12.hook_resid_post`);
//! [`Gemma2`] runs the forward pass only as far as a hook needs (and can continue from a
//! replaced activation), or token by token over a [`KvCache`], which [`generate()`] drives
//! (greedy or seeded sampling, with an optional [`HookEdit`] for steering); [`load_model`]
//! finds a checkpoint on disk or on the Hugging Face Hub (through [`crate::hub`]);
//! [`resolve_device`] and [`resolve_dtype`] turn `--device` / `--dtype` into candle types at
//! run time. See docs/model.md.

mod block;
pub mod config;
pub mod device;
pub mod gemma2;
pub mod generate;
pub mod hook_point;
pub mod kv_cache;
pub mod loading;
mod open;
pub mod unembed;

pub use block::Kernels;
pub use config::{Gemma2Config, LayerType};
pub use device::{resolve_device, resolve_dtype, DTypeChoice, DeviceChoice, ResolvedDevice};
pub use gemma2::{Gemma2, HookEdit};
pub use generate::{generate, GenerateConfig, Generated, Sampling, StopReason};
pub use hook_point::{HookPoint, HookPointError, HookSite};
pub use kv_cache::KvCache;
pub use loading::{
    load_model, load_tensors, locate, locate_tensors, read_config, LoadOptions, LoadedModel,
    ModelFiles, ModelSource,
};
pub use open::{LocatedModel, ModelSpec, OpenedModel};
pub use unembed::{DirectionLogits, Unembedding};
