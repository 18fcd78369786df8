"""Simulation: the market as a Gymnasium environment (``deepromo/Market-v0``), policies that act in it, and the
logged data they leave for off-policy evaluation."""

import gymnasium

from deepromo.sim.env import OBSERVATION_FEATURES, MarketEnv

ENV_ID = "deepromo/Market-v0"
if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="deepromo.sim.env:MarketEnv")

__all__ = ["ENV_ID", "MarketEnv", "OBSERVATION_FEATURES"]
