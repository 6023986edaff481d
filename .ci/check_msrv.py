"""Fails when a locked dependency (any feature) needs a newer Rust than our rust-version.

usage: cargo metadata --format-version 1 --all-features --locked | python3 .ci/check_msrv.py
"""

import json
import sys


def version(text):
    return tuple(int(x) for x in text.split(".")[:2])


meta = json.load(sys.stdin)
ours = next(p for p in meta["packages"] if p["name"] == "trainlog")
msrv = version(ours["rust_version"])
used = {node["id"] for node in meta["resolve"]["nodes"]}
bad = [
    "{} {} needs Rust {}".format(p["name"], p["version"], p["rust_version"])
    for p in meta["packages"]
    if p["id"] in used and p.get("rust_version") and version(p["rust_version"]) > msrv
]
if bad:
    sys.exit("rust-version {} is not true for the lock file:\n  {}".format(
        ours["rust_version"], "\n  ".join(bad)))
print("every locked dependency builds with Rust", ours["rust_version"])
