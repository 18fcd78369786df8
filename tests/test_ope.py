"""Off-policy evaluation (deepromo.metrics.ope): hand-computed IPS / SNIPS / DR values and standard errors, and a
seeded contextual bandit whose true target-policy value is known (Gauss-Hermite quadrature over the Gaussian
contexts) against which the estimators are unbiased and their 95 % intervals cover."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss

from deepromo.data.errors import UserInputError
from deepromo.metrics import PolicyValueEstimate, expected_under, off_policy_value, target_probability_of

Z95 = 1.959963984540054

# a small log: w = pi / mu = [2, 0, 1, 0.5]
REWARDS = np.array([1.0, 0.0, 1.0, 2.0])
MU = np.array([0.5, 0.25, 0.5, 1.0])
PI = np.array([1.0, 0.0, 0.5, 0.5])
Q_LOGGED = np.array([0.5, 0.5, 0.5, 1.0])
Q_TARGET = np.array([1.0, 0.2, 0.6, 1.5])


def _se(terms) -> float:
    """sd(ddof=1) / sqrt(n), written out."""
    terms = np.asarray(terms, dtype=float)
    n = len(terms)
    return math.sqrt(((terms - terms.mean()) ** 2).sum() / (n - 1) / n)


def test_hand_computed_ips_snips_dr():
    est = off_policy_value(REWARDS, MU, PI, reward_model_logged=Q_LOGGED, reward_model_target=Q_TARGET)
    assert list(est) == ["ips", "snips", "dr"]
    # ips: w r = [2, 0, 1, 1] -> 1.0; deviations [1, -1, 0, 0], var = 2/3, se = sqrt(2/3 / 4) = sqrt(1/6)
    ips = est["ips"]
    assert ips.value == pytest.approx(1.0)
    assert ips.se == pytest.approx(math.sqrt(1 / 6))
    assert (ips.low, ips.high) == pytest.approx((1.0 - Z95 * math.sqrt(1 / 6), 1.0 + Z95 * math.sqrt(1 / 6)))
    # snips: sum(w r) / sum(w) = 4 / 3.5 = 8/7; influence w (r - 8/7) / 0.875 = [-16, 0, -8, 24] / 49
    snips = est["snips"]
    assert snips.value == pytest.approx(8 / 7)
    assert snips.se == pytest.approx(math.sqrt((16 ** 2 + 8 ** 2 + 24 ** 2) / 49 ** 2 / 3 / 4))
    # dr: qhat_target + w (r - qhat_logged) = [2, 0.2, 1.1, 2.0] -> 1.325
    dr = est["dr"]
    assert dr.value == pytest.approx(1.325)
    assert dr.se == pytest.approx(_se([2.0, 0.2, 1.1, 2.0]))
    # ess = (sum w)^2 / sum w^2 = 3.5^2 / 5.25, the same for all three
    assert [e.ess for e in est.values()] == pytest.approx([12.25 / 5.25] * 3)
    assert all(e.n == 4 for e in est.values())
    assert est["ips"].as_dict() == {"estimator": "ips", "value": ips.value, "se": ips.se, "low": ips.low,
                                    "high": ips.high, "n": 4, "ess": ips.ess}


def test_confidence_level_and_clipping_by_hand():
    ips90 = off_policy_value(REWARDS, MU, PI, estimators=["ips"], confidence=0.90)["ips"]
    assert ips90.high - ips90.value == pytest.approx(1.6448536269514722 * math.sqrt(1 / 6))
    # max_weight = 1: w = [1, 0, 1, 0.5]; ips terms [1, 0, 1, 1] -> 0.75; snips 3 / 2.5 = 1.2; ess 2.5^2 / 2.25
    clipped = off_policy_value(REWARDS, MU, PI, estimators=("ips", "snips", "dr"), max_weight=1.0,
                               reward_model_logged=Q_LOGGED, reward_model_target=Q_TARGET)
    assert clipped["ips"].value == pytest.approx(0.75)
    assert clipped["ips"].se == pytest.approx(_se([1, 0, 1, 1]))
    assert clipped["snips"].value == pytest.approx(1.2)
    assert clipped["dr"].value == pytest.approx(np.mean([1.5, 0.2, 1.1, 2.0]))
    assert clipped["ips"].ess == pytest.approx(6.25 / 2.25)


def test_target_equal_to_logging_gives_the_mean_reward():
    rng = np.random.default_rng(3)
    mu = rng.uniform(0.05, 1.0, size=500)
    r = rng.normal(2.0, 1.0, size=500)
    est = off_policy_value(r, mu, mu.copy(), estimators=("ips", "snips"))
    assert est["ips"].value == pytest.approx(r.mean(), rel=1e-12)
    assert est["snips"].value == pytest.approx(r.mean(), rel=1e-12)
    assert est["ips"].se == pytest.approx(r.std(ddof=1) / math.sqrt(500), rel=1e-12)
    assert est["ips"].ess == pytest.approx(500)


def test_default_estimators_include_dr_only_with_a_reward_model():
    assert list(off_policy_value(REWARDS, MU, PI)) == ["ips", "snips"]
    assert list(off_policy_value(REWARDS, MU, PI, reward_model_logged=Q_LOGGED)) == ["ips", "snips"]
    with_model = off_policy_value(REWARDS, MU, PI, reward_model_logged=Q_LOGGED, reward_model_target=Q_TARGET)
    assert list(with_model) == ["ips", "snips", "dr"]
    single = off_policy_value([1.0], [0.5], [1.0])["ips"]  # one row: a value, but no spread to estimate
    assert single.value == 2.0 and math.isnan(single.se) and math.isnan(single.low)


def test_snips_undefined_when_the_target_never_takes_a_logged_action():
    est = off_policy_value([1.0, 0.0], [0.5, 0.5], [0.0, 0.0], estimators=("ips", "snips"))
    assert est["ips"].value == 0.0 and est["ips"].ess == 0.0
    assert math.isnan(est["snips"].value) and math.isnan(est["snips"].se)


def test_helpers_index_and_average_the_target_policy():
    probs = np.array([[0.2, 0.8, 0.0], [1.0, 0.0, 0.0], [0.1, 0.3, 0.6]])
    q = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [0.0, 10.0, -1.0]])
    np.testing.assert_allclose(target_probability_of([1, 2, 2], probs), [0.8, 0.0, 0.6])
    np.testing.assert_allclose(target_probability_of(np.array([0.0, 0.0, 1.0]), probs), [0.2, 1.0, 0.3])
    np.testing.assert_allclose(expected_under(probs, q), [1.8, 4.0, 2.4])


# --- a seeded contextual bandit with a known true value ------------------------------------------------------
D, K = 2, 4
THETA = np.array([[1.0, -0.5], [-0.8, 0.6], [0.3, 1.2], [0.0, -1.0]])  # [K, D] reward coefficients
BIAS = np.array([-0.5, 0.2, -1.0, 0.4])  # [K]
LOGGING = np.array([[0.4, 0.0], [-0.3, 0.3], [0.0, 0.5], [0.2, -0.4]])  # [K, D] logits of mu: mild preferences
TARGET = np.array([[3.0, -1.0], [-2.0, 2.0], [1.0, 3.0], [0.0, -3.0]])  # [K, D] logits of pi: sharp, different
# weights pi/mu reach ~3 and the effective sample size is ~55 % of the rows


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def expected_reward(x):
    """[..., K] E[r | x, a] = sigmoid(BIAS_a + x . THETA_a) for contexts x [..., D]."""
    return 1.0 / (1.0 + np.exp(-(BIAS + x @ THETA.T)))


def true_value(nodes: int = 200) -> float:
    """E_x sum_a pi(a|x) q(x, a) for x ~ N(0, I_2), by a tensor Gauss-Hermite rule (converged to ~1e-10, far below
    any se here)."""
    t, wt = hermegauss(nodes)
    wt = wt / wt.sum()
    x = np.stack(np.meshgrid(t, t, indexing="ij"), axis=-1).reshape(-1, D)
    weight = np.outer(wt, wt).ravel()
    return float(weight @ (_softmax(x @ TARGET.T) * expected_reward(x)).sum(axis=1))


def logged_bandit(n: int, rng):
    """One log of n decisions under mu: contexts [n, D], actions [n], Bernoulli rewards [n], mu and pi [n, K],
    expected rewards q [n, K]."""
    x = rng.normal(size=(n, D))
    mu, pi = _softmax(x @ LOGGING.T), _softmax(x @ TARGET.T)
    actions = (rng.random((n, 1)) > mu.cumsum(axis=1)).sum(axis=1)
    q = expected_reward(x)
    rewards = (rng.random(n) < q[np.arange(n), actions]).astype(float)
    return x, actions, rewards, mu, pi, q


def test_quadrature_truth_is_converged_and_matches_monte_carlo():
    v = true_value()
    assert abs(true_value(300) - v) < 1e-9
    x = np.random.default_rng(123).normal(size=(400_000, D))
    mc = (_softmax(x @ TARGET.T) * expected_reward(x)).sum(axis=1)
    assert abs(mc.mean() - v) < 4 * mc.std() / math.sqrt(len(mc))
    # the target is worth more than the logging policy, so an estimator that ignores the weights would miss
    logging_value = (_softmax(x @ LOGGING.T) * expected_reward(x)).sum(axis=1).mean()
    assert v - logging_value > 0.05


@pytest.fixture(scope="module")
def bandit_repetitions():
    """300 seeded logs of 1,000 decisions: estimates with the exact and with a misspecified reward model."""
    rng = np.random.default_rng(2024)
    rows = []
    for _ in range(300):
        x, actions, rewards, mu, pi, q = logged_bandit(1000, rng)
        idx = np.arange(len(actions))
        q_wrong = 0.3 + 0.4 * (1.0 - q)  # reversed and squashed: a badly misspecified reward model
        exact = off_policy_value(rewards, mu[idx, actions], target_probability_of(actions, pi),
                                 reward_model_logged=q[idx, actions], reward_model_target=expected_under(pi, q))
        wrong = off_policy_value(rewards, mu[idx, actions], target_probability_of(actions, pi),
                                 reward_model_logged=q_wrong[idx, actions],
                                 reward_model_target=expected_under(pi, q_wrong), estimators=["dr"])
        rows.append({**exact, "dr_misspecified": wrong["dr"]})
    return rows


@pytest.mark.parametrize("name", ["ips", "snips", "dr", "dr_misspecified"])
def test_estimators_are_unbiased_and_their_intervals_cover_the_true_value(bandit_repetitions, name):
    truth = true_value()
    est = [row[name] for row in bandit_repetitions]
    values = np.array([e.value for e in est])
    covered = np.mean([e.low <= truth <= e.high for e in est])
    # 95 % nominal over 300 logs: below 0.90 or above 0.99 would be > 3 binomial sd away
    assert 0.90 <= covered <= 0.99, f"{name}: coverage {covered:.3f}"
    assert abs(values.mean() - truth) < 3 * values.std(ddof=1) / math.sqrt(len(values)), name
    # the reported se matches the spread of the estimates across logs
    assert np.mean([e.se for e in est]) == pytest.approx(values.std(ddof=1), rel=0.15), name


def test_dr_with_the_exact_reward_model_has_a_smaller_se_than_ips(bandit_repetitions):
    se_ips = np.array([row["ips"].se for row in bandit_repetitions])
    se_dr = np.array([row["dr"].se for row in bandit_repetitions])
    assert np.all(se_dr < se_ips)
    assert se_dr.mean() < 0.8 * se_ips.mean()


# --- bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, words", [
    (dict(rewards=[1.0, 0.0, 1.0]), ["length mismatch", "rewards", "3"]),
    (dict(rewards=[1.0, np.nan, 1.0, 0.0]), ["rewards", "NaN/inf", "row 1"]),
    (dict(logged_propensity=[0.5, 0.0, 0.5, 1.0]), ["logged_propensity", "(0, 1]", "0.0", "row 1"]),
    (dict(logged_propensity=[0.5, 1.5, 0.5, 1.0]), ["logged_propensity", "1.5"]),
    (dict(target_probability=[1.0, -0.1, 0.5, 0.5]), ["target_probability", "[0, 1]", "-0.1"]),
    (dict(target_probability=[[1.0, 0.0, 0.5, 0.5]]), ["target_probability", "1-D", "(1, 4)"]),
    (dict(target_probability=[1.0, np.inf, 0.5, 0.5]), ["target_probability", "NaN/inf"]),
    (dict(confidence=1.0), ["confidence", "(0, 1)", "1.0"]),
    (dict(confidence=95), ["confidence", "95"]),
    (dict(max_weight=0.0), ["max_weight", "positive", "0.0"]),
    (dict(estimators=["ips", "wis"]), ["estimators", "'wis'", "snips"]),
    (dict(estimators=[]), ["estimators", "none"]),
    (dict(estimators=["dr"]), ["reward_model_logged", "reward_model_target", "dr"]),
    (dict(estimators=["dr"], reward_model_logged=Q_LOGGED), ["reward_model_target", "dr"]),
    (dict(estimators=["dr"], reward_model_logged=Q_LOGGED, reward_model_target=Q_TARGET[:3]),
     ["reward_model_target", "length 4", "3"]),
    (dict(estimators=["dr"], reward_model_logged=[0.5, np.nan, 0.5, 1.0], reward_model_target=Q_TARGET),
     ["reward_model_logged", "NaN/inf"]),
    (dict(rewards=[], logged_propensity=[], target_probability=[]), ["rewards", "at least one"]),
])
def test_bad_input_names_the_argument(kwargs, words):
    args = dict(rewards=REWARDS, logged_propensity=MU, target_probability=PI)
    args.update(kwargs)
    positional = [args.pop(k) for k in ("rewards", "logged_propensity", "target_probability")]
    with pytest.raises(UserInputError) as info:
        off_policy_value(*positional, **args)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_helpers_bad_input_names_the_argument():
    probs = np.array([[0.5, 0.5], [1.0, 0.0]])
    with pytest.raises(UserInputError, match=r"logged_actions: expected indices in \[0, 2\), got 2 at row 1"):
        target_probability_of([0, 2], probs)
    with pytest.raises(UserInputError, match="logged_actions: expected integer"):
        target_probability_of([0.0, 0.5], probs)
    with pytest.raises(UserInputError, match="logged_actions: expected length 2"):
        target_probability_of([0, 1, 1], probs)
    with pytest.raises(UserInputError, match="target_action_probs: expected each row to sum to 1, row 0"):
        target_probability_of([0, 1], [[0.5, 0.6], [1.0, 0.0]])
    with pytest.raises(UserInputError, match="target_action_probs: expected probabilities in"):
        expected_under([[1.5, -0.5], [1.0, 0.0]], np.zeros((2, 2)))
    with pytest.raises(UserInputError, match=r"target_action_probs: expected a 2-D array"):
        expected_under([0.5, 0.5], np.zeros(2))
    with pytest.raises(UserInputError, match=r"q_matrix: expected shape \(2, 2\)"):
        expected_under(probs, np.zeros((2, 3)))


def test_estimate_is_a_frozen_record():
    est = off_policy_value(REWARDS, MU, PI, estimators="ips")["ips"]
    assert isinstance(est, PolicyValueEstimate)
    with pytest.raises(AttributeError):
        est.value = 0.0  # type: ignore[misc]
