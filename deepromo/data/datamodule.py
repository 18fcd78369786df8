"""PromoDataModule: a TaskView -> train/val/test PromoBatches.

Splits 70/15/15 (stratified on the view's label, or by time: oldest rows train, newest test; views
whose rows carry their own label window are cut at whole prediction times with a leak-free gap), fits
the Preprocessor on the training rows only, and serves whole batches by fancy indexing pre-built tensors
(no per-row collate: an epoch over 1M rows costs a few ms of indexing).
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from deepromo.data.batch import PromoBatch, validate_batch
from deepromo.data.errors import UserInputError
from deepromo.data.preprocess import Preprocessor
from deepromo.data.sequences import EventEncoder, pad_sequences
from deepromo.data.spec import FeatureSpec, LabelSpec, TreatmentSpec
from deepromo.data.tables import DataValidationError
from deepromo.data.views import LABEL_END_COLUMN, TaskView

SPLITS = ("stratified", "time", "random")


class TensorDictDataset(Dataset):
    """Rows of a dict of equally long tensors; ``dataset[list_of_rows]`` returns a whole PromoBatch."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        lengths = {k: len(v) for k, v in tensors.items()}
        if len(set(lengths.values())) > 1:
            raise UserInputError(f"tensors have different lengths: {lengths}")
        self.tensors = tensors
        self.n = next(iter(lengths.values())) if lengths else 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index) -> PromoBatch:
        index = torch.as_tensor(index, dtype=torch.long)
        return {k: v[index] for k, v in self.tensors.items()}


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process in a running ``torch.distributed`` group (Lightning DDP); (0, 1) outside."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_batches(batches: list, rank: int, world: int) -> list:
    """Rank ``rank``'s share of ``batches`` (every rank passes the same list): batch ``i`` goes to rank ``i % world``.

    DDP needs the same number of steps on every rank, so while the count is not a multiple of ``world`` the largest
    batch is cut in two: no row is dropped or repeated (a DistributedSampler pads with repeats or drops the tail).
    """
    if world == 1:
        return batches
    batches = list(batches)
    while len(batches) % world:
        largest = max(range(len(batches)), key=lambda i: len(batches[i]))
        rows = batches[largest]
        if len(rows) < 2:
            raise UserInputError(f"{sum(map(len, batches))} rows cannot be shared by {world} processes; "
                                 f"use fewer devices or more data")
        batches[largest:largest + 1] = [rows[:len(rows) // 2], rows[len(rows) // 2:]]
    return batches[rank::world]


def sharded_count(n_batches: int, world: int) -> int:
    """Batches per rank from ``n_batches`` global ones (:func:`shard_batches`)."""
    return -(-n_batches // world)


class EvalBatches:
    """A fixed list of evaluation batches (row lists, ranges or index arrays), each rank of a DDP run taking its
    :func:`shard_batches` share."""

    def __init__(self, batches: list):
        self.batches = batches

    def __len__(self) -> int:
        return sharded_count(len(self.batches), process_rank()[1])

    def __iter__(self):
        yield from shard_batches(self.batches, *process_rank())


class EpochSeededBatches:
    """Base of the training batch samplers: epoch ``e`` draws its order from ``default_rng([seed, e])``, so a run
    resumed at epoch ``e`` sees the same batches as an uninterrupted one. Lightning calls ``set_epoch`` at the
    start of every epoch; without it, each pass moves on to the next epoch's order.

    Under DDP every rank draws the same global batches and keeps its :func:`shard_batches` share, so an epoch
    covers every row exactly once across the ranks (``len`` is the per-rank count)."""

    def __init__(self, seed: int = 0, on_epoch=None):
        self.seed, self.epoch, self.on_epoch = int(seed), 0, on_epoch  # on_epoch(epoch): reseed other samplers

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if self.on_epoch is not None:
            self.on_epoch(self.epoch)

    def next_rng(self) -> np.random.Generator:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        return rng


class ShuffledBatches(EpochSeededBatches):
    """Batches of ``batch_size`` rows of a shuffled order of ``n`` rows; every row once per epoch."""

    def __init__(self, n: int, batch_size: int, seed: int = 0, on_epoch=None):
        super().__init__(seed, on_epoch)
        self.n, self.batch_size = int(n), int(batch_size)

    def __len__(self) -> int:
        return sharded_count(-(-self.n // self.batch_size), process_rank()[1])

    def __iter__(self):
        order = self.next_rng().permutation(self.n)
        batches = [order[start:start + self.batch_size].tolist() for start in range(0, self.n, self.batch_size)]
        yield from shard_batches(batches, *process_rank())


class LengthBucketBatchSampler(EpochSeededBatches):
    """Shuffled batches of rows with similar sequence lengths (sequence models pay for the longest row).

    Each epoch: shuffle all rows, cut them into pools of ``pool_batches`` batches, sort each pool by length,
    cut it into batches and shuffle the batch order. Every row is used once per epoch.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int = 0, pool_batches: int = 50):
        super().__init__(seed)
        self.lengths = np.asarray(lengths)
        self.batch_size = int(batch_size)
        self.pool = self.batch_size * int(pool_batches)

    def __len__(self) -> int:
        batches = sum(-(-min(self.pool, len(self.lengths) - a) // self.batch_size)
                      for a in range(0, len(self.lengths), self.pool))
        return sharded_count(batches, process_rank()[1])

    def __iter__(self):
        rng = self.next_rng()
        perm = rng.permutation(len(self.lengths))
        batches = []
        for a in range(0, len(perm), self.pool):
            pool = perm[a:a + self.pool]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches += [pool[b:b + self.batch_size].tolist() for b in range(0, len(pool), self.batch_size)]
        yield from shard_batches([batches[i] for i in rng.permutation(len(batches))], *process_rank())


def batch_loader(dataset: TensorDictDataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """A DataLoader that yields whole batches (the sampler hands the dataset lists of rows).

    With event sequences, training batches group rows of similar length and evaluation batches go
    through the rows in length order: the same rows and results, far less padding to compute.
    """
    if "seq_mask" in dataset.tensors:
        lengths = dataset.tensors["seq_mask"].sum(dim=1).numpy()
        if shuffle:
            sampler = LengthBucketBatchSampler(lengths, batch_size, seed)
        else:
            order = np.argsort(lengths, kind="stable")
            sampler = EvalBatches([order[a:a + batch_size] for a in range(0, len(order), batch_size)])
        return DataLoader(dataset, sampler=sampler, batch_size=None)
    if shuffle:
        return DataLoader(dataset, sampler=ShuffledBatches(len(dataset), batch_size, seed), batch_size=None)
    n = len(dataset)
    sequential = [range(a, min(a + batch_size, n)) for a in range(0, n, batch_size)]
    return DataLoader(dataset, sampler=EvalBatches(sequential), batch_size=None)


def split_indices(
    view: TaskView, split: str | None = "stratified", val_share: float = 0.15, test_share: float = 0.15,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Row indices of train/val/test. ``time`` orders rows by ``view.time_column`` (oldest -> train).

    Views whose rows carry a label window (a ``label_end`` column: rolling prediction points, per-row as_of)
    are split by time at whole prediction times (:func:`time_split_with_gap`). When a customer has several
    rows (rolling points) only that split is leak-free, so ``stratified`` / ``random`` are refused; ``None``
    picks ``time`` for such views and ``stratified`` otherwise.
    """
    n = len(view)
    gapped = LABEL_END_COLUMN in view.frame.columns and view.time_column is not None
    repeated = view.id_column in view.frame.columns and view.frame[view.id_column].duplicated().any()
    if split is None:
        split = "time" if repeated else "stratified"
    if split not in SPLITS:
        raise UserInputError(f"unknown split '{split}'; expected one of {SPLITS}")
    if not (0 < val_share < 1 and 0 < test_share < 1 and val_share + test_share < 1):
        raise UserInputError(f"val_share={val_share} and test_share={test_share} must be in (0, 1) with a sum < 1")
    if repeated and split != "time":
        raise DataValidationError(
            f"data.split={split!r} on view '{view.name}', whose {view.id_column} repeats (one row per customer and "
            f"prediction time): the same customer's neighbouring weeks would land in train and test and training "
            f"labels would see the test period. Use data.split=time")
    idx = np.arange(n)
    if split == "time":
        if view.time_column is None:
            raise UserInputError(f"split='time' needs a time column, and view '{view.name}' has none")
        if gapped:
            return time_split_with_gap(view.frame[view.time_column].to_numpy(dtype=np.float64),
                                       view.frame[LABEL_END_COLUMN].to_numpy(dtype=np.float64), val_share,
                                       test_share)
        order = np.argsort(view.frame[view.time_column].to_numpy(), kind="stable")
        n_test, n_val = int(round(n * test_share)), int(round(n * val_share))
        n_train = n - n_val - n_test
        return {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    from sklearn.model_selection import train_test_split

    strat = view.frame[view.stratify].to_numpy() if (split == "stratified" and view.stratify) else None
    try:
        train, rest = train_test_split(idx, test_size=val_share + test_share, random_state=seed, stratify=strat)
        strat_rest = strat[rest] if strat is not None else None
        val, test = train_test_split(
            rest, test_size=test_share / (val_share + test_share), random_state=seed, stratify=strat_rest
        )
    except ValueError as exc:
        raise DataValidationError(
            f"cannot make a stratified split of {n} rows on '{view.stratify}': {exc}. "
            "Use more data or data.split=random"
        ) from None
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def time_split_with_gap(as_of: np.ndarray, label_end: np.ndarray, val_share: float = 0.15,
                        test_share: float = 0.15) -> dict[str, np.ndarray]:
    """Train / val / test by prediction time, cut between whole prediction times, with no label leaking ahead.

    as_of, label_end: ``[n]`` days, each row's prediction time and the (exclusive) end of its label window.
    Test = the latest prediction times, about ``test_share`` of the rows. Val = the latest times before the first
    test time ``t_test`` whose label windows end by ``t_test``, about ``val_share`` of the rows. Train = the
    rows whose label windows end by the first val time ``t_val``. So no training label sees the val or test
    period and no val label the test period. Rows whose window crosses a cut are in no split: none when the
    horizon is at most the grid step (~70/15/15), about ``horizon / step - 1`` prediction times per cut
    otherwise (taken from train and from the times between val and test). Shares are rounded to whole times.
    Returns time-ordered row positions per split.
    """
    as_of, label_end = np.asarray(as_of, np.float64), np.asarray(label_end, np.float64)
    times, counts = np.unique(as_of, return_counts=True)
    if times.size < 3:
        raise DataValidationError(f"a time split needs at least 3 distinct prediction times, got {times.size} "
                                  f"({times.tolist()})")
    n = len(as_of)
    at_or_after = np.cumsum(counts[::-1])[::-1]  # rows at or after each time
    i_test = 2 + int(np.argmin(np.abs(at_or_after[2:] - n * test_share)))
    t_test = times[i_test]
    fits = np.sort(as_of[label_end <= t_test])  # prediction times of rows that may go to val
    candidates = times[1:i_test]
    n_val = fits.size - np.searchsorted(fits, candidates, side="left")
    n_train = np.searchsorted(np.sort(label_end), candidates, side="right")
    usable = (n_val > 0) & (n_train > 0)
    if not usable.any():
        raise DataValidationError(
            f"the time split leaves no train or val rows: with test from day {t_test:g}, every earlier label window "
            f"(up to {float(np.max(label_end - as_of)):g} days) reaches into the next split; use a shorter "
            f"horizon_days, more prediction times or a smaller test_share")
    t_val = candidates[np.flatnonzero(usable)[np.argmin(np.abs(n_val[usable] - n * val_share))]]
    masks = {"train": label_end <= t_val,
             "val": (as_of >= t_val) & (as_of < t_test) & (label_end <= t_test),
             "test": as_of >= t_test}
    out = {}
    for name, mask in masks.items():
        rows = np.flatnonzero(mask)
        out[name] = rows[np.argsort(as_of[rows], kind="stable")]
    return out


MAX_DISCRETE_LEVELS = 32  # a treatment without declared levels and more distinct values than this is continuous


def treatment_levels(view: TaskView, values: np.ndarray) -> tuple[float, ...] | None:
    """The treatment's discrete levels: the source's (``view.treatment_levels``, checked against the logged
    values), else the distinct logged values when there are at most ``MAX_DISCRETE_LEVELS``, else None."""
    col = view.extras["treatment"]
    if not np.any(values == 0):
        raise DataValidationError(
            f"column '{col}' has no control row (incentive 0 / the control arm): its lowest value is "
            f"{float(np.min(values)):g}; uplift and response curves are measured against customers who got no "
            f"incentive, so the data must include some")
    if view.treatment_levels is not None:
        unexpected = np.setdiff1d(np.unique(values), np.asarray(view.treatment_levels, dtype=np.float64))
        if len(unexpected):
            raise DataValidationError(f"column '{col}' holds incentive value(s) {unexpected[:5].tolist()} that are "
                                      f"not among the source's incentive levels {list(view.treatment_levels)}")
        return tuple(float(v) for v in view.treatment_levels)
    distinct = np.unique(values)
    return tuple(float(v) for v in distinct) if len(distinct) <= MAX_DISCRETE_LEVELS else None


class PromoDataModule(pl.LightningDataModule):
    """Serves a TaskView as PromoBatches.

    view: the task view. batch_size: rows per batch. split: "stratified" | "time" | "random".
    preprocessor: a fitted Preprocessor to reuse (else one is fitted on the training rows).
    sequence_length: events kept per customer (the newest ones) when the view has event sequences.
    """

    def __init__(
        self,
        view: TaskView,
        batch_size: int = 512,
        split: str | None = None,
        val_share: float = 0.15,
        test_share: float = 0.15,
        seed: int = 0,
        preprocessor: Preprocessor | None = None,
        sequence_length: int = 256,
    ):
        super().__init__()
        self.view = view
        self.batch_size = int(batch_size)
        self.split = split
        self.val_share = val_share
        self.test_share = test_share
        self.seed = seed
        self.preprocessor = preprocessor
        self.sequence_length = int(sequence_length)
        self.indices: dict[str, np.ndarray] = {}
        self.tensors: dict[str, torch.Tensor] = {}
        self._spec: FeatureSpec | None = None
        self.check_labels()

    def check_labels(self) -> None:
        """Fail before training when a target is missing, non-finite or has a single class."""
        frame = self.view.frame
        if len(frame) == 0:
            raise DataValidationError(f"view '{self.view.name}' is empty (0 rows)")
        for key, col in {**self.view.targets, **self.view.extras}.items():
            if col not in frame.columns:
                raise DataValidationError(f"view '{self.view.name}' lacks column '{col}' (needed for '{key}')")
            values = frame[col].to_numpy(dtype=np.float64)
            if not np.isfinite(values).all():
                raise DataValidationError(f"column '{col}' has NaN/inf values; expected finite numbers")
        for key, col in self.view.targets.items():
            classes = np.unique(frame[col].to_numpy())
            if len(classes) < 2:
                raise DataValidationError(
                    f"label column '{col}' has a single class ({classes.tolist()}); a classifier needs at least two"
                )

    def setup(self, stage: str | None = None) -> None:
        if self.tensors:
            return
        self.indices = split_indices(self.view, self.split, self.val_share, self.test_share, self.seed)
        if self.preprocessor is None:
            self.preprocessor = Preprocessor(self.view.categorical, self.view.numeric, self.view.log_columns)
            self.preprocessor.fit(self.view.frame.iloc[self.indices["train"]])
        cat, num = self.preprocessor.transform(self.view.frame)
        frame = self.view.frame
        tensors = {"cat": torch.from_numpy(cat), "num": torch.from_numpy(num)}
        for key, col in {**self.view.targets, **self.view.extras}.items():
            dtype = torch.long if key == "y_class" else torch.float32
            tensors[key] = torch.tensor(frame[col].to_numpy(), dtype=dtype)
        tensors["row_id"] = torch.arange(len(frame), dtype=torch.long)
        if self.view.sequences is not None:
            tensors.update(self.sequence_tensors())
        self.tensors = tensors
        validate_batch({k: v[:2] for k, v in tensors.items()}, self.spec)

    def sequence_tensors(self) -> dict[str, torch.Tensor]:
        """Padded ``seq_*`` tensors of every row; the event vocabularies come from training rows only."""
        seqs = self.view.sequences
        if self.preprocessor.events is None:
            in_train = np.zeros(len(seqs), dtype=bool)
            in_train[self.indices["train"]] = True
            train_events = seqs.events.loc[np.repeat(in_train, seqs.lengths())]
            self.preprocessor.events = EventEncoder(self.sequence_length).fit(train_events)
        padded = pad_sequences(seqs, self.preprocessor.events)
        return {k: torch.from_numpy(v) for k, v in padded.items()}

    @property
    def spec(self) -> FeatureSpec:
        if self._spec is None:
            if self.preprocessor is None or not self.preprocessor.fitted:
                self.setup()
            labels = tuple(
                LabelSpec(col, "multiclass" if key == "y_class" else "binary", tuple(self.view.label_classes.get(col, ())))
                for key, col in self.view.targets.items()
            )
            treatment = None
            if "treatment" in self.view.extras:
                col = self.view.extras["treatment"]
                values = self.view.frame[col].to_numpy(dtype=np.float64)
                treatment = TreatmentSpec(col, levels=treatment_levels(self.view, values),
                                          low=float(values.min()), high=float(values.max()),
                                          arms=self.view.treatment_arms)
            self._spec = FeatureSpec(
                categorical=self.preprocessor.categorical_features(),
                numeric=self.preprocessor.numeric_features(),
                sequence=self.preprocessor.events.features() if self.preprocessor.events is not None else (),
                treatment=treatment,
                labels=labels,
            )
        return self._spec

    def subset(self, name: str) -> TensorDictDataset:
        self.setup()
        rows = torch.as_tensor(self.indices[name], dtype=torch.long)
        return TensorDictDataset({k: v[rows] for k, v in self.tensors.items()})

    def train_dataloader(self) -> DataLoader:
        return batch_loader(self.subset("train"), self.batch_size, shuffle=True, seed=self.seed)

    def val_dataloader(self) -> DataLoader:
        return batch_loader(self.subset("val"), self.batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return batch_loader(self.subset("test"), self.batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def class_weights(self, target: str = "y_class") -> list[float]:
        """Inverse-frequency weights of the training rows' classes, normalised to mean 1."""
        self.setup()
        y = self.tensors[target][torch.as_tensor(self.indices["train"])].long()
        counts = torch.bincount(y, minlength=int(y.max()) + 1).double().clamp(min=1)
        w = counts.sum() / (len(counts) * counts)
        return [float(v) for v in w]
