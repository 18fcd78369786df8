"""Behaviour sequences: raw events -> per-event features -> padded PromoBatch tensors.

``EventEncoder`` is the sequence counterpart of the Preprocessor: vocabularies (0 = padding/unknown)
for the per-event categorical columns and fixed per-event numeric features, saved as JSON inside the
Preprocessor (so checkpoints stay primitive). Per event:

    seq_cat  event_type, category                      (vocabulary index + 1; 0 = padding / unseen)
    seq_num  log1p(amount), log1p(gap to the customer's previous event, days), promo_active,
             sin / cos of the hour of day (ts is in days, so the hour is the fractional part x 24)

No feature depends on the prediction time, so a streaming scorer can encode new events once and
cache their hidden states; the time since each event is the separate ``seq_dt`` key.
``pad_sequences`` right-aligns each customer's last ``max_len`` events (the newest event is always at
position L-1; padding on the left), which the Transformer-XL segments and the RNN baselines share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from deepromo.data.encoding import encode, fit_vocabulary
from deepromo.data.errors import UserInputError
from deepromo.data.features import history_pairs
from deepromo.data.spec import SequenceFeature
from deepromo.data.tables import DataValidationError

SEQ_CATEGORICAL = ("event_type", "category")
SEQ_NUMERIC = ("log_amount", "log_gap_days", "promo_active", "hour_sin", "hour_cos")
EVENT_COLUMNS = ("customer_id", "ts", "event_type", "amount")  # required; category and promo_active optional


@dataclass
class EventSequences:
    """Ragged event sequences row-aligned with a view: events of row i are ``events.iloc[offsets[i]:offsets[i+1]]``.

    events: the events before ``as_of`` of the view's rows, sorted by (row, ts); an event of a customer with
    several rows (several prediction times) appears once in each of those rows' histories.
    offsets: ``[n + 1]`` int64. as_of: the prediction time in days, one value or one per row.
    source: when rows share a customer's events, those events once each (what a scorer regroups, with the
    per-row ``as_of``); None when ``events`` already holds every event once.
    """

    events: pd.DataFrame
    offsets: np.ndarray
    as_of: float | np.ndarray
    source: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def distinct_events(self) -> pd.DataFrame:
        """Every event of these histories once (``source``, else ``events``): the ``events`` a scorer takes."""
        return self.events if self.source is None else self.source

    def take(self, rows) -> "EventSequences":
        """The sequences of ``rows`` (positions, in that order; repeats allowed), without regrouping."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths()[rows]
        starts = self.offsets[:-1][rows]
        within = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        events = self.events.iloc[np.repeat(starts, lengths) + within].reset_index(drop=True)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        as_of = self.as_of if np.ndim(self.as_of) == 0 else np.asarray(self.as_of)[rows]
        return EventSequences(events, offsets, as_of, self.source)


def check_events(events: pd.DataFrame, what: str = "events") -> None:
    """Required columns present, ts finite, amounts finite and >= 0: else a DataValidationError naming them."""
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise DataValidationError(f"{what} lacks required column(s) {missing}; expected columns {list(EVENT_COLUMNS)}")
    for col in ("ts", "amount"):
        x = pd.to_numeric(events[col], errors="coerce").to_numpy(dtype=np.float64)
        if not np.isfinite(x).all():
            raise DataValidationError(f"column '{what}.{col}' has NaN/inf or non-numeric values; expected finite numbers")
        if col == "amount" and (x < 0).any():
            raise DataValidationError(f"column '{what}.amount' has negative values; expected amounts >= 0")


def group_events(events: pd.DataFrame, customer_ids, as_of) -> EventSequences:
    """The events with ``ts < as_of`` of each of ``customer_ids`` (in that order), sorted by time.

    as_of: the prediction time in days, a scalar or one value per row. customer_ids may repeat (one customer
    at several prediction times): each row then holds its own history, and ``source`` the events once.
    """
    check_events(events)
    ids = np.asarray(customer_ids)
    as_of = float(as_of) if np.ndim(as_of) == 0 else np.asarray(as_of, dtype=np.float64)
    rows, picked = history_pairs(events["customer_id"].to_numpy(), events["ts"].to_numpy(dtype=np.float64), ids,
                                 as_of)
    kept = events.iloc[picked].reset_index(drop=True)
    counts = np.bincount(rows, minlength=len(ids))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    source = None if pd.Index(ids).is_unique else events.iloc[np.unique(picked)].reset_index(drop=True)
    return EventSequences(kept, offsets, as_of, source)


class EventEncoder:
    """Per-event features of sorted events. Vocabularies are fitted on training customers' events only."""

    def __init__(self, max_len: int = 256):
        if int(max_len) < 1:
            raise UserInputError(f"max_len must be >= 1, got {max_len}")
        self.max_len = int(max_len)
        self.vocab: dict[str, list[str]] = {}

    @property
    def fitted(self) -> bool:
        return len(self.vocab) == len(SEQ_CATEGORICAL)

    def fit(self, events: pd.DataFrame) -> "EventEncoder":
        for col in SEQ_CATEGORICAL:
            self.vocab[col] = fit_vocabulary(events[col]) if col in events.columns else []
        return self

    def features(self) -> tuple[SequenceFeature, ...]:
        cat = tuple(SequenceFeature(c, "categorical", self.max_len, len(self.vocab[c]) + 1) for c in SEQ_CATEGORICAL)
        return cat + tuple(SequenceFeature(c, "numeric", self.max_len) for c in SEQ_NUMERIC)

    def encode(self, events: pd.DataFrame, previous_ts: np.ndarray | None = None,
               first_of_customer: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(cat [E, 2] int64, num [E, 5] float32)`` for events sorted by customer then time.

        The gap of a customer's first event is measured from ``previous_ts`` (one value per event, NaN =
        no earlier event: gap 0) -- the streaming scorer passes its cached last timestamps here.
        first_of_customer: ``[E]`` bool marking each customer's first event (computed when None).
        """
        if not self.fitted:
            raise RuntimeError("EventEncoder.encode called before fit (or load)")
        n = len(events)
        cat = np.zeros((n, len(SEQ_CATEGORICAL)), dtype=np.int64)
        for j, col in enumerate(SEQ_CATEGORICAL):
            if col in events.columns:
                cat[:, j] = encode(events[col], self.vocab[col])
        ts = events["ts"].to_numpy(dtype=np.float64)
        if first_of_customer is None:
            cid = events["customer_id"].to_numpy()
            first_of_customer = np.ones(n, dtype=bool)
            first_of_customer[1:] = cid[1:] != cid[:-1]
        prev = np.empty(n)
        prev[1:] = ts[:-1]
        if n:  # the first row has no row before it, whatever the caller marked
            first_of_customer = np.asarray(first_of_customer, dtype=bool).copy()
            first_of_customer[0] = True
        prev[first_of_customer] = np.nan if previous_ts is None else np.asarray(previous_ts)[first_of_customer]
        gap = np.where(np.isnan(prev), 0.0, np.maximum(ts - np.nan_to_num(prev), 0.0))
        hour = 2 * np.pi * np.mod(ts, 1.0)
        promo = events["promo_active"].to_numpy(dtype=np.float64) if "promo_active" in events.columns else np.zeros(n)
        num = np.stack([
            np.log1p(events["amount"].to_numpy(dtype=np.float64)), np.log1p(gap), promo, np.sin(hour), np.cos(hour),
        ], axis=1).astype(np.float32)
        return cat, num

    def to_dict(self) -> dict:
        return {"max_len": self.max_len, "vocab": self.vocab}

    @classmethod
    def from_dict(cls, d: dict) -> "EventEncoder":
        enc = cls(d["max_len"])
        enc.vocab = {k: list(v) for k, v in d["vocab"].items()}
        return enc


def pad_sequences(seqs: EventSequences, encoder: EventEncoder, max_len: int | None = None) -> dict:
    """Right-aligned padded tensors of the last ``max_len`` events per row (newest event at L-1).

    Returns numpy arrays ``seq_cat [n, L, 2] int64, seq_num [n, L, 5] float32, seq_mask [n, L] bool,
    seq_dt [n, L] float32`` (days between each event and ``as_of``; 0 on padding).
    """
    L = int(max_len or encoder.max_len)
    n = len(seqs)
    cat_e, num_e = encoder.encode(seqs.events)
    lengths = seqs.lengths()
    # position of each event from the end of its row: 0 for the newest
    row = np.repeat(np.arange(n), lengths)
    from_end = seqs.offsets[1:][row] - 1 - np.arange(len(seqs.events))
    keep = from_end < L
    col = L - 1 - from_end[keep]
    out = {
        "seq_cat": np.zeros((n, L, cat_e.shape[1]), dtype=np.int64),
        "seq_num": np.zeros((n, L, num_e.shape[1]), dtype=np.float32),
        "seq_mask": np.zeros((n, L), dtype=bool),
        "seq_dt": np.zeros((n, L), dtype=np.float32),
    }
    r = row[keep]
    out["seq_cat"][r, col] = cat_e[keep]
    out["seq_num"][r, col] = num_e[keep]
    out["seq_mask"][r, col] = True
    as_of = seqs.as_of if np.ndim(seqs.as_of) == 0 else np.asarray(seqs.as_of)[r]
    out["seq_dt"][r, col] = (as_of - seqs.events["ts"].to_numpy(dtype=np.float64)[keep]).astype(np.float32)
    return out


HISTORY_COLUMN = "event_history"  # a flat table's per-customer events as a JSON list (pyfunc / registry input)
HISTORY_FIELDS = ("ts", "event_type", "category", "amount", "promo_active")


def events_to_history(seqs: EventSequences) -> list[str]:
    """Each row's events as a JSON list of ``{ts, event_type, category, amount, promo_active}`` objects."""
    import json

    ev = seqs.events
    cols = [c for c in HISTORY_FIELDS if c in ev.columns]
    records = pd.DataFrame({c: ev[c].astype(str) if c in SEQ_CATEGORICAL else ev[c].astype(float) for c in cols})
    values = records.to_dict("records")
    return [json.dumps(values[a:b]) for a, b in zip(seqs.offsets[:-1], seqs.offsets[1:])]


def history_to_events(frame: pd.DataFrame, id_column: str = "customer_id") -> pd.DataFrame:
    """The long events table encoded in ``frame[HISTORY_COLUMN]`` (the inverse of ``events_to_history``)."""
    import json

    if HISTORY_COLUMN not in frame.columns:
        raise DataValidationError(
            f"a sequence model needs each customer's events: pass events=<DataFrame> or a '{HISTORY_COLUMN}' "
            f"column holding a JSON list of {{{', '.join(HISTORY_FIELDS)}}} objects"
        )
    rows = []
    for cid, text in zip(frame[id_column].to_numpy(), frame[HISTORY_COLUMN].to_numpy()):
        try:
            items = json.loads(text) if isinstance(text, str) else list(text)
        except (TypeError, ValueError) as exc:
            raise DataValidationError(f"column '{HISTORY_COLUMN}' of customer {cid} is not a JSON list: {exc}") from None
        rows.extend({id_column: cid, **item} for item in items)
    events = pd.DataFrame(rows, columns=[id_column, *HISTORY_FIELDS])
    if events.empty:
        events = events.astype({id_column: np.int64, "ts": float, "amount": float})
    check_events(events, f"column '{HISTORY_COLUMN}'")
    return events
