//! Collector tests: the Python original's behaviours, and randomized comparison with a
//! brute-force reference (sort everything seen, then deduplicate and cut).

mod behaviour;
mod reference;
mod run;
mod state;
mod support;
