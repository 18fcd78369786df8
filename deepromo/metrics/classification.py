"""Binary classification metrics (torchmetrics under the hood, the AUC from average ranks; python floats out)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics.functional.classification import (
    binary_calibration_error,
    binary_precision,
    binary_recall,
    multiclass_f1_score,
    multiclass_recall,
)

from deepromo.data.errors import UserInputError

__all__ = ["binary_report", "expected_calibration_error", "roc_auc"]


def _as_1d(x, name: str) -> np.ndarray:
    """Array-like (numpy / torch / list) -> 1-D float64 numpy array; ValueError if not 1-D or empty."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise UserInputError(f"{name}: expected a 1-D numeric array-like, could not convert ({e})") from None
    if a.ndim != 1:
        raise UserInputError(f"{name}: expected a 1-D array, got shape {a.shape}")
    if a.size == 0:
        raise UserInputError(f"{name}: expected at least one element, got an empty array")
    return a


def _binary(x, name: str) -> np.ndarray:
    """1-D array with values in {0, 1} -> int64 numpy array."""
    a = _as_1d(x, name)
    bad = ~np.isin(a, (0.0, 1.0))
    if bad.any():
        raise UserInputError(f"{name}: expected values in {{0, 1}}, found e.g. {np.unique(a[bad])[:5].tolist()}")
    return a.astype(np.int64)


def _scores(x, name: str) -> np.ndarray:
    """1-D finite float array (no NaN / inf)."""
    a = _as_1d(x, name)
    if not np.isfinite(a).all():
        raise UserInputError(f"{name}: expected finite scores, found {int((~np.isfinite(a)).sum())} NaN/inf value(s)")
    return a


def _same_len(**arrays: np.ndarray) -> None:
    lens = {k: len(v) for k, v in arrays.items()}
    if len(set(lens.values())) > 1:
        raise UserInputError(f"length mismatch: expected equal lengths, got {lens}")


def binary_report(y_true, y_pred, score=None) -> dict[str, float]:
    """Classification report for hard predictions (and optional scores).

    y_true, y_pred: [N] labels in {0, 1}; score: [N] real-valued scores (higher = more positive) or None.
    Returns floats: precision, recall (positive class), balanced_accuracy (macro recall over {0, 1}),
    weighted_f1 (per-class F1 weighted by class support in y_true), auc (ROC AUC of score; NaN when
    score is None or y_true holds a single class). Zero-division cases give 0 (torchmetrics default).
    """
    yt = _binary(y_true, "y_true")
    yp = _binary(y_pred, "y_pred")
    _same_len(y_true=yt, y_pred=yp)
    t, p = torch.from_numpy(yt), torch.from_numpy(yp)
    out = {
        "precision": float(binary_precision(p, t)),
        "recall": float(binary_recall(p, t)),
        "balanced_accuracy": float(multiclass_recall(p, t, num_classes=2, average="macro")),
        "weighted_f1": float(multiclass_f1_score(p, t, num_classes=2, average="weighted")),
        "auc": math.nan,
    }
    if score is not None:
        out["auc"] = roc_auc(yt, score)
    return out


def roc_auc(y_true, score) -> float:
    """ROC AUC of ``score`` [N] against labels ``y_true`` [N] in {0, 1} (NaN for a single class), from average ranks
    (the Mann-Whitney U statistic: ties count one half). Rank-based, so out-of-range scores need no squashing and
    close scores are not merged by float32 rounding; cheap enough for bootstrap loops."""
    from scipy.stats import rankdata

    yt, s = _binary(y_true, "y_true"), _scores(score, "score")
    _same_len(y_true=yt, score=s)
    n_pos = int(yt.sum())
    n_neg = len(yt) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    return float((rankdata(s)[yt == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def expected_calibration_error(y_true, prob, n_bins: int = 15) -> float:
    """Expected calibration error (L1, equal-width bins on [0, 1]) of probabilities prob [N] vs y_true [N] in {0,1}."""
    yt = _binary(y_true, "y_true")
    p = _scores(prob, "prob")
    _same_len(y_true=yt, prob=p)
    if (p < 0).any() or (p > 1).any():
        raise UserInputError(f"prob: expected probabilities in [0, 1], got range [{p.min()}, {p.max()}]")
    if int(n_bins) != n_bins or n_bins < 1:
        raise UserInputError(f"n_bins: expected a positive integer, got {n_bins!r}")
    return float(binary_calibration_error(torch.from_numpy(p), torch.from_numpy(yt), n_bins=int(n_bins), norm="l1"))
