"""The train.py job end to end on a tiny world, and bad input failing before training."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import deepromo
from deepromo.data.datamodule import PromoDataModule
from deepromo.data.tables import CanonicalData, DataValidationError
from deepromo.data.views import build_view
from deepromo.jobs.train import run

from conftest import ROOT

METHODS = {"splc", "rfm_segments", "bce_two_stage", "splc_original", "logistic", "random_forest"}
METRICS = {"precision", "recall", "balanced_accuracy", "weighted_f1", "auc", "gain_at_40"}


def test_train_job_writes_metrics_plot_and_model(make_config, tmp_path):
    cfg = make_config("model=splc")
    results = run(cfg)
    out = tmp_path / "run"
    written = json.loads((out / "metrics.json").read_text())
    assert written["model"] == "splc" and written["data"] == "synthetic"
    assert set(written["test"]) == METHODS
    for method, row in written["test"].items():
        assert METRICS <= set(row), method
        for name in METRICS:
            assert 0.0 <= row[name] <= 1.0, (method, name, row[name])
    assert written["target"] == "true intent: prompted"
    assert written == json.loads(json.dumps(results, default=float))
    assert (out / "gain_curve.png").stat().st_size > 10_000
    model = deepromo.load_model(out / "model.ckpt")
    assert model.name == "splc"


def test_mlflow_run_is_logged(make_config, tmp_path, monkeypatch):
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = make_config("logger=mlflow", f"logger.artifact_location={tmp_path}/artifacts", "trainer.max_epochs=1")
    run(cfg)
    client = mlflow.tracking.MlflowClient(uri)
    exp = client.get_experiment_by_name("deepromo")
    (found,) = client.search_runs([exp.experiment_id])
    assert found.info.status == "FINISHED"
    assert found.data.params["model"] == "splc"
    assert "test/splc/balanced_accuracy" in found.data.metrics
    assert "val/stage2_auc" in found.data.metrics
    names = {a.path for a in client.list_artifacts(found.info.run_id)}
    assert {"metrics.json", "gain_curve.png", "model.ckpt", "config.yaml"} <= names


def run_train(*args):
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=300)


def test_unknown_model_and_data_list_valid_names():
    for arg, valid in (("model=nope", "splc"), ("data=nope", "synthetic")):
        proc = run_train(arg, "logger=none")
        assert proc.returncode != 0
        assert valid in proc.stderr, proc.stderr


def test_cli_reports_bad_option_in_one_line(tmp_path):
    proc = run_train("data.options.n_customers=0", "logger=none", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "n_customers" in proc.stderr
    assert "Traceback" not in proc.stderr


def with_table(world: CanonicalData, **tables) -> CanonicalData:
    return replace(world, **tables)


def test_bad_data_fails_before_training(tiny_world):
    w = tiny_world
    cases = [
        (with_table(w, customers=w.customers.iloc[:0]), "table 'customers' is empty"),
        (with_table(w, events=w.events.assign(amount=-w.events["amount"] - 1)), "'events.amount' has negative"),
        (with_table(w, outcomes=w.outcomes.drop(columns="purchased")), "lacks required column(s) ['purchased']"),
        (with_table(w, outcomes=w.outcomes.assign(purchased=0)), "label column 'segment' has a single class"),
        (with_table(w, customers=w.customers.assign(tenure_days=np.nan)), "column 'tenure_days' has"),
    ]
    for data, message in cases:
        with pytest.raises(DataValidationError) as err:
            dm = PromoDataModule(build_view("customer", data), batch_size=64)
            dm.setup()
        assert message in str(err.value)


def test_register_without_mlflow_fails_before_training(make_config, tmp_path):
    cfg = make_config("registry.register=true", "logger=csv")
    with pytest.raises(ValueError, match="registry.register=true needs logger=mlflow"):
        run(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_dipn_job_reports_curves_against_truth(make_config, tmp_path):
    results = run(make_config("model=dipn"))
    assert set(results["test"]) == {"dipn", "mlp_unconstrained", "mlp_isotonic", "t_learner", "s_learner", "x_learner", "dr_learner", "class_transformation"}
    dipn = results["test"]["dipn"]
    assert dipn["monotonicity_violations"] == 0.0
    assert results["test"]["mlp_isotonic"]["monotonicity_violations"] == 0.0
    for key in ("log_loss", "auc", "roughness", "curve_rmse", "uplift_rmse", "qini_5", "qini_20"):
        assert np.isfinite(dipn[key]), key
    assert (tmp_path / "run" / "response_curves.png").stat().st_size > 10_000
    allocation = results["allocation"]
    assert set(allocation) == {"low", "medium", "high", "unrestricted", "judged_on"}
    for name in ("low", "medium", "high"):
        scenario = allocation[name]
        assert scenario["oracle"]["profit"] >= scenario["optimised"]["profit"] - 1e-6
    plan = pd.read_parquet(tmp_path / "run" / "allocation_plan.parquet")
    assert list(plan.columns) == ["customer_id", "level", "incentive", "expected_uplift", "expected_cost"]
    assert plan["expected_cost"].sum() <= allocation["medium"]["budget"] * (1 + 1e-9)  # the plan fits its budget
    assert (plan["expected_uplift"] >= -1e-9).all()  # dipn curves are monotone: no negative uplift
    assert (tmp_path / "run" / "roi_by_budget.png").exists()


def test_allocation_with_a_flat_margin_per_purchase(make_config):
    results = run(make_config("model=dipn", "trainer.max_epochs=1", "model.baselines={}",
                              "model.allocation.margin_column=null", "model.allocation.margin=20"))
    for name in ("low", "medium", "high"):
        assert np.isfinite(results["allocation"][name]["optimised"]["profit"]), name
