"""Models: the registry, the base class and the registered models (importing registers them)."""

from deepromo.models.base import PromoModel
from deepromo.models.registry import get_model_class, list_models, register_model
from deepromo.models import splc  # noqa: F401  (registers "splc")

__all__ = ["PromoModel", "get_model_class", "list_models", "register_model"]
