"""Static feature encoder: categorical embeddings + numeric features -> one vector per row."""

from __future__ import annotations

import torch
from torch import nn

from deepromo.data.spec import FeatureSpec


class FeatureEncoder(nn.Module):
    """``cat [B, Nc] long, num [B, Nn] float -> [B, out_dim]`` (concatenated embeddings and numerics)."""

    def __init__(self, spec: FeatureSpec):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(f.cardinality, f.embedding_dim) for f in spec.categorical)
        self.n_numeric = spec.n_numeric
        self.out_dim = sum(f.embedding_dim for f in spec.categorical) + spec.n_numeric

    def forward(self, cat: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        parts = [emb(cat[:, j]) for j, emb in enumerate(self.embeddings)]
        if self.n_numeric:
            parts.append(num)
        return torch.cat(parts, dim=-1)


def mlp(in_dim: int, hidden: list[int] | tuple[int, ...], out_dim: int, dropout: float = 0.0) -> nn.Sequential:
    """Linear-ReLU-Dropout blocks then a linear output layer."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), nn.ReLU(), nn.Dropout(dropout)]
        in_dim = h
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)
