"""Offer-ranking baselines for the gat ranker: random, popularity, exposure-aware popularity, BPR matrix factorisation.

Each is ``fit_predict(datamodule, seed)`` on an ``OfferGraphDataModule`` and returns what the ranking
evaluator reads for the test split: ``{"customers": [Q] query customer nodes, "scores": [Q, n_offers]}``.
They learn from the (customer, offer) redemptions known before the test cut: the redeemed edges of the
test graph plus the training pairs (the same pairs the graph model sees), never a test pair.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from deepromo.data.graph import EXPOSED, REDEEMED
from deepromo.data.graph_sampling import edge_keys
from deepromo.models.baselines import register_baseline

SPLIT = "test"


def known_pairs(dm, split: str = SPLIT) -> torch.Tensor:
    """[2, P] unique (customer, offer) redemptions known before ``split``'s cut (graph edges + training pairs)."""
    og = dm.graph
    pairs = torch.cat([og.graph(split)[REDEEMED].edge_index, og.pairs_train], dim=1)
    n_o = len(og.node_ids["offer"])
    keys = torch.unique(edge_keys(pairs[0], pairs[1], n_o))
    return torch.stack([keys // n_o, keys % n_o])


def _popularity(dm, split: str) -> np.ndarray:
    pairs = known_pairs(dm, split)
    return np.bincount(pairs[1].numpy(), minlength=len(dm.graph.node_ids["offer"])).astype(np.float64)


@register_baseline("random")
def random_ranking_baseline(dm, seed: int = 0) -> dict:
    """Offers in a random order per customer: the chance level (HitRate@k about k / offers)."""
    customers, _, _ = dm.ranking_targets(SPLIT)
    rng = np.random.default_rng(seed)
    return {"customers": customers.numpy(), "scores": rng.random((len(customers), len(dm.graph.node_ids["offer"])))}


@register_baseline("popularity")
def popularity_baseline(dm, seed: int = 0) -> dict:
    """Every customer gets the offers ranked by how many customers redeemed them before the cut."""
    customers, _, _ = dm.ranking_targets(SPLIT)
    pop = _popularity(dm, SPLIT)
    return {"customers": customers.numpy(), "scores": np.tile(pop, (len(customers), 1))}


@register_baseline("exposed_popularity")
def exposed_popularity_baseline(dm, seed: int = 0) -> dict:
    """Offers the customer was exposed to before the cut first, each group ordered by popularity: a strong
    rule where redemptions need the coupon in hand (as in Complete Journey)."""
    customers, _, _ = dm.ranking_targets(SPLIT)
    pop = _popularity(dm, SPLIT)
    exposed = np.zeros((len(customers), len(pop)), dtype=bool)
    ei = dm.graph.graph(SPLIT)[EXPOSED].edge_index
    q = torch.searchsorted(customers, ei[0]).clamp(max=max(len(customers) - 1, 0))
    hit = (customers[q] == ei[0]) if len(customers) else torch.zeros(0, dtype=torch.bool)
    exposed[q[hit].numpy(), ei[1][hit].numpy()] = True
    return {"customers": customers.numpy(), "scores": exposed * (pop.max() + 1.0) + pop[None, :]}


@register_baseline("bpr_mf")
def bpr_mf_baseline(dm, seed: int = 0, dim: int = 32, epochs: int = 300, lr: float = 0.02,
                    l2: float = 1e-4, negatives: int = 4) -> dict:
    """BPR matrix factorisation (Rendle et al. 2009): score = p_c . q_o + b_o, trained full-batch with Adam on
    the known redemptions and uniformly sampled negatives; customers without a redemption keep their small
    random vector, so for them it falls back to the learned offer bias (popularity)."""
    og = dm.graph
    n_c, n_o = len(og.node_ids["customer"]), len(og.node_ids["offer"])
    pairs = known_pairs(dm, SPLIT)
    gen = torch.Generator().manual_seed(int(seed))
    p = (0.01 * torch.randn(n_c, dim, generator=gen)).requires_grad_()
    q = (0.01 * torch.randn(n_o, dim, generator=gen)).requires_grad_()
    b = torch.zeros(n_o, requires_grad=True)
    opt = torch.optim.Adam([p, q, b], lr=lr)
    c, o = pairs
    for _ in range(epochs):
        neg = torch.randint(n_o, (len(c), negatives), generator=gen)
        pos_s = (p[c] * q[o]).sum(-1) + b[o]
        neg_s = torch.einsum("bd,bnd->bn", p[c], q[neg]) + b[neg]
        reg = l2 * (p[c].pow(2).sum() + q[o].pow(2).sum() + q[neg].pow(2).sum()) / len(c)
        loss = -F.logsigmoid(pos_s[:, None] - neg_s).mean() + reg
        opt.zero_grad()
        loss.backward()
        opt.step()
    customers, _, _ = dm.ranking_targets(SPLIT)
    with torch.no_grad():
        scores = p[customers] @ q.T + b[None, :]
    return {"customers": customers.numpy(), "scores": scores.numpy()}
