"""The synthetic market: a population with latent state and daily dynamics (``engine``), its switches and
numbers (``params``), and the logged world built from it (``world``, the ``synthetic`` source's default)."""

from deepromo.data.market.engine import OFFER_TIMINGS, OFFER_TYPES, Catalogue, DayLog, Market, Population
from deepromo.data.market.params import STRUCTURES, MarketStructures

__all__ = ["Catalogue", "DayLog", "Market", "MarketStructures", "OFFER_TIMINGS", "OFFER_TYPES", "Population",
           "STRUCTURES"]
