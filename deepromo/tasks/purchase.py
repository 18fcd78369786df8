"""Purchase: will the customer buy in the next window (the purchase view: features + event sequences).

Outputs of one method on one split: ``{"p": [n] purchase probability}``. The F1 threshold of each
method is the one that maximises its F1 on the validation split, so the evaluator also reads every
method's validation outputs; the ranking metrics need no threshold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepromo.tasks.base import (GBM_SEARCH_SPACE, LOGISTIC_SEARCH_SPACE, Evaluation, Task, sklearn_features,
                                 split_labels)


class PurchaseTask(Task):
    name = "purchase"
    view = "purchase"
    needs_validation = True

    def outputs(self, arrays, dm, split):
        return {"p": np.asarray(arrays["p"], dtype=np.float64)}

    def evaluate(self, predictions, dm, split="test"):
        from deepromo.metrics.purchase import best_f1_threshold, purchase_report

        y, y_val = split_labels(dm, split), split_labels(dm, "val")
        table, curves = {}, {}
        for method, by_split in predictions.items():
            p = by_split[split]["p"]
            table[method] = purchase_report(y, p, best_f1_threshold(y_val, by_split["val"]["p"]))
            curves[method] = (y, p)
        return Evaluation(table=table, target=f"observed purchase in the next window (base rate {y.mean():.3f})",
                          n_test=len(y), curves=curves)

    def plots(self, evaluation, dm, run_dir):
        from deepromo.reporting.plots import plot_roc_pr

        path = plot_roc_pr(evaluation.curves, Path(run_dir) / "roc_pr.png", title=f"Test split: {evaluation.target}")
        return {"roc_pr": path}


TASK = PurchaseTask()


@TASK.baseline("gbm_aggregates", search_space=GBM_SEARCH_SPACE)
def gbm_aggregates_baseline(dm, splits, seed: int = 0, **params):
    """Gradient boosting on the static attributes, RFM and 7/30/90-day window aggregates (no sequence), early
    stopping on 15 % of the training rows; ``params``: settings of ``GBM_SEARCH_SPACE``."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    x_train, encoder = sklearn_features(dm, "train")
    model = HistGradientBoostingClassifier(**{"max_iter": 300, "learning_rate": 0.05, **params}, early_stopping=True,
                                           validation_fraction=0.15, random_state=seed)
    model.fit(x_train, split_labels(dm, "train"))
    return {s: {"p": model.predict_proba(sklearn_features(dm, s, encoder)[0])[:, 1]} for s in splits}


@TASK.baseline("logistic_aggregates", search_space=LOGISTIC_SEARCH_SPACE)
def logistic_aggregates_baseline(dm, splits, seed: int = 0, C: float = 1.0):
    """Logistic regression on the same static attributes, RFM and window aggregates (standardised, one-hot)."""
    from sklearn.linear_model import LogisticRegression

    x_train, encoder = sklearn_features(dm, "train")
    model = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(x_train, split_labels(dm, "train"))
    return {s: {"p": model.predict_proba(sklearn_features(dm, s, encoder)[0])[:, 1]} for s in splits}
