"""PromoBatch: the dict-of-tensors contract between data and models, and its validator.

Keys (B = batch size, L = sequence length):

=============  ===============  =======  =============================================
key            shape            dtype    meaning
=============  ===============  =======  =============================================
cat            [B, Nc]          int64    static categorical indices (0 = unknown)
num            [B, Nn]          float32  standardised static numeric features
seq_cat        [B, L, Ns]       int64    per-event categorical indices (0 = padding)
seq_num        [B, L, Nq]       float32  per-event numeric features
seq_mask       [B, L]           bool     True where an event is present
seq_dt         [B, L]           float32  days between the event and the prediction time
treatment      [B]              float32  incentive level actually logged
propensity     [B]              float32  probability of the logged treatment, in (0, 1]
y              [B]              float32  binary target in {0, 1}
y_class        [B]              int64    class index of a multiclass target
weight         [B]              float32  sample weight >= 0
row_id         [B]              int64    row index into the task view (for joining predictions)
=============  ===============  =======  =============================================

Nc, Nn, Ns, Nq come from the FeatureSpec. A model declares the keys it needs
(``required_keys``) and :func:`validate_batch` checks them before the first step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from deepromo.data.errors import UserInputError
from deepromo.data.spec import FeatureSpec

PromoBatch = dict  # dict[str, torch.Tensor]

# key -> (dims, dtype). Dims are symbolic names resolved against the spec/batch.
BATCH_KEYS: dict[str, tuple[tuple[str, ...], torch.dtype]] = {
    "cat": (("B", "Nc"), torch.long),
    "num": (("B", "Nn"), torch.float32),
    "seq_cat": (("B", "L", "Ns"), torch.long),
    "seq_num": (("B", "L", "Nq"), torch.float32),
    "seq_mask": (("B", "L"), torch.bool),
    "seq_dt": (("B", "L"), torch.float32),
    "treatment": (("B",), torch.float32),
    "propensity": (("B",), torch.float32),
    "y": (("B",), torch.float32),
    "y_class": (("B",), torch.long),
    "weight": (("B",), torch.float32),
    "row_id": (("B",), torch.long),
}


class BatchValidationError(UserInputError):
    """A batch does not match the PromoBatch contract; the message names the key."""


def _spec_dims(spec: FeatureSpec | None) -> dict[str, int]:
    if spec is None:
        return {}
    dims = {"Nc": spec.n_categorical, "Nn": spec.n_numeric}
    if spec.sequence:
        dims["Ns"] = sum(1 for s in spec.sequence if s.kind == "categorical")
        dims["Nq"] = sum(1 for s in spec.sequence if s.kind == "numeric")
    return dims


def validate_batch(batch: Mapping, spec: FeatureSpec | None = None, required: Iterable[str] = ()) -> None:
    """Check keys, ranks, dtypes, consistent sizes, index ranges and finiteness.

    Raises BatchValidationError naming the key with expected and actual shape/dtype.
    """
    missing = [k for k in required if k not in batch]
    if missing:
        raise BatchValidationError(
            f"batch lacks required key(s) {missing}; it has {sorted(batch)} "
            f"(expected keys and shapes: { {k: BATCH_KEYS[k][0] for k in missing if k in BATCH_KEYS} })"
        )
    dims: dict[str, int] = dict(_spec_dims(spec))
    for key, value in batch.items():
        if key not in BATCH_KEYS:
            continue
        want_dims, want_dtype = BATCH_KEYS[key]
        if not isinstance(value, torch.Tensor):
            raise BatchValidationError(f"batch['{key}'] must be a torch.Tensor, got {type(value).__name__}")
        if value.dtype != want_dtype:
            raise BatchValidationError(f"batch['{key}'] must have dtype {want_dtype}, got {value.dtype}")
        if value.dim() != len(want_dims):
            raise BatchValidationError(
                f"batch['{key}'] must have shape {list(want_dims)}, got {list(value.shape)} ({value.dim()} dims)"
            )
        for name, size in zip(want_dims, value.shape):
            expected = dims.setdefault(name, int(size))
            if expected != size:
                raise BatchValidationError(
                    f"batch['{key}'] has shape {list(value.shape)}: dimension {name} is {size}, expected {expected} "
                    f"(shape {list(want_dims)} with {name}={expected})"
                )
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise BatchValidationError(f"batch['{key}'] contains NaN or inf values")
    if spec is not None and "cat" in batch and spec.categorical:
        cards = torch.tensor([c.cardinality for c in spec.categorical], device=batch["cat"].device)
        bad = (batch["cat"] < 0) | (batch["cat"] >= cards)
        if bad.any():
            col = int(bad.any(dim=0).nonzero()[0])
            feat = spec.categorical[col]
            raise BatchValidationError(
                f"batch['cat'] column {col} ('{feat.name}') has index outside [0, {feat.cardinality})"
            )
    if "propensity" in batch:
        p = batch["propensity"]
        if ((p <= 0) | (p > 1)).any():
            raise BatchValidationError("batch['propensity'] must lie in (0, 1]")
    if "y" in batch:
        y = batch["y"]
        if ((y != 0) & (y != 1)).any():
            raise BatchValidationError("batch['y'] must contain only 0 and 1")
