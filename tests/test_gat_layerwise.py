"""gat's layer-wise, chunked inference equals the full-graph pass: every conv variant, chunk size and node type,
with isolated nodes and node types no edge reaches; evaluation metrics and explanations are unchanged."""

import pytest
import torch
from torch_geometric.data import HeteroData

from deepromo.data.graph.build import build_offer_graph
from deepromo.data.spec import FeatureSpec
from deepromo.models.base import HyperParameterError
from deepromo.models.gat import GATOfferRanker
from deepromo.models.gat.layerwise import LayerwiseInference, chunk_bounds
from deepromo.tasks import get_task, model_datamodule

from test_gat import planted_world

# the shared test parameters plus the other convolution, one head, three layers, id vectors on every type, one layer
VARIANTS = [*GATOfferRanker.test_params,
            {"conv": "gat", "hidden": 16, "heads": 2, "fanout": [5, 3]},
            {"conv": "gatv2", "hidden": 8, "heads": 1, "layers": 3, "fanout": [4, 3, 2],
             "id_embeddings": ["customer", "product", "offer"]},
            {"conv": "gat", "hidden": 12, "heads": 4, "layers": 1, "fanout": [5], "id_embeddings": []}]
# one node per chunk, a few nodes, many chunks, one chunk holding the whole graph
CHUNKS = [1, 5, 64, 10**9]
FLOAT32 = {"rtol": 1e-4, "atol": 2e-5}


@pytest.fixture(scope="module")
def offer_graph(tiny_world):
    return build_offer_graph(tiny_world)


def random_model(og, seed: int = 0, **params) -> GATOfferRanker:
    """An untrained gat with every parameter drawn at random (non-zero biases, so a missed bias shows)."""
    model = GATOfferRanker(FeatureSpec(graph=og.graph_spec()), **params)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    return model.eval()


def full_and_chunked(model, graph, chunk: int):
    """(full-graph states, layer-wise states): node type -> [N_t, hidden] after every layer."""
    with torch.no_grad():
        h0 = model.encode_nodes(graph)
        full = model.message_passing(graph, h0)
        model.hparams.inference_chunk_edges = chunk
        chunked = model.propagate(graph, h0)
    return full, chunked


def test_the_tiny_graph_has_isolated_customers_and_hubs(offer_graph):
    graph = offer_graph.graph_test
    n = graph["customer"].num_nodes
    touched = torch.zeros(n, dtype=torch.bool)
    for et in graph.edge_types:
        if et[2] == "customer":
            touched[graph[et].edge_index[1]] = True
    assert 0 < int((~touched).sum()) < n  # some customers receive no message at all
    # products with more incoming edges than the budget of 5: chunks of one node that overrun it
    assert int(torch.bincount(graph["customer", "purchased", "product"].edge_index[1]).max()) > 5


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("params", VARIANTS, ids=lambda p: f"{p.get('conv', 'gatv2')}-h{p['heads']}-"
                                                           f"L{p.get('layers', 2)}")
def test_layerwise_equals_the_full_graph_pass(offer_graph, params, chunk):
    model = random_model(offer_graph, **params)
    graph = offer_graph.graph_test
    full, chunked = full_and_chunked(model, graph, chunk)
    assert set(chunked) == {"customer", "product", "offer"}
    for nt in full:
        torch.testing.assert_close(chunked[nt], full[nt], **FLOAT32, msg=lambda m: f"{nt}: {m}")
    plan = LayerwiseInference(graph, model.edge_types, chunk)
    n_chunks = {nt: len(bounds) for nt, bounds in plan.chunks.items()}
    if chunk == 1:  # every destination node is a chunk of its own
        assert n_chunks == {nt: graph[nt].num_nodes for nt in n_chunks}
    if chunk == 10**9:
        assert set(n_chunks.values()) == {1}
    u, v = model.embed(graph)  # the serving / evaluation path uses the same states
    with torch.no_grad():
        u_full, v_full = model.vectors(full)
    torch.testing.assert_close(u, u_full, **FLOAT32)
    torch.testing.assert_close(v, v_full, **FLOAT32)


def without_edges_into(graph, node_type: str) -> HeteroData:
    """A copy of ``graph`` whose edge types ending at ``node_type`` hold no edges (kept as empty stores)."""
    out = graph.clone()
    for et in out.edge_types:
        if et[2] == node_type:
            out[et].edge_index = out[et].edge_index[:, :0]
            out[et].edge_attr = out[et].edge_attr[:0]
    return out


@pytest.mark.parametrize("chunk", [1, 64])
@pytest.mark.parametrize("conv", ["gatv2", "sage"])
def test_a_node_type_no_edge_reaches_keeps_its_state(offer_graph, conv, chunk):
    model = random_model(offer_graph, conv=conv, hidden=16, heads=2, fanout=[5, 3])
    graph = without_edges_into(offer_graph.graph_test, "offer")
    full, chunked = full_and_chunked(model, graph, chunk)
    with torch.no_grad():
        h0 = model.encode_nodes(graph)
    torch.testing.assert_close(chunked["offer"], h0["offer"], rtol=0, atol=0)  # no message, no LayerNorm
    for nt in full:
        torch.testing.assert_close(chunked[nt], full[nt], **FLOAT32, msg=lambda m: f"{nt}: {m}")


def test_chunk_bounds_by_hand():
    cost = torch.tensor([1, 3, 1, 1, 5, 1])
    # costs ahead of each node 0 1 4 5 6 11 -> chunk 0 0 1 1 1 2 of a budget of 4
    assert chunk_bounds(cost, 4) == [(0, 2), (2, 5), (5, 6)]
    assert chunk_bounds(cost, 1) == [(i, i + 1) for i in range(6)]
    assert chunk_bounds(cost, 100) == [(0, 6)]
    assert chunk_bounds(torch.zeros(0, dtype=torch.long), 4) == []
    for start, end in chunk_bounds(cost, 4):  # within budget but for the chunk's last node
        assert int(cost[start:end - 1].sum()) < 4


def test_chunks_hold_every_edge_once_and_stay_within_budget(offer_graph):
    graph = offer_graph.graph_test
    model = random_model(offer_graph, **GATOfferRanker.test_params[0])
    plan = LayerwiseInference(graph, model.edge_types, 64)
    for nt, bounds in plan.chunks.items():
        assert bounds[0][0] == 0 and bounds[-1][1] == graph[nt].num_nodes
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        degree = sum(torch.bincount(graph[et].edge_index[1], minlength=graph[nt].num_nodes)
                     for et in plan.incoming[nt])
        assert plan.chunk_cost[nt] <= 64 + int(degree.max())
        for et in plan.incoming[nt]:
            seen = []
            for start, end in bounds:
                sources, edge_index, _ = plan.chunk_edges_of(et, start, end)
                if sources is None:
                    sources = torch.arange(graph[et[0]].num_nodes)
                seen.append(torch.stack([sources[edge_index[0]], edge_index[1] + start]))
            got = torch.cat(seen, dim=1)
            want = graph[et].edge_index
            key = lambda ei: torch.sort(ei[0] * graph[nt].num_nodes + ei[1]).values  # noqa: E731
            assert torch.equal(key(got), key(want)), et


def test_ranking_metrics_and_validation_scores_are_unchanged_when_chunked():
    # test_gat's planted world: a time split with > 40 query customers per split
    dm = model_datamodule(GATOfferRanker, planted_world(), batch_size=64, seed=0,
                          params=GATOfferRanker.test_params[0])
    model = random_model(dm.graph, **GATOfferRanker.test_params[0])
    task = get_task("ranking")
    tables, splits, val_scores = {}, {}, {}
    batch = dm.eval_batch("val")
    for chunk in (None, 7):
        model.hparams.inference_chunk_edges = chunk
        splits[chunk] = model.predict_split(dm, "test")
        tables[chunk] = task.evaluate({"gat": task.model_outputs(model, dm, ["test"])}, dm, "test").table["gat"]
        with torch.inference_mode():  # what validation_step runs: forward on the split's whole graph
            val_scores[chunk] = model(batch)["rank_scores"]
    assert splits[None]["scores"].shape[0] > 40
    torch.testing.assert_close(torch.from_numpy(splits[7]["scores"]), torch.from_numpy(splits[None]["scores"]),
                               **FLOAT32)
    torch.testing.assert_close(val_scores[7], val_scores[None], **FLOAT32)
    assert set(tables[7]) == set(tables[None]) and tables[7]
    for metric, value in tables[None].items():
        assert tables[7][metric] == pytest.approx(value, abs=1e-9), metric


def test_explanation_scores_are_the_embedded_scores(offer_graph):
    model = random_model(offer_graph, **GATOfferRanker.test_params[0])
    model.hparams.inference_chunk_edges = 5
    og = offer_graph
    report = model.explain(og.node_ids["customer"][3], og.graph_test, og.node_ids, k=3)
    u, v = model.embed(og.graph_test)
    top = torch.topk(u[3] @ v.T, 3)
    assert [o["offer_id"] for o in report["offers"]] == [int(og.node_ids["offer"][i]) for i in top.indices]
    assert [o["score"] for o in report["offers"]] == pytest.approx(top.values.tolist(), abs=1e-3)


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "big"])
def test_bad_chunk_size_is_named(offer_graph, bad):
    with pytest.raises(HyperParameterError, match=r"inference_chunk_edges must be an integer >= 1 or null"):
        GATOfferRanker(FeatureSpec(graph=offer_graph.graph_spec()), inference_chunk_edges=bad)
