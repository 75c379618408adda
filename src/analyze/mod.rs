//! Analysis of a samples folder: pure functions over a loaded `SamplesFolder`.
