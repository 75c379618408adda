//! Steering made visible on the embedded demo model: an SAE trained here on its residual
//! stream (the demo's hook and recipe, on fewer tokens) has an animal feature, and raising
//! that feature while the model generates turns its words toward animals — far more than the
//! same push along a random direction, the control for "any large push changes the output".
//!
//! The feature is the one whose activation sits most on positions where an animal word comes
//! next: the feature the model uses to predict animals. (The feature that fires *on* animal
//! words makes the model continue as after an animal — `ate`, `ran` — rather than say one;
//! docs/probe.md has both measured.) Words are classified with the corpus grammar's own
//! concept lists, so the measure is independent of the SAE and of the model.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use saectl::demo::corpus_file::{HELD_OUT_SEED, SAE_TRAIN_SEED};
use saectl::demo::embedded::DEMO_HOOK;
use saectl::demo::lm::token_stream;
use saectl::demo::vocab::vocabulary;
use saectl::demo::{Concept, CorpusGenerator};
use saectl::hub::HubSettings;
use saectl::model::{generate, HookEdit, Sampling};
use saectl::model::{load_model, Gemma2, GenerateConfig, HookPoint, LoadOptions, ModelSource};
use saectl::probe::{FeatureEdit, SteerMode, Steering};
use saectl::sae::{Sae, SaeKind};
use saectl::train::{TrainConfig, Trainer};
use saectl::util::rng::SplitMix64;

const SEQ_LEN: usize = 64;
const BATCH: usize = 512;
/// Raise the feature by this much (in activation units): about five times the largest
/// activation it reaches on text, as steering experiments usually push.
const STRENGTH: f32 = 16.0;

fn demo_model() -> Gemma2 {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo-model");
    let options = LoadOptions {
        device: Device::Cpu,
        dtype: DType::F32,
        layers: None,
    };
    let hub = HubSettings::from_vars(|_| None);
    load_model(&ModelSource::Local(dir), &options, &hub)
        .unwrap()
        .model
}

/// Activations `[n, d_model]` at `hook` and their tokens, over `documents` of the corpus
/// with `seed` packed into 64-token rows.
fn activations(
    model: &Gemma2,
    hook: &HookPoint,
    seed: u64,
    documents: usize,
) -> (Tensor, Vec<u32>) {
    let stream = token_stream(&CorpusGenerator::new(seed).documents(documents)).unwrap();
    let tokens = stream[..stream.len() / SEQ_LEN * SEQ_LEN].to_vec();
    let mut parts = Vec::new();
    for chunk in tokens.chunks(64 * SEQ_LEN) {
        let rows = chunk.len() / SEQ_LEN;
        let ids = Tensor::from_vec(chunk.to_vec(), (rows, SEQ_LEN), &Device::Cpu).unwrap();
        let acts = model.forward_to_hook(&ids, hook).unwrap();
        parts.push(acts.reshape(((), model.d_model())).unwrap());
    }
    (Tensor::cat(&parts, 0).unwrap(), tokens)
}

/// The demo's recipe (BatchTopK, k 8, input normalized), 256 latents, one shuffled epoch.
fn train_sae(acts: &Tensor) -> Sae {
    let n = acts.dim(0).unwrap();
    let cfg = TrainConfig {
        sae_type: SaeKind::BatchTopK,
        dict_size: 256,
        top_k: 8,
        top_k_aux: 128,
        batch_size: BATCH,
        lr: 2e-3,
        num_tokens: (n / BATCH * BATCH) as u64,
        seed: 42,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(cfg, acts.dim(1).unwrap(), &Device::Cpu).unwrap();
    let mut rng = SplitMix64(5);
    let mut order: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    for batch in order.chunks_exact(BATCH) {
        let rows = Tensor::new(batch, &Device::Cpu).unwrap();
        trainer.step(&acts.index_select(&rows, 0).unwrap()).unwrap();
    }
    trainer.sae().unwrap()
}

/// The feature with the largest share of its activation on tokens followed by an animal word
/// (among features with at least 5% of the largest total), and that share.
fn animal_predicting_feature(sae: &Sae, acts: &Tensor, tokens: &[u32]) -> (u32, f64) {
    let vocab = vocabulary();
    let dense: Vec<Vec<f32>> = sae.encode(acts).unwrap().to_vec2().unwrap();
    let d_sae = sae.config().d_sae;
    let (mut before_animal, mut total) = (vec![0f64; d_sae], vec![0f64; d_sae]);
    for (row, next) in dense.iter().zip(&tokens[1..]) {
        let animal_next = Concept::of_word(vocab[*next as usize]) == Some(Concept::Animal);
        for (f, &a) in row.iter().enumerate().filter(|(_, &a)| a > 0.0) {
            total[f] += f64::from(a);
            if animal_next {
                before_animal[f] += f64::from(a);
            }
        }
    }
    let floor = total.iter().cloned().fold(0.0, f64::max) * 0.05;
    (0..d_sae)
        .filter(|&f| total[f] > floor)
        .map(|f| (f as u32, before_animal[f] / total[f]))
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
        .unwrap()
}

/// The SAE with feature `f`'s decoder row replaced by a random unit vector: steering through
/// it pushes exactly as hard, in a direction that means nothing.
fn with_random_row(sae: &Sae, f: u32) -> Sae {
    let (config, mut weights) = sae.clone().into_parts();
    let mut rng = SplitMix64(0xD1CE);
    let random: Vec<f32> = (0..config.d_in).map(|_| rng.uniform_sym()).collect();
    let norm = random.iter().map(|v| v * v).sum::<f32>().sqrt();
    let row = Tensor::new(random.as_slice(), &Device::Cpu).unwrap() / f64::from(norm);
    let mut rows: Vec<Tensor> = (0..config.d_sae)
        .map(|i| weights.w_dec.get(i).unwrap())
        .collect();
    rows[f as usize] = row.unwrap();
    weights.w_dec = Tensor::stack(&rows, 0).unwrap();
    Sae::new(config, weights).unwrap()
}

/// Share of the generated tokens that are animal words, over every prompt.
fn animal_share(
    model: &Gemma2,
    hook: HookPoint,
    steering: Option<&Steering>,
    prompts: &[Vec<u32>],
) -> f64 {
    let vocab = vocabulary();
    let config = GenerateConfig {
        max_new_tokens: 32,
        // Sampling (seeded) rather than greedy: greedy text from a small model loops on one
        // sentence. Every condition draws the same random numbers.
        sampling: Sampling::Sample {
            temperature: 1.0,
            top_k: 0,
            seed: 11,
        },
        stop_tokens: vec![],
    };
    let apply = |xs: &Tensor| steering.expect("steering").apply(xs);
    let edit = HookEdit { hook, edit: &apply };
    let (mut animals, mut all) = (0, 0);
    for prompt in prompts {
        let tokens = generate(model, prompt, &config, steering.map(|_| &edit))
            .unwrap()
            .tokens;
        let words: Vec<&str> = tokens
            .iter()
            .map(|&t| vocab.get(t as usize).copied().unwrap_or("?"))
            .collect();
        all += words.len();
        animals += words
            .iter()
            .filter(|w| Concept::of_word(w) == Some(Concept::Animal))
            .count();
    }
    animals as f64 / all as f64
}

#[test]
fn raising_the_animal_feature_turns_generation_toward_animals() {
    let model = demo_model();
    let hook: HookPoint = DEMO_HOOK.parse().unwrap();
    let (train, _) = activations(&model, &hook, SAE_TRAIN_SEED, 1500);
    let sae = train_sae(&train);
    let (held_out, tokens) = activations(&model, &hook, HELD_OUT_SEED, 300);
    let (feature, share) = animal_predicting_feature(&sae, &held_out, &tokens);
    eprintln!("feature {feature}: {share:.2} of its activation is on tokens before an animal word");
    assert!(share > 0.8, "no animal feature: the best has {share:.2}");

    // The first four words of unseen documents, read as documents (BOS first).
    let prompts: Vec<Vec<u32>> = CorpusGenerator::new(99)
        .documents(16)
        .iter()
        .map(|doc| {
            let start: Vec<&str> = doc.split(' ').take(4).collect();
            token_stream(&[start.join(" ")]).unwrap()
        })
        .collect();
    let edits = [FeatureEdit {
        feature,
        value: STRENGTH,
    }];
    let steer =
        |sae: &Sae| Steering::new(sae, SteerMode::Add, &edits, DType::F32, &Device::Cpu).unwrap();
    let plain = animal_share(&model, hook, None, &prompts);
    let steered = animal_share(&model, hook, Some(&steer(&sae)), &prompts);
    let random = animal_share(
        &model,
        hook,
        Some(&steer(&with_random_row(&sae, feature))),
        &prompts,
    );
    eprintln!(
        "animal words among generated tokens: unsteered {plain:.3}, steered {steered:.3}, \
         random direction of the same norm {random:.3}"
    );
    assert!(
        steered >= 2.0 * plain.max(random) && steered - random >= 0.15,
        "steering did not turn the text toward animals: {steered:.3} vs {plain:.3} unsteered, \
         {random:.3} random"
    );
}
