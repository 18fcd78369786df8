"""Unordered treatment arms through the response task: the table source and Hillstrom mark them, dipn is not
monotone in their codes (listing the arms the other way round is only a relabelling), the meta-learners and
the class transformation recover a planted per-arm uplift, and the best-arm policy value is an IPW estimate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepromo.data.sources import load_source
from deepromo.data.tables import DataValidationError
from deepromo.metrics.uplift import policy_value_ci, policy_value_ipw
from deepromo.models.registry import get_model_class
from deepromo.tasks import get_task, model_datamodule

ARMS = ("gift", "discount")  # sorted: discount < gift, so the default codes are discount 1, gift 2


def planted_trial(n: int = 6000, seed: int = 0) -> pd.DataFrame:
    """A randomised three-arm trial: 'gift' lifts purchase by 0.3 only where x > 0, 'discount' by 0.3 only
    where x < 0, 'none' is control (a third of the rows each)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    arm = rng.choice(["none", *ARMS], size=n)
    p = 0.2 + 0.3 * ((arm == "gift") & (x > 0)) + 0.3 * ((arm == "discount") & (x < 0))
    return pd.DataFrame({"x": x, "noise": rng.normal(size=n), "arm": arm, "bought": (rng.random(n) < p).astype(int)})


def trial_data(tmp_path, arms=None, arms_ordered=False, n=6000):
    path = tmp_path / "trial.csv"
    if not path.exists():
        planted_trial(n).to_csv(path, index=False)
    return load_source("table", path=str(path), label="bought", treatment="arm", control="none",
                       numeric=["x", "noise"], arms=arms, arms_ordered=arms_ordered)


def test_table_source_marks_categorical_arms_unordered_unless_told(tmp_path):
    data = trial_data(tmp_path)
    assert data.arm_names == ("none", "discount", "gift") and data.incentive_levels == (0.0, 1.0, 2.0)
    dm = model_datamodule(get_model_class("dipn"), data, seed=0)
    assert dm.spec.treatment.arms == ("none", "discount", "gift") and not dm.spec.treatment.ordered
    assert trial_data(tmp_path, arms=["discount", "gift"], arms_ordered=True).arm_names is None
    with pytest.raises(Exception, match="arms_ordered must be true or false"):
        trial_data(tmp_path, arms_ordered="yes")


def test_hillstrom_multi_arm_codes_and_design_propensity(tmp_path):
    rows = pd.DataFrame({
        "recency": [1, 2, 3, 4, 5, 6], "history_segment": ["a"] * 6, "history": [10.0] * 6,
        "mens": [1, 0, 1, 0, 1, 0], "womens": [0, 1, 0, 1, 0, 1], "zip_code": ["Urban"] * 6, "newbie": [0] * 6,
        "channel": ["Web"] * 6, "segment": ["Mens E-Mail", "Womens E-Mail", "No E-Mail"] * 2,
        "visit": [1, 0, 0, 1, 1, 0], "conversion": [0] * 6, "spend": [0.0] * 6})
    rows.to_csv(tmp_path / "h.csv", index=False)
    data = load_source("hillstrom", path=str(tmp_path / "h.csv"), treatment_arm="multi")
    assert data.arm_names == ("No E-Mail", "Mens E-Mail", "Womens E-Mail")
    assert data.exposures["incentive"].tolist() == [1.0, 2.0, 0.0] * 2
    assert np.allclose(data.exposures["propensity"], 1 / 3)
    swapped = load_source("hillstrom", path=str(tmp_path / "h.csv"), treatment_arm="multi",
                          arm_order=["Womens E-Mail", "Mens E-Mail"])
    assert swapped.exposures["incentive"].tolist() == [2.0, 1.0, 0.0] * 2
    with pytest.raises(Exception, match="arm_order must list"):
        load_source("hillstrom", path=str(tmp_path / "h.csv"), treatment_arm="multi", arm_order=["Mens E-Mail"])


def train_dipn(data, seed=0, epochs=8):
    import pytorch_lightning as pl

    cls = get_model_class("dipn")
    dm = model_datamodule(cls, data, batch_size=256, seed=0)
    pl.seed_everything(seed, verbose=False)
    model = cls.from_datamodule(dm, hidden=[32, 16], lr=1e-2)
    pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(model, datamodule=dm)
    return model, dm


def arm_uplift(model, dm, arm: str) -> np.ndarray:
    """[n] predicted uplift of ``arm`` over control on the test rows."""
    curve = model.predict_split(dm, "test")["curve"]
    k = dm.spec.treatment.arms.index(arm)
    return curve[:, k] - curve[:, 0]


def test_dipn_is_not_monotone_in_arm_codes_and_the_arm_order_is_only_a_labelling(tmp_path):
    """The planted world's arms help opposite halves, which no curve monotone in the codes can express."""
    out = {}
    for arms in (["discount", "gift"], ["gift", "discount"]):
        model, dm = train_dipn(trial_data(tmp_path, arms=arms))
        x = dm.view.frame["x"].to_numpy()[dm.indices["test"]]
        gift, discount = arm_uplift(model, dm, "gift"), arm_uplift(model, dm, "discount")
        # each arm's predicted uplift is higher on the half it helps, whatever its code
        assert gift[x > 0].mean() - gift[x < 0].mean() > 0.12
        assert discount[x < 0].mean() - discount[x > 0].mean() > 0.12
        out[tuple(arms)] = np.corrcoef(gift, x)[0, 1]
    assert min(out.values()) > 0.6


def test_meta_learners_recover_the_planted_arm_effects(tmp_path):
    data = trial_data(tmp_path)
    dm = model_datamodule(get_model_class("dipn"), data, seed=0)
    task = get_task("response")
    names = ("t_learner", "s_learner", "x_learner", "dr_learner", "class_transformation")
    predictions = {name: task.run_baseline(name, dm, ("test",), seed=0, params={"max_iter": 60}) for name in names}
    table = task.evaluate(predictions, dm, "test").table
    for name in names:
        row = table[name]
        assert row["qini_gift"] > 0.06 and row["qini_discount"] > 0.06, (name, row)
        assert row["qini_low"] <= row["qini"] <= row["qini_high"]
        # the best-arm policy reaches about 0.5 where a single arm for everyone gets 0.35
        assert row["policy_value"] > 0.42 and row["policy_gain"] > 0.04, (name, row)
        assert "monotonicity_violations" not in row  # no order to violate
    assert "log_loss" not in table["class_transformation"] and "log_loss" in table["t_learner"]
    with pytest.raises(Exception, match="takes no setting"):
        task.run_baseline("t_learner", dm, ("test",), params={"depth": 3})


def test_isotonic_smoothing_is_skipped_for_unordered_arms(tmp_path):
    dm = model_datamodule(get_model_class("dipn"), trial_data(tmp_path), seed=0)
    reason = get_task("response").skip_reason({"postprocess": "isotonic"}, dm)
    assert "unordered" in reason and "gift" in reason


def test_a_treatment_without_control_rows_is_refused(tmp_path):
    frame = planted_trial(300)
    frame["arm"] = frame["arm"].replace({"none": "gift"})
    frame["amount"] = np.where(frame["arm"] == "gift", 5.0, 10.0)
    frame.to_csv(tmp_path / "no_control.csv", index=False)
    data = load_source("table", path=str(tmp_path / "no_control.csv"), label="bought", treatment="amount",
                       numeric=["x"])
    with pytest.raises(DataValidationError, match="no control row"):
        model_datamodule(get_model_class("dipn"), data, seed=0)


def test_policy_value_ipw_by_hand():
    y = np.array([1, 0, 1, 1])
    logged, chosen = np.array([0, 1, 2, 1]), np.array([0, 2, 2, 1])
    p = np.array([0.5, 0.25, 0.25, 0.25])
    # rows 0, 2, 3 followed the policy: (1/0.5 + 1/0.25 + 1/0.25) / 4
    assert policy_value_ipw(y, logged, chosen, p) == pytest.approx((2 + 4 + 4) / 4)
    ci = policy_value_ci(y, logged, chosen, p, n_boot=50)
    assert ci["low"] <= ci["value"] <= ci["high"] and ci["value"] == pytest.approx(2.5)
    with pytest.raises(Exception, match="propensity"):
        policy_value_ipw(y, logged, chosen, np.array([0.5, 0.0, 0.25, 0.25]))


def test_allocation_without_money_reports_uplift_not_roi(tmp_path):
    from omegaconf import OmegaConf

    dm = model_datamodule(get_model_class("dipn"), trial_data(tmp_path), seed=0)
    task = get_task("response")
    outputs = task.run_baseline("t_learner", dm, ("test",), params={"max_iter": 30})["test"]
    settings = OmegaConf.create({"margin_column": "avg_basket", "margin_rate": 1.0, "margin": 50.0,
                                 "cost_model": "redemption", "contact_cost": 0.0, "plan_scenario": "medium",
                                 "scenarios": {"low": 0.1, "medium": 0.3, "unrestricted": float("inf")}})
    report, paths = task.decide(settings, outputs, dm, tmp_path)
    assert report["priced"] is False and "labels, not amounts" in report["reason"]
    assert report["medium"]["incremental_purchases"] > report["medium"]["random_incremental_purchases"]
    assert report["unrestricted"]["customers"] == len(dm.indices["test"])
    plan = pd.read_parquet(paths["allocation_plan"])
    assert set(plan["level"]) <= {"none", "gift", "discount"} and (plan["level"] != "none").mean() == pytest.approx(0.3, abs=0.01)
