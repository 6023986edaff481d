#!/usr/bin/env bash
# Builds the Python package into a venv under target/ and runs its tests (pytest), the way
# a user installs it: `pip install ./python`.
set -euo pipefail
cd "$(dirname "$0")/.."
env=target/python-venv
if [ ! -x "$env/bin/pytest" ]; then
    python3 -m venv "$env"
    "$env/bin/pip" install --quiet --disable-pip-version-check "maturin>=1.9,<2" pytest==8.4.2
fi
"$env/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python
"$env/bin/pytest" -q python/tests
