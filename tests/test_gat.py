"""gat: neighbour sampling, leak-free batches, learning a planted structure, serving with constraints, explanations."""

import json

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch

import deepromo
from deepromo.data.graph.build import REDEEMED, reverse_edge_type
from deepromo.data.graph.datamodule import OfferGraphDataModule
from deepromo.data.graph.sampling import HeteroNeighbourSampler, edge_keys
from deepromo.data.tables import CanonicalData, DataValidationError
from deepromo.tasks import get_task, model_datamodule
from deepromo.tasks.ranking import first_hit_ranks
from deepromo.metrics.ranking import ranking_report
from deepromo.models.gat import GATOfferRanker

from conftest import tiny_job

GROUPS, OFFERS_PER_GROUP, PRODUCTS_PER_GROUP = 4, 10, 5


def planted_world(n_customers: int = 400, seed: int = 0) -> CanonicalData:
    """Customers of 4 hidden groups buy the products of their group's category and redeem one offer (some day in
    100) on those products; every offer is equally popular, and only the purchase graph tells the groups apart:
    a customer evaluated after the cut has no earlier redemption for matrix factorisation to learn from."""
    rng = np.random.default_rng(seed)
    group = rng.integers(GROUPS, size=n_customers)
    customers = pd.DataFrame({"customer_id": np.arange(n_customers), "age": rng.normal(40, 10, n_customers)})
    n_products = GROUPS * PRODUCTS_PER_GROUP
    products = pd.DataFrame({"product_id": np.arange(n_products),
                             "category": [f"cat{p // PRODUCTS_PER_GROUP}" for p in range(n_products)],
                             "brand": [f"b{p % 3}" for p in range(n_products)], "price": 2.0})
    n_offers = GROUPS * OFFERS_PER_GROUP
    offer_group = np.arange(n_offers) // OFFERS_PER_GROUP
    offers = pd.DataFrame({"offer_id": np.arange(n_offers), "offer_type": "pct", "face_value": 1.0,
                           "timing": "now",
                           "product_id": offer_group * PRODUCTS_PER_GROUP + rng.integers(PRODUCTS_PER_GROUP, size=n_offers)})
    ev_rows, red_rows = [], []
    for c in range(n_customers):
        for _ in range(6):
            ev_rows.append((c, rng.uniform(0, 100), "purchase",
                            group[c] * PRODUCTS_PER_GROUP + rng.integers(PRODUCTS_PER_GROUP)))
        red_rows.append((c, group[c] * OFFERS_PER_GROUP + rng.integers(OFFERS_PER_GROUP), rng.uniform(0, 100)))
    events = pd.DataFrame(ev_rows, columns=["customer_id", "ts", "event_type", "product_id"])
    events["amount"] = 3.0
    exposures = pd.DataFrame({"customer_id": np.arange(n_customers), "ts": 100.0, "treatment": 0,
                              "incentive": 0.0, "propensity": 1.0, "offer_id": -1, "engaged": 0})
    outcomes = pd.DataFrame({"customer_id": np.arange(n_customers), "purchased": 0})
    redemptions = pd.DataFrame(red_rows, columns=["customer_id", "offer_id", "ts"])
    return CanonicalData(customers=customers, events=events, exposures=exposures, outcomes=outcomes,
                         products=products, offers=offers, history_end=100.0, name="planted",
                         meta={"redemptions": redemptions})


@pytest.fixture(scope="module")
def planted():
    world = planted_world()
    pl.seed_everything(0, verbose=False)
    dm = model_datamodule(GATOfferRanker, world, batch_size=64, seed=0, params={"fanout": [8, 4], "num_negatives": 4})
    model = GATOfferRanker.from_datamodule(dm, hidden=32, heads=2, fanout=[8, 4], lr=0.01, dropout=0.0)
    trainer = pl.Trainer(max_epochs=12, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False)
    trainer.fit(model, datamodule=dm)
    return world, dm, model, trainer


def test_planted_world_splits_by_time(planted):
    _, dm, _, _ = planted
    assert dm.graph.split_mode == "time"
    assert all(len(dm.indices[s]) > 40 for s in ("train", "val", "test"))


def test_gat_learns_the_planted_groups_and_beats_popularity_mf_and_lightgcn(planted):
    _, dm, model, trainer = planted
    history = trainer.callback_metrics
    assert float(history["train/pairwise_accuracy"]) > 0.8
    task = get_task("ranking")
    preds = {"gat": task.model_outputs(model, dm, ["test"])}
    for name in ("popularity", "bpr_mf", "lightgcn"):
        preds[name] = task.run_baseline(name, dm, ["test"], seed=0)
    table = task.evaluate(preds, dm, "test").table
    # knowing the group puts its 10 offers in the top 10: hit rate near 1, against 10/40 without it
    assert table["gat"]["hit_rate_at_10"] > 0.85, table
    for baseline in ("popularity", "bpr_mf", "lightgcn"):  # none of them sees the purchases that reveal the group
        assert table["gat"]["ndcg_at_10"] > table[baseline]["ndcg_at_10"] + 0.15, table
        assert table[baseline]["hit_rate_at_10"] < 0.5, table


def test_sampled_subgraph_gives_full_graph_outputs_when_fanout_covers_every_degree(planted):
    _, dm, model, _ = planted
    graph = dm.graph.graph_train
    max_degree = max(int(torch.bincount(graph[et].edge_index[1]).max()) for et in graph.edge_types
                     if graph[et].edge_index.numel())
    seeds = {"customer": torch.tensor([3, 17, 42]), "offer": torch.tensor([0, 11, 39])}
    sub = HeteroNeighbourSampler(graph, [max_degree, max_degree]).sample(seeds, torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        full = model.vectors(model.message_passing(graph, model.encode_nodes(graph)))
        part = model.vectors(model.message_passing(sub, model.encode_nodes(sub)))
    torch.testing.assert_close(part[0][:3], full[0][seeds["customer"]], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(part[1][:3], full[1][seeds["offer"]], rtol=1e-4, atol=1e-5)


def test_sampler_respects_fanout_and_exclusions(planted):
    _, dm, _, _ = planted
    graph = dm.graph.graph_train
    sampler = HeteroNeighbourSampler(graph, [2])
    seeds = torch.arange(30)
    ei = graph[REDEEMED].edge_index
    banned = ei[:, torch.isin(ei[0], seeds)]
    rev = reverse_edge_type(REDEEMED)
    exclude = {REDEEMED: edge_keys(banned[0], banned[1], 40), rev: edge_keys(banned[1], banned[0], 400)}
    sub = sampler.sample({"customer": seeds}, torch.Generator().manual_seed(1), exclude)
    for et in sub.edge_types:
        if et[2] == "customer" and sub[et].edge_index.numel():
            assert int(torch.bincount(sub[et].edge_index[1]).max()) <= 2, et  # fanout 2 per node and edge type
    got = sub[rev].edge_index
    glob = torch.stack([sub["offer"].n_id[got[0]], sub["customer"].n_id[got[1]]])
    assert not torch.isin(edge_keys(glob[0], glob[1], 400), exclude[rev]).any()
    assert torch.equal(sub["customer"].n_id[:30], seeds)  # seeds first, in order
    with pytest.raises(ValueError, match="fanout"):
        HeteroNeighbourSampler(graph, [0])


def test_training_batches_hide_their_own_labels(planted):
    _, dm, _, _ = planted
    og = dm.graph
    known = torch.cat([og.pairs("train"), og.seen_pairs("train")], dim=1)  # what negatives must avoid
    known_keys = torch.unique(edge_keys(known[0], known[1], dm.num_offers))
    for batch in list(dm.train_dataloader())[:4]:
        sub = batch["graph"]
        c = sub["customer"].n_id[batch["query"]]
        o = sub["offer"].n_id[batch["pos"]]
        for et, (a, b) in ((REDEEMED, ("customer", "offer")), (reverse_edge_type(REDEEMED), ("offer", "customer"))):
            e = sub[et].edge_index
            msg = set(zip(sub[a].n_id[e[0]].tolist(), sub[b].n_id[e[1]].tolist()))
            pairs = set(zip(c.tolist(), o.tolist())) if a == "customer" else set(zip(o.tolist(), c.tolist()))
            assert not msg & pairs
        assert batch["neg"].shape == (len(c), dm.num_negatives)
        assert not torch.isin(edge_keys(c[:, None], sub["offer"].n_id[batch["neg"]], 40), known_keys).all()


def test_no_self_loops_on_bipartite_edges(planted):
    _, _, model, _ = planted
    convs = [conv for layer in model.convs for conv in layer.values()]
    assert len(convs) == 2 * 8 and all(conv.add_self_loops is False for conv in convs)


def test_rank_offers_is_the_dot_product_order_and_respects_rules(planted):
    world, dm, model, _ = planted
    customers = np.array([0, 5, 9])
    ids, scores = model.rank_offers(customers, k=5)
    pairs = pd.DataFrame({"customer_id": np.repeat(customers, 40), "offer_id": np.tile(np.arange(40), 3)})
    full = model.predict_frame(pairs)["score"].to_numpy().reshape(3, 40)
    np.testing.assert_array_equal(ids, np.argsort(-full, axis=1, kind="stable")[:, :5])
    np.testing.assert_allclose(scores, np.sort(full, axis=1)[:, ::-1][:, :5], rtol=1e-6)
    # rules as data: a product out of stock, a brand face-value limit, an explicit exclusion, a contact cap
    offers = world.offers.merge(world.products[["product_id", "brand"]], on="product_id")
    offers.loc[offers["offer_id"] == ids[0, 0], "face_value"] = 5.0
    out_of_stock = [int(world.offers.set_index("offer_id").loc[ids[1, 0], "product_id"])]
    rules = {"stock": out_of_stock, "brand_limits": {b: 2.0 for b in offers["brand"].unique()},
             "exclusions": pd.DataFrame({"customer_id": [9], "offer_id": [int(ids[2, 1])]}),
             "contacts": pd.DataFrame({"customer_id": [5], "contacts": [3]}), "contact_cap": 3}
    got, got_scores = model.rank_offers(customers, k=5, rules=rules, offers=offers)
    banned_products = offers.loc[offers["product_id"].isin(out_of_stock), "offer_id"].tolist()
    assert ids[0, 0] not in got[0] and not set(banned_products) & set(got[0]) and not set(banned_products) & set(got[2])
    assert ids[2, 1] not in got[2]
    assert (got[1] == -1).all() and np.isneginf(got_scores[1]).all()  # customer 5 has reached the contact cap
    with pytest.raises(DataValidationError, match=r"customer_id value\(s\) \[9999\]"):
        model.rank_offers([0, 9999], k=3)


def test_reload_keeps_serving_vectors_of_a_refreshed_graph(planted, tmp_path):
    _, dm, model, _ = planted
    model.set_serving_graph(dm.graph.graph_test, dm.graph.node_ids)
    before = model.rank_offers([1, 2, 3], k=4)
    model.save(tmp_path / "gat.ckpt")
    loaded = deepromo.load_model(tmp_path / "gat.ckpt")
    after = loaded.rank_offers([1, 2, 3], k=4)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_allclose(before[1], after[1])
    with pytest.raises(DataValidationError, match=r"lacks column\(s\) \['offer_id'\]"):
        loaded.predict_frame(pd.DataFrame({"customer_id": [1]}))


def test_explanation_weights_are_attention_distributions(planted):
    _, dm, model, _ = planted
    og = dm.graph
    report = model.explain(3, og.graph_test, og.node_ids, k=3, top_neighbours=1000)
    assert report["customer_id"] == 3 and len(report["offers"]) == 3
    scores = [o["score"] for o in report["offers"]]
    assert scores == sorted(scores, reverse=True)
    listings = [report["attention"], *(o["attention"] for o in report["offers"])]
    assert "product__rev_purchased__customer" in report["attention"]
    for listing in listings:
        for neighbours in listing.values():
            assert abs(sum(n["weight"] for n in neighbours) - 1.0) < 1e-3  # softmax over a node's incoming edges
    sage = GATOfferRanker(dm.spec, conv="sage")
    with pytest.raises(ValueError, match="conv 'sage' has none"):
        sage.explain(3, og.graph_test, og.node_ids)


def test_ranking_evaluator_and_first_hit_ranks_by_hand():
    scores = np.array([[0.9, 0.5, 0.5, 0.1], [0.2, 0.3, 0.4, 0.8]])
    relevant = np.array([[False, True, False, False], [True, False, False, False]])
    exclude = np.array([[False, False, False, False], [False, False, False, True]])
    # query 0: relevant item 1 ties with item 2 (pessimistic: after it) -> rank 3; query 1: item 3 excluded -> rank 3
    np.testing.assert_array_equal(first_hit_ranks(scores, relevant, exclude), [3.0, 3.0])
    report = ranking_report(scores, relevant, k=2, exclude=exclude)
    assert report["hit_rate@2"] == 0.0 and report["mrr"] == pytest.approx(1 / 3)


def test_popularity_counts_known_redemptions(planted):
    _, dm, _, _ = planted
    out = get_task("ranking").run_baseline("popularity", dm, ["test"])["test"]
    known = torch.cat([dm.graph.graph_test[REDEEMED].edge_index, dm.graph.pairs_train], dim=1)
    counts = np.bincount(np.unique(known.T.numpy(), axis=0)[:, 1], minlength=40)
    np.testing.assert_array_equal(out["scores"][0], counts)
    assert (out["scores"] == out["scores"][0]).all()


def test_bad_hyper_parameters_and_views_are_named(planted, tiny_world):
    _, dm, _, _ = planted
    with pytest.raises(ValueError, match="conv must be one of"):
        GATOfferRanker(dm.spec, conv="gcn")
    with pytest.raises(ValueError, match="fanout needs one entry per layer"):
        GATOfferRanker(dm.spec, layers=3)
    with pytest.raises(ValueError, match="divisible by heads"):
        GATOfferRanker(dm.spec, hidden=30, heads=4)
    from deepromo.data.views import build_view

    with pytest.raises(DataValidationError, match="carries no offer graph"):
        OfferGraphDataModule(build_view("customer", tiny_world))


# --- through train.py's job, the MLflow registry and file scoring (tiny sizes) ---
GAT_METHODS = {"gat", "random", "popularity", "exposed_popularity", "bpr_mf", "lightgcn", "graphsage"}


def test_gat_job_writes_explanation_and_ranks(tmp_path_factory):
    results, out = tiny_job("gat", tmp_path_factory)
    written = json.loads((out / "metrics.json").read_text())
    assert set(written["test"]) == GAT_METHODS
    for method, row in written["test"].items():
        assert set(row) == {"ndcg_at_10", "mrr", "hit_rate_at_10", "recall_at_10"}, method
        assert all(0.0 <= v <= 1.0 for v in row.values()), (method, row)
    assert written["n_test"] > 0 and "val/ndcg_at_10" in written["val"]
    assert (out / "hit_rate_at_k.png").stat().st_size > 10_000
    explanation = json.loads((out / "explanation.json").read_text())
    assert explanation["offers"] and explanation["attention"]
    model = deepromo.load_model(out / "model.ckpt")
    assert model.name == "gat" and model.preprocessor is None
    ids, scores = model.rank_offers(model.customer_ids[:3].numpy(), k=5)
    assert ids.shape == (3, 5) and (np.diff(scores, axis=1) <= 0).all()


def test_registered_gat_scores_pairs_and_files(tmp_path_factory, tmp_path, mlflow_store):
    import mlflow

    from deepromo.serving import mlflow_model
    from deepromo.serving.batch_scoring import score_file

    _, out = tiny_job("gat", tmp_path_factory)
    model = deepromo.load_model(out / "model.ckpt")
    pairs = pd.DataFrame({"customer_id": model.customer_ids[:4].numpy(), "offer_id": model.offer_ids[:4].numpy()})
    expected = model.predict_frame(pairs)["score"].to_numpy()
    info = mlflow_model.log_model(model, out / "model.ckpt", pairs)
    scored = mlflow.pyfunc.load_model(info.model_uri).predict(pairs)
    np.testing.assert_allclose(scored["score"], expected, rtol=1e-6)
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    score_file(out / "model.ckpt", tmp_path / "pairs.csv", tmp_path / "scores.parquet", progress=False)
    np.testing.assert_allclose(pd.read_parquet(tmp_path / "scores.parquet")["score"], expected, rtol=1e-6)
    pairs[["customer_id"]].to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(deepromo.data.tables.DataValidationError, match=r"\['offer_id'\]"):
        score_file(out / "model.ckpt", tmp_path / "bad.csv", tmp_path / "bad.parquet", progress=False)
