"""Tests of the synthetic marketplace generator (deepromo.data.sources.synthetic), on both worlds where the
property is shared (the market default and the snapshot world); the market's own structures are tested in
tests/test_market_world.py."""

from __future__ import annotations

import resource
import time

import numpy as np
import pandas as pd
import pytest

from deepromo.data.sources import load_source
from deepromo.data.sources.synthetic import (
    SyntheticConfig,
    generate_world,
    generate_world_from_config,
    summarize_world,
)
from deepromo.data.tables import INTENTS, CanonicalData

LEVELS = (0.0, 5.0, 10.0, 15.0, 20.0)


@pytest.fixture(scope="module", params=["market", "snapshot"])
def world(request) -> CanonicalData:
    return generate_world(2000, seed=7, world=request.param)


@pytest.fixture(scope="module")
def big_world() -> CanonicalData:
    # large enough for stable empirical rates, still well under a second
    return generate_world(20000, seed=11)


@pytest.fixture(scope="module")
def big_snapshot() -> CanonicalData:
    return generate_world(20000, seed=11, world="snapshot")


def _assert_frames_equal(a: CanonicalData, b: CanonicalData) -> None:
    for name in ("customers", "events", "exposures", "outcomes", "products", "offers", "truth"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))


def test_same_seed_identical_different_seed_differs():
    a = generate_world(300, seed=1)
    b = generate_world(300, seed=1)
    _assert_frames_equal(a, b)
    frames = {k for k, v in a.meta.items() if isinstance(v, pd.DataFrame)}
    assert {k: v for k, v in a.meta.items() if k not in frames} == {k: v for k, v in b.meta.items() if k not in frames}
    for key in frames:
        pd.testing.assert_frame_equal(a.meta[key], b.meta[key])
    c = generate_world(300, seed=2)
    assert not a.events.equals(c.events)
    assert not a.outcomes.equals(c.outcomes)


def test_config_and_kwargs_paths_agree():
    cfg = SyntheticConfig(n_customers=300, seed=4, policy="biased", treat_share=0.6)
    a = generate_world_from_config(cfg)
    b = generate_world(cfg)
    c = generate_world(n_customers=300, seed=4, policy="biased", treat_share=0.6)
    d = load_source("synthetic", n_customers=300, seed=4, policy="biased", treat_share=0.6)
    for other in (b, c, d):
        _assert_frames_equal(a, other)


def test_column_contract(world):
    n = len(world.customers)
    H, R = world.history_end, world.response_days
    assert world.name == "synthetic" and world.incentive_levels == LEVELS
    assert H == 120.0 and R == 14.0

    cu = world.customers
    assert list(cu.columns) == ["customer_id", "age_band", "region", "membership", "device", "tenure_days"]
    assert cu["customer_id"].dtype == np.int64 and cu["customer_id"].is_unique
    for col in ("age_band", "region", "membership", "device"):
        assert isinstance(cu[col].dtype, pd.CategoricalDtype)
    assert cu["tenure_days"].dtype == np.float64
    assert cu["tenure_days"].between(30, 2000).all()

    ev = world.events
    market_columns = ["offer_id"] if world.meta["world"] == "market" else []
    assert list(ev.columns) == ["customer_id", "ts", "event_type", "product_id", "category", "amount",
                                "promo_active"] + market_columns
    assert ev["customer_id"].dtype == np.int64 and ev["ts"].dtype == np.float64
    assert ev["product_id"].dtype == np.int64 and ev["amount"].dtype == np.float64
    assert ev["promo_active"].dtype == np.int8
    assert isinstance(ev["event_type"].dtype, pd.CategoricalDtype)
    assert isinstance(ev["category"].dtype, pd.CategoricalDtype)
    assert set(ev["event_type"].unique()) == {"view", "cart", "purchase", "campaign_click"}
    assert ev["customer_id"].isin(cu["customer_id"]).all()
    assert ((ev["ts"] >= 0) & (ev["ts"] < H)).all()
    assert (ev["amount"] >= 0).all()
    purch = ev["event_type"] == "purchase"
    assert (ev.loc[purch, "amount"] > 0).all() and (ev.loc[~purch, "amount"] == 0).all()
    assert ev["promo_active"].isin([0, 1]).all() and ev["promo_active"].any()
    has_prod = ev["product_id"] >= 0
    assert ev.loc[has_prod, "product_id"].isin(world.products["product_id"]).all()
    assert (ev.loc[~has_prod, "category"] == "").all()
    # product categories agree with the product table
    pc = world.products.set_index("product_id")["category"]
    assert (ev.loc[has_prod, "category"].astype(str).to_numpy() == pc.loc[ev.loc[has_prod, "product_id"]].to_numpy()).all()

    ex = world.exposures
    assert len(ex) == n and ex["customer_id"].is_unique
    assert ex["ts"].dtype == np.float64 and ((ex["ts"] >= H) & (ex["ts"] < H + 1)).all()
    assert ex["treatment"].dtype == np.int8 and ex["engaged"].dtype == np.int8
    assert ex["offer_id"].dtype == np.int64
    assert ex["incentive"].isin(LEVELS).all()
    p = ex["propensity"]
    assert ((p > 0) & (p <= 1)).all()
    ctrl = ex["treatment"] == 0
    assert (ex.loc[ctrl, "incentive"] == 0).all() and (ex.loc[ctrl, "offer_id"] == -1).all()
    assert (ex.loc[ctrl, "engaged"] == 0).all()
    assert (ex.loc[~ctrl, "incentive"] > 0).all()
    # treated offers have the matching face value
    fv = world.offers.set_index("offer_id")["face_value"]
    assert (fv.loc[ex.loc[~ctrl, "offer_id"]].to_numpy() == ex.loc[~ctrl, "incentive"].to_numpy()).all()

    oc = world.outcomes
    assert list(oc.columns) == ["customer_id", "purchased", "revenue"]
    assert oc["purchased"].dtype == np.int8 and oc["revenue"].dtype == np.float64
    assert (oc["revenue"] >= 0).all()
    assert ((oc["revenue"] > 0) == (oc["purchased"] == 1)).all()

    pr = world.products
    assert list(pr.columns) == ["product_id", "category", "brand", "price"] + (
        ["stock_capacity"] if market_columns else [])
    assert len(pr) == 200 and (pr["price"] > 0).all() and pr["category"].nunique() == 10
    of = world.offers
    assert list(of.columns) == ["offer_id", "offer_type", "face_value", "timing"] + (
        ["category"] if market_columns else []) + ["product_id"]
    assert len(of) == 84 and of["offer_type"].nunique() == 7 and of["timing"].nunique() == 3
    assert set(of["face_value"]) == {5.0, 10.0, 15.0, 20.0}
    assert of["product_id"].isin(pr["product_id"]).all()
    assert not of[["offer_type", "face_value", "timing"]].duplicated().any()

    tr = world.truth
    for col in ["customer_id", "intent", "organic_rate", "sensitivity", "p0", "pmax",
                "true_p_0", "true_p_5", "true_p_10", "true_p_15", "true_p_20",
                "bought_because_of_campaign", "next_purchase_organic"]:
        assert col in tr.columns, col
    assert set(tr["intent"].astype(str)) <= set(INTENTS)
    assert ((tr["p0"] >= 0) & (tr["p0"] <= tr["pmax"]) & (tr["pmax"] < 1)).all()
    np.testing.assert_allclose(tr["true_p_0"], tr["p0"])
    # campaign-caused purchases only among treated buyers; organic purchase implies purchased
    caused = tr["bought_because_of_campaign"] == 1
    assert (ex.loc[caused, "treatment"] == 1).all() and (oc.loc[caused, "purchased"] == 1).all()
    assert (oc.loc[tr["next_purchase_organic"] == 1, "purchased"] == 1).all()


def test_history_spans_window(world):
    ts = world.events["ts"]
    assert ts.min() < 2.0 and ts.max() > 118.0
    assert world.history_end >= 120
    longer = generate_world(300, seed=1, history_days=200.5, response_days=7.0)
    assert longer.events["ts"].max() < 200.5 and longer.events["ts"].max() > 190
    assert (longer.exposures["ts"] >= 200.5).all() and longer.response_days == 7.0


def test_true_curves_monotone_and_concave(world):
    cols = [f"true_p_{lv:g}" for lv in LEVELS]
    P = world.truth[cols].to_numpy()
    d = np.diff(P, axis=1)
    assert (d >= -1e-12).all()
    assert (np.diff(d, axis=1) <= 1e-12).all()  # equally spaced levels: concave
    assert ((P >= 0) & (P <= 1)).all()


def test_intent_shares_close_to_requested():
    w = generate_world(2000, seed=3)
    got = w.truth["intent"].astype(str).value_counts(normalize=True)
    for k, target in zip(INTENTS, (0.20, 0.30, 0.50)):
        assert abs(got.get(k, 0.0) - target) < 0.04, (k, got.get(k, 0.0))
    w2 = generate_world(2000, seed=3, intent_shares=(0.5, 0.3, 0.2))
    got2 = w2.truth["intent"].astype(str).value_counts(normalize=True)
    for k, target in zip(INTENTS, (0.5, 0.3, 0.2)):
        assert abs(got2.get(k, 0.0) - target) < 0.04
    w3 = generate_world(500, seed=3, intent_shares=(0.5, 0.0, 0.5))
    assert "organic" not in set(w3.truth["intent"].astype(str))


def test_observed_attributes_predict_intent_partly(big_world):
    tr, cu = big_world.truth, big_world.customers
    organic = tr["intent"].astype(str) == "organic"
    by_member = organic.groupby(cu["membership"].astype(str)).mean()
    assert by_member["platinum"] > by_member["none"] + 0.1
    assert by_member["platinum"] < 0.95  # only partly


def test_randomised_policy_propensities(world):
    ex = world.exposures
    treated = ex["treatment"] == 1
    np.testing.assert_allclose(ex["propensity_treat"], 0.8)
    # treated: P(treat) * P(level | treated) = 0.8 / 4; control: 1 - 0.8
    np.testing.assert_allclose(ex.loc[treated, "propensity"], 0.8 / 4)
    np.testing.assert_allclose(ex.loc[~treated, "propensity"], 0.2)
    assert abs(treated.mean() - 0.8) < 0.04
    counts = ex.loc[treated, "incentive"].value_counts(normalize=True)
    assert (abs(counts - 0.25) < 0.05).all()


def test_biased_policy_propensities_follow_engagement():
    w = generate_world(3000, seed=5, policy="biased")
    ex, ev = w.exposures, w.events
    pt = ex["propensity_treat"].to_numpy()
    assert pt.std() > 0.05 and pt.min() >= 0.05 and pt.max() <= 0.95
    p = ex["propensity"].to_numpy()
    assert ((p > 0) & (p <= 1)).all()
    ctrl = ex["treatment"].to_numpy() == 0
    np.testing.assert_allclose(p[ctrl], 1 - pt[ctrl])
    recent = ev[(ev["ts"] >= w.history_end - 30) & (ev["event_type"].isin(["purchase", "view"]))]
    activity = recent.groupby("customer_id").size().reindex(ex["customer_id"], fill_value=0).to_numpy()
    assert np.corrcoef(np.log1p(activity), pt)[0, 1] > 0.5
    # treated share is higher among the engaged
    hi = activity > np.median(activity)
    assert ex["treatment"].to_numpy()[hi].mean() > ex["treatment"].to_numpy()[~hi].mean() + 0.05


def test_engaged_purchasers_mix_prompted_and_organic(big_world):
    # defaults: about half of the engaged purchasers are organic buyers (the noisy positives)
    s = summarize_world(big_world)
    assert 0.40 <= s["prompted_share_among_engaged_purchasers"] <= 0.60
    assert 0.05 <= s["conversion"] <= 0.20
    for k, target in zip(INTENTS, (0.20, 0.30, 0.50)):
        assert abs(s["intent_shares"][k] - target) < 0.02
    # fewer organic buyers who engage -> cleaner positives
    cleaner = summarize_world(generate_world(20000, seed=1, intent_shares=(0.25, 0.20, 0.55), organic_engage_rate=0.35))
    assert 0.6 <= cleaner["prompted_share_among_engaged_purchasers"] <= 0.8


def test_no_organic_engaged_purchasers_when_rate_zero():
    w = generate_world(2000, seed=9, organic_engage_rate=0.0)
    ex, oc, tr = w.exposures, w.outcomes, w.truth
    eng_buy = (ex["treatment"] == 1) & (ex["engaged"] == 1) & (oc["purchased"] == 1)
    assert eng_buy.sum() > 20
    assert (tr.loc[eng_buy, "intent"].astype(str) != "organic").all()
    assert (ex.loc[tr["intent"].astype(str) == "organic", "engaged"] == 0).all()


def test_incentive_drives_prompted_not_organic(big_world):
    ex, oc, tr = big_world.exposures, big_world.outcomes, big_world.truth
    intent = tr["intent"].astype(str)
    df = pd.DataFrame({"c": ex["incentive"], "y": oc["purchased"], "intent": intent})
    rate = df.groupby(["intent", "c"])["y"].mean()
    pr = rate["prompted"]
    assert pr[20.0] > pr[5.0] + 0.05 and pr[5.0] > pr[0.0] + 0.03
    assert np.corrcoef(df.loc[intent == "prompted", "c"], df.loc[intent == "prompted", "y"])[0, 1] > 0.1
    # organic: true curve nearly flat, and far flatter than prompted
    gain = tr["true_p_20"] - tr["true_p_0"]
    assert gain[intent == "organic"].mean() < gain[intent == "prompted"].mean() / 3
    assert gain[intent == "prompted"].mean() > 0.15
    org = rate["organic"]
    assert abs(org[20.0] - org[0.0]) < 0.1


def test_promo_and_clicks_carry_intent_signal(big_snapshot):
    ev, tr = big_snapshot.events, big_snapshot.truth
    intent = tr.set_index("customer_id")["intent"].astype(str)
    pur = ev[ev["event_type"] == "purchase"]
    promo_share = pur.groupby(intent.loc[pur["customer_id"]].to_numpy())["promo_active"].mean()
    assert promo_share["prompted"] > promo_share["organic"] + 0.15
    clicks = ev[ev["event_type"] == "campaign_click"].groupby("customer_id").size()
    clicks = clicks.reindex(intent.index, fill_value=0)
    per = clicks.groupby(intent.to_numpy()).mean()
    assert per["prompted"] > 3 * per["organic"]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_customers": 0}, "n_customers"),
        ({"n_customers": 2.5}, "n_customers"),
        ({"seed": -1}, "seed"),
        ({"history_days": 0}, "history_days"),
        ({"response_days": -3}, "response_days"),
        ({"policy": "greedy"}, "policy"),
        ({"treat_share": 1.5}, "treat_share"),
        ({"policy": "biased", "treat_share": 1.0}, "treat_share"),
        ({"incentive_levels": (5.0, 10.0)}, "incentive_levels"),
        ({"incentive_levels": (0.0, 10.0, 5.0)}, "incentive_levels"),
        ({"incentive_levels": (0.0,)}, "incentive_levels"),
        ({"incentive_levels": "abc"}, "incentive_levels"),
        ({"intent_shares": (0.5, 0.5, 0.5)}, "intent_shares"),
        ({"intent_shares": (1.2, -0.2, 0.0)}, "intent_shares"),
        ({"intent_shares": (0.5, 0.5)}, "intent_shares"),
        ({"organic_engage_rate": -0.1}, "organic_engage_rate"),
        ({"n_products": 0}, "n_products"),
        ({"n_offers": 0}, "n_offers"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    args = {"n_customers": 50, **kwargs}
    with pytest.raises(ValueError, match=name):
        generate_world(**args)
    with pytest.raises(ValueError, match=name):
        SyntheticConfig(**args).validate()


def test_small_catalogues_and_custom_levels():
    w = generate_world(300, seed=2, n_products=3, n_offers=5, incentive_levels=(0, 2.5, 7.5))
    assert w.incentive_levels == (0.0, 2.5, 7.5)
    assert "true_p_2.5" in w.truth.columns and "true_p_7.5" in w.truth.columns
    ex = w.exposures
    assert ex["incentive"].isin([0.0, 2.5, 7.5]).all()
    assert ex.loc[ex["treatment"] == 1, "offer_id"].between(0, 4).all()
    assert w.products["category"].nunique() == 3
    one = generate_world(1, seed=0)
    assert len(one.customers) == 1 and len(one.exposures) == 1


@pytest.mark.slow
def test_scales_to_200k_customers():
    t0 = time.perf_counter()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    w = generate_world(200_000, seed=0)
    dt = time.perf_counter() - t0
    rss_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    assert dt < 20, dt
    assert len(w.events) < 40 * 200_000
    assert rss_mb < 1500, rss_mb
