#!/usr/bin/env bash
# `trainlog serve` measured, with TensorBoard beside it in the same run:
#
#   cli/benches/serve.sh [STEPS]     (default 1,000,000; runs are cached under target/)
#
# 1. One run of STEPS steps x 3 metrics, written by trainlog's JSONL and TensorBoard
#    backends (`cli/examples/big_run.rs`). `trainlog serve` on the JSONL and the PyPI
#    `tensorboard` (with its Rust data server) on the event file: the time from start until
#    the first full series (every step, to the last) is served, every series' point count,
#    and each server's peak RSS (TensorBoard's with its data server's).
# 2. 1,000 runs of 1,000 steps: `/api/runs` from start, then warm.
# 3. 10 runs of STEPS steps: one chart's requests (`loss` of each run at points=2000), warm.
#
# Issue 26's targets: 1. <= 0.5x TensorBoard's time, RSS <= TensorBoard's, total = STEPS;
# 2. <= 1 s and <= 50 ms; 3. <= 200 ms.
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${1:-1000000}
cargo build --release -q -p trainlog-cli --bin trainlog --example big_run
base=target/serve-bench
one=$base/run-$steps
if [ ! -s "$one/metrics_rank0.jsonl" ]; then
    rm -rf "$one"
    mkdir -p "$one"
    target/release/examples/big_run "$one" "$steps" async,tensorboard >/dev/null
fi
many=$base/many-1000
if [ ! -d "$many/run-999" ]; then
    rm -rf "$many" "$base/small"
    target/release/examples/big_run "$base/small" 1000 >/dev/null
    mkdir -p "$many"
    for i in $(seq 0 999); do cp -r "$base/small" "$many/run-$i"; done
fi
ten=$base/ten-$steps
if [ ! -d "$ten/run-9" ]; then
    rm -rf "$ten"
    for i in $(seq 0 9); do
        mkdir -p "$ten/run-$i"
        # Hard links: the same bytes, ten runs to the server (which keeps each file).
        ln "$one/metrics_rank0.jsonl" "$ten/run-$i/metrics_rank0.jsonl"
    done
fi
# The same pinned TensorBoard the tests read event files with (tests/support/python.rs).
env=target/tmp/trainlog-pyenv-tensorboard
wanted=tests/python/requirements-tensorboard.txt
if ! cmp -s "$wanted" "$env/installed-requirements.txt"; then
    rm -rf "$env"
    python3 -m venv "$env"
    "$env/bin/pip" install --quiet --disable-pip-version-check -r "$wanted"
    cp "$wanted" "$env/installed-requirements.txt"
fi
python3 cli/benches/serve_bench.py target/release/trainlog "$env/bin/tensorboard" "$one" "$many" "$ten" "$steps"
