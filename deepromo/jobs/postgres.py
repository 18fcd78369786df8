"""A throwaway PostgreSQL server for Optuna studies: the tests' server, and a way to try the several-worker setup.

``throwaway_postgres()`` runs ``initdb`` and ``pg_ctl start`` in a fresh folder on a free local port, creates the
database ``optuna`` and yields its SQLAlchemy URL; on exit it stops the server and removes the folder. It trusts every
local connection and listens on 127.0.0.1 only: for trying things, not for keeping studies.

    python -m deepromo.jobs.postgres start                   # prints the URL, serves until Ctrl-C, then cleans up
    python -m deepromo.jobs.postgres start --root /tmp/pg --detach   # prints the URL and leaves the server running
    python -m deepromo.jobs.postgres stop --root /tmp/pg     # stops it and removes /tmp/pg
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BINARIES = ("initdb", "pg_ctl", "createdb")
SUPERUSER = "deepromo"  # the cluster's superuser (initdb -U), the user in the URL
DATABASE = "optuna"
BIN_ENV = "DEEPROMO_PG_BIN"  # a folder holding initdb, pg_ctl and createdb, searched first
START_TIMEOUT_S = 60


class PostgresError(RuntimeError):
    """The throwaway server cannot be set up, started or stopped; the message says why and what to do."""


def find_binaries() -> dict[str, Path]:
    """{name: path} of initdb, pg_ctl and createdb, all from one folder (one PostgreSQL version): $DEEPROMO_PG_BIN,
    the folder of each on PATH (through symlinks such as /usr/local/bin/initdb), then /usr/lib/postgresql/*/bin."""
    folders = [Path(os.environ[BIN_ENV])] if os.environ.get(BIN_ENV) else []
    folders += [Path(found).resolve().parent for name in BINARIES if (found := shutil.which(name))]
    versions = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]  # Debian layout
    folders += sorted(versions, key=lambda p: int(p.parent.name), reverse=True)
    for folder in dict.fromkeys(folders):
        if all((folder / name).is_file() for name in BINARIES):
            return {name: folder / name for name in BINARIES}
    missing = [name for name in BINARIES if not shutil.which(name)]
    raise PostgresError(
        f"PostgreSQL server binaries not found: {', '.join(missing or BINARIES)} (need initdb, pg_ctl and createdb of "
        f"PostgreSQL 15 in one folder, on PATH or in ${BIN_ENV}; e.g. apt-get install postgresql-15)")


def server_account() -> pwd.struct_passwd | None:
    """The account the server runs as when this process is root (initdb and postgres refuse to run as root):
    'postgres' if it exists, else 'nobody'; None when not root (the server runs as this user)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresError("running as root, and there is no 'postgres' or 'nobody' account to run PostgreSQL as "
                        "(initdb refuses root): create one (useradd postgres) or run as an ordinary user")


def run_as(account: pwd.struct_passwd | None, command: list[str], cwd: Path,
           timeout: float = START_TIMEOUT_S) -> subprocess.CompletedProcess:
    """``command`` as ``account`` (None: as this user), its output captured."""
    drop = {} if account is None else {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    env = dict(os.environ) if account is None else {**os.environ, "HOME": str(cwd)}  # root's home is closed to it
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, **drop)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def url_for(port: int) -> str:
    """The SQLAlchemy URL of the throwaway server's database (psycopg 3 driver, trust authentication)."""
    return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}"


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def check_root(root: Path) -> Path:
    """``root`` resolved, if it is new or empty (it is removed when the server stops)."""
    root = Path(root).resolve()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise PostgresError(f"{root} is not an empty folder (a server still running there? python -m "
                            f"deepromo.jobs.postgres stop --root {root}); give a new or empty folder")
    return root


def start_server(root: Path, port: int | None = None) -> str:
    """Create a cluster in ``root``/data (``root`` new or empty), start it on ``port`` (None: a free one) and create
    the database; the URL. Its log is ``root``/postgres.log."""
    binaries = find_binaries()
    account = server_account()
    root = check_root(root)
    root.mkdir(parents=True, exist_ok=True)
    if account is not None:
        os.chown(root, account.pw_uid, account.pw_gid)
        if run_as(account, ["test", "-w", str(root)], cwd=Path("/")).returncode != 0:
            raise PostgresError(f"running as root, so PostgreSQL runs as '{account.pw_name}', which cannot write "
                                f"{root} (a parent folder is private, e.g. mode 700): choose a folder under /tmp")
    data, log = root / "data", root / "postgres.log"
    made = run_as(account, [str(binaries["initdb"]), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                            "--locale=C", "--no-instructions", "--no-sync"], cwd=root)
    if made.returncode != 0:
        raise PostgresError(f"initdb failed in {data}:\n{(made.stdout + made.stderr).strip()[-2000:]}")
    for attempt in range(3 if port is None else 1):  # a free port can be taken before the server binds it
        chosen = port or free_port()
        # TCP only (-k ''): a Unix socket path is limited to 107 bytes, which deep temporary folders exceed;
        # fsync off (also initdb --no-sync): a throwaway cluster need not survive a power cut (start 1.6 s, not 6.3 s)
        started = run_as(account, [str(binaries["pg_ctl"]), "-D", str(data), "-l", str(log), "-w",
                                   "-t", str(START_TIMEOUT_S), "-o",
                                   f"-p {chosen} -k '' -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                         cwd=root, timeout=START_TIMEOUT_S + 10)
        if started.returncode == 0:
            break
        if port is not None or attempt == 2 or "could not bind" not in tail(log, 50):
            raise PostgresError(f"PostgreSQL did not start on port {chosen}: {started.stderr.strip()}\n"
                                f"last lines of {log}:\n{tail(log)}")
    created = run_as(account, [str(binaries["createdb"]), "-h", "127.0.0.1", "-p", str(chosen), "-U", SUPERUSER,
                               DATABASE], cwd=root)
    if created.returncode != 0:
        raise PostgresError(f"createdb {DATABASE} failed: {created.stderr.strip()}\nlast lines of {log}:\n{tail(log)}")
    (root / "url").write_text(url_for(chosen) + "\n")
    return url_for(chosen)


def stop_server(root: Path, remove: bool = True) -> None:
    """Stop the server of ``root`` (``pg_ctl stop -m fast``) if it runs; unless ``remove`` is False, delete what
    ``start_server`` made there, and ``root`` itself once empty."""
    root = Path(root).resolve()
    data = root / "data"
    if (data / "postmaster.pid").exists():
        stopped = run_as(server_account(), [str(find_binaries()["pg_ctl"]), "-D", str(data), "-m", "fast", "-w",
                                            "stop"], cwd=root)
        if stopped.returncode != 0 and (data / "postmaster.pid").exists():
            raise PostgresError(f"pg_ctl stop failed for {data}: {stopped.stderr.strip()}; the folder is kept")
    if remove:
        shutil.rmtree(data, ignore_errors=True)
        for made in (root / "postgres.log", root / "url"):
            made.unlink(missing_ok=True)
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()


@contextmanager
def throwaway_postgres(root: Path | None = None, port: int | None = None) -> Iterator[str]:
    """A running PostgreSQL server in ``root`` (None: a new folder under the system's temporary folder) on ``port``
    (None: a free one); yields ``postgresql+psycopg://deepromo@127.0.0.1:<port>/optuna``. Stopped and removed on
    exit."""
    root = Path(tempfile.mkdtemp(prefix="deepromo-pg-")) if root is None else check_root(root)
    try:
        yield start_server(root, port)
    finally:
        stop_server(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deepromo.jobs.postgres", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a server and print its SQLAlchemy URL")
    start.add_argument("--root", type=Path, help="new or empty folder for the server (default: a temporary one)")
    start.add_argument("--port", type=int, help="TCP port on 127.0.0.1 (default: a free one)")
    start.add_argument("--detach", action="store_true", help="leave it running; stop it with the stop command")
    stop = commands.add_parser("stop", help="stop a detached server and remove its folder")
    stop.add_argument("--root", type=Path, required=True, help="the folder given to start")
    args = parser.parse_args(argv)
    try:
        if args.command == "stop":
            if not (args.root / "data" / "PG_VERSION").is_file():
                raise PostgresError(f"{args.root} holds no server started by python -m deepromo.jobs.postgres start")
            stop_server(args.root)
            print(f"stopped; removed {args.root}")
            return 0
        root = check_root(args.root) if args.root else Path(tempfile.mkdtemp(prefix="deepromo-pg-"))
        if args.detach:
            try:
                url = start_server(root, args.port)
            except BaseException:
                stop_server(root)
                raise
            print(url)
            print(f"# running in {root}; stop it with: python -m deepromo.jobs.postgres stop --root {root}",
                  file=sys.stderr)
            return 0
        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        with throwaway_postgres(root, args.port) as url:
            print(url, flush=True)
            print(f"# serving from {root}; Ctrl-C stops it and removes the folder", file=sys.stderr, flush=True)
            try:
                stopping.wait()
            except KeyboardInterrupt:
                pass
        return 0
    except PostgresError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
