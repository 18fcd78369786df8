"""Behaviour features from canonical events: RFM and 7/30/90-day window aggregates, with one cut-off.

Every feature of a customer at time ``as_of`` (days) reads only events with ``ts < as_of``
(:func:`in_history`): an event at exactly ``as_of`` belongs to the window that starts there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepromo.data.errors import UserInputError

WINDOWS = (7, 30, 90)
EVENT_TYPES = ("view", "cart", "purchase", "campaign_click")


def in_history(ts: np.ndarray, as_of) -> np.ndarray:
    """[n] bool: which event times lie in the history before ``as_of`` (strictly earlier)."""
    return np.asarray(ts, dtype=np.float64) < as_of


def static_columns(customers: pd.DataFrame, id_column: str = "customer_id") -> tuple[list[str], list[str]]:
    """Split the customers table's attribute columns into (categorical, numeric) by dtype."""
    cat, num = [], []
    for col in customers.columns:
        if col == id_column:
            continue
        if pd.api.types.is_bool_dtype(customers[col]) or pd.api.types.is_numeric_dtype(customers[col]):
            num.append(col)
        else:
            cat.append(col)
    return cat, num


def _per_row(as_of, n: int, what: str = "as_of") -> float | np.ndarray:
    """A finite scalar day, or ``[n]`` finite days (one per row); else a UserInputError naming ``what``."""
    if np.ndim(as_of) == 0:
        value = float(as_of)
        if not np.isfinite(value):
            raise UserInputError(f"{what}: expected a finite day number, got {as_of!r}")
        return value
    values = np.asarray(as_of, dtype=np.float64)
    if values.shape != (n,):
        raise UserInputError(f"{what}: expected one prediction time per row ({n}), got shape {values.shape}")
    bad = ~np.isfinite(values)
    if bad.any():
        raise UserInputError(f"{what}: expected finite day numbers, got {values[bad][:3].tolist()} at row(s) "
                             f"{np.flatnonzero(bad)[:3].tolist()}")
    return values


def _by_customer(event_customers: np.ndarray, ts: np.ndarray, uniq: pd.Index):
    """(event positions, customer codes, times) of the events of ``uniq`` customers sorted by (code, ts);
    ties keep event order."""
    code = uniq.get_indexer(event_customers)
    known = np.flatnonzero(code >= 0)
    order = known[np.lexsort((ts[known], code[known]))]
    return order, code[order], ts[order]


def _count_before(codes: np.ndarray, times: np.ndarray, row_code: np.ndarray, t: np.ndarray) -> np.ndarray:
    """[n] number of events sorted by (code, time) that precede (row_code_i, t_i): every earlier customer's events
    plus row i's customer's events with time < t_i. One sort of events and queries together."""
    e, n = len(codes), len(row_code)
    key_code = np.concatenate([codes, row_code])
    key_time = np.concatenate([times, t])
    is_event = np.concatenate([np.ones(e, np.int8), np.zeros(n, np.int8)])  # a query sorts before an equal time
    merged = np.lexsort((is_event, key_time, key_code))
    where = np.flatnonzero(merged >= e)  # positions of the queries, in merged order
    out = np.empty(n, dtype=np.int64)
    out[merged[where] - e] = where - np.arange(n)
    return out


def history_pairs(event_customers, ts, customer_ids, as_of, sort: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Every (row, event) pair of row i's history: the events of customer ``customer_ids[i]`` with ``ts < as_of_i``.

    event_customers, ts: ``[E]`` customer id and day of each event. customer_ids: ``[n]``, may repeat (one
    customer at several prediction times). as_of: one day or ``[n]`` days.
    Returns ``(rows [P], events [P])`` int64, sorted by (row, ts) with ties in event order (``sort=False`` with
    unique ids: in event order). Vectorised: unique ids take one mask over the events; repeated ids take a
    prefix of each customer's time-sorted events, found by one sort of the events and prediction times together.
    """
    ids = pd.Index(np.asarray(customer_ids))
    n = len(ids)
    ev_cust = np.asarray(event_customers)
    ts = np.asarray(ts, dtype=np.float64)
    scalar = np.ndim(as_of) == 0
    if ids.is_unique:
        rows = ids.get_indexer(ev_cust)
        cut = as_of if scalar else np.where(rows >= 0, np.asarray(as_of, np.float64)[np.maximum(rows, 0)], -np.inf)
        events = np.flatnonzero((rows >= 0) & in_history(ts, cut))
        rows = rows[events]
        if sort:
            order = np.lexsort((ts[events], rows))
            rows, events = rows[order], events[order]
        return rows.astype(np.int64), events.astype(np.int64)
    uniq = pd.Index(ids.unique())
    order, codes, times = _by_customer(ev_cust, ts, uniq)
    row_code = uniq.get_indexer(ids)
    t = np.full(n, float(as_of)) if scalar else np.asarray(as_of, np.float64)[np.arange(n)]
    start = np.searchsorted(codes, row_code, side="left")  # each row's customer's first sorted event
    lengths = _count_before(codes, times, row_code, t) - start
    rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
    within = np.arange(len(rows), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return rows, order[np.repeat(start, lengths) + within].astype(np.int64)


def window_counts(event_customers, ts, customer_ids, start, end) -> np.ndarray:
    """``[n]`` int64: the events of each row's customer with ``start_i <= ts < end_i`` (days; scalars or ``[n]``).

    customer_ids may repeat; O((E + n) log(E + n)), no loop over rows.
    """
    ids = pd.Index(np.asarray(customer_ids))
    n = len(ids)
    uniq = pd.Index(ids.unique())
    _, codes, times = _by_customer(np.asarray(event_customers), np.asarray(ts, dtype=np.float64), uniq)
    row_code = uniq.get_indexer(ids)
    lo, hi = (np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for v in (start, end))
    return _count_before(codes, times, row_code, hi) - _count_before(codes, times, row_code, lo)


def behaviour_features(events: pd.DataFrame, customer_ids: np.ndarray, history_end) -> pd.DataFrame:
    """RFM and window aggregates per row from the events before its prediction time ``history_end`` (days).

    history_end: one day for every row, or ``[n]`` days, one per row (then ``customer_ids`` may repeat: one
    customer at several prediction times; each row reads only its own ``ts < history_end_i`` events).
    Returns a frame with one row per entry of ``customer_ids`` (same order) with columns
    ``recency_days, frequency, monetary, tenure_active_days, <type>_<w>d`` counts,
    ``spend_<w>d``, ``promo_purchase_share``, ``days_since_last_event``, ``avg_basket``.
    Vectorised with bincount over the (row, event) pairs of :func:`history_pairs`: linear in their number.
    """
    cust = np.asarray(customer_ids)
    n = len(cust)
    ev = events
    end = _per_row(history_end, n, "history_end")
    ev_ts = ev["ts"].to_numpy(dtype=np.float64)
    rows, picked = history_pairs(ev["customer_id"].to_numpy(), ev_ts, cust, end, sort=False)
    age = (end if np.ndim(end) == 0 else end[rows]) - ev_ts[picked]  # days before the prediction time, > 0
    etype = ev["event_type"].to_numpy()[picked]
    amount = ev["amount"].to_numpy(dtype=np.float64)[picked]
    promo = (
        ev["promo_active"].to_numpy()[picked].astype(bool)
        if "promo_active" in ev.columns
        else np.zeros(len(rows), dtype=bool)
    )
    out: dict[str, np.ndarray] = {}
    is_purchase = etype == "purchase"
    for t in EVENT_TYPES:
        mask = etype == t
        for w in WINDOWS:
            m = mask & (age <= w)
            out[f"{t}_{w}d"] = np.bincount(rows[m], minlength=n).astype(np.float64)
    for w in WINDOWS:
        m = is_purchase & (age <= w)
        out[f"spend_{w}d"] = np.bincount(rows[m], weights=amount[m], minlength=n)
    freq = np.bincount(rows[is_purchase], minlength=n).astype(np.float64)
    monetary = np.bincount(rows[is_purchase], weights=amount[is_purchase], minlength=n)
    last_purchase_age = np.full(n, np.inf)
    np.minimum.at(last_purchase_age, rows[is_purchase], age[is_purchase])
    last_event_age = np.full(n, np.inf)
    np.minimum.at(last_event_age, rows, age)
    first_event_age = np.zeros(n)
    np.maximum.at(first_event_age, rows, age)
    horizon = end + 1.0  # "never" is one day older than the whole history
    out["recency_days"] = np.where(np.isfinite(last_purchase_age), last_purchase_age, horizon)
    out["frequency"] = freq
    out["monetary"] = monetary
    out["avg_basket"] = np.divide(monetary, freq, out=np.zeros(n), where=freq > 0)
    promo_purchases = np.bincount(rows[is_purchase & promo], minlength=n)
    out["promo_purchase_share"] = np.divide(promo_purchases, freq, out=np.zeros(n), where=freq > 0)
    out["days_since_last_event"] = np.where(np.isfinite(last_event_age), last_event_age, horizon)
    out["tenure_active_days"] = first_event_age
    return pd.DataFrame(out)


COUNT_LIKE_PREFIXES = tuple(f"{t}_" for t in EVENT_TYPES) + ("spend_", "frequency", "monetary", "avg_basket")


def rfm_table(events: pd.DataFrame, customers, as_of: float) -> pd.DataFrame:
    """Recency / frequency / monetary per customer from canonical events.

    events: canonical events (customer_id, ts [days], event_type, amount); purchases are rows with
    event_type == "purchase" and ts < as_of (the cut-off of every feature: ``in_history``).
    customers: [C] customer ids (pd.Series / array / list), unique; the output rows, in this order.
    as_of: day at which recency is measured.
    Returns DataFrame indexed by customer_id with recency_days (float, as_of − last purchase ts),
    frequency (int64, number of purchases), monetary (float64, sum of purchase amounts).
    Customers without a purchase get recency_days = as_of + 1 (worse than any observed recency, since
    ts >= 0), frequency 0, monetary 0.
    """
    missing = [c for c in ("customer_id", "ts", "event_type", "amount") if c not in events.columns]
    if missing:
        raise UserInputError(f"events: missing column(s) {missing}; expected canonical events with "
                         f"customer_id, ts, event_type, amount (has {list(events.columns)})")
    as_of = float(as_of)
    if not np.isfinite(as_of):
        raise UserInputError(f"as_of: expected a finite day number, got {as_of!r}")
    ids = pd.Index(np.asarray(customers), name="customer_id")
    if ids.has_duplicates:
        raise UserInputError(f"customers: expected unique ids, found duplicates e.g. {ids[ids.duplicated()][:5].tolist()}")

    et = events["event_type"]
    is_purchase = (et == "purchase").to_numpy(dtype=bool, na_value=False)
    ts = events["ts"].to_numpy(dtype=np.float64)
    mask = is_purchase & in_history(ts, as_of)
    purch = pd.DataFrame({
        "customer_id": events["customer_id"].to_numpy()[mask],
        "ts": ts[mask],
        "amount": events["amount"].to_numpy(dtype=np.float64)[mask],
    })
    g = purch.groupby("customer_id", sort=False).agg(
        last=("ts", "max"), frequency=("ts", "size"), monetary=("amount", "sum")
    ).reindex(ids)
    out = pd.DataFrame(
        {
            "recency_days": (as_of - g["last"]).fillna(as_of + 1.0).astype(np.float64),
            "frequency": g["frequency"].fillna(0).astype(np.int64),
            "monetary": g["monetary"].fillna(0.0).astype(np.float64),
        },
        index=ids,
    )
    return out
