//! The KV cache against the uncached forward on the tiny Gemma-2 (sliding window 8 on even
//! layers, global odd layers, both soft-caps, 4 query heads over 2 key/value heads): a
//! sequence run in chunks of any size through the cache gives the logits of one full pass,
//! at every position, well past the window; edits at a hook too; greedy generation equals
//! re-running the whole sequence at every step.

use candle_core::{DType, Device, IndexOp, Tensor};
use saectl::model::{generate, GenerateConfig, HookEdit, HookPoint, Sampling, StopReason};

use super::common::{input_ids, reference, relative_error, tiny_model};

/// f32 on both sides; the cached pass sums attention over fewer (masked-out) keys.
const TOLERANCE: f32 = 1e-5;

/// Runs `ids [batch, seq]` through a fresh cache in chunks of the given sizes and returns
/// the concatenated logits `[batch, seq, vocab]`.
fn chunked_logits(ids: &Tensor, chunks: &[usize]) -> Tensor {
    let model = tiny_model(None);
    let mut cache = model.new_kv_cache();
    let mut start = 0;
    let mut parts = Vec::new();
    for &len in chunks {
        let chunk = ids.narrow(1, start, len).unwrap();
        parts.push(model.logits_cached(&chunk, &mut cache).unwrap());
        start += len;
        assert_eq!(cache.len(), start);
    }
    assert_eq!(
        start,
        ids.dim(1).unwrap(),
        "the chunks must cover the sequence"
    );
    Tensor::cat(&parts, 1).unwrap()
}

#[test]
fn cached_logits_equal_the_full_forward_at_every_position() {
    let model = tiny_model(None);
    let ids = input_ids(&reference()); // [2, 24]: window 8, a second BOS at 12 in row 1
    let full = model.logits(&ids).unwrap();
    let one_by_one = [1; 24];
    let mixed = [5, 1, 1, 3, 1, 8, 1, 1, 2, 1];
    let prompt_then_tokens: Vec<usize> = std::iter::once(10).chain([1; 14]).collect();
    for chunks in [
        &one_by_one[..],
        &mixed[..],
        &prompt_then_tokens[..],
        &[24][..],
    ] {
        let cached = chunked_logits(&ids, chunks);
        for position in 0..24 {
            let error = relative_error(
                &cached.i((.., position)).unwrap(),
                &full.i((.., position)).unwrap(),
            );
            assert!(
                error < TOLERANCE,
                "chunks {chunks:?}, position {position}: relative error {error:e}"
            );
        }
        println!(
            "chunks {chunks:?}: max relative error {:.1e}",
            relative_error(&cached, &full)
        );
    }
}

/// The cache is not a no-op: reusing it for an unrelated sequence changes the logits, and the
/// window matters (dropping the sliding layers' trim would show here as well).
#[test]
fn the_cached_context_is_what_the_tokens_see() {
    let model = tiny_model(None);
    let ids = input_ids(&reference()).i(0..1).unwrap(); // [1, 24]
    let full = model.logits(&ids).unwrap();
    let mut cache = model.new_kv_cache();
    model
        .logits_cached(&ids.narrow(1, 0, 23).unwrap(), &mut cache)
        .unwrap();
    let last = model
        .logits_cached(&ids.narrow(1, 23, 1).unwrap(), &mut cache)
        .unwrap();
    assert!(relative_error(&last.i((.., 0)).unwrap(), &full.i((.., 23)).unwrap()) < TOLERANCE);
    // The same last token with an empty cache: a different context, different logits.
    let alone = model.logits_cached(&ids.narrow(1, 23, 1).unwrap(), &mut model.new_kv_cache());
    let error = relative_error(
        &alone.unwrap().i((.., 0)).unwrap(),
        &full.i((.., 23)).unwrap(),
    );
    assert!(error > 1e-2, "the context had no effect: {error:e}");
}

#[test]
fn an_edit_at_a_hook_matches_the_same_replacement_in_the_full_pass() {
    let model = tiny_model(None);
    let ids = input_ids(&reference());
    let d = model.d_model();
    let values: Vec<f32> = (0..d).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.3).collect();
    let vector = Tensor::from_vec(values, d, &Device::Cpu).unwrap();
    let add = |xs: &Tensor| xs.broadcast_add(&vector);
    for name in [
        "blocks.0.hook_resid_pre",
        "blocks.1.hook_resid_post",
        "blocks.2.ln2.hook_normalized",
        "blocks.3.hook_resid_post",
    ] {
        let hook: HookPoint = name.parse().unwrap();
        let full = model.logits_with_replacement(&ids, &hook, add).unwrap();
        let plain = model.logits(&ids).unwrap();
        assert!(
            relative_error(&full, &plain) > 1e-3,
            "{name}: the edit did nothing"
        );
        let edit = HookEdit { hook, edit: &add };
        let mut cache = model.new_kv_cache();
        let mut parts = Vec::new();
        for (start, len) in [(0, 9), (9, 1), (10, 1), (11, 13)] {
            let chunk = ids.narrow(1, start, len).unwrap();
            parts.push(
                model
                    .logits_cached_with(&chunk, &mut cache, Some(&edit))
                    .unwrap(),
            );
        }
        let cached = Tensor::cat(&parts, 1).unwrap();
        let error = relative_error(&cached, &full);
        assert!(error < TOLERANCE, "{name}: relative error {error:e}");
    }
}

#[test]
fn greedy_generation_equals_rerunning_the_whole_sequence_each_step() {
    let model = tiny_model(None);
    let prompt: Vec<u32> = vec![2, 17, 93, 5, 211];
    let config = GenerateConfig {
        max_new_tokens: 20, // 25 tokens in all: three times the window
        sampling: Sampling::Greedy,
        stop_tokens: vec![],
    };
    let generated = generate(&model, &prompt, &config, None).unwrap();
    assert_eq!(generated.stop, StopReason::MaxNewTokens);
    let mut sequence = prompt.clone();
    for &token in &generated.tokens {
        let ids = Tensor::new(sequence.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits = model
            .logits(&ids)
            .unwrap()
            .i((0, sequence.len() - 1))
            .unwrap();
        let expected = logits.argmax(0).unwrap().to_scalar::<u32>().unwrap();
        assert_eq!(token, expected, "after {sequence:?}");
        sequence.push(token);
    }
    // A stop token ends generation and is returned.
    let first = generated.tokens[0];
    let stopping = GenerateConfig {
        stop_tokens: vec![first],
        ..config
    };
    let stopped = generate(&model, &prompt, &stopping, None).unwrap();
    assert_eq!(
        (stopped.tokens, stopped.stop),
        (vec![first], StopReason::StopToken)
    );
}

#[test]
fn a_cache_is_refused_by_another_batch_or_model_and_survives_an_error() {
    let model = tiny_model(None);
    let ids = input_ids(&reference());
    let full = model.logits(&ids).unwrap();
    let mut cache = model.new_kv_cache();
    model
        .logits_cached(&ids.narrow(1, 0, 6).unwrap(), &mut cache)
        .unwrap();

    let one_row = ids.i(0..1).unwrap().narrow(1, 6, 1).unwrap();
    let err = model
        .logits_cached(&one_row, &mut cache)
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds 2 sequences"), "{err}");
    let out_of_vocab = Tensor::new(&[[7u32], [256]], &Device::Cpu).unwrap();
    assert!(model.logits_cached(&out_of_vocab, &mut cache).is_err());
    let bad_edit = |xs: &Tensor| xs.narrow(2, 0, 3);
    let edit = HookEdit {
        hook: "blocks.1.hook_resid_post".parse().unwrap(),
        edit: &bad_edit,
    };
    let err = model
        .logits_cached_with(&ids.narrow(1, 6, 1).unwrap(), &mut cache, Some(&edit))
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected [2, 1, 64]"), "{err}");
    assert_eq!(
        cache.len(),
        6,
        "a failed pass must leave the cache as it was"
    );
    let rest = model
        .logits_cached(&ids.narrow(1, 6, 18).unwrap(), &mut cache)
        .unwrap();
    assert!(relative_error(&rest, &full.narrow(1, 6, 18).unwrap()) < TOLERANCE);

    let partial = tiny_model(Some(2));
    let err = partial
        .logits_cached(&ids, &mut partial.new_kv_cache())
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs all 4 layers"), "{err}");
    let err = model
        .logits_cached(&ids, &mut partial.new_kv_cache())
        .unwrap_err()
        .to_string();
    assert!(err.contains("another model"), "{err}");
    let empty = Tensor::zeros((1, 0), DType::U32, &Device::Cpu).unwrap();
    assert!(generate(
        &model,
        &[],
        &GenerateConfig {
            max_new_tokens: 3,
            sampling: Sampling::Greedy,
            stop_tokens: vec![]
        },
        None
    )
    .is_err());
    assert!(model
        .logits_cached(&empty, &mut model.new_kv_cache())
        .is_err());
}
