//! The demo of trainlog lives in `examples/train_loop.rs` of this package: a simulated
//! training loop, run from the workspace root with
//! `cargo run --release --example train_loop -- --output-dir runs/demo --steps 1000`.
//! This package exists so that the demo builds without the library's test-only
//! dependencies; it has no API.
