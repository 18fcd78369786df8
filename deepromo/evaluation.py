"""Task evaluators: score a trained model and its baselines on the test split, same rows.

A model class names its task (``task`` attribute); ``EVALUATORS[task]`` turns predictions into a
metrics table ``{method: {metric: value}}`` plus curves for the plots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from deepromo.metrics.classification import binary_report
from deepromo.metrics.targeting import cumulative_gain_curve, gain_at


@dataclass
class Evaluation:
    """Metrics per method on the test split, what they were measured against, and plot data."""

    table: dict[str, dict[str, float]]
    target: str
    n_test: int
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def targeting_truth(dm, split: str = "test") -> tuple[np.ndarray, str]:
    """Labels of a split: true 'prompted' intent where the source knows it, else the observed engaged label."""
    rows = dm.indices[split]
    truth = dm.view.truth
    if truth is not None and "intent" in truth.columns:
        return (truth["intent"].to_numpy()[rows] == "prompted").astype(np.int64), "true intent: prompted"
    return dm.tensors["y"][rows].numpy().astype(np.int64), "observed label: engaged purchase (no ground truth)"


def evaluate_targeting(
    predictions: dict[str, tuple[np.ndarray, np.ndarray]], dm, split: str = "test", gain_share: float = 0.4
) -> Evaluation:
    """predictions: method -> (pred [n] in {0,1}, score [n]) for the rows of ``split``; metrics against the truth."""
    y_true, target = targeting_truth(dm, split)
    table, curves = {}, {}
    for method, (pred, score) in predictions.items():
        report = binary_report(y_true, pred, score)
        report[f"gain_at_{int(round(gain_share * 100))}"] = gain_at(y_true, score, gain_share)
        report["share_targeted"] = float(np.mean(pred))
        table[method] = report
        curves[method] = cumulative_gain_curve(y_true, score)
    return Evaluation(table=table, target=target, n_test=len(y_true), curves=curves)


EVALUATORS: dict[str, Callable[..., Evaluation]] = {"targeting": evaluate_targeting}


def task_outputs(task: str, arrays: dict[str, np.ndarray]):
    """What a task's evaluator needs from a model's outputs (targeting: decision in {0,1} and score)."""
    if task == "targeting":
        return arrays["pred_prompted"].astype(np.int64), arrays["score"]
    raise KeyError(f"no evaluator for task '{task}'; known tasks are {sorted(EVALUATORS)}")


def format_table(table: dict[str, dict[str, float]], digits: int = 3) -> str:
    """A Markdown table: one row per method, one column per metric."""
    metrics = list(dict.fromkeys(k for row in table.values() for k in row))
    lines = ["| method | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for method, row in table.items():
        cells = [f"{row[m]:.{digits}f}" if m in row else "" for m in metrics]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
