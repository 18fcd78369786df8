"""Budget scenarios for an incentive plan: optimised vs uniform vs random vs oracle, judged on the truth.

The shape of the promotion-engine paper's Table 3 (seeds/000): ROI by budget scenario. Plans are built from
a model's predicted response curves; ROI and profit are computed from the TRUE curves when the data source
knows them (synthetic world), else from the predictions themselves (then the table says so).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deepromo.decide.allocation import allocate_budget, expected_value_and_cost, plan_roi, random_plan, uniform_plan

SCENARIOS = {"low": 0.1, "medium": 0.3, "high": 0.6, "unrestricted": float("inf")}


def budget_scenarios(
    predicted: np.ndarray,
    levels,
    margin,
    true: np.ndarray | None = None,
    scenarios: dict[str, float] = SCENARIOS,
    cost_model: str = "redemption",
    contact_cost: float = 0.0,
    uniform_level: int | None = None,
    seed: int = 0,
) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """ROI of four plans per budget scenario.

    predicted / true: [n, L] purchase probability per level (column 0 = no incentive). levels: [L] money.
    margin: revenue margin of one purchase (number or [n]). A scenario's budget is its share of the expected
    cost of the unrestricted optimised plan (inf = unrestricted). uniform_level: the column the uniform
    baseline gives everyone (default: the middle non-zero level).
    Returns ({scenario: {budget, optimised, uniform, random, oracle: plan_roi dicts, regret, roi_lift}},
    {scenario: optimised level [n]}).
    """
    levels = np.asarray(levels, dtype=np.float64)
    judge = true if true is not None else predicted
    value, cost = expected_value_and_cost(predicted, levels, margin, cost_model, contact_cost)
    true_value, true_cost = expected_value_and_cost(judge, levels, margin, cost_model, contact_cost)
    full = allocate_budget(value, cost, np.inf)
    uniform_level = uniform_level or max(1, (len(levels) - 1 + 1) // 2)
    report, plans = {}, {}
    for name, share in scenarios.items():
        budget = full.cost * share if np.isfinite(share) else np.inf
        plan = allocate_budget(value, cost, budget).level
        rng = np.random.default_rng(seed)
        uniform_budget = budget if np.isfinite(budget) else full.cost
        rows = {
            "optimised": plan,
            "uniform": uniform_plan(len(plan), uniform_level, cost[:, uniform_level], uniform_budget, rng),
            "random": random_plan(cost, uniform_budget, rng),
            "oracle": allocate_budget(true_value, true_cost, budget).level,
        }
        judged = {k: plan_roi(v, judge, levels, margin, cost_model, contact_cost) for k, v in rows.items()}
        entry = {"budget": float(budget), **judged}
        entry["regret"] = judged["oracle"]["profit"] - judged["optimised"]["profit"]
        base = judged["uniform"]["roi"]
        entry["roi_lift_vs_uniform"] = (judged["optimised"]["roi"] - base) / abs(base) if base else float("nan")
        report[name] = entry
        plans[name] = plan
    return report, plans


def scenario_table(report: dict[str, dict]) -> str:
    """Markdown: ROI of each plan per scenario, lift over uniform, regret to the oracle."""
    lines = ["| budget | optimised ROI | uniform ROI | random ROI | oracle ROI | lift vs uniform | regret |",
             "|---|---|---|---|---|---|---|"]
    for name, r in report.items():
        lines.append(f"| {name} | {r['optimised']['roi']:.2f} | {r['uniform']['roi']:.2f} | {r['random']['roi']:.2f} | "
                     f"{r['oracle']['roi']:.2f} | {100 * r['roi_lift_vs_uniform']:+.0f} % | {r['regret']:.1f} |")
    return "\n".join(lines)


def plot_roi_by_budget(report: dict[str, dict], path) -> Path:
    """Grouped bars: ROI of each plan per budget scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plans = ("optimised", "uniform", "random", "oracle")
    x = np.arange(len(report))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for k, plan in enumerate(plans):
        ax.bar(x + (k - 1.5) * 0.2, [report[s][plan]["roi"] for s in report], width=0.2, label=plan)
    ax.set_xticks(x, list(report))
    ax.set_ylabel("ROI = (incremental revenue - cost) / cost")
    ax.set_title("ROI by budget scenario (judged on the true response curves)")
    ax.axhline(0, color="k", lw=0.8)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plan_frame(level: np.ndarray, customer_ids, levels, predicted: np.ndarray, margin,
               cost_model: str = "redemption", contact_cost: float = 0.0) -> pd.DataFrame:
    """The plan as rows: customer_id, level index, incentive, expected uplift (purchase probability), expected cost."""
    levels = np.asarray(levels, dtype=np.float64)
    _, cost = expected_value_and_cost(predicted, levels, margin, cost_model, contact_cost)
    idx = np.arange(len(level))
    return pd.DataFrame({
        "customer_id": np.asarray(customer_ids),
        "level": level,
        "incentive": levels[level],
        "expected_uplift": predicted[idx, level] - predicted[:, 0],
        "expected_cost": cost[idx, level],
    })


def purchase_margin(frame: pd.DataFrame, margin_column: str | None, margin_rate: float, margin: float) -> np.ndarray:
    """[n] margin of one purchase per row (money): ``margin_column`` x ``margin_rate``, or the flat ``margin``;
    rows without a positive value get the median positive margin (1.0 when none is positive)."""
    values = (frame[margin_column].to_numpy(dtype=np.float64) * float(margin_rate) if margin_column
              else np.full(len(frame), float(margin)))
    return np.where(values > 0, values, np.median(values[values > 0]) if np.any(values > 0) else 1.0)
