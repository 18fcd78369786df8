"""Response: the purchase probability of each customer at every incentive level (the response view).

Outputs of one method on one split: ``{"p": [n] at the logged incentive, "curve": [n, L] at every level,
"levels": (L,) the incentive levels of the curve's columns, "arms": the level names when the levels are
unordered arms, else None}``; uplift-only learners (class transformation) add ``"fit": False`` (their curve
is a control rate plus the uplift, so log-loss and AUC are not reported for them). With ground truth
(synthetic worlds) the curves are also compared with the true response curves. Baselines: the meta-learners
S, T, X and DR on gradient boosting and the class transformation, each for binary or multi-arm treatments.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deepromo.data.errors import UserInputError
from deepromo.data.tables import true_response_curves
from deepromo.tasks.base import BOOTSTRAP_REPLICATES, GBM_SEARCH_SPACE, Evaluation, Task, gbm, sklearn_features, split_labels


def at_logged_level(curve: np.ndarray, levels, treatment: np.ndarray) -> np.ndarray:
    """[n] each row's curve value at its logged incentive (the nearest level at or above it)."""
    return curve[np.arange(len(treatment)), level_index(levels, treatment)]


def level_index(levels, treatment: np.ndarray) -> np.ndarray:
    """[n] the index of each row's logged level (the nearest level at or above it)."""
    levels = np.asarray(levels, dtype=np.float64)
    return np.searchsorted(levels, treatment).clip(0, len(levels) - 1)


def split_treatment(dm, split: str) -> np.ndarray:
    return dm.tensors["treatment"][dm.indices[split]].numpy().astype(np.float64)


def split_propensity(dm, split: str) -> np.ndarray | None:
    """[n] P(logged level | x) of a split's rows, or None when the view has no propensity."""
    if "propensity" not in dm.tensors:
        return None
    return dm.tensors["propensity"][dm.indices[split]].numpy().astype(np.float64)


def treatment_arms(dm) -> tuple[str, ...] | None:
    """Names of the levels when they are unordered arms (level 0 = control), else None."""
    treatment = dm.spec.treatment
    return None if treatment is None or treatment.arms is None else tuple(treatment.arms)


def best_uplift(curve: np.ndarray, arms) -> np.ndarray:
    """[n] the uplift a campaign ranks customers by: the best arm's over control for unordered arms, the top
    level's over no incentive for ordered amounts."""
    if arms is not None and curve.shape[1] > 2:
        return (curve[:, 1:] - curve[:, :1]).max(axis=1)
    return curve[:, -1] - curve[:, 0]


def level_names(levels, arms) -> list[str]:
    """Column suffix of each level in metric names: the arm name (lower case, spaces as _) or the amount."""
    if arms is not None:
        return ["_".join(str(a).lower().replace("-", "").split()) for a in arms]
    return [f"{float(level):g}" for level in levels]


def curve_outputs(curve: np.ndarray, dm, split: str, fit: bool = True) -> dict:
    """A baseline's outputs on ``split`` from its curve [n, L] over the datamodule's levels."""
    levels = tuple(float(v) for v in dm.spec.treatment.levels)
    out = {"p": at_logged_level(curve, levels, split_treatment(dm, split)), "curve": curve, "levels": levels,
           "arms": treatment_arms(dm)}
    if not fit:
        out["fit"] = False
    return out


def response_metrics(curve: np.ndarray, p_obs: np.ndarray, y: np.ndarray, treatment: np.ndarray, levels,
                     truth: np.ndarray | None, arms=None, propensity: np.ndarray | None = None,
                     fit: bool = True) -> dict[str, float]:
    """Fit (log-loss, AUC at the logged incentive; not for uplift-only learners), shape (monotonicity violations
    and roughness, ordered amounts only) and, with truth, curve and uplift RMSE; the overall uplift metrics (any
    incentive vs none: Qini with its bootstrap CI, AUUC, uplift@30 %); the Qini of each level's (arm's) predicted
    uplift on that level's and the control rows; and for unordered arms or a binary treatment with a propensity,
    the IPW value of the best-arm policy with its CI."""
    from deepromo.metrics.classification import binary_report
    from deepromo.metrics.uplift import qini_coefficient

    out: dict[str, float] = {}
    if fit:
        p = np.clip(p_obs, 1e-7, 1 - 1e-7)
        out["log_loss"] = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        out["auc"] = binary_report(y, (p > 0.5).astype(np.int64), p)["auc"]
    if arms is None:
        out["monotonicity_violations"] = float(np.mean((np.diff(curve, axis=1) < -1e-6).any(axis=1)))
        out["roughness"] = float(np.mean(np.diff(curve, n=2, axis=1) ** 2)) if curve.shape[1] > 2 else 0.0
    if truth is not None:
        out["curve_rmse"] = float(np.sqrt(np.mean((curve - truth) ** 2)))
        uplift, true_uplift = curve[:, 1:] - curve[:, :1], truth[:, 1:] - truth[:, :1]
        out["uplift_rmse"] = float(np.sqrt(np.mean((uplift - true_uplift) ** 2)))
    out.update(overall_uplift_metrics(curve, y, treatment, levels, arms))
    names = level_names(levels, arms)
    for j, level in enumerate(levels[1:], start=1):
        rows = np.isin(treatment, (levels[0], level))
        treated = (treatment[rows] == level).astype(np.int64)
        if 0 < treated.sum() < len(treated) and y[rows].sum() > 0:
            out[f"qini_{names[j]}"] = qini_coefficient(y[rows], treated, curve[rows, j] - curve[rows, 0])
    if propensity is not None and (arms is not None or len(levels) == 2):
        out.update(best_arm_policy_value(curve, y, treatment, levels, propensity))
    return out


def overall_uplift_metrics(curve: np.ndarray, y: np.ndarray, treatment: np.ndarray, levels,
                           arms=None) -> dict[str, float]:
    """Any incentive vs none, ranked by :func:`best_uplift`: the Qini coefficient with a stratified bootstrap
    95 % CI, AUUC and uplift among the top 30 % (only the ones that are defined)."""
    from deepromo.metrics.uplift import auuc, bootstrap_ci, qini_coefficient, uplift_at_k

    treated = (treatment > levels[0]).astype(np.int64)
    if treated.min() == treated.max() or y.sum() == 0:
        return {}
    score = best_uplift(curve, arms)
    qini = bootstrap_ci(qini_coefficient, y, treated, score, n_boot=BOOTSTRAP_REPLICATES)
    out = {"qini": qini["value"], "qini_low": qini["low"], "qini_high": qini["high"],
           "auuc": auuc(y, treated, score), "uplift_at_30": uplift_at_k(y, treated, score, k=0.3)}
    return {k: float(v) for k, v in out.items() if np.isfinite(v)}


def best_arm_policy_value(curve: np.ndarray, y: np.ndarray, treatment: np.ndarray, levels,
                          propensity: np.ndarray) -> dict[str, float]:
    """The IPW estimate (with its bootstrap 95 % CI) of the outcome rate if every customer got the level the
    curve predicts best (``policy_value``), and its gain over sending every customer the single best level
    (``policy_gain``; the level chosen on the same rows, so the gain is optimistic for the fixed rule)."""
    from deepromo.metrics.uplift import policy_value_ci, policy_value_ipw

    logged = level_index(levels, treatment)
    chosen = curve.argmax(axis=1)
    value = policy_value_ci(y, logged, chosen, propensity, n_boot=BOOTSTRAP_REPLICATES)
    fixed = max(policy_value_ipw(y, logged, np.full(len(y), k), propensity) for k in range(len(levels)))
    return {"policy_value": value["value"], "policy_value_low": value["low"], "policy_value_high": value["high"],
            "policy_gain": value["value"] - fixed}


class ResponseTask(Task):
    name = "response"
    view = "response"
    plans_campaigns = True

    def outputs(self, arrays, dm, split, levels=None, arms=None):
        levels = tuple(float(v) for v in (levels if levels is not None else dm.spec.treatment.levels))
        arms = tuple(arms) if arms is not None else (treatment_arms(dm) if dm is not None else None)
        curve = np.asarray(arrays["curve"], dtype=np.float64)
        if curve.ndim != 2 or curve.shape[1] != len(levels):
            raise UserInputError(f"response outputs: 'curve' must be [n, {len(levels)}] (one column per level "
                             f"{list(levels)}), got shape {curve.shape}")
        return {"p": np.asarray(arrays["p"], dtype=np.float64), "curve": curve, "levels": levels, "arms": arms}

    def model_outputs(self, model, dm, splits):
        arms = model.spec.treatment.arms if model.spec.treatment is not None else None
        return {s: self.outputs(model.predict_split(dm, s), dm, s, levels=model.levels, arms=arms) for s in splits}

    def frame_outputs(self, model, frame, **context):
        tensors = model.frame_tensors(frame, **context)
        arms = model.spec.treatment.arms if model.spec.treatment is not None else None
        return self.outputs(model.predict_arrays(tensors), None, "", levels=model.levels, arms=arms)

    def uplift_score(self, outputs) -> np.ndarray:
        """The score a campaign plan ranks customers by: the predicted uplift of the top level (ordered amounts)
        or of the best arm (unordered arms) over no incentive."""
        return best_uplift(outputs["curve"], outputs.get("arms"))

    def qini_scores(self, evaluation):
        arms = evaluation.context.get("arms")
        return {name: best_uplift(curve, arms) for name, curve in evaluation.curves.items()}

    def skip_reason(self, options: dict, dm) -> str | None:
        if options.get("postprocess") == "isotonic" and treatment_arms(dm) is not None:
            return (f"isotonic smoothing needs ordered incentive amounts; the arms {list(treatment_arms(dm))} "
                    f"are unordered")
        return None

    def true_curves(self, dm, split: str, levels) -> np.ndarray | None:
        """The source's true purchase probability at each level on ``split``'s rows, or None without truth."""
        truth = true_response_curves(dm.view.truth, levels)
        return None if truth is None else truth[dm.indices[split]]

    def evaluate(self, predictions, dm, split="test"):
        y = split_labels(dm, split)
        treatment = split_treatment(dm, split)
        levels = next((tuple(by_split[split]["levels"]) for by_split in predictions.values()), None)
        truth = None if levels is None else self.true_curves(dm, split, levels)
        arms, propensity = treatment_arms(dm), split_propensity(dm, split)
        table, curves = {}, {}
        for method, by_split in predictions.items():
            out = by_split[split]
            if tuple(out["levels"]) != levels:
                raise UserInputError(f"method '{method}': its curve is on levels {list(out['levels'])}, the others' on "
                                     f"{list(levels)}; score every method on the same levels")
            table[method] = response_metrics(out["curve"], out["p"], y, treatment, levels, truth, arms=arms,
                                             propensity=propensity, fit=out.get("fit", True))
            curves[method] = out["curve"]
        target = ("observed purchase; curves against the true response curves" if truth is not None
                  else "observed purchase")
        return Evaluation(table=table, target=target, n_test=len(y), curves=curves,
                          context={"levels": levels, "split": split, "arms": arms})

    def decide(self, settings, outputs, dm, run_dir, seed=0):
        """Budget scenarios from the predicted curves of the test customers (``model.allocation``): ROI of the
        optimised plan vs uniform, random and oracle plans, a plot, and the plan as Parquet. Without money (no
        purchase margin in the data or config, or unordered arms, whose codes are not prices) the section
        reports incremental purchases by the share of customers contacted instead, and says why."""
        from deepromo.decide.scenarios import (
            budget_scenarios,
            plan_frame,
            plot_roi_by_budget,
            purchase_margin,
            scenario_table,
        )

        curve, levels = outputs["curve"], outputs["levels"]
        frame = dm.view.frame.iloc[dm.indices["test"]]
        true = self.true_curves(dm, "test", levels)
        no_money = self.no_money_reason(settings, frame, outputs.get("arms"))
        if no_money:
            return self.uplift_by_contact_share(settings, outputs, frame, true, no_money, run_dir)
        margin = purchase_margin(frame, settings.margin_column, settings.margin_rate, settings.margin)
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

    @staticmethod
    def no_money_reason(settings, frame, arms) -> str | None:
        """Why ROI cannot be priced for these rows, or None: unordered arms, or no purchase margin at all."""
        if arms is not None:
            return f"the treatment's arms {list(arms)} are labels, not amounts, so they have no incentive cost"
        column = settings.margin_column
        if column:
            if column not in frame.columns:
                return f"the data have no margin column '{column}' (model.allocation.margin_column)"
            if not np.any(frame[column].to_numpy(dtype=np.float64) > 0):
                return f"margin column '{column}' has no positive value"
            return None
        if settings.margin is None:
            return "model.allocation.margin_column and model.allocation.margin are both null"
        return None

    def uplift_by_contact_share(self, settings, outputs, frame, true, reason: str, run_dir):
        """Expected incremental purchases when the top share of customers by predicted best uplift get their best
        level, against contacting a random share, for each scenario's share of customers (inf = everyone)."""
        curve = outputs["curve"]
        judge = true if true is not None else curve
        uplift = curve[:, 1:] - curve[:, :1]
        best = uplift.argmax(axis=1)
        order = np.argsort(-uplift.max(axis=1), kind="mergesort")
        judged = judge[:, 1:] - judge[:, :1]
        gain = judged[np.arange(len(judged)), best]
        report = {"priced": False, "reason": reason,
                  "judged_on": "true curves" if true is not None else "predicted curves"}
        for name, share in dict(settings.scenarios).items():
            share = 1.0 if not np.isfinite(share) else float(share)
            k = int(round(share * len(order)))
            report[name] = {"share_contacted": share, "customers": k,
                            "incremental_purchases": float(gain[order[:k]].sum()),
                            "random_incremental_purchases": float(share * judged.mean(axis=1).sum())}
        print(f"\nallocation not priced: {reason}; incremental purchases by share contacted instead "
              f"({report['judged_on']}):")
        for name, row in report.items():
            if isinstance(row, dict):
                print(f"  {name}: top {row['share_contacted']:.0%} -> {row['incremental_purchases']:.1f} "
                      f"(random {row['random_incremental_purchases']:.1f})")
        plan_path = Path(run_dir) / "allocation_plan.parquet"
        k = report[settings.plan_scenario]["customers"]
        level = np.zeros(len(order), dtype=np.int64)
        level[order[:k]] = best[order[:k]] + 1
        names = outputs.get("arms") or [f"{v:g}" for v in outputs["levels"]]
        pd.DataFrame({"customer_id": frame["customer_id"].to_numpy(),
                      "level": np.asarray(names, dtype=object)[level],
                      "predicted_uplift": uplift.max(axis=1) * (level > 0)}).to_parquet(plan_path, index=False)
        return report, {"allocation_plan": plan_path}

    def plots(self, evaluation, dm, run_dir):
        from deepromo.reporting.plots import plot_response_curves

        levels = evaluation.context["levels"]
        truth = self.true_curves(dm, evaluation.context["split"], levels)
        path = plot_response_curves(levels, evaluation.curves, truth, Path(run_dir) / "response_curves.png")
        return {"response_curves": path}


TASK = ResponseTask()


def treatment_codes(dm, split: str) -> np.ndarray:
    """[n] level index of each row of a split (0 = control)."""
    return level_index(dm.spec.treatment.levels, split_treatment(dm, split))


def arm_design(codes: np.ndarray, n_levels: int, levels, arms) -> np.ndarray:
    """The treatment columns an S-learner reads: the arm one-hot (without control) for unordered arms, the
    incentive amount for ordered ones."""
    if arms is not None:
        return np.eye(n_levels, dtype=np.float32)[codes][:, 1:]
    return np.asarray(levels, dtype=np.float32)[codes][:, None]


def fit_per_level(x: np.ndarray, y: np.ndarray, codes: np.ndarray, n_levels: int, seed: int, params: dict):
    """One gradient-boosting classifier per level fitted on that level's rows -> ``predict(x) [n, L]``; a level
    without both outcomes predicts its observed rate."""
    models = []
    for k in range(n_levels):
        rows = codes == k
        if len(np.unique(y[rows])) < 2:
            rate = float(y[rows].mean()) if rows.any() else float(y.mean())
            models.append(rate)
        else:
            models.append(gbm("classifier", seed, **params).fit(x[rows], y[rows]))

    def predict(xx: np.ndarray) -> np.ndarray:
        return np.column_stack([np.full(len(xx), m) if isinstance(m, float) else m.predict_proba(xx)[:, 1]
                                for m in models])

    return predict


def learner_inputs(dm, splits):
    """(training features, labels, level codes, propensity) and each requested split's features."""
    x_train, encoder = sklearn_features(dm, "train")
    features = {s: sklearn_features(dm, s, encoder)[0] for s in splits}
    p = split_propensity(dm, "train")
    return x_train, split_labels(dm, "train"), treatment_codes(dm, "train"), p, features


@TASK.baseline("t_learner", search_space=GBM_SEARCH_SPACE)
def t_learner_baseline(dm, splits, seed: int = 0, **params):
    """T-learner: one gradient-boosting classifier per level (arm), each fitted on the customers who got it."""
    x, y, codes, _, features = learner_inputs(dm, splits)
    predict = fit_per_level(x, y, codes, len(dm.spec.treatment.levels), seed, params)
    return {s: curve_outputs(predict(features[s]), dm, s) for s in splits}


@TASK.baseline("s_learner", search_space=GBM_SEARCH_SPACE)
def s_learner_baseline(dm, splits, seed: int = 0, **params):
    """S-learner: one gradient-boosting classifier on the features plus the treatment (arm one-hot or amount),
    read at every level."""
    x, y, codes, _, features = learner_inputs(dm, splits)
    levels, arms = dm.spec.treatment.levels, treatment_arms(dm)
    n_levels = len(levels)
    model = gbm("classifier", seed, **params).fit(np.hstack([x, arm_design(codes, n_levels, levels, arms)]), y)
    out = {}
    for s in splits:
        xs = features[s]
        curve = np.column_stack([
            model.predict_proba(np.hstack([xs, arm_design(np.full(len(xs), k), n_levels, levels, arms)]))[:, 1]
            for k in range(n_levels)])
        out[s] = curve_outputs(curve, dm, s)
    return out


def pair_propensity(x: np.ndarray, arm: np.ndarray, seed: int) -> "object":
    """P(arm k | x, arm in {0, k}) as a fitted logistic regression (scikit-learn) on the pair's rows."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000, random_state=seed).fit(x, arm)


@TASK.baseline("x_learner", search_space=GBM_SEARCH_SPACE)
def x_learner_baseline(dm, splits, seed: int = 0, **params):
    """X-learner (Künzel et al. 2019) per arm k vs control: T-learner outcome models μ_0, μ_k; imputed effects
    D_k = y − μ_0(x) on arm k's rows and D_0 = μ_k(x) − y on the control rows, each regressed on x
    (τ_1, τ_0, gradient boosting); τ_k = g·τ_0 + (1 − g)·τ_1 with g = P(arm k | x, pair) (logistic regression).
    Curve: μ_0 and μ_0 + τ_k, clipped to [0, 1]."""
    x, y, codes, _, features = learner_inputs(dm, splits)
    n_levels = len(dm.spec.treatment.levels)
    mu = fit_per_level(x, y, codes, n_levels, seed, params)
    mu_train = mu(x)
    curves = {s: np.repeat(mu(features[s])[:, :1], n_levels, axis=1) for s in splits}
    for k in range(1, n_levels):
        arm, ctrl = codes == k, codes == 0
        tau1 = gbm("regressor", seed, **params).fit(x[arm], y[arm] - mu_train[arm, 0])
        tau0 = gbm("regressor", seed, **params).fit(x[ctrl], mu_train[ctrl, k] - y[ctrl])
        pair = arm | ctrl
        g = pair_propensity(x[pair], arm[pair].astype(np.int64), seed)
        for s in splits:
            xs = features[s]
            gs = g.predict_proba(xs)[:, 1]
            curves[s][:, k] += gs * tau0.predict(xs) + (1.0 - gs) * tau1.predict(xs)
    return {s: curve_outputs(np.clip(curves[s], 0.0, 1.0), dm, s) for s in splits}


CROSS_FIT_FOLDS = 2  # folds of the DR-learner's cross-fitting (outcome models never score their own rows)


@TASK.baseline("dr_learner", search_space=GBM_SEARCH_SPACE)
def dr_learner_baseline(dm, splits, seed: int = 0, **params):
    """DR-learner (Kennedy 2023) per arm k vs control: the doubly robust pseudo-outcome
    φ = μ_k(x) − μ_0(x) + 1[t=k](y − μ_k(x))/e − 1[t=0](y − μ_0(x))/e, with e the logged propensity of each
    row's own arm and cross-fitted T-learner outcome models, regressed on x (gradient boosting).
    Curve: μ_0 (fitted on all rows) and μ_0 + τ_k, clipped to [0, 1]."""
    from sklearn.model_selection import StratifiedKFold

    x, y, codes, p, features = learner_inputs(dm, splits)
    if p is None:
        raise UserInputError("dr_learner needs the propensity of the logged treatment (a propensity column)")
    n_levels = len(dm.spec.treatment.levels)
    mu_oof = np.zeros((len(y), n_levels))
    folds = StratifiedKFold(CROSS_FIT_FOLDS, shuffle=True, random_state=seed).split(x, codes * 2 + y)
    for fit_rows, score_rows in folds:
        mu_oof[score_rows] = fit_per_level(x[fit_rows], y[fit_rows], codes[fit_rows], n_levels, seed,
                                           params)(x[score_rows])
    mu = fit_per_level(x, y, codes, n_levels, seed, params)
    curves = {s: np.repeat(mu(features[s])[:, :1], n_levels, axis=1) for s in splits}
    for k in range(1, n_levels):
        arm, ctrl = (codes == k), (codes == 0)
        phi = (mu_oof[:, k] - mu_oof[:, 0] + arm * (y - mu_oof[:, k]) / p - ctrl * (y - mu_oof[:, 0]) / p)
        tau = gbm("regressor", seed, **params).fit(x, phi)
        for s in splits:
            curves[s][:, k] += tau.predict(features[s])
    return {s: curve_outputs(np.clip(curves[s], 0.0, 1.0), dm, s) for s in splits}


@TASK.baseline("class_transformation", search_space=GBM_SEARCH_SPACE)
def class_transformation_baseline(dm, splits, seed: int = 0, **params):
    """Class transformation (Jaskowski & Jaroszewicz 2012) per arm k vs control: z = 1 for treated responders
    and control non-responders, a gradient-boosting classifier of z with the two groups weighted to equal
    total weight (the method assumes a 50/50 split), uplift = 2·P(z = 1 | x) − 1. An uplift-only learner: the
    curve is the control rate plus the uplift (``fit: False``)."""
    x, y, codes, _, features = learner_inputs(dm, splits)
    n_levels = len(dm.spec.treatment.levels)
    base = float(y[codes == 0].mean())
    curves = {s: np.full((len(features[s]), n_levels), base) for s in splits}
    for k in range(1, n_levels):
        pair = (codes == 0) | (codes == k)
        t, yy = (codes[pair] == k).astype(np.int64), y[pair]
        z = (yy * t + (1 - yy) * (1 - t)).astype(np.int64)
        weight = np.where(t == 1, 0.5 / max(t.mean(), 1e-9), 0.5 / max(1 - t.mean(), 1e-9))
        model = gbm("classifier", seed, **params).fit(x[pair], z, sample_weight=weight)
        for s in splits:
            curves[s][:, k] = base + 2.0 * model.predict_proba(features[s])[:, 1] - 1.0
    return {s: curve_outputs(curves[s], dm, s, fit=False) for s in splits}


def isotonic_curves(outputs: dict, dm, split: str) -> dict:
    """Per-customer isotonic (non-decreasing) regression of each predicted curve over the levels (scikit-learn)."""
    from sklearn.isotonic import IsotonicRegression

    levels = np.asarray(outputs["levels"], dtype=np.float64)
    fitted = np.empty_like(outputs["curve"])
    iso = IsotonicRegression(increasing=True)
    for i, row in enumerate(outputs["curve"]):
        fitted[i] = iso.fit_transform(levels, row)
    return {**outputs, "p": at_logged_level(fitted, levels, split_treatment(dm, split)), "curve": fitted}


TASK.postprocess["isotonic"] = isotonic_curves
