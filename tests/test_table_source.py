"""The table source: hand-checked mappings of tiny CSV/Parquet files, batched reading, every bad-input error,
and the views / datamodule on a table-source dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepromo.data import io as data_io
from deepromo.data.sources import list_sources, load_source
from deepromo.data.sources import table as tbl
from deepromo.data.tables import DataValidationError

ROWS = """user,age,region,converted,arm,p,decided,spend,unused
u3,30,north,1,10,0.5,2024-01-11,12.5,x
u1,41,,0,0,0.5,2024-01-10,0,y
u2,25,south,1,5,0.25,2024-01-10T12:00,3,z
u4,52,north,0,0,0.5,2024-01-12,0,w
"""
EVENTS = """user,when,kind,value,product
u1,2024-01-01,view,,
u1,2024-01-02,order,20.0,7
u3,2024-01-05 06:00,order,15.5,8
u9,2024-01-03,view,,
u2,2024-01-10T18:00,order,4,
"""
ROLES = {"id": "user", "label": "converted", "treatment": "arm", "propensity": "p", "numeric": ["age"],
         "categorical": ["region"], "time": "decided", "revenue": "spend"}
EVENT_OPTIONS = {"events_columns": {"ts": "when", "event_type": "kind", "amount": "value", "product_id": "product"},
                 "event_type_map": {"order": "purchase"}}


def write(path, text: str):
    path.write_text(text)
    return str(path)


def by_customer(df: pd.DataFrame, col: str) -> dict:
    return dict(zip(df["customer_id"].tolist(), df[col].tolist()))


@pytest.fixture
def rows_csv(tmp_path):
    return write(tmp_path / "rows.csv", ROWS)


@pytest.fixture
def events_csv(tmp_path):
    return write(tmp_path / "events.csv", EVENTS)


@pytest.fixture
def hand(rows_csv, events_csv):
    return load_source("table", path=rows_csv, events_path=events_csv, **ROLES, **EVENT_OPTIONS)


# ---------------------------------------------------------------- the mapping, checked by hand


def test_registered():
    assert {"table", "hillstrom", "cdnow"} <= set(list_sources())


def test_customers_and_ids(hand):
    c = hand.customers
    assert c["customer_id"].tolist() == [2, 0, 1, 3]  # string ids -> codes of the sorted ids, file order kept
    assert list(c.columns) == ["customer_id", "region", "age"]  # only role columns: 'unused' is not read
    assert isinstance(c["region"].dtype, pd.CategoricalDtype)
    assert c["region"].tolist() == ["north", "unknown", "south", "north"]  # missing -> "unknown"
    assert c["age"].dtype == np.float64 and c["age"].tolist() == [30.0, 41.0, 25.0, 52.0]
    ids = hand.meta["original_ids"]
    assert dict(zip(ids["original_id"], ids["customer_id"])) == {"u3": 2, "u1": 0, "u2": 1, "u4": 3}


def test_time_frame_treatment_and_outcomes(hand):
    # day 0 = midnight of the earliest time (the u1 view on 2024-01-01); history_end = earliest decision
    assert hand.meta["day0"] == "2024-01-01T00:00:00" and hand.history_end == 9.0
    e = hand.exposures
    assert by_customer(e, "ts") == {2: 10.0, 0: 9.0, 1: 9.5, 3: 11.0}
    assert by_customer(e, "incentive") == {2: 10.0, 0: 0.0, 1: 5.0, 3: 0.0}
    assert by_customer(e, "treatment") == {2: 1, 0: 0, 1: 1, 3: 0}
    assert by_customer(e, "propensity") == {2: 0.5, 0: 0.5, 1: 0.25, 3: 0.5}
    assert (e["offer_id"] == -1).all() and "engaged" not in e.columns
    assert hand.incentive_levels == (0.0, 5.0, 10.0) and hand.meta["treatment_type"] == "numeric"
    o = hand.outcomes
    assert by_customer(o, "purchased") == {2: 1, 0: 0, 1: 1, 3: 0} and o["purchased"].dtype == np.int8
    assert by_customer(o, "revenue") == {2: 12.5, 0: 0.0, 1: 3.0, 3: 0.0}


def test_events(hand):
    ev = hand.events
    assert ev["customer_id"].tolist() == [0, 0, 1, 2]  # sorted by (customer, ts); u9 is unknown -> dropped
    assert ev["ts"].tolist() == pytest.approx([0.0, 1.0, 9.75, 4.25])
    assert ev["event_type"].tolist() == ["view", "purchase", "purchase", "purchase"]  # order -> purchase
    assert ev["amount"].tolist() == [0.0, 20.0, 4.0, 15.5]  # empty amount -> 0
    assert ev["product_id"].tolist() == [-1, 7, -1, 8]
    assert (ev["category"] == "").all() and (ev["promo_active"] == 0).all()
    assert hand.meta["counts"]["events_dropped_unknown_id"] == 1


def test_observed_propensity_binary_and_row_ids(tmp_path):
    path = write(tmp_path / "r.csv", "y,t,x\n1,1,0.5\n0,0,1.5\n1,1,2.5\n0,true,3.5\n")
    d = load_source("table", path=path, label="y", treatment="t", numeric=["x"])
    assert d.customers["customer_id"].tolist() == [0, 1, 2, 3]  # no id: row numbers
    assert d.exposures["treatment"].tolist() == [1, 0, 1, 1] and d.incentive_levels == (0.0, 1.0)
    assert d.exposures["propensity"].tolist() == [0.75, 0.25, 0.75, 0.75]  # observed share of the level
    assert d.history_end == 0.0 and len(d.events) == 0


def test_categorical_arms_from_parquet(tmp_path):
    path = tmp_path / "rows.parquet"
    pd.DataFrame({"cid": [10, 11, 12, 13, 14], "y": [True, False, True, False, True],
                  "offer": ["none", "B", "A", "none", "A"], "seen": [1, 0, 1, 0, 0],
                  "oid": [None, 3.0, 4.0, None, 4.0]}).to_parquet(path)
    d = load_source("table", path=str(path), id="cid", label="y", treatment="offer", control="none",
                    arms=["B", "A"], engaged="seen", offer="oid")
    e = d.exposures
    assert e["customer_id"].tolist() == [10, 11, 12, 13, 14]
    assert e["incentive"].tolist() == [0.0, 1.0, 2.0, 0.0, 2.0]  # levels in the order of `arms`
    assert e["treatment"].tolist() == [0, 1, 1, 0, 1]
    assert e["arm"].astype(str).tolist() == ["none", "B", "A", "none", "A"]
    assert e["engaged"].tolist() == [0, 0, 1, 0, 0]  # engaged only when treated
    assert e["offer_id"].tolist() == [-1, 3, 4, -1, 4]
    assert e["propensity"].tolist() == pytest.approx([0.4, 0.2, 0.4, 0.4, 0.4])
    assert d.meta["arms"] == {"none": 0.0, "B": 1.0, "A": 2.0} and d.incentive_levels == (0.0, 1.0, 2.0)
    assert d.outcomes["purchased"].tolist() == [1, 0, 1, 0, 1]


def test_label_positive_and_numeric_time(tmp_path):
    path = write(tmp_path / "r.csv", "y,t,at\nyes,0,48\nno,1,72\nmaybe,1,96\n")
    d = load_source("table", path=path, label="y", label_positive="yes", treatment="t", time="at", time_unit="hours")
    assert d.outcomes["purchased"].tolist() == [1, 0, 0]
    assert d.exposures["ts"].tolist() == [2.0, 3.0, 4.0] and d.history_end == 2.0


def test_derived_label_from_events(tmp_path):
    rows = write(tmp_path / "r.csv", "customer_id,t\n1,0\n2,1\n3,1\n")
    events = write(tmp_path / "e.csv", "customer_id,ts,event_type,amount\n"
                   "1,1.0,purchase,5\n1,10.0,purchase,7\n2,3.0,view,0\n2,9.99,purchase,2\n3,12.5,purchase,4\n")
    d = load_source("table", path=rows, id="customer_id", treatment="t", events_path=events, response_days=3)
    # last event day 12 -> history_end = 12 - 3 = 9; window [9, 12)
    assert d.history_end == 9.0 and d.meta["label_derived"]
    assert by_customer(d.outcomes, "purchased") == {1: 1, 2: 1, 3: 0}
    assert by_customer(d.outcomes, "revenue") == {1: 7.0, 2: 2.0, 3: 0.0}
    d2 = load_source("table", path=rows, id="customer_id", treatment="t", events_path=events, history_end=10,
                     response_days=5)
    assert by_customer(d2.outcomes, "purchased") == {1: 1, 2: 0, 3: 1}


def test_offers_products_and_redemptions(tmp_path):
    rows = write(tmp_path / "r.csv", "customer_id,y,t,o\n1,1,1,100\n2,0,0,\n3,1,1,101\n4,0,1,100\n")
    events = write(tmp_path / "e.csv", "customer_id,ts,event_type,amount,product_id,offer_id\n"
                   "1,1.0,purchase,5,7,\n1,2.0,coupon_redemption,0,,100\n3,2.5,campaign_received,0,,101\n"
                   "4,3.0,purchase,4,8,\n")
    offers = write(tmp_path / "offers.csv", "offer_id,offer_type,face_value,product_id,extra\n"
                   "100,percent_off,10,7,a\n101,,5,8,b\n")
    products = write(tmp_path / "p.csv", "sku,category,price\n7,shoes,20\n8,,5.5\n")
    d = load_source("table", path=rows, id="customer_id", label="y", treatment="t", offer="o", events_path=events,
                    offers_path=offers, products_path=products, products_columns={"product_id": "sku"})
    assert d.exposures["offer_id"].tolist() == [100, -1, 101, 100]
    assert d.offers.to_dict("list") == {"offer_id": [100, 101], "product_id": [7, 8],
                                        "offer_type": ["percent_off", "unknown"], "face_value": [10.0, 5.0]}
    assert d.products.to_dict("list") == {"product_id": [7, 8], "category": ["shoes", ""], "price": [20.0, 5.5]}
    red = d.meta["redemptions"]
    assert list(zip(red["customer_id"], red["offer_id"], red["ts"])) == [(1, 100, 2.0)]
    exp = d.meta["offer_exposures"]
    assert list(zip(exp["customer_id"], exp["offer_id"], exp["ts"])) == [(3, 101, 2.5)]
    assert d.history_end == 4.0  # label given, no decision time: the day after the last event's day

    from deepromo.data.graph.build import build_offer_graph

    graph = build_offer_graph(d)
    assert graph.info["positive_pairs"] == 1 and len(graph.node_ids["offer"]) == 2


# ---------------------------------------------------------------- files: several, globs, batches, pruning


def test_glob_shards_and_tsv(tmp_path):
    write(tmp_path / "part-1.csv", "id,y,t\n1,1,1\n2,0,0\n")
    write(tmp_path / "part-2.csv", "id,y,t\n3,0,1\n")
    d = load_source("table", path=str(tmp_path / "part-*.csv"), id="id", label="y", treatment="t")
    assert d.customers["customer_id"].tolist() == [1, 2, 3]
    tsv = write(tmp_path / "rows.tsv", "id\ty\tt\n1\t1\t1\n2\t0\t0\n")
    d = load_source("table", path=[tsv], id="id", label="y", treatment="t")
    assert d.outcomes["purchased"].tolist() == [1, 0]


def test_batched_reading_matches_and_locates_bad_values(tmp_path, monkeypatch):
    monkeypatch.setattr(data_io, "CSV_BLOCK_BYTES", 256)
    monkeypatch.setattr(data_io, "PARQUET_BATCH_ROWS", 7)
    n = 300
    frame = pd.DataFrame({"id": np.arange(n), "x": np.arange(n) * 0.5, "noise": ["a"] * n})
    csv, parquet = tmp_path / "big.csv", tmp_path / "big.parquet"
    frame.to_csv(csv, index=False)
    frame.to_parquet(parquet)
    for file in (csv, parquet):
        out = tbl.read_files([file], ["id", "x"], numeric=["x"])
        assert list(out.columns) == ["id", "x"] and len(out) == n  # pruned to the asked columns
        assert out["x"].tolist() == frame["x"].tolist()
    bad = frame.astype({"x": object})
    bad.loc[250, "x"] = "oops"
    bad.to_csv(csv, index=False)
    with pytest.raises(DataValidationError, match=r"column 'x' of 'big.csv' must be numeric.*'oops' \(row 250\)"):
        tbl.read_files([csv], ["id", "x"], numeric=["x"])


# ---------------------------------------------------------------- bad input: each a clear error


def rows_with(tmp_path, replace: tuple[str, str] | None = None, text: str = ROWS) -> str:
    if replace:
        assert replace[0] in text
        text = text.replace(*replace)
    return write(tmp_path / "bad.csv", text)


@pytest.mark.parametrize("replace, options, match", [
    (None, {"numeric": ["age", "income", "score"]}, r"lacks column\(s\) \['income', 'score'\]"),
    (None, {"label": "bought"}, r"lacks column\(s\) \['bought'\]"),
    (("u3,30,", "u3,abc,"), {}, r"column 'age' of 'bad.csv' must be numeric.*'abc' \(row 0\)"),
    (("u3,30,", "u3,,"), {}, r"column 'age' has 1 missing/NaN value\(s\), first at row\(s\) \[0\]"),
    (("u3,30,", "u3,inf,"), {}, r"column 'age' has 1 infinite value\(s\), e.g. inf \(row 0\)"),
    (("1,10,0.5", "1,-10,0.5"), {}, r"treatment column 'arm' has 1 negative incentive\(s\), e.g. '-10'"),
    (("north,1,10", "north,2,10"), {}, r"label column 'converted' must be binary.*\['2'\]"),
    (("north,1,10", "north,,10"), {}, r"label column 'converted' has 1 missing value"),
    (("u2,25", "u1,25"), {}, r"id column 'user' has duplicated values, e.g. \['u1'\]"),
    (("0.25,2024", "1.5,2024"), {}, r"column 'p' \(propensity\) must lie in \(0, 1\], got e.g. 1.5 \(row 2\)"),
    (("2024-01-11", "soon"), {}, r"column 'decided' must hold dates/timestamps.*'soon' \(row 0\)"),
    (None, {"history_end": "2024-01-10T06:00"}, r"history_end \(day 9.25\) is after the decision time of 1 row"),
    (None, {"numeric": ["age", "converted"]}, r"column 'converted' is given two roles \(label and numeric\)"),
    (None, {"categorical": ["region", "frequency"]}, r"\['frequency'\] carry names the task views add"),
    (None, {"treatment_type": "categorical"}, r"holds categorical arms .*set option control"),
    (None, {"treatment_type": "categorical", "control": "7"}, r"control arm '7' does not occur"),
    (None, {"path": "rows.xlsx"}, r"unknown suffix; expected one of \['.csv'"),
])
def test_bad_rows(tmp_path, events_csv, replace, options, match):
    path = rows_with(tmp_path, replace)
    kwargs = {**ROLES, "path": path, "events_path": events_csv, **EVENT_OPTIONS, **options}
    with pytest.raises(DataValidationError, match=match):
        load_source("table", **kwargs)


def test_constant_label(tmp_path):
    path = write(tmp_path / "r.csv", "y,t\n0,1\n0,0\n0,1\n")
    with pytest.raises(DataValidationError, match=r"label column 'y' is constant \(all 0\)"):
        load_source("table", path=path, label="y", treatment="t")


def test_single_treatment_value(tmp_path):
    path = write(tmp_path / "r.csv", "y,t\n1,5\n0,5\n")
    with pytest.raises(DataValidationError, match=r"treatment column 't' has a single value \('5'\)"):
        load_source("table", path=path, label="y", treatment="t")


def test_missing_files(tmp_path, rows_csv):
    with pytest.raises(DataValidationError, match=r"nope.csv' \(option path\) does not exist"):
        load_source("table", path=str(tmp_path / "nope.csv"), label="y")
    with pytest.raises(DataValidationError, match=r"no file matches path="):
        load_source("table", path=str(tmp_path / "none-*.parquet"), label="y")
    with pytest.raises(DataValidationError, match=r"option path is required"):
        load_source("table", label="y")
    with pytest.raises(DataValidationError, match=r"option label is required"):
        load_source("table", path=rows_csv)
    with pytest.raises(DataValidationError, match=r"ev.csv' \(option events_path\) does not exist"):
        load_source("table", path=rows_csv, **ROLES, events_path=str(tmp_path / "ev.csv"))


def test_bad_events(tmp_path, rows_csv):
    ev = write(tmp_path / "ev.csv", "user,when,kind\nu1,2024-01-01,view\n")
    with pytest.raises(DataValidationError, match=r"ev.csv' lacks column\(s\) \['ts', 'event_type'\]"):
        load_source("table", path=rows_csv, **ROLES, events_path=ev)
    with pytest.raises(DataValidationError, match=r"ev.csv' lacks column\(s\) \['price'\]"):  # renamed: required
        load_source("table", path=rows_csv, **ROLES, events_path=ev,
                    events_columns={"ts": "when", "event_type": "kind", "amount": "price"})
    ev = write(tmp_path / "ev.csv", "user,ts,event_type,amount\nu1,2024-01-01,purchase,-3\n")
    with pytest.raises(DataValidationError, match=r"column 'amount' has 1 negative value\(s\), e.g. -3.0"):
        load_source("table", path=rows_csv, **ROLES, events_path=ev)
    ev = write(tmp_path / "ev.csv", "user,ts,event_type\nu1,3.5,view\n")
    with pytest.raises(DataValidationError, match=r"'decided' holds timestamps but events column 'ts' holds numbers"):
        load_source("table", path=rows_csv, **ROLES, events_path=ev)


def test_bad_parquet_types_and_catalogues(tmp_path):
    path = tmp_path / "r.parquet"
    pd.DataFrame({"y": [1, 0], "t": [1, 0], "when": pd.to_datetime(["2024-01-01", "2024-01-02"])}).to_parquet(path)
    with pytest.raises(DataValidationError, match=r"column 'when' of 'r.parquet' must be numeric, got type timestamp"):
        load_source("table", path=str(path), label="y", treatment="t", numeric=["when"])
    rows = write(tmp_path / "r.csv", "id,y,t\n1,1,1\n2,0,0\n")
    offers = write(tmp_path / "o.csv", "offer_id,face_value\n1,5\n1,6\n")
    with pytest.raises(DataValidationError, match=r"column 'offer_id' has duplicated ids, e.g. \[1\]"):
        load_source("table", path=rows, id="id", label="y", treatment="t", offers_path=offers)
    with pytest.raises(DataValidationError, match=r"o.parquet' is not a readable parquet file"):
        bad = tmp_path / "o.parquet"
        bad.write_text("not parquet")
        load_source("table", path=rows, id="id", label="y", treatment="t", offers_path=str(bad))


@pytest.mark.parametrize("options, match", [
    ({"treatment_type": "ordinal"}, "treatment_type"),
    ({"time_unit": "weeks"}, "time_unit"),
    ({"response_days": 0}, "response_days"),
    ({"numeric": "age,spend"}, None),  # a single name is accepted as a one-element list ...
    ({"numeric": [1, 2]}, "numeric"),
    ({"label": ""}, "label"),
])
def test_bad_options(rows_csv, options, match):
    kwargs = {**ROLES, "path": rows_csv, **options}
    if match is None:
        with pytest.raises(DataValidationError, match=r"lacks column\(s\) \['age,spend'\]"):  # ... and then missing
            load_source("table", **kwargs)
        return
    with pytest.raises(ValueError, match=match):
        load_source("table", **kwargs)


# ---------------------------------------------------------------- views and the datamodule


def make_dataset(tmp_path, n: int = 150, seed: int = 0):
    """A random but learnable rows file plus events (numbers as days), as CSV."""
    rng = np.random.default_rng(seed)
    treated = rng.random(n) < 0.5
    age = rng.integers(18, 70, n)
    p = 0.15 + 0.25 * treated + 0.2 * (age < 35)
    rows = pd.DataFrame({
        "cid": np.arange(1000, 1000 + n), "age": age, "channel": rng.choice(["web", "app", "store"], n),
        "email": treated.astype(int), "bought": (rng.random(n) < p).astype(int),
        "opened": (treated & (rng.random(n) < 0.7)).astype(int),
    })
    rows.to_csv(tmp_path / "rows.csv", index=False)
    m = 6 * n
    events = pd.DataFrame({
        "cid": rng.integers(1000, 1000 + n, m), "ts": np.round(rng.random(m) * 60, 3),
        "event_type": rng.choice(["view", "cart", "purchase"], m, p=[0.6, 0.2, 0.2]),
    })
    events["amount"] = np.where(events["event_type"] == "purchase", np.round(rng.random(m) * 50, 2), 0.0)
    events.to_csv(tmp_path / "events.csv", index=False)
    return load_source("table", path=str(tmp_path / "rows.csv"), id="cid", label="bought", treatment="email",
                       engaged="opened", numeric=["age"], categorical=["channel"],
                       events_path=str(tmp_path / "events.csv"))


def test_views_and_datamodule(tmp_path):
    from deepromo.data.datamodule import PromoDataModule
    from deepromo.data.views import build_view

    data = make_dataset(tmp_path)
    assert data.history_end == 60.0  # the day after the last event's day
    customer = build_view("customer", data)
    assert len(customer) == 150 and "channel" in customer.categorical and "age" in customer.numeric
    assert {"recency_days", "purchase_30d"} <= set(customer.numeric)
    assert customer.frame[customer.numeric].notna().all().all()
    expected_segment = np.where(data.outcomes["purchased"] == 1,
                                np.where(data.exposures["engaged"] == 1, 2, 1), 0)
    assert customer.frame["segment"].tolist() == expected_segment.tolist()
    response = build_view("response", data)
    assert response.frame["incentive"].tolist() == data.exposures["incentive"].astype(np.float32).tolist()
    purchase = build_view("purchase", data)
    assert purchase.sequences is not None and purchase.sequences.lengths().sum() == len(data.events)

    for view in (customer, response, purchase):
        dm = PromoDataModule(view, batch_size=32, seed=0)
        dm.setup()
        assert sum(len(dm.indices[s]) for s in ("train", "val", "test")) == 150
        batch = next(iter(dm.train_dataloader()))
        assert batch["num"].shape[1] == len(view.numeric) and batch["cat"].shape[1] == 1
        if view is response:
            assert dm.spec.treatment.levels == (0.0, 1.0)
        if view is purchase:
            assert "seq_cat" in batch and batch["seq_mask"].any()
