"""deepromo: a PyTorch Lightning model zoo for promotion and retention decisions.

Importing the package is cheap: models, Lightning, PyG, scikit-learn and MLflow load when first used.
"""

__version__ = "0.1.0"

from deepromo.models.registry import get_model_class, list_models, register_model  # noqa: E402

__all__ = ["__version__", "get_model_class", "list_models", "load_model", "register_model"]


def __getattr__(name: str):
    if name == "load_model":
        from deepromo.serving.checkpoints import load_model

        return load_model
    raise AttributeError(f"module 'deepromo' has no attribute '{name}'")
