"""gat through train.py's job, the MLflow registry and file scoring (tiny sizes)."""

import json

import numpy as np
import pandas as pd
import pytest

import deepromo
from deepromo.pipeline import run

TINY = ["model=gat", "model.params.hidden=16", "model.params.heads=2", "model.params.fanout=[5,3]",
        "model.params.num_negatives=2", "trainer.max_epochs=2"]
METHODS = {"gat", "random", "popularity", "exposed_popularity", "bpr_mf", "graphsage"}


@pytest.fixture(scope="module")
def gat_run(tmp_path_factory):
    from conftest import compose_config

    out = tmp_path_factory.mktemp("gat") / "run"
    results = run(compose_config(TINY, out))
    return results, out


def test_gat_job_scores_baselines_and_writes_outputs(gat_run):
    results, out = gat_run
    written = json.loads((out / "metrics.json").read_text())
    assert set(written["test"]) == METHODS
    for method, row in written["test"].items():
        assert set(row) == {"ndcg_at_10", "mrr", "hit_rate_at_10", "recall_at_10"}, method
        assert all(0.0 <= v <= 1.0 for v in row.values()), (method, row)
    assert written["n_test"] > 0 and "val/ndcg_at_10" in written["val"]
    assert (out / "hit_rate_at_k.png").stat().st_size > 10_000
    explanation = json.loads((out / "explanation.json").read_text())
    assert explanation["offers"] and explanation["attention"]
    model = deepromo.load_model(out / "model.ckpt")
    assert model.name == "gat" and model.preprocessor is None
    ids, scores = model.rank_offers(model.customer_ids[:3].numpy(), k=5)
    assert ids.shape == (3, 5) and (np.diff(scores, axis=1) <= 0).all()


def test_registered_gat_scores_pairs_and_files(gat_run, tmp_path, monkeypatch):
    import mlflow

    from deepromo import registry_mlflow
    from deepromo.scoring import score_file

    _, out = gat_run
    model = deepromo.load_model(out / "model.ckpt")
    pairs = pd.DataFrame({"customer_id": model.customer_ids[:4].numpy(), "offer_id": model.offer_ids[:4].numpy()})
    expected = model.predict_frame(pairs)["score"].to_numpy()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        info = registry_mlflow.log_model(model, out / "model.ckpt", pairs)
        scored = mlflow.pyfunc.load_model(info.model_uri).predict(pairs)
        np.testing.assert_allclose(scored["score"], expected, rtol=1e-6)
    finally:
        mlflow.set_tracking_uri(None)
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    score_file(out / "model.ckpt", tmp_path / "pairs.csv", tmp_path / "scores.parquet", progress=False)
    np.testing.assert_allclose(pd.read_parquet(tmp_path / "scores.parquet")["score"], expected, rtol=1e-6)
    pairs[["customer_id"]].to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(deepromo.data.tables.DataValidationError, match=r"\['offer_id'\]"):
        score_file(out / "model.ckpt", tmp_path / "bad.csv", tmp_path / "bad.parquet", progress=False)
