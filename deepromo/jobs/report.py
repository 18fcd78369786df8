"""The decision report behind ``report.py``: segment -> train & score -> plan -> rollout -> A/B analysis -> report.

``run_decision_report(cfg)`` trains ``cfg.model`` exactly as ``train.py`` does (same metrics, plots and registry
entry), then:

* **synthetic world** (ground truth known): a fresh cohort of new customers from the same world (seed + offset)
  is segmented and scored; the budgeted plan of the model competes with a random plan and the RFM rule at the same
  budget, and a no-incentive holdout, in a simulated rollout drawn from the TRUE response curves;
* **real data** (e.g. Hillstrom): the held-out test customers are segmented and scored; the plan targets the top
  ``report.target_share`` by predicted uplift, and the logged randomised campaign is read as the rollout
  (treatment vs control among the customers the plan targets, and among those it leaves out).

It writes ``report.md`` + ``report.html`` (one self-contained file) with every table and plot, the rollout log
(``rollout.parquet``) and the lift table (``lift_table.csv``), and logs them to the training run in MLflow.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from deepromo.data.sources import load_source
from deepromo.data.tables import true_response_curves
from deepromo.data.views import build_view
from deepromo.decide.allocation import expected_value_and_cost, random_plan
from deepromo.decide.campaign import (
    Metric,
    compare_arms,
    lift_table_markdown,
    minimum_detectable_lift,
    proportion_test,
    sample_size_proportions,
)
from deepromo.decide.rollout import logged_rollout, simulate_rollout
from deepromo.decide.scenarios import budget_scenarios, plot_roi_by_budget, purchase_margin, scenario_table
from deepromo.decide.targeting import rfm_rule_plan, top_share_plan
from deepromo.jobs.config import ConfigError
from deepromo.jobs.segment import Segmentation, segment_customers, segmentation_options, write_segmentation
from deepromo.jobs.train import TrainedRun, train_and_evaluate
from deepromo.reporting.plots import plot_qini_curves, saved_figure
from deepromo.reporting.render import Section, format_table, markdown_table, write_report
from deepromo.tasks import get_task

log = logging.getLogger("deepromo")

__all__ = ["ROLLOUT_METRICS", "CampaignPlan", "run_decision_report", "plan_campaign", "analyse_rollout"]

ROLLOUT_METRICS = {
    "conversion": Metric("purchased", "rate"),
    "revenue per customer": Metric("revenue", "mean"),
    "net revenue per customer": Metric("net_revenue", "mean"),
    "average order value": Metric("revenue", "mean", among="purchased"),
}


@dataclass
class CampaignPlan:
    """Plans over one population. customer_ids [n]; levels [L] money; score [n] (predicted uplift or P(prompted));
    predicted [n, L] purchase probability per level (None for targeting models); arms {name: level [n]};
    scenarios: the ROI-by-budget report or None; notes: how the plans were made (report text)."""

    customer_ids: np.ndarray
    levels: np.ndarray
    score: np.ndarray
    predicted: np.ndarray | None
    arms: dict[str, np.ndarray]
    scenarios: dict | None = None
    notes: list[str] = field(default_factory=list)


def _has_truth(data, levels) -> bool:
    return true_response_curves(data.truth, levels) is not None and "basket_value" in data.truth.columns


def rollout_population(cfg: DictConfig, trained: TrainedRun):
    """(data, view frame rows, simulated?) of the customers the campaign is rolled out to: a fresh synthetic
    cohort when the source has ground truth, else the test split of the training data."""
    r = cfg.report
    if _has_truth(trained.data, trained.data.incentive_levels) and cfg.data.source == "synthetic":
        options = OmegaConf.to_container(cfg.data.options, resolve=True)
        options.update(n_customers=int(r.cohort_size), seed=int(cfg.seed) + int(r.cohort_seed_offset))
        cohort = load_source("synthetic", **options)
        return cohort, build_view(get_task(type(trained.model).task).view, cohort).frame, True
    frame = trained.dm.view.frame.iloc[trained.dm.indices["test"]]
    return trained.data, frame, False


def score_population(model, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """(uplift score [n], predicted curve [n, L] or None) of a trained model whose task plans campaigns."""
    task = get_task(type(model).task)
    outputs = task.frame_outputs(model, frame)
    return np.asarray(task.uplift_score(outputs), dtype=np.float64), outputs.get("curve")


def plan_campaign(cfg: DictConfig, model, frame: pd.DataFrame, seg: Segmentation, simulated: bool,
                  data) -> CampaignPlan:
    """The model's plan and its comparators over ``frame``'s customers (module docstring)."""
    r = cfg.report
    levels = np.asarray(data.incentive_levels, dtype=np.float64)
    ids = frame["customer_id"].to_numpy()
    score, predicted = score_population(model, frame)
    named = seg.rfm_segment.reindex(ids).to_numpy()
    scores_rfm = seg.rfm_scores.reindex(ids)
    rng = np.random.default_rng(int(cfg.seed))
    level = int(r.target_level) if r.get("target_level") else max(1, len(levels) // 2)
    if predicted is not None and simulated:
        a = cfg.model.allocation
        margin = purchase_margin(frame, a.margin_column, a.margin_rate, a.margin)
        true = true_response_curves(data.truth.set_index("customer_id").loc[ids].reset_index(), levels)
        report, plans = budget_scenarios(predicted, levels, margin, true, dict(a.scenarios), a.cost_model,
                                         a.contact_cost, uniform_level=level, seed=int(cfg.seed))
        budget = report[r.scenario]["budget"]
        _, cost = expected_value_and_cost(predicted, levels, margin, a.cost_model, a.contact_cost)
        arms = {"model": plans[r.scenario], "random": random_plan(cost, budget, rng),
                "rfm_rule": rfm_rule_plan(named, scores_rfm, level, cost[:, level], budget)}
        notes = [f"Budget: the '{r.scenario}' scenario, {budget:,.0f} of expected incentive cost; the random plan and "
                 f"the RFM rule (level {levels[level]:g} to champions, loyal and potential loyalists, best RFM "
                 "first) spend up to the same budget by the model's cost estimate."]
    else:
        k_share = float(r.target_share)
        target_level = len(levels) - 1 if predicted is not None else level
        arms = {"model": top_share_plan(score, k_share, target_level),
                "random": top_share_plan(rng.random(len(ids)), k_share, target_level)}
        k = int(arms["model"].astype(bool).sum())
        arms["rfm_rule"] = rfm_rule_plan(named, scores_rfm, target_level, 1.0, budget=k)
        report = None
        notes = [f"Targeting: the top {k_share:.0%} of customers by the model's score get level "
                 f"{levels[target_level]:g}; the random plan and the RFM rule target as many customers."]
    arms[str(r.control)] = np.zeros(len(ids), dtype=np.int64)
    return CampaignPlan(ids, levels, score, predicted, arms, report, notes)


def run_rollout(cfg: DictConfig, plan: CampaignPlan, data, simulated: bool) -> pd.DataFrame:
    """The A/B log: simulated from the truth over every arm, or the logged RCT read for the model's plan."""
    if simulated:
        a = cfg.model.get("allocation") or {}
        return simulate_rollout(data, plan.customer_ids, plan.arms, plan.levels, seed=int(cfg.seed) + 1,
                                cost_model=a.get("cost_model", "redemption"),
                                contact_cost=float(a.get("contact_cost", 0.0)))
    return logged_rollout(data, plan.customer_ids, (plan.arms["model"] > 0).astype(np.int8),
                          cost_model=str(cfg.report.logged_cost_model),
                          contact_cost=float(cfg.report.logged_contact_cost))


def analyse_rollout(rollout: pd.DataFrame, control: str, simulated: bool, alpha: float = 0.05) -> pd.DataFrame:
    """Lift table: every arm vs ``control`` and the model vs the random plan (simulated), or, for a logged RCT,
    treatment vs control among the customers the plan targets, among those it leaves out, and overall."""
    if simulated:
        arms = [a for a in ("model", "random", "rfm_rule") if a in set(rollout["arm"])]
        vs_control = compare_arms(rollout, "arm", control, arms, ROLLOUT_METRICS, alpha)
        vs_control.insert(0, "comparison", vs_control["arm"] + " vs " + control)
        head_to_head = compare_arms(rollout[rollout["arm"].isin(["model", "random"])], "arm", "random", ["model"],
                                    ROLLOUT_METRICS, alpha)
        head_to_head.insert(0, "comparison", "model vs random")
        return pd.concat([vs_control, head_to_head], ignore_index=True)
    parts = []
    for name, rows in (("targeted by the model", rollout["targeted"] == 1),
                       ("not targeted", rollout["targeted"] == 0), ("everyone", slice(None))):
        t = compare_arms(rollout[rows], "arm", "control", ["treatment"], ROLLOUT_METRICS, alpha)
        t.insert(0, "comparison", f"e-mail vs none: {name}")
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


def arm_summary(rollout: pd.DataFrame) -> pd.DataFrame:
    """Per arm: customers, share targeted, mean incentive of the targeted, cost, conversion and revenue."""
    g = rollout.groupby("arm", sort=False)
    out = pd.DataFrame({
        "customers": g.size(),
        "targeted": g["targeted"].mean(),
        "mean incentive (targeted)": g.apply(lambda d: d.loc[d["targeted"] == 1, "incentive"].mean()
                                             if d["targeted"].any() else 0.0, include_groups=False),
        "incentive cost / customer": g["incentive_cost"].mean(),
        "conversion": g["purchased"].mean(),
        "revenue / customer": g["revenue"].mean(),
        "net revenue / customer": g["net_revenue"].mean(),
    })
    if "expected_purchase" in rollout.columns:
        out["true expected conversion"] = g["expected_purchase"].mean()
    return out


def segment_targeting(plan: CampaignPlan, seg: Segmentation, rollout: pd.DataFrame, control: str,
                      alpha: float) -> pd.DataFrame:
    """Whom to target with what incentive, per segment: the model plan's reach and incentive mix, the predicted
    uplift, and the conversion lift the rollout measured in that segment (model arm vs control)."""
    labels = seg.labels.reindex(plan.customer_ids).to_numpy()
    model_plan = plan.arms["model"]
    amount = plan.levels[model_plan]
    rows = []
    for s in np.unique(labels):
        here = labels == s
        targeted = model_plan[here] > 0
        seg_roll = rollout[np.isin(rollout["customer_id"], plan.customer_ids[here])]
        arm_t = seg_roll[seg_roll["arm"] == ("model" if "model" in set(rollout["arm"]) else "treatment")]
        arm_c = seg_roll[seg_roll["arm"] == control]
        if "model" not in set(rollout["arm"]):  # logged RCT: the lift among the customers the plan targets
            arm_t, arm_c = arm_t[arm_t["targeted"] == 1], arm_c[arm_c["targeted"] == 1]
        row = {"segment": s, "description": seg.profile.loc[s, "description"], "customers": int(here.sum()),
               "share targeted": targeted.mean(),
               "mean incentive (targeted)": amount[here][targeted].mean() if targeted.any() else 0.0,
               "incentive mix": _mix(amount[here][targeted]),
               ("mean predicted uplift" if plan.predicted is not None else "mean score"): plan.score[here].mean()}
        if len(arm_t) and len(arm_c):
            test = proportion_test(arm_c["purchased"].sum(), len(arm_c), arm_t["purchased"].sum(), len(arm_t), alpha)
            row.update({"rollout conversion (plan)": test["treatment"], "rollout conversion (control)": test["control"],
                        "lift": test["lift"], "lift CI": _interval(test["lift_ci"]), "p": test["p_value"]})
        rows.append(row)
    return pd.DataFrame(rows).set_index("segment")


def _mix(amounts: np.ndarray) -> str:
    if not len(amounts):
        return "none"
    values, counts = np.unique(amounts, return_counts=True)
    return ", ".join(f"{v:g}: {c / len(amounts):.0%}" for v, c in zip(values, counts))


def _interval(ci) -> str:
    low, high = ci
    return "–" if not (np.isfinite(low) and np.isfinite(high)) else f"[{low:+.1%}, {high:+.1%}]"


def plot_rollout_lift(table: pd.DataFrame, path: Path, metric: str = "conversion") -> Path:
    """Relative lift of ``metric`` with its confidence interval for every comparison of the lift table."""
    rows = table[table["metric"] == metric]
    with saved_figure(path, figsize=(7.5, 0.6 * len(rows) + 1.6)) as (fig, ax):
        y = np.arange(len(rows))
        lift = rows["lift"].to_numpy() * 100
        err = np.vstack([lift - rows["lift_low"].to_numpy() * 100, rows["lift_high"].to_numpy() * 100 - lift])
        ax.errorbar(lift, y, xerr=np.abs(err), fmt="o", capsize=4)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(y, rows["comparison"].tolist())
        ax.invert_yaxis()
        ax.set(xlabel=f"relative lift in {metric} (%), with its confidence interval", title="Rollout: measured lift")
        ax.grid(axis="x", alpha=0.3)
    return path


def qini_plot(trained: TrainedRun, run_dir: Path) -> Path | None:
    """Qini curves of the model and its baselines on the training data's test split (tasks with uplift curves)."""
    scores = get_task(type(trained.model).task).qini_scores(trained.evaluation)
    if scores is None:
        return None
    dm = trained.dm
    test = dm.view.frame.iloc[dm.indices["test"]]
    t = (test[dm.view.extras.get("treatment", "incentive")].to_numpy() > 0).astype(np.int64)
    y = test[dm.view.targets["y"]].to_numpy().astype(np.int64)
    scores["random"] = np.random.default_rng(0).random(len(y))
    return plot_qini_curves(y, t, scores, run_dir / "qini_curves.png",
                            f"Qini on the test split (n={len(y)}): uplift at the top level")


def _image(path: Path | None, caption: str) -> str:
    return f"![{caption}]({path.name})" if path is not None and path.exists() else ""


PROFILE_FORMATS = {"share": ".1%", "purchase_rate": ".2%", "response_rate": ".2%", "control_rate": ".2%",
                   "uplift": "+.2%", "recency_days_mean": ".1f", "frequency_mean": ".2f", "monetary_mean": ".2f"}


def build_sections(cfg, trained: TrainedRun, seg: Segmentation, plan: CampaignPlan, rollout: pd.DataFrame,
                   lift: pd.DataFrame, targeting: pd.DataFrame, simulated: bool, plots: dict) -> list[Section]:
    """The report's sections, in reading order (summary first)."""
    r, results, sel = cfg.report, trained.results, seg.selection
    headline = lift[lift["metric"] == "conversion"].iloc[0]
    summary = [
        f"- **Segments**: {seg.k} {seg.method} segments of {len(seg.rfm):,} customers on log-RFM; k by the "
        f"{sel.criterion} criterion (gap {sel.k_gap}, silhouette {sel.k_silhouette}, elbow {sel.k_elbow}, "
        f"BIC {sel.k_bic}).",
        f"- **Model**: `{results['model']}` trained on `{results['data']}`; test metrics against its baselines below.",
        f"- **Plan**: {int((plan.arms['model'] > 0).sum()):,} of {len(plan.customer_ids):,} customers targeted. "
        + " ".join(plan.notes),
        f"- **Rollout**: {headline['comparison']}: conversion {headline['control']:.2%} → {headline['treatment']:.2%}, "
        f"lift {headline['lift']:+.1%} (95 % CI {_interval((headline['lift_low'], headline['lift_high']))}, "
        f"p = {headline['p_value']:.2g}; {headline['p_adjusted']:.2g} after the Holm adjustment within its "
        "comparison group).",
    ]
    if simulated:
        summary.append("- Outcomes of the rollout are drawn from the synthetic world's true response curves for a "
                       f"fresh cohort of {len(plan.customer_ids):,} customers the model never saw.")
    else:
        summary.append("- Outcomes are the logged randomised campaign on the held-out test customers: the plan is "
                       "judged by the treatment–control difference among the customers it targets. Conversion is "
                       "the source's outcome (for Hillstrom `data.options.outcome`: visit by default).")
    sel_table = sel.table[["inertia", "silhouette", "gap", "gap_sd", "bic"]]
    sections = [
        Section("Summary", "\n".join(summary)),
        Section("Segments", "\n\n".join([
            f"Customers clustered on standardised log recency, frequency and monetary value. Choosing k "
            f"(chosen: **{seg.k}**):",
            markdown_table(sel_table, {"inertia": ".1f", "silhouette": ".3f", "gap": ".3f", "gap_sd": ".3f",
                                       "bic": ".0f"}),
            _image(plots.get("k_selection"), "k selection"),
            "Segment profile (the logged campaign's purchase rate, the response rate of treated customers, the "
            "control rate and their difference):",
            markdown_table(seg.profile, PROFILE_FORMATS),
            _image(plots.get("segment_map"), "segment map"),
            "The rule-based baseline: classic RFM score segments.",
            markdown_table(seg.rfm_profile.drop(columns="description", errors="ignore"), PROFILE_FORMATS),
        ])),
        Section("Model", "\n\n".join([
            f"Test split of the training data (n = {results['n_test']:,}), target: {results['target']}.",
            format_table(results["test"]),
            _image(plots.get("qini"), "Qini curves"),
            *(_image(path, name.replace("_", " ")) for name, path in trained.outputs.items()
              if Path(path).suffix == ".png" and name != "roi_by_budget"),
        ])),
        Section("Whom to target with what incentive", "\n\n".join([
            " ".join(plan.notes),
            markdown_table(targeting, {"share targeted": ".1%", "mean incentive (targeted)": ".2f",
                                       "mean predicted uplift": "+.3f", "mean score": ".3f",
                                       "rollout conversion (plan)": ".2%",
                                       "rollout conversion (control)": ".2%", "lift": "+.1%", "p": ".2g"}),
        ])),
    ]
    if plan.scenarios is not None:
        sections.append(Section("ROI by budget", "\n\n".join([
            "Plans built from the model's predicted curves, judged on the cohort's true response curves "
            "(ROI = (incremental revenue − incentive cost) / incentive cost).",
            scenario_table(plan.scenarios),
            _image(plots.get("roi"), "ROI by budget"),
        ])))
    arms = arm_summary(rollout)
    p_c, p_t = float(headline["control"]), float(headline["treatment"])
    n_c, n_t = int(headline["n_control"]), int(headline["n_treatment"])
    mde = minimum_detectable_lift(p_c, n_c, n_t, alpha=float(r.alpha), power=float(r.power))
    need = (sample_size_proportions(p_c, p_treatment=p_t, alpha=float(r.alpha), power=float(r.power))
            if p_t != p_c else None)
    sections.append(Section("Rollout: A/B analysis", "\n\n".join([
        ("Customers were randomised into equal arms (complete randomisation); each arm received its plan."
         if simulated else "Arms are the logged randomisation of the campaign (treatment = e-mail, control = none)."),
        markdown_table(arms, {"targeted": ".1%", "mean incentive (targeted)": ".2f", "incentive cost / customer": ".2f",
                              "conversion": ".2%", "revenue / customer": ".2f", "net revenue / customer": ".2f",
                              "true expected conversion": ".2%"}),
        "Lift table: two-proportion z-test for rates (χ² agrees), Welch t-test for amounts; relative lift with "
        f"{1 - float(r.alpha):.0%} confidence intervals; p-values Holm-adjusted within each comparison group.",
        lift_table_markdown(lift.assign(arm=lift["comparison"])),
        _image(plots.get("lift"), "rollout lift"),
        f"Power ({headline['comparison']}): with {n_c:,} control and {n_t:,} treated customers at a control "
        f"conversion of {p_c:.2%}, the smallest "
        f"relative lift detectable with {float(r.power):.0%} power at α = {float(r.alpha)} is {mde:+.1%}"
        + (f"; detecting the measured {p_c:.2%} → {p_t:.2%} needs {need:,} customers per arm." if need else "."),
    ])))
    return sections


def run_decision_report(cfg: DictConfig) -> dict:
    """``python report.py``: the whole chain; returns a summary (also written to report.json)."""
    trained = train_and_evaluate(cfg)
    run_dir = trained.run_dir
    task = get_task(type(trained.model).task)
    if not task.plans_campaigns:
        raise ConfigError(f"report.py needs a model whose task plans campaigns (response or targeting: dipn, splc); "
                         f"model '{cfg.model.name}' is a {task.name} model")
    data, frame, simulated = rollout_population(cfg, trained)
    seg = segment_customers(data, **segmentation_options(cfg))
    files = write_segmentation(seg, run_dir)
    plan = plan_campaign(cfg, trained.model, frame, seg, simulated, data)
    rollout = run_rollout(cfg, plan, data, simulated)
    control = str(cfg.report.control) if simulated else "control"
    lift = analyse_rollout(rollout, control, simulated, float(cfg.report.alpha))
    targeting = segment_targeting(plan, seg, rollout, control, float(cfg.report.alpha))
    plots = {"k_selection": run_dir / "k_selection.png", "segment_map": run_dir / "segment_map.png",
             "qini": qini_plot(trained, run_dir), "lift": plot_rollout_lift(lift, run_dir / "rollout_lift.png")}
    if plan.scenarios is not None:
        plots["roi"] = plot_roi_by_budget(plan.scenarios, run_dir / "rollout_roi_by_budget.png")
    rollout.to_parquet(run_dir / "rollout.parquet", index=False)
    lift.to_csv(run_dir / "lift_table.csv", index=False)
    sections = build_sections(cfg, trained, seg, plan, rollout, lift, targeting, simulated, plots)
    title = f"Decision report: {cfg.model.name} on {cfg.data.source}"
    subtitle = (f"Seed {cfg.seed}; {'simulated rollout on a fresh cohort' if simulated else 'logged A/B test'}; "
                f"run folder `{run_dir}`.")
    reports = write_report(run_dir, title, sections, subtitle, tuple(cfg.report.formats))
    headline = lift[lift["metric"] == "conversion"].iloc[0]
    summary = {
        "model": cfg.model.name, "data": cfg.data.source, "simulated_rollout": simulated, "k": seg.k,
        "n_rollout": len(rollout), "n_targeted": int((plan.arms["model"] > 0).sum()),
        "headline": {"comparison": headline["comparison"], "control": headline["control"],
                     "treatment": headline["treatment"], "lift": headline["lift"],
                     "lift_ci": [headline["lift_low"], headline["lift_high"]], "p_value": headline["p_value"]},
        "reports": [str(p) for p in reports], "registered": trained.results.get("registered"),
    }
    (run_dir / "report.json").write_text(json.dumps(summary, indent=2, default=float))
    if trained.mlflow_run_id:
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        artifacts = [*reports, *files, run_dir / "rollout.parquet", run_dir / "lift_table.csv",
                     run_dir / "report.json", *(p for p in plots.values() if p is not None)]
        for path in dict.fromkeys(artifacts):
            client.log_artifact(trained.mlflow_run_id, str(path), artifact_path="report")
        client.log_metric(trained.mlflow_run_id, "report/rollout_conversion_lift", float(headline["lift"]))
    print(f"\ndecision report: {', '.join(str(p) for p in reports)}\n{headline['comparison']}: conversion lift "
          f"{headline['lift']:+.1%} [{headline['lift_low']:+.1%}, {headline['lift_high']:+.1%}]")
    return summary
