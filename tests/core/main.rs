//! Core pipeline tests: capture, JSONL content read back, filters, ranks, failures, load.

mod capture;
mod edges;
mod failure;
mod filters;
mod histograms;
mod lanes;
mod load;
mod nonfinite;
mod props;
#[path = "../support/skip.rs"]
mod skip;
mod spans;
mod support;
mod system;
