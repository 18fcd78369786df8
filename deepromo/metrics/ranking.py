"""Ranking metrics for offer recommendation: NDCG@k, MRR, HitRate@k, Recall@k (torchmetrics under the hood).

``ranking_report(scores, relevant, k=10, exclude=None)`` ranks each query's (customer's) items by score and
averages the torchmetrics retrieval functionals over the queries with at least one relevant, non-excluded
item:

ndcg@k      ``retrieval_normalized_dcg(top_k=k)``: sum over the top k of rel_i / log2(i + 1) (rank i from
            1), divided by the same sum for the ideal order.
mrr         ``retrieval_reciprocal_rank``: 1 / rank of the first relevant item, over the *whole* list.
hit_rate@k  ``retrieval_hit_rate(top_k=k)``: 1 if any relevant item is in the top k.
recall@k    ``retrieval_recall(top_k=k)``: relevant items in the top k / relevant items.

Excluded items (``exclude`` True: infeasible offers, or items already known from training) are removed
before ranking: they are never ranked and never count as relevant. A query whose relevant items are all
excluded, or that has none, is skipped (``n_skipped``).

Ties are broken deterministically *before* torchmetrics sees the scores (torch's descending argsort is
not stable, and torchmetrics' NDCG would average over ties while the other three would not):
``ties="pessimistic"`` (default) ranks relevant items after irrelevant items of the same score — a model
that cannot tell them apart gets no credit, so constant scores score worst; ``"optimistic"`` ranks them
first; ``"index"`` keeps item order (lower item index first). Within the same relevance, lower item index
first. The broken order is passed to torchmetrics as strictly decreasing per-query scores.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics.functional.retrieval import (
    retrieval_hit_rate,
    retrieval_normalized_dcg,
    retrieval_recall,
    retrieval_reciprocal_rank,
)

from deepromo.data.errors import UserInputError

TIES = ("pessimistic", "optimistic", "index")

__all__ = ["ranking_report", "TIES"]


def _tensor(x, name: str, dtype=None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as e:
            raise UserInputError(f"{name}: expected a numeric array-like, could not convert ({e})") from None
    return t if dtype is None else t.to(dtype)


def _flatten(scores, relevant, exclude):
    """(query, item, score, relevant) flat arrays of the kept (non-excluded) items, and the query count."""
    if isinstance(scores, (list, tuple)):
        if not isinstance(relevant, (list, tuple)) or len(relevant) != len(scores):
            raise UserInputError(f"relevant: expected a list with one entry per query like scores ({len(scores)}), got "
                             f"{type(relevant).__name__}"
                             + (f" of length {len(relevant)}" if isinstance(relevant, (list, tuple)) else ""))
        if exclude is not None and (not isinstance(exclude, (list, tuple)) or len(exclude) != len(scores)):
            raise UserInputError(f"exclude: expected a list with one entry per query like scores ({len(scores)})")
        q, i, s, r = [], [], [], []
        for n, sc in enumerate(scores):
            st = _tensor(sc, f"scores[{n}]", torch.float64).reshape(-1)
            rt = _tensor(relevant[n], f"relevant[{n}]").reshape(-1)
            if rt.shape != st.shape:
                raise UserInputError(f"relevant[{n}]: expected shape {tuple(st.shape)} like scores[{n}], "
                                 f"got {tuple(rt.shape)}")
            keep = torch.ones_like(rt, dtype=torch.bool)
            if exclude is not None:
                et = _tensor(exclude[n], f"exclude[{n}]").reshape(-1)
                if et.shape != st.shape:
                    raise UserInputError(f"exclude[{n}]: expected shape {tuple(st.shape)} like scores[{n}], "
                                     f"got {tuple(et.shape)}")
                keep = ~et.bool()
            idx = torch.nonzero(keep).reshape(-1)
            q.append(torch.full((idx.numel(),), n, dtype=torch.long))
            i.append(idx)
            s.append(st[idx])
            r.append(rt.bool()[idx])
        if not q:
            return (torch.zeros(0, dtype=torch.long),) * 2 + (torch.zeros(0, dtype=torch.float64),
                                                              torch.zeros(0, dtype=torch.bool)), 0
        return (torch.cat(q), torch.cat(i), torch.cat(s), torch.cat(r)), len(scores)
    st = _tensor(scores, "scores", torch.float64)
    if st.dim() != 2:
        raise UserInputError(f"scores: expected a [queries, items] 2-D array (or a list of 1-D arrays), "
                         f"got shape {tuple(st.shape)}")
    rt = _tensor(relevant, "relevant")
    if tuple(rt.shape) != tuple(st.shape):
        raise UserInputError(f"relevant: expected shape {tuple(st.shape)} like scores, got {tuple(rt.shape)}")
    keep = torch.ones(st.shape, dtype=torch.bool)
    if exclude is not None:
        et = _tensor(exclude, "exclude")
        if tuple(et.shape) != tuple(st.shape):
            raise UserInputError(f"exclude: expected shape {tuple(st.shape)} like scores, got {tuple(et.shape)}")
        keep = ~et.bool()
    q, i = torch.nonzero(keep, as_tuple=True)
    return (q, i, st[q, i], rt.bool()[q, i]), st.shape[0]


def ranking_report(scores, relevant, k: int = 10, exclude=None, ties: str = "pessimistic") -> dict:
    """NDCG@k, MRR, HitRate@k and Recall@k averaged over queries with >= 1 relevant, non-excluded item.

    scores: [Q, I] float (tensor / array) or a list of Q 1-D arrays (one per query, any lengths).
    relevant: bool/0-1, same shape (or list) as scores.
    k: cut-off (integer >= 1).
    exclude: optional bool, same shape (or list): True = the item is removed before ranking (never ranked,
        never relevant): infeasible offers, items seen in training.
    ties: "pessimistic" (default), "optimistic" or "index" (see the module docstring).

    Returns ``{"ndcg@k", "mrr", "hit_rate@k", "recall@k"}`` (floats; NaN when no query qualifies) plus
    ``n_queries`` (evaluated) and ``n_skipped`` (queries without a relevant non-excluded item).
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise UserInputError(f"k must be an integer >= 1, got {k!r}")
    if ties not in TIES:
        raise UserInputError(f"ties must be one of {list(TIES)}, got {ties!r}")
    (q, item, s, r), n_queries = _flatten(scores, relevant, exclude)
    if torch.isnan(s).any():
        raise UserInputError(f"scores: expected no NaN among the non-excluded items, found {int(torch.isnan(s).sum())}")
    k = int(k)
    names = (f"ndcg@{k}", "mrr", f"hit_rate@{k}", f"recall@{k}")
    has_rel = torch.zeros(n_queries, dtype=torch.bool)
    if r.numel():
        has_rel[q[r]] = True
    out = {n: math.nan for n in names}
    n_eval = int(has_rel.sum())
    out["n_queries"] = n_eval
    out["n_skipped"] = int(n_queries - n_eval)
    if n_eval == 0:
        return out
    # keep the qualifying queries, order each one's items deterministically
    sel = has_rel[q]
    q, item, s, r = q[sel], item[sel], s[sel], r[sel]
    if ties == "pessimistic":
        tie = r.long()           # irrelevant (0) before relevant (1) among equal scores
    elif ties == "optimistic":
        tie = (~r).long()        # relevant first
    else:
        tie = torch.zeros_like(item)
    order = np.lexsort((item.numpy(), tie.numpy(), -s.numpy(), q.numpy()))
    q, r = q[order], r[order]
    counts = torch.bincount(q, minlength=n_queries)[has_rel]
    # per-query strictly decreasing stand-in scores: len, len - 1, ..., 1 (exact in float32)
    sums = {n: 0.0 for n in names}
    for rq in torch.split(r, counts.tolist()):
        pred = torch.arange(rq.numel(), 0, -1, dtype=torch.float32)
        sums[names[0]] += float(retrieval_normalized_dcg(pred, rq, top_k=k))
        sums[names[1]] += float(retrieval_reciprocal_rank(pred, rq))
        sums[names[2]] += float(retrieval_hit_rate(pred, rq, top_k=k))
        sums[names[3]] += float(retrieval_recall(pred, rq, top_k=k))
    for n in names:
        out[n] = sums[n] / n_eval
    return out
