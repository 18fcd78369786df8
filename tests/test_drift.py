"""Drift monitoring (deepromo.serving.drift, score_file(drift=...), predict.py --drift): the training profile saved
with the model, chunked accumulation, PSI / KS / share shifts against hand and scipy values, and MLflow logging."""

import importlib.util
import json
import math
import signal

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import ks_2samp

import deepromo
from deepromo.data.errors import UserInputError
from deepromo.models.base import CHECKPOINT_KEY, HASH_KEY, checkpoint_content_hash
from deepromo.serving import drift
from deepromo.serving.batch_scoring import score_file

from conftest import ROOT, tiny_job, tiny_splc

SHIFTED_NUMERIC, SHIFTED_CATEGORICAL = "spend_30d", "device"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny splc trained on a 3,000-customer world (2,100 training rows: PSI noise well below 0.2), saved with
    its profile and as an old-style checkpoint without one, and its 450 held-out test rows."""
    from deepromo.data.sources.synthetic import generate_world

    model, dm = tiny_splc(generate_world(n_customers=3000, seed=0))
    model.drift_reference = drift.training_reference(model, dm)
    folder = tmp_path_factory.mktemp("drift")
    ckpt, old = folder / "model.ckpt", folder / "old.ckpt"
    model.save(ckpt)
    save_without_profile(model, old)
    columns = ["customer_id", *dm.preprocessor.columns]
    held_out = dm.view.frame.iloc[dm.indices["test"]][columns].reset_index(drop=True)
    train = dm.view.frame.iloc[dm.indices["train"]]
    return {"model": model, "dm": dm, "ckpt": ckpt, "old": old, "held_out": held_out, "train": train}


def save_without_profile(model, path) -> None:
    """A checkpoint as deepromo wrote them before the profile existed: no ``drift_reference`` key at all."""
    state = model.state_dict()
    meta = model.checkpoint_meta()
    del meta["drift_reference"]
    meta[HASH_KEY] = checkpoint_content_hash(meta, state)
    torch.save({CHECKPOINT_KEY: meta, "state_dict": state}, path)


def shifted(frame: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with one numeric feature moved by +2 training sd and 70 % of one categorical's rows moved to its
    rarest training category."""
    out = frame.copy()
    out[SHIFTED_NUMERIC] = out[SHIFTED_NUMERIC] + 2 * train[SHIFTED_NUMERIC].std()
    rarest = train[SHIFTED_CATEGORICAL].astype(str).value_counts().index[-1]
    moved = np.random.default_rng(1).random(len(out)) < 0.7
    out[SHIFTED_CATEGORICAL] = np.where(moved, rarest, out[SHIFTED_CATEGORICAL].astype(str))
    return out


def scored_table(trained, frame, tmp_path, name="customers", **options) -> tuple[dict, pd.DataFrame]:
    src = tmp_path / f"{name}.parquet"
    frame.to_parquet(src, index=False)
    summary = score_file(trained["ckpt"], src, tmp_path / f"{name}_scores.parquet", progress=False,
                         drift=options.pop("drift", True), **options)
    return summary, summary["drift"]["table"]


def test_profile_travels_in_the_checkpoint(trained):
    reference, pre = trained["model"].drift_reference, trained["dm"].preprocessor
    assert deepromo.load_model(trained["ckpt"]).drift_reference == reference  # JSON round trip, -inf/+inf too
    assert list(reference["features"]) == pre.columns
    n_train = len(trained["dm"].indices["train"])
    for column in pre.numeric:
        profile = reference["features"][column]
        assert profile["edges"][0] == -math.inf and profile["edges"][-1] == math.inf
        assert len(profile["shares"]) == len(profile["edges"]) - 1 <= drift.DEFAULT_BINS
        assert sum(profile["shares"]) == pytest.approx(1.0) and profile["n"] == n_train
        assert len(profile["sample"]) == drift.DEFAULT_SAMPLE_SIZE  # 2,100 training rows, capped
        assert set(profile["sample"]) <= set(trained["train"][column].astype(float))
    region = reference["features"]["region"]
    expected = trained["train"]["region"].astype(str).value_counts(normalize=True)
    assert region["categories"] == sorted(expected.index, key=lambda c: (-expected[c], c))
    np.testing.assert_allclose(region["shares"], expected[region["categories"]].to_numpy())
    score = reference["score"]
    assert (score["name"], score["split"], score["n"]) == ("score", "val", len(trained["dm"].indices["val"]))


def test_same_distribution_flags_nothing(trained, tmp_path):
    summary, table = scored_table(trained, trained["held_out"], tmp_path)
    assert list(table.columns) == drift.TABLE_COLUMNS
    assert table["feature"].tolist() == [*trained["dm"].preprocessor.columns, "score"]
    assert not table["drifted"].any() and summary["drift"]["drifted"] == []
    assert table["psi"].max() < 0.1
    assert (table["n_scored"] == len(trained["held_out"])).all()
    numeric = table.loc[table["kind"] == "numeric", "ks_pvalue"]
    assert numeric.min() > 0.01 / len(numeric)  # Bonferroni: one test per feature, all on the same distribution
    assert summary["drift"]["mlflow_run_id"] is None  # no run active, no tracking URI given
    written = pd.read_csv(tmp_path / "customers_scores.drift.csv")
    assert written["feature"].tolist() == table["feature"].tolist()
    np.testing.assert_allclose(written["psi"], table["psi"])


def test_shifted_batch_flags_exactly_the_shifted_features(trained, tmp_path):
    summary, table = scored_table(trained, shifted(trained["held_out"], trained["train"]), tmp_path)
    rows = table.set_index("feature")
    assert summary["drift"]["drifted"] == [SHIFTED_CATEGORICAL, SHIFTED_NUMERIC]  # table order
    numeric = rows.loc[SHIFTED_NUMERIC]
    assert numeric["psi"] > 1.0 and numeric["ks_statistic"] > 0.5 and numeric["ks_pvalue"] < 1e-20
    category = rows.loc[SHIFTED_CATEGORICAL]
    rarest = trained["train"][SHIFTED_CATEGORICAL].astype(str).value_counts().index[-1]
    assert category["psi"] > drift.DEFAULT_PSI_THRESHOLD
    assert category["max_shift_category"] == rarest and category["max_share_shift"] > 0.4
    assert rows.loc["score", "kind"] == "score" and np.isfinite(rows.loc["score", "psi"])
    assert rows.loc["score", "n_scored"] == len(trained["held_out"])
    assert f"2 of {len(rows) - 1} feature(s) flagged" in summary["drift"]["summary"]
    # a KS p-value threshold flags the numeric feature on its own; a share threshold the categorical one
    summary, by_tests = scored_table(trained, shifted(trained["held_out"], trained["train"]), tmp_path, "again",
                               drift_threshold=100.0, drift_ks_pvalue=1e-6, drift_share_shift=0.3)
    assert by_tests.loc[by_tests["drifted"], "feature"].tolist() == [SHIFTED_CATEGORICAL, SHIFTED_NUMERIC]
    assert "(PSI >= 100 or KS p < 1e-06 or share shift >= 0.3)" in summary["drift"]["summary"]


def test_psi_ks_and_share_shift_match_hand_computation():
    train = pd.DataFrame({"x": np.arange(1.0, 11.0), "c": ["a"] * 6 + ["b"] * 4})
    reference = drift.reference_profile(train, np.arange(10.0), ["c"], ["x"], bins=2)
    assert reference["features"]["x"]["edges"] == [-math.inf, 5.0, math.inf]  # the median of 1..10 (a value)
    assert reference["features"]["x"]["shares"] == [0.5, 0.5]
    assert reference["features"]["c"] == {"kind": "categorical", "n": 10, "categories": ["a", "b"],
                                          "shares": [0.6, 0.4], "other_share": 0.0}
    scored = pd.DataFrame({"x": [1.0, 2, 3, 7, 8, 9, 10, 11, 12, 13], "c": ["a"] * 2 + ["b"] * 6 + ["new", None]})
    accumulator = drift.DriftAccumulator(reference)
    accumulator.update(scored, np.arange(10.0) + 100)  # every score beyond the reference's
    table = drift.drift_table(reference, accumulator).set_index("feature")

    assert table.loc["x", "psi"] == pytest.approx(0.2 * math.log(0.7 / 0.5) - 0.2 * math.log(0.3 / 0.5))
    expected = ks_2samp(train["x"], scored["x"])
    assert table.loc["x", "ks_statistic"] == pytest.approx(expected.statistic, abs=1e-12)
    assert table.loc["x", "ks_pvalue"] == pytest.approx(expected.pvalue, rel=1e-12)
    eps = drift.PSI_EPSILON  # the unseen "new" and the missing value pool into OTHER, empty in training
    hand = (0.2 - eps) * math.log(0.2 / eps) + (0.2 - 0.6) * math.log(0.2 / 0.6) + (0.6 - 0.4) * math.log(0.6 / 0.4)
    assert table.loc["c", "psi"] == pytest.approx(hand)
    assert table.loc["c", "max_share_shift"] == pytest.approx(-0.4) and table.loc["c", "max_shift_category"] == "a"
    assert math.isnan(table.loc["c", "ks_pvalue"]) and math.isnan(table.loc["x", "max_share_shift"])
    # the scores all land in the reference's top bin: PSI of [0.5, 0.5] against [eps, 1]
    assert table.loc["score", "psi"] == pytest.approx((eps - 0.5) * math.log(eps / 0.5) + 0.5 * math.log(2))
    assert table.loc["score", "ks_statistic"] == 1.0
    assert table["drifted"].tolist() == [True, False, True]  # c (2.04) and the score flagged, x (0.17) not


def test_a_feature_named_like_the_score_keeps_its_own_row():
    reference = drift.reference_profile(pd.DataFrame({"score": np.arange(10.0)}), np.zeros(10), numeric=["score"])
    accumulator = drift.DriftAccumulator(reference)
    accumulator.update(pd.DataFrame({"score": np.arange(10.0)}), np.full(10, 100.0))
    table = drift.drift_table(reference, accumulator)
    assert table[["feature", "kind"]].values.tolist() == [["score", "numeric"], ["score", "score"]]
    assert table["psi"].iloc[0] == 0.0 and table["ks_statistic"].iloc[0] == 0.0  # the feature did not move
    assert table["ks_statistic"].iloc[1] == 1.0 and table["drifted"].tolist() == [False, True]


def test_deciles_and_right_closed_bins():
    values = np.arange(1.0, 101.0)
    reference = drift.reference_profile(pd.DataFrame({"x": values}), numeric=["x"])
    profile = reference["features"]["x"]
    assert profile["edges"] == [-math.inf, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, math.inf]
    np.testing.assert_allclose(profile["shares"], [0.1] * 10)
    assert drift.bin_index(np.array([-1e9, 10.0, 10.01, 90.0, 1e9]), profile["edges"]).tolist() == [0, 0, 1, 8, 9]
    counts = pd.DataFrame({"x": [0.0] * 90 + [1.0] * 10})  # a count column: repeated deciles merge into 2 bins
    assert drift.reference_profile(counts, numeric=["x"])["features"]["x"]["edges"] == [-math.inf, 0.0, math.inf]


def test_chunked_accumulation_gives_the_same_table(trained, tmp_path):
    frame = shifted(trained["held_out"], trained["train"])
    _, whole = scored_table(trained, frame, tmp_path, "whole")
    summary, chunked = scored_table(trained, frame, tmp_path, "chunked", chunk_size=37)
    assert summary["chunks"] == -(-len(frame) // 37)
    pd.testing.assert_frame_equal(chunked, whole)  # exact: the 450 rows fit the reservoir
    # with a reservoir smaller than the data the sample is the same whatever the chunking
    reference, scores = trained["model"].drift_reference, trained["model"].predict_frame(frame)
    one, many = drift.DriftAccumulator(reference, reservoir_size=100), drift.DriftAccumulator(reference, 100)
    one.update(frame, scores)
    for start in range(0, len(frame), 37):
        many.update(frame.iloc[start:start + 37], scores.iloc[start:start + 37])
    pd.testing.assert_frame_equal(drift.drift_table(reference, many), drift.drift_table(reference, one))
    sample = many.sample(SHIFTED_NUMERIC)
    assert len(sample) == 100 and set(sample) <= set(frame[SHIFTED_NUMERIC])
    assert many.counts[SHIFTED_NUMERIC].sum() == len(frame)


def test_empty_input_gives_a_table_with_nothing_flagged(trained, tmp_path):
    summary, table = scored_table(trained, trained["held_out"].iloc[:0], tmp_path)
    assert summary["rows"] == 0 and (table["n_scored"] == 0).all()
    assert table["psi"].isna().all() and not table["drifted"].any()


def load_predict():
    spec = importlib.util.spec_from_file_location("predict_cli", ROOT / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_predict_cli_writes_the_table_beside_the_output(trained, tmp_path, capsys):
    predict = load_predict()
    src = tmp_path / "customers.csv"
    shifted(trained["held_out"], trained["train"]).to_csv(src, index=False)
    out = tmp_path / "out" / "scores.parquet"
    predict.run(predict.parse_args(["--model", str(trained["ckpt"]), "--input", str(src), "--output", str(out),
                                    "--chunk-size", "100", "--no-progress", "--drift", "--drift-threshold", "0.5"]))
    table = pd.read_csv(tmp_path / "out" / "scores.drift.csv")
    assert table.loc[table["drifted"], "feature"].tolist() == [SHIFTED_CATEGORICAL, SHIFTED_NUMERIC]
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1].startswith("drift: 2 of 27 feature(s) flagged (PSI >= 0.5")
    assert printed[-1].endswith(str(tmp_path / "out" / "scores.drift.csv"))

    elsewhere = tmp_path / "tables" / "drift.parquet"
    predict.run(predict.parse_args(["--model", str(trained["ckpt"]), "--input", str(src), "--output", str(out),
                                    "--no-progress", "--drift", str(elsewhere)]))
    assert pd.read_parquet(elsewhere)["feature"].tolist() == table["feature"].tolist()


def test_old_checkpoint_scores_but_drift_is_a_clear_error(trained, tmp_path, capsys):
    src = tmp_path / "customers.parquet"
    trained["held_out"].to_parquet(src, index=False)
    out = tmp_path / "scores.parquet"
    assert deepromo.load_model(trained["old"]).drift_reference is None
    with pytest.raises(drift.DriftReferenceError, match="carries no drift reference profile") as info:
        score_file(trained["old"], src, out, progress=False, drift=True)
    assert str(trained["old"]) in str(info.value) and "retrain" in str(info.value)
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))
    score_file(trained["old"], src, out, progress=False)
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(
        score_file(trained["ckpt"], src, tmp_path / "new.parquet", progress=False)["output"]))

    predict = load_predict()  # the command line: one error line, exit 2
    previous = signal.getsignal(signal.SIGTERM)  # main_guard installs its own handler
    try:
        with pytest.raises(SystemExit) as exit_info:
            predict.main(["--model", str(trained["old"]), "--input", str(src), "--output", str(out), "--drift"])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model 'splc'") and "no drift reference" in lines[0]


@pytest.mark.parametrize("options, message", [
    ({"drift": "table.json"}, "must end in .csv, .parquet or .pq"),
    ({"drift_threshold": 0}, "threshold must be a number > 0, got 0"),
    ({"drift_threshold": "0.2"}, "threshold must be a number > 0, got '0.2'"),
    ({"drift_ks_pvalue": 5.0}, "ks_pvalue_threshold must be a number in (0, 1], got 5.0"),
    ({"drift_share_shift": -0.1}, "share_shift_threshold must be a number in (0, 1], got -0.1"),
])
def test_bad_drift_options_are_named_before_scoring(trained, tmp_path, options, message):
    src = tmp_path / "customers.parquet"
    trained["held_out"].head(5).to_parquet(src, index=False)
    with pytest.raises(UserInputError) as info:
        score_file(trained["ckpt"], src, tmp_path / "scores.parquet", progress=False,
                   **{"drift": True, **options})
    assert message in str(info.value)
    assert not (tmp_path / "scores.parquet").exists()


def test_drift_is_logged_to_mlflow(trained, tmp_path, mlflow_store):
    import mlflow
    from mlflow.tracking import MlflowClient

    frame = shifted(trained["held_out"], trained["train"])
    summary, table = scored_table(trained, frame, tmp_path, drift_tracking_uri=mlflow_store)
    client = MlflowClient(mlflow_store)
    run = client.get_run(summary["drift"]["mlflow_run_id"])
    assert client.get_experiment(run.info.experiment_id).name == drift.DRIFT_EXPERIMENT
    psi = dict(zip(table["feature"], table["psi"]))
    assert run.data.metrics[f"drift/psi/{SHIFTED_NUMERIC}"] == pytest.approx(psi[SHIFTED_NUMERIC])
    assert run.data.metrics["drift/score_psi"] == pytest.approx(psi["score"])
    assert run.data.metrics["drift/n_drifted"] == 2
    assert run.data.tags["deepromo.model"] == "splc" and run.data.tags["deepromo.rows"] == str(len(frame))
    logged = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/drift/customers_scores.drift.json")
    logged = pd.DataFrame(logged["data"], columns=logged["columns"])  # mlflow.log_table's layout
    assert logged["feature"].tolist() == table["feature"].tolist()
    np.testing.assert_allclose(logged["psi"].astype(float), table["psi"], atol=1e-9)  # to_json: 10 decimals
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "drift")]
    assert "drift/customers_scores.drift.csv" in artifacts

    with mlflow.start_run() as active:  # an active run gets the table, no URI needed
        summary, _ = scored_table(trained, frame, tmp_path, "in_run")
    assert summary["drift"]["mlflow_run_id"] == active.info.run_id
    assert "drift/psi/spend_30d" in client.get_run(active.info.run_id).data.metrics


def test_training_job_saves_the_profile(tmp_path_factory):
    results, _ = tiny_job("splc", tmp_path_factory)
    model = deepromo.load_model(results["model_path"])
    reference = model.drift_reference
    assert list(reference["features"]) == model.preprocessor.columns
    assert reference["score"]["name"] == "score" and reference["score"]["split"] == "val"
    assert json.loads(json.dumps(reference)) == reference


@pytest.mark.slow
@pytest.mark.parametrize("name", deepromo.list_models())
def test_every_models_job_saves_a_profile_or_says_why_not(name, tmp_path_factory, tmp_path):
    """Every model with raw feature columns gets a profile with its main score; gat (graph node ids, no raw
    features) gets none, and asking it for drift is the clear error."""
    results, _ = tiny_job(name, tmp_path_factory)
    model = deepromo.load_model(results["model_path"])
    if model.preprocessor is None:
        assert model.drift_reference is None
        src = tmp_path / "pairs.csv"
        pd.DataFrame({"customer_id": [1], "offer_id": [1]}).to_csv(src, index=False)
        with pytest.raises(drift.DriftReferenceError, match="carries no drift reference"):
            score_file(model, src, tmp_path / "scores.parquet", progress=False, drift=True)
        return
    reference = model.drift_reference
    assert set(model.preprocessor.columns) <= set(reference["features"])
    assert reference["score"]["name"] == drift.score_column(model) in ("score", "p")
