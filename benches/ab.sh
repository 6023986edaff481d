#!/bin/bash
# Alternating A/B runs of the caller benches: two bench binaries (OLD NEW), N rounds,
# medians and the median of per-round ratios (rounds share the machine's state).
# Writes the raw figures to /tmp/ab.out.
# usage: ab.sh OLD NEW N FILTER
OLD=$1; NEW=$2; N=${3:-6}; F=${4:-'caller/(trainlog_jsonl$|trainlog_jsonl_span_fields|floor_noop_layer)'}
for i in $(seq $N); do
  for which in old new; do
    bin=$OLD; [ $which = new ] && bin=$NEW
    $bin --bench "$F" --warm-up-time 1 --measurement-time 3 --noplot 2>/dev/null | awk -v w=$which '/^[a-z_0-9]+\//{name=$1} /time: +\[/ && !/%/ {for(i=1;i<=NF;i++) if($i ~ /^\[/){print w, name, $(i+2), $(i+3); break}}'
  done
done > /tmp/ab.out
python3 - <<'PY'
import collections,statistics
d=collections.defaultdict(list)
for l in open('/tmp/ab.out'):
    w,name,v,u=l.split()
    v=float(v); v = v/1000 if u=='ps' else v*1000 if u=='µs' else v
    d[(name,w)].append(v)
for name in sorted({k[0] for k in d}):
    o=statistics.median(d[(name,'old')]); n=statistics.median(d[(name,'new')])
    print(f"{name:45s} old {o:7.1f} new {n:7.1f} ratio {n/o:5.2f}  old={sorted(round(x) for x in d[(name,'old')])} new={sorted(round(x) for x in d[(name,'new')])}")
PY
python3 - <<'PY'
import collections,statistics
seq=collections.defaultdict(lambda: {'old':[], 'new':[]})
for l in open('/tmp/ab.out'):
    w,name,v,u=l.split()
    v=float(v); v = v/1000 if u=='ps' else v*1000 if u=='µs' else v*1e6 if u=='ms' else v
    seq[name][w].append(v)
for name,d in sorted(seq.items()):
    r=[n/o for o,n in zip(d['old'],d['new'])]
    print(f"{name:45s} pair ratios median {statistics.median(r):.3f}  {sorted(round(x,2) for x in r)}")
PY
