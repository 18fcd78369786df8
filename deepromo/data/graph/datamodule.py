"""The offer-graph datamodule: (customer, offer) redemption pairs of an ``offer_graph`` view served as graph batches.

The view (``deepromo.data.views.offer_graph_view``) holds one row per positive pair (``customer_id``,
``offer_id``, ``ts``, ``split``, ``redeemed`` = 1) and the graph; the split is the graph's own leak-free split
(time, or customer-disjoint; see ``deepromo.data.graph.build``).

``OfferGraphDataModule`` serves it:

train   batches of training pairs. Each batch is a dict
        ``graph``  HeteroData: the neighbour-sampled subgraph around the batch's customers and offers
                   (``fanout`` edges per node, edge type and hop) with the batch's own supervised pairs
                   removed from the redeemed edges, so a model cannot read its labels off the graph;
        ``query [B]`` / ``pos [B]`` / ``neg [B, n_neg]``  local node indices (customer, redeemed offer,
                   sampled non-redeemed offers) into that subgraph;
        ``row_id [B]`` the pairs' rows in the view's frame.
        Negatives: a share ``hard_negative_share`` is drawn from the offers the customer was exposed to
        (harder: exposure is necessary for a redemption), the rest uniformly from all offers; a draw that
        hits one of the customer's training positives is redrawn uniformly once.
val / test  one batch: the split's *full* message graph (no sampling), its pairs with fixed negatives
        (global indices), and for the ranking metrics the split's query customers
        (``rank_customers [Q]``), their relevant offers (``relevant [Q, n_offers]`` bool) and the offers
        to leave out (``exclude``: pairs redeemed before the split's cut).
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from deepromo.data.datamodule import ShuffledBatches, process_rank
from deepromo.data.errors import UserInputError
from deepromo.data.graph.build import EXPOSED, REDEEMED, SPLITS, OfferGraph, reverse_edge_type
from deepromo.data.graph.sampling import HeteroNeighbourSampler, edge_keys
from deepromo.data.spec import FeatureSpec, LabelSpec
from deepromo.data.tables import DataValidationError
from deepromo.data.views import TaskView


class OfferGraphDataModule(pl.LightningDataModule):
    """Serves an offer-graph view as graph batches (see the module docstring).

    batch_size: training pairs per batch (the split is the graph's own). seed: shuffling and sampling seed.
    fanout: edges drawn per node, edge type and hop (one entry per message-passing layer).
    num_negatives: sampled non-redeemed offers per positive pair. hard_negative_share: share of them drawn
    from the customer's exposed offers.
    """

    def __init__(self, view: TaskView, batch_size: int = 256, seed: int = 0,
                 fanout=(10, 5), num_negatives: int = 4, hard_negative_share: float = 0.5):
        super().__init__()
        if getattr(view, "graph", None) is None:
            raise DataValidationError(f"view '{view.name}' carries no offer graph; build it with "
                                      "deepromo.data.views.build_view('offer_graph', data)")
        if not 0.0 <= float(hard_negative_share) <= 1.0:
            raise UserInputError(f"hard_negative_share must be in [0, 1], got {hard_negative_share!r}")
        if int(num_negatives) < 1:
            raise UserInputError(f"num_negatives must be >= 1, got {num_negatives!r}")
        self.view = view
        self.graph: OfferGraph = view.graph
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.fanout = [int(f) for f in fanout]
        self.num_negatives = int(num_negatives)
        self.hard_negative_share = float(hard_negative_share)
        self.preprocessor = None  # node features are encoded by the graph builder
        split_col = view.frame["split"].to_numpy()
        self.indices = {s: np.flatnonzero(split_col == s) for s in SPLITS}
        if len(self.indices["train"]) == 0:
            raise DataValidationError("the offer graph has no training redemptions (positive pairs); a ranker "
                                      "needs some: check the redemptions / exposures of the source")
        og = self.graph
        cust = og.node_index("customer", view.frame["customer_id"].to_numpy())
        offer = og.node_index("offer", view.frame["offer_id"].to_numpy())
        self.tensors = {
            "customer_index": torch.from_numpy(cust.astype(np.int64)),
            "offer_index": torch.from_numpy(offer.astype(np.int64)),
            "y": torch.tensor(view.frame["redeemed"].to_numpy(np.float32)),
            "row_id": torch.arange(len(view.frame), dtype=torch.long),
        }
        self.num_offers = len(og.node_ids["offer"])
        self._sampler: HeteroNeighbourSampler | None = None
        self._generator = torch.Generator().manual_seed(self.seed)
        g = og.graph_train
        self._exposed_ptr, self._exposed = _csr(g[EXPOSED].edge_index, len(og.node_ids["customer"]))
        train = og.pairs_train
        known = torch.cat([train, g[REDEEMED].edge_index], dim=1)
        self._known_keys = torch.unique(edge_keys(known[0], known[1], self.num_offers))
        self._spec: FeatureSpec | None = None

    def setup(self, stage: str | None = None) -> None:
        if self._sampler is None:
            self._sampler = HeteroNeighbourSampler(self.graph.graph_train, self.fanout)

    @property
    def spec(self) -> FeatureSpec:
        if self._spec is None:
            self._spec = FeatureSpec(graph=self.graph.graph_spec(), labels=(LabelSpec("redeemed", "ranking"),))
        return self._spec

    # --- negatives --------------------------------------------------------------------
    def sample_negatives(self, customers: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """[B, num_negatives] offer indices: exposed-but-other offers for a share, uniform for the rest."""
        b, n = len(customers), self.num_negatives
        neg = torch.randint(self.num_offers, (b, n), generator=generator)
        n_hard = int(round(self.hard_negative_share * n))
        if n_hard:
            start, deg = self._exposed_ptr[customers], self._exposed_ptr[customers + 1] - self._exposed_ptr[customers]
            r = torch.rand(b, n_hard, generator=generator)
            pos = start[:, None] + (r * deg[:, None]).long().clamp(min=0)
            hard = self._exposed[pos.clamp(max=max(len(self._exposed) - 1, 0))] if len(self._exposed) else neg[:, :n_hard]
            neg[:, :n_hard] = torch.where(deg[:, None] > 0, hard, neg[:, :n_hard])
        clash = torch.isin(edge_keys(customers[:, None].expand(b, n), neg, self.num_offers), self._known_keys)
        redraw = torch.randint(self.num_offers, (b, n), generator=generator)
        return torch.where(clash, redraw, neg)

    # --- batches ----------------------------------------------------------------------
    def train_batch(self, rows: list[int]) -> dict:
        """A neighbour-sampled training batch for the view rows ``rows`` (see the module docstring)."""
        self.setup()
        rows_t = torch.as_tensor(rows, dtype=torch.long)
        c, o = self.tensors["customer_index"][rows_t], self.tensors["offer_index"][rows_t]
        neg = self.sample_negatives(c, self._generator)
        seed_c = torch.unique(c)
        seed_o = torch.unique(torch.cat([o, neg.reshape(-1)]))
        n_c, n_o = len(self.graph.node_ids["customer"]), self.num_offers
        exclude = {REDEEMED: edge_keys(c, o, n_o), reverse_edge_type(REDEEMED): edge_keys(o, c, n_c)}
        sub = self._sampler.sample({"customer": seed_c, "offer": seed_o}, self._generator, exclude)
        return {"graph": sub, "query": torch.searchsorted(seed_c, c), "pos": torch.searchsorted(seed_o, o),
                "neg": torch.searchsorted(seed_o, neg), "row_id": rows_t}

    def eval_batch(self, split: str) -> dict:
        """The whole split as one batch on its full message graph (see the module docstring)."""
        rows = torch.as_tensor(self.indices[split], dtype=torch.long)
        c, o = self.tensors["customer_index"][rows], self.tensors["offer_index"][rows]
        generator = torch.Generator().manual_seed(self.seed + 1 + SPLITS.index(split))
        customers, relevant, exclude = self.ranking_targets(split)
        return {"graph": self.graph.graph(split), "query": c, "pos": o,
                "neg": self.sample_negatives(c, generator), "row_id": rows,
                "rank_customers": customers, "relevant": relevant, "exclude": exclude}

    def ranking_targets(self, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(query customers [Q], relevant [Q, n_offers] bool, exclude [Q, n_offers] bool) of ``split``."""
        pairs = self.graph.pairs(split)
        customers, row = torch.unique(pairs[0], return_inverse=True)
        relevant = torch.zeros(len(customers), self.num_offers, dtype=torch.bool)
        relevant[row, pairs[1]] = True
        seen = self.graph.seen_pairs(split)
        exclude = torch.zeros_like(relevant)
        q = torch.searchsorted(customers, seen[0]).clamp(max=max(len(customers) - 1, 0))
        hit = (customers[q] == seen[0]) if len(customers) else torch.zeros(0, dtype=torch.bool)
        exclude[q[hit], seen[1][hit]] = True
        return customers, relevant, exclude

    def reseed_sampling(self, epoch: int) -> None:
        """Negatives and neighbours of epoch ``epoch`` come from their own seed (a resumed run repeats them); each
        DDP rank has its own stream (rank 0 the single-process one)."""
        self._generator.manual_seed(self.seed * 100_003 + int(epoch) + 1_000_003 * process_rank()[0])

    def train_dataloader(self) -> DataLoader:
        n = len(self.indices["train"])
        batches = ShuffledBatches(n, self.batch_size, self.seed, on_epoch=self.reseed_sampling)
        rows = self.indices["train"]
        return DataLoader(_Positions(n), sampler=batches, batch_size=None,
                          collate_fn=lambda idx: self.train_batch(rows[np.asarray(idx)].tolist()))

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader([split], batch_size=None, collate_fn=self.eval_batch)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


class _Positions(torch.utils.data.Dataset):
    """A dataset whose items are their own positions (the batch sampler's index lists go to the collate)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index):
        return index


def _csr(edge_index: torch.Tensor, n_src: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(pointers [n_src + 1], destinations sorted by source) of an edge list."""
    order = torch.argsort(edge_index[0], stable=True)
    ptr = torch.zeros(n_src + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(torch.bincount(edge_index[0], minlength=n_src), 0)
    return ptr, edge_index[1][order]


__all__ = ["OfferGraphDataModule"]
