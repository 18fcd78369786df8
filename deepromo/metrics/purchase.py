"""Purchase-prediction metrics: ranking (AUC, PR-AUC, precision@k), decision (F1 at a threshold) and calibration.

torchmetrics computes AUC-ROC, average precision (PR-AUC), F1 and the calibration error; only the
threshold search and precision@k (a top-k-share cut, not a per-query retrieval metric) are written here.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.classification import binary_average_precision, binary_f1_score

from deepromo.data.errors import UserInputError
from deepromo.metrics.classification import (
    _binary,
    _same_len,
    _scores,
    binary_report,
    expected_calibration_error,
)

__all__ = ["best_f1_threshold", "precision_at_share", "purchase_report"]


def best_f1_threshold(y_true, prob) -> float:
    """The probability threshold that maximises F1 on (y_true, prob): the midpoint below the best cut.

    Every distinct score is a candidate cut "predict 1 when prob >= s"; ties are never split.
    """
    y = _binary(y_true, "y_true")
    p = _scores(prob, "prob")
    _same_len(y_true=y, prob=p)
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    last_of_tie = np.r_[ps[1:] != ps[:-1], True]  # cut after the last row of each run of equal scores
    tp = np.cumsum(ys)[last_of_tie]
    k = np.flatnonzero(last_of_tie) + 1  # rows predicted positive
    f1 = 2 * tp / (k + ys.sum())
    i = int(np.argmax(f1))
    cut = ps[last_of_tie][i]
    below = ps[last_of_tie][i + 1] if i + 1 < len(tp) else cut - 1e-6
    return float((cut + below) / 2.0)


def precision_at_share(y_true, score, share: float) -> float:
    """Purchase rate among the top ``share`` of rows by score (ceil(share * n) rows, at least one)."""
    y = _binary(y_true, "y_true")
    s = _scores(score, "score")
    _same_len(y_true=y, score=s)
    if not 0 < share <= 1:
        raise UserInputError(f"share must lie in (0, 1], got {share}")
    k = max(1, int(np.ceil(share * len(s))))
    top = np.argsort(-s, kind="stable")[:k]
    return float(y[top].mean())


def purchase_report(y_true, prob, threshold: float, shares=(0.05, 0.10)) -> dict[str, float]:
    """AUC, PR-AUC, F1 / precision / recall at ``threshold`` (chosen on validation data), precision at the
    top shares, ECE and log-loss of probabilities ``prob [n]`` against purchases ``y_true [n]``."""
    y = _binary(y_true, "y_true")
    p = _scores(prob, "prob")
    _same_len(y_true=y, prob=p)
    pred = (p >= threshold).astype(np.int64)
    report = binary_report(y, pred, p)
    t_p, t_y = torch.from_numpy(p), torch.from_numpy(y)
    pc = np.clip(p, 1e-7, 1 - 1e-7)
    out = {
        "auc": report["auc"],
        "pr_auc": float(binary_average_precision(t_p, t_y)) if 0 < y.sum() < len(y) else float("nan"),
        "f1": float(binary_f1_score(torch.from_numpy(pred), t_y)),
        "precision": report["precision"],
        "recall": report["recall"],
        "threshold": float(threshold),
    }
    for share in shares:
        out[f"precision_at_{int(round(share * 100))}"] = precision_at_share(y, p, share)
    out["ece"] = expected_calibration_error(y, p)
    out["log_loss"] = float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc)))
    return out
