//! `tokenizer.json` (a model's, or the copy in a cache), loaded as `cache`, `train` and
//! `collect` load it, then used to encode a sentence and decode it back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use saectl::data::{Bos, DocumentTokenizer};

fuzz_target!(|data: &[u8]| {
    let path = saectl_fuzz::empty_folder().join("tokenizer.json");
    std::fs::write(&path, data).expect("scratch folder is writable");
    let Ok(tokenizer) = DocumentTokenizer::from_file(&path, Bos::None) else {
        return;
    };
    let _ = tokenizer.special_token_ids();
    if let Ok(ids) = tokenizer.encode("The cat sat on the mat, 42 times. Ünïcödé ✓") {
        let _ = tokenizer.tokenizer().decode(&ids, false);
    }
});
