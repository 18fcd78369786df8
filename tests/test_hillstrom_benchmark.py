"""benchmarks/hillstrom_uplift.py end to end on a tiny synthetic Hillstrom-format CSV (1 seed, 1 epoch)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import load_benchmark



@pytest.fixture(scope="module")
def bench():
    return load_benchmark("hillstrom_uplift")


def test_quick_run_reports_every_method(bench, tmp_path, fake_hillstrom):
    csv = fake_hillstrom(tmp_path / "hillstrom.csv")
    result = bench.run_benchmark(csv, seeds=[0], epochs=1, plot_path=tmp_path / "qini.png", log=lambda _: None)

    methods = [row["method"] for row in result["rows"]]
    assert set(bench.CORE_METHODS) <= set(methods)
    for method in bench.CORE_METHODS:
        for metric in bench.METRICS:
            value = result["summary"][method][metric]["mean"]
            assert math.isfinite(value), f"{method} {metric} = {value}"
            if metric.startswith("uplift@"):
                assert -1.0 <= value <= 1.0  # a difference of two rates
    settings = result["settings"]
    assert settings["rows_used"] == 600 and settings["n_test"] == 180 and settings["n_develop"] == 420
    assert (tmp_path / "qini.png").stat().st_size > 0
    # the report renders with every method and metric
    text = "\n".join(body for _, body in bench.report_sections(result))
    assert all(m in text for m in bench.CORE_METHODS) and all(m in text for m in bench.METRICS)


def test_class_transformation_recovers_uplift_with_unbalanced_treatment(bench):
    """2 P(z=1|x) - 1 with the 1/(2p), 1/(2(1-p)) weights equals p1 - p0 at treated share 2/3."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    n = 60_000
    group = rng.integers(0, 2, n)  # two customer groups: uplift 0 and 0.3
    t = rng.random(n) < 2 / 3
    y = rng.random(n) < 0.2 + 0.3 * t * group
    X = pd.DataFrame({"g0": (group == 0).astype(float), "g1": (group == 1).astype(float)})
    model = bench.ClassTransformationUplift(LogisticRegression(fit_intercept=False)).fit(X, t, y)
    uplift = model.predict_uplift(pd.DataFrame({"g0": [1.0, 0.0], "g1": [0.0, 1.0]}))
    assert uplift == pytest.approx([0.0, 0.3], abs=0.03)


def test_missing_file_is_a_clear_error(bench, tmp_path):
    with pytest.raises(FileNotFoundError, match="--path"):
        bench.load_views(tmp_path / "nope.csv")
