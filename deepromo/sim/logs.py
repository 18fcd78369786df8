"""Logged decisions from the simulator and the true value of a policy, for off-policy evaluation.

One decision day: every customer gets one action from a policy (its propensity logged), then the market runs
``reward_days`` days with no further action; the row's reward is the customer's margin minus incentive cost over
those days (delayed redemptions included). The same start state (a deep copy of the env) gives the true value
of any other policy by simulation.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from deepromo.data.errors import UserInputError
from deepromo.sim.env import OBSERVATION_FEATURES, MarketEnv
from deepromo.sim.policies import Policy


def _run_decision(env: MarketEnv, codes: np.ndarray, reward_days: int) -> np.ndarray:
    """Apply ``codes`` today, then nothing for ``reward_days - 1`` days; per-customer reward summed [n]."""
    total = np.zeros(env.n)
    nothing = np.zeros(env.n, dtype=np.int64)
    for day in range(reward_days):
        _, _, _, _, info = env.step(codes if day == 0 else nothing)
        total += info["reward_per_customer"]
    return total


def log_decisions(env: MarketEnv, policy: Policy, reward_days: int = 14, seed: int = 0) -> pd.DataFrame:
    """One decision day of ``policy`` from env's current state (the env is copied, not advanced): one row per
    customer with the observation features, ``action`` (env code), ``action_index`` (into policy.actions),
    ``propensity`` and ``reward`` (money over ``reward_days``)."""
    if not isinstance(reward_days, (int, np.integer)) or reward_days < 1:
        raise UserInputError(f"reward_days must be an integer >= 1, got {reward_days!r}")
    run = copy.deepcopy(env)
    obs = run._observation()
    rng = np.random.default_rng(seed)
    codes, propensity, index = policy.sample(obs, run, rng)
    run.market.rng = np.random.default_rng([seed, 1])
    reward = _run_decision(run, codes, int(reward_days))
    frame = pd.DataFrame(obs, columns=list(OBSERVATION_FEATURES))
    frame.insert(0, "customer_id", np.arange(env.n, dtype=np.int64))
    frame["action"] = codes
    frame["action_index"] = index
    frame["propensity"] = propensity
    frame["reward"] = reward
    return frame


def true_policy_value(env: MarketEnv, policy: Policy, reward_days: int = 14, replications: int = 4,
                      seed: int = 1000) -> dict:
    """The simulator's value of ``policy`` from env's current state: mean per-customer reward over
    ``replications`` independent runs (each from a copy of the same state). Returns value, its Monte Carlo
    standard error and the per-replication means."""
    means = []
    for r in range(int(replications)):
        run = copy.deepcopy(env)
        obs = run._observation()
        codes, _, _ = policy.sample(obs, run, np.random.default_rng([seed, r, 0]))
        run.market.rng = np.random.default_rng([seed, r, 1])
        means.append(float(_run_decision(run, codes, int(reward_days)).mean()))
    means = np.asarray(means)
    se = float(means.std(ddof=1) / np.sqrt(means.size)) if means.size > 1 else float("nan")
    return {"value": float(means.mean()), "se": se, "replications": means.tolist()}


def fit_reward_model(log: pd.DataFrame, n_actions: int, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Cross-fitted reward model q(x, a) for doubly robust estimates: ``[n, K]`` predicted reward of every
    candidate action (index into the policy's actions) for every logged row, each row predicted by models that
    never saw it. One shallow gradient-boosted regressor per action (scikit-learn; depth 2, leaves of >= 150 rows)
    on the observation features, predictions clipped to that action's observed reward range: a model that
    extrapolates wildly shares its error across all rows and the per-row interval would not see it."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    features = log[list(OBSERVATION_FEATURES)].to_numpy(dtype=np.float64)
    action = log["action_index"].to_numpy()
    y = log["reward"].to_numpy(dtype=np.float64)
    n = len(log)
    fold = np.random.default_rng(seed).integers(0, folds, size=n)
    q = np.zeros((n, n_actions))
    for f in range(folds):
        test = fold == f
        for k in range(n_actions):
            train = ~test & (action == k)
            if train.sum() < 80:
                q[test, k] = y[train].mean() if train.any() else (y[~test].mean() if (~test).any() else 0.0)
                continue
            model = HistGradientBoostingRegressor(max_iter=30, max_depth=2, min_samples_leaf=150, learning_rate=0.1,
                                                  random_state=seed)
            model.fit(features[train], y[train])
            q[test, k] = np.clip(model.predict(features[test]), y[train].min(), y[train].max())
    return q


def estimate_policy_value(log: pd.DataFrame, target: Policy, logging: Policy, env: MarketEnv,
                          confidence: float = 0.95, seed: int = 0, reward_model: np.ndarray | None = None) -> dict:
    """IPS, SNIPS and doubly robust estimates (``deepromo.metrics.ope``) of ``target``'s value from a log of
    ``logging`` (:func:`log_decisions`); both policies must choose among the same candidate actions.
    reward_model: ``fit_reward_model(log, K, seed=seed)`` when several targets are judged on one log (it does not
    depend on the target); None fits it here."""
    from deepromo.metrics.ope import expected_under, off_policy_value, target_probability_of

    if not np.array_equal(target.actions, logging.actions):
        raise UserInputError(f"target and logging policies must share their candidate actions, got "
                             f"{target.actions.tolist()} and {logging.actions.tolist()}")
    obs = log[list(OBSERVATION_FEATURES)].to_numpy(dtype=np.float32)
    probs = target.probabilities(obs, env)
    index = log["action_index"].to_numpy()
    q = fit_reward_model(log, target.actions.size, seed=seed) if reward_model is None else reward_model
    estimates = off_policy_value(
        log["reward"].to_numpy(), log["propensity"].to_numpy(), target_probability_of(index, probs),
        reward_model_logged=q[np.arange(len(log)), index], reward_model_target=expected_under(probs, q),
        confidence=confidence)
    return {name: e.as_dict() for name, e in estimates.items()}
