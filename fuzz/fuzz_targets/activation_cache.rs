//! An activation cache folder (`cache_index.json`, a shard), opened and read shard by shard
//! as `train` and `collect` read it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use saectl::data::cache::ActivationCache;
use saectl_fuzz::{fixture, folder, pick, FileSlot};

const SLOTS: &[FileSlot] = &[
    FileSlot {
        name: "cache_index.json",
        real: fixture!("cache/cache_index.json"),
    },
    FileSlot {
        name: "shard_00000.safetensors",
        real: fixture!("cache/shard_00000.safetensors"),
    },
];

fuzz_target!(|data: &[u8]| {
    let Some((fuzzed, bytes)) = pick(data, SLOTS.len()) else {
        return;
    };
    let dir = folder(SLOTS, fuzzed, bytes);
    let Ok(cache) = ActivationCache::open(dir) else {
        return;
    };
    for shard in cache.shards() {
        let _ = shard;
    }
});
