"""The one place that sets up MLflow tracking for every job: the tracking URI and telemetry.

``MLFLOW_TRACKING_URI`` wins over the configured URI (``logger.tracking_uri``: a local SQLite file by
default). MLflow's usage telemetry is off unless the user turned it on: there is no network here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time

from deepromo.data.errors import UserInputError


def disable_telemetry() -> None:
    """Turn MLflow's usage telemetry off unless ``MLFLOW_DISABLE_TELEMETRY`` is already set, and keep its
    database set-up notes ("Creating initial MLflow database tables...") out of the console."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)


def tracking_uri(configured: str | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``configured``, else MLflow's default (``sqlite:///mlflow.db``)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or "sqlite:///mlflow.db"


class TrackingStoreError(UserInputError):
    """The tracking store cannot be opened (the message names its URI)."""


def open_store(uri: str, attempts: int = 6) -> None:
    """Open (and on first use create) a database tracking store. Processes starting together on a fresh database
    race to create its schema, and a lost race can leave a half-migrated SQLite file behind; so for SQLite the
    first opening holds a file lock beside the database, and other databases get a short randomised retry.
    Written here: MLflow serialises neither."""
    if not uri.startswith(("sqlite:", "postgresql", "mysql", "mssql")):
        return
    from mlflow.tracking import MlflowClient

    database = uri.split(":///", 1)[1] if uri.startswith("sqlite:///") else None
    for attempt in range(attempts):
        try:
            with schema_lock(database):
                MlflowClient(uri).search_experiments(max_results=1)
            return
        except Exception as exc:  # sqlalchemy/alembic errors of the race, or a store that really cannot open
            if attempt == attempts - 1:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise TrackingStoreError(f"MLflow tracking store '{uri}' could not be opened: {first}") from None
            time.sleep(random.uniform(0.2, 1.0) * (attempt + 1))


@contextlib.contextmanager
def schema_lock(database: str | None):
    """An exclusive lock on ``<database>.lock`` (POSIX) while a SQLite store is opened; nothing otherwise."""
    if database is None or database == ":memory:":
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: the retry alone has to do
        yield
        return
    os.makedirs(os.path.dirname(os.path.abspath(database)), exist_ok=True)
    with open(f"{database}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def use_tracking(configured: str | None = None) -> str:
    """Point MLflow (runs, the registry and pyfunc logging) at the tracking store, opened; returns its URI."""
    disable_telemetry()
    import mlflow

    uri = tracking_uri(configured)
    mlflow.set_tracking_uri(uri)
    open_store(uri)
    return uri


def tracking_client(configured: str | None = None):
    """An ``MlflowClient`` on the tracking store of :func:`use_tracking`."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(use_tracking(configured))
