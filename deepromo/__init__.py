"""deepromo: a PyTorch Lightning model zoo for promotion and retention decisions."""

__version__ = "0.1.0"

from deepromo.models import get_model_class, list_models, register_model  # noqa: E402
from deepromo.loading import load_model  # noqa: E402

__all__ = ["__version__", "get_model_class", "list_models", "load_model", "register_model"]
