"""Classic baselines scored side by side with the deep models (scikit-learn and rule-based).

Each baseline is ``fit_predict(datamodule, seed) -> (pred [n_test] in {0,1}, score [n_test])``
for the datamodule's test rows, trained on its training rows only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.ensemble import RandomForestClassifier
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
