#!/usr/bin/env bash
# The rust-version of every package holds for a lock file:
# - the framework packages (trainlog-burn, the candle example) against the workspace's own
#   lock, with their own rust-version (what their framework's release needs: burn 0.22's
#   tree 1.95, candle 0.11's `zip` 1.89);
# - the library, the command line and the demo against a lock resolved for them alone, with
#   Cargo's MSRV-aware resolution (what a user on their rust-version gets): in the
#   workspace's lock, a framework's tree can raise shared dependencies (burn's pulls
#   icu 2.4, Rust 1.88, which the library's `url` then shares).
set -euo pipefail
cd "$(dirname "$0")/.."
adapters=(trainlog-burn trainlog-candle-example)
cargo metadata --format-version 1 --all-features --locked | python3 .ci/check_msrv.py "${adapters[@]}"
alone=$(mktemp -d)
trap 'rm -rf "$alone"' EXIT
git ls-files -z | xargs -0 cp --parents -t "$alone"
cd "$alone"
sed -i 's/^members = .*/members = ["cli", "demo"]/' Cargo.toml
rm -f Cargo.lock
CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo generate-lockfile --quiet
cargo metadata --format-version 1 --all-features --locked | python3 .ci/check_msrv.py trainlog trainlog-cli trainlog-demo
