"""The market world (deepromo.data.market): public-range marginals, each structure present when on and absent when
off, exact ground truth, and clear errors for bad switches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepromo.data.errors import UserInputError
from deepromo.data.market.params import STRUCTURES, MarketStructures
from deepromo.data.market.world import market_marginals
from deepromo.data.sources.synthetic import generate_world


@pytest.fixture(scope="module")
def market():
    return generate_world(20000, seed=0)


def _off(name: str, n: int = 8000, seed: int = 2):
    return generate_world(n, seed=seed, structures={name: False})


@pytest.mark.parametrize("seed", [0, 1])
def test_default_marginals_in_public_ranges(seed, market):
    world = market if seed == 0 else generate_world(20000, seed=seed)
    m = market_marginals(world)
    # the go-to-market paper's Table 5 ranges (seeds/002): conversion 5-15 %, offer use 10-30 %, 30-day repurchase
    # 20-50 %; weekend/weekday between CDNOW's 0.98 and 1.5 (CJ 1.2, weekend offers add to it)
    assert 0.05 <= m["conversion_7d_after_contact"] <= 0.15, m
    assert 0.10 <= m["offer_use"] <= 0.30, m
    assert 0.20 <= m["repurchase_30d"] <= 0.50, m
    assert 0.95 <= m["weekend_weekday_ratio"] <= 1.6, m
    assert 1.0 <= m["redemption_delay_median_days"] <= 16.0, m


def test_market_world_has_the_graph_logs_and_truth(market):
    meta = market.meta
    assert meta["world"] == "market" and meta["structures"] == MarketStructures().as_dict()
    for key, columns in (("offer_exposures", ["customer_id", "offer_id", "ts", "propensity"]),
                         ("redemptions", ["customer_id", "offer_id", "ts"]),
                         ("offer_products", ["offer_id", "product_id"])):
        assert list(meta[key].columns) == columns and len(meta[key]) > 0, key
    off = market.offers.set_index("offer_id")
    prod = market.products.set_index("product_id")
    links = meta["offer_products"]
    assert (prod.loc[links["product_id"], "category"].to_numpy() == off.loc[links["offer_id"], "category"].to_numpy()).all()
    redeemed = market.events[market.events["offer_id"] >= 0]
    assert set(redeemed["event_type"].astype(str)) == {"purchase", "campaign_click"}
    truth = market.truth
    affinity = truth[[c for c in truth.columns if c.startswith("affinity_")]].to_numpy()
    assert np.allclose(affinity.sum(axis=1), 1.0)
    curves = truth[[f"true_p_{v:g}" for v in market.incentive_levels]].to_numpy()
    assert (np.diff(curves, axis=1) >= 0).all() and (curves >= 0).all() and (curves <= 1).all()


def test_true_curves_match_the_drawn_outcomes(market):
    truth, ex, oc = market.truth, market.exposures, market.outcomes
    level = ex["incentive"].to_numpy()
    p = np.select([level == v for v in market.incentive_levels],
                  [truth[f"true_p_{v:g}"].to_numpy() for v in market.incentive_levels])
    y = oc["purchased"].to_numpy()
    se = np.sqrt(np.sum(p * (1 - p))) / len(p)
    assert abs(y.mean() - p.mean()) < 4 * se
    caused = truth["bought_because_of_campaign"].to_numpy() == 1
    assert (ex["treatment"].to_numpy()[caused] == 1).all() and (y[caused] == 1).all()
    assert (truth["next_purchase_organic"].to_numpy()[caused] == 0).all()
    intent = truth["intent"].astype(str).to_numpy()
    gain = truth["true_p_20"] - truth["true_p_0"]
    assert gain[intent == "prompted"].mean() > 3 * gain[intent == "organic"].mean()


def test_affinity_drives_redemptions(market):
    rd = market.meta["redemptions"]
    ox = market.meta["offer_exposures"]
    truth = market.truth.set_index("customer_id")
    cats = market.offers.set_index("offer_id")["category"]

    def affinity_of(frame):
        col = "affinity_" + cats.loc[frame["offer_id"]].astype(str)
        values = truth.reindex(columns=sorted(set(col))).loc[frame["customer_id"]].to_numpy()
        order = {c: i for i, c in enumerate(sorted(set(col)))}
        return values[np.arange(len(frame)), [order[c] for c in col]]

    # redeemed offers sit in categories the customer likes far more than the offers merely received
    assert np.median(affinity_of(rd)) > 2 * np.median(affinity_of(ox))
    flat = _off("affinity")
    t = flat.truth
    assert np.allclose(t.filter(like="affinity_").std(axis=0), 0.0)
    assert np.allclose(t.filter(like="type_pref_").to_numpy(), 1.0)


def _pooled_gap_cv(world) -> float:
    pur = world.events[world.events["event_type"] == "purchase"]
    day = np.floor(pur["ts"]).astype(int)
    frame = pd.DataFrame({"c": pur["customer_id"].to_numpy(), "d": day.to_numpy()}).drop_duplicates()
    frame["gap"] = frame.groupby("c")["d"].diff()
    gaps = frame.dropna()
    gaps = gaps[gaps.groupby("c")["gap"].transform("size") >= 4]
    normalised = gaps["gap"] / gaps.groupby("c")["gap"].transform("mean")
    return float(normalised.std())


def test_cycles_make_purchases_regular():
    on, off = generate_world(8000, seed=2), _off("cycles")
    assert (on.truth["cycle_shape"] == 1.3).all() and (off.truth["cycle_shape"] == 1.0).all()
    assert _pooled_gap_cv(on) < _pooled_gap_cv(off) - 0.03


def test_fatigue_delay_churn_prices_switches():
    on = generate_world(8000, seed=2)
    assert on.truth["fatigue_at_end"].max() > 0 and _off("fatigue").truth["fatigue_at_end"].max() == 0
    delay_on = market_marginals(on)["redemption_delay_median_days"]
    delay_off = market_marginals(_off("delayed_feedback"))["redemption_delay_median_days"]
    assert delay_off < delay_on - 1.0
    assert on.truth["churned"].mean() > 0.2 and _off("churn").truth["churned"].sum() == 0
    prices_off = _off("prices")
    assert (prices_off.truth.filter(like="elasticity_").to_numpy() == 0).all()
    assert (prices_off.products["stock_capacity"] == -1).all() and (on.products["stock_capacity"] > 0).all()
    assert (on.truth.filter(like="elasticity_").to_numpy() < 0).all()


def test_all_structures_off_is_still_a_valid_market():
    none = generate_world(2000, seed=3, structures="none")
    assert none.meta["structures"] == {name: False for name in STRUCTURES}
    assert len(none.events) > 0 and len(none.meta["redemptions"]) > 0


@pytest.mark.parametrize("structures, needle", [
    ({"cycle": False}, "cycle"),
    ({"cycles": "no"}, "cycles"),
    (["affinity", "pricing"], "pricing"),
    (3, "structures"),
])
def test_bad_structures_raise(structures, needle):
    with pytest.raises(UserInputError, match=needle):
        generate_world(100, seed=0, structures=structures)


def test_snapshot_world_takes_no_structures():
    with pytest.raises(UserInputError, match="world='market'"):
        generate_world(100, seed=0, world="snapshot", structures={"cycles": False})
    with pytest.raises(UserInputError, match="world must be"):
        generate_world(100, seed=0, world="old")
