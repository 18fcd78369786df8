"""The one rule for categorical values: a vocabulary of the known strings, codes 1..K, and 0 = unknown.

Unknown is a missing value (None / NaN), an empty or blank string, the text "unknown" in any case, and,
when encoding, any value that is not in the vocabulary. The preprocessor (static features), the event
encoder (sequence features) and the graph's node features all encode through these two functions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

UNKNOWN_STRINGS = ("", "unknown")  # compared after strip() and lower()


def _distinct(series: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """(codes [n] into uniques, -1 = missing; uniques as strings), one look-up per distinct value."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes, uniques = series.cat.codes.to_numpy(), series.cat.categories
    else:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return codes, pd.Index(uniques).astype(str)


def is_unknown_string(values: pd.Index) -> np.ndarray:
    """[k] bool: which strings count as unknown (blank or "unknown")."""
    return np.asarray(pd.Index(values).str.strip().str.lower().isin(UNKNOWN_STRINGS), dtype=bool)


def fit_vocabulary(series: pd.Series) -> list[str]:
    """The sorted distinct known values of ``series`` as strings (its vocabulary: value i gets code i + 1)."""
    _, uniques = _distinct(series)
    return sorted(set(uniques[~is_unknown_string(uniques)]))


def encode(series: pd.Series, vocabulary) -> np.ndarray:
    """[n] int64 codes: vocabulary index + 1, and 0 for unknown, missing or unseen values."""
    codes, uniques = _distinct(series)
    if not len(uniques):
        return np.zeros(len(series), dtype=np.int64)
    mapping = pd.Index(list(vocabulary)).get_indexer(uniques) + 1  # -1 (unseen) -> 0
    mapping[is_unknown_string(uniques)] = 0
    return np.where(codes >= 0, mapping[np.maximum(codes, 0)], 0).astype(np.int64)
