"""Models: the registry, the base class and the registered models.

Every module in this package is imported here, so a new model file registers itself with
``@register_model`` without any other file being edited.
"""

import importlib
import pkgutil

from deepromo.models.base import PromoModel
from deepromo.models.registry import get_model_class, list_models, register_model

for _module in pkgutil.iter_modules(__path__):
    if not _module.ispkg:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["PromoModel", "get_model_class", "list_models", "register_model"]
