"""Metrics against hand-computed values (and sklearn where it has the metric)."""

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from deepromo.metrics import (
    auuc,
    binary_report,
    cumulative_gain_curve,
    expected_calibration_error,
    gain_at,
    qini_coefficient,
    qini_curve,
    roc_auc,
    uplift_at_k,
    uplift_curve,
)

# confusion: TP=2, FN=2, FP=1, TN=3
Y = [1, 1, 1, 0, 0, 0, 0, 1]
P = [1, 0, 1, 1, 0, 0, 0, 0]
S = [0.9, 0.4, 0.8, 0.7, 0.3, 0.1, 0.4, 0.2]


def test_binary_report_hand_values():
    r = binary_report(Y, P, S)
    assert set(r) == {"precision", "recall", "balanced_accuracy", "weighted_f1", "auc"}
    assert r["precision"] == pytest.approx(2 / 3)
    assert r["recall"] == pytest.approx(0.5)
    assert r["balanced_accuracy"] == pytest.approx((0.5 + 0.75) / 2)
    assert r["weighted_f1"] == pytest.approx(13 / 21)  # (F1_1 = 4/7, F1_0 = 2/3), supports 4 / 4
    assert r["auc"] == pytest.approx(11.5 / 16)  # 11 wins + 1 tie over 16 pairs
    assert all(isinstance(v, float) for v in r.values())


def test_binary_report_matches_sklearn_random_inputs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = rng.normal(size=500) * 10 + y * 5  # scores outside [0, 1]: AUC must not be squashed by a sigmoid
    p = (s > 2).astype(int)
    r = binary_report(torch.tensor(y), p.tolist(), s)
    assert r["precision"] == pytest.approx(skm.precision_score(y, p))
    assert r["recall"] == pytest.approx(skm.recall_score(y, p))
    assert r["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p))
    assert r["weighted_f1"] == pytest.approx(skm.f1_score(y, p, average="weighted"))
    assert r["auc"] == pytest.approx(skm.roc_auc_score(y, s))


def test_roc_auc_by_hand_with_ties_and_equal_to_binary_report():
    assert roc_auc(Y, S) == pytest.approx(11.5 / 16)  # 11 wins + 1 tie over 16 pairs
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    s = np.round(rng.normal(size=400) + y, 1)  # many ties
    assert roc_auc(y, s) == pytest.approx(binary_report(y, np.zeros(400, int), s)["auc"], abs=1e-6)
    assert roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s))
    assert math.isnan(roc_auc([1, 1], [0.3, 0.2]))


def test_binary_report_auc_nan_cases():
    assert math.isnan(binary_report(Y, P)["auc"])
    assert math.isnan(binary_report([1, 1], [1, 0], [0.3, 0.2])["auc"])


@pytest.mark.parametrize(
    "args, word",
    [
        (([1, 0, 1], [1, 0]), "length"),
        (([1, 2, 0], [1, 0, 0]), "y_true"),
        (([1, 0, 0], [1, 0.5, 0]), "y_pred"),
        (([1, 0], [1, 0], [0.2, float("nan")]), "score"),
    ],
)
def test_binary_report_bad_input(args, word):
    with pytest.raises(ValueError, match=word):
        binary_report(*args)


def test_ece_hand_value():
    # bin [0, .5): conf .2, acc .5 ; bin [.5, 1]: conf .8, acc 1 ; each holds half the samples
    assert expected_calibration_error([0, 1, 1, 1], [0.2, 0.2, 0.8, 0.8], n_bins=2) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="prob"):
        expected_calibration_error([0, 1], [0.2, 1.2])


# ---- cumulative gain -------------------------------------------------------------------------
# sorted by score: y = 1 1 0 1 0 0 1 0 0 0  (4 positives)
Y_SORTED = np.array([1, 1, 0, 1, 0, 0, 1, 0, 0, 0])
PERM = np.array([3, 7, 0, 9, 5, 1, 8, 2, 6, 4])
Y_GAIN = Y_SORTED[PERM]
S_GAIN = (10.0 - np.arange(10))[PERM]


def test_gain_hand_values():
    assert gain_at(Y_GAIN, S_GAIN, 0.4) == pytest.approx(3 / 4)
    assert gain_at(Y_GAIN, S_GAIN, 0.35) == pytest.approx(2.5 / 4)  # halfway between 3 and 4 customers
    assert gain_at(Y_GAIN, S_GAIN, 0.0) == 0.0
    assert gain_at(Y_GAIN, S_GAIN, 1.0) == 1.0
    x, y = cumulative_gain_curve(Y_GAIN, S_GAIN, n_points=11)
    np.testing.assert_allclose(x, np.linspace(0, 1, 11))
    np.testing.assert_allclose(y, np.r_[0, np.cumsum(Y_SORTED)] / 4)


def test_gain_ties_pro_rata():
    # knots (0,0) (1,1) (3,2) (4,2): the tied pair {2, 2} is reached pro rata
    assert gain_at([1, 1, 0, 0], [3, 2, 2, 1], 0.5) == pytest.approx(0.75)
    assert gain_at([1, 0, 0, 1, 0], np.zeros(5), 0.4) == pytest.approx(0.4)  # constant score = random


def test_gain_bad_input():
    with pytest.raises(ValueError, match="y_true"):
        gain_at([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="share"):
        gain_at([0, 1], [0.1, 0.2], share=1.5)
    with pytest.raises(ValueError, match="score"):
        cumulative_gain_curve([0, 1], [0.1, float("inf")])


# ---- uplift ----------------------------------------------------------------------------------
U_S = np.array([6.0, 5, 4, 3, 2, 1])
U_T = np.array([1, 0, 1, 0, 1, 0])
U_Y = np.array([1, 0, 1, 1, 0, 0])


def test_qini_curve_hand_values():
    x, q = qini_curve(U_Y, U_T, U_S)
    np.testing.assert_allclose(x, np.arange(7) / 6)
    np.testing.assert_allclose(q, [0, 1, 1, 2, 1, 0.5, 1])


def test_qini_coefficient_hand_value():
    # model area 1, random 0.5, perfect curve (0,0)(2/6,2)(5/6,2)(1,1) area 9.5/6
    assert qini_coefficient(U_Y, U_T, U_S) == pytest.approx(0.5 / (9.5 / 6 - 0.5))
    perfect = U_Y * U_T - U_Y * (1 - U_T)
    assert qini_coefficient(U_Y, U_T, perfect) == pytest.approx(1.0)
    assert qini_coefficient(U_Y, U_T, np.zeros(6)) == pytest.approx(0.0)


def test_uplift_curve_and_auuc_hand_values():
    x, u = uplift_curve(U_Y, U_T, U_S)
    np.testing.assert_allclose(u, [0, 1, 2, 3, 2, 5 / 6, 2])
    # model area 59/36, random 1, perfect area 43/18
    assert auuc(U_Y, U_T, U_S) == pytest.approx((59 / 36 - 1) / (43 / 18 - 1))


def test_uplift_at_k_hand_values():
    assert uplift_at_k(U_Y, U_T, U_S, k=0.5) == pytest.approx(1.0)  # top 3: treated 2/2, control 0/1
    assert uplift_at_k(U_Y, U_T, U_S, k=4 / 6) == pytest.approx(0.5)  # top 4: 2/2 - 1/2
    assert uplift_at_k(U_Y, U_T, U_S, k=1.0) == pytest.approx(2 / 3 - 1 / 3)
    assert math.isnan(uplift_at_k(U_Y, U_T, U_S, k=0.1))  # top 1 holds no control customer


def test_uplift_bad_input():
    with pytest.raises(ValueError, match="treatment"):
        qini_coefficient(U_Y, np.ones(6), U_S)
    with pytest.raises(ValueError, match="length"):
        auuc(U_Y, U_T, U_S[:5])
    with pytest.raises(ValueError, match="k"):
        uplift_at_k(U_Y, U_T, U_S, k=0)


def test_bootstrap_ci_matches_the_hand_enumerated_distribution():
    """Two treated (one responder) and two control (none): a resample within groups gives a treated rate of
    0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4 and a control rate of 0, so uplift over everyone has mean 1/2,
    2.5 % quantile 0 and 97.5 % quantile 1."""
    from deepromo.metrics.uplift import bootstrap_ci, uplift_at_k

    y, t, s = [1, 0, 0, 0], [1, 1, 0, 0], [0.9, 0.8, 0.7, 0.6]
    everyone = lambda yy, tt, ss: uplift_at_k(yy, tt, ss, k=1.0)  # noqa: E731
    ci = bootstrap_ci(everyone, y, t, s, n_boot=4000, seed=1)
    assert ci["value"] == 0.5 and (ci["low"], ci["high"]) == (0.0, 1.0) and ci["n_boot"] == 4000
    narrow = bootstrap_ci(everyone, y, t, s, n_boot=4000, seed=1, alpha=0.6)  # the 30 % and 70 % quantiles
    assert (narrow["low"], narrow["high"]) == (0.5, 0.5)


def test_bootstrap_ci_of_a_paired_difference_and_its_coverage():
    from deepromo.metrics.uplift import bootstrap_ci, qini_coefficient

    rng = np.random.default_rng(0)
    n = 3000
    x = rng.normal(size=n)
    t = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.1 + 0.1 * t * (x > 0)).astype(int)  # the treatment works where x > 0
    same = bootstrap_ci(qini_coefficient, y, t, x, n_boot=200, reference=x)
    assert same["value"] == same["low"] == same["high"] == 0.0
    good = bootstrap_ci(qini_coefficient, y, t, x, n_boot=300, seed=3)
    assert good["low"] < good["value"] < good["high"] and good["low"] > 0  # a real effect: the CI excludes 0
    versus_noise = bootstrap_ci(qini_coefficient, y, t, x, n_boot=300, seed=3, reference=rng.normal(size=n))
    assert versus_noise["low"] > 0  # the informative score beats a random one, CI excluding 0
    assert bootstrap_ci(qini_coefficient, y, t, x, n_boot=300, seed=3) == good  # seeded: reproducible
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(qini_coefficient, y, t, x, n_boot=0)
