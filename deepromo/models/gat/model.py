"""gat: graph attention offer ranker over the customer–product–offer graph (DESIGN §5; seeds/002 §4.3).

Graph (``deepromo.data.graph.build``): customer, product and offer nodes; purchased, exposed, redeemed and
applies_to edges plus their reverses, each with a recency-decayed strength as its edge feature.

Node encoder, per node type t (all of width ``hidden``):

    h0_v = sum_c E_{t,c}[x_cat_v,c] + W_t x_num_v + b_t  (+ E_t^id[v] for the types in ``id_embeddings``)

Layer l = 1..L, for every node v of type t, with one attention convolution per edge type r ending at t:

    m_v = sum_{r: * -> t} GAT_r(h^{l-1}_src, h^{l-1}_v, edge_attr)        (no self-loops: bipartite edges)
    h^l_v = LayerNorm_t(h^{l-1}_v + Dropout(ELU(m_v)))                      (residual)

GAT_r is GATv2Conv (``conv: gatv2``, default), GATConv (``gat``) with ``heads`` heads of width
``hidden / heads`` concatenated, the edge strength entering the attention logits; ``conv: sage`` swaps in
SAGEConv (mean aggregation, no attention, no edge feature): the GraphSAGE baseline of the same model.

Scoring head: a dot product, so serving is one matrix–vector product per customer:

    u_c = [W_c h^L_c, 1],   v_o = [W_o h^L_o, w_b . h^L_o],   score(c, o) = u_c . v_o

Loss ``bpr`` (default): -log sigmoid(score(c, o+) - score(c, o-)) averaged over the sampled negatives
o- (half of them drawn from offers the customer was exposed to but did not redeem). The metrics are
NDCG / MRR / HitRate, which only see the order of a customer's offers; BPR optimises exactly that
pairwise order, while BCE would also spend capacity on calibrating absolute probabilities across
customers that the ranking never uses. ``loss: bce`` is available for comparison.

Training runs on neighbour-sampled subgraphs (``fanout`` per hop; ``OfferGraphDataModule``) with each
batch's supervised pairs removed from its message edges; evaluation embeds all nodes of the split's
full graph, layer by layer in chunks of at most ``inference_chunk_edges`` incoming edges plus destination
nodes (``layerwise.py``; null: one full-graph pass), so memory stays O(nodes x hidden). After training
the customer and offer vectors of the serving graph (every interaction in the data) are kept in the
checkpoint: ``rank_offers(customer_ids, k, rules=...)`` filters infeasible offers
(``deepromo.decide.offer_rules``) and ranks the rest without touching the graph again.
``explain(customer_id, graph)`` returns the last layer's attention weights behind a customer's top offers.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATConv, GATv2Conv, SAGEConv

from deepromo.models.base import HyperParameterError, PromoModel
from deepromo.models.gat.layerwise import LayerwiseInference
from deepromo.models.gat.serving import OfferServing, edge_type_key
from deepromo.models.registry import register_model

CONVS = ("gatv2", "gat", "sage")
LOSSES = ("bpr", "bce")


@register_model("gat")
class GATOfferRanker(OfferServing, PromoModel):
    task = "ranking"
    required_keys = ("query", "pos", "neg")
    monitor = ("val/ndcg_at_10", "max")
    output_columns = ("score",)
    # a sampled subgraph need not reach every node and edge type, so some parameters get no gradient in a step
    ddp_unused_parameters = True
    defaults = {
        "lr": 3e-3,
        "weight_decay": 1e-5,
        "hidden": 64,
        "heads": 4,
        "layers": 2,
        "dropout": 0.1,
        "attn_dropout": 0.1,
        "conv": "gatv2",
        "loss": "bpr",
        "id_embeddings": ["offer"],
        "fanout": [10, 5],
        "num_negatives": 4,
        "hard_negative_share": 0.5,
        "k": 10,
        "inference_chunk_edges": 50_000,
    }
    test_params = [{"hidden": 16, "heads": 2, "fanout": [5, 3], "num_negatives": 2},
                   {"hidden": 16, "heads": 2, "fanout": [5, 3], "num_negatives": 2, "conv": "sage"}]

    def __init__(self, spec, **hparams):
        super().__init__(spec, **hparams)
        hp = self.hparams
        g = self.spec.graph
        if g is None or not g.num_nodes:
            raise HyperParameterError("model 'gat' needs a graph spec with node counts (build the datamodule from the "
                             "'offer_graph' view)")
        if hp.conv not in CONVS:
            raise HyperParameterError(f"model 'gat': conv must be one of {list(CONVS)}, got {hp.conv!r}")
        if hp.loss not in LOSSES:
            raise HyperParameterError(f"model 'gat': loss must be one of {list(LOSSES)}, got {hp.loss!r}")
        if hp.hidden % hp.heads:
            raise HyperParameterError(f"model 'gat': hidden ({hp.hidden}) must be divisible by heads ({hp.heads})")
        if len(hp.fanout) != hp.layers:
            raise HyperParameterError(f"model 'gat': fanout needs one entry per layer ({hp.layers}), got {hp.fanout}")
        chunk = hp.inference_chunk_edges
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
            raise HyperParameterError(f"model 'gat': inference_chunk_edges must be an integer >= 1 or null (one "
                                      f"full-graph pass), got {chunk!r}")
        unknown = sorted(set(hp.id_embeddings) - set(g.node_types))
        if unknown:
            raise HyperParameterError(f"model 'gat': id_embeddings names unknown node types {unknown}; "
                             f"node types are {list(g.node_types)}")
        d = int(hp.hidden)
        self.node_types = list(g.node_types)
        self.edge_types = [tuple(e) for e in g.edge_types]
        self.cat_embeddings = nn.ModuleDict({
            nt: nn.ModuleList(nn.Embedding(int(c), d) for c in g.cat_cardinalities.get(nt, []))
            for nt in self.node_types})
        self.num_projections = nn.ModuleDict({
            nt: nn.Linear(int(g.num_features[nt]), d) for nt in self.node_types if g.num_features.get(nt)})
        self.id_embedding = nn.ModuleDict({nt: nn.Embedding(int(g.num_nodes[nt]), d) for nt in hp.id_embeddings})
        self.type_bias = nn.ParameterDict({nt: nn.Parameter(torch.zeros(d)) for nt in self.node_types})
        self.convs = nn.ModuleList(
            nn.ModuleDict({edge_type_key(et): self._conv(d) for et in self.edge_types}) for _ in range(int(hp.layers)))
        self.norms = nn.ModuleList(
            nn.ModuleDict({nt: nn.LayerNorm(d) for nt in self.node_types}) for _ in range(int(hp.layers)))
        self.customer_head = nn.Linear(d, d)
        self.offer_head = nn.Linear(d, d)
        self.offer_bias = nn.Linear(d, 1)
        n_c, n_o = int(g.num_nodes["customer"]), int(g.num_nodes["offer"])
        self.register_buffer("customer_ids", torch.arange(n_c, dtype=torch.long))
        self.register_buffer("offer_ids", torch.arange(n_o, dtype=torch.long))
        self.register_buffer("customer_vectors", torch.zeros(n_c, d + 1))
        self.register_buffer("offer_vectors", torch.zeros(n_o, d + 1))

    def _conv(self, d: int) -> nn.Module:
        hp = self.hparams
        if hp.conv == "sage":
            return SAGEConv((d, d), d)
        cls = GATv2Conv if hp.conv == "gatv2" else GATConv
        # add_self_loops=False: every edge type joins two different node types (PyG refuses self-loops there)
        return cls((d, d), d // hp.heads, heads=int(hp.heads), concat=True, edge_dim=1, add_self_loops=False,
                   dropout=float(hp.attn_dropout))

    @classmethod
    def datamodule_options(cls, params: dict) -> dict:
        """The neighbour sampler's fanout and the negatives per positive pair (OfferGraphDataModule)."""
        hp = {**cls.defaults, **params}
        return {"fanout": hp["fanout"], "num_negatives": hp["num_negatives"],
                "hard_negative_share": hp["hard_negative_share"]}

    # --- message passing ----------------------------------------------------------------
    def encode_nodes(self, graph) -> dict[str, torch.Tensor]:
        """Initial node states h0 [N_t, hidden] of every node type of ``graph`` (full or sampled)."""
        h = {}
        for nt in self.node_types:
            store = graph[nt]
            n = int(store.num_nodes)
            x = self.type_bias[nt].expand(n, -1)
            x_cat = store.x_cat
            for j, emb in enumerate(self.cat_embeddings[nt]):
                x = x + emb(x_cat[:, j])
            if nt in self.num_projections:
                x = x + self.num_projections[nt](store.x_num)
            if nt in self.id_embedding:
                n_id = store.n_id if "n_id" in store else torch.arange(n, device=x.device)
                x = x + self.id_embedding[nt](n_id)
            h[nt] = x
        return h

    def message_passing(self, graph, h: dict[str, torch.Tensor], layers: int | None = None,
                        start: int = 0) -> dict[str, torch.Tensor]:
        """Run attention layers ``start`` .. ``layers`` - 1 (default all) over all of ``graph``'s edges at once
        (the training path, differentiable; :meth:`propagate` is the bounded-memory inference path)."""
        for conv, norm in list(zip(self.convs, self.norms))[start:layers]:
            h = self._layer(conv, norm, graph, h)
        return h

    def _message(self, conv, et, x_src, x_dst, edge_index, edge_attr) -> torch.Tensor:
        """Messages [n_dst, hidden] of edge type ``et`` arriving at the destinations ``x_dst`` [n_dst, hidden]."""
        if self.hparams.conv == "sage":
            return conv[edge_type_key(et)]((x_src, x_dst), edge_index)
        return conv[edge_type_key(et)]((x_src, x_dst), edge_index, edge_attr=edge_attr)

    def _update(self, norm, nt: str, x: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        """h^l = LayerNorm(h^{l-1} + Dropout(ELU(m))); a node type no edge type reaches keeps its state."""
        if m is None:
            return x
        return norm[nt](x + F.dropout(F.elu(m), float(self.hparams.dropout), self.training))

    def _layer(self, conv, norm, graph, h):
        agg: dict[str, torch.Tensor] = {}
        for et in self.edge_types:
            if et not in graph.edge_types or graph[et].edge_index.shape[1] == 0:
                continue
            src, _, dst = et
            store = graph[et]
            m = self._message(conv, et, h[src], h[dst], store.edge_index, store.edge_attr)
            agg[dst] = m if dst not in agg else agg[dst] + m
        return {nt: self._update(norm, nt, x, agg.get(nt)) for nt, x in h.items()}

    def propagate(self, graph, h: dict[str, torch.Tensor], layers: int | None = None,
                  start: int = 0) -> dict[str, torch.Tensor]:
        """Inference version of :meth:`message_passing` (no gradients; call in eval mode): layer by layer in
        chunks of destination nodes when ``inference_chunk_edges`` is set (``layerwise.py``), else full-graph."""
        chunk = self.hparams.inference_chunk_edges
        if chunk is None:
            return self.message_passing(graph, h, layers, start)
        plan = LayerwiseInference(graph, self.edge_types, int(chunk))
        for conv, norm in list(zip(self.convs, self.norms))[start:layers]:
            h = plan.layer(h, lambda et, *args, conv=conv: self._message(conv, et, *args),
                           lambda nt, x, m, norm=norm: self._update(norm, nt, x, m))
        return h

    def vectors(self, h: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(customer vectors [N_c, hidden + 1], offer vectors [N_o, hidden + 1]): score = their dot product."""
        c, o = h["customer"], h["offer"]
        u = torch.cat([self.customer_head(c), torch.ones(len(c), 1, device=c.device, dtype=c.dtype)], dim=1)
        v = torch.cat([self.offer_head(o), self.offer_bias(o)], dim=1)
        return u, v

    def embed(self, graph) -> tuple[torch.Tensor, torch.Tensor]:
        """Customer and offer vectors of every node of a full graph, computed in eval mode without gradients
        (layer-wise in chunks unless ``inference_chunk_edges`` is null)."""
        was_training = self.training
        self.eval()
        with torch.inference_mode():
            graph = graph.to(self.device)
            u, v = self.vectors(self.propagate(graph, self.encode_nodes(graph)))
        self.train(was_training)
        return u.clone(), v.clone()

    # --- training ------------------------------------------------------------------------
    def forward(self, batch: Mapping) -> dict[str, torch.Tensor]:
        """Graph batch (``graph``, ``query``, ``pos``, ``neg``): pair scores; serving batch (``customer_index``,
        ``offer_index`` [B], node indices): scores from the stored vectors."""
        if "graph" not in batch:
            c, o = batch["customer_index"], batch["offer_index"]
            return {"score": (self.customer_vectors[c] * self.offer_vectors[o]).sum(-1)}
        graph = batch["graph"]
        h = self.encode_nodes(graph)
        # evaluation batches are whole graphs: without gradients the bounded-memory path gives the same states
        h = self.message_passing(graph, h) if self.training or torch.is_grad_enabled() else self.propagate(graph, h)
        u, v = self.vectors(h)
        q = u[batch["query"]]
        out = {"pos_score": (q * v[batch["pos"]]).sum(-1), "neg_score": torch.einsum("bd,bnd->bn", q, v[batch["neg"]])}
        if "rank_customers" in batch:
            out["rank_scores"] = u[batch["rank_customers"]] @ v.T
            out["vectors"] = (u, v)
        return out

    def compute_loss(self, batch, out) -> dict[str, torch.Tensor]:
        pos, neg = out["pos_score"], out["neg_score"]
        if self.hparams.loss == "bpr":
            loss = -F.logsigmoid(pos[:, None] - neg).mean()
        else:
            loss = 0.5 * (F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
                          + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg)))
        return {"loss": loss, "pairwise_accuracy": (pos[:, None] > neg).float().mean()}

    def update_metrics(self, batch, out, stage: str) -> None:
        if "rank_scores" not in out:
            return
        from deepromo.metrics.ranking import ranking_report

        report = ranking_report(out["rank_scores"].detach().float().cpu(), batch["relevant"].cpu(),
                                k=int(self.hparams.k), exclude=batch["exclude"].cpu())
        for name, value in report.items():
            if not name.startswith("n_") and np.isfinite(value):
                self.log(f"{stage}/{name.replace('@', '_at_')}", float(value), batch_size=int(report["n_queries"]),
                         sync_dist=True)  # under DDP every rank ranks the whole split: the same value
        if stage == "val":  # every checkpoint carries vectors consistent with its weights
            self._store_vectors(*out["vectors"])

    def on_fit_end(self) -> None:
        """Embed the serving graph (every interaction in the data) so the saved model can rank on its own."""
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and getattr(dm, "graph", None) is not None:
            self.set_serving_graph(dm.graph.graph_serve or dm.graph.graph_test, dm.graph.node_ids)

    # --- evaluation ---------------------------------------------------------------------
    def predict_split(self, dm, split: str = "test") -> dict[str, np.ndarray]:
        """Scores of the split's query customers for every offer, on the split's (leak-free) graph."""
        customers, _, _ = dm.ranking_targets(split)
        u, v = self.embed(dm.graph.graph(split))
        return {"customers": customers.numpy(), "scores": (u[customers.to(u.device)] @ v.T).float().cpu().numpy()}

    def extra_outputs(self, dm, run_dir) -> dict:
        """explanation.json: the attention behind the top offers of the first test customer (gat/gatv2 only)."""
        import json
        from pathlib import Path

        if self.hparams.conv == "sage":
            return {}
        customers, _, _ = dm.ranking_targets("test")
        if len(customers) == 0:
            return {}
        og = dm.graph
        report = self.explain(og.node_ids["customer"][int(customers[0])], og.graph("test"), og.node_ids)
        path = Path(run_dir) / "explanation.json"
        path.write_text(json.dumps(report, indent=2))
        return {"explanation": path}


__all__ = ["GATOfferRanker"]
