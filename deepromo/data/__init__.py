"""The shared data interface: spec, batch contract, preprocessing, views, datamodule, sources."""

from deepromo.data.batch import BATCH_KEYS, BatchValidationError, validate_batch
from deepromo.data.datamodule import PromoDataModule
from deepromo.data.preprocess import Preprocessor
from deepromo.data.spec import FeatureSpec
from deepromo.data.tables import CanonicalData, DataValidationError
from deepromo.data.views import TaskView, build_view

__all__ = [
    "BATCH_KEYS",
    "BatchValidationError",
    "CanonicalData",
    "DataValidationError",
    "FeatureSpec",
    "Preprocessor",
    "PromoDataModule",
    "TaskView",
    "build_view",
    "validate_batch",
]
