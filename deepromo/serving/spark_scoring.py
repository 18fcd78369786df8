"""Batch scoring on Spark: a registered deepromo model as ``mlflow.pyfunc.spark_udf`` over a Parquet dataset.

The model's MLflow pyfunc (the same one ``predict.py`` and ``mlflow models serve`` use) runs inside Spark's Python
workers on Arrow batches; Spark reads the input Parquet in parallel and writes the scores as a Parquet dataset (a
folder of part files). Needs ``pip install deepromo[spark]`` and Java 17.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from deepromo.data.errors import MissingInputError, UserInputError
from deepromo.data.tables import DataValidationError

DEFAULT_MASTER = "local[2]"
ARROW_BATCH_ROWS = 10_000  # rows per Arrow batch handed to the model inside a Spark task


def spark_session(master: str = DEFAULT_MASTER, driver_memory: str = "4g", app_name: str = "deepromo-scoring"):
    """A SparkSession on ``master`` (``local[N]`` here; a cluster URL with ``spark-submit`` elsewhere), or a clear
    error naming what is missing (the ``[spark]`` extra, Java)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise UserInputError("Spark scoring needs pyspark: pip install 'deepromo[spark]'") from None
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise UserInputError("Spark scoring needs Java (17 or newer): no 'java' on PATH and JAVA_HOME is not set")
    # local workers run this interpreter (the one with deepromo), not whatever "python3" is first on PATH
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # pyspark 4.x warns on every import that it "does not yet fully support pandas >= 3"; the Arrow path used here
    # is tested equal to predict.py's scores (tests/test_spark_scoring.py)
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    session = (SparkSession.builder.master(master).appName(app_name)
               .config("spark.driver.memory", driver_memory)
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "8")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    return session


def spark_type(dtype) -> str:
    """The Spark SQL type name of a pandas/numpy output column dtype."""
    dtype = np.dtype(dtype) if not isinstance(dtype, pd.CategoricalDtype) else np.dtype(object)
    if dtype.kind == "f":
        return "float" if dtype.itemsize == 4 else "double"
    if dtype.kind in "iu":
        return "int" if dtype.itemsize <= 4 else "bigint"
    if dtype.kind == "b":
        return "boolean"
    return "string"


def local_model(model_uri: str | os.PathLike) -> Path:
    """The MLflow model at ``model_uri`` (``models:/…``, ``runs:/…`` or a folder) downloaded and its code file
    checked against the hash recorded at logging (the pyfunc runs that file in every Spark worker)."""
    import mlflow

    from deepromo.serving.checkpoints import verify_pyfunc_code

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=str(model_uri)))
    if not (local / "MLmodel").is_file():
        raise UserInputError(f"'{model_uri}' is not an MLflow model (no MLmodel file): score_spark takes a registered "
                             "or logged deepromo model; score a checkpoint file with predict.py")
    verify_pyfunc_code(local, str(model_uri))
    return local


def model_input_error(spark_message: str) -> str | None:
    """deepromo's message in a failed Spark job's error text (the pyfunc's InvalidModelInputError), or None."""
    for line in spark_message.splitlines():
        name, sep, message = line.partition("InvalidModelInputError: ")
        if sep:
            return message.strip()
    return None


def score_spark(
    model_uri: str | os.PathLike,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    spark=None,
    master: str = DEFAULT_MASTER,
    id_columns: Sequence[str] | None = None,
    keep_columns: Sequence[str] = (),
    overwrite: bool = False,
) -> dict:
    """Score a Parquet file or dataset folder with a deepromo MLflow model on Spark; write Parquet.

    model_uri: ``models:/NAME@alias``, ``models:/NAME/VERSION``, ``runs:/…/model`` or a local MLflow model folder.
    input_path: a Parquet file or a folder of Parquet files (anything ``spark.read.parquet`` reads), holding the
        columns of the model's signature.
    output_path: the folder Spark writes (part files); refused if it exists unless ``overwrite``.
    spark: an existing SparkSession (e.g. on a cluster); else one on ``master`` is started and stopped.
    id_columns / keep_columns: copied to the output before the scores (default ``customer_id`` if present).
    Returns ``{"rows", "seconds", "rows_per_s", "output", "columns"}``.
    """
    import mlflow
    from pyspark.sql import functions as F

    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.exists():
        raise MissingInputError(f"no input at '{input_path}'")
    if not (input_path.is_dir() or input_path.name.lower().endswith((".parquet", ".pq"))):
        raise UserInputError(f"input '{input_path}' must be a Parquet file or a folder of Parquet files")
    if output_path.exists() and not overwrite:
        raise UserInputError(f"output '{output_path}' exists; remove it or pass overwrite=True")
    local = local_model(model_uri)
    scorer = mlflow.pyfunc.load_model(str(local))
    schema = scorer.metadata.get_input_schema()
    if schema is None:
        raise UserInputError(f"model '{model_uri}' has no input signature; log it with deepromo (train.py)")
    features = schema.input_names()

    own_session = spark is None
    spark = spark or spark_session(master)
    started = time.perf_counter()
    try:
        frame = spark.read.parquet(str(input_path))
        present = set(frame.columns)
        if id_columns is None:
            id_columns = ["customer_id"] if "customer_id" in present else []
        passed = list(dict.fromkeys([*id_columns, *keep_columns]))
        missing = [c for c in features if c not in present]
        missing_passed = [c for c in passed if c not in present]
        if missing or missing_passed:
            raise DataValidationError(f"input '{input_path}' lacks the model's column(s) {missing}"
                                      + (f" and id/keep column(s) {missing_passed}" if missing_passed else ""))
        # the output types come from scoring a few rows on the driver: the UDF's result schema must be declared
        probe = scorer.predict(frame.select(*features).limit(5).toPandas())
        clash = [c for c in passed if c in probe.columns]
        if clash:
            raise UserInputError(f"id/keep column(s) {clash} would clash with the model's output columns")
        result_type = ", ".join(f"`{c}` {spark_type(t)}" for c, t in probe.dtypes.items())
        udf = mlflow.pyfunc.spark_udf(spark, str(local), result_type=result_type, env_manager="local")
        scored = frame.select(*passed, udf(F.struct(*features)).alias("_scores")).select(*passed, "_scores.*")
        try:
            scored.write.mode("overwrite" if overwrite else "errorifexists").parquet(str(output_path))
        except Exception as exc:  # a Python worker's error arrives wrapped in Spark's; keep deepromo's own line
            reason = model_input_error(str(exc))
            if reason is None:
                raise
            raise DataValidationError(f"input '{input_path}': {reason}") from None
        rows = spark.read.parquet(str(output_path)).count()
    finally:
        if own_session:
            spark.stop()
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds if seconds > 0 else float("nan"),
            "output": str(output_path), "columns": [*passed, *probe.columns]}
