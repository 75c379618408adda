//! A `.jsonl` text file, read document by document as `--dataset` reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use saectl::data::{DataSource, SourceOptions};
use saectl::hub::HubSettings;

fuzz_target!(|data: &[u8]| {
    let path = saectl_fuzz::empty_folder().join("corpus.jsonl");
    std::fs::write(&path, data).expect("scratch folder is writable");
    let hub = HubSettings::from_vars(|_| None);
    let Ok(source) = DataSource::resolve(&path.to_string_lossy(), &SourceOptions::default(), &hub)
    else {
        return;
    };
    // A stream ends after its first error.
    for document in source.documents() {
        let _ = document;
    }
});
