//! A samples folder (feature file, `collection_summary.json`, `logit_effects.json`) read as
//! `analyze` and `report` read it, then rendered by both.
#![no_main]

use libfuzzer_sys::fuzz_target;
use saectl::analyze;
use saectl::collect::SamplesFolder;
use saectl::report::{render_report, ReportOptions};
use saectl_fuzz::{fixture, folder, pick, FileSlot};

const SLOTS: &[FileSlot] = &[
    FileSlot {
        name: "feature_00003_samples.json",
        real: fixture!("samples/feature_00003_samples.json"),
    },
    FileSlot {
        name: "collection_summary.json",
        real: fixture!("samples/collection_summary.json"),
    },
    FileSlot {
        name: "logit_effects.json",
        real: fixture!("samples/logit_effects.json"),
    },
];

fuzz_target!(|data: &[u8]| {
    let Some((fuzzed, bytes)) = pick(data, SLOTS.len()) else {
        return;
    };
    let dir = folder(SLOTS, fuzzed, bytes);
    let Ok(samples) = SamplesFolder::load(dir) else {
        return;
    };
    let _ = render_report(&samples, &ReportOptions::default());
    let _ = analyze::overview(&samples, 10).render_text();
    for &feature in samples.features.keys() {
        let _ = analyze::feature_report(&samples, feature, 5);
        if let Ok(view) = analyze::feature_histogram(&samples, feature, Some(7)) {
            let _ = view.to_svg();
        }
        let _ = analyze::feature_histogram(&samples, feature, None);
    }
});
