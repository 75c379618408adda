//! Text generation on the KV cache: greedy decoding or seeded sampling, optionally with a
//! [`HookEdit`] (steering) applied at every position — the prompt's and each generated token's.
//!
//! The prompt runs in one cached pass, then one pass per new token. Greedy decoding takes the
//! largest logit (ties to the lower id, as `torch.argmax`), which is what Hugging Face's
//! `generate(do_sample=False)` does, so the steered tokens can be compared with it
//! (`tests/cli/model/steering_reference.rs`). Sampling draws from `softmax(logits / temperature)`,
//! optionally cut to the `top_k` largest, with splitmix64 from a seed: the same seed gives the
//! same tokens on every machine, and two runs that differ only in their edit (steered and
//! unsteered) share their random numbers, so their difference is the edit's.

use candle_core::{bail, DType, IndexOp, Result, Tensor};

use super::gemma2::{Gemma2, HookEdit};
use crate::util::rng::SplitMix64;

/// How the next token is chosen from the logits.
#[derive(Clone, Debug, PartialEq)]
pub enum Sampling {
    /// The most likely token.
    Greedy,
    /// A draw from `softmax(logits / temperature)` over the `top_k` most likely tokens (all of
    /// them when `top_k` is 0).
    Sample {
        temperature: f64,
        top_k: usize,
        seed: u64,
    },
}

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateConfig {
    /// Tokens generated at most (the stop token included).
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// Generation ends after any of these (typically the tokenizer's special tokens).
    pub stop_tokens: Vec<u32>,
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    MaxNewTokens,
    StopToken,
}

/// The generated tokens (after the prompt; a final stop token included).
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    pub tokens: Vec<u32>,
    pub stop: StopReason,
}

/// Generates up to `config.max_new_tokens` tokens after `prompt`, with `edit` (if any) applied
/// at its hook on every position.
pub fn generate(
    model: &Gemma2,
    prompt: &[u32],
    config: &GenerateConfig,
    edit: Option<&HookEdit>,
) -> Result<Generated> {
    if prompt.is_empty() {
        bail!("cannot generate from an empty prompt");
    }
    if let Sampling::Sample { temperature, .. } = config.sampling {
        if !(temperature > 0.0 && temperature.is_finite()) {
            bail!("the sampling temperature must be positive, not {temperature}");
        }
    }
    let mut rng = match config.sampling {
        Sampling::Sample { seed, .. } => SplitMix64(seed),
        Sampling::Greedy => SplitMix64(0),
    };
    let mut cache = model.new_kv_cache();
    let mut input = prompt.to_vec();
    let mut tokens = Vec::with_capacity(config.max_new_tokens);
    while tokens.len() < config.max_new_tokens {
        let ids = Tensor::from_vec(input.clone(), (1, input.len()), model.device())?;
        let logits = model.logits_cached_with(&ids, &mut cache, edit)?; // [1, s, vocab]
        let last = logits
            .i((0, input.len() - 1))?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?;
        let next = choose(&last, &config.sampling, &mut rng)?;
        tokens.push(next);
        if config.stop_tokens.contains(&next) {
            return Ok(Generated {
                tokens,
                stop: StopReason::StopToken,
            });
        }
        input = vec![next];
    }
    Ok(Generated {
        tokens,
        stop: StopReason::MaxNewTokens,
    })
}

/// The next token from one position's `logits [vocab]`.
pub fn choose(logits: &[f32], sampling: &Sampling, rng: &mut SplitMix64) -> Result<u32> {
    if let Some(bad) = logits.iter().position(|l| !l.is_finite()) {
        bail!("the model produced a non-finite logit (token {bad})");
    }
    if logits.is_empty() {
        bail!("the model produced no logits");
    }
    match *sampling {
        Sampling::Greedy => Ok(argmax(logits)),
        Sampling::Sample {
            temperature, top_k, ..
        } => Ok(sample(logits, temperature, top_k, rng.next_u64())),
    }
}

/// Index of the largest value, the first of equal ones.
fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// A draw from the tempered softmax over the `top_k` largest logits (all when 0), by inverting
/// the cumulative distribution at the uniform number `bits / 2^64`. Candidates are ordered by
/// logit (ties: lower id first), so the draw does not depend on the order of equal values.
fn sample(logits: &[f32], temperature: f64, top_k: usize, bits: u64) -> u32 {
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    order.sort_by(|&a, &b| {
        logits[b as usize]
            .total_cmp(&logits[a as usize])
            .then(a.cmp(&b))
    });
    if top_k > 0 {
        order.truncate(top_k);
    }
    let max = f64::from(logits[order[0] as usize]);
    let weights: Vec<f64> = order
        .iter()
        .map(|&t| ((f64::from(logits[t as usize]) - max) / temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let target = (bits >> 11) as f64 / (1u64 << 53) as f64 * total;
    let mut cumulative = 0.0;
    for (&token, weight) in order.iter().zip(&weights) {
        cumulative += weight;
        if target < cumulative {
            return token;
        }
    }
    // Rounding can leave `target` at the very top: the last candidate.
    *order.last().expect("at least one candidate")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_largest_logit() {
        let mut rng = SplitMix64(1);
        let logits = [0.5, 2.0, -1.0, 2.0];
        assert_eq!(choose(&logits, &Sampling::Greedy, &mut rng).unwrap(), 1);
        assert!(choose(&[0.0, f32::NAN], &Sampling::Greedy, &mut rng).is_err());
    }

    #[test]
    fn sampling_follows_the_tempered_softmax_and_top_k() {
        // Logits ln(1), ln(2), ln(3), ln(4) at temperature 1: probabilities 0.1 … 0.4.
        let logits: Vec<f32> = [1f32, 2.0, 3.0, 4.0].iter().map(|p| p.ln()).collect();
        let sampling = |temperature, top_k| Sampling::Sample {
            temperature,
            top_k,
            seed: 0,
        };
        let mut rng = SplitMix64(7);
        let draws = 40_000;
        let mut counts = [0usize; 4];
        for _ in 0..draws {
            counts[choose(&logits, &sampling(1.0, 0), &mut rng).unwrap() as usize] += 1;
        }
        for (token, &count) in counts.iter().enumerate() {
            let expected = (token + 1) as f64 / 10.0;
            let got = count as f64 / draws as f64;
            assert!(
                (got - expected).abs() < 0.01,
                "token {token}: {got} vs {expected}"
            );
        }
        // top_k 2 keeps tokens 3 and 2, in ratio 4 : 3; a tiny temperature is greedy.
        let mut counts = [0usize; 4];
        for _ in 0..draws {
            counts[choose(&logits, &sampling(1.0, 2), &mut rng).unwrap() as usize] += 1;
        }
        assert_eq!(counts[0] + counts[1], 0);
        let ratio = counts[3] as f64 / counts[2] as f64;
        assert!((ratio - 4.0 / 3.0).abs() < 0.05, "{ratio}");
        for _ in 0..100 {
            assert_eq!(choose(&logits, &sampling(1e-4, 0), &mut rng).unwrap(), 3);
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_tokens() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let sampling = Sampling::Sample {
            temperature: 0.8,
            top_k: 10,
            seed: 3,
        };
        let draw = |seed| {
            let mut rng = SplitMix64(seed);
            (0..20)
                .map(|_| choose(&logits, &sampling, &mut rng).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }
}
