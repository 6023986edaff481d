#!/usr/bin/env bash
# Builds the Python package into a venv under target/ and runs its tests (pytest), the way
# a user installs it: `pip install ./python`. With --install-only, builds and installs it
# and prints the venv's interpreter (for the command line's tests, which read its files).
set -euo pipefail
cd "$(dirname "$0")/.."
env=target/python-venv
# One build at a time (test binaries of different packages may both want it).
exec 9>target/python-venv.lock
flock 9
if [ ! -x "$env/bin/pytest" ]; then
    python3 -m venv "$env"
    "$env/bin/pip" install --quiet --disable-pip-version-check "maturin>=1.9,<2" pytest==8.4.2
fi
"$env/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python
if [ "${1:-}" = "--install-only" ]; then
    echo "$PWD/$env/bin/python"
    exit 0
fi
"$env/bin/pytest" -q python/tests
