//! `collector_state.safetensors` (resume and merge): the bytes as a collector state, and a
//! state that loads written out as a samples folder, as `merge` does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use saectl::collect::{write_samples_folder, Collector, SaveConfig, TokenDecoder};

struct Ids;

impl TokenDecoder for Ids {
    fn decode(&self, ids: &[u32]) -> String {
        format!("{ids:?}")
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(collector) = Collector::from_state_bytes(data) else {
        return;
    };
    let dir = saectl_fuzz::empty_folder();
    let _ = write_samples_folder(
        dir,
        &collector,
        &Ids,
        &SaveConfig::default(),
        Default::default(),
    );
});
