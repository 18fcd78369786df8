"""Targeting plans from scores or rules: who gets which incentive column (level index, 0 = nothing)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepromo.data.errors import UserInputError
from deepromo.decide.rfm import RFM_TOP_SEGMENTS

__all__ = ["top_share_plan", "rfm_rule_plan"]


def _check_level_index(level: int) -> int:
    if int(level) != level or level < 1:
        raise UserInputError(f"level: expected an incentive column >= 1, got {level!r}")
    return int(level)


def top_share_plan(score, share: float, level: int = 1) -> np.ndarray:
    """Give ``level`` to the ``share`` of customers with the highest ``score`` (ties: lower position first).

    score: [n] float (e.g. predicted uplift or P(prompted)). share: in [0, 1]. Returns level [n] int64.
    """
    score = np.asarray(score, dtype=np.float64)
    if score.ndim != 1 or not np.isfinite(score).all():
        raise UserInputError(f"score: expected [n] finite numbers, got shape {score.shape}")
    if not 0.0 <= float(share) <= 1.0:
        raise UserInputError(f"share: expected a share of customers in [0, 1], got {share!r}")
    level = _check_level_index(level)
    k = int(round(float(share) * len(score)))
    plan = np.zeros(len(score), dtype=np.int64)
    plan[np.argsort(-score, kind="stable")[:k]] = level
    return plan


def rfm_rule_plan(rfm_segment, rfm_scores: pd.DataFrame, level: int, cost, budget: float = np.inf,
                  segments=RFM_TOP_SEGMENTS) -> np.ndarray:
    """The rule-based baseline: customers in the named RFM ``segments`` (default champions, loyal, potential
    loyalists) get ``level``, best R+F+M total first, until the expected ``cost`` ([n] money, of that level per
    customer) reaches ``budget``. rfm_segment: [n] names (``rfm_segment``); rfm_scores: [n] rows with R, F, M.
    Returns level [n] int64."""
    names = np.asarray(rfm_segment, dtype=object)
    total = rfm_scores[["R", "F", "M"]].to_numpy().sum(axis=1)
    cost = np.broadcast_to(np.asarray(cost, dtype=np.float64), names.shape)
    if len(total) != len(names):
        raise UserInputError(f"rfm_scores: expected {len(names)} rows (one per customer), got {len(total)}")
    level = _check_level_index(level)
    eligible = np.flatnonzero(np.isin(names, list(segments)))
    order = eligible[np.argsort(-total[eligible], kind="stable")]
    k = int(np.searchsorted(np.cumsum(cost[order]), budget, side="right")) if np.isfinite(budget) else len(order)
    plan = np.zeros(len(names), dtype=np.int64)
    plan[order[:k]] = level
    return plan
