"""gat serving: rank 10,000 offers for one customer, and 100,000 customers in batch, from precomputed vectors.

After training, ``GATOfferRanker`` keeps a vector per customer and per offer (``set_serving_graph``), so a
request is ``rank_offers([customer_id], k)``: one [10,000 x 65] matrix-vector product, the business-rule
filter (``deepromo.decide.offer_rules``: stock, brand face-value limits, budget, contact cap, explicit
exclusions; compiled once with ``model.compile_rules`` and reused by every request) and a top-k. Latency does not depend on the weights, so the vectors are random (the
model's width: hidden 64 + the offer bias). Targets: p99 <= 2 ms per request with the rules (issue 17; the
paper's target is 10,000 SKUs < 200 ms), and the 100,000-customer batch on the same rules. A request of a few
customers ranks in numpy (``NUMPY_RANK_ROWS``), the batch in chunks of ``--batch-size`` on the torch path.

Reference in the same process: scoring one customer by re-running the GNN over a graph instead of reading
the precomputed vectors (one full-graph pass of the default model on a graph of the same size as the
Complete Journey test graph would take seconds: measured here on a synthetic graph of ``--ref-edges`` edges).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import markdown_table, write_results  # noqa: E402


def serving_model(n_customers: int, n_offers: int, hidden: int = 64, seed: int = 0):
    """A default-width gat with random serving vectors for ``n_customers`` x ``n_offers``."""
    from deepromo.data.graph.build import EDGE_TYPES, NODE_TYPES, reverse_edge_type
    from deepromo.data.spec import FeatureSpec, GraphSpec
    from deepromo.models.gat import GATOfferRanker

    edges = tuple(e for et in EDGE_TYPES for e in (et, reverse_edge_type(et)))
    spec = FeatureSpec(graph=GraphSpec(
        node_types=NODE_TYPES, edge_types=edges,
        num_nodes={"customer": n_customers, "product": 2000, "offer": n_offers},
        cat_cardinalities={"customer": [6], "product": [11, 31], "offer": [8]},
        num_features={"customer": 20, "product": 1, "offer": 1}))
    model = GATOfferRanker(spec, hidden=hidden).eval()
    gen = torch.Generator().manual_seed(seed)
    model.customer_vectors = torch.randn(n_customers, hidden + 1, generator=gen)
    model.customer_vectors[:, -1] = 1.0
    model.offer_vectors = torch.randn(n_offers, hidden + 1, generator=gen)
    model.customer_ids = torch.arange(n_customers, dtype=torch.long) + 1_000_000
    model.offer_ids = torch.arange(n_offers, dtype=torch.long) + 50_000
    return model, spec


def rules_for(model, seed: int = 0) -> tuple[dict, pd.DataFrame]:
    """Constraint data: 5 % of products out of stock, face-value limits on 3 of 20 brands, a budget, 1 % of
    customers at their contact cap, 10,000 explicit exclusions."""
    rng = np.random.default_rng(seed)
    offer_ids = model.offer_ids.numpy()
    customer_ids = model.customer_ids.numpy()
    n_o = len(offer_ids)
    offers = pd.DataFrame({"offer_id": offer_ids, "product_id": rng.integers(0, 2000, n_o),
                           "face_value": rng.uniform(1, 20, n_o).round(2),
                           "brand": [f"brand{b}" for b in rng.integers(0, 20, n_o)]})
    rules = {
        "stock": pd.DataFrame({"product_id": np.arange(2000), "stock": np.where(rng.random(2000) < 0.05, 0, 10)}),
        "brand_limits": {"brand0": 5.0, "brand1": 8.0, "brand2": 10.0},
        "budget_left": 18.0,
        "contacts": pd.DataFrame({"customer_id": rng.choice(customer_ids, len(customer_ids) // 100, replace=False),
                                  "contacts": 3}),
        "contact_cap": 3,
        "exclusions": pd.DataFrame({"customer_id": rng.choice(customer_ids, 10_000),
                                    "offer_id": rng.choice(offer_ids, 10_000)}),
    }
    return rules, offers


def latency(fn, requests: int) -> dict:
    times = []
    for i in range(requests + 10):
        start = time.perf_counter()
        fn(i)
        if i >= 10:  # warm-up
            times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "requests": requests}


def reference_gnn_pass(spec, n_edges: int, seed: int = 0) -> float:
    """Seconds of one full-graph forward of the default gat over a random graph with ``n_edges`` edges per
    direction spread over the edge types (what ranking without precomputed vectors costs per refresh)."""
    from torch_geometric.data import HeteroData

    from deepromo.models.gat import GATOfferRanker

    gen = torch.Generator().manual_seed(seed)
    g = spec.graph
    graph = HeteroData()
    for nt in g.node_types:
        n = g.num_nodes[nt]
        graph[nt].num_nodes = n
        graph[nt].x_cat = torch.stack([torch.randint(c, (n,), generator=gen) for c in g.cat_cardinalities[nt]], 1)
        graph[nt].x_num = torch.randn(n, g.num_features[nt], generator=gen)
    per_type = n_edges // 4
    for et in g.edge_types:
        src, _, dst = et
        graph[et].edge_index = torch.stack([torch.randint(g.num_nodes[src], (per_type,), generator=gen),
                                            torch.randint(g.num_nodes[dst], (per_type,), generator=gen)])
        graph[et].edge_attr = torch.rand(per_type, 1, generator=gen)
    model = GATOfferRanker(spec)
    start = time.perf_counter()
    model.embed(graph)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offers", type=int, default=10_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=2048, help="customers per chunk of the batch run")
    parser.add_argument("--ref-edges", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = one serving worker)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]  # other processes on the machine distort p99 first

    model, spec = serving_model(args.customers, args.offers)
    rules, offers = rules_for(model)
    start = time.perf_counter()
    compiled = model.compile_rules(rules, offers)  # once per change of the rule data
    compile_s = time.perf_counter() - start
    ids = model.customer_ids.numpy()
    rng = np.random.default_rng(1)
    picks = rng.choice(ids, args.requests + 10)
    rows = [
        {"case": "one customer, no rules", **latency(lambda i: model.rank_offers(picks[i:i + 1], args.k),
                                                     args.requests)},
        {"case": "one customer, all rules (compiled)", **latency(
            lambda i: model.rank_offers(picks[i:i + 1], args.k, rules=compiled), args.requests)},
        {"case": "one customer, all rules (raw, compiled per request)", **latency(
            lambda i: model.rank_offers(picks[i:i + 1], args.k, rules=rules, offers=offers), args.requests)},
    ]
    start = time.perf_counter()
    top, _ = model.rank_offers(ids, args.k, rules=compiled, batch_size=args.batch_size)
    batch_s = time.perf_counter() - start
    batch = {"customers": len(ids), "offers": args.offers, "k": args.k, "compile_rules_s": compile_s,
             "seconds": batch_s,
             "customers_per_s": len(ids) / batch_s, "capped_customers_with_no_offer": int((top[:, 0] == -1).sum())}
    ref_s = reference_gnn_pass(spec, args.ref_edges)
    target_ms = 2.0
    p99 = rows[1]["p99_ms"]
    load = (load, os.getloadavg()[0])
    verdict = {"target_p99_ms": target_ms, "paper_target_ms": 200.0, "p99_with_rules_ms": p99,
               "meets_target": bool(p99 <= target_ms), "target_over_p99": target_ms / p99,
               "gnn_pass_s": ref_s, "gnn_pass_over_p99": ref_s * 1000 / p99, "load_1min_start_end": load}
    print(markdown_table(rows))
    print(markdown_table([batch]))
    print(verdict)
    if not args.no_write:
        path = write_results(
            "gat_serving", "gat serving: 10,000 offers per request, 100,000 customers in batch",
            [("Per request (one customer, top-10)", markdown_table(rows)),
             ("Batch (all customers, top-10, with the rules)", markdown_table([batch])),
             ("Verdict", f"p99 with the rules {p99:.2f} ms against the {target_ms:g} ms target "
                         f"({'met' if verdict['meets_target'] else 'missed'}, "
                         f"{verdict['target_over_p99']:.1f}x headroom; the paper's target is 200 ms). "
                         f"One full-graph GNN pass over a random graph of {args.ref_edges:,} edges each way takes "
                         f"{ref_s:.2f} s, {verdict['gnn_pass_over_p99']:.0f}x a served request: precomputing "
                         f"the vectors is what makes per-request ranking cheap. torch threads: {args.threads}; "
                         f"1-minute load average {load[0]:.2f} at the start, {load[1]:.2f} at the end.")],
            {"per_request": rows, "batch": batch, "verdict": verdict, "args": vars(args)})
        print(f"written {path}")


if __name__ == "__main__":
    main()
