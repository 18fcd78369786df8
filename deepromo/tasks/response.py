"""Response: the purchase probability of each customer at every incentive level (the response view).

Outputs of one method on one split: ``{"p": [n] at the logged incentive, "curve": [n, L] at every level,
"levels": (L,) the incentive levels of the curve's columns}``. With ground truth (synthetic worlds) the
curves are also compared with the true response curves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepromo.data.errors import UserInputError
from deepromo.data.tables import true_response_curves
from deepromo.tasks.base import Evaluation, Task, sklearn_features, split_labels


def at_logged_level(curve: np.ndarray, levels, treatment: np.ndarray) -> np.ndarray:
    """[n] each row's curve value at its logged incentive (the nearest level at or above it)."""
    levels = np.asarray(levels, dtype=np.float64)
    return curve[np.arange(len(treatment)), np.searchsorted(levels, treatment).clip(0, len(levels) - 1)]


def split_treatment(dm, split: str) -> np.ndarray:
    return dm.tensors["treatment"][dm.indices[split]].numpy().astype(np.float64)


def response_metrics(curve: np.ndarray, p_obs: np.ndarray, y: np.ndarray, treatment: np.ndarray, levels,
                     truth: np.ndarray | None) -> dict[str, float]:
    """Fit (log-loss, AUC at the logged incentive), shape (monotonicity violations, roughness) and, with truth,
    curve and uplift RMSE; the overall uplift metrics (any incentive vs none: Qini with its bootstrap CI, AUUC,
    uplift@30 %); and the Qini coefficient of the predicted uplift for each non-zero level."""
    from deepromo.metrics.classification import binary_report
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
    out.update(overall_uplift_metrics(curve, y, treatment, levels))
    for j, level in enumerate(levels[1:], start=1):
        rows = np.isin(treatment, (levels[0], level))
        treated = (treatment[rows] == level).astype(np.int64)
        if 0 < treated.sum() < len(treated) and y[rows].sum() > 0:
            out[f"qini_{level:g}"] = qini_coefficient(y[rows], treated, curve[rows, j] - curve[rows, 0])
    return out


BOOTSTRAP_REPLICATES = 200  # resamples behind the Qini confidence interval of every method


def overall_uplift_metrics(curve: np.ndarray, y: np.ndarray, treatment: np.ndarray, levels) -> dict[str, float]:
    """Any incentive vs none, ranked by the predicted uplift at the top level: the Qini coefficient with a
    stratified bootstrap 95 % CI, AUUC and uplift among the top 30 % (only the ones that are defined)."""
    from deepromo.metrics.uplift import auuc, bootstrap_ci, qini_coefficient, uplift_at_k

    treated = (treatment > levels[0]).astype(np.int64)
    if treated.min() == treated.max() or y.sum() == 0:
        return {}
    score = curve[:, -1] - curve[:, 0]
    qini = bootstrap_ci(qini_coefficient, y, treated, score, n_boot=BOOTSTRAP_REPLICATES)
    out = {"qini": qini["value"], "qini_low": qini["low"], "qini_high": qini["high"],
           "auuc": auuc(y, treated, score), "uplift_at_30": uplift_at_k(y, treated, score, k=0.3)}
    return {k: float(v) for k, v in out.items() if np.isfinite(v)}


class ResponseTask(Task):
    name = "response"
    view = "response"
    plans_campaigns = True

    def outputs(self, arrays, dm, split, levels=None):
        levels = tuple(float(v) for v in (levels if levels is not None else dm.spec.treatment.levels))
        curve = np.asarray(arrays["curve"], dtype=np.float64)
        if curve.ndim != 2 or curve.shape[1] != len(levels):
            raise UserInputError(f"response outputs: 'curve' must be [n, {len(levels)}] (one column per level "
                             f"{list(levels)}), got shape {curve.shape}")
        return {"p": np.asarray(arrays["p"], dtype=np.float64), "curve": curve, "levels": levels}

    def model_outputs(self, model, dm, splits):
        return {s: self.outputs(model.predict_split(dm, s), dm, s, levels=model.levels) for s in splits}

    def frame_outputs(self, model, frame, **context):
        tensors = model.frame_tensors(frame, **context)
        return self.outputs(model.predict_arrays(tensors), None, "", levels=model.levels)

    def uplift_score(self, outputs) -> np.ndarray:
        """The score a campaign plan ranks customers by: predicted uplift at the top level over no incentive."""
        return outputs["curve"][:, -1] - outputs["curve"][:, 0]

    def qini_scores(self, evaluation):
        return {name: curve[:, -1] - curve[:, 0] for name, curve in evaluation.curves.items()}

    def true_curves(self, dm, split: str, levels) -> np.ndarray | None:
        """The source's true purchase probability at each level on ``split``'s rows, or None without truth."""
        truth = true_response_curves(dm.view.truth, levels)
        return None if truth is None else truth[dm.indices[split]]

    def evaluate(self, predictions, dm, split="test"):
        y = split_labels(dm, split)
        treatment = split_treatment(dm, split)
        levels = next((tuple(by_split[split]["levels"]) for by_split in predictions.values()), None)
        truth = None if levels is None else self.true_curves(dm, split, levels)
        table, curves = {}, {}
        for method, by_split in predictions.items():
            out = by_split[split]
            if tuple(out["levels"]) != levels:
                raise UserInputError(f"method '{method}': its curve is on levels {list(out['levels'])}, the others' on "
                                     f"{list(levels)}; score every method on the same levels")
            table[method] = response_metrics(out["curve"], out["p"], y, treatment, levels, truth)
            curves[method] = out["curve"]
        target = ("observed purchase; curves against the true response curves" if truth is not None
                  else "observed purchase")
        return Evaluation(table=table, target=target, n_test=len(y), curves=curves,
                          context={"levels": levels, "split": split})

    def decide(self, settings, outputs, dm, run_dir, seed=0):
        """Budget scenarios from the predicted curves of the test customers (``model.allocation``): ROI of the
        optimised plan vs uniform, random and oracle plans, a plot, and the plan as Parquet."""
        from deepromo.decide.scenarios import (
            budget_scenarios,
            plan_frame,
            plot_roi_by_budget,
            purchase_margin,
            scenario_table,
        )

        curve, levels = outputs["curve"], outputs["levels"]
        frame = dm.view.frame.iloc[dm.indices["test"]]
        margin = purchase_margin(frame, settings.margin_column, settings.margin_rate, settings.margin)
        true = self.true_curves(dm, "test", levels)
        report, plans = budget_scenarios(curve, levels, margin, true, dict(settings.scenarios), settings.cost_model,
                                         settings.contact_cost, seed=int(seed))
        print(f"\nallocation ({'judged on the true curves' if true is not None else 'judged on the predictions'}):\n"
              f"{scenario_table(report)}")
        plan_path = Path(run_dir) / "allocation_plan.parquet"
        plan_frame(plans[settings.plan_scenario], frame["customer_id"], levels, curve, margin, settings.cost_model,
                   settings.contact_cost).to_parquet(plan_path, index=False)
        report["judged_on"] = "true curves" if true is not None else "predicted curves"
        roi = plot_roi_by_budget({k: v for k, v in report.items() if isinstance(v, dict)},
                                 Path(run_dir) / "roi_by_budget.png")
        return report, {"roi_by_budget": roi, "allocation_plan": plan_path}

    def plots(self, evaluation, dm, run_dir):
        from deepromo.reporting.plots import plot_response_curves

        levels = evaluation.context["levels"]
        truth = self.true_curves(dm, evaluation.context["split"], levels)
        path = plot_response_curves(levels, evaluation.curves, truth, Path(run_dir) / "response_curves.png")
        return {"response_curves": path}


TASK = ResponseTask()


@TASK.baseline("gbm_per_level")
def gbm_per_level_baseline(dm, splits, seed: int = 0):
    """One gradient-boosting classifier per incentive level, each fitted on the customers who got that level."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    x_train, encoder = sklearn_features(dm, "train")
    c_train, y_train = split_treatment(dm, "train"), split_labels(dm, "train")
    levels = tuple(float(v) for v in dm.spec.treatment.levels)
    features = {s: sklearn_features(dm, s, encoder)[0] for s in splits}
    curves = {s: np.zeros((len(x), len(levels))) for s, x in features.items()}
    for j, level in enumerate(levels):
        rows = c_train == level
        if len(np.unique(y_train[rows])) < 2:  # too few rows at this level: its observed rate
            for curve in curves.values():
                curve[:, j] = y_train[rows].mean() if rows.any() else y_train.mean()
            continue
        model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=seed)
        model.fit(x_train[rows], y_train[rows])
        for s, x in features.items():
            curves[s][:, j] = model.predict_proba(x)[:, 1]
    return {s: {"p": at_logged_level(curves[s], levels, split_treatment(dm, s)), "curve": curves[s],
                "levels": levels} for s in splits}


def isotonic_curves(outputs: dict, dm, split: str) -> dict:
    """Per-customer isotonic (non-decreasing) regression of each predicted curve over the levels (scikit-learn)."""
    from sklearn.isotonic import IsotonicRegression

    levels = np.asarray(outputs["levels"], dtype=np.float64)
    fitted = np.empty_like(outputs["curve"])
    iso = IsotonicRegression(increasing=True)
    for i, row in enumerate(outputs["curve"]):
        fitted[i] = iso.fit_transform(levels, row)
    return {"p": at_logged_level(fitted, levels, split_treatment(dm, split)), "curve": fitted,
            "levels": outputs["levels"]}


TASK.postprocess["isotonic"] = isotonic_curves
