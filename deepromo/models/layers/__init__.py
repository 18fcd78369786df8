"""Reusable layers shared by the models."""

from deepromo.models.layers.encoder import FeatureEncoder, mlp

__all__ = ["FeatureEncoder", "mlp"]
