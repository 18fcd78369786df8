"""Layer-wise, chunked full-graph inference for the gat ranker: bounded memory on graphs of millions of nodes.

A full-graph pass materialises every edge type's attention tensors at once ([E, heads, hidden / heads] several
times over), which for a 1M-customer graph is tens of GB. Here layer l is computed for all nodes of every type
before layer l + 1 starts, one chunk of destination nodes at a time: the chunk's incoming edges of every edge type
(a contiguous slice of the edges sorted by destination), the previous layer's states of the sources they reach,
and the layer's convolutions on that bipartite subgraph; the result goes into a preallocated [N_t, hidden] tensor.
Peak memory is the node states of two layers plus one chunk's edge tensors (``LayerwiseInference.chunk_cost``).

Every destination's incoming edges sit in one chunk, so the attention softmax (over a node's incoming edges of one
type) is exactly the full-graph one; results differ from the full pass only by float round-off (tested). A node
type that fits in one chunk keeps its edges in the graph's own order and runs as in the full pass.

PyG's ``NeighborLoader(num_neighbors=[-1])`` would build these subgraphs but needs ``pyg-lib`` or
``torch-sparse`` (no wheels for the torch build installed here, see ``deepromo.data.graph.sampling``), so the
slicing is written here on PyG's ``index_sort`` / ``index2ptr``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch_geometric.index import index2ptr
from torch_geometric.utils import index_sort

EdgeType = tuple[str, str, str]


@dataclass
class DestinationEdges:
    """One edge type's edges ordered by destination node.

    ptr [N_dst + 1]: the edges of destination v are positions ptr[v]:ptr[v + 1] (None when the destination type
    is a single chunk and the edges keep the graph's order). src, dst [E]: global node indices. edge_attr [E, 1].
    """

    src: torch.Tensor
    dst: torch.Tensor
    edge_attr: torch.Tensor | None
    ptr: torch.Tensor | None


def chunk_bounds(cost: torch.Tensor, max_cost: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) ranges of nodes whose summed ``cost`` [N] stays within ``max_cost``, except that a
    chunk may overrun by its last node's cost (a node costing more than ``max_cost`` is a chunk of its own)."""
    if len(cost) == 0:
        return []
    before = torch.cumsum(cost, 0) - cost  # cost of the nodes ahead of each node
    chunk_of_node = torch.div(before, int(max_cost), rounding_mode="floor")
    starts = torch.nonzero(torch.diff(chunk_of_node, prepend=chunk_of_node[:1] - 1)).flatten().tolist()
    return list(zip(starts, [*starts[1:], len(cost)]))


class LayerwiseInference:
    """Chunked layer-by-layer message passing over one full graph (see the module docstring).

    graph: the HeteroData (``num_nodes`` per node type, ``edge_index`` / ``edge_attr`` per edge type).
    edge_types: the model's edge types; absent or empty ones send no messages, as in the full pass.
    chunk_edges: a chunk's budget of incoming edges plus destination nodes (each node costs 1 + its in-degree
        summed over the edge types ending at its type).
    """

    def __init__(self, graph, edge_types: list[EdgeType], chunk_edges: int):
        self.chunk_edges = int(chunk_edges)
        present = [tuple(et) for et in edge_types
                   if tuple(et) in graph.edge_types and graph[tuple(et)].edge_index.shape[1] > 0]
        self.num_nodes = {nt: int(graph[nt].num_nodes) for nt in graph.node_types}
        self.incoming: dict[str, list[EdgeType]] = {}
        for et in present:
            self.incoming.setdefault(et[2], []).append(et)
        self.edges: dict[EdgeType, DestinationEdges] = {}
        self.chunks: dict[str, list[tuple[int, int]]] = {}
        self.chunk_cost: dict[str, int] = {}  # the largest chunk's edges plus nodes, per destination type
        for nt, types in self.incoming.items():
            n = self.num_nodes[nt]
            degree = sum(torch.bincount(graph[et].edge_index[1], minlength=n) for et in types)
            self.chunks[nt] = chunk_bounds(degree + 1, self.chunk_edges)
            cum = torch.cumsum(degree + 1, 0)
            ends = torch.tensor([end for _, end in self.chunks[nt]], dtype=torch.long, device=cum.device)
            self.chunk_cost[nt] = int(torch.diff(cum[ends - 1], prepend=cum.new_zeros(1)).max())
            whole = len(self.chunks[nt]) == 1
            for et in types:
                self.edges[et] = self._by_destination(graph[et], n, keep_order=whole)

    @staticmethod
    def _by_destination(store, n_dst: int, keep_order: bool) -> DestinationEdges:
        src, dst = store.edge_index[0], store.edge_index[1]
        attr = store.edge_attr if "edge_attr" in store else None
        if keep_order:
            return DestinationEdges(src, dst, attr, None)
        if len(dst) > 1 and not bool((dst[1:] >= dst[:-1]).all()):  # reverse edge types come sorted already
            dst, perm = index_sort(dst, max_value=n_dst, stable=True)
            src = src[perm]
            attr = attr[perm] if attr is not None else None
        return DestinationEdges(src, dst, attr, index2ptr(dst, n_dst))

    def chunk_edges_of(self, et: EdgeType, start: int, end: int):
        """(source nodes [U] global, edge_index [2, E'] local to those sources and to the chunk, edge_attr [E', 1])
        of the edges of ``et`` ending at destinations ``start:end``."""
        edges = self.edges[et]
        if edges.ptr is None:  # the whole destination type in one chunk: the full pass's edges and sources
            return None, torch.stack([edges.src, edges.dst]), edges.edge_attr
        lo, hi = int(edges.ptr[start]), int(edges.ptr[end])
        sources, local_src = torch.unique(edges.src[lo:hi], return_inverse=True)
        edge_index = torch.stack([local_src, edges.dst[lo:hi] - start])
        return sources, edge_index, edges.edge_attr[lo:hi] if edges.edge_attr is not None else None

    @torch.no_grad()
    def layer(self, h: dict[str, torch.Tensor], message: Callable, update: Callable) -> dict[str, torch.Tensor]:
        """One layer for every node: ``message(et, x_src, x_dst, edge_index, edge_attr)`` -> [n_dst, hidden] per
        edge type, summed per destination, then ``update(node_type, x_dst, summed or None)`` -> [n_dst, hidden]."""
        out = {}
        for nt, x in h.items():
            types = self.incoming.get(nt)
            if not types:
                out[nt] = update(nt, x, None)
                continue
            result = torch.empty_like(x)
            for start, end in self.chunks[nt]:
                x_dst = x[start:end]
                summed = None
                for et in types:
                    sources, edge_index, edge_attr = self.chunk_edges_of(et, start, end)
                    x_src = h[et[0]] if sources is None else h[et[0]][sources]
                    m = message(et, x_src, x_dst, edge_index, edge_attr)
                    summed = m if summed is None else summed + m
                result[start:end] = update(nt, x_dst, summed)
            out[nt] = result
        return out


__all__ = ["LayerwiseInference", "chunk_bounds"]
