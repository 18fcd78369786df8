"""``load_model``: rebuild a registered model from a deepromo checkpoint with weights_only=True."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import zipfile
from pathlib import Path

import torch

from deepromo.data.preprocess import Preprocessor
from deepromo.data.tables import DataValidationError
from deepromo.models.base import CHECKPOINT_KEY, HASH_KEY, checkpoint_content_hash
from deepromo.models.registry import get_model_class

log = logging.getLogger("deepromo")

PYFUNC_CODE_FILE = "pyfunc_entry.py"  # the code file of deepromo's MLflow models (models from code)


def is_model_uri(source) -> bool:
    """True for MLflow model URIs (``models:/…``, ``runs:/…``) rather than file paths."""
    return isinstance(source, str) and source.split(":", 1)[0] in ("models", "runs") and ":/" in source


class CheckpointError(DataValidationError):
    """A file that is not a loadable deepromo checkpoint: unreadable, damaged, foreign, or of another shape."""


class MissingCheckpointError(CheckpointError, FileNotFoundError):
    """No file at the given checkpoint path."""


def read_checkpoint(path: str) -> dict:
    """``torch.load(path, weights_only=True)`` with one clear error for every way a file can fail to load."""
    if os.path.isdir(path):
        raise CheckpointError(f"'{path}' is a directory, not a checkpoint file")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"'{path}' is empty (0 bytes): not a checkpoint")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive whose directory is at its end
        raise CheckpointError(f"'{path}' is not a torch checkpoint archive: truncated, damaged, or another kind "
                              "of file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc):  # torch's refusal of pickled objects; its advice to disable it is not ours
            raise CheckpointError(f"'{path}' holds Python objects beyond tensors and plain values; a deepromo "
                                  "checkpoint never does, so it is refused (loading it could run code)") from None
        raise CheckpointError(f"corrupt checkpoint '{path}': {exc}") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"corrupt or truncated checkpoint '{path}': torch could not read it ({reason})") from None
    if not isinstance(ckpt, dict) or CHECKPOINT_KEY not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"'{path}' is not a deepromo checkpoint (no '{CHECKPOINT_KEY}' entry)")
    return ckpt


def verify_content(path: str, meta: dict, state_dict: dict) -> None:
    """Check the checkpoint's content hash (written by ``PromoModel.save`` and every Lightning checkpoint)."""
    expected = meta.get(HASH_KEY)
    if expected is None:
        log.warning("checkpoint '%s' carries no content hash (written before deepromo recorded one): "
                    "its integrity cannot be checked", path)
        return
    try:
        actual = checkpoint_content_hash(meta, state_dict)
    except (TypeError, AttributeError, RuntimeError) as exc:
        raise CheckpointError(f"corrupt checkpoint '{path}': its tensors cannot be read ({exc})") from None
    if actual != expected:
        raise CheckpointError(f"corrupt checkpoint '{path}': its content hash does not match what was written "
                              "(the file changed after it was saved); refusing to load changed weights")


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """Load a model saved by the Trainer or ``PromoModel.save``, or an MLflow model URI
    (``models:/NAME@alias``, ``models:/NAME/VERSION``, ``runs:/RUN_ID/model``); returns it in eval mode.

    The checkpoint is read with ``torch.load(weights_only=True)``: it holds only tensors and primitives, so no
    code from the file is executed; its content hash is checked before the weights are used.
    """
    if is_model_uri(path):
        path = download_checkpoint(path)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MissingCheckpointError(f"no checkpoint at '{path}'")
    ckpt = read_checkpoint(path)
    meta, state = ckpt[CHECKPOINT_KEY], ckpt["state_dict"]
    verify_content(path, meta, state)
    try:
        cls = get_model_class(meta["model"])
        model = cls(meta["spec"], **meta["hparams"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint '{path}': its model entry cannot be rebuilt ({exc})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(f"checkpoint '{path}': its weights do not fit model '{meta['model']}' built from its "
                              f"own spec ({' '.join(first[:3])[:300]})") from None
    if meta.get("preprocessor"):
        try:
            model.preprocessor = Preprocessor.from_json(meta["preprocessor"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"checkpoint '{path}': its preprocessor is unreadable ({exc})") from None
    if meta.get("drift_reference"):  # absent from checkpoints saved before deepromo profiled the training data
        try:
            model.drift_reference = json.loads(meta["drift_reference"])
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"checkpoint '{path}': its drift reference is unreadable ({exc})") from None
    return model.to(map_location).eval()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_mlmodel(model_dir: str | os.PathLike, where: str = "") -> dict:
    """The parsed ``MLmodel`` file of a local MLflow model folder."""
    import yaml

    mlmodel = Path(model_dir) / "MLmodel"
    if not mlmodel.exists():
        raise CheckpointError(f"'{where or os.fspath(model_dir)}' is no MLflow model (no MLmodel file)")
    return yaml.safe_load(mlmodel.read_text()) or {}


def verify_pyfunc_code(model_dir: str | os.PathLike, uri: str = "", mlmodel: dict | None = None) -> None:
    """Refuse an MLflow model whose code file changed after it was logged: ``mlflow.pyfunc.load_model``
    executes that file, so a changed one would run someone else's code. Models logged before deepromo
    recorded the hash only get a warning. mlmodel: the folder's parsed MLmodel, if already read."""
    where = uri or os.fspath(model_dir)
    meta = (mlmodel if mlmodel is not None else read_mlmodel(model_dir, where)).get("metadata") or {}
    expected = meta.get("deepromo_code_sha256")
    code = Path(model_dir) / PYFUNC_CODE_FILE
    if expected is None:
        log.warning("MLflow model '%s' carries no hash of its code file (logged by an older deepromo)", where)
        return
    if not code.exists() or file_sha256(code) != expected:
        raise CheckpointError(f"MLflow model '{where}': its code file {PYFUNC_CODE_FILE} is missing or changed since "
                              "the model was logged; refusing it (mlflow.pyfunc.load_model would execute that file)")


def download_checkpoint(uri: str) -> Path:
    """Local path of the deepromo checkpoint inside an MLflow model given by ``models:/`` or ``runs:/``
    (its code file checked as :func:`verify_pyfunc_code` does)."""
    from deepromo.serving.tracking import disable_telemetry, tracking_uri

    disable_telemetry()
    import mlflow  # only for model URIs

    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except mlflow.exceptions.MlflowException as exc:  # unknown name, alias, version or run
        first = str(exc.message if hasattr(exc, "message") else exc).strip().splitlines()[0]
        raise MissingCheckpointError(f"'{uri}' is not in the tracking store {tracking_uri()}: {first}") from None
    mlmodel = read_mlmodel(local, uri)
    verify_pyfunc_code(local, uri, mlmodel)
    flavor = (mlmodel.get("flavors") or {}).get("python_function") or {}
    entry = (flavor.get("artifacts") or {}).get("checkpoint") or {}
    if not entry.get("path") or not (local / entry["path"]).exists():
        raise CheckpointError(f"'{uri}' holds no deepromo checkpoint artifact; is it a deepromo model?")
    return local / entry["path"]
