"""The one place that sets up MLflow tracking for every job: the tracking URI and telemetry.

``MLFLOW_TRACKING_URI`` wins over the configured URI (``logger.tracking_uri``: a local SQLite file by
default). MLflow's usage telemetry is off unless the user turned it on: there is no network here.
"""

from __future__ import annotations

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
    """Open (and on first use create) a database tracking store. Two processes starting on a fresh database
    race to create its schema and one fails ("table already exists"); a short randomised retry lets the
    other finish. Written here: MLflow does not retry its schema migration."""
    if not uri.startswith(("sqlite:", "postgresql", "mysql", "mssql")):
        return
    from mlflow.tracking import MlflowClient

    for attempt in range(attempts):
        try:
            MlflowClient(uri).search_experiments(max_results=1)
            return
        except Exception as exc:  # sqlalchemy/alembic errors of the race, or a store that really cannot open
            if attempt == attempts - 1:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise TrackingStoreError(f"MLflow tracking store '{uri}' could not be opened: {first}") from None
            time.sleep(random.uniform(0.2, 1.0) * (attempt + 1))


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
