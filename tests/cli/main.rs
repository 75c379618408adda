//! The one integration binary: the real `saectl` driven as a user would, on tiny CPU fixtures
//! the project makes itself (no network, no Python).

mod analyze_report;
mod basics;
mod cache;
mod collect;
mod demo;
mod docs;
mod logit_effects;
mod merge;
mod reliability;
mod train;
mod train_jumprelu;
