"""The model registry: ``@register_model("name")`` on a PromoModel subclass.

Outside packages register models through the ``deepromo.models`` entry-point group
(value: ``package.module:ModelClass``); they are loaded on the first lookup.
"""

from __future__ import annotations

from importlib.metadata import entry_points

_REGISTRY: dict[str, type] = {}
_ENTRY_POINTS_LOADED = False
ENTRY_POINT_GROUP = "deepromo.models"


class UnknownModelError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def register_model(name: str):
    """Class decorator: register ``cls`` under ``name``; a duplicate name is an error."""

    def decorator(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"a model named '{name}' is already registered ({_REGISTRY[name].__qualname__})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def _load_entry_points() -> None:
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _REGISTRY:
            ep.load()  # importing the module runs its @register_model


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    _load_entry_points()
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type:
    _load_entry_points()
    if name not in _REGISTRY:
        raise UnknownModelError(f"unknown model '{name}'; registered models are {sorted(_REGISTRY)}")
    return _REGISTRY[name]
