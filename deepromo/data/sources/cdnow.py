"""CDNOW purchase histories as canonical tables (``load_source("cdnow")``): next-window purchase prediction.

``CDNOW_master.txt`` holds the 69,659 purchases of the 23,570 customers who first bought at the CD
retailer CDNOW in the first quarter of 1997, followed until the end of June 1998. One purchase per
line, whitespace separated, no header (the Lifetimes copy's one header line is skipped): customer id,
date ``YYYYMMDD``, number of CDs, dollars, e.g. ``00001 19970101  1   11.77``. The file is read from ``path`` or, when ``path`` is null, from the
installed ``Lifetimes`` package (``lifetimes/datasets/CDNOW_master.txt``, located with
``importlib.util.find_spec``; the package is never imported). Nothing is ever downloaded.

Mapping

time
    ``ts`` = whole days since **day 0 = the earliest date in the file** (1997-01-01 for the real data).
    ``history_end`` (option, a date or days since day 0; default ``1997-10-01``, the end of the
    39-week calibration period of the classic BTYD studies, e.g. Fader, Hardie & Lee 2005) starts the
    response window ``[history_end, history_end + response_days)`` (default 90 days: October to
    December 1997). A purchase dated on ``history_end`` belongs to the window.
customers
    one row per customer id with at least ``min_purchases`` purchases before ``history_end``
    (``customer_id`` = the file's id as an integer), sorted by id; ``max_customers`` keeps the first N.
    One static feature: ``cohort``, the month of the first purchase before ``history_end`` (``"1997-01"``
    .. ; ``"none"`` without one), a pandas Categorical. Everything else (RFM, 7/30/90-day windows)
    comes from the events through the views.
events
    one ``purchase`` per line of the kept customers (all dates: the views cut at ``history_end``
    themselves), amount = dollars, ``quantity`` = number of CDs, product_id = -1, category = "",
    promo_active = 0; sorted by (customer_id, ts), file order on ties (several lines on one day are
    kept as separate purchases).
exposures
    CDNOW ran no recorded campaign: one control row per customer (treatment 0, incentive 0,
    propensity 1, engaged 0, offer_id -1, ts = history_end); incentive levels (0,). Only the purchase
    view (``txl`` and the sequence baselines) is meaningful; the customer view's ``engaged`` label is all 0.
outcomes
    purchased = 1 if the customer has a purchase in the response window; revenue = its dollars.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from deepromo.data.errors import UserInputError
from deepromo.data.io import read_fields
from deepromo.data.sources import ids_with_history, installed_package_dir, register_source
from deepromo.data.tables import CanonicalData, DataValidationError

NAME = "cdnow"
FILE_NAME = "CDNOW_master.txt"
FIELDS = ("customer_id", "date", "cds", "dollars")
DEFAULT_HISTORY_END = "1997-10-01"
NO_COHORT = "none"
DAY = np.timedelta64(86_400_000_000_000, "ns")


def data_file(path=None) -> Path:
    """The CDNOW_master.txt to read: ``path`` if given, else the copy inside the installed Lifetimes package."""
    if path is not None:
        if not isinstance(path, (str, Path)) or str(path).strip() == "":
            raise UserInputError(f"{NAME}: option path must be a file path (str) or null, got {path!r}")
        p = Path(path).expanduser()
        if not p.is_file():
            raise DataValidationError(
                f"{NAME}: data.options.path '{p}' {'is a directory, not a file' if p.is_dir() else 'does not exist'}; "
                f"expected a {FILE_NAME}-format file (whitespace separated: customer id, date YYYYMMDD, cds, dollars)"
            )
        return p
    package = installed_package_dir("lifetimes")
    candidate = package / "datasets" / FILE_NAME if package is not None else None
    if candidate is None or not candidate.is_file():
        where = "the Lifetimes package is not installed" if candidate is None else f"{candidate} is missing"
        raise DataValidationError(
            f"{NAME}: no {FILE_NAME} found ({where}); `pip install Lifetimes` ships it as "
            f"lifetimes/datasets/{FILE_NAME}, or set data.options.path to a local copy; it is never downloaded"
        )
    return candidate


def read_purchases(file: Path) -> pd.DataFrame:
    """The purchase lines as (customer_id int64, date datetime64, cds int64, dollars float64), checked."""
    raw = read_fields(file, FIELDS, NAME, expected=f"{FILE_NAME} format (4 whitespace separated fields per line: "
                                                   f"customer id, date YYYYMMDD, cds, dollars)")
    # the Lifetimes copy starts with a header line (customer_id date number_of_cds dollar_value), the original not
    header = len(raw) > 0 and not any(str(raw[f].iloc[0]).replace(".", "", 1).isdigit() for f in FIELDS)
    if header:
        raw = raw.iloc[1:].reset_index(drop=True)
    first = 2 if header else 1  # file line number of data row 0
    if len(raw) == 0:
        raise DataValidationError(f"{NAME}: file '{file.name}' has no purchase lines")
    for field in FIELDS:
        missing = raw[field].isna().to_numpy()
        if missing.any():
            raise DataValidationError(
                f"{NAME}: file '{file.name}' has {int(missing.sum())} line(s) without a '{field}' field, e.g. data "
                f"line(s) {(np.flatnonzero(missing)[:3] + first).tolist()}; expected 4 fields: {', '.join(FIELDS)}"
            )

    def numbers(field: str, integer: bool) -> np.ndarray:
        x = pd.to_numeric(raw[field], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(x) | (x < 0) | ((np.mod(np.nan_to_num(x), 1) != 0) if integer else False)
        if bad.any():
            rows = np.flatnonzero(bad)[:3]
            examples = ", ".join(f"{raw[field].iloc[r]!r} (line {r + first})" for r in rows)
            kind = "integers >= 0" if integer else "finite numbers >= 0"
            raise DataValidationError(f"{NAME}: field '{field}' of '{file.name}' must hold {kind}, got {examples}")
        return x

    date = pd.to_datetime(raw["date"], format="%Y%m%d", errors="coerce")
    bad = date.isna().to_numpy()
    if bad.any():
        rows = np.flatnonzero(bad)[:3]
        examples = ", ".join(f"{raw['date'].iloc[r]!r} (line {r + first})" for r in rows)
        raise DataValidationError(f"{NAME}: field 'date' of '{file.name}' must be a date YYYYMMDD, got {examples}")
    return pd.DataFrame({
        "customer_id": numbers("customer_id", True).astype(np.int64),
        "date": date.to_numpy(dtype="datetime64[ns]"),
        "cds": numbers("cds", True).astype(np.int64),
        "dollars": numbers("dollars", False),
    })


def _history_end(option, day0: np.datetime64) -> float:
    if isinstance(option, str):
        try:
            stamp = pd.Timestamp(option)
        except (ValueError, TypeError):
            raise UserInputError(f"{NAME}: option history_end must be a date (e.g. 1997-10-01), a number of days since "
                             f"day 0, or null, got {option!r}") from None
        return float((stamp.to_datetime64().astype("datetime64[ns]") - day0) / DAY)
    if isinstance(option, bool) or not isinstance(option, (int, float)) or not math.isfinite(float(option)):
        raise UserInputError(f"{NAME}: option history_end must be a date (e.g. 1997-10-01), a number of days since day 0, "
                         f"or null, got {option!r}")
    return float(option)


@register_source("cdnow")
def load_cdnow(
    path: str | None = None,
    history_end: str | float | None = DEFAULT_HISTORY_END,
    response_days: float = 90.0,
    min_purchases: int = 1,
    max_customers: int | None = None,
) -> CanonicalData:
    """Load a CDNOW_master.txt as validated canonical tables (see the module docstring).

    path: the file; None = the installed Lifetimes package's copy.
    history_end: start of the response window, a date string or days since day 0; None = the last
        ``response_days`` days of the data.
    response_days: length of the response window in days (the label: a purchase in it).
    min_purchases: drop customers with fewer purchases before history_end (0 keeps everyone).
    max_customers: keep only the first N customer ids (sorted) for quick runs; None = all.
    """
    if (isinstance(response_days, bool) or not isinstance(response_days, (int, float))
            or not math.isfinite(float(response_days)) or float(response_days) <= 0):
        raise UserInputError(f"{NAME}: option response_days must be a finite number of days > 0, got {response_days!r}")
    if isinstance(min_purchases, bool) or not isinstance(min_purchases, int) or min_purchases < 0:
        raise UserInputError(f"{NAME}: option min_purchases must be an integer >= 0, got {min_purchases!r}")
    if max_customers is not None and (isinstance(max_customers, bool) or not isinstance(max_customers, int)
                                      or max_customers < 1):
        raise UserInputError(f"{NAME}: option max_customers must be an integer >= 1 or null, got {max_customers!r}")
    R = float(response_days)
    file = data_file(path)
    lines = read_purchases(file)

    # ---------------- time frame ----------------
    dates = lines["date"].to_numpy(dtype="datetime64[ns]")
    day0 = dates.min()
    ts = (dates - day0) / DAY
    end = float(ts.max()) + 1.0  # the last date is a whole day
    H = end - R if history_end is None else _history_end(history_end, day0)
    if H <= 0 or H + R > end:
        last = pd.Timestamp(dates.max()).date()
        raise UserInputError(
            f"{NAME}: history_end={history_end!r} (day {H:g}) with response_days={R:g} does not fit the data "
            f"({pd.Timestamp(day0).date()} .. {last}): the response window [history_end, history_end + "
            f"response_days) must start after day 0 and end by the day after the last date, i.e. "
            f"0 < history_end <= day {end - R:g}"
        )

    # ---------------- customers ----------------
    cid = lines["customer_id"].to_numpy()
    before = ts < H
    keep_ids, n_in_file = ids_with_history(cid, before, min_purchases, max_customers)
    if keep_ids.size == 0:
        raise DataValidationError(
            f"{NAME}: no customer has >= {min_purchases} purchases before history_end (day {H:g}); lower "
            f"min_purchases or move history_end later"
        )
    index = pd.Index(keep_ids)
    rows = index.get_indexer(cid)
    kept = rows >= 0
    first = np.full(keep_ids.size, np.inf)
    np.minimum.at(first, rows[kept & before], ts[kept & before])
    month = pd.Series(day0 + first[np.isfinite(first)].astype(np.int64) * DAY).dt.strftime("%Y-%m").to_numpy(object)
    cohort = np.full(keep_ids.size, NO_COHORT, dtype=object)
    cohort[np.isfinite(first)] = month
    customers = pd.DataFrame({"customer_id": keep_ids.astype(np.int64),
                              "cohort": pd.Categorical(cohort, categories=sorted(set(cohort)))})

    # ---------------- events ----------------
    order = np.lexsort((ts[kept], cid[kept]))  # stable: file order on equal (customer, day)
    m = int(kept.sum())
    events = pd.DataFrame({
        "customer_id": cid[kept][order],
        "ts": ts[kept][order].astype(np.float64),
        "event_type": pd.Categorical.from_codes(np.zeros(m, np.int8), categories=["purchase"]),
        "product_id": np.full(m, -1, np.int64),
        "category": pd.Categorical.from_codes(np.zeros(m, np.int8), categories=[""]),
        "amount": lines["dollars"].to_numpy()[kept][order],
        "promo_active": np.zeros(m, np.int8),
        "quantity": lines["cds"].to_numpy()[kept][order],
    })

    # ---------------- exposures and outcomes ----------------
    n = keep_ids.size
    exposures = pd.DataFrame({
        "customer_id": keep_ids.astype(np.int64), "ts": np.full(n, H), "treatment": np.zeros(n, np.int8),
        "incentive": np.zeros(n), "propensity": np.ones(n), "offer_id": np.full(n, -1, np.int64),
        "engaged": np.zeros(n, np.int8),
    })
    in_window = kept & (ts >= H) & (ts < H + R)
    n_win = np.bincount(rows[in_window], minlength=n)
    outcomes = pd.DataFrame({
        "customer_id": keep_ids.astype(np.int64),
        "purchased": (n_win > 0).astype(np.int8),
        "revenue": np.bincount(rows[in_window], weights=lines["dollars"].to_numpy()[in_window], minlength=n),
    })
    day0_ts = pd.Timestamp(day0)
    meta = {
        "source": NAME,
        "path": str(file),
        "day0": day0_ts.date().isoformat(),
        "history_end_day": H,
        "history_end_date": (day0_ts + pd.Timedelta(days=H)).isoformat(),
        "window_end_date": (day0_ts + pd.Timedelta(days=H + R)).isoformat(),
        "min_purchases": int(min_purchases),
        "max_customers": max_customers,
        "counts": {"customers_in_file": n_in_file, "customers": int(n), "purchase_lines": len(lines),
                   "events": int(m), "purchase_rate": float(outcomes["purchased"].mean())},
    }
    data = CanonicalData(
        customers=customers, events=events, exposures=exposures, outcomes=outcomes, products=None, offers=None,
        truth=None, history_end=H, response_days=R, incentive_levels=(0.0,), name=NAME, meta=meta,
    )
    return data.validate()


__all__ = ["FIELDS", "FILE_NAME", "data_file", "load_cdnow", "read_purchases"]
