"""Runs `mlflow server` for the tests until this script's stdin closes.

Usage: python mlflow_server.py PORT ROOT

Starts the server with a SQLite store under ROOT on 127.0.0.1:PORT, prints `ready` once
`/health` answers, then waits for EOF on stdin (the test process ending) and stops the
server and its workers.
"""

import os
import signal
import subprocess
import sys
import time
import urllib.request


def main(port, root):
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    log = open(os.path.join(root, "server.log"), "w")
    proc = subprocess.Popen(
        [
            mlflow, "server",
            "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
            "--default-artifact-root", f"{root}/artifacts",
            "--host", "127.0.0.1",
            "--port", str(port),
        ],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            break
        except Exception:
            if proc.poll() is not None or time.time() > deadline:
                print("failed: see " + os.path.join(root, "server.log"), flush=True)
                stop(proc)
                return 1
            time.sleep(0.3)
    print("ready", flush=True)
    sys.stdin.read()
    stop(proc)
    return 0


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except Exception:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except Exception:
            pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
