"""Instructions per event of one function, instruction by instruction.

Pairs a callgrind profile taken with `--dump-instr=yes --compress-pos=no
--compress-strings=no` with the function's disassembly (`objdump -d --no-show-raw-insn
-C`, that function only), and prints each instruction executed at least half as often as
the function was entered, with its count per entry. This shows where a hot path spends
instructions that `benches/instructions.sh` counts in total.

    valgrind --tool=callgrind --dump-instr=yes --compress-pos=no --compress-strings=no \
        --callgrind-out-file=/tmp/cg.out BENCH --bench 'caller/trainlog_jsonl$' --profile-time 2
    objdump -d --no-show-raw-insn -C BENCH | awk '/<FUNCTION>:$/{p=1} p{print} p&&/^$/{exit}' > /tmp/fn.txt
    python3 benches/instructions_by_address.py /tmp/cg.out 'FUNCTION' /tmp/fn.txt
"""

import collections
import re
import sys


def main(profile, function, disassembly):
    counts = collections.Counter()
    current, skip = None, False
    for line in open(profile):
        line = line.rstrip("\n")
        if line.startswith("fn="):
            current, skip = line[3:], False
        elif line.startswith("calls="):
            # The next cost line is the call's inclusive cost, not this instruction's.
            skip = True
        elif line.startswith("0x"):
            if skip:
                skip = False
            elif current == function:
                address, _line, cost = line.split()[:3]
                counts[int(address, 16)] += int(cost)
    if not counts:
        sys.exit(f"no costs for {function!r} in {profile}")
    pattern = re.compile(r"\s+([0-9a-f]+):")
    asm = [l for l in open(disassembly).read().split("\n") if pattern.match(l)]
    # The profile has run-time addresses; the disassembly, the file's. The entry
    # instruction is the lowest address executed and the first disassembled.
    base = min(counts) - int(pattern.match(asm[0]).group(1), 16)
    entries = counts[min(counts)]
    total = 0.0
    for line in asm:
        per_entry = counts.get(int(pattern.match(line).group(1), 16) + base, 0) / entries
        total += per_entry
        if per_entry >= 0.5:
            print(f"{per_entry:5.2f} {line}")
    print(f"{entries} entries, {total:.1f} instructions per entry")


if __name__ == "__main__":
    main(*sys.argv[1:4])
