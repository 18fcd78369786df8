"""Start and stop the two MLflow servers deepromo uses, as context managers and a small CLI.

``tracking_server(root)``: ``mlflow server`` with a SQLite backend and proxied artifacts under ``root`` (the registry;
clients need only its HTTP URI). ``model_server(model_uri)``: ``mlflow models serve`` answering ``/invocations``.
Each waits until the server answers its health check, yields the base URL and stops the process group on exit.

    python -m deepromo.serving.servers tracking --root DIR [--port N]
    python -m deepromo.serving.servers model --model-uri URI [--port N]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_S = 180.0  # a cold start on a busy 2-core machine imports torch, MLflow and migrates the database
STOP_GRACE_S = 10.0  # seconds between SIGTERM and SIGKILL
LOG_TAIL_LINES = 25


class ServerError(RuntimeError):
    """A server that cannot be started: its command is missing, it exited early or never became ready."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` now (the OS picks it for a socket bound to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def require_free_port(port: int, host: str = LOOPBACK) -> int:
    """``port``, after checking nothing listens on it: another server there would answer the readiness check."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is no obstacle
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ServerError(f"port {port} on {host} is not free ({exc.strerror}): stop what listens there or "
                              "leave the port out to get a free one") from None
    return port


def mlflow_command() -> str:
    """The ``mlflow`` CLI of this Python environment (beside ``sys.executable``), else the one on ``PATH``."""
    beside = Path(sys.executable).parent / "mlflow"
    found = str(beside) if beside.exists() else shutil.which("mlflow")
    if found is None:
        raise ServerError(f"the 'mlflow' command is missing (not in {beside.parent} nor on PATH): "
                          "pip install mlflow into this environment")
    return found


def server_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a server: this environment's bin folder first on ``PATH`` (``mlflow models
    serve`` runs ``uvicorn`` from ``PATH``), telemetry off unless set, then ``extra``."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.update(extra or {})
    return env


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a server's log file ('' if it has none)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def is_ready(url: str) -> bool:
    """True when ``GET url`` answers 200 (no proxy: the servers are on loopback or the caller's own network)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            return response.status == 200
    except (OSError, http.client.HTTPException):  # refused, reset, timed out, an error status, not HTTP at all
        return False


def stop_process_group(process: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the process group of ``process`` (the server and its workers), SIGKILL after ``grace_s``; wait."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, grace_s)):
        if process.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait_s)
    with contextlib.suppress(ProcessLookupError):  # workers that outlived their parent
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def running(command: Sequence[str], health_url: str, log_path: Path, what: str,
            env: Mapping[str, str] | None = None, startup_timeout: float = STARTUP_TIMEOUT_S) -> Iterator[None]:
    """Run ``command`` in its own process group (output to ``log_path``) until the block ends; wait for
    ``health_url`` to answer 200 first. A server that exits or is not ready in ``startup_timeout`` seconds is a
    ServerError carrying the tail of its log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:  # a file, not a pipe: a pipe nobody reads fills up and blocks the server
        process = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env=server_environment(env), start_new_session=True)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:  # exit checked before readiness: another server on a taken port must not pass for this one
            if process.poll() is not None:
                raise ServerError(f"{what} exited with code {process.returncode} before it was ready "
                                  f"(log {log_path}):\n{log_tail(log_path)}")
            if is_ready(health_url):
                break
            if time.monotonic() > deadline:
                raise ServerError(f"{what} did not answer {health_url} within {startup_timeout:.0f} s "
                                  f"(log {log_path}):\n{log_tail(log_path)}")
            time.sleep(0.5)
        yield
    finally:
        stop_process_group(process)


@contextlib.contextmanager
def tracking_server(root: str | os.PathLike, port: int | None = None, host: str = LOOPBACK, workers: int = 1,
                    startup_timeout: float = STARTUP_TIMEOUT_S) -> Iterator[str]:
    """An MLflow tracking server (runs and the model registry) over ``root``; yields its URL ``http://host:port``.

    Backend store ``sqlite:///<root>/mlflow.db``; artifacts in ``<root>/artifacts``, served through the server
    (``mlflow-artifacts:/``), so a client that has only the URL can log and load models. Log: ``<root>/server.log``.
    port: default a free one. host: ``0.0.0.0`` to accept other machines.
    """
    root = Path(root).resolve()
    (root / "artifacts").mkdir(parents=True, exist_ok=True)
    port = require_free_port(port, host) if port else free_port(host if host != "0.0.0.0" else LOOPBACK)
    command = [mlflow_command(), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
               "--serve-artifacts", "--artifacts-destination", str(root / "artifacts"),
               "--host", host, "--port", str(port), "--workers", str(workers)]
    local = LOOPBACK if host == "0.0.0.0" else host
    # MLflow's server-side job runner (GenAI jobs; the registry does not use it) adds eight huey processes that
    # outlive SIGTERM by seconds: off unless the caller's environment turns it on.
    jobs = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")}
    with running(command, f"http://{local}:{port}/health", root / "server.log", f"mlflow server on port {port}",
                 env=jobs, startup_timeout=startup_timeout):
        yield f"http://{local}:{port}"


def local_model_copy(model_uri: str, into: Path) -> Path:
    """A local folder of the MLflow model at ``model_uri`` (downloaded from the tracking store named by
    ``MLFLOW_TRACKING_URI`` for ``models:/`` and ``runs:/``), its code file checked against the hash recorded when
    it was logged: ``mlflow models serve`` executes that file."""
    from deepromo.serving.checkpoints import MissingCheckpointError, verify_pyfunc_code
    from deepromo.serving.tracking import disable_telemetry, tracking_uri

    disable_telemetry()
    import mlflow

    if Path(model_uri).is_dir():
        verify_pyfunc_code(model_uri, model_uri)
        return Path(model_uri)
    if ":/" not in model_uri:  # neither a folder nor a URI (models:/, runs:/, file:, s3://, mlflow-artifacts:/)
        raise MissingCheckpointError(f"no MLflow model folder at '{model_uri}' (nor is it a model URI such as "
                                     "models:/NAME@alias)")
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(into)))
    except mlflow.exceptions.MlflowException as exc:  # unknown name, alias, version or run
        first = str(exc.message).strip().splitlines()[0]
        raise MissingCheckpointError(f"'{model_uri}' is not in the tracking store {tracking_uri()}: {first}") from None
    verify_pyfunc_code(local, model_uri)
    return local


@contextlib.contextmanager
def model_server(model_uri: str, port: int | None = None, host: str = LOOPBACK, env: Mapping[str, str] | None = None,
                 workers: int = 1, request_timeout_s: int = 60,
                 startup_timeout: float = STARTUP_TIMEOUT_S) -> Iterator[str]:
    """``mlflow models serve`` of a deepromo MLflow model in this Python environment (``--env-manager local``);
    yields its URL. ``POST <url>/invocations`` scores a DataFrame (``dataframe_split`` or ``dataframe_records``).

    model_uri: ``models:/NAME@alias``, ``models:/NAME/VERSION``, ``runs:/RUN/model`` or a local model folder; a
        URI is downloaded to a temporary folder first, and either way its code file is checked before it is served.
    env: extra environment variables for the server process. Its log (in the temporary folder) is shown if it
        fails to start.
    """
    executable = mlflow_command()
    with tempfile.TemporaryDirectory(prefix="deepromo-serve-") as tmp:
        local = local_model_copy(model_uri, Path(tmp) / "model")
        port = require_free_port(port, host) if port else free_port(host if host != "0.0.0.0" else LOOPBACK)
        command = [executable, "models", "serve", "-m", str(local), "--env-manager", "local",
                   "--host", host, "-p", str(port), "-w", str(workers), "-t", str(request_timeout_s)]
        local_host = LOOPBACK if host == "0.0.0.0" else host
        with running(command, f"http://{local_host}:{port}/ping", Path(tmp) / "server.log",
                     f"mlflow models serve of '{model_uri}' on port {port}", env=env,
                     startup_timeout=startup_timeout):
            yield f"http://{local_host}:{port}"


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI: start one server, print its URL, block until Ctrl-C (or SIGTERM), stop it."""
    parser = argparse.ArgumentParser(prog="python -m deepromo.serving.servers", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="server", required=True)
    tracking = sub.add_parser("tracking", help="an MLflow tracking server (registry + proxied artifacts)")
    tracking.add_argument("--root", required=True, help="folder for mlflow.db, artifacts/ and server.log")
    model = sub.add_parser("model", help="mlflow models serve of a registered model")
    model.add_argument("--model-uri", required=True, help="models:/NAME@alias, models:/NAME/VERSION, runs:/... or "
                                                          "a model folder (the store: MLFLOW_TRACKING_URI)")
    for each in (tracking, model):
        each.add_argument("--port", type=int, default=None, help="port to listen on (default: a free one)")
        each.add_argument("--host", default=LOOPBACK, help="interface to bind (0.0.0.0: other machines too)")
    args = parser.parse_args(argv)
    from deepromo.data.errors import UserInputError

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # leave the with-block, so the server is stopped
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even when started with SIGINT ignored (`&`)
    try:
        if args.server == "tracking":
            server = tracking_server(args.root, port=args.port, host=args.host)
        else:
            server = model_server(args.model_uri, port=args.port, host=args.host)
        with server as url:
            print(f"{args.server} server at {url} (Ctrl-C stops it)", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    except (ServerError, UserInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
