"""Off-policy evaluation: the value of a target policy pi from bandit logs collected under a logging policy mu.

Estimators (one logged decision per row, importance weight w_i = pi(a_i|x_i) / mu(a_i|x_i)):
- ``ips``: Horvitz-Thompson inverse propensity scoring, mean(w r); unbiased when mu is the true propensity.
- ``snips``: self-normalised IPS (Swaminathan & Joachims 2015), sum(w r) / sum(w); slightly biased, lower variance.
- ``dr``: doubly robust (Dudik et al. 2011), mean(qhat_pi + w (r - qhat_logged)); unbiased for any reward model
  when mu is right, and lower-variance the better the reward model is.
Each comes with a normal-approximation interval from its per-row influence terms. Written by hand (numpy/scipy):
no maintained, dependency-light library in the stack provides them (Open Bandit Pipeline is not a dependency).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import norm

from deepromo.data.errors import UnknownNameError, UserInputError

__all__ = ["PolicyValueEstimate", "off_policy_value", "target_probability_of", "expected_under", "ESTIMATORS"]

ESTIMATORS = ("ips", "snips", "dr")


@dataclass(frozen=True)
class PolicyValueEstimate:
    """One estimate of a policy's value (mean reward per decision, in the rewards' units).

    se: standard error, sd(influence terms, ddof=1) / sqrt(n); low, high: the two-sided normal interval
    value -/+ z se at the requested confidence; n: rows; ess: effective sample size of the (clipped) weights,
    (sum w)^2 / sum w^2 (n when pi = mu; 0 when no weight is positive). se, low, high are NaN when n = 1;
    for snips everything is NaN when all weights are 0 (the target never takes a logged action).
    """

    estimator: str
    value: float
    se: float
    low: float
    high: float
    n: int
    ess: float

    def as_dict(self) -> dict:
        """The fields as a plain dict (JSON- and MLflow-friendly)."""
        return asdict(self)


def _floats(x, name: str) -> np.ndarray:
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UserInputError(f"{name}: expected numbers, got {type(x).__name__} ({exc})") from None


def _vector(x, name: str) -> np.ndarray:
    """1-D finite float64 array, or a UserInputError naming ``name``."""
    a = _floats(x, name)
    if a.ndim != 1:
        raise UserInputError(f"{name}: expected a 1-D array [n], got shape {a.shape}")
    bad = ~np.isfinite(a)
    if bad.any():
        raise UserInputError(f"{name}: expected finite values, found {int(bad.sum())} NaN/inf value(s) "
                             f"(first at row {int(np.flatnonzero(bad)[0])})")
    return a


def _in_range(a: np.ndarray, name: str, low: float, high: float, low_open: bool) -> None:
    bad = ((a <= low) if low_open else (a < low)) | (a > high)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        bracket = "(" if low_open else "["
        raise UserInputError(f"{name}: expected values in {bracket}{low:g}, {high:g}], got {float(a[i])!r} at row {i} "
                             f"({int(bad.sum())} row(s) out of range)")


def _estimate(name: str, value: float, influence: np.ndarray, z: float, ess: float) -> PolicyValueEstimate:
    n = len(influence)
    se = float(np.std(influence, ddof=1) / math.sqrt(n)) if n > 1 and np.isfinite(value) else math.nan
    return PolicyValueEstimate(estimator=name, value=float(value), se=se, low=float(value - z * se),
                               high=float(value + z * se), n=n, ess=ess)


def off_policy_value(rewards, logged_propensity, target_probability, *, reward_model_logged=None,
                     reward_model_target=None, estimators=None, confidence: float = 0.95,
                     max_weight: float | None = None) -> dict[str, PolicyValueEstimate]:
    """Estimate the target policy's value, mean reward per decision, from logged bandit data.

    rewards: [n] observed reward of the logged action a_i (any real units).
    logged_propensity: [n] mu(a_i|x_i) in (0, 1], the logging policy's probability of the logged action.
    target_probability: [n] pi(a_i|x_i) in [0, 1] (1{pi(x_i) = a_i} for a deterministic target; see
        :func:`target_probability_of`).
    reward_model_logged: [n] qhat(x_i, a_i); reward_model_target: [n] sum_a pi(a|x_i) qhat(x_i, a) (see
        :func:`expected_under`). Both are required for "dr" and unused otherwise.
    estimators: names among ``ESTIMATORS``, or None (default) for ips and snips, plus dr when both reward-model
        arrays are given; naming "dr" without them is an error. confidence: interval level in (0, 1).
    max_weight: optional cap on w = pi/mu (w <- min(w, max_weight)). Clipping trades variance for bias: for
        ips the bias is -E[(w - cap)+ r] (downward for non-negative rewards); for snips it down-weights the
        clipped rows relative to the rest, a bias of either sign; for dr it is -E[(w - cap)+ (r - qhat_logged)],
        small when the reward model is good.
        ess is computed on the clipped weights.

    Returns {estimator name: PolicyValueEstimate}, in the order asked. Influence terms for the intervals:
    ips w r; snips w (r - V_snips) / mean(w) (delta method); dr qhat_target + w (r - qhat_logged).
    """
    r = _vector(rewards, "rewards")
    mu = _vector(logged_propensity, "logged_propensity")
    pi = _vector(target_probability, "target_probability")
    lengths = {"rewards": len(r), "logged_propensity": len(mu), "target_probability": len(pi)}
    if len(set(lengths.values())) > 1:
        raise UserInputError(f"length mismatch: expected equal lengths, got {lengths}")
    if not len(r):
        raise UserInputError("rewards: expected at least one logged row, got 0")
    _in_range(mu, "logged_propensity", 0.0, 1.0, low_open=True)
    _in_range(pi, "target_probability", 0.0, 1.0, low_open=False)

    if estimators is None:
        with_model = reward_model_logged is not None and reward_model_target is not None
        estimators = ESTIMATORS if with_model else ("ips", "snips")
    if isinstance(estimators, str):
        estimators = (estimators,)
    names = list(dict.fromkeys(estimators))
    if not names:
        raise UserInputError(f"estimators: expected at least one of {list(ESTIMATORS)}, got none")
    for name in names:
        if name not in ESTIMATORS:
            raise UnknownNameError(f"estimators: unknown estimator {name!r}, expected one of {list(ESTIMATORS)}")
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not 0.0 < confidence < 1.0:
        raise UserInputError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    if max_weight is not None and (isinstance(max_weight, bool) or not isinstance(max_weight, numbers.Real)
                                   or not (math.isfinite(max_weight) and max_weight > 0)):
        raise UserInputError(f"max_weight: expected a positive finite number or None, got {max_weight!r}")

    if "dr" in names:
        missing = [k for k, v in (("reward_model_logged", reward_model_logged),
                                  ("reward_model_target", reward_model_target)) if v is None]
        if missing:
            raise UserInputError(f"{' and '.join(missing)}: required for the 'dr' estimator, got None "
                                 "(pass both reward-model arrays, or leave 'dr' out of estimators)")
        q_logged = _vector(reward_model_logged, "reward_model_logged")
        q_target = _vector(reward_model_target, "reward_model_target")
        for k, v in (("reward_model_logged", q_logged), ("reward_model_target", q_target)):
            if len(v) != len(r):
                raise UserInputError(f"{k}: expected length {len(r)} (as rewards), got {len(v)}")

    w = pi / mu
    if max_weight is not None:
        w = np.minimum(w, float(max_weight))
    sum_w, sum_w2 = float(w.sum()), float(np.square(w).sum())
    ess = sum_w ** 2 / sum_w2 if sum_w2 > 0 else 0.0
    z = float(norm.ppf(0.5 + confidence / 2))

    out: dict[str, PolicyValueEstimate] = {}
    for name in names:
        if name == "ips":
            terms = w * r
            out[name] = _estimate(name, terms.mean(), terms, z, ess)
        elif name == "snips":
            if sum_w == 0:
                out[name] = PolicyValueEstimate(name, math.nan, math.nan, math.nan, math.nan, len(r), ess)
                continue
            value = float((w * r).sum() / sum_w)
            out[name] = _estimate(name, value, w * (r - value) / w.mean(), z, ess)
        else:
            terms = q_target + w * (r - q_logged)
            out[name] = _estimate(name, terms.mean(), terms, z, ess)
    return out


def target_probability_of(logged_actions, target_action_probs) -> np.ndarray:
    """pi(a_i|x_i) for each logged row: ``target_action_probs[i, logged_actions[i]]``.

    logged_actions: [n] integer action indices in [0, A); target_action_probs: [n, A] the target policy's action
    probabilities per row (each row in [0, 1], summing to 1 within 1e-6). Returns [n] float64.
    """
    probs = _policy_matrix(target_action_probs, "target_action_probs")
    raw = np.asarray(logged_actions)
    if raw.ndim != 1:
        raise UserInputError(f"logged_actions: expected a 1-D array [n], got shape {raw.shape}")
    if raw.dtype.kind not in "iu":
        as_float = _vector(raw, "logged_actions")
        if not np.all(as_float == np.round(as_float)):
            raise UserInputError(f"logged_actions: expected integer action indices, got dtype {raw.dtype} with "
                                 f"non-integer values such as {as_float[as_float != np.round(as_float)][:3].tolist()}")
        raw = as_float.astype(np.int64)
    if len(raw) != probs.shape[0]:
        raise UserInputError(f"logged_actions: expected length {probs.shape[0]} (rows of target_action_probs), "
                             f"got {len(raw)}")
    n_actions = probs.shape[1]
    bad = (raw < 0) | (raw >= n_actions)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserInputError(f"logged_actions: expected indices in [0, {n_actions}), got {int(raw[i])} at row {i}")
    return probs[np.arange(len(raw)), raw]


def expected_under(target_action_probs, q_matrix) -> np.ndarray:
    """[n] sum_a pi(a|x_i) q(x_i, a): a reward model's value under the target policy, row by row.

    target_action_probs: [n, A] action probabilities (rows in [0, 1], summing to 1 within 1e-6);
    q_matrix: [n, A] finite predicted rewards (rewards' units). Use it as ``reward_model_target``.
    """
    probs = _policy_matrix(target_action_probs, "target_action_probs")
    q = _floats(q_matrix, "q_matrix")
    if q.shape != probs.shape:
        raise UserInputError(f"q_matrix: expected shape {probs.shape} (as target_action_probs), got {q.shape}")
    if not np.isfinite(q).all():
        raise UserInputError(f"q_matrix: expected finite values, found {int((~np.isfinite(q)).sum())} NaN/inf")
    return (probs * q).sum(axis=1)


def _policy_matrix(x, name: str) -> np.ndarray:
    """[n, A] finite probabilities in [0, 1] whose rows sum to 1 (within 1e-6)."""
    p = _floats(x, name)
    if p.ndim != 2 or p.shape[1] < 1:
        raise UserInputError(f"{name}: expected a 2-D array [n, n_actions], got shape {p.shape}")
    if not np.isfinite(p).all():
        raise UserInputError(f"{name}: expected finite values, found {int((~np.isfinite(p)).sum())} NaN/inf")
    if ((p < 0) | (p > 1)).any():
        i, j = map(int, np.argwhere((p < 0) | (p > 1))[0])
        raise UserInputError(f"{name}: expected probabilities in [0, 1], got {float(p[i, j])!r} at row {i}, action {j}")
    sums = p.sum(axis=1)
    off = np.abs(sums - 1.0) > 1e-6
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise UserInputError(f"{name}: expected each row to sum to 1, row {i} sums to {float(sums[i])!r}")
    return p
