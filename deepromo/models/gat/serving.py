"""Serving half of the gat ranker: stored customer/offer vectors, constraint-filtered top-k, attention explanations.

``OfferServing`` is mixed into ``GATOfferRanker``; it reads the model's ``embed``, ``vectors``, ``encode_nodes``,
``propagate`` and ``convs`` and keeps the serving vectors as buffers, so a saved model ranks on its own.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from deepromo.data.errors import UserInputError
from deepromo.data.tables import DataValidationError
from deepromo.models.base import check_finite_outputs

SERVING_BUFFERS = ("customer_ids", "offer_ids", "customer_vectors", "offer_vectors")
# Requests of up to this many customers rank each customer's offers in numpy: torch's per-op dispatch on a
# 10,000-vector (top-k, masks, gathers: ~20 ops) costs more than the work; larger batches use the torch path.
NUMPY_RANK_ROWS = 16


def edge_type_key(edge_type) -> str:
    """The ModuleDict key of an edge type (``src__rel__dst``)."""
    return "__".join(edge_type)


class OfferServing:
    """Serving and explanation methods of the gat ranker (a mixin over a ``PromoModel``)."""

    def _store_vectors(self, u: torch.Tensor, v: torch.Tensor) -> None:
        self.customer_vectors = u.detach().clone()
        self.offer_vectors = v.detach().clone()

    def set_serving_graph(self, graph, node_ids: Mapping[str, np.ndarray]) -> None:
        """Precompute and keep the customer and offer vectors of ``graph`` (ids: ``node_ids`` per node type)."""
        u, v = self.embed(graph)
        self._store_vectors(u, v)
        self.customer_ids = torch.tensor(np.asarray(node_ids["customer"]), dtype=torch.long, device=u.device)
        self.offer_ids = torch.tensor(np.asarray(node_ids["offer"]), dtype=torch.long, device=u.device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the serving vectors may cover another graph than the spec's (set_serving_graph): take their sizes
        for name in SERVING_BUFFERS:
            if prefix + name in state_dict:
                self._buffers[name] = torch.empty_like(state_dict[prefix + name], device=self._buffers[name].device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _id_index(self, node_type: str) -> pd.Index:
        """``pd.Index`` of the served ids of ``node_type``, rebuilt only when the id buffer changes."""
        ids = self.customer_ids if node_type == "customer" else self.offer_ids
        key = (ids.data_ptr(), len(ids), ids._version)
        cache = self.__dict__.setdefault("_id_indexes", {})
        if node_type not in cache or cache[node_type][0] != key:
            cache[node_type] = (key, pd.Index(ids.cpu().numpy()))
        return cache[node_type][1]

    def _positions(self, ids, node_type: str) -> np.ndarray:
        known = self._id_index(node_type)
        ids = np.asarray(ids).reshape(-1)
        if len(ids) == 1 and ids.dtype.kind in "iu" and known.is_unique:  # one hash look-up, not an indexer
            try:
                return np.array([known.get_loc(ids[0])], dtype=np.intp)
            except KeyError:
                pass  # the general path names the unknown id
        pos = known.get_indexer(ids)
        if (pos < 0).any():
            bad = pd.unique(ids[pos < 0])[:5].tolist()
            raise DataValidationError(f"{node_type}_id value(s) {bad} are not in the graph this model was embedded "
                                      f"on ({len(known)} {node_type}s); refresh it with set_serving_graph")
        return pos

    def predict_frame(self, df: pd.DataFrame, batch_size: int | None = None, **context) -> pd.DataFrame:
        """Score (customer, offer) pairs: a frame with ``customer_id`` and ``offer_id`` in, ``score`` out."""
        self.require_frame(df)
        missing = [c for c in self.input_columns() if c not in df.columns]
        if missing:
            raise DataValidationError(f"model 'gat' scores (customer, offer) pairs: the frame lacks column(s) "
                                      f"{missing}; it has {list(df.columns)}")
        tensors = {"customer_index": torch.from_numpy(self._positions(df["customer_id"], "customer")),
                   "offer_index": torch.from_numpy(self._positions(df["offer_id"], "offer"))}
        frame = pd.DataFrame(self.predict_arrays(tensors, batch_size), index=df.index)
        check_finite_outputs(frame, "gat")
        return frame

    def input_columns(self) -> list[str]:
        return ["customer_id", "offer_id"]

    def example_frame(self, view, rows: int = 5) -> pd.DataFrame:
        return view.frame[self.input_columns()].head(rows)

    def compile_rules(self, rules, offers: pd.DataFrame | None = None):
        """The constraint rules evaluated once for every served customer and offer (a ``CompiledRules`` to pass
        to :meth:`rank_offers` request after request; recompile when the rule data change).

        rules: constraint data for :func:`deepromo.decide.offer_rules.feasible_mask` (stock, brand limits,
            contact caps, budget, exclusions). offers: the offers table the rules read (``offer_id`` plus the
            columns they need); default a frame of the model's offer ids only.
        """
        from deepromo.decide.offer_rules import compile_rules

        return compile_rules(self.customer_ids.cpu().numpy(), self._offer_table(offers), rules)

    def _offer_table(self, offers: pd.DataFrame | None) -> pd.DataFrame:
        offer_ids = self.offer_ids.cpu().numpy()
        if offers is None:
            return pd.DataFrame({"offer_id": offer_ids})
        if "offer_id" not in offers.columns:
            raise DataValidationError(f"offers: expected an 'offer_id' column, got {list(offers.columns)}")
        missing = np.setdiff1d(offer_ids, offers["offer_id"].to_numpy())
        if len(missing):
            raise DataValidationError(f"offers: offer_id value(s) {missing[:5].tolist()} of the model are missing "
                                      "from the offers table the rules read")
        return offers.set_index("offer_id").loc[offer_ids].reset_index()

    @torch.inference_mode()
    def rank_offers(self, customer_ids, k: int = 10, rules=None, offers: pd.DataFrame | None = None,
                    batch_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """Each customer's ``k`` best feasible offers: (offer ids [n, k] int64, scores [n, k] float32).

        rules: None (every offer feasible), a ``CompiledRules`` from :meth:`compile_rules` (the serving path),
            or raw rule data as :meth:`compile_rules` takes (compiled here for these customers). offers: the
            offers table raw rules read. Slots beyond the feasible offers hold id -1 and score -inf.
        """
        from deepromo.decide.offer_rules import CompiledRules, compile_rules, rank_offers

        customer_ids = np.asarray(customer_ids).reshape(-1)
        rows = self._positions(customer_ids, "customer")
        offer_ids = self.offer_ids.cpu().numpy()
        rule_rows = rows
        if rules is not None and not isinstance(rules, CompiledRules):
            rules = compile_rules(customer_ids, self._offer_table(offers), rules)
            rule_rows = np.arange(len(customer_ids))
        elif rules is not None and (len(rules.customer_index) != len(self.customer_ids)
                                    or not np.array_equal(rules.offer_ids, offer_ids)):
            raise UserInputError("rules were compiled for other customers or offers than this model serves; "
                             "compile them with model.compile_rules")
        ids_out, scores_out = [], []
        for a in range(0, len(rows), int(batch_size)):
            chunk = slice(a, a + int(batch_size))
            scores = (self.customer_vectors[torch.from_numpy(rows[chunk]).to(self.device)]
                      @ self.offer_vectors.T).float().cpu()
            if len(scores) <= NUMPY_RANK_ROWS and isinstance(k, (int, np.integer)) and not isinstance(k, bool):
                s = scores.numpy()
                mask = rules.mask(rule_rows[chunk]) if rules is not None else np.ones(s.shape, dtype=bool)
                ranked = [rank_row(s[i], mask[i], int(k)) for i in range(len(s))]
                idx, top = np.stack([r[0] for r in ranked]), np.stack([r[1] for r in ranked])
            else:
                mask = (torch.from_numpy(rules.mask(rule_rows[chunk])) if rules is not None
                        else torch.ones_like(scores, dtype=torch.bool))
                idx, top = (t.numpy() for t in rank_offers(scores, mask, int(k)))
            ids_out.append(np.where(idx >= 0, offer_ids[np.maximum(idx, 0)], -1))
            scores_out.append(top)
        if not ids_out:
            return np.zeros((0, int(k)), np.int64), np.zeros((0, int(k)), np.float32)
        return np.concatenate(ids_out), np.concatenate(scores_out)

    # --- explanation ----------------------------------------------------------------------
    def explain(self, customer_id, graph, node_ids: Mapping[str, np.ndarray], k: int = 5,
                top_neighbours: int = 5) -> dict:
        """Why ``customer_id`` gets its top-``k`` offers: the last layer's attention (mean over heads) of the
        customer and of each top offer over their incoming neighbours, strongest ``top_neighbours`` per edge type.

        Returns ``{"customer_id", "offers": [{"offer_id", "score", "attention": {...}}], "attention": {...}}``
        where each ``attention`` maps an edge type to ``[{"node_type", "id", "weight", "edge_strength"}]``.
        Only the attention convolutions have weights to show (``conv: gat | gatv2``).
        """
        if self.hparams.conv == "sage":
            raise UserInputError("explain needs attention weights: conv 'sage' has none (use 'gat' or 'gatv2')")
        c = int(pd.Index(np.asarray(node_ids["customer"])).get_indexer([customer_id])[0])
        if c < 0:
            raise DataValidationError(f"customer_id {customer_id!r} is not a node of the given graph")
        was_training = self.training
        self.eval()
        with torch.inference_mode():
            g = graph.to(self.device)
            last = int(self.hparams.layers) - 1
            h = self.propagate(g, self.encode_nodes(g), layers=last)  # the states the last layer attends over
            u, v = self.vectors(self.propagate(g, h, start=last))
            scores = (u[c] @ v.T).float()
            top = torch.topk(scores, min(int(k), len(scores))).indices
            targets = {"customer": torch.tensor([c], device=self.device), "offer": top}
            weights = self._last_layer_attention(g, h, targets)
        self.train(was_training)

        def listing(nt: str, index: int) -> dict:
            out = {}
            for et, (src, dst, alpha, strength) in weights.items():
                if et[2] != nt:
                    continue
                sel = dst == index
                if not sel.any():
                    continue
                order = torch.argsort(alpha[sel], descending=True)[:top_neighbours]
                out["__".join(et)] = [
                    {"node_type": et[0], "id": int(node_ids[et[0]][int(s)]), "weight": round(float(a), 4),
                     "edge_strength": round(float(w), 4)}
                    for s, a, w in zip(src[sel][order], alpha[sel][order], strength[sel][order])]
            return out

        return {"customer_id": int(node_ids["customer"][c]), "attention": listing("customer", c),
                "offers": [{"offer_id": int(node_ids["offer"][int(o)]), "score": round(float(scores[o]), 4),
                            "attention": listing("offer", int(o))} for o in top]}

    def _last_layer_attention(self, graph, h, targets: dict[str, torch.Tensor]) -> dict:
        """edge type -> (src, dst, attention [E'], strength [E']) for the edges ending at ``targets`` nodes.
        Attention is normalised over each destination's incoming edges of one type, so restricting the edges
        to the target destinations leaves their weights unchanged."""
        conv = self.convs[-1]
        out = {}
        for et in self.edge_types:
            if et[2] not in targets or et not in graph.edge_types:
                continue
            ei, attr = graph[et].edge_index, graph[et].edge_attr
            sel = torch.isin(ei[1], targets[et[2]])
            if not sel.any():
                continue
            _, (idx, alpha) = conv[edge_type_key(et)]((h[et[0]], h[et[2]]), ei[:, sel], edge_attr=attr[sel],
                                             return_attention_weights=True)
            out[et] = (idx[0].cpu(), idx[1].cpu(), alpha.mean(dim=1).cpu(), attr[sel][:, 0].cpu())
        return out


def rank_row(scores: np.ndarray, mask: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One customer's ``deepromo.decide.offer_rules.rank_offers`` in numpy: (offer indices [k] int64, scores [k]).

    scores: [n_offers] float, mask: [n_offers] bool. The same answer as ``rank_offers`` (its exact fast path
    when the k-th best score is finite and shared by no other offer, else its full stable sort: feasible
    offers by score, then offer index; -1 / -inf fill the slots beyond them); a feasible NaN or a bad ``k``
    goes to ``rank_offers`` for its error.
    """
    scores = scores if scores.dtype.kind == "f" else scores.astype(np.float32)
    n = scores.shape[0]
    masked = np.where(mask, scores, scores.dtype.type(-np.inf))
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1 or np.isnan(masked).any():
        from deepromo.decide.offer_rules import rank_offers

        idx, top = rank_offers(torch.from_numpy(scores[None]), torch.from_numpy(np.asarray(mask, dtype=bool)[None]), k)
        return idx[0].numpy(), top[0].numpy()
    if k <= n:
        kth = np.partition(masked, n - k)[n - k]
        if np.isfinite(kth):
            candidates = np.flatnonzero(masked >= kth)
            if len(candidates) == k:
                values = masked[candidates]
                order = np.argsort(-values, kind="stable")  # descending score; ties keep the lower offer index
                return candidates[order].astype(np.int64), values[order]
    # a tie at the k-th score or fewer than k feasible offers (a capped customer has none)
    feasible = np.flatnonzero(mask)
    best = feasible[np.argsort(-scores[feasible], kind="stable")][:k]
    idx, top = np.full(k, -1, dtype=np.int64), np.full(k, -np.inf, dtype=scores.dtype)
    idx[:len(best)], top[:len(best)] = best, scores[best]
    return idx, top
