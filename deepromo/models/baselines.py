"""Classic baselines scored side by side with the deep models (scikit-learn and rule-based).

Each baseline is ``fit_predict(datamodule, seed)`` trained on the datamodule's training rows and
returning what its task's evaluator reads for the test rows: targeting ``(pred [n] in {0,1}, score [n])``,
response ``{"p": [n] at the logged incentive, "curve": [n, L] at every level}``.
``POSTPROCESS`` holds transformations applied to another method's outputs (e.g. isotonic smoothing).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder

from deepromo.decide.segments import RFM_TOP_SEGMENTS, rfm_scores, rfm_segment

Baseline = Callable[..., tuple[np.ndarray, np.ndarray]]
BASELINES: dict[str, Baseline] = {}


def register_baseline(name: str):
    def decorator(fn):
        BASELINES[name] = fn
        return fn

    return decorator


def sklearn_features(dm, split: str, encoder: OneHotEncoder | None = None):
    """Standardised numerics + one-hot categorical indices of a split: ``(X [n, d], encoder)``."""
    rows = dm.indices[split]
    cat = dm.tensors["cat"][rows].numpy()
    num = dm.tensors["num"][rows].numpy()
    if encoder is None:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(cat)
    return np.hstack([num, encoder.transform(cat)]).astype(np.float32), encoder


def _fit_sklearn(estimator, dm, target: str = "y"):
    x_train, enc = sklearn_features(dm, "train")
    y_train = dm.tensors[target][dm.indices["train"]].numpy()
    estimator.fit(x_train, y_train)
    x_test, _ = sklearn_features(dm, "test", enc)
    score = estimator.predict_proba(x_test)[:, 1]
    return (score > 0.5).astype(np.int64), score


@register_baseline("logistic")
def logistic_baseline(dm, seed: int = 0):
    """Logistic regression on the observed engaged-purchase label, balanced class weights."""
    return _fit_sklearn(LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed), dm)


@register_baseline("random_forest")
def random_forest_baseline(dm, seed: int = 0):
    """Random forest (200 trees, leaves >= 5 rows) on the observed engaged-purchase label."""
    forest = RandomForestClassifier(
        n_estimators=200, min_samples_leaf=5, class_weight="balanced_subsample", n_jobs=-1, random_state=seed
    )
    return _fit_sklearn(forest, dm)


@register_baseline("rfm_segments")
def rfm_segments_baseline(dm, seed: int = 0):
    """Rule-based RFM: target champions, loyal and potential loyalists; score = R + (F + M) / 2."""
    frame = dm.view.frame.iloc[dm.indices["test"]]
    scores = rfm_scores(frame[["recency_days", "frequency", "monetary"]])
    segments = rfm_segment(scores)
    pred = segments.isin(RFM_TOP_SEGMENTS).to_numpy().astype(np.int64)
    score = (scores["R"] + (scores["F"] + scores["M"]) / 2.0).to_numpy(dtype=np.float64)
    return pred, score


@register_baseline("gbm_per_level")
def gbm_per_level_baseline(dm, seed: int = 0):
    """One gradient-boosting classifier per incentive level, each fitted on the customers who got that level."""
    x_train, enc = sklearn_features(dm, "train")
    x_test, _ = sklearn_features(dm, "test", enc)
    c_train = dm.tensors["treatment"][dm.indices["train"]].numpy()
    y_train = dm.tensors["y"][dm.indices["train"]].numpy()
    levels = np.asarray(dm.spec.treatment.levels)
    curve = np.zeros((len(x_test), len(levels)))
    for j, level in enumerate(levels):
        rows = c_train == level
        if len(np.unique(y_train[rows])) < 2:  # too few rows at this level: its observed rate
            curve[:, j] = y_train[rows].mean() if rows.any() else y_train.mean()
            continue
        model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=seed)
        curve[:, j] = model.fit(x_train[rows], y_train[rows]).predict_proba(x_test)[:, 1]
    c_test = dm.tensors["treatment"][dm.indices["test"]].numpy()
    p = curve[np.arange(len(c_test)), np.searchsorted(levels, c_test).clip(0, len(levels) - 1)]
    return {"p": p, "curve": curve}


def isotonic_curves(outputs: dict, dm) -> dict:
    """Per-customer isotonic (non-decreasing) regression of each predicted curve over the levels (scikit-learn)."""
    levels = np.asarray(dm.spec.treatment.levels, dtype=np.float64)
    curve = np.asarray(outputs["curve"], dtype=np.float64)
    fitted = np.empty_like(curve)
    iso = IsotonicRegression(increasing=True)
    for i in range(len(curve)):
        fitted[i] = iso.fit_transform(levels, curve[i])
    c = dm.tensors["treatment"][dm.indices["test"]].numpy()
    p = fitted[np.arange(len(c)), np.searchsorted(levels, c).clip(0, len(levels) - 1)]
    return {"p": p, "curve": fitted}


POSTPROCESS = {"isotonic": isotonic_curves}


@register_baseline("gbm_aggregates")
def gbm_aggregates_baseline(dm, seed: int = 0):
    """Gradient boosting on the static attributes, RFM and 7/30/90-day window aggregates (no sequence):
    purchase probabilities on the test and validation rows."""
    x_train, enc = sklearn_features(dm, "train")
    y_train = dm.tensors["y"][dm.indices["train"]].numpy()
    model = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, early_stopping=True,
                                           validation_fraction=0.15, random_state=seed).fit(x_train, y_train)
    return {split_key: model.predict_proba(sklearn_features(dm, split, enc)[0])[:, 1]
            for split_key, split in (("p", "test"), ("val_p", "val"))}
