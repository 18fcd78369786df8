"""The targeting evaluator decides the same way for every method (an F1-best threshold chosen on validation) and,
on a randomised treatment, also judges the score as an uplift ranking of purchase."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepromo.tasks.targeting import purchase_uplift_metrics, randomised_groups, validation_threshold


def test_validation_threshold_maximises_f1_by_hand():
    y = np.array([1, 1, 0, 1, 0, 0])
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1])
    # score >= 0.6 targets 4 rows with 3 hits: F1 = 2*0.75*1/(1.75) = 0.857, the best cut; the threshold is
    # the midpoint between that cut and the next score below it (0.2), so exactly those 4 rows are targeted
    threshold = validation_threshold(y, score)
    assert threshold == pytest.approx(0.4)
    assert (score >= threshold).tolist() == [True, True, True, True, False, False]
    assert validation_threshold(np.zeros(3, dtype=int), np.array([0.1, 0.2, 0.3])) == float("inf")


def test_a_method_with_a_shifted_score_gets_the_same_decision():
    """A monotone transformation of the score (e.g. a forest cutting at 0.5 vs a net at 0.2) changes nothing."""
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.3).astype(int)
    score = np.clip(0.3 * y + rng.normal(0.3, 0.2, 500), 0, 1)
    shifted = score ** 3
    assert ((score >= validation_threshold(y, score)) == (shifted >= validation_threshold(y, shifted))).all()


def test_randomised_groups_needs_both_groups_and_constant_propensity():
    frame = pd.DataFrame({"treated": [1.0, 0.0, 1.0, 0.0], "treatment_propensity": [0.5, 0.5, 0.5, 0.5]})
    assert randomised_groups(frame).tolist() == [1, 0, 1, 0]
    assert randomised_groups(frame.assign(treatment_propensity=[0.9, 0.5, 0.2, 0.5])) is None  # targeted
    assert randomised_groups(frame.assign(treated=1.0)) is None  # no control
    assert randomised_groups(frame.drop(columns="treatment_propensity")) is None


def test_purchase_uplift_metrics_rank_a_planted_effect():
    rng = np.random.default_rng(1)
    n = 4000
    x = rng.normal(size=n)
    treated = rng.integers(0, 2, n)
    bought = (rng.random(n) < 0.1 + 0.3 * treated * (x > 0)).astype(int)
    good, bad = purchase_uplift_metrics(bought, treated, x), purchase_uplift_metrics(bought, treated, -x)
    assert good["purchase_qini_low"] > 0 > bad["purchase_qini_high"]
    assert good["purchase_uplift_at_30"] > 0.2
