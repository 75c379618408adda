//! SAE checkpoint folders: saectl's (`saectl.json`, `cfg.json`, `sae_weights.safetensors`)
//! and SAELens's (`cfg.json`, `sae_weights.safetensors`), loaded by `load_any` as every
//! command does, then used to encode two tokens.
#![no_main]

use candle_core::{Device, Tensor};
use libfuzzer_sys::fuzz_target;
use saectl::sae::import::load_any;
use saectl_fuzz::{fixture, folder, pick, test_fixture, FileSlot};

const SAECTL: &[FileSlot] = &[
    FileSlot {
        name: "saectl.json",
        real: fixture!("run/saectl.json"),
    },
    FileSlot {
        name: "cfg.json",
        real: fixture!("run/cfg.json"),
    },
    FileSlot {
        name: "sae_weights.safetensors",
        real: fixture!("run/sae_weights.safetensors"),
    },
];

const SAELENS: &[FileSlot] = &[
    FileSlot {
        name: "cfg.json",
        real: test_fixture!("sae/saelens_jumprelu/cfg.json"),
    },
    FileSlot {
        name: "sae_weights.safetensors",
        real: test_fixture!("sae/saelens_jumprelu/sae_weights.safetensors"),
    },
];

fuzz_target!(|data: &[u8]| {
    // Selectors 0–2: a file of saectl's folder; 3–4: a file of SAELens's.
    let Some((choice, bytes)) = pick(data, SAECTL.len() + SAELENS.len()) else {
        return;
    };
    let dir = match choice.checked_sub(SAECTL.len()) {
        None => folder(SAECTL, choice, bytes),
        Some(i) => folder(SAELENS, i, bytes),
    };
    let Ok(sae) = load_any(dir, &Device::Cpu) else {
        return;
    };
    let d_in = sae.config().d_in;
    if let Ok(xs) = Tensor::zeros((2, d_in), candle_core::DType::F32, &Device::Cpu) {
        let _ = sae.encode(&xs);
    }
});
