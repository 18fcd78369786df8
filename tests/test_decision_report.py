"""segment.py and report.py end to end on tiny data: sections, numbers, files and MLflow artifacts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from deepromo.jobs.config import compose_train_config
from deepromo.data.sources import load_source
from deepromo.decide.rfm import RFM_SEGMENTS
from deepromo.reporting.render import markdown_table, render_html
from deepromo.jobs.segment import customer_rfm, segment_customers

REPORT_SECTIONS = ("## Summary", "## Segments", "## Model", "## Whom to target with what incentive",
                   "## ROI by budget", "## Rollout: A/B analysis")


def _config(name: str, tmp_path, *overrides: str):
    base = [f"paths.output_dir={tmp_path / 'run'}", "segments.k_max=5", "segments.n_refs=3", "segments.max_rows=1500"]
    if name == "report":
        base.append("trainer.enable_progress_bar=false")
    return compose_train_config(base + list(overrides), config_name=name)


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A private SQLite tracking store for one test (env var and MLflow's global URI, reset afterwards)."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield ["logger=mlflow", f"logger.artifact_location={tmp_path / 'artifacts'}"], mlflow.tracking.MlflowClient(uri)
    mlflow.set_tracking_uri(None)


def test_segments_leave_non_buyers_apart_and_profile_adds_up(tiny_world):
    seg = segment_customers(tiny_world, ks=range(2, 5), n_refs=3, seed=0)
    buyers = seg.rfm["frequency"] > 0
    k = seg.k - 1
    assert 2 <= k <= 4
    assert (seg.labels[~buyers] == k).all() and (seg.labels[buyers] < k).all()
    assert seg.profile.loc[k, "description"] == "no purchase in the history"
    assert seg.profile["n_customers"].sum() == len(tiny_world.customers)
    assert seg.profile["share"].sum() == pytest.approx(1.0)
    # cluster 0 spends most; purchase rates equal a direct count on the logged outcomes
    assert seg.profile["monetary_mean"].iloc[:k].is_monotonic_decreasing
    outcomes = tiny_world.outcomes.set_index("customer_id")["purchased"]
    for s in seg.profile.index:
        members = seg.labels.index[seg.labels == s]
        assert seg.profile.loc[s, "purchase_rate"] == pytest.approx(outcomes.loc[members].mean())
    assert set(seg.rfm_profile.index) <= set(RFM_SEGMENTS)
    assert seg.rfm_profile["n_customers"].sum() == len(tiny_world.customers)


def test_rfm_from_customer_columns(fake_hillstrom, tmp_path):
    data = load_source("hillstrom", path=str(fake_hillstrom(tmp_path / "h.csv", n=50)))
    rfm = customer_rfm(data, {"recency_days": "recency", "recency_scale": 30.0, "frequency": None,
                              "monetary": "history"})
    customers = data.customers.set_index("customer_id")
    np.testing.assert_allclose(rfm["recency_days"], customers["recency"] * 30.0)
    np.testing.assert_allclose(rfm["monetary"], customers["history"])
    assert (rfm["frequency"] == 1).all()
    with pytest.raises(ValueError, match="no purchase events"):
        customer_rfm(data)
    with pytest.raises(ValueError, match=r"column\(s\) \['nope'\] not in the customers table"):
        customer_rfm(data, {"recency_days": "nope", "monetary": "history"})


def test_markdown_table_and_self_contained_html(tmp_path):
    frame = pd.DataFrame({"rate": [0.1234, np.nan], "name": ["a|b", "c"]}, index=pd.Index([0, 1], name="segment"))
    table = markdown_table(frame, {"rate": ".1%"})
    assert table.splitlines()[0] == "| segment | rate | name |"
    assert "| 0 | 12.3% | a\\|b |" in table and "| 1 | – | c |" in table
    (tmp_path / "p.png").write_bytes(b"\x89PNG fake")
    page = render_html(f"# T\n\n{table}\n\n![plot](p.png)", tmp_path, "T")
    assert "<table>" in page and 'src="data:image/png;base64,' in page and 'src="p.png"' not in page


def test_segment_command_writes_and_logs(tmp_path, mlflow_store):
    from deepromo.jobs.segment import run_segmentation

    overrides, client = mlflow_store
    cfg = _config("segment", tmp_path, "data.options.n_customers=800", *overrides)
    summary = run_segmentation(cfg)
    run = tmp_path / "run"
    for name in ("segments.parquet", "segment_profile.csv", "rfm_segment_profile.csv", "k_selection.csv",
                 "k_selection.png", "segment_map.png", "segmentation.json"):
        assert (run / name).stat().st_size > 0, name
    assert summary["k"] == len(summary["profile"])
    logged = {a.path for a in client.list_artifacts(summary["mlflow_run_id"])}
    assert {"segment_profile.csv", "k_selection.png", "segmentation.json"} <= logged
    assert client.get_run(summary["mlflow_run_id"]).data.metrics["k"] == summary["k"]


def test_report_on_the_synthetic_world(tmp_path, mlflow_store):
    from deepromo.jobs.report import run_decision_report

    overrides, client = mlflow_store
    cfg = _config("report", tmp_path, "data.options.n_customers=800", "trainer.max_epochs=2", "model.baselines=null",
                  "report.cohort_size=3000", *overrides)
    summary = run_decision_report(cfg)
    run = tmp_path / "run"
    text = (run / "report.md").read_text()
    for heading in REPORT_SECTIONS:
        assert heading in text, heading
    for image in ("k_selection.png", "segment_map.png", "qini_curves.png", "rollout_lift.png",
                  "rollout_roi_by_budget.png", "response_curves.png"):
        assert f"]({image})" in text and (run / image).stat().st_size > 0, image
    html = (run / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 6 and "<table>" in html
    # the rollout: a fresh cohort split into four equal arms; the headline equals a direct count
    rollout = pd.read_parquet(run / "rollout.parquet")
    assert len(rollout) == 3000 and rollout["arm"].value_counts().to_dict() == {
        "model": 750, "random": 750, "rfm_rule": 750, "holdout": 750}
    assert summary["simulated_rollout"] and rollout["expected_purchase"].between(0, 1).all()
    rates = rollout.groupby("arm")["purchased"].mean()
    head = summary["headline"]
    assert head["comparison"] == "model vs holdout"
    assert head["control"] == pytest.approx(rates["holdout"]) and head["treatment"] == pytest.approx(rates["model"])
    assert head["lift_ci"][0] < head["lift"] < head["lift_ci"][1]
    assert (rollout.loc[rollout["arm"] == "holdout", "incentive"] == 0).all()
    lift = pd.read_csv(run / "lift_table.csv")
    assert set(lift["comparison"]) == {"model vs holdout", "random vs holdout", "rfm_rule vs holdout",
                                       "model vs random"}
    assert json.loads((run / "report.json").read_text())["k"] >= 3
    run_id = client.get_model_version("deepromo-dipn-synthetic", summary["registered"]["version"]).run_id
    logged = {a.path for a in client.list_artifacts(run_id, "report")}
    assert {"report/report.html", "report/report.md", "report/lift_table.csv", "report/rollout_lift.png"} <= logged


def test_report_on_a_logged_ab_test(tmp_path, fake_hillstrom):
    from deepromo.jobs.report import run_decision_report

    csv = fake_hillstrom(tmp_path / "hillstrom.csv", n=2000)
    cfg = _config("report", tmp_path, "data=hillstrom", f"data.options.path={csv}", "trainer.max_epochs=2",
                  "model.baselines=null", "logger=none", "segments.k_min=2", "report.target_share=0.5")
    summary = run_decision_report(cfg)
    text = (tmp_path / "run" / "report.md").read_text()
    for heading in set(REPORT_SECTIONS) - {"## ROI by budget"}:
        assert heading in text, heading
    assert not summary["simulated_rollout"]
    rollout = pd.read_parquet(tmp_path / "run" / "rollout.parquet")
    assert rollout["targeted"].mean() == pytest.approx(0.5, abs=0.01)
    lift = pd.read_csv(tmp_path / "run" / "lift_table.csv")
    everyone = lift[(lift["comparison"] == "e-mail vs none: everyone") & (lift["metric"] == "conversion")].iloc[0]
    rates = rollout.groupby("arm")["purchased"].mean()  # test customers, logged arms
    assert everyone["control"] == pytest.approx(rates["control"])
    assert everyone["treatment"] == pytest.approx(rates["treatment"])
    assert "e-mail vs none: targeted by the model" in text
