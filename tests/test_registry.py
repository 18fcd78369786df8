"""MLflow model registry: register, alias, load by alias, pyfunc scoring, champion-challenger."""

import numpy as np
import pandas as pd
import pytest

import deepromo
from deepromo.jobs.train import run

from conftest import compose_config

NAME = "deepromo-splc-synthetic"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Two registered versions in a fresh SQLite store: v1 @champion, v2 @challenger."""
    import mlflow

    tmp = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{tmp}/mlflow.db"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    runs = []
    for i, alias in enumerate(("champion", "challenger")):
        cfg = compose_config(
            ["logger=mlflow", f"logger.artifact_location={tmp}/artifacts", "registry.register=true",
             f"registry.alias={alias}", "trainer.max_epochs=1", f"seed={i}", "~model.baselines"],
            tmp / f"run{i}",
        )
        runs.append(run(cfg))
    yield {"uri": uri, "runs": runs, "client": mlflow.tracking.MlflowClient(uri)}
    mp.undo()
    mlflow.set_tracking_uri(None)


def test_versions_and_aliases(registry):
    first, second = (r["registered"] for r in registry["runs"])
    assert (first["version"], second["version"]) == (1, 2)
    client = registry["client"]
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == "2"
    version = client.get_model_version(NAME, "1")
    files = {a.path for a in client.list_artifacts(version.run_id, "model/artifacts")}
    assert {"model/artifacts/model.ckpt", "model/artifacts/spec.json", "model/artifacts/preprocessor.json",
            "model/artifacts/config.yaml"} <= files


def test_load_by_alias_gives_identical_predictions(registry, tiny_world):
    from deepromo.data.views import build_view

    frame = build_view("customer", tiny_world).frame.head(200)
    local = deepromo.load_model(registry["runs"][0]["model_path"])
    by_alias = deepromo.load_model(f"models:/{NAME}@champion")
    assert type(by_alias) is type(local)
    pd.testing.assert_frame_equal(by_alias.predict_frame(frame), local.predict_frame(frame))


def test_pyfunc_scores_frame_with_unseen_category(registry, tiny_world):
    import mlflow

    from deepromo.data.views import build_view
    from deepromo.serving.mlflow_model import plain_columns

    model = deepromo.load_model(f"models:/{NAME}@champion")
    frame = build_view("customer", tiny_world).frame.head(20)[model.preprocessor.columns].copy()
    frame = plain_columns(frame)
    scorer = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    assert scorer.metadata.signature is not None
    unseen = frame.copy()
    unseen[model.preprocessor.categorical[0]] = "never-seen-before"
    out = scorer.predict(unseen)
    assert list(out.columns) == model.frame_columns() and len(out) == 20
    assert np.isfinite(out.to_numpy(dtype=float)).all()
    known_as_unknown = frame.copy()
    known_as_unknown[model.preprocessor.categorical[0]] = None
    np.testing.assert_allclose(out["score"], model.predict_frame(known_as_unknown)["score"], rtol=1e-6)


def test_champion_challenger_moves_alias_only_when_better(registry, tiny_world):
    from deepromo.data.views import build_view
    from deepromo.serving.mlflow_model import promote_if_better

    frame = build_view("customer", tiny_world).frame.head(100)
    labels = np.zeros(len(frame))
    client = registry["client"]

    def mean_score(labels, scores):
        return float(scores["score"].mean())

    v1 = deepromo.load_model(f"models:/{NAME}/1").predict_frame(frame)["score"].mean()
    v2 = deepromo.load_model(f"models:/{NAME}/2").predict_frame(frame)["score"].mean()
    worse_is_lower = v2 > v1  # direction in which the challenger (v2) loses
    kept = promote_if_better(NAME, frame, labels, metric=mean_score, higher_is_better=not worse_is_lower)
    assert not kept["promoted"] and str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    moved = promote_if_better(NAME, frame, labels, metric=mean_score, higher_is_better=worse_is_lower)
    assert moved["promoted"] and str(client.get_model_version_by_alias(NAME, "champion").version) == "2"
    assert moved["challenger_value"] == pytest.approx(v2, rel=1e-5)
