"""Streaming inference for txl: keep each customer's Transformer-XL memory and score new events incrementally.

    scorer = StreamingScorer(model, customers=feature_frame)     # customers: customer_id + feature columns
    scorer.observe(history_events)                               # warm the cache once (any number of customers)
    scores = scorer.update(new_events, as_of=now)                # per request: only the new events are encoded

A request costs one pass of the *new* events through the layers, attending to the cached ``mem_len``
hidden states per layer, instead of re-encoding the whole history. With ``mem_len`` >= the history length
the incremental score equals scoring the full history at once (tested); with a shorter memory each new
event sees exactly the last ``mem_len`` states, Transformer-XL's evaluation mode.
The cache holds ``n_layers * mem_len * d_model`` floats per customer (64 KB at 2 x 64 x 128, float32).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from deepromo.data.errors import UserInputError
from deepromo.data.sequences import check_events
from deepromo.data.tables import DataValidationError


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
        if customers is not None:
            self.set_customers(customers)

    def set_customers(self, frame: pd.DataFrame) -> None:
        """Encode and store the feature rows (``customer_id`` + feature columns) used by ``score``."""
        if "customer_id" not in frame.columns:
            raise DataValidationError("customers frame needs a 'customer_id' column")
        cat, num = self.model.preprocessor.transform(frame)
        for i, cid in enumerate(frame["customer_id"].to_numpy().tolist()):
            self.static[cid] = (torch.from_numpy(cat[i].copy()), torch.from_numpy(num[i].copy()))
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

    def _empty_state(self) -> CustomerState:
        device = self.model.device
        return CustomerState(torch.zeros(self.n_layers, self.mem_len, self.d, device=device),
                             torch.zeros(self.mem_len, dtype=torch.bool, device=device),
                             torch.zeros(self.d, device=device), float("nan"))

    @torch.inference_mode()
    def observe(self, events: pd.DataFrame) -> list:
        """Append new events (any customers; each customer's events must be newer than its cached ones).

        Customers with the same number of new events are processed together: their events go through the layers
        in segments of ``seg_len`` on top of their cached memories. Returns the customer ids touched.
        """
        check_events(events)
        if events.empty:
            return []
        unknown = [c for c in pd.unique(events["customer_id"]).tolist() if c not in self.static]  # O(batch)
        if unknown:
            raise DataValidationError(f"events of customer_id(s) {unknown[:5]} that the scorer has no feature "
                                      "row for; call set_customers with them first")
        ev = self.without_replays(events.sort_values(["customer_id", "ts"], kind="stable").reset_index(drop=True))
        if ev.empty:
            return []
        ids, starts, counts = np.unique(ev["customer_id"].to_numpy(), return_index=True, return_counts=True)
        states = [self.states.get(cid) or self._empty_state() for cid in ids.tolist()]
        first_ts = ev["ts"].to_numpy()[starts]
        last_seen = np.array([s.last_ts for s in states])
        stale = np.flatnonzero(first_ts < np.nan_to_num(last_seen, nan=-np.inf))
        if stale.size:
            cid = ids[stale[0]]
            raise DataValidationError(f"customer {cid}: new event at ts={first_ts[stale[0]]} is older than its cached "
                                      f"newest event (ts={last_seen[stale[0]]}); events must arrive in time order")
        first = np.zeros(len(ev), dtype=bool)
        first[starts] = True
        cat, num = self.model.preprocessor.events.encode(ev, previous_ts=np.repeat(last_seen, counts),
                                                         first_of_customer=first)
        device = self.model.device
        cat, num = torch.from_numpy(cat).to(device), torch.from_numpy(num).to(device)
        last_ts = ev["ts"].to_numpy()[starts + counts - 1]
        last_events = [event_content(ev, i) for i in (starts + counts - 1).tolist()]
        updated = {}  # committed only when every group went through: a failure leaves the cache as it was
        # Customers with the same number of new events go through together, so no padding ever sits between
        # a customer's cached memory and its new events (padding would shift the relative distances).
        for count in np.unique(counts).tolist():
            group = np.flatnonzero(counts == count)
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
        return ids.tolist()

    def without_replays(self, ev: pd.DataFrame) -> pd.DataFrame:
        """``ev`` (sorted by customer and time) without the rows equal to a customer's cached newest event: a
        replayed delivery is not a new event (an older replayed event is refused as out of order). With an
        ``event_id`` column, identity is that id; otherwise the event's content."""
        cached_ts = np.array([getattr(self.states.get(cid), "last_ts", np.nan) for cid in ev["customer_id"].tolist()])
        replay = ev["ts"].to_numpy(dtype=np.float64) == cached_ts  # only an event at the cached time can repeat it
        for i in np.flatnonzero(replay):
            replay[i] = event_content(ev, int(i)) == self.states[ev["customer_id"].iat[i]].last_event
        return ev.loc[~replay].reset_index(drop=True)

    @torch.inference_mode()
    def score(self, customer_ids, as_of: float | None = None) -> np.ndarray:
        """Purchase probabilities ``[n]`` from the cache at time ``as_of`` (days; default: just after each
        customer's newest event). Customers without cached events are scored from their features alone."""
        ids = list(customer_ids)
        missing = [c for c in ids if c not in self.static]
        if missing:
            raise DataValidationError(f"no feature row for customer_id(s) {missing[:5]}; call set_customers first")
        states = [self.states.get(c) or self._empty_state() for c in ids]
        device = self.model.device
        last_ts = np.array([s.last_ts for s in states])
        has = ~np.isnan(last_ts)
        now = np.nextafter(last_ts, np.inf) if as_of is None else np.full(len(ids), float(as_of))
        dt = np.where(has, np.maximum(now - np.nan_to_num(last_ts), 0.0), 0.0)
        batch = {
            "cat": torch.stack([self.static[c][0] for c in ids]).to(device),
            "num": torch.stack([self.static[c][1] for c in ids]).to(device),
            "seq_mask": torch.as_tensor(has, device=device).unsqueeze(1),
            "seq_dt": torch.as_tensor(dt, dtype=torch.float32, device=device).unsqueeze(1),
        }
        logit = self.model.readout(torch.stack([s.last_h for s in states]), batch)
        p = torch.sigmoid(logit).float().cpu().numpy()
        if not np.isfinite(p).all():
            bad = int(np.argmax(~np.isfinite(p)))
            raise DataValidationError(f"customer {ids[bad]}: the model produced a non-finite score; its features or "
                                      "events are outside what it can score")
        return p

    def update(self, events: pd.DataFrame, as_of: float | None = None) -> pd.DataFrame:
        """``observe`` the new events, then score the customers they belong to: ``customer_id, p``."""
        ids = self.observe(events)
        return pd.DataFrame({"customer_id": ids, "p": self.score(ids, as_of) if ids else np.zeros(0)})

    def forget(self, customer_ids) -> None:
        """Drop these customers' memories (their feature rows stay)."""
        for cid in customer_ids:
            self.states.pop(cid, None)


EVENT_CONTENT = ("customer_id", "ts", "event_type", "amount", "product_id", "category", "offer_id", "promo_active")


def event_content(ev: pd.DataFrame, row: int) -> tuple:
    """What identifies event ``row``: its ``event_id`` if the events have one, else its EVENT_CONTENT columns."""
    columns = ("customer_id", "event_id") if "event_id" in ev.columns else EVENT_CONTENT
    return tuple((c, str(ev[c].iat[row])) for c in columns if c in ev.columns)
