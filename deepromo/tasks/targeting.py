"""Targeting: who buys *because of* a campaign. One row per customer (the customer view).

Outputs of one method on one split: ``{"pred": [n] int in {0, 1} (the method's own decision rule),
"score": [n] float}``. Metrics are against the true *prompted* intent where the source knows it, else the
observed engaged-purchase label. The evaluated decision is the same for every method: target the customers
whose score reaches the threshold that maximises F1 against the observed label on the validation split.
When the treatment was randomised (both groups, propensity constant within each), the score is also judged
as an uplift ranking of purchase, treated vs control (Qini with its CI, AUUC, uplift@30 %).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepromo.tasks.base import (BOOTSTRAP_REPLICATES, LOGISTIC_SEARCH_SPACE, Evaluation, Task, sklearn_features,
                                 split_labels)


def validation_threshold(y_val: np.ndarray, score_val: np.ndarray) -> float:
    """The score threshold (target score >= t) that maximises F1 against ``y_val`` (the same rule for every
    method, the purchase task's ``best_f1_threshold``); +inf (target nobody) when validation has no positive."""
    from deepromo.metrics.purchase import best_f1_threshold

    if y_val.sum() == 0:
        return float("inf")
    return best_f1_threshold(y_val, score_val)


def randomised_groups(frame) -> np.ndarray | None:
    """[n] treated flag when the rows hold a randomised treatment (both groups; the logged propensity is
    constant within each group, so assignment did not depend on the customer), else None."""
    if "treated" not in frame.columns or "treatment_propensity" not in frame.columns:
        return None
    treated = frame["treated"].to_numpy() > 0.5
    if treated.all() or not treated.any():
        return None
    p = frame["treatment_propensity"].to_numpy(dtype=np.float64)
    if np.ptp(p[treated]) > 1e-6 or np.ptp(p[~treated]) > 1e-6:
        return None
    return treated.astype(np.int64)


class TargetingTask(Task):
    name = "targeting"
    view = "customer"
    plans_campaigns = True
    needs_validation = True  # every method's decision threshold is chosen on the validation split
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
        y_val = split_labels(dm, "val")
        frame = dm.view.frame.iloc[dm.indices[split]]
        treated = randomised_groups(frame)
        purchased = (frame["segment"].to_numpy() > 0).astype(np.int64)
        table, curves = {}, {}
        for method, by_split in predictions.items():
            out = by_split[split]
            threshold = validation_threshold(y_val, by_split["val"]["score"])
            pred = (out["score"] >= threshold).astype(np.int64)
            report = binary_report(y_true, pred, out["score"])
            report[f"gain_at_{int(round(self.gain_share * 100))}"] = gain_at(y_true, out["score"], self.gain_share)
            report["share_targeted"] = float(np.mean(pred))
            report["threshold"] = threshold
            if treated is not None:
                report.update(purchase_uplift_metrics(purchased, treated, out["score"]))
            table[method] = report
            curves[method] = cumulative_gain_curve(y_true, out["score"])
        return Evaluation(table=table, target=target, n_test=len(y_true), curves=curves)

    def plots(self, evaluation, dm, run_dir):
        from deepromo.reporting.plots import plot_gain_curves

        path = plot_gain_curves(evaluation.curves, Path(run_dir) / "gain_curve.png",
                                title=f"Cumulative gain on the test split ({evaluation.target})")
        return {"gain_curve": path}


def purchase_uplift_metrics(purchased: np.ndarray, treated: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """The score as an uplift ranking of purchase, treated vs control: Qini with its bootstrap CI, AUUC and
    uplift@30 % (names prefixed ``purchase_``), the ones that are defined."""
    from deepromo.metrics.uplift import auuc, bootstrap_ci, qini_coefficient, uplift_at_k

    if purchased.sum() == 0:
        return {}
    qini = bootstrap_ci(qini_coefficient, purchased, treated, score, n_boot=BOOTSTRAP_REPLICATES)
    out = {"purchase_qini": qini["value"], "purchase_qini_low": qini["low"], "purchase_qini_high": qini["high"],
           "purchase_auuc": auuc(purchased, treated, score),
           "purchase_uplift_at_30": uplift_at_k(purchased, treated, score, k=0.3)}
    return {k: float(v) for k, v in out.items() if np.isfinite(v)}


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


FOREST_SEARCH_SPACE = {  # scikit-learn RandomForestClassifier (defaults: leaves >= 5 rows, sqrt(d) features a split)
    "min_samples_leaf": {"type": "int", "low": 1, "high": 100, "log": True},
    "max_features": {"type": "float", "low": 0.05, "high": 1.0, "log": True},
}


@TASK.baseline("logistic", search_space=LOGISTIC_SEARCH_SPACE)
def logistic_baseline(dm, splits, seed: int = 0, C: float = 1.0):
    """Logistic regression on the observed engaged-purchase label, balanced class weights."""
    from sklearn.linear_model import LogisticRegression

    return _fit_classifier(LogisticRegression(C=C, max_iter=2000, class_weight="balanced", random_state=seed), dm,
                           splits)


@TASK.baseline("random_forest", search_space=FOREST_SEARCH_SPACE)
def random_forest_baseline(dm, splits, seed: int = 0, min_samples_leaf: int = 5, max_features: float | str = "sqrt"):
    """Random forest (200 trees) on the observed engaged-purchase label."""
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=200, min_samples_leaf=min_samples_leaf, max_features=max_features,
                                    class_weight="balanced_subsample", n_jobs=-1, random_state=seed)
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
