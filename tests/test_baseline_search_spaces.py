"""Tunable baselines: every declared search space names settings the baseline takes, a tuned setting changes the
baseline's output, and the untuned default equals the same setting given explicitly (so untuned rows are unchanged)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import deepromo
from deepromo.data.errors import UserInputError
from deepromo.tasks import get_task, model_datamodule

TASKS = ("targeting", "response", "purchase", "ranking")
MODEL_OF_TASK = {"targeting": "splc", "purchase": "txl", "ranking": "gat"}


@pytest.fixture(scope="module")
def datamodules(tiny_world):
    return {task: model_datamodule(deepromo.get_model_class(model), tiny_world, batch_size=128, seed=0)
            for task, model in MODEL_OF_TASK.items()}


def scores(task: str, out: dict) -> np.ndarray:
    """The ranking-relevant array of one baseline's test outputs."""
    return np.asarray(out["test"][{"targeting": "score", "purchase": "p", "ranking": "scores"}[task]], np.float64)


def test_every_task_has_a_tunable_baseline_and_its_settings_are_arguments():
    for name in TASKS:
        task = get_task(name)
        assert task.search_spaces, f"task {name} has no tunable baseline: the leaderboard could not tune one"
        for baseline, space in task.search_spaces.items():
            assert baseline in task.baselines
            parameters = inspect.signature(task.baselines[baseline]).parameters
            takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
            for key, entry in space.items():
                assert takes_any or key in parameters, f"{name}/{baseline}: search space key {key} is no argument"
                assert entry["type"] in ("float", "int", "categorical")
                if entry["type"] != "categorical":
                    assert entry["low"] < entry["high"]


@pytest.mark.parametrize("task_name, baseline, default, tuned", [
    ("targeting", "logistic", {"C": 1.0}, {"C": 1e-3}),
    ("targeting", "random_forest", {"min_samples_leaf": 5, "max_features": "sqrt"},
     {"min_samples_leaf": 60, "max_features": 0.9}),
    ("purchase", "gbm_aggregates", {"max_iter": 300, "learning_rate": 0.05}, {"learning_rate": 0.3, "max_iter": 50}),
    ("purchase", "logistic_aggregates", {"C": 1.0}, {"C": 1e-3}),
    ("ranking", "bpr_mf", {"dim": 32, "lr": 0.02, "l2": 1e-4}, {"dim": 16, "lr": 0.002}),
    ("ranking", "lightgcn", {"dim": 32, "layers": 2, "lr": 0.01, "l2": 1e-4}, {"layers": 1, "lr": 0.001}),
])
def test_a_tuned_setting_is_used_and_the_default_is_the_untuned_baseline(datamodules, task_name, baseline, default,
                                                                         tuned):
    task, dm = get_task(task_name), datamodules[task_name]
    untuned = scores(task_name, task.run_baseline(baseline, dm, ("test",), seed=0))
    explicit = scores(task_name, task.run_baseline(baseline, dm, ("test",), seed=0,
                                                   params={k: v for k, v in default.items()
                                                           if k in task.search_spaces[baseline]}))
    changed = scores(task_name, task.run_baseline(baseline, dm, ("test",), seed=0, params=tuned))
    assert np.isfinite(untuned).all() and np.isfinite(changed).all()
    np.testing.assert_allclose(explicit, untuned, rtol=1e-6, atol=1e-5)  # torch scatter sums: float order
    assert not np.allclose(changed, untuned), f"{baseline}: the tuned setting {tuned} changed nothing"


def test_a_setting_outside_the_search_space_is_refused(datamodules):
    with pytest.raises(UserInputError, match="takes no setting"):
        get_task("ranking").run_baseline("bpr_mf", datamodules["ranking"], ("test",), params={"negatives": 8})
