"""``load_model``: rebuild a registered model from a deepromo checkpoint with weights_only=True."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from deepromo.data.preprocess import Preprocessor
from deepromo.models.base import CHECKPOINT_KEY
from deepromo.models.registry import get_model_class

CHECKPOINT_FILE = "model.ckpt"  # the checkpoint's name inside a logged MLflow model


def is_model_uri(source) -> bool:
    """True for MLflow model URIs (``models:/…``, ``runs:/…``) rather than file paths."""
    return isinstance(source, str) and source.split(":", 1)[0] in ("models", "runs") and ":/" in source


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """Load a model saved by the Trainer or ``PromoModel.save``, or an MLflow model URI
    (``models:/NAME@alias``, ``models:/NAME/VERSION``, ``runs:/RUN_ID/model``); returns it in eval mode.

    The checkpoint is read with ``torch.load(weights_only=True)``: it holds only tensors and
    primitives, so no code from the file is executed.
    """
    if is_model_uri(path):
        path = download_checkpoint(path)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at '{path}'")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if CHECKPOINT_KEY not in ckpt:
        raise ValueError(f"'{path}' is not a deepromo checkpoint (no '{CHECKPOINT_KEY}' entry)")
    meta = ckpt[CHECKPOINT_KEY]
    cls = get_model_class(meta["model"])
    model = cls(meta["spec"], **meta["hparams"])
    model.load_state_dict(ckpt["state_dict"])
    if meta.get("preprocessor"):
        model.preprocessor = Preprocessor.from_json(meta["preprocessor"])
    return model.eval()


def download_checkpoint(uri: str) -> Path:
    """Local path of the deepromo checkpoint inside an MLflow model given by ``models:/`` or ``runs:/``."""
    from deepromo.serving.tracking import disable_telemetry

    disable_telemetry()
    import mlflow  # only for model URIs

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    found = sorted(local.rglob(CHECKPOINT_FILE))
    if not found:
        raise FileNotFoundError(f"'{uri}' holds no deepromo checkpoint ({CHECKPOINT_FILE}); is it a deepromo model?")
    return found[0]
