//! The package of the `candle_mlp` example (see `examples/candle_mlp.rs`): a candle training
//! loop logging through trainlog. It has no library code of its own.
