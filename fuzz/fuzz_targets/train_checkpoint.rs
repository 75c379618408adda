//! What `train --resume` reads: `train_config.json` and a checkpoint folder (the SAE's three
//! files, `trainer_state.json`, `optimizer.safetensors`), loaded back into a trainer.
#![no_main]

use candle_core::Device;
use libfuzzer_sys::fuzz_target;
use saectl::train::{checkpoint, TrainConfig};
use saectl_fuzz::{fixture, folder, pick, FileSlot};

const SLOTS: &[FileSlot] = &[
    FileSlot {
        name: "train_config.json",
        real: fixture!("run/train_config.json"),
    },
    FileSlot {
        name: "trainer_state.json",
        real: fixture!("run/trainer_state.json"),
    },
    FileSlot {
        name: "optimizer.safetensors",
        real: fixture!("run/optimizer.safetensors"),
    },
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

fuzz_target!(|data: &[u8]| {
    let Some((fuzzed, bytes)) = pick(data, SLOTS.len()) else {
        return;
    };
    let dir = folder(SLOTS, fuzzed, bytes);
    let Ok(cfg) = TrainConfig::from_json_file(&dir.join("train_config.json")) else {
        return;
    };
    let _ = checkpoint::load(dir, cfg, &Device::Cpu);
});
