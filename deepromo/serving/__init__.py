"""Serving trained models: checkpoint loading, the MLflow model and registry, batch scoring."""
