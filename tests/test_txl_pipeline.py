"""txl through train.py's job, predict.py and the MLflow pyfunc (tiny sizes)."""

import json

import numpy as np
import pandas as pd
import pytest

import deepromo
from deepromo.pipeline import run

TINY = ["model=txl", "model.params.d_model=16", "model.params.n_heads=2", "model.params.n_layers=1",
        "model.params.d_inner=32", "model.params.max_len=16", "model.params.seg_len=8", "model.params.mem_len=8",
        "model.params.head_hidden=8", "model.params.lr=0.003", "model.baselines.gru.variant.lr=0.003",
        "model.baselines.bilstm.variant.lr=0.003"]
METHODS = {"txl", "gru", "bilstm", "txl_no_memory", "gbm_aggregates"}
METRICS = {"auc", "pr_auc", "f1", "precision_at_5", "precision_at_10", "ece", "threshold"}


@pytest.fixture(scope="module")
def txl_run(tmp_path_factory):
    from conftest import compose_config

    out = tmp_path_factory.mktemp("txl") / "run"
    results = run(compose_config([*TINY, "trainer.max_epochs=3"], out))
    return results, out


def test_txl_job_scores_baselines_and_writes_outputs(txl_run):
    results, out = txl_run
    written = json.loads((out / "metrics.json").read_text())
    assert set(written["test"]) == METHODS
    for method, row in written["test"].items():
        assert METRICS <= set(row), method
        for name in ("auc", "pr_auc", "f1", "precision_at_5", "ece"):
            assert 0.0 <= row[name] <= 1.0, (method, name)
    assert written["test"]["txl"]["auc"] > 0.65  # it learns: purchases are predictable from the history
    assert "val/auc" in written["val"] and "val/pr_auc" in written["val"]
    assert (out / "roc_pr.png").stat().st_size > 10_000
    model = deepromo.load_model(out / "model.ckpt")
    assert model.name == "txl" and model.preprocessor.events is not None


def test_predict_cli_reads_events(txl_run, tiny_world, tmp_path):
    import sys

    from conftest import ROOT
    from deepromo.data.views import build_view

    sys.path.insert(0, str(ROOT))
    from predict import main

    _, out = txl_run
    model = deepromo.load_model(out / "model.ckpt")
    view = build_view("purchase", tiny_world).subset(np.arange(50))
    customers = tmp_path / "customers.parquet"
    events = tmp_path / "events.csv"
    view.frame.to_parquet(customers)
    view.sequences.events.to_csv(events, index=False)
    target = tmp_path / "scores.parquet"
    main(["--model", str(out / "model.ckpt"), "--input", str(customers), "--events", str(events),
          "--as-of", str(tiny_world.history_end), "--output", str(target), "--no-progress"])
    scored = pd.read_parquet(target)
    expected = model.predict_frame(view.frame, **view.scoring_context())
    np.testing.assert_allclose(scored["p"], expected["p"], rtol=1e-5)
    assert scored["customer_id"].tolist() == view.frame["customer_id"].tolist()
    with pytest.raises(SystemExit) as exc:  # a sequence model without events: one error line, exit 2
        main(["--model", str(out / "model.ckpt"), "--input", str(customers), "--output", str(target)])
    assert exc.value.code == 2


def test_pyfunc_scores_json_histories(txl_run, tiny_world, tmp_path, monkeypatch):
    import mlflow

    from deepromo import registry_mlflow
    from deepromo.data.views import build_view

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        _, out = txl_run
        model = deepromo.load_model(out / "model.ckpt")
        view = build_view("purchase", tiny_world).subset(np.arange(20))
        example = registry_mlflow.input_example(model, view)
        assert {"event_history", "as_of", "customer_id"} <= set(example.columns)
        info = registry_mlflow.log_model(model, out / "model.ckpt", example)
        scored = mlflow.pyfunc.load_model(info.model_uri).predict(example)
        expected = model.predict_frame(view.frame.head(5), **view.scoring_context())
        np.testing.assert_allclose(scored["p"], expected["p"], rtol=1e-5)
    finally:
        mlflow.set_tracking_uri(None)
