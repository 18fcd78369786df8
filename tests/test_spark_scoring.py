"""Batch scoring on a local Spark session through ``mlflow.pyfunc.spark_udf`` (slow: starts a JVM).

Needs the ``[spark]`` extra (pyspark) and Java 17; without them the tests fail with one line saying so.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, compose_config

pytestmark = pytest.mark.slow
NAME = "deepromo-splc-synthetic"
URI = f"models:/{NAME}@champion"


def require_spark() -> None:
    """Fail (never skip) with one line when pyspark or Java is missing."""
    try:
        import pyspark  # noqa: F401
        missing = None
    except ImportError:
        missing = "pyspark is not installed (pip install 'deepromo[spark]')"
    if missing is None and shutil.which("java") is None:
        missing = "no 'java' on PATH (Spark needs Java 17)"
    if missing:
        pytest.fail(f"needs Spark: {missing}", pytrace=False)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A registered splc (@champion) in a SQLite store, a Parquet file of customers, and its scores by predict.py
    and by Spark."""
    require_spark()
    from deepromo.data.sources.synthetic import generate_world
    from deepromo.data.views import build_view
    from deepromo.jobs.train import run
    from deepromo.serving.mlflow_model import plain_columns
    from deepromo.serving.spark_scoring import score_spark, spark_session

    tmp = tmp_path_factory.mktemp("spark")
    mp = pytest.MonkeyPatch()
    uri = f"sqlite:///{tmp}/mlflow.db"
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    run(compose_config(["logger=mlflow", f"logger.tracking_uri={uri}", "registry.register=true",
                        "registry.alias=champion", "trainer.max_epochs=1", "~model.baselines"], tmp / "run"))
    import deepromo

    model = deepromo.load_model(URI)
    frame = plain_columns(build_view("customer", generate_world(n_customers=3000, seed=7)).frame)
    frame = frame[["customer_id", *model.input_columns()]]
    frame.to_parquet(tmp / "customers.parquet", index=False)
    local = subprocess.run([sys.executable, "predict.py", "--model", URI, "--input", str(tmp / "customers.parquet"),
                            "--output", str(tmp / "local.parquet"), "--no-progress"], cwd=ROOT, capture_output=True,
                           text=True, timeout=300, env={**os.environ, "MLFLOW_TRACKING_URI": uri})
    assert local.returncode == 0, local.stderr[-2000:]
    spark = spark_session("local[2]")
    try:
        summary = score_spark(URI, tmp / "customers.parquet", tmp / "spark_scores", spark=spark)
        yield {"tmp": tmp, "model": model, "frame": frame, "summary": summary, "spark": spark,
               "local": pd.read_parquet(tmp / "local.parquet"), "remote": pd.read_parquet(tmp / "spark_scores")}
    finally:
        spark.stop()
        mp.undo()


def test_spark_scores_equal_predict_py_on_the_same_rows(scored):
    local, remote, model = scored["local"], scored["remote"], scored["model"]
    assert scored["summary"]["rows"] == len(scored["frame"]) == len(remote)
    assert list(remote.columns) == ["customer_id", *model.frame_columns()] == list(local.columns)
    remote = remote.sort_values("customer_id").reset_index(drop=True)  # Spark writes part files in any order
    local = local.sort_values("customer_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(remote, local, check_dtype=False, rtol=1e-6, atol=1e-7)
    assert remote["score"].std() > 0  # a real model's scores, not a constant


def test_spark_keeps_columns_and_refuses_bad_input(scored):
    from deepromo.data.errors import UserInputError
    from deepromo.data.tables import DataValidationError
    from deepromo.serving.spark_scoring import score_spark

    tmp, frame, spark = scored["tmp"], scored["frame"], scored["spark"]
    frame.drop(columns=["tenure_days"]).to_parquet(tmp / "short.parquet", index=False)
    with pytest.raises(DataValidationError, match=r"lacks the model's column\(s\) \['tenure_days'\]"):
        score_spark(URI, tmp / "short.parquet", tmp / "short_scores", spark=spark)
    with pytest.raises(UserInputError, match="exists"):
        score_spark(URI, tmp / "customers.parquet", tmp / "spark_scores", spark=spark)
    kept = score_spark(URI, tmp / "customers.parquet", tmp / "kept", spark=spark, keep_columns=["region"])
    assert kept["columns"][:2] == ["customer_id", "region"]
    out = pd.read_parquet(tmp / "kept").sort_values("customer_id")
    np.testing.assert_array_equal(out["region"].to_numpy(), frame.sort_values("customer_id")["region"].to_numpy())
    bad = frame.copy()
    bad.loc[5, "tenure_days"] = np.nan  # a row the model refuses: the Spark job fails naming the column
    bad.to_parquet(tmp / "bad.parquet", index=False)
    with pytest.raises(DataValidationError, match="bad.parquet.*tenure_days"):
        score_spark(URI, tmp / "bad.parquet", tmp / "bad_scores", spark=spark)
    assert not (tmp / "bad_scores" / "_SUCCESS").exists()


def test_predict_py_engine_spark_writes_the_same_scores(scored):
    tmp = scored["tmp"]
    done = subprocess.run([sys.executable, "predict.py", "--engine", "spark", "--model", URI, "--input",
                           str(tmp / "customers.parquet"), "--output", str(tmp / "cli_scores")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "scored 3,000 rows" in done.stdout
    out = pd.read_parquet(tmp / "cli_scores").sort_values("customer_id").reset_index(drop=True)
    local = scored["local"].sort_values("customer_id").reset_index(drop=True)
    np.testing.assert_allclose(out["score"].to_numpy(), local["score"].to_numpy(), rtol=1e-6)
