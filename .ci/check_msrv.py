"""Fails when a locked dependency (any feature) needs a newer Rust than the rust-version of a
workspace package that depends on it.

Each package of the workspace is checked against its own dependency tree: the library, the
command line and the demo declare the library's MSRV; a framework adapter (trainlog-burn)
declares what its framework's release needs, and does not raise the library's.

usage: cargo metadata --format-version 1 --all-features --locked | python3 .ci/check_msrv.py [PACKAGE...]
(every workspace package, or those named)
"""

import json
import sys


def version(text):
    return tuple(int(x) for x in text.split(".")[:2])


meta = json.load(sys.stdin)
packages = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
members = meta["workspace_members"]
if len(sys.argv) > 1:
    members = [m for m in members if packages[m]["name"] in sys.argv[1:]]
    if len(members) != len(sys.argv) - 1:
        sys.exit("not all of {} are workspace packages".format(sys.argv[1:]))


def tree(root):
    """The package ids `root` builds with: its dependencies of every kind (tests, examples
    and benches are built too), and theirs for normal and build use."""
    seen = set()
    stack = [(root, True)]
    while stack:
        pid, is_root = stack.pop()
        for dep in nodes[pid]["deps"]:
            kinds = {k["kind"] for k in dep["dep_kinds"]}
            if not is_root and kinds <= {"dev"}:
                continue
            if dep["pkg"] not in seen:
                seen.add(dep["pkg"])
                stack.append((dep["pkg"], False))
    return seen


failed = False
for member in members:
    ours = packages[member]
    if not ours.get("rust_version"):
        sys.exit(f"{ours['name']} declares no rust-version")
    msrv = version(ours["rust_version"])
    bad = sorted(
        "{} {} needs Rust {}".format(p["name"], p["version"], p["rust_version"])
        for p in (packages[i] for i in tree(member))
        if p.get("rust_version") and version(p["rust_version"]) > msrv
    )
    if bad:
        failed = True
        print("{} {}: rust-version {} is not true for the lock file:\n  {}".format(
            ours["name"], ours["version"], ours["rust_version"], "\n  ".join(bad)))
    else:
        print("{}: every locked dependency builds with Rust {}".format(
            ours["name"], ours["rust_version"]))
if failed:
    sys.exit(1)
