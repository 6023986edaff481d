"""Shared helpers: a script run in a fresh interpreter (one pipeline per process), and
the real readers the Rust tests use (TensorBoard's, wandb's), handed over by
`tests/python_package/main.rs` as environment variables."""

import json
import os
import subprocess
import sys
import textwrap

import pytest


def run_script(tmp_path, body, expect_ok=True):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120)
    if expect_ok:
        assert out.returncode == 0, out.stderr
    return out


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def _reader(name, path):
    python = os.environ.get(f"TRAINLOG_{name}_PYTHON")
    script = os.environ.get(f"TRAINLOG_READ_{name}")
    if not (python and script):
        message = (f"TRAINLOG_{name}_PYTHON / TRAINLOG_READ_{name} not set "
                   "(cargo test sets them: tests/python_package)")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    out = subprocess.run([python, script, str(path)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def read_tensorboard():
    """TensorBoard's own loader over a log directory (tests/python/read_tensorboard.py)."""
    return lambda logdir: _reader("TENSORBOARD", logdir)


@pytest.fixture
def read_wandb():
    """wandb's own DataStore over an offline run file (tests/python/read_wandb.py)."""
    return lambda run_file: _reader("WANDB", run_file)
