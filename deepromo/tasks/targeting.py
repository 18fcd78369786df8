"""Targeting: who buys *because of* a campaign. One row per customer (the customer view).

Outputs of one method on one split: ``{"pred": [n] int in {0, 1}, "score": [n] float}``. Metrics are
against the true *prompted* intent where the source knows it, else the observed engaged-purchase label.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepromo.tasks.base import Evaluation, Task, sklearn_features, split_labels


class TargetingTask(Task):
    name = "targeting"
    view = "customer"
    plans_campaigns = True
    gain_share = 0.4  # the gain curve is read at this share targeted (paper: 40 %)

    def outputs(self, arrays, dm, split):
        return {"pred": np.asarray(arrays["pred_prompted"]).astype(np.int64),
                "score": np.asarray(arrays["score"], dtype=np.float64)}

    def frame_outputs(self, model, frame, **context):
        return self.outputs({k: v.to_numpy() for k, v in model.predict_frame(frame, **context).items()}, None, "")

    def uplift_score(self, outputs) -> np.ndarray:
        """The score a campaign plan ranks customers by: P(prompted)."""
        return outputs["score"]

    def truth(self, dm, split: str = "test") -> tuple[np.ndarray, str]:
        """Labels of a split: true 'prompted' intent where the source knows it, else the observed engaged label."""
        truth = dm.view.truth
        if truth is not None and "intent" in truth.columns:
            rows = dm.indices[split]
            return (truth["intent"].to_numpy()[rows] == "prompted").astype(np.int64), "true intent: prompted"
        return split_labels(dm, split), "observed label: engaged purchase (no ground truth)"

    def evaluate(self, predictions, dm, split="test"):
        from deepromo.metrics.classification import binary_report
        from deepromo.metrics.targeting import cumulative_gain_curve, gain_at

        y_true, target = self.truth(dm, split)
        table, curves = {}, {}
        for method, by_split in predictions.items():
            out = by_split[split]
            report = binary_report(y_true, out["pred"], out["score"])
            report[f"gain_at_{int(round(self.gain_share * 100))}"] = gain_at(y_true, out["score"], self.gain_share)
            report["share_targeted"] = float(np.mean(out["pred"]))
            table[method] = report
            curves[method] = cumulative_gain_curve(y_true, out["score"])
        return Evaluation(table=table, target=target, n_test=len(y_true), curves=curves)

    def plots(self, evaluation, dm, run_dir):
        from deepromo.reporting.plots import plot_gain_curves

        path = plot_gain_curves(evaluation.curves, Path(run_dir) / "gain_curve.png",
                                title=f"Cumulative gain on the test split ({evaluation.target})")
        return {"gain_curve": path}


TASK = TargetingTask()


def _fit_classifier(estimator, dm, splits):
    """Fit on the training rows' observed engaged label; decision at probability 0.5 on every split."""
    x_train, encoder = sklearn_features(dm, "train")
    estimator.fit(x_train, split_labels(dm, "train"))
    out = {}
    for split in splits:
        score = estimator.predict_proba(sklearn_features(dm, split, encoder)[0])[:, 1]
        out[split] = {"pred": (score > 0.5).astype(np.int64), "score": score}
    return out


@TASK.baseline("logistic")
def logistic_baseline(dm, splits, seed: int = 0):
    """Logistic regression on the observed engaged-purchase label, balanced class weights."""
    from sklearn.linear_model import LogisticRegression

    return _fit_classifier(LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed), dm, splits)


@TASK.baseline("random_forest")
def random_forest_baseline(dm, splits, seed: int = 0):
    """Random forest (200 trees, leaves >= 5 rows) on the observed engaged-purchase label."""
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=200, min_samples_leaf=5, class_weight="balanced_subsample",
                                    n_jobs=-1, random_state=seed)
    return _fit_classifier(forest, dm, splits)


@TASK.baseline("rfm_segments")
def rfm_segments_baseline(dm, splits, seed: int = 0):
    """Rule-based RFM: target champions, loyal and potential loyalists; score = R + (F + M) / 2."""
    from deepromo.decide.rfm import RFM_TOP_SEGMENTS, rfm_scores, rfm_segment

    out = {}
    for split in splits:
        frame = dm.view.frame.iloc[dm.indices[split]]
        scores = rfm_scores(frame[["recency_days", "frequency", "monetary"]])
        pred = rfm_segment(scores).isin(RFM_TOP_SEGMENTS).to_numpy().astype(np.int64)
        out[split] = {"pred": pred, "score": (scores["R"] + (scores["F"] + scores["M"]) / 2.0).to_numpy(np.float64)}
    return out
