#!/usr/bin/env bash
# How the command line reads a run of the size people train, against a baseline in the
# same run: Python's `json.loads` over the same lines (parsing only, no work after it).
#
#   cli/benches/reading.sh [STEPS]     (default 1,000,000; the run is cached under target/)
#
# Writes the run with trainlog's own JSONL backend (`cli/examples/big_run.rs`: loss, lr and
# grad.norm, uniform noise), then prints wall time and peak RSS (GNU time) per command and
# each time's ratio to the baseline's. Figures for issue 25's targets: ls/show <= 0.25x the
# baseline and <= 64 MiB; compare of two runs <= 0.5x; plot to PNG and SVG <= 0.5x and
# <= 128 MiB, SVG <= 2 MB.
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${1:-1000000}
dir=target/reading/run-$steps
cargo build --release -q -p trainlog-cli --bin trainlog --example big_run
if [ ! -s "$dir/metrics_rank0.jsonl" ]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    target/release/examples/big_run "$dir" "$steps" >/dev/null
fi
file=$dir/metrics_rank0.jsonl
echo "run: $steps steps, $(du -m "$file" | cut -f1) MB of JSONL"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
measure() { # NAME COMMAND... -> "NAME seconds peak_MiB"
    local name=$1
    shift
    /usr/bin/time -f '%e %M' -o "$out/time" "$@" >"$out/stdout" 2>"$out/stderr" ||
        { echo "$name failed:"; cat "$out/stderr"; exit 1; }
    read -r secs kib <"$out/time"
    echo "$name $secs $((kib / 1024))"
}
baseline=$(measure baseline python3 -c '
import json, sys
with open(sys.argv[1], "rb") as f:
    for line in f:
        json.loads(line)' "$file")
base=$(echo "$baseline" | cut -d' ' -f2)
{
    echo "$baseline"
    measure ls target/release/trainlog ls "$dir"
    measure show target/release/trainlog show "$dir"
    measure compare target/release/trainlog compare "$dir" "$dir"
    measure plot_png target/release/trainlog plot "$dir" -o "$out/plot.png"
    measure plot_svg target/release/trainlog plot "$dir" -o "$out/plot.svg"
    measure plot_noise_png target/release/trainlog plot "$dir" -m grad.norm -o "$out/noise.png"
} | while read -r name secs mib; do
    printf '%-16s %8.2f s  %6d MiB  %5.2fx baseline\n' "$name" "$secs" "$mib" \
        "$(python3 -c "print($secs / $base)")"
done
echo "svg size: $(du -k "$out/plot.svg" | cut -f1) KiB"
