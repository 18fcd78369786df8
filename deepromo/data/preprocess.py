"""Preprocessor: categorical vocabularies (0 = unknown) and numeric standardisation, saved as JSON.

Fitted on the training split only; at prediction time unseen categories map to index 0 and
never crash, while missing or non-finite numeric values raise an error naming the column.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from deepromo.data.encoding import encode, fit_vocabulary
from deepromo.data.sequences import EventEncoder
from deepromo.data.spec import CategoricalFeature, NumericFeature
from deepromo.data.tables import DataValidationError


FLOAT32_SAFE = 1e30  # largest magnitude accepted in a numeric feature: float32 holds ~3.4e38, and sums must fit


def row_label(df: pd.DataFrame, mask: np.ndarray):
    """The index label of the first row where ``mask`` is true (what the user sees in their frame)."""
    return df.index[int(np.argmax(mask))]


def check_scalar_values(df: pd.DataFrame, col: str) -> None:
    """A categorical column holds one value per row: lists, dicts, sets or arrays are refused, naming the row."""
    series = df[col]
    if series.dtype != object:
        return
    nested = series.map(lambda v: isinstance(v, (list, tuple, dict, set, np.ndarray))).to_numpy(dtype=bool)
    if nested.any():
        raise DataValidationError(f"column '{col}' holds {type(series[nested].iloc[0]).__name__} values (first at "
                                  f"row {row_label(df, nested)}); expected one category per row")


def default_embedding_dim(cardinality: int) -> int:
    """fast.ai's rule of thumb, capped at 16: grows slowly with the vocabulary size."""
    return int(min(16, max(2, round(1.6 * cardinality**0.56))))


class Preprocessor:
    """Maps raw customer columns to ``cat [N, Nc] int64`` and ``num [N, Nn] float32``.

    categorical: columns encoded through a vocabulary fitted on training data (index 0 = unknown).
    numeric: columns standardised to zero mean / unit variance; ``log_columns`` get log1p first
    (for heavy-tailed money and count columns).
    """

    def __init__(self, categorical: Sequence[str] = (), numeric: Sequence[str] = (), log_columns: Sequence[str] = ()):
        self.categorical = list(categorical)
        self.numeric = list(numeric)
        self.log_columns = [c for c in log_columns if c in self.numeric]
        self.vocab: dict[str, list[str]] = {}
        self.stats: dict[str, dict[str, float]] = {}
        self.events: EventEncoder | None = None  # per-event features of sequence models (deepromo.data.sequences)

    @property
    def fitted(self) -> bool:
        return len(self.vocab) == len(self.categorical) and len(self.stats) == len(self.numeric)

    @property
    def columns(self) -> list[str]:
        return self.categorical + self.numeric

    def check_columns(self, df: pd.DataFrame, what: str = "input") -> None:
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise DataValidationError(
                f"{what} lacks required column(s) {missing}; expected columns {self.columns}"
            )

    def _numeric_values(self, df: pd.DataFrame, col: str) -> np.ndarray:
        """[n] float64 values of a numeric feature column (log1p-scaled where configured), or an error naming the
        column and the first offending row: non-numbers (text, dates, durations, complex), NaN/inf, and
        magnitudes that float32 (the model's precision) cannot hold."""
        series = df[col]
        kind = series.dtype.kind
        if kind in "mMc" or isinstance(series.dtype, pd.DatetimeTZDtype):
            what = {"m": "durations", "M": "timestamps", "c": "complex numbers"}.get(kind, "timestamps")
            raise DataValidationError(f"column '{col}' holds {what} ({series.dtype}); expected plain numbers "
                                      "(convert it, e.g. to days, first)")
        try:
            x = pd.to_numeric(series, errors="raise").to_numpy(dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise DataValidationError(f"column '{col}' must be numeric: {exc}") from None
        bad = ~np.isfinite(x)
        if bad.any():
            raise DataValidationError(
                f"column '{col}' has {int(bad.sum())} NaN/inf value(s) (first at row {row_label(df, bad)}); "
                "expected finite numbers — fill or drop them first"
            )
        if col in self.log_columns:
            if (x < 0).any():
                raise DataValidationError(f"column '{col}' has negative values (first at row {row_label(df, x < 0)}); "
                                          "expected >= 0 (it is log1p-scaled)")
            x = np.log1p(x)
        huge = np.abs(x) > FLOAT32_SAFE
        if huge.any():
            raise DataValidationError(f"column '{col}' has {int(huge.sum())} value(s) beyond ±{FLOAT32_SAFE:.0e} (first "
                                      f"{x[huge][0]:.3g} at row {row_label(df, huge)}), which float32 cannot hold")
        return x

    def fit(self, df: pd.DataFrame) -> "Preprocessor":
        self.check_columns(df, "training data")
        if len(df) == 0:
            raise DataValidationError("training data is empty (0 rows)")
        for col in self.categorical:
            self.vocab[col] = fit_vocabulary(df[col])
        for col in self.numeric:
            x = self._numeric_values(df, col)
            mean, std = float(x.mean()), float(x.std())
            if not (np.isfinite(mean) and np.isfinite(std)):
                raise DataValidationError(f"column '{col}': its mean or spread is not finite (mean {mean}, sd {std}); "
                                          "the values are too large to standardise — rescale the column")
            self.stats[col] = {"mean": mean, "std": std if std > 1e-12 else 1.0}
        return self

    def transform(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(cat [N, Nc] int64, num [N, Nn] float32)``."""
        if not self.fitted:
            raise RuntimeError("Preprocessor.transform called before fit (or load)")
        self.check_columns(df)
        n = len(df)
        cat = np.zeros((n, len(self.categorical)), dtype=np.int64)
        for j, col in enumerate(self.categorical):
            check_scalar_values(df, col)
            cat[:, j] = encode(df[col], self.vocab[col])
        num = np.zeros((n, len(self.numeric)), dtype=np.float32)
        with np.errstate(over="ignore"):
            for j, col in enumerate(self.numeric):
                s = self.stats[col]
                num[:, j] = (self._numeric_values(df, col) - s["mean"]) / s["std"]
        bad = ~np.isfinite(num)
        if bad.any():
            row, j = np.argwhere(bad)[0]
            raise DataValidationError(f"column '{self.numeric[j]}': value {df[self.numeric[j]].iloc[row]!r} at row "
                                      f"{df.index[row]} is so far from the training data that its standardised "
                                      "value overflows float32")
        return cat, num

    def categorical_features(self) -> tuple[CategoricalFeature, ...]:
        return tuple(
            CategoricalFeature(c, len(self.vocab[c]) + 1, default_embedding_dim(len(self.vocab[c]) + 1))
            for c in self.categorical
        )

    def numeric_features(self) -> tuple[NumericFeature, ...]:
        return tuple(NumericFeature(c) for c in self.numeric)

    def to_dict(self) -> dict:
        return {
            "version": 1,
            "categorical": self.categorical,
            "numeric": self.numeric,
            "log_columns": self.log_columns,
            "vocab": self.vocab,
            "stats": self.stats,
            "events": None if self.events is None else self.events.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessor":
        p = cls(d["categorical"], d["numeric"], d.get("log_columns", ()))
        p.vocab = {k: list(v) for k, v in d["vocab"].items()}
        p.stats = {k: {"mean": float(v["mean"]), "std": float(v["std"])} for k, v in d["stats"].items()}
        if d.get("events"):
            p.events = EventEncoder.from_dict(d["events"])
        for col, s in p.stats.items():
            if not (math.isfinite(s["mean"]) and math.isfinite(s["std"])):
                raise DataValidationError(f"preprocessor stats for '{col}' are not finite: {s}")
        return p

    @classmethod
    def from_json(cls, text: str) -> "Preprocessor":
        return cls.from_dict(json.loads(text))

    def save(self, path) -> None:
        with open(path, "w") as fh:
            fh.write(self.to_json())

    @classmethod
    def load(cls, path) -> "Preprocessor":
        with open(path) as fh:
            return cls.from_json(fh.read())
