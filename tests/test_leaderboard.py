"""benchmarks/leaderboard.py: its pure parts (paired bootstrap, verdict, cell keys and cache, docs markers)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import load_benchmark



@pytest.fixture(scope="module")
def lb():
    return load_benchmark("leaderboard")


def uplift_seed(rng, n: int, scores: dict) -> dict:
    y = rng.integers(0, 2, n)
    t = rng.integers(0, 2, n)
    common = {"y": y, "treated": t}
    return {"common": common, "scores": {k: f(y, t) for k, f in scores.items()}, "strata": 2 * t + y}


def mean_metric(common, s):
    return float(np.mean(s))


def test_identical_methods_give_a_narrow_ci_around_zero(lb):
    rng = np.random.default_rng(0)
    seeds = []
    for _ in range(3):
        s = rng.normal(size=400)
        seeds.append({"common": {"y": rng.integers(0, 2, 400)}, "scores": {"a": s, "b": s.copy()}, "strata": None})
    out = lb.paired_bootstrap(seeds, ["a"], "b", mean_metric, n_boot=100)["a"]
    assert out["diff"] == 0.0 and out["low"] <= 0.0 <= out["high"]
    assert out["high"] - out["low"] < 1e-12  # the same resample for both: every replicate difference is 0
    assert lb.verdict(out["low"], out["high"]) == "level"


def test_a_method_better_on_every_row_wins(lb):
    rng = np.random.default_rng(1)
    seeds = []
    for _ in range(4):
        base = rng.normal(size=300)
        seeds.append({"common": {}, "scores": {"better": base + 0.5, "worse": base - 0.5, "ref": base},
                      "strata": None})
    out = lb.paired_bootstrap(seeds, ["better", "worse"], "ref", mean_metric, n_boot=200)
    assert out["better"]["low"] > 0 and out["better"]["diff"] == pytest.approx(0.5)
    assert out["worse"]["high"] < 0
    assert lb.verdict(out["better"]["low"], out["better"]["high"]) == "win"
    assert lb.verdict(out["worse"]["low"], out["worse"]["high"]) == "loss"


def test_qini_bootstrap_is_paired_and_stratified(lb):
    """With the project's Qini: a score that knows the treated responders beats a random one; the resample keeps
    both groups in every replicate (no NaN replicate)."""
    rng = np.random.default_rng(2)
    seeds = [uplift_seed(rng, 500, {"oracle": lambda y, t: (y * t).astype(float) + rng.normal(0, 0.1, len(y)),
                                    "random": lambda y, t: rng.normal(size=len(y))}) for _ in range(3)]
    metric = lb.metric_function("response", "qini")
    out = lb.paired_bootstrap(seeds, ["oracle"], "random", metric, n_boot=50)["oracle"]
    assert out["low"] > 0 and out["n_boot"] == 50


def test_seeds_are_resampled_too(lb):
    """Seed-level spread enters the CI: two seeds with opposite differences give a CI that straddles 0 even though
    each seed alone is clear-cut."""
    n = 200
    base = np.zeros(n)
    seeds = [{"common": {}, "scores": {"m": base + 1.0, "ref": base}, "strata": None},
             {"common": {}, "scores": {"m": base - 1.0, "ref": base}, "strata": None}]
    out = lb.paired_bootstrap(seeds, ["m"], "ref", mean_metric, n_boot=300)["m"]
    assert out["low"] == pytest.approx(-1.0) and out["high"] == pytest.approx(1.0)
    assert lb.verdict(out["low"], out["high"]) == "level"


def test_verdict_rule(lb):
    assert lb.verdict(0.01, 0.2) == "win"
    assert lb.verdict(-0.2, -0.01) == "loss"
    assert lb.verdict(-0.1, 0.1) == "level"
    assert lb.verdict(0.0, 0.1) == "level"  # touching 0 does not exclude it
    assert lb.verdict(float("nan"), 0.1) == "n/a"


def test_cell_key_changes_with_every_setting(lb):
    base = {"quick": False, "epochs": 30, "row_share": 1.0, "params": {"lr": 0.001}, "seed": 0}
    key = lb.cell_key(base)
    assert key == lb.cell_key(dict(reversed(list(base.items()))))  # order does not matter
    for change in ({"quick": True}, {"epochs": 2}, {"row_share": 0.3}, {"params": {"lr": 0.002}}, {"seed": 1}):
        assert lb.cell_key({**base, **change}) != key, change


def test_finished_cell_is_read_not_recomputed(lb, tmp_path):
    calls = []

    def runner():
        calls.append(1)
        return {"status": "ok", "metrics": {"auc": 0.7}, "seconds": 1.0}, {"score": np.arange(3.0), "y": np.ones(3)}

    path = lb.cell_path(tmp_path, "synthetic", "purchase", "txl", 0, tuned=False)
    first = lb.cached_cell(path, "k1", runner, log=lambda _: None)
    second = lb.cached_cell(path, "k1", runner, log=lambda _: None)
    assert len(calls) == 1 and not first["cached"] and second["cached"]
    assert second["metrics"] == {"auc": 0.7}
    np.testing.assert_array_equal(lb.load_rows(path)["score"], np.arange(3.0))
    assert not list(path.parent.glob("*.tmp"))  # written through temporary files, renamed into place
    lb.cached_cell(path, "k2", runner, log=lambda _: None)  # another setting: computed again
    assert len(calls) == 2 and json.loads(path.read_text())["key"] == "k2"
    tuned = lb.cell_path(tmp_path, "synthetic", "purchase", "txl", 0, tuned=True)
    assert tuned.name == "0_tuned.json" and tuned.parent == path.parent


def test_failed_cell_is_recorded_and_retried(lb, tmp_path):
    calls = []

    def broken():
        calls.append(1)
        raise ValueError("boom")

    path = lb.cell_path(tmp_path, "cdnow", "purchase", "gru", 1, tuned=False)
    record = lb.cached_cell(path, "k", broken, log=lambda _: None)
    assert record["status"] == "failed" and "ValueError: boom" in record["error"]
    assert json.loads(path.read_text())["status"] == "failed"
    lb.cached_cell(path, "k", broken, log=lambda _: None)
    assert len(calls) == 2  # a failure is not a finished cell


def test_docs_section_is_replaced_between_markers_only(lb, tmp_path):
    start, end = lb.DOCS_MARKERS
    page = tmp_path / "benchmarks.md"
    page.write_text(f"# Title\n\nbefore\n\n{start}\nold table\n{end}\n\nafter\n")
    lb.update_docs("| new |", "| targets |", "leaderboard", page=page)
    text = page.read_text()
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert "old table" not in text and "| new |" in text and "| targets |" in text
    assert text.count(start) == 1 and text.count(end) == 1


def test_methods_of_a_task_include_models_config_baselines_and_the_registry(lb):
    from deepromo.tasks import get_task

    methods = {m.name: m for m in lb.task_methods("targeting")}
    assert methods["splc"].kind == "model" and methods["mlp"].kind == "model"
    assert methods["bce_two_stage"].kind == "variant" and methods["bce_two_stage"].model == "splc"
    assert set(get_task("targeting").baselines) <= set(methods)
    assert all(methods[b].kind == "baseline" for b in get_task("targeting").baselines)


def test_a_missing_dataset_is_named_with_its_reason(lb, monkeypatch, tmp_path):
    monkeypatch.setattr(lb, "HILLSTROM_CSV", tmp_path / "absent.csv")
    reason = lb.dataset_problem("hillstrom_any_visit")
    assert reason and "absent.csv" in reason
    assert lb.dataset_problem("synthetic") is None


class FakeModel:
    """A trained-model stand-in: fixed arrays per split."""

    def __init__(self, p, ids, spec="spec"):
        self.p, self.ids, self.spec = np.asarray(p, float), np.asarray(ids), spec

    def predict_split(self, dm, split):
        return {"p": self.p, "customer_id": self.ids}


def test_an_ensemble_averages_float_predictions_and_keeps_shared_ids(lb):
    members = [FakeModel([0.2, 0.6], [7, 8]), FakeModel([0.4, 0.2], [7, 8]), FakeModel([0.0, 0.4], [7, 8])]
    averaged = lb.AveragedPredictions(members)
    out = averaged.predict_split(None, "test")
    np.testing.assert_allclose(out["p"], [0.2, 0.4])
    np.testing.assert_array_equal(out["customer_id"], [7, 8])
    assert averaged.spec == "spec"  # everything else is the first member's
    with pytest.raises(ValueError, match="customer_id"):
        lb.AveragedPredictions([FakeModel([0.1], [1]), FakeModel([0.1], [2])]).predict_split(None, "test")


def test_ensemble_rows_follow_the_models_and_are_never_tuned(lb):
    methods = lb.task_methods("response")
    ensembles = lb.ensemble_methods(methods, 3)
    models = [m.name for m in methods if m.kind == "model"]
    assert [e.name for e in ensembles] == [f"{m}_ensemble_3" for m in models]
    assert all(e.kind == "model" and e.options == {"ensemble": 3} for e in ensembles)
    assert lb.ensemble_methods(methods, 1) == []
    chosen = lb.tuning_candidates({}, [*methods, *ensembles], "response", log=lambda _: None)
    assert not any(m.options.get("ensemble") for m in chosen)
    assert {m.name for m in chosen if m.kind == "model"} == set(models)
