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


def behaviour_features(events: pd.DataFrame, customer_ids: np.ndarray, history_end: float) -> pd.DataFrame:
    """RFM and window aggregates per customer from events before ``history_end`` (days).

    Returns a frame with one row per entry of ``customer_ids`` (same order) with columns
    ``recency_days, frequency, monetary, tenure_active_days, <type>_<w>d`` counts,
    ``spend_<w>d``, ``promo_purchase_share``, ``days_since_last_event``, ``avg_basket``.
    Vectorised with bincount over integer row codes: linear in the number of events.
    """
    cust = np.asarray(customer_ids)
    n = len(cust)
    ev = events
    end = float(history_end)
    ev_ts = ev["ts"].to_numpy(dtype=np.float64)
    keep = in_history(ev_ts, end)
    rows = pd.Index(cust).get_indexer(ev["customer_id"].to_numpy()[keep])
    known = rows >= 0  # events of customers not in the table are ignored
    rows = rows[known]
    age = end - ev_ts[keep][known]  # days before the end of history, > 0
    etype = ev["event_type"].to_numpy()[keep][known]
    amount = ev["amount"].to_numpy(dtype=np.float64)[keep][known]
    promo = (
        ev["promo_active"].to_numpy()[keep][known].astype(bool)
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
