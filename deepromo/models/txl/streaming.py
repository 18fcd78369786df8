"""Streaming inference for txl: keep each customer's Transformer-XL memory and score new events incrementally.

    scorer = StreamingScorer(model, customers=feature_frame)     # customers: customer_id + feature columns
    scorer.observe(history_events)                               # warm the cache once (any number of customers)
    scores = scorer.update(new_events, as_of=now)                # per request: only the new events are encoded

A request costs one pass of the *new* events through the layers, attending to the cached ``mem_len``
hidden states per layer, instead of re-encoding the whole history. With ``mem_len`` >= the history length
the incremental score equals scoring the full history at once (tested); with a shorter memory each new
event sees exactly the last ``mem_len`` states, Transformer-XL's evaluation mode.
The cache holds ``n_layers * mem_len * d_model`` floats per customer (16 KB at the defaults 2 x 32 x 64, float32).

A request of one event costs a few milliseconds, mostly fixed costs per call (pandas column access, torch op
dispatch on tensors of one event), so the request path avoids what is an identity for it (sorting one event,
filtering without replays) and encodes categorical columns through a memo of the event encoder's own codes.
Serve with one torch thread per worker (``torch.set_num_threads(1)``): intra-op threads only add
synchronisation to tensors this small (benchmarks/txl_streaming.py measures both).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from deepromo.data.encoding import encode
from deepromo.data.errors import UserInputError
from deepromo.data.sequences import SEQ_CATEGORICAL, check_events
from deepromo.data.tables import DataValidationError

SMALL_REQUEST_EVENTS = 256  # up to this many events, columns of plain strings are encoded through a memo
CODE_MEMO_LIMIT = 100_000  # distinct strings memoised per column; beyond it new strings are encoded per request


@dataclass
class CustomerState:
    """One customer's cache: per-layer memory ``[n_layers, M, d]``, its mask ``[M]``, the newest event's top
    state ``[d]`` and time (days), and how many events were seen."""

    mems: torch.Tensor
    mask: torch.Tensor
    last_h: torch.Tensor
    last_ts: float
    n_events: int = 0
    last_event: tuple = ()  # the newest event's content: a replay of it is recognised and ignored


class StreamingScorer:
    """Per-customer memory cache around a trained txl model (encoder 'txl' with mem_len > 0).

    customers: a frame with ``customer_id`` and the model's feature columns (static attributes and window
    aggregates); refresh it with ``set_customers`` when those change. max_customers: least-recently-used
    customers beyond this many are evicted, memory and feature row alike (None = keep all).
    An update is all or nothing: a batch with any bad event changes no customer's state.
    """

    def __init__(self, model, customers: pd.DataFrame | None = None, max_customers: int | None = 100_000):
        hp = model.hparams
        if getattr(hp, "encoder", None) != "txl" or int(hp.mem_len) < 1:
            raise UserInputError("StreamingScorer needs a txl model with encoder='txl' and mem_len >= 1")
        if model.preprocessor is None or model.preprocessor.events is None:
            raise RuntimeError("the model has no preprocessor with an event encoder; train it or load a checkpoint")
        self.model = model.eval()
        self.mem_len, self.seg_len = int(hp.mem_len), int(hp.seg_len)
        self.n_layers, self.d = int(hp.n_layers), int(hp.d_model)
        self.max_customers = max_customers
        self.states: OrderedDict = OrderedDict()
        self.static: dict = {}
        self._codes: dict = {}  # column -> memo of the event encoder's codes (see category_codes)
        if customers is not None:
            self.set_customers(customers)

    def set_customers(self, frame: pd.DataFrame) -> None:
        """Encode and store the feature rows (``customer_id`` + feature columns) used by ``score``: per customer
        the model's static encoding ``[out_dim]`` (embeddings and numerics; like the cached memories it holds
        for these weights)."""
        if "customer_id" not in frame.columns:
            raise DataValidationError("customers frame needs a 'customer_id' column")
        cat, num = self.model.preprocessor.transform(frame)
        device = self.model.device
        with torch.inference_mode():
            encoded = self.model.static(torch.from_numpy(cat).to(device), torch.from_numpy(num).to(device))
        for i, cid in enumerate(frame["customer_id"].to_numpy().tolist()):
            self.static[cid] = encoded[i].clone()  # a copy: a view would keep the whole batch alive
            if cid in self.states:
                self.states.move_to_end(cid)
        self.evict()

    def evict(self) -> None:
        """Drop the least recently observed customers beyond ``max_customers``: their memory and feature row."""
        if self.max_customers is None:
            return
        while len(self.states) > self.max_customers:
            cid, _ = self.states.popitem(last=False)
            self.static.pop(cid, None)

    def _empty_state(self, device=None) -> CustomerState:
        device = self.model.device if device is None else device
        return CustomerState(torch.zeros(self.n_layers, self.mem_len, self.d, device=device),
                             torch.zeros(self.mem_len, dtype=torch.bool, device=device),
                             torch.zeros(self.d, device=device), float("nan"))

    def observe(self, events: pd.DataFrame) -> list:
        """Append new events (any customers; each customer's events must be newer than its cached ones).

        Customers with the same number of new events are processed together: their events go through the layers
        in segments of ``seg_len`` on top of their cached memories. Returns the customer ids touched.
        """
        return self._observe(events).tolist()

    @torch.inference_mode()
    def _observe(self, events: pd.DataFrame) -> np.ndarray:
        """``observe``, returning the ids as an array. Columns are read through a ``_Columns`` view, once each
        (check_events, the encoder and this method all read ``ts``)."""
        view = _Columns(events)
        check_events(view)
        if len(events) == 0:
            return np.zeros(0, dtype=np.int64)
        cid = view["customer_id"].to_numpy()
        unknown = [c for c in (pd.unique(cid) if len(cid) > 1 else cid).tolist() if c not in self.static]
        if unknown:
            raise DataValidationError(f"events of customer_id(s) {unknown[:5]} that the scorer has no feature "
                                      "row for; call set_customers with them first")
        ev = events
        if len(ev) > 1:  # positions below are positions in ev, so the sorted frame is re-indexed
            ev = ev.sort_values(["customer_id", "ts"], kind="stable").reset_index(drop=True)
            view = _Columns(ev)
            cid = view["customer_id"].to_numpy()
        ts = view["ts"].to_numpy()
        replay = self._replays(ev, cid, ts)
        if replay.any():
            ev = ev.loc[~replay].reset_index(drop=True)
            view, cid, ts = _Columns(ev), cid[~replay], ts[~replay]
            if len(ev) == 0:
                return np.zeros(0, dtype=np.int64)
        device = self.model.device
        if len(cid) == 1:  # the serving request: one event of one customer
            ids, starts, counts = cid, np.zeros(1, dtype=np.intp), np.ones(1, dtype=np.intp)
        else:
            ids, starts, counts = np.unique(cid, return_index=True, return_counts=True)
        states = [self.states.get(c) or self._empty_state(device) for c in ids.tolist()]
        first_ts = ts[starts]
        last_seen = np.array([s.last_ts for s in states])
        stale = np.flatnonzero(first_ts < np.where(np.isnan(last_seen), -np.inf, last_seen))
        if stale.size:
            cid = ids[stale[0]]
            raise DataValidationError(f"customer {cid}: new event at ts={first_ts[stale[0]]} is older than its cached "
                                      f"newest event (ts={last_seen[stale[0]]}); events must arrive in time order")
        first = np.zeros(len(ev), dtype=bool)
        first[starts] = True
        cat, num = self.encode_events(view, np.repeat(last_seen, counts), first)
        cat, num = torch.from_numpy(cat).to(device), torch.from_numpy(num).to(device)
        last_ts = ts[starts + counts - 1]
        last_events = [event_content(ev, i) for i in (starts + counts - 1).tolist()]
        updated = {}  # committed only when every group went through: a failure leaves the cache as it was
        # Customers with the same number of new events go through together, so no padding ever sits between
        # a customer's cached memory and its new events (padding would shift the relative distances).
        for count in np.unique(counts).tolist() if len(ids) > 1 else counts.tolist():
            group = np.flatnonzero(counts == count) if len(ids) > 1 else np.zeros(1, dtype=np.intp)
            if len(group) == len(ids):  # every customer has `count` events: ev's rows in order are the batch
                x = self.model.embed_events(cat.view(len(ids), count, -1), num.view(len(ids), count, -1))
            else:
                take = torch.as_tensor(starts[group][:, None] + np.arange(count)[None, :], device=device)
                x = self.model.embed_events(cat[take], num[take])  # [g, count, d]
            mask = torch.ones(len(group), count, dtype=torch.bool, device=device)
            memory = (list(torch.stack([states[i].mems for i in group], dim=1).unbind(0)),
                      torch.stack([states[i].mask for i in group]))
            h = None
            for start in range(0, count, self.seg_len):
                h, memory = self.model.segment_step(x[:, start:start + self.seg_len],
                                                    mask[:, start:start + self.seg_len], memory)
            mems = torch.stack(memory[0], dim=1)  # [g, n_layers, M, d]
            for j, i in enumerate(group.tolist()):  # copies: a view would keep the whole batch tensor alive
                updated[ids[i].item()] = CustomerState(mems[j].clone(), memory[1][j].clone(), h[j, -1].clone(),
                                                       float(last_ts[i]), states[i].n_events + count, last_events[i])
        for cid, state in updated.items():
            self.states[cid] = state
            self.states.move_to_end(cid)
        self.evict()
        return ids

    def without_replays(self, ev: pd.DataFrame) -> pd.DataFrame:
        """``ev`` (sorted by customer and time) without the rows equal to a customer's cached newest event: a
        replayed delivery is not a new event (an older replayed event is refused as out of order). With an
        ``event_id`` column, identity is that id; otherwise the event's content."""
        replay = self._replays(ev, ev["customer_id"].to_numpy(), ev["ts"].to_numpy())
        return ev.loc[~replay].reset_index(drop=True) if replay.any() else ev

    def _replays(self, ev: pd.DataFrame, cid: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """[E] bool: which rows of ``ev`` (customer ids ``cid``, times ``ts``) repeat their customer's cached
        newest event (see ``without_replays``)."""
        cached_ts = np.array([getattr(self.states.get(c), "last_ts", np.nan) for c in cid.tolist()])
        replay = ts.astype(np.float64) == cached_ts  # only an event at the cached time can repeat it
        for i in np.flatnonzero(replay):
            replay[i] = event_content(ev, int(i)) == self.states[cid[i]].last_event
        return replay

    def encode_events(self, ev, previous_ts: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``EventEncoder.encode(ev, previous_ts, first)``: ``cat [E, 2] int64, num [E, 5] float32``.

        ev: the events (a DataFrame or a ``_Columns`` view of one). The categorical codes come from
        :meth:`category_codes` where it applies (the encoder's own codes, memoised: encoding a column costs
        pandas ~1 ms however few its rows) and the encoder computes the rest.
        """
        view = ev if isinstance(ev, _Columns) else _Columns(ev)
        encoder = self.model.preprocessor.events
        present = [c for c in SEQ_CATEGORICAL if c in view.columns]
        codes = {c: self.category_codes(c, view[c], encoder.vocab[c]) for c in present}
        if any(v is None for v in codes.values()):
            return encoder.encode(view.frame, previous_ts=previous_ts, first_of_customer=first)
        # without the categorical columns the encoder leaves their codes at 0 (a view that hides them: a
        # pandas column subset or drop costs ~0.5 ms on its own)
        _, num = encoder.encode(view.without(present), previous_ts=previous_ts, first_of_customer=first)
        cat = np.zeros((len(ev), len(SEQ_CATEGORICAL)), dtype=np.int64)
        for j, col in enumerate(SEQ_CATEGORICAL):
            if col in codes:
                cat[:, j] = codes[col]
        return cat, num

    def category_codes(self, col: str, values: pd.Series, vocab: list) -> np.ndarray | None:
        """``deepromo.data.encoding.encode(values, vocab)`` from a memo, or None where no memo applies.

        A categorical column maps its codes through the codes of its categories (what ``encode`` computes,
        once per dtype); a small request of plain strings looks each string up (``encode`` once per new
        string). Anything else (mixed types, missing values, big batches) is left to the encoder: it groups
        equal values (1 and 1.0 alike) before it turns them into strings, which a per-value memo would not.
        """
        memo = self._codes.get(col)
        if memo is None or memo["vocab"] is not vocab:
            memo = self._codes[col] = {"vocab": vocab, "dtype": None, "mapping": None, "strings": {}}
        dtype = values.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            if memo["dtype"] is not dtype:  # identity: equal unordered dtypes may order their categories apart
                every = pd.Series(pd.Categorical.from_codes(np.arange(len(dtype.categories)), dtype=dtype))
                memo["dtype"], memo["mapping"] = dtype, np.append(encode(every, vocab), 0)  # code -1 (missing) -> 0
            return memo["mapping"][values.array.codes]
        if len(values) > SMALL_REQUEST_EVENTS:
            return None
        items = values.tolist()
        if not all(type(v) is str for v in items):
            return None
        strings = memo["strings"]
        new = sorted(set(items).difference(strings))
        if new:
            found = dict(zip(new, encode(pd.Series(new, dtype=object), vocab).tolist()))
            if len(strings) + len(found) <= CODE_MEMO_LIMIT:
                strings.update(found)
            return np.array([strings[v] if v in strings else found[v] for v in items], dtype=np.int64)
        return np.array([strings[v] for v in items], dtype=np.int64)

    @torch.inference_mode()
    def score(self, customer_ids, as_of: float | None = None) -> np.ndarray:
        """Purchase probabilities ``[n]`` from the cache at time ``as_of`` (days; default: just after each
        customer's newest event). Customers without cached events are scored from their features alone."""
        ids = list(customer_ids)
        missing = [c for c in ids if c not in self.static]
        if missing:
            raise DataValidationError(f"no feature row for customer_id(s) {missing[:5]}; call set_customers first")
        device = self.model.device
        states = [self.states.get(c) or self._empty_state(device) for c in ids]
        last_ts = np.array([s.last_ts for s in states])
        has = ~np.isnan(last_ts)
        now = np.nextafter(last_ts, np.inf) if as_of is None else np.full(len(ids), float(as_of))
        dt = np.where(has, np.maximum(now - np.where(has, last_ts, 0.0), 0.0), 0.0)
        batch = {
            "seq_mask": torch.as_tensor(has, device=device).unsqueeze(1),
            "seq_dt": torch.as_tensor(dt, dtype=torch.float32, device=device).unsqueeze(1),
        }
        logit = self.model.readout(torch.stack([s.last_h for s in states]), batch,
                                   static=torch.stack([self.static[c] for c in ids]))
        p = torch.sigmoid(logit).float().cpu().numpy()
        if not np.isfinite(p).all():
            bad = int(np.argmax(~np.isfinite(p)))
            raise DataValidationError(f"customer {ids[bad]}: the model produced a non-finite score; its features or "
                                      "events are outside what it can score")
        return p

    def update(self, events: pd.DataFrame, as_of: float | None = None) -> pd.DataFrame:
        """``observe`` the new events, then score the customers they belong to: ``customer_id, p``."""
        ids = self._observe(events)
        p = self.score(ids.tolist(), as_of) if len(ids) else np.zeros(0)
        # int64 ids as the array, not a list: the frame is the same, built in half the time (copy=False too)
        return pd.DataFrame({"customer_id": ids if ids.dtype == np.int64 and len(ids) else ids.tolist(), "p": p},
                            copy=False)

    def forget(self, customer_ids) -> None:
        """Drop these customers' memories (their feature rows stay)."""
        for cid in customer_ids:
            self.states.pop(cid, None)


EVENT_CONTENT = ("customer_id", "ts", "event_type", "amount", "product_id", "category", "offer_id", "promo_active")


def event_content(ev: pd.DataFrame, row: int) -> tuple:
    """What identifies event ``row``: its ``event_id`` if the events have one, else its EVENT_CONTENT columns."""
    columns = ("customer_id", "event_id") if "event_id" in ev.columns else EVENT_CONTENT
    return tuple((c, str(ev.iat[row, ev.columns.get_loc(c)])) for c in columns if c in ev.columns)


class _Columns:
    """``frame`` as ``check_events`` and ``EventEncoder.encode`` read it (``len``, ``columns``, ``frame[col]``),
    each column taken from the frame once and shared by the views of one frame; ``without`` hides columns.
    Every pandas column access builds a new Series (tens of microseconds); a one-event request read ``ts``
    four times and ``amount`` twice."""

    def __init__(self, frame: pd.DataFrame, hidden=(), series: dict | None = None):
        self.frame = frame
        self.columns = tuple(c for c in frame.columns if c not in hidden) if hidden else frame.columns
        self.series = {} if series is None else series

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, col):
        if col not in self.columns:
            raise KeyError(col)
        if col not in self.series:
            self.series[col] = self.frame[col]
        return self.series[col]

    def without(self, hidden) -> "_Columns":
        return _Columns(self.frame, hidden, self.series)
