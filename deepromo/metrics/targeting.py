"""Targeting metrics: cumulative gain curve.

Hand-written: no maintained library exposes the cumulative gain curve as a plain function on arrays.
"""

from __future__ import annotations

import numpy as np

from deepromo.data.errors import UserInputError
from deepromo.metrics.classification import _binary, _same_len, _scores

__all__ = ["cumulative_gain_curve", "gain_at"]


def _gain_knots(y_true, score) -> tuple[np.ndarray, np.ndarray, float]:
    """Knots (customers targeted, positives reached) at the end of each tied-score group, from (0, 0).

    Between knots the curve is linear: targeting part of a tied group reaches that group's positives
    pro rata, i.e. the expected value over every order of the tied customers.
    """
    y = _binary(y_true, "y_true")
    s = _scores(score, "score")
    _same_len(y_true=y, score=s)
    n_pos = float(y.sum())
    if n_pos == 0:
        raise UserInputError("y_true: expected at least one positive (1) label, got none; the gain curve is undefined")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    ends = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), len(s) - 1]  # last index of each tied group
    x = np.r_[0.0, ends + 1.0]
    pos = np.r_[0.0, np.cumsum(y_sorted)[ends].astype(np.float64)]
    return x, pos, n_pos


def cumulative_gain_curve(y_true, score, n_points: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative gain curve: share of all positives reached when targeting the top share by score.

    y_true: [N] in {0,1}; score: [N] finite (higher = target first).
    Returns (x [n_points] = share targeted, evenly spaced 0..1; y [n_points] = share of positives reached).
    Ties: a tied-score group is reached pro rata (linear interpolation across the group), the expected
    gain over random orderings of tied customers; so a constant score gives the random diagonal.
    """
    if int(n_points) != n_points or n_points < 2:
        raise UserInputError(f"n_points: expected an integer >= 2, got {n_points!r}")
    kx, kpos, n_pos = _gain_knots(y_true, score)
    n = kx[-1]
    x = np.linspace(0.0, 1.0, int(n_points))
    return x, np.interp(x * n, kx, kpos) / n_pos


def gain_at(y_true, score, share: float = 0.4) -> float:
    """Share of all positives reached when targeting the top `share` (in [0, 1]) of customers by score.

    Interpolated linearly at exactly share·N customers (and pro rata within tied-score groups).
    """
    if not (0.0 <= float(share) <= 1.0):
        raise UserInputError(f"share: expected a fraction in [0, 1], got {share!r}")
    kx, kpos, n_pos = _gain_knots(y_true, score)
    return float(np.interp(float(share) * kx[-1], kx, kpos) / n_pos)
