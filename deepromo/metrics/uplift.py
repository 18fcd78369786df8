"""Uplift metrics: Qini curve and coefficient, uplift curve / AUUC, uplift@k.

Hand-written (numpy): torchmetrics has no uplift metrics and scikit-uplift is not a dependency; the
definitions follow scikit-uplift (Radcliffe's Qini; areas normalised by the perfect model's area).

Common conventions
- y: [N] outcome in {0,1}; treatment: [N] in {0,1} (1 = treated); score: [N] finite predicted uplift
  (higher = target first). Both groups must be present.
- Curves are evaluated only at the end of each tied-score group (a tied group is targeted all or nothing)
  and start at (0, 0); areas use the trapezoid rule, i.e. linear interpolation inside tied groups.
- x is the share of the population targeted (0..1), not a count; normalised scores do not depend on it.
"""

from __future__ import annotations

import math

import numpy as np

from deepromo.data.errors import UserInputError
from deepromo.metrics.classification import _binary, _same_len, _scores

__all__ = ["qini_curve", "uplift_curve", "qini_coefficient", "auuc", "uplift_at_k", "bootstrap_ci",
           "stratified_bootstrap", "policy_value_ipw", "policy_value_ci"]


def _inputs(y, treatment, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy = _binary(y, "y")
    tt = _binary(treatment, "treatment")
    ss = _scores(score, "score")
    _same_len(y=yy, treatment=tt, score=ss)
    if tt.min() == tt.max():
        raise UserInputError("treatment: expected both treated (1) and control (0) customers, got only one group")
    return yy, tt, ss


def _cum_counts(y, t, s):
    """Cumulative counts at the end of each tied-score group, after sorting by score descending."""
    order = np.argsort(-s, kind="mergesort")
    y, t, s = y[order], t[order], s[order]
    ends = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    n_all = (ends + 1).astype(np.float64)
    n_t = np.cumsum(t)[ends].astype(np.float64)
    y_t = np.cumsum(y * t)[ends].astype(np.float64)
    y_c = np.cumsum(y * (1 - t))[ends].astype(np.float64)
    return n_all, n_t, n_all - n_t, y_t, y_c


def _div(a, b):
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def qini_curve(y, treatment, score) -> tuple[np.ndarray, np.ndarray]:
    """Radcliffe's Qini curve.

    Returns (x [M+1] = share targeted, q [M+1] = incremental responders in the targeted set, a count):
    q(k) = Y_t(k) − Y_c(k) · N_t(k) / N_c(k) (0 where N_c(k) = 0); M = number of distinct scores.
    """
    yy, tt, ss = _inputs(y, treatment, score)
    n_all, n_t, n_c, y_t, y_c = _cum_counts(yy, tt, ss)
    q = y_t - y_c * _div(n_t, n_c)
    return np.r_[0.0, n_all / len(yy)], np.r_[0.0, q]


def uplift_curve(y, treatment, score) -> tuple[np.ndarray, np.ndarray]:
    """Uplift (cumulative gain) curve: (x [M+1] share targeted, u [M+1] = (Y_t/N_t − Y_c/N_c) · n(k), a count)."""
    yy, tt, ss = _inputs(y, treatment, score)
    n_all, n_t, n_c, y_t, y_c = _cum_counts(yy, tt, ss)
    u = (_div(y_t, n_t) - _div(y_c, n_c)) * n_all
    return np.r_[0.0, n_all / len(yy)], np.r_[0.0, u]


def _normalised_area(curve, y, t, s, s_perfect) -> float:
    """(area(model) − area(random)) / (area(perfect) − area(random)); random = straight line to the end point."""
    x, v = curve(y, t, s)
    xp, vp = curve(y, t, s_perfect)
    base = 0.5 * vp[-1]  # area under the line from (0, 0) to (1, end value); same end value for every order
    denom = np.trapezoid(vp, xp) - base
    if denom == 0:
        return math.nan
    return float((np.trapezoid(v, x) - base) / denom)


def qini_coefficient(y, treatment, score) -> float:
    """Normalised Qini coefficient (scikit-uplift's qini_auc_score with negative_effect=True).

    (area under the model's Qini curve − area under the random line) / (same for the perfect Qini curve),
    the perfect order being treated responders first, control responders last. 1 = perfect, 0 = random;
    NaN when the perfect curve has no area above the random line.
    """
    yy, tt, ss = _inputs(y, treatment, score)
    perfect = (yy * tt - yy * (1 - tt)).astype(np.float64)
    return _normalised_area(qini_curve, yy, tt, ss, perfect)


def auuc(y, treatment, score) -> float:
    """Normalised area under the uplift curve (scikit-uplift's uplift_auc_score).

    (area(model uplift curve) − area(random line)) / (area(perfect uplift curve) − area(random line)),
    the perfect order being scikit-uplift's perfect_uplift_curve: 2·[y == t] + (y if #control responders
    > #treated non-responders else t), i.e. treated responders and control non-responders first,
    control responders last. NaN when the perfect curve has no area above the random line.
    """
    yy, tt, ss = _inputs(y, treatment, score)
    cr = int(((yy == 1) & (tt == 0)).sum())
    tn = int(((yy == 0) & (tt == 1)).sum())
    summand = yy if cr > tn else tt
    perfect = (2 * (yy == tt) + summand).astype(np.float64)
    return _normalised_area(uplift_curve, yy, tt, ss, perfect)


def uplift_at_k(y, treatment, score, k: float = 0.1) -> float:
    """Treated response rate minus control response rate among the top ceil(k·N) customers by score.

    k: share in (0, 1]. Ties at the cut are broken by a stable sort (earlier rows first).
    NaN when the top set holds no treated or no control customer.
    """
    yy, tt, ss = _inputs(y, treatment, score)
    if not (0.0 < float(k) <= 1.0):
        raise UserInputError(f"k: expected a share in (0, 1], got {k!r}")
    n_top = max(1, math.ceil(float(k) * len(yy) - 1e-9))
    top = np.argsort(-ss, kind="mergesort")[:n_top]
    yt, t_top = yy[top], tt[top]
    if t_top.min() == t_top.max():
        return math.nan
    return float(yt[t_top == 1].mean() - yt[t_top == 0].mean())


def bootstrap_ci(metric, y, treatment, score, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
                 reference=None) -> dict[str, float]:
    """Percentile bootstrap confidence interval of an uplift ``metric(y, treatment, score)`` (qini_coefficient,
    auuc, uplift_at_k, ...), resampling rows within the treated and the control group (so every replicate has
    both). With ``reference`` (a second score for the same rows), the interval is of the paired difference
    metric(score) − metric(reference) on the same resamples.

    Returns ``{"value", "low", "high", "n_boot"}`` (replicates where the metric is NaN are left out; ``n_boot``
    counts the ones used). Written here: scipy.stats.bootstrap cannot resample within strata.
    """
    yy, tt, ss = _inputs(y, treatment, score)
    rr = None if reference is None else _scores(reference, "reference")
    if rr is not None:
        _same_len(score=ss, reference=rr)
    if int(n_boot) < 1 or not 0.0 < float(alpha) < 1.0:
        raise UserInputError(f"n_boot must be >= 1 and alpha in (0, 1), got {n_boot!r} and {alpha!r}")

    def value(rows):
        v = metric(yy[rows], tt[rows], ss[rows])
        return v if rr is None else v - metric(yy[rows], tt[rows], rr[rows])

    return stratified_bootstrap(value, tt, n_boot=n_boot, alpha=alpha, seed=seed)


def stratified_bootstrap(value, strata, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> dict[str, float]:
    """Percentile interval of ``value(rows)`` (rows: int positions) over resamples drawn with replacement within
    each stratum of ``strata`` [N] (every replicate keeps each group's size). NaN replicates are left out.

    Returns ``{"value", "low", "high", "n_boot"}``; ``value`` is the statistic on every row."""
    strata = np.asarray(strata)
    groups = [np.flatnonzero(strata == g) for g in np.unique(strata)]
    rng = np.random.default_rng(seed)
    replicates = np.array([value(np.concatenate([rng.choice(g, len(g), replace=True) for g in groups]))
                           for _ in range(int(n_boot))], dtype=np.float64)
    replicates = replicates[np.isfinite(replicates)]
    low, high = (np.quantile(replicates, [alpha / 2, 1 - alpha / 2]) if len(replicates) else (math.nan, math.nan))
    return {"value": float(value(np.arange(len(strata)))), "low": float(low), "high": float(high),
            "n_boot": int(len(replicates))}


def policy_value_ipw(y, logged, chosen, propensity) -> float:
    """Inverse-propensity estimate of the mean outcome if every customer got the arm a policy chose:
    mean(y · 1[logged = chosen] / propensity) over all rows (Horvitz–Thompson; unbiased when ``propensity``
    is the true probability of the logged arm, e.g. a randomised trial's design).

    y: [N] outcomes; logged, chosen: [N] arm indices; propensity: [N] P(logged arm | x) in (0, 1]."""
    yy = np.asarray(y, dtype=np.float64)
    logged, chosen = np.asarray(logged), np.asarray(chosen)
    p = np.asarray(propensity, dtype=np.float64)
    _same_len(y=yy, logged=logged, chosen=chosen, propensity=p)
    if not len(yy) or not np.all((p > 0) & (p <= 1)):
        raise UserInputError("propensity: expected one probability in (0, 1] per row")
    return float(np.mean(yy * (logged == chosen) / p))


def policy_value_ci(y, logged, chosen, propensity, n_boot: int = 1000, alpha: float = 0.05,
                    seed: int = 0) -> dict[str, float]:
    """:func:`policy_value_ipw` with a percentile bootstrap interval, resampling within each logged arm."""
    yy, logged, chosen = np.asarray(y, dtype=np.float64), np.asarray(logged), np.asarray(chosen)
    p = np.asarray(propensity, dtype=np.float64)
    policy_value_ipw(yy, logged, chosen, p)  # checks the inputs once
    return stratified_bootstrap(lambda rows: policy_value_ipw(yy[rows], logged[rows], chosen[rows], p[rows]),
                                logged, n_boot=n_boot, alpha=alpha, seed=seed)
