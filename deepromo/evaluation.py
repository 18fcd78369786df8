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


def true_curves(dm, split: str, levels) -> np.ndarray | None:
    """The synthetic world's true purchase probability at each level, ``[n, L]``, or None without truth."""
    truth = dm.view.truth
    columns = [f"true_p_{level:g}" for level in levels]
    if truth is None or not set(columns) <= set(truth.columns):
        return None
    return truth[columns].to_numpy(dtype=np.float64)[dm.indices[split]]


def response_metrics(curve: np.ndarray, p_obs: np.ndarray, y: np.ndarray, treatment: np.ndarray, levels,
                     truth: np.ndarray | None) -> dict[str, float]:
    """Fit (log-loss, AUC at the logged incentive), shape (monotonicity violations, roughness) and, with truth,
    curve and uplift RMSE; plus the Qini coefficient of the predicted uplift for each non-zero level."""
    from deepromo.metrics.uplift import qini_coefficient

    p = np.clip(p_obs, 1e-7, 1 - 1e-7)
    out = {
        "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
        "auc": binary_report(y, (p > 0.5).astype(np.int64), p)["auc"],
        "monotonicity_violations": float(np.mean((np.diff(curve, axis=1) < -1e-6).any(axis=1))),
        "roughness": float(np.mean(np.diff(curve, n=2, axis=1) ** 2)) if curve.shape[1] > 2 else 0.0,
    }
    if truth is not None:
        out["curve_rmse"] = float(np.sqrt(np.mean((curve - truth) ** 2)))
        uplift, true_uplift = curve[:, 1:] - curve[:, :1], truth[:, 1:] - truth[:, :1]
        out["uplift_rmse"] = float(np.sqrt(np.mean((uplift - true_uplift) ** 2)))
    for j, level in enumerate(levels[1:], start=1):
        rows = np.isin(treatment, (levels[0], level))
        treated = (treatment[rows] == level).astype(np.int64)
        if 0 < treated.sum() < len(treated) and y[rows].sum() > 0:
            out[f"qini_{level:g}"] = qini_coefficient(y[rows], treated, curve[rows, j] - curve[rows, 0])
    return out


def evaluate_response(predictions: dict[str, dict[str, np.ndarray]], dm, split: str = "test") -> Evaluation:
    """predictions: method -> {"p": [n] at the logged incentive, "curve": [n, L] at every level}."""
    rows = dm.indices[split]
    y = dm.tensors["y"][rows].numpy().astype(np.int64)
    treatment = dm.tensors["treatment"][rows].numpy().astype(np.float64)
    levels = tuple(dm.spec.treatment.levels or np.unique(treatment))
    truth = true_curves(dm, split, levels)
    table = {m: response_metrics(o["curve"], o["p"], y, treatment, levels, truth) for m, o in predictions.items()}
    target = "observed purchase; curves against the true response curves" if truth is not None else "observed purchase"
    return Evaluation(table=table, target=target, n_test=len(rows), curves={m: o["curve"] for m, o in predictions.items()})


def evaluate_purchase(predictions: dict[str, dict[str, np.ndarray]], dm, split: str = "test") -> Evaluation:
    """predictions: method -> {"p": [n] purchase probabilities on ``split``, "val_p": on the validation split}.

    The F1 threshold of each method is the one that maximises its F1 on the validation split, so the test
    F1 is an honest out-of-sample number; the ranking metrics need no threshold.
    """
    from deepromo.metrics.purchase import best_f1_threshold, purchase_report

    y = dm.tensors["y"][dm.indices[split]].numpy().astype(np.int64)
    y_val = dm.tensors["y"][dm.indices["val"]].numpy().astype(np.int64)
    table, curves = {}, {}
    for method, out in predictions.items():
        table[method] = purchase_report(y, out["p"], best_f1_threshold(y_val, out["val_p"]))
        curves[method] = (y, np.asarray(out["p"], dtype=np.float64))
    return Evaluation(table=table, target=f"observed purchase in the next window (base rate {y.mean():.3f})",
                      n_test=len(y), curves=curves)


def first_hit_ranks(scores: np.ndarray, relevant: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """[Q] rank (1 = top) of each query's best-ranked relevant item among its non-excluded items, with
    pessimistic ties (as ``ranking_report``); ``inf`` for queries without a relevant item. For the plots."""
    s = np.where(exclude, -np.inf, scores.astype(np.float64))
    best = np.where(relevant & ~exclude, s, -np.inf).max(axis=1, initial=-np.inf)
    beaten = ((s >= best[:, None]) & ~exclude & ~(relevant & (s == best[:, None]))).sum(axis=1)
    return np.where((relevant & ~exclude).any(axis=1), beaten + 1.0, np.inf)


def evaluate_ranking(predictions: dict[str, dict[str, np.ndarray]], dm, split: str = "test", k: int = 10,
                     curve_k: int = 20) -> Evaluation:
    """predictions: method -> {"customers": [Q] query customer nodes, "scores": [Q, n_offers]} on ``split``.

    NDCG@k, MRR, HitRate@k and Recall@k (torchmetrics retrieval, ``deepromo.metrics.ranking``) over the
    split's customers with a redemption; offers they redeemed before the split's cut are left out
    (they are known, not predictions). Curves: HitRate@1..curve_k for the plot.
    """
    from deepromo.metrics.ranking import ranking_report

    customers, relevant, exclude = (t.numpy() for t in dm.ranking_targets(split))
    table, curves = {}, {}
    for method, out in predictions.items():
        if not np.array_equal(np.asarray(out["customers"]), customers):
            raise ValueError(f"method '{method}': its scores cover other query customers than split '{split}'")
        report = ranking_report(out["scores"], relevant, k=k, exclude=exclude)
        n_queries = report.pop("n_queries")
        report.pop("n_skipped")
        table[method] = {name.replace("@", "_at_"): float(v) for name, v in report.items()}
        ranks = first_hit_ranks(np.asarray(out["scores"]), relevant, exclude)
        ranks = ranks[np.isfinite(ranks)]
        curves[method] = np.array([np.mean(ranks <= j) for j in range(1, curve_k + 1)])
    n_offers = relevant.shape[1]
    return Evaluation(table=table, target=f"offers redeemed after the cut ({n_offers} offers ranked, known "
                                          "redemptions left out)", n_test=int(n_queries) if predictions else 0,
                      curves=curves)


EVALUATORS: dict[str, Callable[..., Evaluation]] = {
    "targeting": evaluate_targeting, "response": evaluate_response, "purchase": evaluate_purchase,
    "ranking": evaluate_ranking,
}
NEEDS_VALIDATION_OUTPUTS = ("purchase",)  # tasks whose evaluator also reads each method's validation predictions


def task_outputs(task: str, arrays: dict[str, np.ndarray], val_arrays: dict[str, np.ndarray] | None = None):
    """What a task's evaluator needs from a model's outputs (targeting: decision in {0,1} and score;
    response: probability at the logged incentive and the curve over all levels; purchase: the
    probabilities on the evaluated split and on the validation split; ranking: the query customers and
    their scores for every offer)."""
    if task == "targeting":
        return arrays["pred_prompted"].astype(np.int64), arrays["score"]
    if task == "response":
        levels = [k for k in arrays if k.startswith("p_at_")]
        return {"p": arrays["p"], "curve": np.stack([arrays[k] for k in levels], axis=1)}
    if task == "purchase":
        return {"p": arrays["p"], "val_p": val_arrays["p"]}
    if task == "ranking":
        return {"customers": arrays["customers"], "scores": arrays["scores"]}
    raise KeyError(f"no evaluator for task '{task}'; known tasks are {sorted(EVALUATORS)}")


def predict_split(model, dm, split: str = "test") -> dict[str, np.ndarray]:
    """A trained model's output arrays on one split of the datamodule (``model.predict_split``)."""
    return model.predict_split(dm, split)


def model_outputs(task: str, model, dm, split: str = "test"):
    """``task_outputs`` of a trained model on ``split`` (plus its validation outputs where the task needs them)."""
    val = predict_split(model, dm, "val") if task in NEEDS_VALIDATION_OUTPUTS else None
    return task_outputs(task, predict_split(model, dm, split), val)


def format_table(table: dict[str, dict[str, float]], digits: int = 3) -> str:
    """A Markdown table: one row per method, one column per metric."""
    metrics = list(dict.fromkeys(k for row in table.values() for k in row))
    lines = ["| method | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for method, row in table.items():
        cells = [f"{row[m]:.{digits}f}" if m in row else "" for m in metrics]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def task_plots(task: str, evaluation: Evaluation, dm, run_dir) -> list:
    """The task's plots in ``run_dir``: gain curves (targeting), response curves (response), ROC/PR
    (purchase) or HitRate@k (ranking)."""
    from pathlib import Path

    from deepromo.plots import plot_gain_curves, plot_hit_rate_curves, plot_response_curves, plot_roc_pr

    run_dir = Path(run_dir)
    if task == "targeting":
        return [plot_gain_curves(evaluation.curves, run_dir / "gain_curve.png",
                                 title=f"Cumulative gain on the test split ({evaluation.target})")]
    if task == "response":
        levels = tuple(dm.spec.treatment.levels)
        truth = true_curves(dm, "test", levels)
        return [plot_response_curves(levels, evaluation.curves, truth, run_dir / "response_curves.png")]
    if task == "purchase":
        return [plot_roc_pr(evaluation.curves, run_dir / "roc_pr.png",
                            title=f"Test split: {evaluation.target}")]
    if task == "ranking":
        return [plot_hit_rate_curves(evaluation.curves, run_dir / "hit_rate_at_k.png",
                                     title=f"Test split (n={evaluation.n_test} customers): HitRate@k")]
    return []
