"""Plots saved as PNG (matplotlib Agg backend; figures are always closed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from deepromo.data.errors import UserInputError

__all__ = ["plot_gain_curves", "plot_response_curves", "plot_roc_pr", "plot_hit_rate_curves", "plot_qini_curves",
           "saved_figure"]


@contextmanager
def saved_figure(path: Path, dpi: int = 120, **subplots) -> Iterator[tuple]:
    """``(fig, axes)`` of ``plt.subplots(**subplots)``; on leaving, laid out and saved as ``path`` (folders
    created); the figure is closed either way."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(**subplots)
    try:
        yield fig, axes
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)


def plot_gain_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    path,
    title: str = "Cumulative gain",
    marker_share: float = 0.4,
    perfect: tuple[np.ndarray, np.ndarray] | None = None,
) -> Path:
    """Plot cumulative gain curves, one line per method, plus the random diagonal (and `perfect` if given).

    curves: name -> (x share targeted [P], y share of positives reached [P]), e.g. from cumulative_gain_curve.
    Each method's gain at `marker_share` (interpolated) is marked and written in its legend label.
    Returns the PNG path.
    """
    if not curves:
        raise UserInputError("curves: expected at least one (x, y) curve, got an empty dict")
    if not (0.0 <= marker_share <= 1.0):
        raise UserInputError(f"marker_share: expected a share in [0, 1], got {marker_share!r}")
    path = Path(path)
    with saved_figure(path, figsize=(6, 5)) as (fig, ax):
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="random")
        if perfect is not None:
            ax.plot(*perfect, ls=":", color="black", lw=1, label="perfect")
        for name, (x, y) in curves.items():
            x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
            if x.shape != y.shape or x.ndim != 1:
                raise UserInputError(f"curves[{name!r}]: expected x and y 1-D of equal length, got {x.shape} and {y.shape}")
            gain = float(np.interp(marker_share, x, y))
            (line,) = ax.plot(x, y, lw=1.8, label=f"{name} ({gain:.0%} at {marker_share:.0%})")
            ax.plot([marker_share], [gain], "o", color=line.get_color())
            ax.annotate(f"{gain:.0%}", (marker_share, gain), textcoords="offset points", xytext=(6, -10),
                        color=line.get_color(), fontsize=8)
        ax.axvline(marker_share, color="grey", lw=0.6, alpha=0.6)
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="share of customers targeted",
               ylabel="share of positives reached", title=title)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    return path


def plot_response_curves(levels, curves: dict[str, np.ndarray], truth: np.ndarray | None, path,
                         customers: int = 4, title: str = "Response curves of test customers") -> Path:
    """Predicted purchase probability over incentive levels for a few customers, one panel each.

    levels: [L]; curves: method -> [n, L]; truth: [n, L] true curves or None. Customers are picked
    across the range of true (else first method's) uplift so the panels differ.
    """
    path = Path(path)
    ref = truth if truth is not None else next(iter(curves.values()))
    order = np.argsort(ref[:, -1] - ref[:, 0])
    picks = order[np.linspace(0, len(order) - 1, customers).round().astype(int)]
    with saved_figure(path, dpi=110, nrows=1, ncols=customers, figsize=(3.2 * customers, 3.4),
                      sharey=False) as (fig, axes):
        for ax, customer in zip(np.atleast_1d(axes), picks):
            if truth is not None:
                ax.plot(levels, truth[customer], "k--", lw=2, label="true")
            for method, curve in curves.items():
                ax.plot(levels, curve[customer], marker="o", ms=3, label=method)
            ax.set_title(f"test customer #{customer}", fontsize=9)
            ax.set_xlabel("incentive")
            ax.grid(alpha=0.3)
        np.atleast_1d(axes)[0].set_ylabel("P(purchase)")
        np.atleast_1d(axes)[-1].legend(fontsize=7)
        fig.suptitle(title)
    return path


def plot_roc_pr(scores: dict[str, tuple[np.ndarray, np.ndarray]], path, title: str = "ROC and precision-recall") -> Path:
    """ROC (left) and precision-recall (right) curves, one line per method; scores: name -> (y_true [n], p [n])."""
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    if not scores:
        raise UserInputError("scores: expected at least one method, got an empty dict")
    path = Path(path)
    with saved_figure(path, nrows=1, ncols=2, figsize=(11, 4.8)) as (fig, (roc_ax, pr_ax)):
        roc_ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="random")
        base = None
        for name, (y_true, prob) in scores.items():
            fpr, tpr, _ = roc_curve(y_true, prob)
            roc_ax.plot(fpr, tpr, lw=1.6, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
            precision, recall, _ = precision_recall_curve(y_true, prob)
            pr_ax.plot(recall, precision, lw=1.6, label=name)
            base = float(np.mean(y_true))
        pr_ax.axhline(base, ls="--", color="grey", lw=1, label=f"base rate {base:.3f}")
        roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.02))
        pr_ax.set(xlabel="recall", ylabel="precision", title="precision-recall", xlim=(0, 1), ylim=(0, 1.02))
        for ax in (roc_ax, pr_ax):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, loc="lower right" if ax is roc_ax else "upper right")
        fig.suptitle(title, fontsize=10)
    return path


def plot_hit_rate_curves(curves: dict[str, np.ndarray], path, title: str = "HitRate@k") -> Path:
    """HitRate@k for k = 1..K, one line per method; curves: name -> [K] share of customers with a hit."""
    if not curves:
        raise UserInputError("curves: expected at least one method, got an empty dict")
    path = Path(path)
    with saved_figure(path, figsize=(6.5, 4.5)) as (fig, ax):
        for name, curve in curves.items():
            ks = np.arange(1, len(curve) + 1)
            ax.plot(ks, curve, marker="o", ms=3, lw=1.6, label=name)
        ax.set(xlabel="k (offers shown)", ylabel="share of customers with a redeemed offer in the top k",
               title=title, ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    return path


def plot_qini_curves(y, treatment, scores: dict[str, np.ndarray], path, title: str = "Qini curves") -> Path:
    """Qini curves (incremental responders vs share targeted by score) of every method in one PNG.

    y, treatment: [n] observed 0/1 outcome and 0/1 treatment of a randomised split. scores: {method: [n] uplift
    score}; a method named ``random`` is drawn grey and dotted. The dashed line is random targeting.
    """
    from deepromo.metrics.uplift import qini_coefficient, qini_curve

    path = Path(path)
    with saved_figure(path, figsize=(7.5, 5.5)) as (fig, ax):
        end = 0.0
        colours = iter(colour for i, colour in enumerate(plt.get_cmap("tab10").colors) if i != 7)  # grey is for random
        for name, score in scores.items():
            x, q = qini_curve(y, treatment, score)
            style = {"ls": ":", "color": "grey"} if name == "random" else {"color": next(colours, None)}
            ax.plot(x, q, lw=1.6, label=f"{name} (Qini {qini_coefficient(y, treatment, score):.3f})", **style)
            end = q[-1]
        ax.plot([0, 1], [0, end], ls="--", color="black", lw=0.8, label="random targeting line")
        ax.set(xlim=(0, 1), xlabel="share of customers targeted (by score)",
               ylabel="incremental responders in the targeted set", title=title)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=7)
    return path
