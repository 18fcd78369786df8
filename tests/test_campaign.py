"""Campaign A/B statistics against hand computations, scipy / statsmodels, and seeded coverage simulations."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from deepromo.decide.campaign import (
    TABLE_COLUMNS, Metric, compare_arms, lift_table_markdown, mean_test, minimum_detectable_lift,
    power_proportions, proportion_test, sample_size_means, sample_size_proportions,
)

Z975, Z80 = stats.norm.ppf(0.975), stats.norm.ppf(0.8)


# ------------------------------------------------------------------------------------------ proportions


def test_proportion_test_matches_hand_pooled_z_and_chi2():
    s_c, n_c, s_t, n_t = 100, 1000, 130, 1000
    r = proportion_test(s_c, n_c, s_t, n_t)
    p_c, p_t, pooled = s_c / n_c, s_t / n_t, (s_c + s_t) / (n_c + n_t)
    z = (p_t - p_c) / math.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    assert r["control"] == pytest.approx(0.10) and r["treatment"] == pytest.approx(0.13)
    assert r["diff"] == pytest.approx(0.03) and r["lift"] == pytest.approx(0.30)
    assert r["z"] == pytest.approx(z, rel=1e-12)
    assert r["p_value"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-10)
    # Pearson chi-square without continuity correction is z² with the same p-value
    assert r["chi2"] == pytest.approx(z**2, rel=1e-10)
    assert r["chi2_p_value"] == pytest.approx(r["p_value"], rel=1e-10)
    # Wald (unpooled) diff CI and log risk-ratio lift CI by hand
    se = math.sqrt(p_c * (1 - p_c) / n_c + p_t * (1 - p_t) / n_t)
    assert r["diff_ci"] == pytest.approx((0.03 - Z975 * se, 0.03 + Z975 * se), rel=1e-10)
    se_log = math.sqrt(1 / s_t - 1 / n_t + 1 / s_c - 1 / n_c)
    expected = (1.3 * math.exp(-Z975 * se_log) - 1, 1.3 * math.exp(Z975 * se_log) - 1)
    assert r["lift_ci"] == pytest.approx(expected, rel=1e-10)
    assert r["n_control"] == 1000 and r["n_treatment"] == 1000 and r["note"] == ""


def test_chi2_textbook_value():
    # 2x2 table (rows control / treatment, columns success / failure): Σ (O − E)² / E by hand
    observed = np.array([[100.0, 900.0], [130.0, 870.0]])
    expected = observed.sum(1, keepdims=True) * observed.sum(0, keepdims=True) / observed.sum()
    assert expected.tolist() == [[115.0, 885.0], [115.0, 885.0]]
    chi2 = ((observed - expected) ** 2 / expected).sum()
    assert chi2 == pytest.approx(2 * (15**2 / 115 + 15**2 / 885))
    r = proportion_test(100, 1000, 130, 1000)
    assert r["chi2"] == pytest.approx(chi2, rel=1e-12)
    assert r["chi2"] == pytest.approx(4.4215180545, abs=1e-9)
    assert r["chi2_p_value"] == pytest.approx(stats.chi2.sf(chi2, df=1), rel=1e-12)


def test_proportion_edge_cases():
    r = proportion_test(0, 500, 7, 500)
    assert math.isnan(r["lift"]) and all(math.isnan(x) for x in r["lift_ci"])
    assert "control rate is 0" in r["note"]
    assert r["z"] > 0 and 0 < r["p_value"] < 0.05  # the test itself is still defined
    r = proportion_test(5, 500, 0, 500)
    assert r["lift"] == -1.0 and "treatment rate is 0" in r["note"]
    r = proportion_test(0, 10, 0, 12)
    assert math.isnan(r["p_value"]) and math.isnan(r["chi2"]) and "pooled rate 0 or 1" in r["note"]
    with pytest.raises(ValueError, match="n_control.*control arm"):
        proportion_test(0, 0, 3, 10)
    with pytest.raises(ValueError, match="n_treatment.*treatment arm"):
        proportion_test(1, 10, 0, 0)
    with pytest.raises(ValueError, match="successes_treatment: expected at most n_treatment = 10, got 11"):
        proportion_test(1, 10, 11, 10)
    with pytest.raises(ValueError, match="successes_control"):
        proportion_test(-1, 10, 1, 10)


# ------------------------------------------------------------------------------------------------ means


def test_mean_test_matches_welch_by_hand():
    rng = np.random.default_rng(3)
    c, t = rng.gamma(2.0, 20.0, size=40), rng.gamma(2.0, 26.0, size=55)
    r = mean_test(c, t)
    ref = stats.ttest_ind(t, c, equal_var=False)
    vc, vt = c.var(ddof=1) / len(c), t.var(ddof=1) / len(t)
    df = (vc + vt) ** 2 / (vc**2 / (len(c) - 1) + vt**2 / (len(t) - 1))  # Welch–Satterthwaite
    diff = t.mean() - c.mean()
    assert r["diff"] == pytest.approx(diff)
    assert r["t"] == pytest.approx(diff / math.sqrt(vc + vt), rel=1e-12)
    assert r["t"] == pytest.approx(ref.statistic, rel=1e-12)
    assert r["df"] == pytest.approx(df, rel=1e-12)
    assert r["p_value"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert r["p_value"] == pytest.approx(2 * stats.t.sf(abs(r["t"]), df), rel=1e-10)
    half = stats.t.ppf(0.975, df) * math.sqrt(vc + vt)
    assert r["diff_ci"] == pytest.approx((diff - half, diff + half), rel=1e-10)
    # delta-method lift CI on the log ratio of means
    se = math.sqrt(vt / t.mean() ** 2 + vc / c.mean() ** 2)
    ratio = t.mean() / c.mean()
    assert r["lift"] == pytest.approx(ratio - 1)
    assert r["lift_ci"] == pytest.approx((ratio * math.exp(-Z975 * se) - 1, ratio * math.exp(Z975 * se) - 1))
    assert (r["n_control"], r["n_treatment"]) == (40, 55)


def test_mean_test_errors_and_edges():
    with pytest.raises(ValueError, match="metric 'revenue'.*values_treatment.*NaN"):
        mean_test([1.0, 2.0], [1.0, np.nan], metric="revenue")
    with pytest.raises(ValueError, match="values_control: expected at least 2 values"):
        mean_test([1.0], [1.0, 2.0])
    r = mean_test([0.0, 0.0, 0.0], [1.0, 2.0, 3.0])
    assert math.isnan(r["lift"]) and "control mean is 0" in r["note"] and r["p_value"] < 0.2
    r = mean_test([1.0, 1.0], [2.0, 2.0])
    assert math.isnan(r["p_value"]) and "zero variance" in r["note"] and r["lift"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------ lift CI coverage


def test_lift_ci_coverage_proportions():
    rng = np.random.default_rng(11)
    p_c, p_t, n = 0.08, 0.10, 1500
    true_lift = p_t / p_c - 1
    s_c, s_t = rng.binomial(n, p_c, size=400), rng.binomial(n, p_t, size=400)
    covered = [lo <= true_lift <= hi for lo, hi in (proportion_test(a, n, b, n)["lift_ci"] for a, b in zip(s_c, s_t))]
    assert 0.92 <= np.mean(covered) <= 0.98


def test_lift_ci_coverage_means():
    rng = np.random.default_rng(12)
    # skewed order values: gamma(shape 2), control mean 40, treatment mean 46 (true lift 15 %)
    c = rng.gamma(2.0, 20.0, size=(400, 250))
    t = rng.gamma(2.0, 23.0, size=(400, 250))
    covered = [lo <= 0.15 <= hi for lo, hi in (mean_test(a, b)["lift_ci"] for a, b in zip(c, t))]
    assert 0.92 <= np.mean(covered) <= 0.98


# ------------------------------------------------------------------------------------ sample size / power


def test_sample_size_proportions_hand_formula_power_and_mdl():
    h = 2 * math.asin(math.sqrt(0.12)) - 2 * math.asin(math.sqrt(0.10))
    n = sample_size_proportions(0.10, 0.12)
    # n per arm = ((z_{1-α/2} + z_power) / h)² · (1 + 1/ratio); ratio = 1 → factor 2
    assert n == math.ceil(((Z975 + Z80) / h) ** 2 * 2) == 3835
    assert sample_size_proportions(0.10, relative_lift=0.2) == n
    n2 = sample_size_proportions(0.10, 0.12, ratio=2.0)  # statsmodels: n_treatment = ratio · n_control
    assert n2 == math.ceil(((Z975 + Z80) / h) ** 2 * (1 + 1 / 2.0)) == 2876
    assert power_proportions(0.10, 0.12, n, n) >= 0.8
    assert power_proportions(0.10, 0.12, n2, 2 * n2) >= 0.8
    assert power_proportions(0.10, 0.12, n - 50, n - 50) < 0.8
    assert minimum_detectable_lift(0.10, n) == pytest.approx(0.20, abs=2e-4)
    assert minimum_detectable_lift(0.10, n2, 2 * n2) == pytest.approx(0.20, abs=2e-4)
    assert sample_size_proportions(0.10, 0.12, alternative="larger") == math.ceil(
        ((stats.norm.ppf(0.95) + Z80) / h) ** 2 * 2)
    with pytest.raises(ValueError, match="exactly one"):
        sample_size_proportions(0.10, 0.12, relative_lift=0.2)
    with pytest.raises(ValueError, match="alternative='smaller'"):
        sample_size_proportions(0.10, 0.12, alternative="smaller")
    with pytest.raises(ValueError, match="relative_lift"):
        sample_size_proportions(0.6, relative_lift=1.0)
    with pytest.raises(ValueError, match="n_control"):
        minimum_detectable_lift(0.9, 5)


def test_power_simulation_at_planned_n():
    # at the planned n, a pooled two-sided z-test at 5 % rejects in ≈ 80 % of simulated experiments
    n = sample_size_proportions(0.10, 0.12)
    rng = np.random.default_rng(2024)
    s_c, s_t = rng.binomial(n, 0.10, size=4000), rng.binomial(n, 0.12, size=4000)
    pooled = (s_c + s_t) / (2 * n)
    z = (s_t - s_c) / n / np.sqrt(pooled * (1 - pooled) * 2 / n)
    assert abs(np.mean(np.abs(z) > Z975) - 0.80) <= 0.05
    # the vectorised z above is the one proportion_test reports
    assert proportion_test(s_c[0], n, s_t[0], n)["z"] == pytest.approx(z[0], rel=1e-12)


def test_sample_size_means():
    n = sample_size_means(sd=10.0, delta=2.0)
    normal_n = 2 * ((Z975 + Z80) / 0.2) ** 2  # per arm, normal approximation, d = delta / sd = 0.2
    assert normal_n < n <= normal_n + 3  # the t-test needs a little more than the normal approximation
    assert n == 394
    # power of the noncentral t at that n (df = 2n − 2, noncentrality d·√(n/2)) is ≥ 0.8, and < 0.8 at n − 1
    def t_power(m):
        df, nc, crit = 2 * m - 2, 0.2 * math.sqrt(m / 2), stats.t.ppf(0.975, 2 * m - 2)
        return stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
    assert t_power(n) >= 0.8 > t_power(n - 1)
    assert sample_size_means(10.0, -2.0) == n
    assert sample_size_means(10.0, 2.0, ratio=2.0) < n
    with pytest.raises(ValueError, match="sd"):
        sample_size_means(0.0, 1.0)


# -------------------------------------------------------------------------------------- the arm table


def _frame():
    # control: 10 units, 3 buyers; A: 10 units, 5 buyers; B: 8 units, 2 buyers
    converted = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0] + [1, 1, 1, 1, 1, 0, 0, 0, 0, 0] + [1, 1, 0, 0, 0, 0, 0, 0]
    revenue = ([30.0, 50.0, 40.0] + [0.0] * 7 + [60.0, 20.0, 45.0, 55.0, 70.0] + [0.0] * 5 + [35.0, 25.0] + [0.0] * 6)
    return pd.DataFrame({"arm": ["ctrl"] * 10 + ["A"] * 10 + ["B"] * 8, "converted": converted, "revenue": revenue})


METRICS = {
    "conversion": Metric("converted", "rate"),
    "revenue per customer": Metric("revenue", "mean"),
    "average order value": Metric("revenue", "mean", among="converted"),
}


def test_compare_arms_matches_direct_calls_and_holm():
    f = _frame()
    table = compare_arms(f, "arm", "ctrl", metrics=METRICS)
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert table[["arm", "metric"]].values.tolist() == [
        ["A", "conversion"], ["A", "revenue per customer"], ["A", "average order value"],
        ["B", "conversion"], ["B", "revenue per customer"], ["B", "average order value"],
    ]
    rev = f["revenue"].to_numpy()
    for arm, s_t, n_t in (("A", 5, 10), ("B", 2, 8)):
        row = table[(table.arm == arm) & (table.metric == "conversion")].iloc[0]
        r = proportion_test(3, 10, s_t, n_t)
        assert (row.kind, row.test) == ("rate", "two-proportion z")
        assert (row.control, row.treatment, row.statistic, row.p_value) == (r["control"], r["treatment"], r["z"],
                                                                              r["p_value"])
        assert (row.lift_low, row.lift_high) == r["lift_ci"] and (row.diff_low, row.diff_high) == r["diff_ci"]
        in_arm, in_ctrl = (f.arm == arm).to_numpy(), (f.arm == "ctrl").to_numpy()
        buyers = (f.converted == 1).to_numpy()
        for metric, keep in (("revenue per customer", True), ("average order value", buyers)):
            row = table[(table.arm == arm) & (table.metric == metric)].iloc[0]
            r = mean_test(rev[in_ctrl & keep], rev[in_arm & keep])
            assert (row.kind, row.test) == ("mean", "Welch t")
            assert (row.n_control, row.n_treatment) == (r["n_control"], r["n_treatment"])
            assert (row.control, row.statistic, row.p_value, row.lift) == (r["control"], r["t"], r["p_value"],
                                                                           r["lift"])
    # among restricts rows: average order value = mean revenue among buyers
    aov = table[(table.arm == "A") & (table.metric == "average order value")].iloc[0]
    assert (aov.n_control, aov.n_treatment) == (3, 5)
    assert aov.control == pytest.approx(40.0) and aov.treatment == pytest.approx(50.0)
    assert aov.lift == pytest.approx(0.25)
    assert table.p_adjusted.tolist() == pytest.approx(multipletests(table.p_value, method="holm")[1].tolist())
    assert (table.significant == (table.p_adjusted < 0.05)).all()
    none = compare_arms(f, "arm", "ctrl", treatments=["B"], metrics=METRICS, correction="none")
    assert none.arm.unique().tolist() == ["B"] and (none.p_adjusted == none.p_value).all()
    assert table.attrs["alpha"] == 0.05


def test_compare_arms_defaults_and_errors():
    f = _frame()
    table = compare_arms(f, "arm", "ctrl")  # treatments sorted; metrics inferred (0/1 → rate)
    assert table.arm.tolist() == ["A", "A", "B", "B"]
    assert table.set_index("metric").loc["converted", "kind"].tolist() == ["rate", "rate"]
    assert table.set_index("metric").loc["revenue", "kind"].tolist() == ["mean", "mean"]
    with pytest.raises(ValueError, match=r"control: arm 'placebo'.*\['A', 'B', 'ctrl'\]"):
        compare_arms(f, "arm", "placebo", metrics=METRICS)
    with pytest.raises(ValueError, match=r"treatments.*\['C'\]"):
        compare_arms(f, "arm", "ctrl", treatments=["A", "C"], metrics=METRICS)
    with pytest.raises(ValueError, match="arm_column: 'group'"):
        compare_arms(f, "group", "ctrl", metrics=METRICS)
    with pytest.raises(ValueError, match=r"metrics\['x'\]: column\(s\) \['clicks'\]"):
        compare_arms(f, "arm", "ctrl", metrics={"x": Metric("clicks", "rate")})
    with pytest.raises(ValueError, match=r"column 'revenue': expected 0/1 values only, got \[20.0, 25.0"):
        compare_arms(f, "arm", "ctrl", metrics={"bad": Metric("revenue", "rate")})
    with pytest.raises(ValueError, match=r"among column 'revenue'"):
        compare_arms(f, "arm", "ctrl", metrics={"bad": Metric("revenue", "mean", among="revenue")})
    with pytest.raises(ValueError, match="correction"):
        compare_arms(f, "arm", "ctrl", metrics=METRICS, correction="magic")
    with pytest.raises(ValueError, match="kind"):
        Metric("converted", "ratio")
    g = f.assign(revenue=f.revenue.where(f.index != 0))
    with pytest.raises(ValueError, match="metric 'revenue per customer'.*NaN"):
        compare_arms(g, "arm", "ctrl", metrics=METRICS)


def test_lift_table_markdown():
    table = compare_arms(_frame(), "arm", "ctrl", metrics=METRICS)
    md = lift_table_markdown(table)
    lines = md.splitlines()
    assert lines[0] == "| Arm | Metric | Control | Treatment | Lift (95 % CI) | p (adj.) | n (control / treatment) |"
    assert len(lines) == 2 + len(table)
    for arm, metric in table[["arm", "metric"]].itertuples(index=False):
        assert any(line.startswith(f"| {arm} | {metric} |") for line in lines)
    conv_a = next(line for line in lines if line.startswith("| A | conversion |"))
    r = proportion_test(3, 10, 5, 10)
    lo, hi = (100 * x for x in r["lift_ci"])
    assert f"| 30.00 % | 50.00 % | +66.7 % [{lo:+.1f}, {hi:+.1f}] |" in conv_a and conv_a.endswith("| 10 / 10 |")
    aov = next(line for line in lines if line.startswith("| A | average order value |"))
    assert "| 40.00 | 50.00 | +25.0 % [" in aov and aov.endswith("| 3 / 5 |")
    # a row with a note: the lift is n/a and the reason is listed under the table
    f = pd.DataFrame({"arm": ["c"] * 4 + ["t"] * 4, "bought": [0, 0, 0, 0, 1, 0, 0, 0]})
    md = lift_table_markdown(compare_arms(f, "arm", "c", alpha=0.1))
    assert "Lift (90 % CI)" in md and "| 0.00 % | 25.00 % | n/a |" in md
    assert "- t / bought: control rate is 0: relative lift undefined" in md
