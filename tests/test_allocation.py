"""Budgeted allocation: feasibility, optimality against the exact MILP, caps, ROI, input checks."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from deepromo.decide.allocation import (
    allocate_budget, evaluate_plan, expected_value_and_cost, plan_roi, random_plan, solve_exact,
    uniform_plan,
)

from conftest import ROOT


def random_instance(seed, n=30, L=4):
    """Value / cost with column 0 = 0, costs increasing in the level, some negative values."""
    r = np.random.default_rng(seed)
    c = np.sort(r.random((n, L)) * 3, axis=1)
    c[:, 0] = 0
    v = np.cumsum(r.random((n, L)), axis=1) * r.random((n, 1)) * 2 - 0.3 * c
    v[:, 0] = 0
    return v, c


def test_budget_respected_on_many_instances():
    for seed in range(20):
        v, c = random_instance(seed, n=int(np.random.default_rng(seed).integers(5, 150)), L=5)
        for frac in (0.0, 0.01, 0.1, 0.37, 0.8, 1.5):
            budget = frac * c[:, -1].sum()
            a = allocate_budget(v, c, budget)
            assert a.cost <= budget + 1e-9
            assert np.isclose(a.cost, c[np.arange(len(v)), a.level].sum())
            assert np.isclose(a.value, v[np.arange(len(v)), a.level].sum())
            assert a.bound >= a.value - 1e-9


def test_unrestricted_budget_is_per_customer_argmax_with_cheaper_ties():
    v, c = random_instance(1, n=200, L=6)
    a = allocate_budget(v, c, np.inf)
    assert np.array_equal(a.level, v.argmax(axis=1))
    assert a.lam == 0.0
    # ties go to the cheaper level: columns 1 and 2 have equal value, column 1 costs more
    v2 = np.array([[0.0, 2.0, 2.0], [0.0, 0.0, -1.0]])
    c2 = np.array([[0.0, 3.0, 1.0], [0.0, 1.0, 1.0]])
    assert allocate_budget(v2, c2, np.inf).level.tolist() == [2, 0]


def test_matches_exact_milp_on_tiny_instances():
    gaps = []
    for seed in range(20):
        v, c = random_instance(seed, n=30, L=4)
        for frac in (0.05, 0.2, 0.5, 0.9):
            budget = frac * c[:, -1].sum()
            a = allocate_budget(v, c, budget)
            e = solve_exact(v, c, budget)
            assert e.cost <= budget + 1e-6
            assert a.value <= e.value + 1e-9
            assert a.bound >= e.value - 1e-6  # the dual bound is a true upper bound
            assert e.value - a.value <= v.max() + 1e-9  # at most one customer's contribution
            gaps.append((e.value - a.value) / e.value)
    gaps = np.array(gaps)
    assert gaps.mean() < 0.005
    assert np.quantile(gaps, 0.9) < 0.01


def test_matches_exact_within_half_percent_when_many_customers_are_targeted():
    for seed in range(3):
        v, c = random_instance(100 + seed, n=200, L=4)
        for frac in (0.2, 0.5):
            budget = frac * c[:, -1].sum()
            a, e = allocate_budget(v, c, budget), solve_exact(v, c, budget)
            assert (e.value - a.value) / e.value < 0.005


def test_zero_budget_gives_everyone_level_zero():
    v, c = random_instance(3, n=50, L=4)
    a = allocate_budget(v, c, 0.0)
    assert (a.level == 0).all() and a.cost == 0 and a.value == 0


def test_segment_caps_respected_and_near_exact():
    for seed in range(6):
        v, c = random_instance(seed, n=60, L=4)
        seg = np.array(["a", "b", "c"])[np.arange(60) % 3]
        caps = {"a": 0.5, "b": 2.0}
        budget = 0.15 * c[:, -1].sum()
        a = allocate_budget(v, c, budget, segments=seg, segment_caps=caps)
        assert a.cost <= budget + 1e-9
        for lab, cap in caps.items():
            assert a.customer_cost[seg == lab].sum() <= cap + 1e-9
        e = solve_exact(v, c, budget, segments=seg, segment_caps=caps)
        assert a.value <= e.value + 1e-9
        assert a.bound >= e.value - 1e-6
        assert (e.value - a.value) / e.value < 0.05
    # caps only (unrestricted global budget)
    a = allocate_budget(v, c, np.inf, segments=seg, segment_caps={"a": 0.0})
    assert (a.level[seg == "a"] == 0).all()
    assert np.array_equal(a.level[seg != "a"], v[seg != "a"].argmax(axis=1))


def test_max_level_respected():
    v, c = random_instance(4, n=100, L=5)
    for budget in (np.inf, 0.3 * c[:, -1].sum()):
        a = allocate_budget(v, c, budget, max_level=2)
        assert a.level.max() <= 2 and a.cost <= budget + 1e-9
        per = np.arange(100) % 5
        b = allocate_budget(v, c, budget, max_level=per)
        assert (b.level <= per).all()
    a = allocate_budget(v, c, np.inf, max_level=2)
    assert np.array_equal(a.level, v[:, :3].argmax(axis=1))


def test_hand_computed_three_customers():
    # customer: options (value, cost); budget 5
    v = np.array([[0, 4.0, 6.0], [0, 3.0, 3.5], [0, 1.0, 5.0]])
    c = np.array([[0, 2.0, 4.0], [0, 1.0, 2.0], [0, 1.0, 4.0]])
    # feasible plans near the top: (2, 1, 0) value 9 cost 5; (1, 2, 1) 8.5 / 5; (0, 1, 2) 8 / 5;
    # (1, 1, 1) 8 / 4; (1, 2, 0) 7.5 / 4 -> optimum (2, 1, 0) with value 9
    a = allocate_budget(v, c, 5.0)
    assert a.level.tolist() == [2, 1, 0]
    assert a.value == pytest.approx(9.0) and a.cost == pytest.approx(5.0)
    assert solve_exact(v, c, 5.0).value == pytest.approx(9.0)
    assert allocate_budget(v, c, np.inf).level.tolist() == [2, 2, 2]


def test_bad_inputs_raise_naming_the_argument():
    v, c = random_instance(0, n=5, L=3)
    with pytest.raises(ValueError, match="cost"):
        allocate_budget(v, c[:, :2], 1.0)
    bad = v.copy(); bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="value"):
        allocate_budget(bad, c, 1.0)
    bad = c.copy(); bad[1, 1] = -1
    with pytest.raises(ValueError, match="cost"):
        allocate_budget(v, bad, 1.0)
    bad = v.copy(); bad[0, 0] = 1
    with pytest.raises(ValueError, match="value"):
        allocate_budget(bad, c, 1.0)
    with pytest.raises(ValueError, match="budget"):
        allocate_budget(v, c, -1.0)
    with pytest.raises(ValueError, match="budget"):
        allocate_budget(v, c, float("nan"))
    with pytest.raises(ValueError, match="segments"):
        allocate_budget(v, c, 1.0, segment_caps={"a": 1.0})
    with pytest.raises(ValueError, match="max_level"):
        allocate_budget(v, c, 1.0, max_level=3)
    with pytest.raises(ValueError, match="levels"):
        expected_value_and_cost(np.full((5, 3), 0.5), [1.0, 2.0, 3.0], 10.0)
    with pytest.raises(ValueError, match="cost_model"):
        expected_value_and_cost(np.full((5, 3), 0.5), [0.0, 2.0, 3.0], 10.0, cost_model="x")


def test_value_cost_and_roi_by_hand():
    p = np.array([[0.2, 0.5, 0.6], [0.4, 0.45, 0.5]])
    levels = np.array([0.0, 5.0, 10.0])
    margin = np.array([20.0, 10.0])
    v, c = expected_value_and_cost(p, levels, margin)
    # customer 0 level 1: revenue (0.5-0.2)*20 = 6, cost 5*0.5 = 2.5, value 3.5
    assert c[0, 1] == pytest.approx(2.5) and v[0, 1] == pytest.approx(3.5)
    # customer 1 level 2: revenue 0.1*10 = 1, cost 10*0.5 = 5, value -4
    assert v[1, 2] == pytest.approx(-4.0)
    r = plan_roi(np.array([1, 2]), p, levels, margin)
    assert r["incremental_revenue"] == pytest.approx(7.0)
    assert r["cost"] == pytest.approx(7.5)
    assert r["roi"] == pytest.approx((7.0 - 7.5) / 7.5)
    assert r["n_targeted"] == 2
    # contact model: every contacted customer costs levels_j + contact_cost
    v, c = expected_value_and_cost(p, levels, margin, cost_model="contact", contact_cost=1.0)
    assert c[0].tolist() == [0.0, 6.0, 11.0] and v[0, 1] == pytest.approx(0.0)
    r = plan_roi(np.array([1, 0]), p, levels, margin, cost_model="contact", contact_cost=1.0)
    assert r["roi"] == pytest.approx(0.0) and r["n_targeted"] == 1
    assert np.isnan(plan_roi(np.zeros(2, dtype=int), p, levels, margin)["roi"])


def test_baselines_and_frame(tmp_path):
    v, c = random_instance(7, n=100, L=4)
    rng = np.random.default_rng(0)
    u = uniform_plan(100, 2, c[:, 2], 20.0, rng)
    assert set(np.unique(u)) <= {0, 2} and c[np.arange(100), u].sum() <= 20.0
    r = random_plan(c, 20.0, rng)
    assert c[np.arange(100), r].sum() <= 20.0 and (r > 0).any()
    a = allocate_budget(v, c, 20.0)
    assert a.value >= evaluate_plan(u, v, c)[0] and a.value >= evaluate_plan(r, v, c)[0]
    df = a.to_frame([f"c{i}" for i in range(100)], [0.0, 5.0, 10.0, 20.0])
    assert list(df.columns) == ["customer_id", "level", "incentive", "expected_value", "expected_cost"]
    assert df["expected_cost"].sum() == pytest.approx(a.cost)
    path = a.to_parquet(tmp_path / "plan.parquet", level_values=[0.0, 5.0, 10.0, 20.0])
    assert len(pd.read_parquet(path)) == 100


# --------------------------------------------------------------------------- blocked code == frozen reference

sys.path.insert(0, str(ROOT / "benchmarks"))
import allocation_reference  # noqa: E402

import deepromo.decide.allocation as allocation_module  # noqa: E402


def mixed_instance(seed, n, L, sorted_costs):
    """Value / cost with column 0 = 0 and ties on purpose (costs and values on a coarse grid, some equal costs);
    ``sorted_costs=False`` shuffles each row's paid columns so that costs no longer rise with the level."""
    r = np.random.default_rng(seed)
    c = np.round(np.sort(r.random((n, L)) * 3, axis=1), 1)
    c[:, 0] = 0
    v = np.round(np.cumsum(r.random((n, L)), axis=1) * r.random((n, 1)) * 2 - 0.3 * c, 1)
    v[:, 0] = 0
    if not sorted_costs:
        perm = np.argsort(r.random((n, L - 1)), axis=1) + 1
        v[:, 1:] = np.take_along_axis(v, perm, axis=1)
        c[:, 1:] = np.take_along_axis(c, perm, axis=1)
    return v, c


def assert_same_plan(got, want):
    assert np.array_equal(got.level, want.level) and got.level.dtype == want.level.dtype
    assert got.value == want.value and got.cost == want.cost
    assert got.bound == want.bound and got.lam == want.lam
    assert got.segment_lam == want.segment_lam and got.n_iter == want.n_iter
    assert np.array_equal(got.customer_value, want.customer_value)
    assert np.array_equal(got.customer_cost, want.customer_cost)


@pytest.mark.parametrize("sorted_costs", [True, False])
@pytest.mark.parametrize("n", [5, 7, 50])  # with 7 rows a block: fewer rows than a block, exactly one, 8 blocks
def test_blocked_plan_equals_reference(monkeypatch, sorted_costs, n):
    monkeypatch.setattr(allocation_module, "BLOCK_ROWS", 7)
    L = 5
    v, c = mixed_instance(10 * n + sorted_costs, n, L, sorted_costs)
    seg = np.array(["a", "b", "u"])[np.arange(n) % 3]  # "u" is uncapped
    per_customer_cap = np.arange(n) % L
    top_cost = c.max(axis=1).sum()
    cases = []
    for frac in (0.0, 0.05, 0.3, 0.8, 2.0):
        budget = frac * top_cost
        cases += [dict(budget=budget), dict(budget=budget, polish=False), dict(budget=budget, max_level=2),
                  dict(budget=budget, max_level=per_customer_cap),
                  dict(budget=budget, segments=seg, segment_caps={"a": 0.1 * top_cost, "b": 0.02 * top_cost,
                                                                  "empty": 1.0}),
                  dict(budget=budget, segments=seg, segment_caps={"a": 0.05 * top_cost}, max_level=per_customer_cap)]
    cases += [dict(budget=np.inf), dict(budget=np.inf, max_level=per_customer_cap),
              dict(budget=np.inf, segments=seg, segment_caps={"b": 0.03 * top_cost})]
    n_binding = 0
    for kwargs in cases:
        kwargs = dict(kwargs)
        budget = kwargs.pop("budget")
        got = allocate_budget(v, c, budget, **kwargs)
        want = allocation_reference.allocate_budget(v, c, budget, **kwargs)
        assert_same_plan(got, want)
        n_binding += got.lam > 0
    assert n_binding >= 5  # the bisection and both fills really ran


def test_blocked_plan_equals_reference_over_many_default_blocks():
    n = 2 * allocation_module.BLOCK_ROWS + 123
    for sorted_costs in (True, False):
        v, c = mixed_instance(7 + sorted_costs, n, 6, sorted_costs)
        seg = np.arange(n) % 4
        for budget in (0.1 * c.max(axis=1).sum(), np.inf):
            for kwargs in (dict(), dict(segments=seg, segment_caps={0: 0.01 * c.max(axis=1).sum()}),
                           dict(max_level=np.arange(n) % 6)):
                got = allocate_budget(v, c, budget, polish=False, **kwargs)
                want = allocation_reference.allocate_budget(v, c, budget, polish=False, **kwargs)
                assert_same_plan(got, want)


def test_one_unsorted_row_in_the_last_block_is_sorted(monkeypatch):
    monkeypatch.setattr(allocation_module, "BLOCK_ROWS", 7)
    v, c = mixed_instance(5, 30, 4, sorted_costs=True)
    v[-1], c[-1] = [0.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.5, 0.2]  # equal values: the tie goes to the last, cheapest
    for budget in (0.2 * c.sum(), np.inf):
        got, want = allocate_budget(v, c, budget), allocation_reference.allocate_budget(v, c, budget)
        assert_same_plan(got, want)
    assert allocate_budget(v, c, np.inf).level[-1] == 3


def test_layout_and_dtype_of_inputs_do_not_change_the_plan_nor_the_inputs():
    v, c = mixed_instance(3, 40, 4, sorted_costs=False)
    want = allocation_reference.allocate_budget(v, c, 0.2 * c.sum())
    v_f, c_f = np.asfortranarray(v), np.asfortranarray(c)
    assert_same_plan(allocate_budget(v_f, c_f, 0.2 * c.sum()), want)
    v_sorted, c_sorted = mixed_instance(3, 40, 4, sorted_costs=True)
    keep_v, keep_c = v_sorted.copy(), c_sorted.copy()
    allocate_budget(v_sorted, c_sorted, 0.2 * c_sorted.sum(), max_level=1)  # vs / cs are the inputs themselves here
    assert np.array_equal(v_sorted, keep_v) and np.array_equal(c_sorted, keep_c)
