"""Ranking: which offers to show each customer (the offer-graph view, served as graph batches).

Outputs of one method on one split: ``{"customers": [Q] query customer nodes, "scores": [Q, n_offers]}``.
Metrics: NDCG@k, MRR, HitRate@k and Recall@k over the split's customers with a redemption; offers they
redeemed before the split's cut are left out (they are known, not predictions). The baselines learn from
the (customer, offer) redemptions known before the scored split's cut: that split's redeemed graph edges
plus the training pairs (the same pairs the graph model sees), never a pair of the scored split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deepromo.data.errors import UserInputError
from deepromo.data.graph.build import EXPOSED, REDEEMED
from deepromo.data.graph.sampling import edge_keys
from deepromo.data.tables import DataValidationError
from deepromo.tasks.base import Evaluation, Task


def first_hit_ranks(scores: np.ndarray, relevant: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """[Q] rank (1 = top) of each query's best-ranked relevant item among its non-excluded items, with
    pessimistic ties (as ``ranking_report``); ``inf`` for queries without a relevant item. For the plots."""
    s = np.where(exclude, -np.inf, scores.astype(np.float64))
    best = np.where(relevant & ~exclude, s, -np.inf).max(axis=1, initial=-np.inf)
    beaten = ((s >= best[:, None]) & ~exclude & ~(relevant & (s == best[:, None]))).sum(axis=1)
    return np.where((relevant & ~exclude).any(axis=1), beaten + 1.0, np.inf)


class RankingTask(Task):
    name = "ranking"
    view = "offer_graph"
    k = 10  # cut-off of NDCG@k, HitRate@k, Recall@k
    curve_k = 20  # the HitRate@1..curve_k plot

    def make_datamodule(self, view, batch_size=256, split=None, seed=0, options=None):
        from deepromo.data.graph.datamodule import OfferGraphDataModule

        if split is not None:
            raise DataValidationError(
                f"data.split={split!r} does not apply to the offer_graph view: it splits (customer, offer) pairs by "
                "its own leak-free rule. Leave data.split null and choose data.view_options.split: auto | time | "
                "customer (or data.view_options.split_days)")
        return OfferGraphDataModule(view, batch_size=batch_size, seed=seed, **(options or {}))

    def outputs(self, arrays, dm, split):
        return {"customers": np.asarray(arrays["customers"]), "scores": np.asarray(arrays["scores"])}

    def evaluate(self, predictions, dm, split="test"):
        from deepromo.metrics.ranking import ranking_report

        customers, relevant, exclude = (t.numpy() for t in dm.ranking_targets(split))
        table, curves, n_queries = {}, {}, 0
        for method, by_split in predictions.items():
            out = by_split[split]
            if not np.array_equal(np.asarray(out["customers"]), customers):
                raise UserInputError(f"method '{method}': its scores cover other query customers than split '{split}'")
            report = ranking_report(out["scores"], relevant, k=self.k, exclude=exclude)
            n_queries = int(report.pop("n_queries"))
            report.pop("n_skipped")
            table[method] = {name.replace("@", "_at_"): float(v) for name, v in report.items()}
            ranks = first_hit_ranks(np.asarray(out["scores"]), relevant, exclude)
            ranks = ranks[np.isfinite(ranks)]
            curves[method] = np.array([np.mean(ranks <= j) for j in range(1, self.curve_k + 1)])
        return Evaluation(table=table, target=f"offers redeemed after the cut ({relevant.shape[1]} offers ranked, "
                                              "known redemptions left out)", n_test=n_queries, curves=curves)

    def plots(self, evaluation, dm, run_dir):
        from deepromo.reporting.plots import plot_hit_rate_curves

        path = plot_hit_rate_curves(evaluation.curves, Path(run_dir) / "hit_rate_at_k.png",
                                    title=f"Test split (n={evaluation.n_test} customers): HitRate@k")
        return {"hit_rate_at_k": path}


TASK = RankingTask()


def known_pairs(dm, split: str) -> torch.Tensor:
    """[2, P] unique (customer, offer) redemptions known before ``split``'s cut (graph edges + training pairs)."""
    og = dm.graph
    pairs = torch.cat([og.graph(split)[REDEEMED].edge_index, og.pairs_train], dim=1)
    n_o = len(og.node_ids["offer"])
    keys = torch.unique(edge_keys(pairs[0], pairs[1], n_o))
    return torch.stack([keys // n_o, keys % n_o])


def popularity(dm, split: str) -> np.ndarray:
    """[n_offers] how many customers redeemed each offer before ``split``'s cut."""
    pairs = known_pairs(dm, split)
    return np.bincount(pairs[1].numpy(), minlength=len(dm.graph.node_ids["offer"])).astype(np.float64)


def query_customers(dm, split: str) -> torch.Tensor:
    return dm.ranking_targets(split)[0]


@TASK.baseline("random")
def random_ranking_baseline(dm, splits, seed: int = 0) -> dict:
    """Offers in a random order per customer: the chance level (HitRate@k about k / offers)."""
    rng = np.random.default_rng(seed)
    n_offers = len(dm.graph.node_ids["offer"])
    out = {}
    for split in splits:
        customers = query_customers(dm, split)
        out[split] = {"customers": customers.numpy(), "scores": rng.random((len(customers), n_offers))}
    return out


@TASK.baseline("popularity")
def popularity_baseline(dm, splits, seed: int = 0) -> dict:
    """Every customer gets the offers ranked by how many customers redeemed them before the cut."""
    out = {}
    for split in splits:
        customers = query_customers(dm, split)
        out[split] = {"customers": customers.numpy(), "scores": np.tile(popularity(dm, split), (len(customers), 1))}
    return out


@TASK.baseline("exposed_popularity")
def exposed_popularity_baseline(dm, splits, seed: int = 0) -> dict:
    """Offers the customer was exposed to before the cut first, each group ordered by popularity: a strong
    rule where redemptions need the coupon in hand (as in Complete Journey)."""
    out = {}
    for split in splits:
        customers = query_customers(dm, split)
        pop = popularity(dm, split)
        exposed = np.zeros((len(customers), len(pop)), dtype=bool)
        edges = dm.graph.graph(split)[EXPOSED].edge_index
        row = torch.searchsorted(customers, edges[0]).clamp(max=max(len(customers) - 1, 0))
        hit = (customers[row] == edges[0]) if len(customers) else torch.zeros(0, dtype=torch.bool)
        exposed[row[hit].numpy(), edges[1][hit].numpy()] = True
        out[split] = {"customers": customers.numpy(), "scores": exposed * (pop.max() + 1.0) + pop[None, :]}
    return out


EMBEDDING_SEARCH_SPACE = {  # the embedding baselines' tunable settings (bpr_mf; lightgcn adds its depth)
    "dim": {"type": "categorical", "choices": [16, 32, 64, 128]},
    "lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True},
    "l2": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
}


@TASK.baseline("bpr_mf", search_space=EMBEDDING_SEARCH_SPACE)
def bpr_mf_baseline(dm, splits, seed: int = 0, dim: int = 32, epochs: int = 300, lr: float = 0.02,
                    l2: float = 1e-4, negatives: int = 4) -> dict:
    """BPR matrix factorisation (Rendle et al. 2009): score = p_c . q_o + b_o, trained full-batch with Adam on
    the redemptions known before each scored split's cut and uniformly sampled negatives; customers without a
    redemption keep their small random vector, so for them it falls back to the learned offer bias (popularity)."""
    og = dm.graph
    n_c, n_o = len(og.node_ids["customer"]), len(og.node_ids["offer"])
    out = {}
    for split in splits:
        gen = torch.Generator().manual_seed(int(seed))
        p = (0.01 * torch.randn(n_c, dim, generator=gen)).requires_grad_()
        q = (0.01 * torch.randn(n_o, dim, generator=gen)).requires_grad_()
        b = torch.zeros(n_o, requires_grad=True)
        opt = torch.optim.Adam([p, q, b], lr=lr)
        c, o = known_pairs(dm, split)
        for _ in range(epochs):
            neg = torch.randint(n_o, (len(c), negatives), generator=gen)
            pos_s = (p[c] * q[o]).sum(-1) + b[o]
            neg_s = torch.einsum("bd,bnd->bn", p[c], q[neg]) + b[neg]
            reg = l2 * (p[c].pow(2).sum() + q[o].pow(2).sum() + q[neg].pow(2).sum()) / len(c)
            loss = -F.logsigmoid(pos_s[:, None] - neg_s).mean() + reg
            opt.zero_grad()
            loss.backward()
            opt.step()
        customers = query_customers(dm, split)
        with torch.no_grad():
            out[split] = {"customers": customers.numpy(), "scores": (p[customers] @ q.T + b[None, :]).numpy()}
    return out


@TASK.baseline("lightgcn", search_space={**EMBEDDING_SEARCH_SPACE,
                                          "layers": {"type": "int", "low": 1, "high": 4}})
def lightgcn_baseline(dm, splits, seed: int = 0, dim: int = 32, layers: int = 2, epochs: int = 200,
                      lr: float = 0.01, l2: float = 1e-4) -> dict:
    """PyG's LightGCN (He et al. 2020) on the customer–offer graph of the known redemptions: embeddings smoothed
    over ``layers`` hops, trained full-batch with its BPR loss and uniformly sampled negative offers; no
    features, no other edge types (the graph-collaborative-filtering peer of gat)."""
    from torch_geometric.nn.models import LightGCN

    og = dm.graph
    n_c, n_o = len(og.node_ids["customer"]), len(og.node_ids["offer"])
    out = {}
    for split in splits:
        c, o = known_pairs(dm, split)
        edges = torch.stack([torch.cat([c, o + n_c]), torch.cat([o + n_c, c])])  # both directions, offers after
        torch.manual_seed(int(seed))
        model = LightGCN(n_c + n_o, dim, num_layers=layers)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(int(seed))
        for _ in range(epochs):
            neg = torch.randint(n_o, (len(c),), generator=gen) + n_c
            pos_rank = model(edges, torch.stack([c, o + n_c]))
            neg_rank = model(edges, torch.stack([c, neg]))
            loss = model.recommendation_loss(pos_rank, neg_rank, node_id=torch.unique(torch.cat([c, o + n_c, neg])),
                                             lambda_reg=l2)
            opt.zero_grad()
            loss.backward()
            opt.step()
        customers = query_customers(dm, split)
        with torch.no_grad():
            embedding = model.get_embedding(edges)
            out[split] = {"customers": customers.numpy(), "scores": (embedding[customers] @ embedding[n_c:].T).numpy()}
    return out
