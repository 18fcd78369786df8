"""gat embedding memory: layer-wise, chunked inference over a 1M-customer graph against the full-graph pass.

An untrained gat of the default config size (gatv2, hidden 64, 4 heads, 2 layers, offer id vectors) embeds every
node of a synthetic customer-product-offer graph (``model.embed``: the path of evaluation and of the serving
vectors). The graph is generated directly with numpy: the synthetic world's catalogue ratios (200 products and
84 offers per 20,000 customers), about 15 distinct purchased products, 5 exposed offers and 1 redeemed offer per
customer (Zipf-like popularity, so products are hubs), 9 % customers without any edge; every edge type has its
reverse, as in ``deepromo.data.graph.build``.

Each (size, method) runs in a fresh subprocess. It builds the graph, then resets the kernel's peak-RSS mark
(``/proc/self/clear_refs``), so "peak GB" is the resident peak during ``embed`` alone, graph and libraries
included, and "embed GB" is that peak minus the resident memory before it. The full-graph pass
(``inference_chunk_edges: null``) runs at a size only when its memory, extrapolated linearly in edges from the
previous size, fits in half of the memory available; beside it the layer-wise vectors' largest difference from
it is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import markdown_table, peak_rss_gb, write_results  # noqa: E402

CUSTOMERS_PER_PRODUCT = 100    # the synthetic world: 200 products ...
CUSTOMERS_PER_OFFER = 20_000 / 84  # ... and 84 offers for 20,000 customers
PRODUCTS_PER_CUSTOMER = 15     # mean distinct products a customer bought
EXPOSED_PER_CUSTOMER = 5       # mean distinct offers a customer received
REDEEMED_SHARE = 0.2           # share of the received offers redeemed
ISOLATED_SHARE = 0.09          # customers without any edge (the synthetic world: 1,817 of 20,000)


def default_chunk() -> int:
    """The model's default ``inference_chunk_edges``."""
    from deepromo.models.gat import GATOfferRanker

    return int(GATOfferRanker.defaults["inference_chunk_edges"])


def zipf_choice(rng, n_items: int, size: int, exponent: float = 0.8):
    """``size`` item indices drawn with probability ~ 1 / (rank + 10) ** exponent (a few popular hubs)."""
    p = 1.0 / (np.arange(n_items) + 10.0) ** exponent
    return rng.choice(n_items, size=size, p=p / p.sum())


def pairs(rng, n_customers: int, n_items: int, mean: float, active):
    """Distinct (customer, item) pairs sorted by (customer, item): Poisson(mean) draws per active customer."""
    counts = rng.poisson(mean, n_customers) * active
    customers = np.repeat(np.arange(n_customers), counts)
    key = np.unique(customers * np.int64(n_items) + zipf_choice(rng, n_items, len(customers)))
    return key // n_items, key % n_items


def synthetic_graph(n_customers: int, seed: int = 0):
    """(HeteroData, GraphSpec) of a customer-product-offer graph at the synthetic world's ratios (module doc)."""
    import torch
    from torch_geometric.data import HeteroData

    from deepromo.data.graph.build import APPLIES_TO, EXPOSED, NODE_TYPES, PURCHASED, REDEEMED, reverse_edge_type
    from deepromo.data.spec import GraphSpec

    rng = np.random.default_rng(seed)
    sizes = {"customer": n_customers, "product": max(1, n_customers // CUSTOMERS_PER_PRODUCT),
             "offer": max(1, int(round(n_customers / CUSTOMERS_PER_OFFER)))}
    cat = {"customer": [6, 5, 4, 3], "product": [11, 31], "offer": [8, 4]}  # the tiny world's code columns
    num = {"customer": 23, "product": 1, "offer": 1}
    graph = HeteroData()
    for nt in NODE_TYPES:
        n = sizes[nt]
        graph[nt].num_nodes = n
        graph[nt].x_cat = torch.from_numpy(np.stack([rng.integers(0, c, n) for c in cat[nt]], 1))
        graph[nt].x_num = torch.from_numpy(rng.standard_normal((n, num[nt]), dtype=np.float32))
    active = rng.random(n_customers) >= ISOLATED_SHARE
    exposed = pairs(rng, n_customers, sizes["offer"], EXPOSED_PER_CUSTOMER, active)
    redeemed = rng.random(len(exposed[0])) < REDEEMED_SHARE
    offers = np.arange(sizes["offer"])
    edges = {PURCHASED: pairs(rng, n_customers, sizes["product"], PRODUCTS_PER_CUSTOMER, active),
             EXPOSED: exposed, REDEEMED: (exposed[0][redeemed], exposed[1][redeemed]),
             APPLIES_TO: (offers, rng.integers(0, sizes["product"], len(offers)))}
    for et, (src, dst) in edges.items():
        index = torch.from_numpy(np.stack([src, dst]).astype(np.int64))
        attr = torch.from_numpy(np.log1p(rng.random((len(src), 1), dtype=np.float32)))
        for stored, ei in ((et, index), (reverse_edge_type(et), index.flip(0))):
            graph[stored].edge_index = ei
            graph[stored].edge_attr = attr
    spec = GraphSpec(node_types=NODE_TYPES, edge_types=tuple(graph.edge_types), num_nodes=sizes,
                     cat_cardinalities=cat, num_features=num)
    return graph, spec


def resident_gb() -> float:
    """Current resident memory of this process, GiB (Linux /proc)."""
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 2**20


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (less sensitive than wall time to other load)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def available_gb() -> float:
    return int(re.search(r"MemAvailable:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) / 2**20


def worker(n_customers: int, chunk: int | None, threads: int, seed: int, compare: bool) -> dict:
    """One measurement (run in a fresh process): graph build, then ``embed`` time and memory."""
    import gc

    import torch

    from deepromo.data.spec import FeatureSpec
    from deepromo.models.gat import GATOfferRanker

    torch.set_num_threads(threads)
    start = time.perf_counter()
    graph, spec = synthetic_graph(n_customers, seed)
    build_s = time.perf_counter() - start
    model = GATOfferRanker(FeatureSpec(graph=spec), inference_chunk_edges=chunk)
    gc.collect()
    before = resident_gb()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark: the peak below is embed's
    cpu_start, start = cpu_seconds(), time.perf_counter()
    u, v = model.embed(graph)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    peak = peak_rss_gb()
    n_edges = sum(int(graph[et].edge_index.shape[1]) for et in graph.edge_types)
    out = {"customers": n_customers, "products": spec.num_nodes["product"], "offers": spec.num_nodes["offer"],
           "edges": n_edges, "method": "full graph" if chunk is None else f"layer-wise {chunk:,}",
           "chunk_edges": chunk, "build_s": build_s, "embed_s": seconds, "embed_cpu_s": cpu, "rss_before_gb": before,
           "peak_gb": peak, "embed_gb": peak - before, "threads": threads}
    if compare:  # the layer-wise vectors against these full-graph ones
        model.hparams.inference_chunk_edges = default_chunk()
        u2, v2 = model.embed(graph)
        out["max_abs_diff_vs_layerwise"] = float(max((u - u2).abs().max(), (v - v2).abs().max()))
        out["max_abs_vector"] = float(max(u.abs().max(), v.abs().max()))
    return out


def measure(n_customers: int, chunk: int | None, args, compare: bool = False) -> dict:
    """``worker`` in a fresh interpreter with ``args.threads`` threads everywhere."""
    env = {**os.environ, **{k: str(args.threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                          "OPENBLAS_NUM_THREADS")}}
    cmd = [sys.executable, __file__, "--worker", str(n_customers), "--chunk", str(chunk or 0),
           "--threads", str(args.threads), "--seed", str(args.seed)] + (["--compare"] if compare else [])
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode != 0:
        raise RuntimeError(f"worker {n_customers} / chunk {chunk} failed ({done.returncode}): {done.stderr[-2000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000, 1_000_000],
                        help="customers per graph, ascending (the full pass stops when it would not fit)")
    parser.add_argument("--chunks", type=int, nargs="+", default=[10_000, 500_000],
                        help="other chunk sizes tried at the middle size besides the default")
    parser.add_argument("--quick", action="store_true", help="sizes 20k and 100k, no other chunk sizes")
    parser.add_argument("--threads", type=int, default=1, help="torch / OpenMP threads of each measurement")
    parser.add_argument("--memory-share", type=float, default=0.5,
                        help="run the full pass only if its extrapolated peak fits in this share of MemAvailable")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--compare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.chunk or None, args.threads, args.seed, args.compare)))
        return
    if args.quick:
        args.sizes, args.chunks = [20_000, 100_000], []
    started = time.perf_counter()
    chunk = default_chunk()
    rows, skipped, full_prev = [], [], None
    for n in sorted(args.sizes):
        rows.append(measure(n, chunk, args))
        edges = rows[-1]["edges"]
        if full_prev is not None:
            predicted = rows[-1]["rss_before_gb"] + full_prev["embed_gb"] * edges / full_prev["edges"]
            if predicted > args.memory_share * available_gb():
                skipped.append({"customers": n, "edges": edges, "predicted_full_peak_gb": predicted,
                                "available_gb": available_gb()})
                full_prev = None
                continue
        if full_prev is not None or n == min(args.sizes):
            full_prev = measure(n, None, args, compare=True)
            rows.append(full_prev)
    middle = sorted(args.sizes)[len(args.sizes) // 2]
    chunk_rows = [measure(middle, c, args) for c in args.chunks]
    chunk_rows += [r for r in rows if r["customers"] == middle and r["chunk_edges"] == chunk]
    chunk_rows.sort(key=lambda r: r["chunk_edges"])
    total_s = time.perf_counter() - started

    largest = max((r for r in rows if r["chunk_edges"] == chunk), key=lambda r: r["customers"])
    per_size = {}
    for r in rows:
        per_size.setdefault(r["customers"], {})[r["method"]] = r
    growth = []
    for n, by in sorted(per_size.items()):
        lw = by[f"layer-wise {chunk:,}"]
        full = by.get("full graph")
        growth.append({"customers": n, "edges": lw["edges"], "layer-wise s": lw["embed_s"],
                       "layer-wise CPU s": lw["embed_cpu_s"], "layer-wise embed GB": lw["embed_gb"],
                       "layer-wise peak GB": lw["peak_gb"], "full s": full["embed_s"] if full else None,
                       "full CPU s": full["embed_cpu_s"] if full else None,
                       "full embed GB": full["embed_gb"] if full else None,
                       "full peak GB": full["peak_gb"] if full else None,
                       "full / layer-wise embed GB": full["embed_gb"] / lw["embed_gb"] if full else None})
    columns = ["customers", "products", "offers", "edges", "method", "embed_s", "embed_cpu_s", "rss_before_gb",
               "peak_gb", "embed_gb", "build_s"]
    verdict = (f"{largest['customers']:,} customers ({largest['edges']:,} directed edges): layer-wise embedding "
               f"in {largest['embed_s']:.0f} s ({largest['embed_cpu_s']:.0f} CPU s) at a peak of "
               f"{largest['peak_gb']:.2f} GB resident (graph and libraries {largest['rss_before_gb']:.2f} GB, "
               f"embedding {largest['embed_gb']:.2f} GB) on a "
               f"{'%.1f' % (os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GB machine, "
               f"{args.threads} thread(s).")
    if skipped:
        verdict += " Full-graph pass not run at " + ", ".join(
            f"{s['customers']:,} customers (extrapolated peak {s['predicted_full_peak_gb']:.1f} GB > "
            f"{args.memory_share:.0%} of {s['available_gb']:.1f} GB available)" for s in skipped) + "."
    diffs = [r for r in rows if "max_abs_diff_vs_layerwise" in r]
    if diffs:
        verdict += " Layer-wise vs full-graph vectors: largest absolute difference " + ", ".join(
            f"{r['max_abs_diff_vs_layerwise']:.1e} at {r['customers']:,} (vector entries up to "
            f"{r['max_abs_vector']:.1f})" for r in diffs) + "."
    verdict += f" Whole benchmark {total_s / 60:.1f} min."
    print(markdown_table(rows, columns))
    print(markdown_table(growth))
    print(markdown_table(chunk_rows, columns))
    print(verdict)
    if not args.no_write:
        path = write_results(
            "gat_embedding_memory", "gat embedding memory: layer-wise chunked inference vs the full-graph pass",
            [("Every measurement (fresh process each)", markdown_table(rows, columns)),
             ("Growth with the graph", markdown_table(growth)),
             (f"Chunk size at {middle:,} customers", markdown_table(chunk_rows, columns)),
             ("Verdict", verdict)],
            {"rows": rows, "growth": growth, "chunk_sizes": chunk_rows, "full_pass_skipped": skipped,
             "verdict": verdict, "total_s": total_s, "args": {k: v for k, v in vars(args).items()
                                                               if k not in ("worker", "chunk", "compare")}},
            command=" ".join(["python benchmarks/gat_embedding_memory.py", *sys.argv[1:]]))
        print(f"written {path}")


if __name__ == "__main__":
    main()
