"""RFM quintile scores and named RFM segments (vectorised pandas). The RFM values come from
``deepromo.data.features.rfm_table``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepromo.data.errors import UserInputError

__all__ = ["rfm_scores", "rfm_segment", "RFM_TOP_SEGMENTS", "RFM_SEGMENTS", "RFM_SEGMENT_GRID"]

RFM_TOP_SEGMENTS = ("champions", "loyal", "potential_loyalists")

RFM_SEGMENTS = (
    "champions", "loyal", "potential_loyalists", "new_customers", "promising", "need_attention",
    "about_to_sleep", "at_risk", "cannot_lose", "hibernating", "lost",
)

# Rows: FM score 1..5 (FM = round-half-up of (F + M) / 2); columns: R score 1..5.
RFM_SEGMENT_GRID = (
    # R=1            R=2               R=3               R=4                    R=5
    ("lost",         "hibernating",    "promising",      "new_customers",       "new_customers"),        # FM=1
    ("hibernating",  "about_to_sleep", "about_to_sleep", "potential_loyalists", "potential_loyalists"),  # FM=2
    ("at_risk",      "at_risk",        "need_attention", "loyal",               "loyal"),                # FM=3
    ("cannot_lose",  "at_risk",        "loyal",          "champions",           "champions"),            # FM=4
    ("cannot_lose",  "at_risk",        "loyal",          "champions",           "champions"),            # FM=5
)


def _quantile_score(values: pd.Series, n_bins: int) -> pd.Series:
    """Scores 1..n_bins from the mid-rank share; tied values always share a score (larger value = higher score)."""
    n = len(values)
    mid = values.rank(method="average").to_numpy()  # tie groups get their mid rank
    score = np.floor((mid - 0.5) / n * n_bins).astype(np.int64) + 1
    return pd.Series(np.clip(score, 1, n_bins), index=values.index)


def rfm_scores(rfm: pd.DataFrame, n_bins: int = 5) -> pd.DataFrame:
    """R, F, M scores 1..n_bins (n_bins = best: most recent, most frequent, highest spend).

    rfm: output of :func:`deepromo.data.features.rfm_table`. Equal-count bins on ranks: score = floor((r − 0.5)/N · n_bins) + 1
    with r the average rank. Without ties this gives equal-sized quantile bins (as ``pd.qcut`` on ranks);
    unlike ``qcut(rank(method="first"))`` tied customers are never split across scores (e.g. all
    zero-purchase customers share one F score), so bins can be unequal when ties are large.
    Returns DataFrame (same index) with int64 columns R, F, M.
    """
    missing = [c for c in ("recency_days", "frequency", "monetary") if c not in rfm.columns]
    if missing:
        raise UserInputError(f"rfm: missing column(s) {missing}; expected the output of rfm_table")
    if int(n_bins) != n_bins or n_bins < 2:
        raise UserInputError(f"n_bins: expected an integer >= 2, got {n_bins!r}")
    if len(rfm) == 0:
        raise UserInputError("rfm: expected at least one customer, got 0 rows")
    if rfm[["recency_days", "frequency", "monetary"]].isna().any().any():
        raise UserInputError("rfm: expected no NaN in recency_days / frequency / monetary")
    return pd.DataFrame(
        {
            "R": _quantile_score(-rfm["recency_days"], int(n_bins)),
            "F": _quantile_score(rfm["frequency"], int(n_bins)),
            "M": _quantile_score(rfm["monetary"], int(n_bins)),
        },
        index=rfm.index,
    )


def rfm_segment(rfm_scores: pd.DataFrame) -> pd.Series:
    """Named RFM segment per customer from 5-level scores (columns R, F, M in 1..5).

    FM = round-half-up((F + M) / 2), then look up (FM, R) in this grid (RFM_SEGMENT_GRID):

    ====  ===========  ==============  ==============  ===================  ===================
    FM    R=1          R=2             R=3             R=4                  R=5
    ====  ===========  ==============  ==============  ===================  ===================
    5     cannot_lose  at_risk         loyal           champions            champions
    4     cannot_lose  at_risk         loyal           champions            champions
    3     at_risk      at_risk         need_attention  loyal                loyal
    2     hibernating  about_to_sleep  about_to_sleep  potential_loyalists  potential_loyalists
    1     lost         hibernating     promising       new_customers        new_customers
    ====  ===========  ==============  ==============  ===================  ===================

    Returns pd.Series of str (name "segment"), same index.
    """
    missing = [c for c in ("R", "F", "M") if c not in rfm_scores.columns]
    if missing:
        raise UserInputError(f"rfm_scores: missing column(s) {missing}; expected the output of rfm_scores")
    vals = rfm_scores[["R", "F", "M"]].to_numpy()
    if not np.isin(vals, np.arange(1, 6)).all():
        raise UserInputError("rfm_scores: expected integer scores in 1..5 (use rfm_scores(..., n_bins=5))")
    r, f, m = (vals[:, i].astype(np.int64) for i in range(3))
    fm = (f + m + 1) // 2  # round half up
    grid = np.array(RFM_SEGMENT_GRID, dtype=object)
    return pd.Series(grid[fm - 1, r - 1], index=rfm_scores.index, name="segment", dtype=object)
