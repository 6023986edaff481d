#!/bin/bash
# Instructions per event on the logging thread, counted by callgrind: a figure that does
# not move with the machine's load (the criterion times of `caller/*` move by 10-20 %
# between runs on a busy 2-core machine), to compare two builds of the worker's queue.
# Not a replacement for the times: a cache miss costs more than an instruction.
#
#   benches/instructions.sh BENCH_BINARY [BENCH_FILTER...]
#   e.g. benches/instructions.sh target/release/deps/core-<hash> 'caller/trainlog_jsonl$'
#
# Needs valgrind. Prints, per filter, the instructions of `SinkLayer::on_event` (all it
# calls included) divided by the number of events.
set -euo pipefail
bin=$1
shift
[ $# -gt 0 ] || set -- 'caller/trainlog_jsonl$' 'caller/trainlog_jsonl_span_fields'
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for filter in "$@"; do
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --bench "$filter" \
        --profile-time 2 >/dev/null 2>&1
    callgrind_annotate --tree=caller --inclusive=yes "$out" 2>/dev/null |
        grep -B1 '\*  .*SinkLayer.*on_event' | head -2 |
        python3 -c '
import re, sys
caller, total = sys.stdin.read().split("\n")[:2]
events = int(re.search(r"\(([\d,]+)x\)", caller).group(1).replace(",", ""))
instructions = int(total.split()[0].replace(",", ""))
print(f"{sys.argv[1]}: {instructions / events:.0f} instructions per event ({events} events)")
' "$filter"
done
