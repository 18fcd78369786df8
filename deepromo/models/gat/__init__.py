"""gat: the graph attention offer ranker (``model.py``) and its serving half (``serving.py``)."""

from deepromo.models.gat.model import GATOfferRanker

__all__ = ["GATOfferRanker"]
