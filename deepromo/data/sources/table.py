"""Your own CSV/TSV/Parquet files as canonical tables, by column roles (``load_source("table", ...)``)::

    load_source("table", path="customers.csv", id="customer_id", label="converted", treatment="incentive",
                numeric=["age", "spend"], categorical=["region", "channel"], time="event_time")

Optional files add behaviour events (``events_path``) and offers / products (``offers_path``, ``products_path``).
Files are read by :mod:`deepromo.data.io`; every check raises a :class:`DataValidationError` naming the file,
column and example values. ``scoring=True`` reads a file of customers to score (no outcome yet) through the same
roles. The roles, options, mapping choices and errors are documented in docs/byod.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from deepromo.data.errors import UserInputError
from deepromo.data.features import behaviour_features
from deepromo.data.io import file_columns, read_canonical, read_events, read_files, resolve_files
from deepromo.data.sources import register_source
from deepromo.data.tables import CanonicalData, DataValidationError

NAME = "table"
TREATMENT_TYPES = ("auto", "binary", "categorical", "numeric")
TIME_UNITS = {"days": 1.0, "hours": 1.0 / 24.0, "seconds": 1.0 / 86_400.0}
MAX_LEVELS = 32  # more distinct incentive values than this: continuous (no discrete levels)
UNKNOWN = "unknown"
DAY = np.timedelta64(86_400_000_000_000, "ns")
TRUE_STRINGS = ("1", "true", "yes", "y", "t")
FALSE_STRINGS = ("0", "false", "no", "n", "f")
REDEMPTION_TYPES = ("redemption", "coupon_redemption")
OFFER_EXPOSURE_TYPES = ("offer_exposure", "campaign_received")
OFFER_TEXT, OFFER_NUMBERS = ("offer_type", "timing"), ("face_value", "duration_days")
PRODUCT_TEXT = ("category", "brand")
# columns the views add next to the customers table's columns: a feature may not carry these names
VIEW_COLUMNS = ("customer_id", "segment", "engaged", "treated", "first_seen", "incentive", "propensity",
                "purchased", "campaign_incentive", "as_of", "label_end")
# roles that describe the outcome or the logged campaign, not the customer: scoring mode never reads them
SCORING_UNREAD_ROLES = ("label", "revenue", "engaged", "propensity", "offer")


# ----------------------------------------------------------------------------------------------
# Column checks and conversions (pandas level)
# ----------------------------------------------------------------------------------------------


def _plain(value):
    """numpy scalars as Python values, so messages read ``1.5`` rather than ``np.float64(1.5)``."""
    return value.item() if isinstance(value, np.generic) else value


def _examples(values: pd.Series, mask: np.ndarray, k: int = 3) -> str:
    rows = np.flatnonzero(mask)[:k]
    return ", ".join(f"{_plain(values.iloc[r])!r} (row {r})" for r in rows)


def finite_numbers(values: pd.Series, column: str, what: str = NAME, allow_negative: bool = True) -> np.ndarray:
    """float64 values of a numeric column; NaN/missing, inf or (optionally) negative values are errors."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    missing = np.isnan(x)
    if missing.any():
        raise DataValidationError(
            f"{what}: column '{column}' has {int(missing.sum())} missing/NaN value(s), first at row(s) "
            f"{np.flatnonzero(missing)[:3].tolist()}; expected finite numbers (fill or drop them first)"
        )
    inf = np.isinf(x)
    if inf.any():
        raise DataValidationError(
            f"{what}: column '{column}' has {int(inf.sum())} infinite value(s), e.g. {_examples(values, inf)}; "
            f"expected finite numbers"
        )
    if not allow_negative and (x < 0).any():
        raise DataValidationError(
            f"{what}: column '{column}' has {int((x < 0).sum())} negative value(s), e.g. {_examples(values, x < 0)}; "
            f"expected values >= 0"
        )
    return x


def _numbers_or_none(values: pd.Series) -> np.ndarray | None:
    """float64 values when every non-missing value is a number (bools -> 0/1), else None."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(np.float64).to_numpy()
    if pd.api.types.is_numeric_dtype(values):
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    try:  # fast path for text columns: arrow parses numbers ~10x faster than pandas
        arr = pa.array(values, from_pandas=True)
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    obj = pd.Series(values, dtype=object)
    text = obj.where(obj.isna(), obj.astype(str).str.strip())
    x = pd.to_numeric(text, errors="coerce")
    if (x.isna() & obj.notna()).any():
        return None
    return x.to_numpy(dtype=np.float64)


def refuse_missing(missing: np.ndarray, what: str, column: str, expected: str = "") -> None:
    """Raise when ``missing`` (bool per row) has a True: names ``column`` (e.g. "id column 'x'"), the count,
    the first rows and, if given, what was ``expected``."""
    if missing.any():
        raise DataValidationError(
            f"{what}: {column} has {int(missing.sum())} missing value(s), first at row(s) "
            f"{np.flatnonzero(missing)[:3].tolist()}" + (f"; {expected}" if expected else "")
        )


def binary_values(values: pd.Series, column: str, what: str = NAME, positive=None, role: str = "") -> np.ndarray:
    """int8 0/1 of a binary column: numbers 0/1, bools, or true/false/yes/no text; ``positive``: the value meaning 1."""
    refuse_missing(pd.isna(values).to_numpy(), what, f"{role}column '{column}'", "expected a value in every row")
    obj = pd.Series(values, dtype=object)
    if positive is not None:
        return (obj.astype(str).str.strip() == str(positive).strip()).to_numpy().astype(np.int8)
    x = _numbers_or_none(values)
    if x is None:
        text = obj.astype(str).str.strip().str.lower()
        x = np.where(text.isin(TRUE_STRINGS), 1.0, np.where(text.isin(FALSE_STRINGS), 0.0, np.nan))
    bad = ~np.isin(x, (0.0, 1.0))
    if bad.any():
        seen = [_plain(v) for v in pd.unique(obj[bad])[:5]]
        raise DataValidationError(
            f"{what}: {role}column '{column}' must be binary (0/1 or true/false), got value(s) {seen}"
            + (" — set label_positive to the value that means 1" if role.startswith("label") else "")
        )
    return x.astype(np.int8)


def integer_ids(values: pd.Series, column: str, what: str = NAME, missing_as: int | None = None) -> np.ndarray:
    """int64 ids of an integer column (``"007"`` -> 7); missing values -> ``missing_as`` (else an error)."""
    x = _numbers_or_none(values)
    obj = pd.Series(values, dtype=object)
    if x is None:
        v = pd.to_numeric(obj, errors="coerce")
        bad = (v.isna() & obj.notna()).to_numpy()
        raise DataValidationError(
            f"{what}: column '{column}' must hold integer ids, got e.g. {_examples(obj, bad)}"
        )
    nan = np.isnan(x)
    if missing_as is None:
        refuse_missing(nan, what, f"column '{column}'", "expected an integer id in every row")
    elif nan.any():
        x = np.where(nan, float(missing_as), x)
    bad = ~np.isfinite(x) | (np.mod(x, 1) != 0) | (np.abs(x) > 2**62)
    if bad.any():
        raise DataValidationError(f"{what}: column '{column}' must hold integer ids, got e.g. {_examples(obj, bad)}")
    return x.astype(np.int64)


def text_categories(values: pd.Series, missing: str = UNKNOWN) -> pd.Categorical:
    """A pandas Categorical of stripped strings (sorted categories); missing or empty -> ``missing``."""
    obj = pd.Series(values, dtype=object)
    text = obj.where(obj.isna(), obj.astype(str).str.strip())
    text = text.where(text.notna() & (text != ""), missing).to_numpy(dtype=object)
    return pd.Categorical(text, categories=sorted(set(text)))


def _parse_time(values: pd.Series, column: str, unit: str, what: str) -> tuple[np.ndarray, str]:
    """(values, kind): kind ``"datetime"`` -> datetime64[ns] (UTC, naive); ``"days"`` -> float64 days."""
    if len(values) == 0:
        return np.zeros(0), "days"
    if pd.api.types.is_datetime64_any_dtype(values):
        t = pd.Series(values)
    else:
        x = _numbers_or_none(values)
        if x is not None:
            return finite_numbers(pd.Series(x), column, what) * TIME_UNITS[unit], "days"
        obj = pd.Series(values, dtype=object)
        t = pd.to_datetime(obj, errors="coerce", utc=True, format="ISO8601")
        if (t.isna() & obj.notna()).any():  # other spellings (01/31/2024 ...): parsed one by one, slower
            t = pd.to_datetime(obj, errors="coerce", utc=True, format="mixed")
        bad = (t.isna() & obj.notna()).to_numpy()
        if bad.any():
            raise DataValidationError(
                f"{what}: column '{column}' must hold dates/timestamps (ISO 8601 like 2024-03-01 or "
                f"2024-03-01T10:30) or numbers in {unit}, got e.g. {_examples(obj, bad)}"
            )
    if getattr(t.dt, "tz", None) is not None:
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    if t.isna().any():
        missing = t.isna().to_numpy()
        raise DataValidationError(
            f"{what}: column '{column}' has {int(missing.sum())} missing time value(s), first at row(s) "
            f"{np.flatnonzero(missing)[:3].tolist()}"
        )
    return t.to_numpy(dtype="datetime64[ns]"), "datetime"


def reserved_feature_names() -> set[str]:
    """Names the views put next to the customers' columns (RFM / window features, labels, extras)."""
    empty = pd.DataFrame({"customer_id": np.zeros(0, np.int64), "ts": np.zeros(0),
                          "event_type": np.zeros(0, dtype=object), "amount": np.zeros(0)})
    return set(behaviour_features(empty, np.zeros(0, np.int64), 0.0).columns) | set(VIEW_COLUMNS)


# ----------------------------------------------------------------------------------------------
# Option checks
# ----------------------------------------------------------------------------------------------


def _column_option(value, option: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.strip() == "":
        raise UserInputError(f"{NAME}: option {option} must be a column name (string) or null, got {value!r}")
    return value


def _column_list(value, option: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) and v.strip() for v in value):
        raise UserInputError(f"{NAME}: option {option} must be a list of column names, got {value!r}")
    dup = sorted({v for v in value if list(value).count(v) > 1})
    if dup:
        raise DataValidationError(f"{NAME}: option {option} lists column(s) {dup} more than once")
    return list(value)


def _check_roles(roles: dict[str, str | None], numeric: list[str], categorical: list[str]) -> None:
    """Each column has one role; features carry no name that the views add."""
    owner: dict[str, str] = {}
    for option, col in [*roles.items(), *(("numeric", c) for c in numeric), *(("categorical", c) for c in categorical)]:
        if col is None:
            continue
        if col in owner:
            raise DataValidationError(
                f"{NAME}: column '{col}' is given two roles ({owner[col]} and {option}); a column has one role "
                f"(a label, treatment or propensity column used as a feature would leak the answer)"
            )
        owner[col] = option
    clash = sorted(reserved_feature_names() & (set(numeric) | set(categorical)))
    if clash:
        raise DataValidationError(
            f"{NAME}: feature column(s) {clash} carry names the task views add themselves; rename them in the "
            f"file (e.g. '{clash[0]}_raw')"
        )


# ----------------------------------------------------------------------------------------------
# The source
# ----------------------------------------------------------------------------------------------


@register_source("table")
def load_table(
    path=None,
    id: str | None = None,  # the role's name in configs (shadows the builtin here only)
    label: str | None = None,
    treatment: str | None = None,
    numeric=None,
    categorical=None,
    time: str | None = None,
    propensity: str | None = None,
    as_of: str | None = None,
    treatment_type: str = "auto",
    control=None,
    arms=None,
    arms_ordered: bool = False,
    label_positive=None,
    revenue: str | None = None,
    engaged: str | None = None,
    offer: str | None = None,
    time_unit: str = "days",
    history_end=None,
    response_days: float = 14.0,
    events_path=None,
    events_columns=None,
    event_type_map=None,
    offers_path=None,
    offers_columns=None,
    products_path=None,
    products_columns=None,
    scoring: bool = False,
) -> CanonicalData:
    """Read CSV/Parquet files with column roles into validated canonical tables (docs/byod.md).

    path: rows file(s), one row per customer. id / label / treatment / time / propensity / revenue /
        engaged / offer: column names of those roles (null = absent). numeric, categorical: feature columns.
    treatment_type: auto | binary | categorical | numeric. control: the no-treatment arm (categorical).
    arms: order of the treated arms (level 1..K). arms_ordered: the arms are ordered amounts (e.g. small <
        medium < large discount, so monotone models apply); false (default): unordered arms, whose order in
        ``arms`` is only a labelling. label_positive: the label value meaning 1.
    time_unit: unit of numeric times (days | hours | seconds). history_end: end of the behaviour history
        (days, or a date string with timestamp times); null = derived. response_days: response window length.
    as_of: column with each row's prediction time (same kind and unit as ``time``): that row's features read
        only events before it and a derived label is a purchase in ``[as_of, as_of + response_days)``;
        kept as ``meta["as_of"]`` (customer_id, as_of days) for the views. null = ``history_end`` for every row.
    events_path / offers_path / products_path: optional files; ``*_columns``: canonical -> file column names.
    event_type_map: file event type -> canonical event type (e.g. {order: purchase}).
    scoring: read customers to score, whose outcome is unknown, through the roles that trained a model
        (docs/byod.md "Scoring new customers"). The outcome roles (label, label_positive, revenue, engaged,
        propensity, offer) are not read, whatever the file holds there; outcomes are all 0. The treatment is read
        when every rows file has its column (one level is fine) and left out otherwise. Ids, features, times and
        events are mapped as in training; the prediction time (``history_end``) is the row's ``as_of``, else
        option history_end, else the earliest decision time, else the day after the last event's day (never
        the derived label's ``last day - response_days``). ``meta["scoring"]`` holds that time, its rule and
        the roles left out.
    """
    roles = {o: _column_option(v, o) for o, v in (("id", id), ("label", label), ("treatment", treatment),
                                                   ("time", time), ("propensity", propensity), ("revenue", revenue),
                                                   ("engaged", engaged), ("offer", offer), ("as_of", as_of))}
    numeric, categorical = _column_list(numeric, "numeric"), _column_list(categorical, "categorical")
    if not isinstance(scoring, bool):
        raise UserInputError(f"{NAME}: option scoring must be true or false, got {scoring!r}")
    left_out: list[str] = []
    if scoring:
        roles, left_out = _scoring_roles(path, roles)
        label_positive = None
    _check_options(roles, numeric, categorical, treatment_type, time_unit, response_days, arms, label_positive,
                   events_path, scoring)
    R = float(response_days)
    files, rows = _read_rows(path, roles, numeric, categorical, scoring)
    ids, original_ids = _customer_ids(rows, roles["id"])
    customers = _customers(rows, ids, numeric, categorical)
    given_label = _given_label(rows, roles, label_positive)  # checked before any events file is read
    treated, incentive, levels, arm_names, arm_levels, kind = _treatment(
        rows, roles["treatment"], treatment_type, control, arms, scoring)
    if not isinstance(arms_ordered, bool):
        raise UserInputError(f"{NAME}: option arms_ordered must be true or false, got {arms_ordered!r}")
    # two or more treated arms that are labels, not amounts: no model may read their codes as an order
    unordered = arm_levels is not None and not arms_ordered and len(arm_levels) > 2
    arm_order = None if not unordered else tuple(sorted(arm_levels, key=arm_levels.get))
    p = _propensity(rows, roles["propensity"], incentive, treated, levels)
    timeline = _timeline(rows, roles, time_unit, history_end, R, events_path, events_columns, event_type_map,
                         label_derived=roles["label"] is None and not scoring)
    events, redemptions, offer_exposures, n_unknown = _events(timeline.events_raw, timeline.event_days, ids,
                                                              original_ids, timeline.event_source)
    H = timeline.history_end
    start = H if timeline.as_of_days is None else timeline.as_of_days
    if scoring:  # the outcome is what the model predicts: no label, none derived
        purchased, rev = np.zeros(len(rows), np.int8), np.zeros(len(rows))
    else:
        purchased, rev = given_label if given_label is not None else _window_label(events, ids, start, R)
    outcomes = pd.DataFrame({"customer_id": ids, "purchased": purchased.astype(np.int8),
                             "revenue": rev.astype(np.float64)})
    exposures = _exposures(rows, roles, ids, timeline, treated, incentive, p, arm_names)
    offers = _catalogue(offers_path, offers_columns, "offers", "offer_id", OFFER_TEXT, OFFER_NUMBERS)
    products = _catalogue(products_path, products_columns, "products", "product_id", PRODUCT_TEXT, ("price",))
    meta = {
        "source": NAME,
        "files": {"path": [str(f) for f in files]},
        "roles": {**roles, "numeric": numeric, "categorical": categorical},
        "treatment_type": kind,
        "time_kind": timeline.kind,
        "day0": None if timeline.day0 is None else str(pd.Timestamp(timeline.day0).isoformat()),
        "history_end": H,
        "response_days": R,
        "label_derived": roles["label"] is None and not scoring,
        "counts": {"rows": len(rows), "events": len(events), "events_dropped_unknown_id": int(n_unknown),
                   "label_rate": float(purchased.mean()), "treated_share": float(treated.mean())},
    }
    decision_days = timeline.decision_days
    extras = {
        "arms": arm_levels,
        "original_ids": (None if original_ids is None
                         else pd.DataFrame({"customer_id": ids, "original_id": original_ids})),
        "decision_time_spread_days": (None if decision_days is None
                                      else float(decision_days.max() - decision_days.min())),
        "redemptions": redemptions,
        "offer_exposures": offer_exposures,
        "as_of": (None if timeline.as_of_days is None
                  else pd.DataFrame({"customer_id": ids, "as_of": timeline.as_of_days})),
    }
    if scoring:
        extras["scoring"] = {
            "prediction_time": H, "rule": _prediction_time_rule(history_end, roles, timeline),
            "prediction_date": (None if timeline.day0 is None
                                else (pd.Timestamp(timeline.day0) + pd.Timedelta(days=H)).isoformat()),
            "per_row_as_of": timeline.as_of_days is not None, "left_out_roles": left_out,
        }
    meta.update({k: v for k, v in extras.items() if v is not None})
    for option, value in (("events_path", events_path), ("offers_path", offers_path), ("products_path", products_path)):
        if value is not None:
            meta["files"][option] = [str(f) for f in resolve_files(value, option, NAME)]
    data = CanonicalData(
        customers=customers, events=events, exposures=exposures, outcomes=outcomes, products=products,
        offers=offers, truth=None, history_end=H, response_days=R, incentive_levels=levels, arm_names=arm_order,
        name=NAME, meta=meta,
    )
    return data.validate()


# ----------------------------------------------------------------------------------------------
# Pieces of load_table
# ----------------------------------------------------------------------------------------------


def _scoring_roles(path, roles: dict[str, str | None]) -> tuple[dict[str, str | None], list[str]]:
    """(the roles scoring mode reads, the named roles it leaves out): no outcome role; the treatment only when
    every rows file has its column."""
    kept = {o: (None if o in SCORING_UNREAD_ROLES else c) for o, c in roles.items()}
    left_out = [o for o in SCORING_UNREAD_ROLES if roles[o] is not None]
    if roles["treatment"] is not None:
        files = resolve_files(path, "path", NAME)
        if any(roles["treatment"] not in file_columns(f, NAME) for f in files):
            kept["treatment"] = None
            left_out.append("treatment")
    return kept, left_out


def _prediction_time_rule(option, roles: dict[str, str | None], timeline: "_Timeline") -> str:
    """Which rule of :func:`_history_end` set the prediction time of scoring mode, in words."""
    if timeline.as_of_days is not None:
        return f"each row's as_of (column '{roles['as_of']}')"
    if option is not None:
        return f"option history_end={option!r}"
    if timeline.decision_days is not None:
        return f"the earliest decision time (column '{roles['time']}')"
    if timeline.event_days is not None and len(timeline.event_days):
        return "the day after the last event's day"
    return "day 0 (no time, as_of or events to place it)"


def _check_options(roles: dict[str, str | None], numeric: list[str], categorical: list[str], treatment_type: str,
                   time_unit: str, response_days, arms, label_positive, events_path, scoring: bool = False) -> None:
    if treatment_type not in TREATMENT_TYPES:
        raise UserInputError(f"{NAME}: option treatment_type must be one of {list(TREATMENT_TYPES)}, "
                         f"got {treatment_type!r}")
    if time_unit not in TIME_UNITS:
        raise UserInputError(f"{NAME}: option time_unit must be one of {list(TIME_UNITS)}, got {time_unit!r}")
    if (not isinstance(response_days, (int, float)) or isinstance(response_days, bool)
            or not math.isfinite(float(response_days)) or float(response_days) <= 0):
        raise UserInputError(f"{NAME}: option response_days must be a finite number of days > 0, got {response_days!r}")
    if arms is not None and (isinstance(arms, str) or not isinstance(arms, Sequence)):
        raise UserInputError(f"{NAME}: option arms must be a list of treatment values, got {arms!r}")
    if roles["label"] is None and events_path is None and not scoring:
        raise DataValidationError(
            f"{NAME}: option label is required (the 0/1 outcome column), unless events_path is given to derive "
            f"a next-window purchase label"
        )
    if roles["label"] is None and label_positive is not None:
        raise UserInputError(f"{NAME}: option label_positive needs option label")
    _check_roles(roles, numeric, categorical)


def _read_rows(path, roles: dict[str, str | None], numeric: list[str], categorical: list[str], scoring: bool = False):
    """(the rows files, their role columns as one DataFrame); numeric roles as float64, the others as read."""
    files = resolve_files(path, "path", NAME)
    wanted = [c for c in roles.values() if c is not None] + categorical + numeric
    role = (" (named by the column role options; scoring reads the id, feature, time and as_of roles: set a role "
            "to null to leave it out, e.g. time=null)" if scoring else " (named by the column role options)")
    rows = read_files(files, wanted, numeric=numeric + [c for c in (roles["propensity"], roles["revenue"]) if c],
                      what=NAME, role=role)
    if len(rows) == 0:
        raise DataValidationError(f"{NAME}: the rows file(s) {[f.name for f in files]} have no data rows")
    return files, rows


def _customers(rows: pd.DataFrame, ids: np.ndarray, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    cust = {"customer_id": ids}
    for c in categorical:
        cust[c] = text_categories(rows[c])
    for c in numeric:
        cust[c] = finite_numbers(rows[c], c)
    return pd.DataFrame(cust)


def _given_label(rows: pd.DataFrame, roles: dict[str, str | None], label_positive):
    """(purchased int8, revenue float64) from the label and revenue columns; None without a label column."""
    column = roles["label"]
    if column is None:
        if roles["revenue"] is not None:
            raise UserInputError(f"{NAME}: option revenue needs option label (a derived label takes revenue from events)")
        return None
    purchased = binary_values(rows[column], column, positive=label_positive, role="label ")
    _check_two_classes(purchased, f"column '{column}'")
    revenue = (finite_numbers(rows[roles["revenue"]], roles["revenue"], allow_negative=False)
               if roles["revenue"] else np.zeros(len(rows)))
    return purchased, revenue


def _propensity(rows: pd.DataFrame, column: str | None, incentive: np.ndarray, treated: np.ndarray, levels):
    """The propensity column (checked to lie in (0, 1]), else the observed share of each level."""
    if column is None:
        return _observed_propensity(incentive, treated, levels)
    p = finite_numbers(rows[column], column)
    bad = (p <= 0) | (p > 1)
    if bad.any():
        raise DataValidationError(
            f"{NAME}: column '{column}' (propensity) must lie in (0, 1], got e.g. {_examples(rows[column], bad)}"
        )
    return p


@dataclass
class _Timeline:
    """Decision and event times on one day axis, and the history end."""

    decision_days: np.ndarray | None  # [n] days, None without a time column
    history_end: float
    day0: np.datetime64 | None  # day 0 of timestamp times, None for numeric ones
    kind: str | None  # "datetime" | "days" | None (no times at all)
    events_raw: pd.DataFrame | None  # the events as read (canonical column names), None without events_path
    event_days: np.ndarray | None  # [events] days
    event_source: dict[str, str]  # canonical event column -> file column
    as_of_days: np.ndarray | None = None  # [n] days, each row's prediction time; None without an as_of column


def _timeline(rows: pd.DataFrame, roles: dict[str, str | None], time_unit: str, history_end, R: float,
              events_path, events_columns, event_type_map, label_derived: bool) -> _Timeline:
    decision, time_kind = (None, None)
    if roles["time"] is not None:
        decision, time_kind = _parse_time(rows[roles["time"]], roles["time"], time_unit, NAME)
    as_of, as_of_kind = (None, None)
    if roles["as_of"] is not None:
        as_of, as_of_kind = _parse_time(rows[roles["as_of"]], roles["as_of"], time_unit, NAME)
        if time_kind is not None and as_of_kind != time_kind:
            raise DataValidationError(
                f"{NAME}: column '{roles['time']}' holds {'timestamps' if time_kind == 'datetime' else 'numbers'} "
                f"but as_of column '{roles['as_of']}' holds "
                f"{'timestamps' if as_of_kind == 'datetime' else 'numbers'}; both must be of the same kind")
        time_kind = time_kind or as_of_kind
    events_raw, ev_time, ev_kind, ev_source = None, None, None, {}
    if events_path is not None:
        files = resolve_files(events_path, "events_path", f"{NAME} events")
        events_raw, ev_source = read_events(files, events_columns, event_type_map, id_column=roles["id"],
                                            what=f"{NAME} events")
        ev_time, ev_kind = _parse_time(events_raw["ts"], ev_source["ts"], time_unit, f"{NAME} events")
        if time_kind is not None and len(ev_time) and ev_kind != time_kind:
            raise DataValidationError(
                f"{NAME}: column '{roles['time'] or roles['as_of']}' holds "
                f"{'timestamps' if time_kind == 'datetime' else 'numbers'} but events column '{ev_source['ts']}' "
                f"holds {'timestamps' if ev_kind == 'datetime' else 'numbers'}; "
                f"both must be of the same kind"
            )
    kind = time_kind or (ev_kind if ev_time is not None and len(ev_time) else None)
    day0 = None
    if kind == "datetime":
        starts = [a.min() for a in (decision, as_of, ev_time) if a is not None and len(a) and a.dtype.kind == "M"]
        day0 = min(starts).astype("datetime64[D]").astype("datetime64[ns]")
    decision_days, ev_days, as_of_days = _days(decision, day0), _days(ev_time, day0), _days(as_of, day0)
    H = _history_end(history_end, decision_days if as_of_days is None else as_of_days, ev_days, label_derived, R,
                     day0)
    if as_of_days is not None:
        _check_as_of(rows, roles, as_of_days, decision_days, H)
    if decision_days is not None:
        early = decision_days < H
        if early.any():
            raise DataValidationError(
                f"{NAME}: history_end (day {H:g}) is after the decision time of {int(early.sum())} row(s) "
                f"(column '{roles['time']}', e.g. {_examples(rows[roles['time']], early)}); features would see "
                f"events after those decisions — set history_end to at most the earliest decision time"
            )
    return _Timeline(decision_days, H, day0, kind, events_raw, ev_days, ev_source, as_of_days)


def _check_as_of(rows: pd.DataFrame, roles: dict[str, str | None], as_of: np.ndarray, decision, H: float) -> None:
    """Each row's prediction time is at or after history_end and not after its own decision time."""
    column = roles["as_of"]
    early = as_of < H
    if early.any():
        raise DataValidationError(
            f"{NAME}: as_of column '{column}' has {int(early.sum())} prediction time(s) before history_end (day "
            f"{H:g}), e.g. {_examples(rows[column], early)}; history_end may be at most the earliest as_of")
    if decision is not None:
        late = as_of > decision
        if late.any():
            raise DataValidationError(
                f"{NAME}: as_of column '{column}' is after the decision time (column '{roles['time']}') in "
                f"{int(late.sum())} row(s), e.g. {_examples(rows[column], late)}; features would see events after "
                f"the decision — a row's as_of must be at or before its decision time")


def _exposures(rows: pd.DataFrame, roles: dict[str, str | None], ids: np.ndarray, timeline: _Timeline,
               treated: np.ndarray, incentive: np.ndarray, p: np.ndarray, arm_names) -> pd.DataFrame:
    n = len(rows)
    exp = {
        "customer_id": ids,
        "ts": (timeline.decision_days if timeline.decision_days is not None
               else timeline.as_of_days if timeline.as_of_days is not None else np.full(n, timeline.history_end)),
        "treatment": treated.astype(np.int8),
        "incentive": incentive.astype(np.float64),
        "propensity": p.astype(np.float64),
        "offer_id": (integer_ids(rows[roles["offer"]], roles["offer"], missing_as=-1) if roles["offer"]
                     else np.full(n, -1, np.int64)),
    }
    if roles["engaged"] is not None:
        exp["engaged"] = (binary_values(rows[roles["engaged"]], roles["engaged"], role="engaged ")
                          & treated.astype(np.int8)).astype(np.int8)
    if arm_names is not None:
        exp["arm"] = arm_names
    return pd.DataFrame(exp)


def _check_two_classes(purchased: np.ndarray, what: str) -> None:
    if np.unique(purchased).size < 2:
        raise DataValidationError(
            f"{NAME}: label {what} is constant (all {int(purchased[0])}); a classifier needs both classes"
        )


def _customer_ids(rows: pd.DataFrame, column: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(int64 customer ids, original id strings or None); duplicated or missing ids are errors."""
    n = len(rows)
    if column is None:
        return np.arange(n, dtype=np.int64), None
    raw = rows[column]
    obj = pd.Series(raw, dtype=object)
    refuse_missing(pd.isna(raw).to_numpy(), NAME, f"id column '{column}'")
    x = _numbers_or_none(raw)
    integral = x is not None and bool(np.all(np.isfinite(x) & (np.mod(x, 1) == 0) & (np.abs(x) < 2**62)))
    if integral:
        ids, original = x.astype(np.int64), None
    else:
        original = obj.astype(str).str.strip().to_numpy(dtype=object)
        uniques = np.unique(original)
        ids = np.searchsorted(uniques, original).astype(np.int64)
    dup = pd.Series(ids).duplicated(keep=False).to_numpy()
    if dup.any():
        examples = [_plain(v) for v in pd.unique(obj[dup])[:5]]
        raise DataValidationError(
            f"{NAME}: id column '{column}' has duplicated values, e.g. {examples} ({int(dup.sum())} rows share an "
            f"id); expected one row per customer"
        )
    return ids, original


def _treatment(rows: pd.DataFrame, column: str | None, treatment_type: str, control, arms, scoring: bool = False):
    """(treated int8, incentive float64, levels, arm names or None, {arm: level} or None, kind); ``scoring``: one
    level (e.g. every new customer sent the same coupon) and an absent control arm are fine."""
    n = len(rows)
    if column is None:
        return np.zeros(n, np.int8), np.zeros(n), (0.0,), None, None, "none"
    values = rows[column]
    obj = pd.Series(values, dtype=object)
    refuse_missing(pd.isna(values).to_numpy(), NAME, f"treatment column '{column}'",
                   "control rows need an explicit value (0 or the control arm)")
    x = _numbers_or_none(values) if treatment_type != "categorical" else None
    kind = treatment_type
    if kind == "auto":
        if x is None:
            text = obj.astype(str).str.strip().str.lower()
            kind = "binary" if text.isin(TRUE_STRINGS + FALSE_STRINGS).all() and control is None else "categorical"
        else:
            kind = "binary" if np.isin(x, (0.0, 1.0)).all() else "numeric"
    if kind == "binary":
        t = binary_values(values, column, role="treatment ")
        incentive, levels, names, arm_levels = t.astype(np.float64), (0.0, 1.0), None, None
    elif kind == "numeric":
        if x is None:
            v = pd.to_numeric(obj, errors="coerce")
            raise DataValidationError(
                f"{NAME}: treatment column '{column}' must be a numeric incentive level, got non-numeric value(s) "
                f"e.g. {_examples(obj, (v.isna() & obj.notna()).to_numpy())}"
            )
        incentive = finite_numbers(pd.Series(x), column)
        neg = incentive < 0
        if neg.any():
            raise DataValidationError(
                f"{NAME}: treatment column '{column}' has {int(neg.sum())} negative incentive(s), e.g. "
                f"{_examples(obj, neg)}; expected incentive levels >= 0 (0 = no incentive)"
            )
        t = (incentive > 0).astype(np.int8)
        distinct = np.unique(incentive)
        levels = tuple(float(v) for v in np.union1d(distinct, [0.0])) if distinct.size <= MAX_LEVELS else None
        names, arm_levels = None, None
    else:
        t, incentive, levels, names, arm_levels = _arms(obj, column, control, arms, scoring)
    if np.unique(incentive).size < 2 and not scoring:
        raise DataValidationError(
            f"{NAME}: treatment column '{column}' has a single value ({_plain(obj.iloc[0])!r}); uplift and response "
            f"models need at least two treatment levels — leave option treatment unset when there was no campaign"
        )
    return t, incentive, levels, names, arm_levels, kind


def _arms(obj: pd.Series, column: str, control, arms, scoring: bool = False):
    """Categorical arms: control -> level 0, the others -> 1..K in ``arms`` order (default sorted)."""
    text = obj.astype(str).str.strip()
    seen = sorted(pd.unique(text).tolist())
    if control is None:
        raise DataValidationError(
            f"{NAME}: treatment column '{column}' holds categorical arms {seen[:10]}; set option control to the "
            f"arm that means 'no treatment'"
        )
    ctrl = str(control).strip()
    if ctrl not in seen and not scoring:
        raise DataValidationError(
            f"{NAME}: control arm {control!r} does not occur in treatment column '{column}'; its values are {seen[:10]}"
        )
    order = [str(a).strip() for a in arms] if arms is not None else [a for a in seen if a != ctrl]
    if ctrl in order:
        raise DataValidationError(f"{NAME}: option arms lists the control arm {control!r}; list only treated arms")
    unlisted = [a for a in seen if a != ctrl and a not in order]
    if unlisted:
        raise DataValidationError(
            f"{NAME}: treatment column '{column}' has arm(s) {unlisted[:10]} that option arms {order} does not list"
        )
    arm_levels = {ctrl: 0.0, **{a: float(i + 1) for i, a in enumerate(order)}}
    incentive = text.map(arm_levels).to_numpy(dtype=np.float64)
    treated = (incentive > 0).astype(np.int8)
    levels = tuple(sorted(arm_levels.values()))
    return treated, incentive, levels, pd.Categorical(text.to_numpy(dtype=object), categories=[ctrl, *order]), \
        arm_levels


def _observed_propensity(incentive: np.ndarray, treated: np.ndarray, levels) -> np.ndarray:
    """Share of rows with the same logged level (same treated flag when the incentive is continuous)."""
    key = incentive if levels is not None else treated.astype(np.float64)
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    return counts[inverse] / float(len(key))


def _days(t: np.ndarray | None, day0) -> np.ndarray | None:
    if t is None:
        return None
    if t.dtype.kind == "M":
        return (t - day0) / DAY
    return t.astype(np.float64)


def _history_end(option, decision_days, ev_days, label_derived: bool, R: float, day0) -> float:
    if option is not None:
        if isinstance(option, str):
            if day0 is None:
                raise UserInputError(f"{NAME}: option history_end={option!r} is a date, but the times are numbers (or "
                                 f"absent); give history_end in the times' own unit instead")
            try:
                stamp = pd.Timestamp(option)
            except (ValueError, TypeError):
                raise UserInputError(f"{NAME}: option history_end must be a number of days or a date string, "
                                 f"got {option!r}") from None
            if stamp.tzinfo is not None:
                stamp = stamp.tz_convert("UTC").tz_localize(None)
            return float((stamp.to_datetime64().astype("datetime64[ns]") - day0) / DAY)
        if isinstance(option, bool) or not isinstance(option, (int, float)) or not math.isfinite(float(option)):
            raise UserInputError(f"{NAME}: option history_end must be a finite number of days or a date string, "
                             f"got {option!r}")
        return float(option)
    if decision_days is not None:
        return float(decision_days.min())
    if ev_days is not None and len(ev_days):
        last_day = float(math.floor(ev_days.max()))
        return last_day - R if label_derived else last_day + 1.0
    return 0.0


def _window_label(events: pd.DataFrame, ids: np.ndarray, H, R: float) -> tuple[np.ndarray, np.ndarray]:
    """(purchased int8, revenue) per customer from purchase events in [H, H + R); H: one day or [n] days (each
    row's as_of). A constant label is an error."""
    ts = events["ts"].to_numpy(np.float64)
    rows = pd.Index(ids).get_indexer(events["customer_id"].to_numpy())
    start = np.where(rows >= 0, np.broadcast_to(np.asarray(H, dtype=np.float64), (len(ids),))[np.maximum(rows, 0)],
                     np.inf)
    sel = (events["event_type"] == "purchase").to_numpy() & (rows >= 0) & (ts >= start) & (ts < start + R)
    rows = rows[sel]
    count = np.bincount(rows, minlength=len(ids))
    revenue = np.bincount(rows, weights=events["amount"].to_numpy(np.float64)[sel], minlength=len(ids))
    purchased = (count > 0).astype(np.int8)
    _check_two_classes(purchased, "the derived next-window purchase label")
    return purchased, revenue


def _events(raw: pd.DataFrame | None, ev_days: np.ndarray | None, ids: np.ndarray, original_ids,
            source: dict[str, str]):
    """(canonical events sorted by (customer_id, ts), redemptions or None, offer exposures or None, #dropped)."""
    if raw is None or len(raw) == 0:
        events = pd.DataFrame({
            "customer_id": np.zeros(0, np.int64), "ts": np.zeros(0), "event_type": pd.Categorical([]),
            "product_id": np.zeros(0, np.int64), "category": pd.Categorical([]), "amount": np.zeros(0),
            "promo_active": np.zeros(0, np.int8),
        })
        return events, None, None, 0
    what = f"{NAME} events"
    cid, known = _event_customer_ids(raw["customer_id"], source["customer_id"], ids, original_ids)
    etype = pd.Series(raw["event_type"], dtype=object)
    refuse_missing(etype.isna().to_numpy(), what, f"column '{source['event_type']}'")
    n = len(raw)
    # an empty amount is a non-purchase event's: 0
    amount = (finite_numbers(pd.to_numeric(raw["amount"]).fillna(0.0), source["amount"], what, allow_negative=False)
              if "amount" in raw.columns else np.zeros(n))
    product = (integer_ids(raw["product_id"], source["product_id"], what, missing_as=-1)
               if "product_id" in raw.columns else np.full(n, -1, np.int64))
    category = (text_categories(raw["category"], missing="") if "category" in raw.columns
                else pd.Categorical(np.full(n, "", dtype=object)))
    promo = (binary_values(raw["promo_active"], source["promo_active"], what) if "promo_active" in raw.columns
             else np.zeros(n, np.int8))
    frame = pd.DataFrame({
        "customer_id": cid, "ts": ev_days, "event_type": etype.astype(str).to_numpy(dtype=object),
        "product_id": product, "category": category, "amount": amount, "promo_active": promo,
    })
    if "offer_id" in raw.columns:
        frame["offer_id"] = integer_ids(raw["offer_id"], source["offer_id"], what, missing_as=-1)
    frame = frame.loc[known]
    order = np.lexsort((frame["ts"].to_numpy(), frame["customer_id"].to_numpy()))
    frame = frame.iloc[order].reset_index(drop=True)
    types = frame["event_type"].to_numpy(dtype=object)
    frame["event_type"] = pd.Categorical(types, categories=sorted(set(types)))
    redemptions, offer_exposures = _offer_events(frame, types)
    return frame, redemptions, offer_exposures, int((~known).sum())


def _event_customer_ids(values: pd.Series, column: str, ids: np.ndarray, original_ids):
    """(int64 customer id per event, -1 for unknown ones; bool: the id is one of the rows file's)."""
    if original_ids is None:
        x = _numbers_or_none(values)
        if x is None:
            raise DataValidationError(
                f"{NAME} events: column '{column}' must hold the rows file's integer ids, got e.g. "
                f"{_examples(values, pd.to_numeric(values, errors='coerce').isna().to_numpy())}"
            )
        ok = np.isfinite(x) & (np.mod(np.nan_to_num(x, nan=0.5), 1) == 0)
        cid = np.where(ok, np.nan_to_num(x, nan=-1), -1).astype(np.int64)
        return cid, ok & np.isin(cid, ids)
    pos = pd.Index(original_ids).get_indexer(pd.Series(values, dtype=object).astype(str).str.strip())
    known = pos >= 0
    return np.where(known, ids[np.maximum(pos, 0)], -1).astype(np.int64), known


def _offer_events(frame: pd.DataFrame, types: np.ndarray):
    """(redemptions, offer exposures): (customer_id, offer_id, ts) of the events with an offer of those types."""
    if "offer_id" not in frame.columns:
        return None, None
    has_offer = frame["offer_id"].to_numpy() >= 0
    found = []
    for kinds in (REDEMPTION_TYPES, OFFER_EXPOSURE_TYPES):
        sel = has_offer & np.isin(types, kinds)
        found.append(frame.loc[sel, ["customer_id", "offer_id", "ts"]].reset_index(drop=True) if sel.any() else None)
    return tuple(found)


def _catalogue(path, columns, table: str, id_column: str, text: Sequence[str], numbers: Sequence[str]):
    """An offers/products table: unique integer ids plus the optional text and number columns the files have."""
    if path is None:
        return None
    what = f"{NAME} {table}"
    files = resolve_files(path, f"{table}_path", what)
    optional = ("product_id", *text, *numbers) if table == "offers" else (*text, *numbers)
    raw, source = read_canonical(files, (id_column,), optional, columns, option=f"{table}_columns", numeric=numbers,
                                 what=what)
    out = {id_column: integer_ids(raw[id_column], source[id_column], what)}
    dup = pd.Series(out[id_column]).duplicated(keep=False).to_numpy()
    if dup.any():
        raise DataValidationError(f"{what}: column '{source[id_column]}' has duplicated ids, e.g. "
                                  f"{pd.unique(out[id_column][dup])[:5].tolist()}")
    if "product_id" in raw.columns and id_column != "product_id":
        out["product_id"] = integer_ids(raw["product_id"], source["product_id"], what, missing_as=-1)
    for c in text:
        if c in raw.columns:
            out[c] = np.asarray(text_categories(raw[c], missing=UNKNOWN if table == "offers" else ""), dtype=object)
    for c in numbers:
        if c in raw.columns:
            out[c] = finite_numbers(raw[c], source[c], what, allow_negative=False)
    if table == "products" and "price" in out and (out["price"] <= 0).any():
        price = pd.Series(out["price"])
        raise DataValidationError(f"{NAME}: products column 'price' must be > 0, got e.g. "
                                  f"{_examples(price, (price <= 0).to_numpy())}")
    return pd.DataFrame(out)


__all__ = [
    "binary_values",
    "finite_numbers",
    "integer_ids",
    "load_table",
    "refuse_missing",
    "reserved_feature_names",
    "text_categories",
]
