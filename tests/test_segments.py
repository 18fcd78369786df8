"""RFM table / scores / segments on hand-computed cases."""

import numpy as np
import pandas as pd
import pytest

from deepromo.data.features import rfm_table
from deepromo.decide.rfm import RFM_TOP_SEGMENTS, rfm_scores, rfm_segment


def _events():
    rows = [
        (1, 9.0, "purchase", 10.0), (1, 5.0, "purchase", 20.0), (1, 6.0, "view", 0.0),
        (2, 2.0, "purchase", 5.0),
        (3, 4.0, "view", 0.0),
        (4, 12.0, "purchase", 50.0),  # after as_of: ignored
        (5, 10.0, "purchase", 100.0), (5, 8.0, "purchase", 1.0), (5, 7.0, "purchase", 1.0),
        (99, 1.0, "purchase", 7.0),  # not in the customer list
    ]
    return pd.DataFrame(rows, columns=["customer_id", "ts", "event_type", "amount"])


def test_rfm_table_hand_values():
    t = rfm_table(_events(), pd.Series([1, 2, 3, 4, 5]), as_of=10.5)
    assert list(t.index) == [1, 2, 3, 4, 5]
    assert t["recency_days"].tolist() == [1.5, 8.5, 11.5, 11.5, 0.5]
    assert t["frequency"].tolist() == [2, 1, 0, 0, 3]
    assert t["monetary"].tolist() == [30.0, 5.0, 0.0, 0.0, 102.0]


def test_rfm_scores_and_segments_hand_values():
    s = rfm_scores(rfm_table(_events(), np.array([1, 2, 3, 4, 5]), as_of=10.5))
    # 5 customers, 5 bins: untied rank r -> score r; the tied pair (ranks 1, 2) gets mid rank 1.5 -> score 2
    assert s["R"].tolist() == [4, 3, 2, 2, 5]
    assert s["F"].tolist() == [4, 3, 2, 2, 5]
    assert s["M"].tolist() == [4, 3, 2, 2, 5]
    assert rfm_segment(s).tolist() == ["champions", "need_attention", "about_to_sleep", "about_to_sleep", "champions"]


def test_rfm_table_cut_off_is_the_views_cut_off():
    """An event at exactly as_of belongs to the window that starts there (ts < as_of, as behaviour_features)."""
    from deepromo.data.features import behaviour_features

    t = rfm_table(_events(), [5], as_of=10.0)
    assert t.loc[5, "frequency"] == 2 and t.loc[5, "monetary"] == 2.0 and t.loc[5, "recency_days"] == 2.0
    windows = behaviour_features(_events(), np.array([5]), 10.0)
    assert windows.loc[0, "frequency"] == 2 and windows.loc[0, "recency_days"] == 2.0


def test_rfm_scores_equal_quintiles_without_ties():
    rfm = pd.DataFrame({"recency_days": np.arange(10.0), "frequency": np.arange(10), "monetary": np.arange(10.0)})
    s = rfm_scores(rfm)
    assert s["F"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert s["R"].tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]  # recent = best


def test_rfm_segment_grid():
    sc = pd.DataFrame(
        [(1, 1, 1), (1, 5, 4), (5, 1, 2), (5, 1, 1), (3, 1, 1), (2, 4, 3), (4, 3, 2), (3, 5, 5), (2, 2, 2), (1, 2, 1)],
        columns=["R", "F", "M"],
    )
    assert rfm_segment(sc).tolist() == [
        "lost", "cannot_lose", "potential_loyalists", "new_customers", "promising",
        "at_risk", "loyal", "loyal", "about_to_sleep", "hibernating",
    ]
    assert RFM_TOP_SEGMENTS == ("champions", "loyal", "potential_loyalists")


def test_rfm_bad_input():
    with pytest.raises(ValueError, match="events"):
        rfm_table(_events().drop(columns="amount"), [1], 10.0)
    with pytest.raises(ValueError, match="customers"):
        rfm_table(_events(), [1, 1], 10.0)
    with pytest.raises(ValueError, match="rfm_scores"):
        rfm_segment(pd.DataFrame({"R": [6], "F": [1], "M": [1]}))
