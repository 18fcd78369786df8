"""Rollouts (simulated from the truth, or a logged RCT) and targeting plans."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepromo.data.sources import load_source
from deepromo.decide.rollout import logged_rollout, randomise_arms, simulate_rollout
from deepromo.decide.targeting import rfm_rule_plan, top_share_plan


def test_randomise_arms_exact_counts_and_seeded():
    arms = randomise_arms(1001, ["a", "b", "c"], seed=3)
    counts = pd.Series(arms).value_counts()
    assert counts["a"] == 334 and counts["b"] == 334 and counts["c"] == 333
    assert (arms == randomise_arms(1001, ["a", "b", "c"], seed=3)).all()
    assert not (arms == randomise_arms(1001, ["a", "b", "c"], seed=4)).all()
    uneven = pd.Series(randomise_arms(1000, ["x", "y"], shares=[0.9, 0.1])).value_counts()
    assert uneven["x"] == 900 and uneven["y"] == 100
    with pytest.raises(ValueError, match="shares"):
        randomise_arms(10, ["x", "y"], shares=[1.0, -1.0])


def test_simulated_rollout_draws_from_the_true_curves(tiny_world):
    w = tiny_world
    ids = w.customers["customer_id"].to_numpy()
    n, top = len(ids), len(w.incentive_levels) - 1
    plans = {"max": np.full(n, top), "holdout": np.zeros(n, dtype=np.int64)}
    frames = [simulate_rollout(w, ids, plans, seed=s) for s in range(40)]
    roll = frames[0]
    assert set(roll["arm"]) == {"max", "holdout"} and len(roll) == n
    assert (roll.loc[roll["arm"] == "max", "incentive"] == w.incentive_levels[-1]).all()
    assert (roll.loc[roll["arm"] == "holdout", "incentive"] == 0).all()
    truth = w.truth.set_index("customer_id")
    expected = np.where(roll["arm"] == "max", truth.loc[ids, f"true_p_{w.incentive_levels[-1]:g}"],
                        truth.loc[ids, "true_p_0"])
    np.testing.assert_allclose(roll["expected_purchase"], expected)
    # over 40 seeded rollouts the observed conversion of each arm matches the truth's expectation
    observed = pd.concat(frames).groupby("arm")["purchased"].mean()
    wanted = pd.concat(frames).groupby("arm")["expected_purchase"].mean()
    np.testing.assert_allclose(observed, wanted, atol=0.01)
    # revenue only for buyers; its mean order value is the customer's basket; redemption cost only when bought
    buyers = pd.concat(frames).query("purchased == 1")
    ratio = buyers["revenue"].sum() / truth.loc[buyers["customer_id"], "basket_value"].sum()
    assert ratio == pytest.approx(1.0, abs=0.03)
    assert (roll.loc[roll["purchased"] == 0, ["revenue", "incentive_cost"]] == 0).all().all()
    np.testing.assert_allclose(roll["net_revenue"], roll["revenue"] - roll["incentive_cost"])
    contact = simulate_rollout(w, ids, plans, seed=0, cost_model="contact", contact_cost=0.5)
    targeted = contact["targeted"] == 1
    np.testing.assert_allclose(contact.loc[targeted, "incentive_cost"], w.incentive_levels[-1] + 0.5)
    assert (contact.loc[~targeted, "incentive_cost"] == 0).all()


def test_simulated_rollout_refuses_bad_input(tiny_world, fake_hillstrom, tmp_path):
    ids = tiny_world.customers["customer_id"].to_numpy()[:10]
    with pytest.raises(ValueError, match=r"plans\['a'\]: level indices must be in 0..4"):
        simulate_rollout(tiny_world, ids, {"a": np.full(10, 7)})
    with pytest.raises(ValueError, match=r"plans\['a'\]: expected \[10\] integer"):
        simulate_rollout(tiny_world, ids, {"a": np.zeros(3, dtype=np.int64)})
    with pytest.raises(ValueError, match="not in the world"):
        simulate_rollout(tiny_world, np.array([10**9]), {"a": np.zeros(1, dtype=np.int64)})
    real = load_source("hillstrom", path=str(fake_hillstrom(tmp_path / "h.csv", n=60)))
    with pytest.raises(ValueError, match="no ground truth"):
        simulate_rollout(real, [0, 1], {"a": np.zeros(2, dtype=np.int64)})


def test_logged_rollout_reads_the_randomised_arms(fake_hillstrom, tmp_path):
    data = load_source("hillstrom", path=str(fake_hillstrom(tmp_path / "h.csv", n=300)))
    ids = data.customers["customer_id"].to_numpy()
    targeted = (np.arange(len(ids)) % 3 == 0).astype(np.int8)
    roll = logged_rollout(data, ids, targeted)
    exposures = data.exposures.set_index("customer_id").loc[ids]
    outcomes = data.outcomes.set_index("customer_id").loc[ids]
    assert (roll["arm"].eq("treatment").to_numpy() == exposures["treatment"].to_numpy().astype(bool)).all()
    assert (roll["purchased"].to_numpy() == outcomes["purchased"].to_numpy()).all()
    assert (roll["targeted"].to_numpy() == targeted).all()
    assert (roll["incentive_cost"] == 0).all()  # the e-mail flag is not money
    priced = logged_rollout(data, ids, targeted, contact_cost=0.25)
    np.testing.assert_allclose(priced["incentive_cost"], 0.25 * exposures["treatment"].to_numpy())
    with pytest.raises(ValueError, match="targeted"):
        logged_rollout(data, ids, np.full(len(ids), 2))
    with pytest.raises(ValueError, match="no row for 1 customer"):
        logged_rollout(data, np.array([10**9]), np.array([1]))


def test_top_share_plan():
    plan = top_share_plan([0.1, 0.9, 0.5, 0.7, 0.2], 0.4, level=3)
    assert plan.tolist() == [0, 3, 0, 3, 0]
    assert top_share_plan([1.0, 2.0], 0.0).tolist() == [0, 0]
    with pytest.raises(ValueError, match="share"):
        top_share_plan([1.0], 1.5)
    with pytest.raises(ValueError, match="level"):
        top_share_plan([1.0], 0.5, level=0)


def test_rfm_rule_plan_targets_top_segments_best_first_within_budget():
    names = ["champions", "lost", "loyal", "potential_loyalists", "champions", "hibernating"]
    scores = pd.DataFrame({"R": [5, 1, 4, 4, 4, 2], "F": [5, 1, 3, 2, 5, 1], "M": [5, 1, 4, 2, 4, 1]})
    assert rfm_rule_plan(names, scores, level=2, cost=1.0).tolist() == [2, 0, 2, 2, 2, 0]
    # budget 2.5 at cost 1 each: the two best totals (15 and 13) only
    assert rfm_rule_plan(names, scores, level=2, cost=1.0, budget=2.5).tolist() == [2, 0, 0, 0, 2, 0]
    with pytest.raises(ValueError, match="rfm_scores: expected 6 rows"):
        rfm_rule_plan(names, scores.iloc[:3], level=1, cost=1.0)
