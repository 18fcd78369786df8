"""The MLflow model registry: log a trained model as a pyfunc, register versions, move aliases, load.

The pyfunc wraps deepromo's own checkpoint (DataFrame of raw feature columns in, DataFrame of
scores out) instead of ``mlflow.pytorch``: that flavour defaults to a ``pt2`` export, needs an
example to trace, and would pickle the module; deepromo's checkpoint loads with weights_only=True.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from deepromo.data.errors import UserInputError
from deepromo.serving.checkpoints import PYFUNC_CODE_FILE, file_sha256, load_model, verify_pyfunc_code
from deepromo.serving.tracking import disable_telemetry

disable_telemetry()

import mlflow  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

ARTIFACT_NAME = "model"
PIP_REQUIREMENTS = ["deepromo", "torch>=2.4", "pytorch-lightning>=2.2", "pandas>=2.0", "numpy>=1.24"]


class DeepromoPyfunc(mlflow.pyfunc.PythonModel):
    """Scores a DataFrame of raw feature columns with a deepromo checkpoint; returns its output columns."""

    def load_context(self, context) -> None:
        self.model = load_model(context.artifacts["checkpoint"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """Scores of ``model_input`` (one row per input row). Bad input (a missing column, a non-finite number,
        a list in a categorical column, ...) raises :class:`InvalidModelInputError` with deepromo's message."""
        try:
            frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
            return self.model.predict_frame(frame)
        except UserInputError as exc:
            raise InvalidModelInputError(f"deepromo model '{self.model.name}': {exc}") from exc


class InvalidModelInputError(mlflow.exceptions.MlflowException, UserInputError):
    """Bad input to the pyfunc: an MlflowException INVALID_PARAMETER_VALUE, which ``mlflow models serve`` answers
    with HTTP 400 and this message (any other exception becomes a 400 with a generic text), and a UserInputError
    for callers in the same process."""

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def input_example(model, view, rows: int = 5) -> pd.DataFrame:
    """A few rows of the raw columns the model reads (``model.example_frame``), categoricals as plain strings."""
    return plain_columns(model.example_frame(view, rows)).reset_index(drop=True)


def log_model(
    model,
    checkpoint_path: str | os.PathLike,
    example: pd.DataFrame,
    run_id: str | None = None,
    config_yaml: str | None = None,
    registered_name: str | None = None,
):
    """Log ``model`` as a pyfunc MLflow model into run ``run_id`` (or the active run); register it if named.

    Artifacts: the checkpoint, ``spec.json``, ``preprocessor.json`` and the resolved config.
    Returns MLflow's ModelInfo (``registered_model_version`` is set when registered).
    """
    outputs = model.predict_frame(example)
    signature = infer_signature(example, outputs)
    with tempfile.TemporaryDirectory() as tmp:
        files = {"checkpoint": str(checkpoint_path)}
        for name, text in (
            ("spec", model.spec.to_json()),
            ("preprocessor", None if model.preprocessor is None else model.preprocessor.to_json()),
            ("config", config_yaml),
        ):
            if text is not None:
                path = Path(tmp) / (f"{name}.json" if name != "config" else "config.yaml")
                path.write_text(text)
                files[name] = str(path)
        code_file = Path(__file__).with_name(PYFUNC_CODE_FILE)
        with mlflow.start_run(run_id=run_id, nested=run_id is None and mlflow.active_run() is not None):
            return mlflow.pyfunc.log_model(
                name=ARTIFACT_NAME,
                python_model=str(code_file),  # from code: nothing pickled; MLflow runs this file on load
                artifacts=files,
                metadata={"deepromo_code_sha256": file_sha256(code_file)},  # checked before that file is run
                signature=signature,
                input_example=example,
                pip_requirements=PIP_REQUIREMENTS,
                registered_model_name=registered_name,
            )


def set_alias(name: str, alias: str, version: int | str) -> None:
    MlflowClient().set_registered_model_alias(name, alias, str(version))


def load_pyfunc(uri: str):
    """``mlflow.pyfunc.load_model`` of a deepromo model, after checking that its code file (which MLflow
    executes on load) is the one recorded when the model was logged."""
    local = mlflow.artifacts.download_artifacts(artifact_uri=uri)
    verify_pyfunc_code(local, uri)
    return mlflow.pyfunc.load_model(local)


def score_with(uri: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Score ``frame`` with the pyfunc at ``uri``: only its signature's columns, categoricals as strings."""
    scorer = load_pyfunc(uri)
    columns = scorer.metadata.get_input_schema().input_names()
    return scorer.predict(plain_columns(frame[columns]))


def plain_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """pandas categoricals as plain strings (missing stays None): the types MLflow signatures accept."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(out[col].dtype):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


def auc_of(column: str = "score") -> Callable[[np.ndarray, pd.DataFrame], float]:
    from deepromo.metrics.classification import binary_report

    def metric(labels, scores: pd.DataFrame) -> float:
        return binary_report(labels, (scores[column] > 0.5).astype(int), scores[column])["auc"]

    return metric


def promote_if_better(
    name: str,
    frame: pd.DataFrame,
    labels,
    metric: Callable[[np.ndarray, pd.DataFrame], float] | None = None,
    challenger: str = "challenger",
    champion: str = "champion",
    higher_is_better: bool = True,
) -> dict:
    """Score the ``champion`` and ``challenger`` versions of ``name`` on the same rows and labels.

    Moves the ``champion`` alias to the challenger's version only when its metric is strictly better
    (or when there is no champion yet). Returns both values, versions and whether it promoted.
    """
    client = MlflowClient()
    metric = metric or auc_of("score")
    chal = client.get_model_version_by_alias(name, challenger)
    labels = np.asarray(labels)
    chal_value = float(metric(labels, score_with(f"models:/{name}@{challenger}", frame)))
    try:
        champ = client.get_model_version_by_alias(name, champion)
    except mlflow.exceptions.MlflowException:
        champ = None
    champ_value = None if champ is None else float(metric(labels, score_with(f"models:/{name}@{champion}", frame)))
    better = champ_value is None or (chal_value > champ_value if higher_is_better else chal_value < champ_value)
    if better:
        client.set_registered_model_alias(name, champion, chal.version)
    return {
        "promoted": better,
        "challenger_version": int(chal.version),
        "challenger_value": chal_value,
        "champion_version": None if champ is None else int(champ.version),
        "champion_value": champ_value,
    }
