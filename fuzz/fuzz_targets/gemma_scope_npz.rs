//! Gemma Scope `params.npz` (a zip of `.npy` arrays), loaded by `load_any`, then used to
//! encode two tokens.
#![no_main]

use candle_core::{DType, Device, Tensor};
use libfuzzer_sys::fuzz_target;
use saectl::sae::import::load_any;

fuzz_target!(|data: &[u8]| {
    let path = saectl_fuzz::empty_folder().join("params.npz");
    std::fs::write(&path, data).expect("scratch folder is writable");
    let Ok(sae) = load_any(&path, &Device::Cpu) else {
        return;
    };
    if let Ok(xs) = Tensor::zeros((2, sae.config().d_in), DType::F32, &Device::Cpu) {
        let _ = sae.encode(&xs);
    }
});
