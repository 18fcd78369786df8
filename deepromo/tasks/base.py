"""The Task base class: what every task provides, and the Evaluation it returns.

A task's baselines live in its own registry (``task.baselines``): ``fn(dm, splits, seed, **params)`` trains on
the datamodule's training rows and returns ``{split: outputs}`` for each requested split, in the same
``outputs`` format that :meth:`Task.outputs` makes of a model's arrays. A tunable baseline declares its
``search_space`` (``task.search_spaces[name]``: param -> {type, low, high, log | choices}, as in the model
configs), so the leaderboard gives it the same Optuna budget as the deep models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from deepromo.data.errors import UserInputError

Baseline = Callable[..., dict[str, Any]]
BOOTSTRAP_REPLICATES = 200  # resamples behind the confidence intervals in every task's evaluation


@dataclass
class Evaluation:
    """Metrics per method on one split, what they were measured against, and plot data."""

    table: dict[str, dict[str, float]]
    target: str
    n_test: int
    curves: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)  # what the plots need besides the curves (e.g. levels)


class Task:
    """One prediction task. Subclasses set ``name`` and ``view`` and implement ``outputs``, ``evaluate``
    and ``plots``; the default datamodule serves flat or sequence rows (``PromoDataModule``)."""

    name: ClassVar[str] = "task"
    view: ClassVar[str] = "customer"  # the task view (deepromo.data.views) its models train on
    needs_validation: ClassVar[bool] = False  # the evaluator also reads every method's validation outputs
    plans_campaigns: ClassVar[bool] = False  # its outputs rank customers for a campaign (report.py)

    def __init__(self) -> None:
        self.baselines: dict[str, Baseline] = {}
        self.search_spaces: dict[str, dict[str, dict]] = {}
        self.postprocess: dict[str, Callable[[dict, Any, str], dict]] = {}

    def baseline(self, name: str, search_space: dict[str, dict] | None = None):
        """Decorator: register ``fn(dm, splits, seed, **params) -> {split: outputs}`` as this task's baseline
        ``name``, tunable over ``search_space`` when given."""

        def decorator(fn):
            if name in self.baselines:
                raise UserInputError(f"task '{self.name}' already has a baseline named '{name}'")
            self.baselines[name] = fn
            if search_space:
                self.search_spaces[name] = dict(search_space)
            return fn

        return decorator

    def run_baseline(self, name: str, dm, splits: Sequence[str], seed: int = 0,
                     params: dict[str, Any] | None = None) -> dict[str, Any]:
        """``{split: outputs}`` of baseline ``name`` trained on ``dm``'s training rows (``params``: tuned
        settings from its search space)."""
        if name not in self.baselines:
            raise UserInputError(f"unknown baseline '{name}' for task '{self.name}'; its baselines are "
                           f"{sorted(self.baselines)} (or a model variant: {{variant: {{hparam: value}}}})")
        unknown = sorted(set(params or {}) - set(self.search_spaces.get(name, {})))
        if unknown:
            raise UserInputError(f"baseline '{name}' of task '{self.name}' takes no setting(s) {unknown}; its "
                                 f"settings are {sorted(self.search_spaces.get(name, {})) or 'none'}")
        return self.baselines[name](dm, tuple(splits), seed=int(seed), **(params or {}))

    def skip_reason(self, options: dict, dm) -> str | None:
        """Why a configured baseline (its config ``options``) does not apply to ``dm``'s data, or None."""
        return None

    def make_datamodule(self, view, batch_size: int = 512, split: str | None = None, seed: int = 0,
                        options: dict[str, Any] | None = None):
        """The datamodule that serves ``view`` (options: the model's ``datamodule_options``)."""
        from deepromo.data.datamodule import PromoDataModule

        return PromoDataModule(view, batch_size=batch_size, split=split, seed=seed,
                               **(options or {}))

    def splits_to_score(self, split: str) -> tuple[str, ...]:
        """The splits whose outputs the evaluator of ``split`` reads."""
        return ("val", split) if self.needs_validation and split != "val" else (split,)

    def outputs(self, arrays: dict[str, np.ndarray], dm, split: str) -> dict[str, Any]:  # pragma: no cover
        """A model's ``predict_split`` arrays on ``split`` -> what ``evaluate`` reads for one method."""
        raise NotImplementedError

    def model_outputs(self, model, dm, splits: Sequence[str]) -> dict[str, Any]:
        """``{split: outputs}`` of a trained model."""
        return {s: self.outputs(model.predict_split(dm, s), dm, s) for s in splits}

    def evaluate(self, predictions: dict[str, dict[str, Any]], dm, split: str = "test") -> Evaluation:
        """predictions: method -> {split: outputs} (``splits_to_score(split)``); metrics on ``split``."""
        raise NotImplementedError  # pragma: no cover

    def plots(self, evaluation: Evaluation, dm, run_dir: Path) -> dict[str, Path]:
        """The task's plots of a test evaluation, written into ``run_dir``: ``{name: path}``."""
        return {}

    def decide(self, settings, outputs: dict[str, Any], dm, run_dir: Path, seed: int = 0):
        """A decision section from a model's test outputs (config ``model.allocation``): ``(report, {name: path})``."""
        raise UserInputError(f"task '{self.name}' makes no budget allocation; remove model.allocation from the config")

    def qini_scores(self, evaluation: Evaluation) -> dict[str, np.ndarray] | None:
        """Per-method uplift scores of an evaluation for a Qini plot, or None when the task has none."""
        return None

    def uplift_score(self, outputs: dict[str, Any]) -> np.ndarray:
        """[n] the score a campaign plan ranks customers by (tasks that plan campaigns)."""
        raise NotImplementedError(f"task '{self.name}' does not plan campaigns")

    def frame_outputs(self, model, frame, **context) -> dict[str, Any]:
        """Outputs of a trained model on raw rows (``model.predict_frame``), as ``outputs`` would give them."""
        raise NotImplementedError(f"task '{self.name}' does not score raw frames for decisions")  # pragma: no cover


GBM_SEARCH_SPACE = {  # the gradient-boosting baselines' tunable settings (scikit-learn HistGradientBoosting*)
    "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
    "max_iter": {"type": "int", "low": 50, "high": 500, "log": True},
    "max_leaf_nodes": {"type": "int", "low": 7, "high": 63, "log": True},
    "min_samples_leaf": {"type": "int", "low": 10, "high": 400, "log": True},
    "l2_regularization": {"type": "float", "low": 1e-4, "high": 10.0, "log": True},
}
GBM_DEFAULTS = {"max_iter": 200, "learning_rate": 0.05}  # the untuned setting of every gradient-boosting baseline
LOGISTIC_SEARCH_SPACE = {  # scikit-learn LogisticRegression's inverse L2 strength (default 1.0)
    "C": {"type": "float", "low": 1e-3, "high": 100.0, "log": True},
}


def gbm(kind: str, seed: int = 0, **params):
    """A scikit-learn ``HistGradientBoostingClassifier`` (kind "classifier") or ``...Regressor`` with the
    baselines' defaults overridden by ``params``."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingClassifier if kind == "classifier" else HistGradientBoostingRegressor
    return cls(**{**GBM_DEFAULTS, **params}, random_state=seed)


MAX_ONE_HOT = 64  # one-hot columns per categorical feature in the scikit-learn baselines (the rest: "infrequent")


def sklearn_features(dm, split: str, encoder=None):
    """Standardised numerics + one-hot categorical indices of a split: ``(X [n, d], encoder)``."""
    from sklearn.preprocessing import OneHotEncoder

    rows = dm.indices[split]
    cat = dm.tensors["cat"][rows].numpy()
    num = dm.tensors["num"][rows].numpy()
    if cat.shape[1] == 0:  # numeric features only
        return num.astype(np.float32), None
    if encoder is None:
        # infrequent values share one column: a 100k-value column gives MAX_ONE_HOT columns, not 100k
        encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=MAX_ONE_HOT,
                                sparse_output=False).fit(cat)
    return np.hstack([num, encoder.transform(cat)]).astype(np.float32), encoder


def split_labels(dm, split: str, key: str = "y") -> np.ndarray:
    """[n] int64 labels ``key`` of a split's rows."""
    return dm.tensors[key][dm.indices[split]].numpy().astype(np.int64)
