"""PromoModel: the one LightningModule base class every registered model extends.

A subclass declares ``task`` (``deepromo.tasks``: its view, datamodule, evaluator and baselines),
``defaults`` (hyper-parameters; unknown keys are an error), ``test_params`` (tiny parameter sets for the
shared test loop) and ``required_keys`` (the PromoBatch keys it reads), and implements
``forward(batch) -> dict`` and ``compute_loss(batch, out) -> dict`` (with "loss"). Jobs, tests and
benchmarks build a model with ``Model.from_datamodule(dm, **params)``. Checkpoints hold only primitives
(spec dict, hparams, preprocessor JSON), so they load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch

from deepromo.data.batch import validate_batch
from deepromo.data.errors import UserInputError
from deepromo.data.tables import DataValidationError
from deepromo.data.preprocess import Preprocessor
from deepromo.data.spec import FeatureSpec

CHECKPOINT_KEY = "deepromo"


class HyperParameterError(UserInputError):
    """A hyper-parameter value a model cannot be built with; the message names the model and the key."""


class UnknownHyperParameterError(HyperParameterError, TypeError):
    """A hyper-parameter the model does not have."""

HASH_KEY = "content_sha256"  # in the checkpoint's deepromo entry: the hash of its metadata and tensors


def checkpoint_content_hash(meta: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the metadata (as sorted JSON, without the hash itself) and every tensor's name, dtype,
    shape and bytes: a checkpoint whose content changed after it was written no longer matches it."""
    digest = hashlib.sha256()
    digest.update(json.dumps({k: v for k, v in meta.items() if k != HASH_KEY}, sort_keys=True, default=str).encode())
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def to_primitive(value: Any) -> Any:
    """Convert OmegaConf containers, tuples and numpy scalars to JSON-like primitives."""
    try:  # OmegaConf is optional at this level
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, Mapping):
        return {str(k): to_primitive(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_primitive(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"hyper-parameter value {value!r} of type {type(value).__name__} is not a plain value")


def check_finite_outputs(frame: pd.DataFrame, model_name: str) -> None:
    """Refuse NaN/inf scores (naming the column and first row) rather than hand them on as results."""
    values = frame.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataValidationError(f"model '{model_name}' produced {int(bad.any(axis=1).sum())} non-finite score row(s) "
                                  f"(first: column '{frame.columns[col]}' at row {frame.index[row]}); the inputs of "
                                  "those rows are outside what the model can score")


class PromoModel(pl.LightningModule):
    name: ClassVar[str] = "base"
    task: ClassVar[str] = "targeting"  # the task (deepromo.tasks.<task>) that serves, scores and plots it
    required_keys: ClassVar[tuple[str, ...]] = ("cat", "num")
    defaults: ClassVar[dict[str, Any]] = {"lr": 1e-3, "weight_decay": 0.0}
    # tiny parameter sets for the shared test loop (the first one also runs the end-to-end job)
    test_params: ClassVar[list[dict[str, Any]]] = [{}]
    monitor: ClassVar[tuple[str, str]] = ("val/loss", "min")  # metric and direction for checkpoints/tuning
    output_columns: ClassVar[tuple[str, ...]] = ("score",)  # forward() keys returned by predict_frame
    ddp_unused_parameters: ClassVar[bool] = False  # True: some parameters may get no gradient in a step (DDP checks)

    def __init__(self, spec: FeatureSpec | Mapping, **hparams: Any):
        super().__init__()
        unknown = sorted(set(hparams) - set(self.defaults))
        if unknown:
            raise UnknownHyperParameterError(
                f"model '{self.name}' got unknown hyper-parameter(s) {unknown}; valid ones are {sorted(self.defaults)}"
            )
        spec_dict = spec.to_dict() if isinstance(spec, FeatureSpec) else to_primitive(dict(spec))
        self.spec = FeatureSpec.from_dict(spec_dict)
        merged = {**self.defaults, **to_primitive(hparams)}
        self.save_hyperparameters({"spec": spec_dict, **merged})
        self.preprocessor: Preprocessor | None = None
        self.drift_reference: dict | None = None  # training data profile for drift monitoring (serving/drift.py)
        self._batch_checked = False
        self._train_sums: torch.Tensor | None = None
        self._train_rows = 0
        self._train_keys: list[str] = []

    # --- to implement -------------------------------------------------------------------
    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def compute_loss(self, batch, out) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def datamodule_options(cls, params: dict[str, Any]) -> dict[str, Any]:
        """PromoDataModule arguments implied by the hyper-parameters (e.g. the sequence length); default none."""
        return {}

    @classmethod
    def hparams_from_data(cls, datamodule) -> dict[str, Any]:
        """Hyper-parameters derived from the training data (e.g. class weights); default none."""
        return {}

    @classmethod
    def from_datamodule(cls, dm, **params: Any) -> "PromoModel":
        """The one way to build a model for training: the datamodule's spec, the hyper-parameters derived from
        its training data overridden by ``params``, and its preprocessor attached (for scoring raw frames)."""
        model = cls(dm.spec, **{**cls.hparams_from_data(dm), **params})
        model.preprocessor = getattr(dm, "preprocessor", None)
        return model

    # --- training loop ------------------------------------------------------------------
    def _step(self, batch, stage: str) -> torch.Tensor:
        if not self._batch_checked:
            validate_batch(batch, self.spec, self.required_keys)
            self._batch_checked = True
        out = self(batch)
        losses = self.compute_loss(batch, out)
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"model '{self.name}': {stage} loss became {loss.item()} at epoch {self.current_epoch}; "
                "lower the learning rate or check the inputs"
            )
        bs = len(batch[self.required_keys[0]])
        if stage == "train":
            self._accumulate_train_losses(losses, bs)
        else:
            for key, value in losses.items():
                self.log(f"{stage}/{key}", value, on_step=False, on_epoch=True, prog_bar=key == "loss", batch_size=bs,
                         sync_dist=True)  # row-weighted mean over every DDP rank's rows (a no-op in one process)
        self.update_metrics(batch, out, stage)
        return loss

    # Lightning's self.log costs ~1 ms per call (it deep-copies metric state to the value's device),
    # which made training 1.5x slower than a bare loop (benchmarks/trainer_overhead.py). Training
    # losses are therefore summed here and logged once per epoch as the same row-weighted means.
    def _accumulate_train_losses(self, losses: dict[str, torch.Tensor], rows: int) -> None:
        values = torch.stack([v.detach().float() for v in losses.values()]) * rows
        if self._train_sums is None:
            self._train_sums, self._train_rows = torch.zeros_like(values), 0
        self._train_sums += values
        self._train_rows += rows
        self._train_keys = list(losses)

    def on_train_epoch_start(self) -> None:
        self._train_sums, self._train_rows = None, 0

    def on_train_epoch_end(self) -> None:
        if self._train_sums is not None and self._train_rows:
            sums, rows = self._train_sums, torch.tensor(float(self._train_rows), device=self._train_sums.device)
            if self.trainer.world_size > 1:  # the mean over the rows of every DDP rank
                sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
                rows = self.trainer.strategy.reduce(rows, reduce_op="sum")
            means = (sums / rows).tolist()
            for key, value in zip(self._train_keys, means):
                self.log(f"train/{key}", value, prog_bar=key == "loss", sync_dist=True)  # equal on every rank already

    def update_metrics(self, batch, out, stage: str) -> None:
        """Hook for torchmetrics objects; log them as ``{stage}/<name>``."""

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return self(batch)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    # --- checkpoints --------------------------------------------------------------------
    def checkpoint_meta(self) -> dict[str, Any]:
        from deepromo import __version__

        hparams = {k: v for k, v in self.hparams.items() if k != "spec"}
        return {
            "model": self.name,
            "spec": self.hparams["spec"],
            "hparams": to_primitive(hparams),
            "preprocessor": None if self.preprocessor is None else self.preprocessor.to_json(),
            "drift_reference": None if self.drift_reference is None else json.dumps(self.drift_reference),
            "deepromo_version": __version__,
        }

    def signed_meta(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """``checkpoint_meta()`` plus the content hash of it and ``state_dict`` (checked on load)."""
        meta = self.checkpoint_meta()
        meta[HASH_KEY] = checkpoint_content_hash(meta, state_dict)
        return meta

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = self.signed_meta(checkpoint["state_dict"])

    def save(self, path) -> None:
        """A lean checkpoint (no optimizer or trainer state) that ``deepromo.load_model`` reads."""
        state = self.state_dict()
        torch.save({CHECKPOINT_KEY: self.signed_meta(state), "state_dict": state}, path)

    # --- inference ----------------------------------------------------------------------
    predict_batch_size: ClassVar[int] = 65536  # rows per forward pass at inference (sequence models use fewer)

    @torch.inference_mode()
    def predict_arrays(self, tensors: Mapping[str, torch.Tensor], batch_size: int | None = None) -> dict[str, np.ndarray]:
        """Run forward over row-aligned tensors in chunks; returns ``output_columns`` as numpy arrays.

        With event sequences the rows go through in length order (less padding per chunk) and the
        outputs come back in the input order.
        """
        was_training = self.training
        self.eval()
        batch_size = min(int(batch_size or self.predict_batch_size), self.predict_batch_size)
        n = len(next(iter(tensors.values())))
        order = None
        if "seq_mask" in tensors:
            order = torch.argsort(tensors["seq_mask"].sum(dim=1), stable=True)
        chunks: dict[str, list[np.ndarray]] = {k: [] for k in self.output_columns}
        for start in range(0, n, batch_size):
            rows = slice(start, start + batch_size) if order is None else order[start:start + batch_size]
            batch = {k: v[rows].to(self.device) for k, v in tensors.items()}
            out = self(batch)
            for k in self.output_columns:
                chunks[k].append(out[k].float().cpu().numpy())
        self.train(was_training)
        result = {k: np.concatenate(v) if v else np.zeros(0, dtype=np.float32) for k, v in chunks.items()}
        if order is not None:
            inverse = np.empty(n, dtype=np.int64)
            inverse[order.numpy()] = np.arange(n)
            result = {k: v[inverse] for k, v in result.items()}
        return result

    def predict_split(self, dm, split: str = "test") -> dict[str, np.ndarray]:
        """Output arrays on the rows of one split of the datamodule (what the model's task scores)."""
        rows = torch.as_tensor(dm.indices[split])
        return self.predict_arrays({k: v[rows] for k, v in dm.tensors.items()})

    def extra_outputs(self, dm, run_dir) -> dict:
        """Model-specific files written into ``run_dir`` after evaluation (e.g. explanations): ``{name: path}``."""
        return {}

    def predict_frame(self, df: pd.DataFrame, batch_size: int | None = None, **context) -> pd.DataFrame:
        """Score raw feature columns: DataFrame in, DataFrame of ``frame_columns()`` out (same index).

        context: what a model reads beyond the frame (sequence models: ``events``, ``as_of``), passed to
        ``frame_inputs``. Non-finite outputs are refused, naming the column and the first row.
        """
        self.require_frame(df)
        frame = self.output_frame(self.predict_arrays(self.frame_tensors(df, **context), batch_size), df.index)
        check_finite_outputs(frame, self.name)
        return frame

    def require_frame(self, df) -> None:
        """Refuse anything but a DataFrame (a numpy array, dict or list) as ``predict_frame`` input, saying what
        it expects."""
        if not isinstance(df, pd.DataFrame):
            columns = self.input_columns()
            raise DataValidationError(f"model '{self.name}': predict_frame expects a pandas DataFrame with the columns "
                                      f"{columns[:6]}{' ...' if len(columns) > 6 else ''}; got a "
                                      f"{type(df).__name__} (wrap it in pd.DataFrame with those column names)")

    def frame_tensors(self, df: pd.DataFrame, **context) -> dict[str, torch.Tensor]:
        """The model's input tensors for raw rows: preprocessed features plus ``frame_inputs``."""
        if self.preprocessor is None:
            raise RuntimeError(f"model '{self.name}' has no preprocessor attached; train it or load a checkpoint")
        cat, num = self.preprocessor.transform(df)
        tensors = {"cat": torch.from_numpy(cat), "num": torch.from_numpy(num)}
        tensors.update(self.frame_inputs(df, **context))
        return tensors

    def frame_columns(self) -> list[str]:
        """The columns ``predict_frame`` returns (default: ``output_columns``)."""
        return list(self.output_columns)

    def output_frame(self, arrays: dict[str, np.ndarray], index=None) -> pd.DataFrame:
        """``predict_arrays`` output as a DataFrame of ``frame_columns()`` (a model with [n, k] outputs names
        their columns by overriding both)."""
        return pd.DataFrame({k: arrays[k] for k in self.frame_columns()}, index=index)

    def input_columns(self) -> list[str]:
        """The raw columns ``predict_frame`` reads (the preprocessor's feature columns)."""
        if self.preprocessor is None:
            raise UserInputError(f"model '{self.name}' has no preprocessor attached; it cannot score raw columns")
        return list(self.preprocessor.columns)

    def frame_inputs(self, df: pd.DataFrame) -> dict[str, torch.Tensor]:
        """Extra non-feature inputs read from a raw frame (e.g. the treatment, or event sequences); default none."""
        return {}

    def example_frame(self, view, rows: int = 5) -> pd.DataFrame:
        """A few rows of what ``predict_frame`` reads (the registry's input example): the feature columns."""
        return view.frame[self.preprocessor.columns].head(rows)
