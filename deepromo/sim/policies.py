"""Policies that act in :class:`~deepromo.sim.env.MarketEnv`, each over a list of candidate action codes.

A policy gives every customer a distribution over its ``actions`` (``probabilities``: ``[n, K]``); ``sample``
draws one action per customer and returns its propensity, so any policy's log supports off-policy evaluation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deepromo.data.errors import UserInputError
from deepromo.sim.env import OBSERVATION_FEATURES, MarketEnv

DAYS_SINCE_PURCHASE = OBSERVATION_FEATURES.index("days_since_purchase")


class Policy:
    """Base class: ``actions`` are env action codes; subclasses give ``probabilities(obs, env)`` ``[n, K]``."""

    def __init__(self, actions):
        self.actions = np.asarray(actions, dtype=np.int64)
        if self.actions.ndim != 1 or self.actions.size == 0:
            raise UserInputError(f"a policy needs a non-empty list of action codes, got {actions!r}")

    def probabilities(self, obs: np.ndarray, env: MarketEnv) -> np.ndarray:
        raise NotImplementedError

    def sample(self, obs: np.ndarray, env: MarketEnv, rng: np.random.Generator):
        """(env action codes [n], propensity of each [n], index into ``actions`` [n])."""
        probs = self.probabilities(obs, env)
        cum = np.cumsum(probs, axis=1)
        k = np.minimum((rng.random(probs.shape[0])[:, None] * cum[:, -1:] >= cum).sum(axis=1), probs.shape[1] - 1)
        return self.actions[k], probs[np.arange(k.size), k], k


class UniformPolicy(Policy):
    """Every candidate action with the same probability (a randomised logging policy)."""

    def probabilities(self, obs, env):
        return np.full((obs.shape[0], self.actions.size), 1.0 / self.actions.size)


class InactivityRulePolicy(Policy):
    """The adaptive-interventions paper's fixed rule: ``action`` to every customer inactive for at least ``days``
    days (days since the last logged purchase), else ``actions[0]`` (nothing)."""

    def __init__(self, actions, action: int, days: float = 3.0):
        super().__init__(actions)
        if int(action) not in set(self.actions.tolist()):
            raise UserInputError(f"InactivityRulePolicy: action {action} is not among the candidate actions "
                                 f"{self.actions.tolist()}")
        self.action, self.days = int(action), float(days)

    def probabilities(self, obs, env):
        probs = np.zeros((obs.shape[0], self.actions.size))
        fire = obs[:, DAYS_SINCE_PURCHASE] >= self.days
        probs[fire, int(np.flatnonzero(self.actions == self.action)[0])] = 1.0
        probs[~fire, 0] = 1.0
        return probs


class ScorePolicy(Policy):
    """Greedy (``temperature`` 0) or softmax over ``score(obs, env) -> [n, K]``, e.g. a trained model's predicted
    value of each candidate action."""

    def __init__(self, actions, score: Callable[[np.ndarray, MarketEnv], np.ndarray], temperature: float = 0.0):
        super().__init__(actions)
        self.score, self.temperature = score, float(temperature)

    def probabilities(self, obs, env):
        s = np.asarray(self.score(obs, env), dtype=float)
        if s.shape != (obs.shape[0], self.actions.size):
            raise UserInputError(f"ScorePolicy: score must return [{obs.shape[0]}, {self.actions.size}] values, got "
                                 f"shape {s.shape}")
        if self.temperature <= 0:
            probs = np.zeros_like(s)
            probs[np.arange(s.shape[0]), np.argmax(s, axis=1)] = 1.0
            return probs
        z = (s - s.max(axis=1, keepdims=True)) / self.temperature
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


class EpsilonGreedyPolicy(Policy):
    """``base`` with probability 1 - epsilon, else uniform over the same actions (keeps every propensity > 0)."""

    def __init__(self, base: Policy, epsilon: float):
        super().__init__(base.actions)
        if not 0.0 < float(epsilon) <= 1.0:
            raise UserInputError(f"EpsilonGreedyPolicy: epsilon must lie in (0, 1], got {epsilon!r}")
        self.base, self.epsilon = base, float(epsilon)

    def probabilities(self, obs, env):
        return (1.0 - self.epsilon) * self.base.probabilities(obs, env) + self.epsilon / self.actions.size
