"""Models: the registry, the base class and the registered models (one module or package per model).

Model modules are imported on first lookup, not here: ``get_model_class("splc")`` imports only
``deepromo.models.splc``; ``list_models()`` imports them all. A new model file registers itself with
``@register_model`` without any other file being edited.
"""

from deepromo.models.registry import get_model_class, list_models, register_model

__all__ = ["PromoModel", "get_model_class", "list_models", "register_model"]


def __getattr__(name: str):
    if name == "PromoModel":  # imports Lightning: only when asked for
        from deepromo.models.base import PromoModel

        return PromoModel
    raise AttributeError(f"module 'deepromo.models' has no attribute '{name}'")
