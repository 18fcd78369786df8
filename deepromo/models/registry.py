"""The model registry: ``@register_model("name")`` on a PromoModel subclass.

A built-in model lives in ``deepromo/models/<name>.py`` (or a ``<name>/`` package) and is imported on
its first lookup, so scoring one model never imports another's libraries (e.g. PyG for gat). Outside
packages register models through the ``deepromo.models`` entry-point group (value:
``package.module:ModelClass``); they are loaded on the first lookup too.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import pkgutil
from importlib.metadata import entry_points
from pathlib import Path

from deepromo.data.errors import UserInputError

_REGISTRY: dict[str, type] = {}
_ENTRY_POINTS_LOADED = False
ENTRY_POINT_GROUP = "deepromo.models"
INFRASTRUCTURE = ("base", "registry", "layers", "losses")  # modules of this package that are not models


class UnknownModelError(UserInputError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def register_model(name: str):
    """Class decorator: register ``cls`` under ``name``; a duplicate name is an error."""

    def decorator(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise UserInputError(f"a model named '{name}' is already registered ({_REGISTRY[name].__qualname__})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


@functools.cache
def _builtin_modules() -> tuple[str, ...]:
    """Names of the model modules and packages in ``deepromo/models/`` (read once per process)."""
    here = [str(Path(__file__).resolve().parent)]
    return tuple(m.name for m in pkgutil.iter_modules(here) if m.name not in INFRASTRUCTURE)


def _import_builtin(name: str) -> None:
    if name in _builtin_modules():
        importlib.import_module(f"{__package__}.{name}")


def _load_entry_points() -> None:
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _REGISTRY:
            ep.load()  # importing the module runs its @register_model


def list_models() -> list[str]:
    """Names of all registered models, sorted (imports every model module)."""
    for name in _builtin_modules():
        importlib.import_module(f"{__package__}.{name}")
    _load_entry_points()
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type:
    """The class registered as ``name`` (importing only its own module when it is a built-in model)."""
    if name not in _REGISTRY:
        _import_builtin(str(name))
    if name not in _REGISTRY:
        _load_entry_points()
    if name not in _REGISTRY:
        raise UnknownModelError(f"unknown model '{name}'; registered models are {list_models()}")
    return _REGISTRY[name]
