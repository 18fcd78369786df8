"""The one place that sets up MLflow tracking for every job: the tracking URI and telemetry.

``MLFLOW_TRACKING_URI`` wins over the configured URI (``logger.tracking_uri``: a local SQLite file by
default). MLflow's usage telemetry is off unless the user turned it on: there is no network here.
"""

from __future__ import annotations

import os


def disable_telemetry() -> None:
    """Turn MLflow's usage telemetry off unless ``MLFLOW_DISABLE_TELEMETRY`` is already set."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def tracking_uri(configured: str | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``configured``, else MLflow's default (``sqlite:///mlflow.db``)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or "sqlite:///mlflow.db"


def use_tracking(configured: str | None = None) -> str:
    """Point MLflow (runs, the registry and pyfunc logging) at the tracking store; returns its URI."""
    disable_telemetry()
    import mlflow

    uri = tracking_uri(configured)
    mlflow.set_tracking_uri(uri)
    return uri


def tracking_client(configured: str | None = None):
    """An ``MlflowClient`` on the tracking store of :func:`use_tracking`."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(use_tracking(configured))
