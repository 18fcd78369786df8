"""Neighbour sampling on a heterogeneous graph: mini-batches for the graph models.

PyG's ``NeighborLoader`` / ``LinkNeighborLoader`` need the compiled ``pyg-lib`` or ``torch-sparse``
extensions, and neither has wheels for the torch builds this project installs (torch 2.13 CPU from
PyPI), so the sampler is written here in plain torch. It does what PyG's directional sampler does:

* from the seed nodes of each type, hop by hop, every destination node in the frontier draws up to
  ``fanout[hop]`` of its incoming edges of every edge type (all of them when it has no more; else a
  uniform draw with replacement, duplicates dropped, so a hub keeps at most ``fanout`` distinct edges);
* the sources reached for the first time form the next frontier;
* the result is a ``HeteroData`` subgraph with local node indices, seeds first in the order given,
  holding the sampled edges (with their ``edge_attr``) and each node's ``n_id`` (global index),
  ``x_cat`` and ``x_num``.

An L-layer message-passing model run on a subgraph sampled with L hops computes the seeds' outputs
from (a sample of) their full L-hop neighbourhood: with fanouts at least the largest degree, exactly
the full-graph outputs (tested).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch_geometric.data import HeteroData

from deepromo.data.errors import UserInputError


def edge_keys(src: torch.Tensor, dst: torch.Tensor, n_dst: int) -> torch.Tensor:
    """One int64 key per (src, dst) pair (``src * n_dst + dst``), for set operations on edges."""
    return src.long() * int(n_dst) + dst.long()


class HeteroNeighbourSampler:
    """Samples L-hop neighbourhoods of seed nodes in ``graph`` (see the module docstring).

    graph: HeteroData with ``num_nodes``, ``x_cat``, ``x_num`` on every node store and ``edge_index``
        (and optionally ``edge_attr``) on every edge store.
    fanout: edges drawn per destination node, edge type and hop (e.g. ``[10, 5]``: 2 hops).
    """

    def __init__(self, graph: HeteroData, fanout: Sequence[int]):
        if not fanout or any(int(f) < 1 for f in fanout):
            raise UserInputError(f"fanout must be a non-empty list of integers >= 1, got {list(fanout)!r}")
        self.graph = graph
        self.fanout = [int(f) for f in fanout]
        self.num_nodes = {nt: int(graph[nt].num_nodes) for nt in graph.node_types}
        self.csc: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        for et in graph.edge_types:
            ei = graph[et].edge_index
            order = torch.argsort(ei[1], stable=True)
            counts = torch.bincount(ei[1], minlength=self.num_nodes[et[2]])
            colptr = torch.zeros(len(counts) + 1, dtype=torch.long)
            colptr[1:] = torch.cumsum(counts, 0)
            self.csc[et] = (colptr, ei[0][order], order)  # (pointers by dst, src sorted by dst, edge ids)

    def _draw(self, et, dst: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
        """Positions (into the dst-sorted edge arrays) of up to ``k`` incoming edges of every node in ``dst``."""
        colptr = self.csc[et][0]
        start, deg = colptr[dst], colptr[dst + 1] - colptr[dst]
        small = deg <= k
        s_start, s_deg = start[small], deg[small]
        total = int(s_deg.sum())
        offsets = torch.arange(total) - torch.repeat_interleave(torch.cumsum(s_deg, 0) - s_deg, s_deg)
        take_all = torch.repeat_interleave(s_start, s_deg) + offsets
        b_start, b_deg = start[~small], deg[~small]
        if len(b_start) == 0:
            return take_all
        r = torch.rand(len(b_start), k, generator=generator)
        drawn = b_start[:, None] + (r * b_deg[:, None]).long().clamp(max=b_deg[:, None] - 1)
        return torch.cat([take_all, torch.unique(drawn.reshape(-1))])

    def sample(self, seeds: Mapping[str, torch.Tensor], generator: torch.Generator | None = None,
               exclude: Mapping[tuple, torch.Tensor] | None = None) -> HeteroData:
        """The sampled subgraph around ``seeds`` (node type -> global indices, unique within a type).

        exclude: edge type -> keys (:func:`edge_keys` of global src, dst) of edges that must not be used,
            e.g. the supervised pairs of the batch, so the model cannot read its labels off the graph.
        """
        exclude = exclude or {}
        local = {nt: torch.full((n,), -1, dtype=torch.long) for nt, n in self.num_nodes.items()}
        nodes = {nt: [] for nt in self.num_nodes}
        count = dict.fromkeys(self.num_nodes, 0)

        def add(nt: str, ids: torch.Tensor) -> torch.Tensor:
            new = torch.unique(ids[local[nt][ids] < 0])  # sorted; order within a hop does not matter
            local[nt][new] = torch.arange(count[nt], count[nt] + len(new))
            count[nt] += len(new)
            nodes[nt].append(new)
            return new

        frontier = {}
        for nt, ids in seeds.items():
            ids = torch.as_tensor(ids, dtype=torch.long)
            if len(torch.unique(ids)) != len(ids):
                raise UserInputError(f"seeds of node type '{nt}' must be unique")
            local[nt][ids] = torch.arange(len(ids))
            count[nt] = len(ids)
            nodes[nt].append(ids)
            frontier[nt] = ids
        picked: dict[tuple, list[torch.Tensor]] = {et: [] for et in self.csc}
        for k in self.fanout:
            reached: dict[str, list[torch.Tensor]] = {nt: [] for nt in self.num_nodes}
            for et, (colptr, src_sorted, eid_sorted) in self.csc.items():
                dst = frontier.get(et[2])
                if dst is None or len(dst) == 0:
                    continue
                pos = self._draw(et, dst, k, generator)
                eids = eid_sorted[pos]
                if et in exclude and len(exclude[et]):
                    ei = self.graph[et].edge_index[:, eids]
                    eids = eids[~torch.isin(edge_keys(ei[0], ei[1], self.num_nodes[et[2]]), exclude[et])]
                picked[et].append(eids)
                reached[et[0]].append(self.graph[et].edge_index[0, eids])
            frontier = {nt: add(nt, torch.cat(r)) for nt, r in reached.items() if r}
        return self._subgraph(nodes, local, picked)

    def _subgraph(self, nodes, local, picked) -> HeteroData:
        sub = HeteroData()
        for nt, parts in nodes.items():
            n_id = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
            store = self.graph[nt]
            sub[nt].n_id = n_id
            sub[nt].num_nodes = len(n_id)
            sub[nt].x_cat = store.x_cat[n_id]
            sub[nt].x_num = store.x_num[n_id]
        for et, parts in picked.items():
            eids = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
            ei = self.graph[et].edge_index[:, eids]
            sub[et].edge_index = torch.stack([local[et[0]][ei[0]], local[et[2]][ei[1]]])
            if "edge_attr" in self.graph[et]:
                sub[et].edge_attr = self.graph[et].edge_attr[eids]
        return sub


__all__ = ["HeteroNeighbourSampler", "edge_keys"]
