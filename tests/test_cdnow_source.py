"""The cdnow source: a hand-checked CDNOW_master.txt, file lookup, every bad-input error, the purchase view."""

from __future__ import annotations

import importlib.util
import types

import numpy as np
import pandas as pd
import pytest

from conftest import by_customer

from deepromo.data.sources import cdnow, load_source
from deepromo.data.tables import DataValidationError

# id, date, cds, dollars — day numbers since 1997-01-01 in the comments; history_end 1997-10-01 = day 273
LINES = [
    "00001 19970101  1   11.77",   # day 0
    "00002 19970212  1   12.00",   # day 42
    "00002 19970212  5   77.00",   # same day: a second purchase
    "00003 19970102  2   20.76",
    "00003 19970330  2   20.76",
    "00003 19970402  2   19.54",
    "00003 19971115  5   57.45",   # day 318: in the window [273, 363)
    "00003 19971125  4   20.96",   # day 328: in the window
    "00003 19980528  1   16.99",   # after the window
    "00004 19970101  2   29.33",
    "00004 19970118  2   29.73",
    "00004 19970802  1   14.96",
    "00004 19971212  2   26.48",   # day 345: in the window
    "00005 19971001  1   10.00",   # day 273: first purchase on history_end -> no history -> dropped
    "00006 19970305  1    5.00",   # day 63
    "00006 19970930  1    5.00",   # day 272: last history day
    "00006 19971230  1    9.00",   # day 363: the first day after the window
]


def write(tmp_path, lines=LINES, name="CDNOW_master.txt") -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def txt(tmp_path):
    return write(tmp_path)


# ---------------------------------------------------------------- the mapping, checked by hand


def test_mapping(txt):
    d = load_source("cdnow", path=txt)
    assert d.name == "cdnow" and d.history_end == 273.0 and d.response_days == 90.0
    assert d.meta["day0"] == "1997-01-01" and d.meta["history_end_date"].startswith("1997-10-01")
    assert d.incentive_levels == (0.0,)
    c = d.customers
    assert c["customer_id"].tolist() == [1, 2, 3, 4, 6]
    assert c["cohort"].astype(str).tolist() == ["1997-01", "1997-02", "1997-01", "1997-01", "1997-03"]
    ev = d.events
    assert len(ev) == 16 and (ev["event_type"] == "purchase").all() and 5 not in set(ev["customer_id"])
    c2 = ev[ev["customer_id"] == 2]
    assert c2["ts"].tolist() == [42.0, 42.0] and c2["quantity"].tolist() == [1, 5]  # file order on ties
    assert c2["amount"].tolist() == [12.0, 77.0]
    assert ev[ev["customer_id"] == 3]["ts"].tolist() == [1.0, 88.0, 91.0, 318.0, 328.0, 512.0]
    assert (ev["product_id"] == -1).all() and (ev["category"] == "").all() and (ev["promo_active"] == 0).all()
    o = d.outcomes
    assert by_customer(o, "purchased") == {1: 0, 2: 0, 3: 1, 4: 1, 6: 0}
    assert by_customer(o, "revenue") == pytest.approx({1: 0.0, 2: 0.0, 3: 78.41, 4: 26.48, 6: 0.0})
    e = d.exposures
    assert (e["treatment"] == 0).all() and (e["incentive"] == 0).all() and (e["propensity"] == 1).all()
    assert (e["ts"] == 273.0).all() and (e["engaged"] == 0).all()


def test_options(txt):
    d = load_source("cdnow", path=txt, history_end=300, response_days=90)  # window [300, 390)
    assert by_customer(d.outcomes, "purchased") == {1: 0, 2: 0, 3: 1, 4: 1, 5: 0, 6: 1}  # 5 now has history
    last = load_source("cdnow", path=txt, history_end=None, response_days=30)  # last day 512 -> [483, 513)
    assert last.history_end == 483.0 and by_customer(last.outcomes, "purchased")[3] == 1
    assert load_source("cdnow", path=txt, min_purchases=2).customers["customer_id"].tolist() == [2, 3, 4, 6]
    everyone = load_source("cdnow", path=txt, min_purchases=0)
    assert everyone.customers["customer_id"].tolist() == [1, 2, 3, 4, 5, 6]
    assert everyone.customers.set_index("customer_id").loc[5, "cohort"] == "none"
    small = load_source("cdnow", path=txt, max_customers=2)
    assert small.customers["customer_id"].tolist() == [1, 2] and set(small.events["customer_id"]) == {1, 2}


def test_installed_package_lookup(tmp_path, monkeypatch):
    package = tmp_path / "lifetimes"
    (package / "datasets").mkdir(parents=True)
    fake_spec = types.SimpleNamespace(submodule_search_locations=[str(package)])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: fake_spec if name == "lifetimes" else None)
    with pytest.raises(DataValidationError, match=r"datasets/CDNOW_master.txt is missing"):
        load_source("cdnow")
    write(package / "datasets")
    assert load_source("cdnow").meta["path"] == str(package / "datasets" / "CDNOW_master.txt")


def test_package_absent(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataValidationError, match=r"Lifetimes package is not installed.*pip install Lifetimes.*"
                                                  r"data\.options\.path.*never downloaded"):
        load_source("cdnow")


# ---------------------------------------------------------------- bad input: each a clear error


def test_missing_path(tmp_path):
    with pytest.raises(DataValidationError, match=r"nowhere.txt' does not exist"):
        load_source("cdnow", path=str(tmp_path / "nowhere.txt"))


@pytest.mark.parametrize("line, match", [
    ("00007 19970101 1 9.99 extra", r"not in CDNOW_master.txt format.*Expected 4 fields"),
    ("00007 19970101 1", r"1 line\(s\) without a 'dollars' field, e.g. data line\(s\) \[2\]"),
    ("00007 19971301 1 9.99", r"field 'date' .* must be a date YYYYMMDD, got '19971301' \(line 2\)"),
    ("00007 19970101 1 -9.99", r"field 'dollars' .* finite numbers >= 0, got '-9.99' \(line 2\)"),
    ("00007 19970101 1.5 9.99", r"field 'cds' .* integers >= 0, got '1.5' \(line 2\)"),
    ("abc 19970101 1 9.99", r"field 'customer_id' .* integers >= 0, got 'abc' \(line 2\)"),
])
def test_bad_lines(tmp_path, line, match):
    with pytest.raises(DataValidationError, match=match):
        load_source("cdnow", path=write(tmp_path, [LINES[0], line] + LINES[1:]))


def test_empty_file(tmp_path):
    with pytest.raises(DataValidationError, match="no purchase lines"):
        load_source("cdnow", path=write(tmp_path, []))


@pytest.mark.parametrize("options, match", [
    ({"history_end": "1996-12-01"}, "does not fit the data"),
    ({"history_end": "1998-05-01"}, "does not fit the data"),  # window would end after the last date
    ({"history_end": "soon"}, "history_end must be a date"),
    ({"response_days": 0}, "response_days"),
    ({"min_purchases": -1}, "min_purchases"),
    ({"max_customers": 0}, "max_customers"),
])
def test_bad_options(txt, options, match):
    with pytest.raises(ValueError, match=match):
        load_source("cdnow", path=txt, **options)


def test_no_customer_left(txt):
    with pytest.raises(DataValidationError, match=r"no customer has >= 9 purchases before history_end"):
        load_source("cdnow", path=txt, min_purchases=9)


# ---------------------------------------------------------------- views and the datamodule


def test_purchase_view_and_datamodule(tmp_path):
    from deepromo.data.datamodule import PromoDataModule
    from deepromo.data.views import build_view

    rng = np.random.default_rng(0)
    days = pd.Timestamp("1997-01-01") + pd.to_timedelta(rng.integers(0, 540, 600), unit="D")
    lines = [f"{rng.integers(1, 81):05d} {day:%Y%m%d} {rng.integers(1, 4)} {rng.random() * 40:.2f}" for day in days]
    data = load_source("cdnow", path=write(tmp_path, lines), min_purchases=0)
    view = build_view("purchase", data)
    assert len(view) == len(data.customers) and view.sequences is not None
    assert view.sequences.lengths().sum() == int((data.events["ts"] < data.history_end).sum())
    dm = PromoDataModule(view, batch_size=16, seed=0)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["seq_mask"].any() and batch["cat"].shape[1] == 1  # cohort
    # no campaign: the customer view builds, but its 'engaged' label has one class
    with pytest.raises(DataValidationError, match="single class"):
        PromoDataModule(build_view("customer", data))
