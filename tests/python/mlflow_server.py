"""Runs `mlflow server` for the tests until this script's stdin closes.

Usage: python mlflow_server.py PORT ROOT [ADMIN_PASSWORD]

Starts the server with a SQLite store under ROOT on 127.0.0.1:PORT (with ADMIN_PASSWORD:
MLflow's basic-auth app, user `admin`), prints `ready` once
`/health` answers, then waits for EOF on stdin (the test process ending) and stops the
server and its workers.
"""

import os
import signal
import subprocess
import sys
import time
import urllib.request


def main(port, root, admin_password=None):
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    log = open(os.path.join(root, "server.log"), "w")
    args = [
        mlflow, "server",
        "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
        "--default-artifact-root", f"{root}/artifacts",
        "--host", "127.0.0.1",
        "--port", str(port),
    ]
    env = dict(os.environ)
    if admin_password:
        config = os.path.join(root, "auth.ini")
        with open(config, "w") as f:
            f.write(
                "[mlflow]\n"
                "default_permission = READ\n"
                f"database_uri = sqlite:///{root}/basic_auth.db\n"
                "admin_username = admin\n"
                f"admin_password = {admin_password}\n"
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            )
        env["MLFLOW_AUTH_CONFIG_PATH"] = config
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = "trainlog-tests"
        args += ["--app-name", "basic-auth"]
    proc = subprocess.Popen(
        args,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
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
    sys.exit(main(*sys.argv[1:4]))
