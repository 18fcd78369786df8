"""The shared data interface: contracts, preprocessing, views, datamodules, sources.

Names are imported on first use, so importing one data module does not load Lightning or scikit-learn.
"""

import importlib

_EXPORTS = {
    "BATCH_KEYS": "batch", "BatchValidationError": "batch", "validate_batch": "batch",
    "PromoDataModule": "datamodule", "Preprocessor": "preprocess", "FeatureSpec": "spec",
    "CanonicalData": "tables", "DataValidationError": "tables", "TaskView": "views", "build_view": "views",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'deepromo.data' has no attribute '{name}'")
