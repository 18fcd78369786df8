"""Campaign A/B analysis: control vs treatment per metric, relative lift with CIs, tests and sample sizes.

The shape of the promotion-engine paper's Table 4 (Metric | Control | Treatment | Relative lift), plus
confidence intervals and (multiplicity-adjusted) p-values. Rates (0/1 columns: conversion, redemption) get a
pooled two-proportion z-test and the equivalent Pearson chi-square; amounts (revenue, order value) get a
Welch t-test. Statistics come from statsmodels / scipy; the only hand-written pieces are the delta-method CI of
the ratio of two means and the inversion of Cohen's h, which neither library offers (marked where they occur).

Conventions: diff = treatment − control; lift = treatment / control − 1 (relative, 0.1 = +10 %); rates are
shares in [0, 1]; sample sizes are per arm (control arm n; treatment n = ratio · n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_effectsize, proportions_ztest

from deepromo.data.errors import UserInputError

__all__ = [
    "Metric", "proportion_test", "mean_test", "compare_arms", "lift_table_markdown",
    "sample_size_proportions", "power_proportions", "minimum_detectable_lift", "sample_size_means",
    "CORRECTIONS", "TABLE_COLUMNS",
]

# statsmodels multipletests methods (canonical names) plus "none" = no adjustment.
CORRECTIONS = ("none", "bonferroni", "sidak", "holm-sidak", "holm", "simes-hochberg", "hommel",
               "fdr_bh", "fdr_by", "fdr_tsbh", "fdr_tsbky")
_ALTERNATIVES = ("two-sided", "larger", "smaller")
_NAN2 = (float("nan"), float("nan"))

TABLE_COLUMNS = ("arm", "metric", "kind", "n_control", "n_treatment", "control", "treatment", "diff", "diff_low",
                 "diff_high", "lift", "lift_low", "lift_high", "test", "statistic", "p_value", "p_adjusted",
                 "significant", "note")


@dataclass(frozen=True)
class Metric:
    """One campaign metric. column: the frame column; kind: "rate" (0/1 column, e.g. converted) or "mean"
    (any numeric, e.g. revenue); among: optional 0/1 column restricting the rows (e.g. average order value =
    Metric("revenue", "mean", among="converted"))."""

    column: str
    kind: str = "rate"
    among: str | None = None

    def __post_init__(self):
        if self.kind not in ("rate", "mean"):
            raise UserInputError(f"Metric({self.column!r}).kind: expected 'rate' or 'mean', got {self.kind!r}")


# ---------------------------------------------------------------------------------------------- validation


def _check_open_unit(name: str, value) -> float:
    value = float(value)
    if not 0.0 < value < 1.0:
        raise UserInputError(f"{name}: expected a number in (0, 1), got {value!r}")
    return value


def _check_count(name: str, value) -> int:
    try:
        ok = not isinstance(value, (bool, np.bool_)) and float(value).is_integer() and value >= 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UserInputError(f"{name}: expected a non-negative integer count, got {value!r}")
    return int(value)


def _check_values(name: str, values, metric: str) -> np.ndarray:
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise UserInputError(f"metric {metric!r}: {name}: expected numeric values ({e})") from None
    if v.ndim != 1:
        raise UserInputError(f"metric {metric!r}: {name}: expected a 1-D array, got shape {v.shape}")
    if np.isnan(v).any():
        raise UserInputError(f"metric {metric!r}: {name}: expected no NaN, found {int(np.isnan(v).sum())} of {len(v)}")
    if len(v) < 2:
        raise UserInputError(f"metric {metric!r}: {name}: expected at least 2 values for a t-test, got {len(v)}")
    return v


def _check_binary(frame: pd.DataFrame, column: str, what: str) -> np.ndarray:
    """frame[column] as float 0/1 array; ValueError naming the column and (up to 5) offending values."""
    try:
        v = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        v = None
    bad = frame[column].unique()[:5] if v is None else np.unique(v[~np.isin(v, (0.0, 1.0))])[:5]
    if len(bad):
        raise UserInputError(f"{what} column {column!r}: expected 0/1 values only, got {bad.tolist()}")
    return v


# ------------------------------------------------------------------------------------------- single tests


def proportion_test(successes_control, n_control, successes_treatment, n_treatment, alpha: float = 0.05) -> dict:
    """Two-proportion comparison (counts of successes out of n per arm).

    Returns {control, treatment: rates in [0, 1]; diff = treatment − control with diff_ci (Wald, unpooled);
    lift = treatment / control − 1 with lift_ci (log risk-ratio CI − 1); z, p_value (pooled two-proportion
    z-test, two-sided); chi2, chi2_p_value (Pearson 2×2, no continuity correction: chi2 = z²);
    n_control, n_treatment; note: "" or why some entries are NaN}. CIs are (low, high) at level 1 − alpha.
    """
    alpha = _check_open_unit("alpha", alpha)
    n_c, n_t = _check_count("n_control", n_control), _check_count("n_treatment", n_treatment)
    s_c = _check_count("successes_control", successes_control)
    s_t = _check_count("successes_treatment", successes_treatment)
    for arm, s, n in (("control", s_c, n_c), ("treatment", s_t, n_t)):
        if n == 0:
            raise UserInputError(f"n_{arm}: the {arm} arm has no observations (n = 0)")
        if s > n:
            raise UserInputError(f"successes_{arm}: expected at most n_{arm} = {n}, got {s}")
    p_c, p_t = s_c / n_c, s_t / n_t
    notes = []
    # statsmodels compares arm 1 against arm 2: pass treatment first so diff / ratio are treatment vs control
    diff_ci = confint_proportions_2indep(s_t, n_t, s_c, n_c, compare="diff", method="wald", alpha=alpha)
    if s_c == 0:
        lift, lift_ci = float("nan"), _NAN2
        notes.append("control rate is 0: relative lift undefined")
    elif s_t == 0:
        lift, lift_ci = -1.0, _NAN2
        notes.append("treatment rate is 0: log-ratio CI of the lift undefined")
    else:
        lift = p_t / p_c - 1.0
        low, high = confint_proportions_2indep(s_t, n_t, s_c, n_c, compare="ratio", method="log", alpha=alpha)
        lift_ci = (low - 1.0, high - 1.0)
    if s_c + s_t in (0, n_c + n_t):  # pooled rate 0 or 1: zero variance, both tests undefined
        z = p_value = chi2 = chi2_p = float("nan")
        notes.append("all observations equal (pooled rate 0 or 1): z / chi-square tests undefined")
    else:
        z, p_value = proportions_ztest([s_t, s_c], [n_t, n_c])
        table = np.array([[s_c, n_c - s_c], [s_t, n_t - s_t]])
        chi2, chi2_p, _, _ = stats.chi2_contingency(table, correction=False)
    return {
        "control": p_c, "treatment": p_t, "diff": p_t - p_c, "diff_ci": tuple(float(x) for x in diff_ci),
        "lift": float(lift), "lift_ci": tuple(float(x) for x in lift_ci),
        "z": float(z), "p_value": float(p_value), "chi2": float(chi2), "chi2_p_value": float(chi2_p),
        "n_control": n_c, "n_treatment": n_t, "note": "; ".join(notes),
    }


def mean_test(values_control, values_treatment, alpha: float = 0.05, *, metric: str = "values") -> dict:
    """Welch comparison of two means. values_control: [n_c], values_treatment: [n_t] (same unit, e.g. money).

    Returns {control, treatment: means; diff = treatment − control with diff_ci (Welch–Satterthwaite df);
    lift = treatment / control − 1 with lift_ci (delta method on log(m_t / m_c)); t, df, p_value (Welch
    t-test, two-sided); n_control, n_treatment; note: "" or why some entries are NaN}. CIs at level 1 − alpha.
    metric: name used in error messages.
    """
    alpha = _check_open_unit("alpha", alpha)
    c = _check_values("values_control", values_control, metric)
    t = _check_values("values_treatment", values_treatment, metric)
    m_c, m_t = float(c.mean()), float(t.mean())
    v_c, v_t = float(c.var(ddof=1)), float(t.var(ddof=1))
    notes = []
    no_variance = v_c == 0.0 and v_t == 0.0
    if no_variance:
        stat = df = p_value = float("nan")
        diff_ci = _NAN2
        notes.append("zero variance in both arms: Welch t-test and CIs undefined")
    else:
        res = stats.ttest_ind(t, c, equal_var=False)
        stat, df, p_value = float(res.statistic), float(res.df), float(res.pvalue)
        ci = res.confidence_interval(confidence_level=1.0 - alpha)
        diff_ci = (float(ci.low), float(ci.high))
    if m_c == 0.0:
        lift, lift_ci = float("nan"), _NAN2
        notes.append("control mean is 0: relative lift undefined")
    elif m_c < 0.0 or m_t <= 0.0 or no_variance:
        lift, lift_ci = m_t / m_c - 1.0, _NAN2
        if not no_variance:
            notes.append("non-positive mean: log-ratio CI of the lift undefined")
    else:
        # Hand-written (neither scipy nor statsmodels has a CI for a ratio of independent means): delta method
        # on the log ratio, var(log m_t − log m_c) ≈ s_t²/(n_t·m_t²) + s_c²/(n_c·m_c²); back-transform, − 1.
        lift = m_t / m_c - 1.0
        se = math.sqrt(v_t / (len(t) * m_t**2) + v_c / (len(c) * m_c**2))
        half = stats.norm.isf(alpha / 2.0) * se
        log_ratio = math.log(m_t / m_c)
        lift_ci = (math.exp(log_ratio - half) - 1.0, math.exp(log_ratio + half) - 1.0)
    return {
        "control": m_c, "treatment": m_t, "diff": m_t - m_c, "diff_ci": diff_ci, "lift": lift, "lift_ci": lift_ci,
        "t": stat, "df": df, "p_value": p_value, "n_control": len(c), "n_treatment": len(t),
        "note": "; ".join(notes),
    }


# ------------------------------------------------------------------------------------------ the arm table


def _default_metrics(frame: pd.DataFrame, arm_column: str) -> dict[str, Metric]:
    """Every numeric / bool column but the arm column: 0/1-valued → "rate", otherwise "mean"."""
    out = {}
    for col in frame.columns:
        if col == arm_column or not pd.api.types.is_numeric_dtype(frame[col]):  # bool counts as numeric
            continue
        is_rate = frame[col].isin((0, 1)).all()
        out[str(col)] = Metric(col, "rate" if is_rate else "mean")
    if not out:
        raise UserInputError(f"metrics: none given and frame has no numeric column besides {arm_column!r}")
    return out


def _row(arm, name: str, metric: Metric, control_values: np.ndarray, treatment_values: np.ndarray,
         alpha: float) -> dict:
    if metric.kind == "rate":
        r = proportion_test(int(control_values.sum()), len(control_values),
                            int(treatment_values.sum()), len(treatment_values), alpha)
        test, statistic = "two-proportion z", r["z"]
    else:
        r = mean_test(control_values, treatment_values, alpha, metric=name)
        test, statistic = "Welch t", r["t"]
    return {
        "arm": arm, "metric": name, "kind": metric.kind, "n_control": r["n_control"], "n_treatment": r["n_treatment"],
        "control": r["control"], "treatment": r["treatment"], "diff": r["diff"],
        "diff_low": r["diff_ci"][0], "diff_high": r["diff_ci"][1],
        "lift": r["lift"], "lift_low": r["lift_ci"][0], "lift_high": r["lift_ci"][1],
        "test": test, "statistic": statistic, "p_value": r["p_value"], "note": r["note"],
    }


def compare_arms(frame: pd.DataFrame, arm_column: str, control, treatments=None, metrics: dict | None = None,
                 alpha: float = 0.05, correction: str = "holm") -> pd.DataFrame:
    """Control vs each treatment arm on each metric: one row per (treatment arm, metric).

    frame: one row per unit (customer), arm_column holding the arm label. control: the control label.
    treatments: labels to compare (default: every other arm, sorted). metrics: {name: Metric} (default: every
    numeric column; 0/1-valued ones as rates). p_adjusted: statsmodels multipletests over all rows with a
    p-value (method=correction, "none" = unadjusted); significant = p_adjusted < alpha.
    Returns DataFrame with columns TABLE_COLUMNS (rates in [0, 1], lifts relative, CIs at 1 − alpha);
    table.attrs["alpha"] = alpha.
    """
    alpha = _check_open_unit("alpha", alpha)
    if correction not in CORRECTIONS:
        raise UserInputError(f"correction: expected one of {list(CORRECTIONS)}, got {correction!r}")
    if arm_column not in frame.columns:
        raise UserInputError(f"arm_column: {arm_column!r} is not a column of frame (has {list(frame.columns)})")
    arm = frame[arm_column]
    available = sorted(arm.dropna().unique().tolist())
    if control not in available:
        raise UserInputError(f"control: arm {control!r} not found in column {arm_column!r} (arms: {available})")
    treatments = [a for a in available if a != control] if treatments is None else list(treatments)
    missing = [a for a in treatments if a not in available or a == control]
    if missing or not treatments:
        raise UserInputError(f"treatments: expected arms of {arm_column!r} other than control {control!r} "
                         f"(arms: {available}), got {missing or treatments}")
    metrics = _default_metrics(frame, arm_column) if metrics is None else dict(metrics)
    for name, m in metrics.items():
        if not isinstance(m, Metric):
            raise UserInputError(f"metrics[{name!r}]: expected a Metric(column, kind, among), got {m!r}")
        absent = [c for c in (m.column, m.among) if c is not None and c not in frame.columns]
        if absent:
            raise UserInputError(f"metrics[{name!r}]: column(s) {absent} not in frame (has {list(frame.columns)})")

    used = frame[arm.isin([control, *treatments]).to_numpy()]
    columns = {}  # metric name -> (values [m], arm labels [m]) on the rows the metric counts
    for name, m in metrics.items():
        keep = np.ones(len(used), dtype=bool)
        if m.among is not None:
            keep = _check_binary(used, m.among, f"metrics[{name!r}].among") == 1.0
        sub = used[keep]
        values = (_check_binary(sub, m.column, f"metrics[{name!r}] (kind 'rate')") if m.kind == "rate"
                  else sub[m.column].to_numpy())
        columns[name] = (values, sub[arm_column].to_numpy())
    rows = []
    for a in treatments:
        for name, m in metrics.items():
            values, labels = columns[name]
            try:
                rows.append(_row(a, name, m, values[labels == control], values[labels == a], alpha))
            except ValueError as e:
                raise UserInputError(f"metric {name!r}, control {control!r} vs arm {a!r}: {e}") from None

    table = pd.DataFrame(rows)
    p = table["p_value"].to_numpy(dtype=np.float64)
    adjusted = p.copy()
    ok = ~np.isnan(p)
    if correction != "none" and ok.any():
        adjusted[ok] = multipletests(p[ok], alpha=alpha, method=correction)[1]
    table["p_adjusted"] = adjusted
    table["significant"] = adjusted < alpha  # NaN → False
    table = table[list(TABLE_COLUMNS)]
    table.attrs["alpha"] = alpha
    return table


def _fmt_value(x: float, kind: str) -> str:
    if np.isnan(x):
        return "n/a"
    return f"{100.0 * x:.2f} %" if kind == "rate" else f"{x:.2f}"


def _fmt_lift(lift: float, low: float, high: float) -> str:
    if np.isnan(lift):
        return "n/a"
    ci = "[n/a]" if np.isnan(low) or np.isnan(high) else f"[{100.0 * low:+.1f}, {100.0 * high:+.1f}]"
    return f"{100.0 * lift:+.1f} % {ci}"


def _fmt_p(p: float) -> str:
    return "n/a" if np.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def lift_table_markdown(table: pd.DataFrame) -> str:
    """Markdown of a :func:`compare_arms` table: Arm | Metric | Control | Treatment | Lift (CI) | p (adj.) | n.

    Rates as percentages (2 decimals), means with 2 decimals, lift as "+41.8 % [+30.1, +54.2]" (percent,
    CI at 1 − table.attrs["alpha"], default 95 %). Rows with a note get it listed under the table.
    """
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise UserInputError(f"table: missing column(s) {missing}; expected the output of compare_arms")
    level = 100.0 * (1.0 - table.attrs.get("alpha", 0.05))
    lines = [f"| Arm | Metric | Control | Treatment | Lift ({level:g} % CI) | p (adj.) | n (control / treatment) |",
             "|---|---|---|---|---|---|---|"]
    notes = []
    for r in table.itertuples(index=False):
        lines.append(f"| {r.arm} | {r.metric} | {_fmt_value(r.control, r.kind)} | {_fmt_value(r.treatment, r.kind)} | "
                     f"{_fmt_lift(r.lift, r.lift_low, r.lift_high)} | {_fmt_p(r.p_adjusted)} | "
                     f"{r.n_control:,} / {r.n_treatment:,} |")
        if r.note:
            notes.append(f"- {r.arm} / {r.metric}: {r.note}")
    return "\n".join(lines + ([""] + notes if notes else []))


# ------------------------------------------------------------------------------------ sample size / power


def _ratio(n_control, n_treatment) -> float:
    if n_control <= 0 or n_treatment <= 0:
        raise UserInputError(f"n_control / n_treatment: expected positive sizes, got {n_control!r} / {n_treatment!r}")
    return float(n_treatment) / float(n_control)


def _check_power_args(alpha, power, ratio) -> tuple[float, float, float]:
    if not float(ratio) > 0.0:
        raise UserInputError(f"ratio: expected n_treatment / n_control > 0, got {ratio!r}")
    return _check_open_unit("alpha", alpha), _check_open_unit("power", power), float(ratio)


def sample_size_proportions(p_control: float, p_treatment: float | None = None, relative_lift: float | None = None,
                            alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0,
                            alternative: str = "two-sided") -> int:
    """Control-arm n (treatment n = ratio · n) to detect p_control → p_treatment (or → p_control·(1 + lift)).

    Normal test on Cohen's h = 2·asin√p_t − 2·asin√p_c (statsmodels NormalIndPower), i.e.
    n = ((z_{1−α/2} + z_{power}) / h)² · (1 + 1/ratio), rounded up. alternative: "two-sided", "larger"
    (treatment > control) or "smaller".
    """
    if (p_treatment is None) == (relative_lift is None):
        raise UserInputError(f"p_treatment / relative_lift: expected exactly one, got p_treatment={p_treatment!r}, "
                         f"relative_lift={relative_lift!r}")
    p_c = _check_open_unit("p_control", p_control)
    p_t = _check_open_unit("p_treatment" if relative_lift is None else "p_control · (1 + relative_lift)",
                      p_treatment if relative_lift is None else p_c * (1.0 + float(relative_lift)))
    alpha, power, ratio = _check_power_args(alpha, power, ratio)
    if alternative not in _ALTERNATIVES:
        raise UserInputError(f"alternative: expected one of {list(_ALTERNATIVES)}, got {alternative!r}")
    h = proportion_effectsize(p_t, p_c)
    if h == 0.0 or (alternative == "larger" and h < 0) or (alternative == "smaller" and h > 0):
        raise UserInputError(f"p_treatment: {p_t!r} vs p_control {p_c!r} is no effect in the direction of "
                         f"alternative={alternative!r}")
    n = NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=power, ratio=ratio, alternative=alternative)
    return int(math.ceil(n))


def power_proportions(p_control: float, p_treatment: float, n_control: int, n_treatment: int,
                      alpha: float = 0.05) -> float:
    """Power (in [0, 1]) of the two-sided normal test on Cohen's h with n_control / n_treatment units per arm."""
    h = proportion_effectsize(_check_open_unit("p_treatment", p_treatment), _check_open_unit("p_control", p_control))
    return float(NormalIndPower().power(effect_size=h, nobs1=n_control, alpha=_check_open_unit("alpha", alpha),
                                        ratio=_ratio(n_control, n_treatment)))


def minimum_detectable_lift(p_control: float, n_control: int, n_treatment: int | None = None,
                            alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest relative lift (p_t / p_c − 1, an increase) detectable with the given power, two-sided.

    n_treatment defaults to n_control. ValueError when even p_treatment → 1 is not detectable.
    """
    p_c = _check_open_unit("p_control", p_control)
    ratio = _ratio(n_control, n_control if n_treatment is None else n_treatment)
    alpha, power, _ = _check_power_args(alpha, power, ratio)
    h = NormalIndPower().solve_power(effect_size=None, nobs1=n_control, alpha=alpha, power=power, ratio=ratio)
    # Hand-written (statsmodels has h = f(p_t, p_c) but not its inverse): h = 2·asin√p_t − 2·asin√p_c
    # ⇒ p_t = sin²(asin√p_c + h/2), valid while the angle stays ≤ π/2 (p_t ≤ 1).
    angle = math.asin(math.sqrt(p_c)) + abs(float(h)) / 2.0
    if angle > math.pi / 2.0:
        raise UserInputError(f"n_control: {n_control} units per arm cannot detect any lift from p_control {p_c!r} "
                         f"(the detectable Cohen's h {abs(float(h)):.3f} exceeds the room up to p = 1)")
    return math.sin(angle) ** 2 / p_c - 1.0


def sample_size_means(sd: float, delta: float, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0) -> int:
    """Control-arm n (treatment n = ratio · n) for a two-sided two-sample t-test to detect a mean difference
    delta with common standard deviation sd (same unit as delta); statsmodels TTestIndPower, rounded up."""
    if not float(sd) > 0.0:
        raise UserInputError(f"sd: expected a positive standard deviation, got {sd!r}")
    if float(delta) == 0.0 or not np.isfinite(float(delta)):
        raise UserInputError(f"delta: expected a finite non-zero difference, got {delta!r}")
    alpha, power, ratio = _check_power_args(alpha, power, ratio)
    n = TTestIndPower().solve_power(effect_size=abs(float(delta)) / float(sd), alpha=alpha, power=power, ratio=ratio)
    return int(math.ceil(n))
