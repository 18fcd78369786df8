"""Scoring new customers without outcomes (issue 17 item 6): a raw rows file in the training format, with no label
(or a constant or empty one), is scored by predict.py through the column roles that trained the model. The features
come from the training view code, so the same customers score exactly as through the training path."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

import deepromo
from deepromo.data.errors import UserInputError
from deepromo.data.sources import load_source
from deepromo.data.views import build_view
from deepromo.jobs.cli import main_guard
from deepromo.serving.new_customers import scoring_frame, scoring_inputs

from conftest import ROOT, param_overrides

sys.path.insert(0, str(ROOT))
import predict  # noqa: E402

VIEWS = {"splc": "customer", "dipn": "response", "txl": "purchase"}
OUTCOME_COLUMNS = ["bought", "spend", "opened"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A synthetic world written as a rows file with string ids and an events file, and its column roles."""
    from deepromo.data.sources.synthetic import generate_world

    world = generate_world(n_customers=600, seed=3)
    d = tmp_path_factory.mktemp("new_customers")
    exposures = world.exposures.drop_duplicates("customer_id", keep="last")
    rows = world.customers.merge(exposures, on="customer_id").merge(world.outcomes, on="customer_id")
    rows["shopper"] = [f"S{i:05d}" for i in rows["customer_id"]]
    rows = rows.rename(columns={"purchased": "bought", "incentive": "coupon_value", "engaged": "opened",
                                "ts": "sent_day", "revenue": "spend"})
    rows = rows[["shopper", "age_band", "region", "membership", "device", "tenure_days", "sent_day", "coupon_value",
                 *OUTCOME_COLUMNS]]
    rows.to_csv(d / "shoppers.csv", index=False)
    events = world.events.assign(shopper=[f"S{i:05d}" for i in world.events["customer_id"]])
    events.drop(columns=["customer_id"]).rename(columns={"ts": "day"}).to_csv(d / "events.csv", index=False)
    options = dict(path=str(d / "shoppers.csv"), id="shopper", label="bought", treatment="coupon_value",
                   numeric=["tenure_days"], categorical=["age_band", "region", "membership", "device"],
                   time="sent_day", engaged="opened", revenue="spend", events_path=str(d / "events.csv"),
                   events_columns={"customer_id": "shopper", "ts": "day"})
    return {"dir": d, "rows": rows, "options": options}


def data_overrides(options: dict) -> list[str]:
    out = []
    for key, value in options.items():
        if isinstance(value, list):
            out.append(f"data.{key}=[{','.join(value)}]")
        elif isinstance(value, dict):
            out.append(f"data.{key}={{{','.join(f'{k}:{v}' for k, v in value.items())}}}")
        else:
            out.append(f"data.{key}={value}")
    return out


@pytest.fixture(scope="module")
def runs(files, tmp_path_factory):
    """splc, dipn and txl trained for one epoch by train.py's job on the rows file (no baselines). splc logs to a
    fresh MLflow store and is registered (its run folder gets config.yaml); dipn's composed config and txl's
    flat roles are saved as YAML files, the other two forms --roles-from reads."""
    import mlflow

    from deepromo.jobs.config import compose_train_config
    from deepromo.jobs.train import run

    tmp = tmp_path_factory.mktemp("runs")
    uri = f"sqlite:///{tmp}/mlflow.db"
    patch = pytest.MonkeyPatch()
    patch.setenv("MLFLOW_TRACKING_URI", uri)
    out = {"uri": uri}
    for name in VIEWS:
        run_dir = tmp / name
        logger = (["logger=mlflow", f"logger.artifact_location={tmp}/artifacts", "registry.register=true"]
                  if name == "splc" else ["logger=none"])
        cfg = compose_train_config(["data=table", f"model={name}", "trainer.max_epochs=1", "~model.baselines",
                                    "trainer.enable_progress_bar=false", f"paths.output_dir={run_dir}", *logger,
                                    *data_overrides(files["options"]),
                                    *param_overrides(deepromo.get_model_class(name).test_params[0]),
                                    *(["~model.allocation"] if name == "dipn" else [])])
        results = run(cfg)
        out[name] = {"dir": run_dir, "ckpt": run_dir / "model.ckpt", "results": results}
    dipn_cfg = compose_train_config(["data=table", "model=dipn", *data_overrides(files["options"])])
    OmegaConf.save(dipn_cfg, tmp / "dipn_train_config.yaml")  # unresolved, as Hydra writes .hydra/config.yaml
    out["dipn"]["roles"] = tmp / "dipn_train_config.yaml"
    OmegaConf.save(OmegaConf.create(files["options"]), tmp / "txl_roles.yaml")
    out["txl"]["roles"] = tmp / "txl_roles.yaml"
    out["splc"]["roles"] = out["splc"]["dir"]  # the run folder: its config.yaml, written by the MLflow logging
    yield out
    patch.undo()
    mlflow.set_tracking_uri(None)


def training_scores(name: str, runs, options: dict) -> tuple[pd.DataFrame, list]:
    """The scores of the rows file's customers through the training path (the labelled source and its view),
    and their original ids."""
    model = deepromo.load_model(runs[name]["ckpt"])
    data = load_source("table", **options)
    view = build_view(VIEWS[name], data)
    ids = data.meta["original_ids"].set_index("customer_id")["original_id"].reindex(view.frame["customer_id"])
    return model.predict_frame(view.frame, **view.scoring_context()), ids.tolist()


def score(runs, name: str, rows_file, out, *extra: str) -> dict:
    return predict.run(predict.parse_args(["--model", str(runs[name]["ckpt"]), "--roles-from", str(runs[name]["roles"]),
                                           "--input", str(rows_file), "--output", str(out), "--no-progress",
                                           "--chunk-size", "128", *extra]))


def refused(capsys, argv: list[str]) -> str:
    """predict.py ``argv`` must exit 2 with one ``error: ...`` line: that line."""
    with pytest.raises(SystemExit) as exc:
        main_guard(predict.run, predict.parse_args(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def without_outcome(rows: pd.DataFrame, how: str) -> pd.DataFrame:
    """The rows file as a file of new customers: outcome columns dropped, constant, or present but empty."""
    if how == "dropped":
        return rows.drop(columns=OUTCOME_COLUMNS)
    if how == "constant":
        return rows.assign(bought=1, spend=0.0, opened=0)
    return rows.assign(bought=np.nan, spend=np.nan, opened=np.nan)


@pytest.mark.parametrize("how", ["dropped", "constant", "empty"])
def test_customers_without_an_outcome_score_as_through_the_training_view(files, runs, tmp_path, capsys, how):
    new = tmp_path / "new_customers.csv"
    without_outcome(files["rows"], how).to_csv(new, index=False)
    summary = score(runs, "splc", new, tmp_path / "scores.parquet")
    scored = pd.read_parquet(tmp_path / "scores.parquet")
    expected, ids = training_scores("splc", runs, files["options"])
    assert summary["rows"] == len(files["rows"]) == len(scored) and summary["chunks"] == math.ceil(600 / 128)
    assert list(scored.columns) == ["shopper", *expected.columns]
    assert scored["shopper"].tolist() == files["rows"]["shopper"].tolist() == ids  # original ids, file order
    np.testing.assert_array_equal(scored[expected.columns].to_numpy(), expected.to_numpy())  # same features
    printed = capsys.readouterr().out
    assert f"roles from {runs['splc']['dir'] / 'config.yaml'}" in printed
    assert "prediction time day 120: the earliest decision time (column 'sent_day')" in printed
    assert "not read: label, revenue, engaged" in printed


def test_a_response_model_scores_its_curves_with_or_without_the_treatment(files, runs, tmp_path):
    expected, _ = training_scores("dipn", runs, files["options"])
    curves = [c for c in expected.columns if c.startswith("p_at_")]
    new = tmp_path / "new.csv"
    without_outcome(files["rows"], "dropped").to_csv(new, index=False)
    score(runs, "dipn", new, tmp_path / "with.parquet")
    scored = pd.read_parquet(tmp_path / "with.parquet")
    np.testing.assert_array_equal(scored[expected.columns].to_numpy(), expected.to_numpy())  # p at the logged level
    # no treatment column: the features do not need it; the curves are the same, p is at the first level
    without_outcome(files["rows"], "dropped").drop(columns=["coupon_value"]).to_csv(new, index=False)
    summary = score(runs, "dipn", new, tmp_path / "without.parquet")
    scored = pd.read_parquet(tmp_path / "without.parquet")
    np.testing.assert_array_equal(scored[curves].to_numpy(), expected[curves].to_numpy())
    np.testing.assert_allclose(scored["p"].to_numpy(), expected[curves[0]].to_numpy(), rtol=1e-6)  # float32 ulp
    assert "treatment" in summary["scoring"]["left_out_roles"]


def test_a_sequence_model_scores_as_through_the_training_view(files, runs, tmp_path, capsys):
    expected, ids = training_scores("txl", runs, files["options"])
    new = tmp_path / "new.csv"
    without_outcome(files["rows"], "dropped").to_csv(new, index=False)
    score(runs, "txl", new, tmp_path / "scores.parquet")
    scored = pd.read_parquet(tmp_path / "scores.parquet")
    assert scored["shopper"].tolist() == ids
    np.testing.assert_allclose(scored[expected.columns].to_numpy(), expected.to_numpy(), rtol=1e-6, atol=1e-7)
    # txl reads the incentive each customer was sent (campaign_incentive): without its column, say so
    without_outcome(files["rows"], "dropped").drop(columns=["coupon_value"]).to_csv(new, index=False)
    err = refused(capsys, ["--model", str(runs["txl"]["ckpt"]), "--roles-from", str(runs["txl"]["roles"]),
                           "--input", str(new), "--output", str(tmp_path / "no.parquet")])
    assert "campaign_incentive" in err and "'coupon_value'" in err and "treatment=null" in err
    # ... or score everyone as sent nothing, explicitly
    score(runs, "txl", new, tmp_path / "none_sent.parquet", "--role", "treatment=null")
    assert len(pd.read_parquet(tmp_path / "none_sent.parquet")) == len(files["rows"])


def test_behaviour_features_come_from_the_new_events(files, runs, tmp_path):
    rows = without_outcome(files["rows"], "dropped").head(3).assign(shopper=["N1", "N2", "N3"], sent_day=50.0)
    rows.to_csv(tmp_path / "new.csv", index=False)
    pd.DataFrame({
        "shopper": ["N1", "N1", "N1", "N2", "N1", "X9"],
        "day": [45.0, 48.0, 49.0, 30.0, 52.0, 40.0],  # N1's purchase on day 52 is after the prediction time
        "event_type": ["purchase", "purchase", "view", "view", "purchase", "purchase"],
        "amount": [10.0, 5.0, 0.0, 0.0, 100.0, 7.0],
    }).to_csv(tmp_path / "new_events.csv", index=False)
    model = deepromo.load_model(runs["splc"]["ckpt"])
    options = {**files["options"], "path": str(tmp_path / "new.csv"), "events_path": str(tmp_path / "new_events.csv")}
    frame = scoring_frame(model, options).set_index("original_id")
    assert frame.index.tolist() == ["N1", "N2", "N3"]
    assert frame["frequency"].tolist() == [2.0, 0.0, 0.0] and frame["monetary"].tolist() == [15.0, 0.0, 0.0]
    assert frame["recency_days"].tolist() == [2.0, 51.0, 51.0]  # never bought: prediction time + 1
    assert frame["purchase_7d"].tolist() == [2.0, 0.0, 0.0] and frame["view_7d"].tolist() == [1.0, 0.0, 0.0]
    assert frame["view_30d"].tolist() == [1.0, 1.0, 0.0]
    np.testing.assert_array_equal(frame["region"].astype(str), rows["region"].astype(str))
    # the same through predict.py, with the events file given as a role
    summary = score(runs, "splc", tmp_path / "new.csv", tmp_path / "scores.parquet", "--role",
                    f"events_path={tmp_path / 'new_events.csv'}", "--keep-column", "frequency")
    scored = pd.read_parquet(tmp_path / "scores.parquet")
    assert scored["shopper"].tolist() == ["N1", "N2", "N3"] and scored["frequency"].tolist() == [2.0, 0.0, 0.0]
    assert summary["scoring"]["prediction_time"] == 50.0


def test_missing_columns_and_files_are_named(files, runs, tmp_path, capsys):
    base = ["--model", str(runs["splc"]["ckpt"]), "--roles-from", str(runs["splc"]["roles"]), "--output",
            str(tmp_path / "scores.parquet")]
    new = tmp_path / "new.csv"
    without_outcome(files["rows"], "dropped").drop(columns=["region"]).to_csv(new, index=False)
    err = refused(capsys, [*base, "--input", str(new)])
    assert "file 'new.csv' lacks column(s) ['region']" in err
    without_outcome(files["rows"], "dropped").to_csv(new, index=False)
    err = refused(capsys, [*base, "--input", str(new), "--role", f"events_path={tmp_path / 'nope.csv'}"])
    assert "nope.csv" in err and "events_path" in err and "does not exist" in err
    err = refused(capsys, [*base, "--input", str(new), "--role", "colour=red"])
    assert "unknown role(s) ['colour']" in err
    err = refused(capsys, [*base, "--input", str(new), "--events", str(tmp_path / "e.csv")])
    assert "--events" in err and "events_path" in err
    assert not (tmp_path / "scores.parquet").exists()


def test_the_prediction_time_without_a_decision_time_is_the_day_after_the_last_event(files, runs, tmp_path, capsys):
    new = tmp_path / "new.csv"
    without_outcome(files["rows"], "dropped").drop(columns=["sent_day"]).to_csv(new, index=False)
    err = refused(capsys, ["--model", str(runs["splc"]["ckpt"]), "--roles-from", str(runs["splc"]["roles"]),
                           "--input", str(new), "--output", str(tmp_path / "scores.parquet")])
    assert "'sent_day'" in err and "time=null" in err  # the decision time sets the prediction time: not dropped
    summary = score(runs, "splc", new, tmp_path / "scores.parquet", "--role", "time=null")
    last_day = math.floor(pd.read_csv(files["options"]["events_path"])["day"].max())
    assert summary["scoring"]["prediction_time"] == last_day + 1.0
    assert f"prediction time day {last_day + 1}: the day after the last event's day" in capsys.readouterr().out
    summary = score(runs, "splc", new, tmp_path / "scores.parquet", "--role", "time=null", "--role", "history_end=100")
    assert summary["prediction_time"].startswith("prediction time day 100: option history_end=100")
    # per-row prediction times: each customer's features stop at its own as_of
    rows = without_outcome(files["rows"], "dropped").assign(scored_at=lambda d: d["sent_day"])
    rows.to_csv(new, index=False)
    summary = score(runs, "splc", new, tmp_path / "scores.parquet", "--role", "as_of=scored_at")
    low, high = rows["scored_at"].min(), rows["scored_at"].max()
    assert summary["prediction_time"].startswith(f"prediction time days {low:g} .. {high:g}: each row's as_of "
                                                 "(column 'scored_at')")


def test_roles_stored_with_the_model(files, runs, tmp_path):
    new = tmp_path / "new.csv"
    without_outcome(files["rows"], "dropped").to_csv(new, index=False)
    expected, _ = training_scores("splc", runs, files["options"])
    registered = runs["splc"]["results"]["registered"]
    uri = f"models:/{registered['name']}/{registered['version']}"
    for model, where in ((uri, f"{uri} (config.yaml)"), (str(runs["splc"]["ckpt"]), "config.yaml")):
        summary = predict.run(predict.parse_args(["--model", model, "--roles-from", "--input", str(new), "--output",
                                                  str(tmp_path / "scores.parquet"), "--no-progress"]))
        assert summary["roles_from"].endswith(where)
        scored = pd.read_parquet(tmp_path / "scores.parquet")
        np.testing.assert_array_equal(scored[expected.columns].to_numpy(), expected.to_numpy())
    # a --role alone also reads the stored roles
    summary = predict.run(predict.parse_args(["--model", str(runs["splc"]["ckpt"]), "--role", f"path={new}",
                                              "--output", str(tmp_path / "scores.parquet"), "--no-progress"]))
    assert summary["rows"] == len(files["rows"])
    with pytest.raises(UserInputError, match="no training roles stored beside checkpoint"):
        predict.run(predict.parse_args(["--model", str(runs["dipn"]["ckpt"]), "--roles-from", "--input", str(new),
                                        "--output", str(tmp_path / "x.parquet")]))


def test_drift_is_measured_on_the_scoring_frame(files, runs, tmp_path):
    new = tmp_path / "new.csv"
    without_outcome(files["rows"], "dropped").to_csv(new, index=False)
    summary = score(runs, "splc", new, tmp_path / "scores.parquet", "--drift")
    table = pd.read_csv(tmp_path / "scores.drift.csv")
    model = deepromo.load_model(runs["splc"]["ckpt"])
    assert table["feature"].tolist() == [*model.input_columns(), "score"]
    assert (table["n_scored"] == len(files["rows"])).all() and summary["drift"]["path"].endswith("scores.drift.csv")


def test_scoring_mode_of_the_table_source(tmp_path):
    (tmp_path / "rows.csv").write_text("user,age,arm,label\nu1,30,five,maybe\nu2,40,five,\n")
    (tmp_path / "events.csv").write_text("user,ts,event_type,amount\nu1,3.5,purchase,2\nu1,6,purchase,3\n"
                                         "u2,7.25,view,\n")
    roles = dict(path=str(tmp_path / "rows.csv"), id="user", numeric=["age"], events_path=str(tmp_path / "events.csv"),
                 events_columns={"customer_id": "user"}, response_days=2)
    # a derived label: training stops the history a response window before the data end, scoring after the last day
    assert load_source("table", **roles).history_end == 7.0 - 2.0
    scored = load_source("table", **roles, scoring=True)
    assert scored.history_end == 8.0 and scored.meta["scoring"]["rule"] == "the day after the last event's day"
    assert build_view("customer", scored).frame["frequency"].tolist() == [2.0, 0.0]
    # one arm, no control row, a label that is no 0/1: a training error, not read when scoring
    with pytest.raises(UserInputError, match="control arm 'none' does not occur"):
        load_source("table", **roles, treatment="arm", control="none")
    scored = load_source("table", **roles, treatment="arm", control="none", label="label", label_positive="maybe",
                         scoring=True)
    assert scored.outcomes["purchased"].tolist() == [0, 0] and scored.exposures["incentive"].tolist() == [1.0, 1.0]
    assert scored.meta["scoring"]["left_out_roles"] == ["label"] and not scored.meta["label_derived"]


def test_a_graph_model_is_refused_clearly(files):
    with pytest.raises(UserInputError, match="model 'gat' reads the 'offer_graph' view"):
        scoring_inputs(deepromo.get_model_class("gat"), files["options"])


def test_cli_scores_through_the_stored_roles_and_refuses_in_one_line(files, runs, tmp_path):
    """Both CLI runs start at once: each pays ~5-10 s of importing torch and Lightning."""
    new, bad = tmp_path / "new.csv", tmp_path / "bad.csv"
    without_outcome(files["rows"], "dropped").to_csv(new, index=False)
    without_outcome(files["rows"], "dropped").drop(columns=["device"]).to_csv(bad, index=False)
    registered = runs["splc"]["results"]["registered"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": runs["uri"]}
    cli = [sys.executable, "predict.py", "--model", f"models:/{registered['name']}/{registered['version']}",
           "--roles-from", "--no-progress"]
    good = subprocess.Popen([*cli, "--input", str(new), "--output", str(tmp_path / "scores.parquet")], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    failing = subprocess.Popen([*cli, "--input", str(bad), "--output", str(tmp_path / "bad.parquet")], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = good.communicate(timeout=180)
    assert good.returncode == 0, stderr
    assert "prediction time day 120" in stdout and f"scored {len(files['rows'])} customers" in stdout
    assert pd.read_parquet(tmp_path / "scores.parquet")["shopper"].tolist() == files["rows"]["shopper"].tolist()
    _, stderr = failing.communicate(timeout=180)
    lines = stderr.strip().splitlines()
    assert failing.returncode == 2 and len(lines) == 1 and "'device'" in lines[0], stderr
    assert not (tmp_path / "bad.parquet").exists()


@pytest.mark.slow
def test_the_run_folder_of_a_real_train_py_run(files, tmp_path):
    """train.py under Hydra writes <run>/.hydra/config.yaml; predict.py --roles-from <run> reads it."""
    run_dir = tmp_path / "run"
    options = data_overrides(files["options"])
    train = subprocess.run([sys.executable, "train.py", "data=table", "model=mlp", "trainer.max_epochs=1",
                            "logger=none", "~model.baselines", f"hydra.run.dir={run_dir}", *options,
                            *param_overrides(deepromo.get_model_class("mlp").test_params[0])],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-2000:]
    assert (run_dir / ".hydra" / "config.yaml").is_file(), "train.py (Hydra) wrote no .hydra/config.yaml"
    new = tmp_path / "new.csv"
    without_outcome(files["rows"], "dropped").to_csv(new, index=False)
    summary = predict.run(predict.parse_args(["--model", str(run_dir / "model.ckpt"), "--roles-from", str(run_dir),
                                              "--input", str(new), "--output", str(tmp_path / "s.parquet"),
                                              "--no-progress"]))
    assert summary["roles_from"] == str(run_dir / ".hydra" / "config.yaml")
    model = deepromo.load_model(run_dir / "model.ckpt")
    view = build_view("customer", load_source("table", **files["options"]))
    np.testing.assert_array_equal(pd.read_parquet(tmp_path / "s.parquet")["score"].to_numpy(),
                                  model.predict_frame(view.frame)["score"].to_numpy())
