#!/usr/bin/env bash
# python/benches/bench.py in a venv of its own under target/, with the package built as a
# user would (pip install ./python) and wandb pinned as the tests pin it.
set -euo pipefail
cd "$(dirname "$0")/../.."
env=target/python-bench-venv
if [ ! -x "$env/bin/python" ]; then
    python3 -m venv "$env"
    "$env/bin/pip" install --quiet --disable-pip-version-check "maturin>=1.9,<2" -r tests/python/requirements-wandb.txt
fi
"$env/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$env/bin/python" python/benches/bench.py "$out" --wandb
