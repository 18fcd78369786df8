"""Task views: canonical tables -> one flat frame per model family.

``customer_view``   one row per customer: static attributes + RFM + 7/30/90-day window
                    aggregates from the behaviour history, and the observed campaign labels
                    (splc and the classic classifiers).
``response_view``   the customer view plus the logged incentive, its propensity and the
                    outcome (dipn and uplift baselines).
``purchase_view``   the customer view plus the campaign context, the response-window purchase as
                    the label, and each customer's raw event sequence (txl and the RNN baselines);
                    with ``points_every_days``, one row per (customer, prediction time ``as_of``).
``offer_graph_view`` the positive (customer, offer) redemption pairs of the customer–product–offer
                    graph, which rides along as ``TaskView.graph`` (gat; ``deepromo.data.graph.datamodule``).

Only data before a row's prediction time (``history_end``, or the row's own ``as_of``) is turned into
features; the window after it only provides labels. Ground truth (synthetic worlds) is carried in
``TaskView.truth`` row-aligned with ``frame`` and never enters the feature columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from deepromo.data.errors import UnknownNameError
from deepromo.data.features import COUNT_LIKE_PREFIXES, behaviour_features, static_columns, window_counts
from deepromo.data.sequences import EventSequences, group_events
from deepromo.data.tables import CanonicalData, DataValidationError

SEGMENTS = ("inactive", "unengaged", "engaged")  # stage-1 classes of the two-stage model
AS_OF_COLUMN = "as_of"  # a row's prediction time (days) in views whose rows have their own
LABEL_END_COLUMN = "label_end"  # end (exclusive, days) of a row's label window; the time split gaps by it


@dataclass
class TaskView:
    """A flat task table and the roles of its columns.

    frame: one row per example. categorical / numeric: feature columns.
    targets: PromoBatch key -> column (e.g. {"y_class": "segment", "y": "engaged"}).
    extras: PromoBatch key -> column for non-feature inputs (treatment, propensity, weight).
    stratify: column used for the stratified split; time_column: column for the time split.
    truth: ground truth row-aligned with frame (or None); label_classes: class names per target column.
    sequences: each row's raw behaviour events (sequence models), or None.
    graph: the OfferGraph of graph views, or None.
    treatment_levels: the ordered incentive levels the source declares (``CanonicalData.incentive_levels``),
    or None; the datamodule's spec and every model's curve use them. treatment_arms: the names of those
    levels when they are unordered categorical arms (``CanonicalData.arm_names``), else None.
    """

    frame: pd.DataFrame
    categorical: list[str]
    numeric: list[str]
    targets: dict[str, str]
    extras: dict[str, str] = field(default_factory=dict)
    stratify: str | None = None
    time_column: str | None = None
    truth: pd.DataFrame | None = None
    id_column: str = "customer_id"
    log_columns: list[str] = field(default_factory=list)
    label_classes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    name: str = "view"
    sequences: EventSequences | None = None
    graph: object | None = None  # the OfferGraph of graph views (deepromo.data.graph.build)
    treatment_levels: tuple[float, ...] | None = None  # the source's incentive levels (views with a treatment)
    treatment_arms: tuple[str, ...] | None = None  # names of unordered arms (level 0 = control), or None

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def feature_columns(self) -> list[str]:
        return self.categorical + self.numeric

    def subset(self, rows) -> "TaskView":
        """The same view restricted to ``rows`` (positions), sequences and truth included."""
        from dataclasses import replace

        rows = np.asarray(rows)
        seqs = self.sequences
        if seqs is not None:
            seqs = seqs.take(rows)
        truth = None if self.truth is None else self.truth.iloc[rows].reset_index(drop=True)
        return replace(self, frame=self.frame.iloc[rows].reset_index(drop=True), truth=truth, sequences=seqs)

    def scoring_context(self) -> dict:
        """Keyword arguments that ``model.predict_frame(self.frame, ...)`` needs beyond the frame: the events
        and prediction time of sequence views, nothing for flat views."""
        if self.sequences is None:
            return {}
        return {"events": self.sequences.distinct_events(), "as_of": self.sequences.as_of}


def customer_view(data: CanonicalData) -> TaskView:
    """One row per customer with features and the observed two-stage labels.

    Labels: ``segment`` (0 inactive, 1 unengaged purchase, 2 engaged purchase: treated, engaged
    with the campaign and purchased) and ``engaged`` (1 for the engaged segment).
    """
    data.validate()
    customers = data.customers.reset_index(drop=True)
    cat_cols, num_cols = static_columns(customers)
    as_of = source_as_of(data, customers["customer_id"])
    behaviour = behaviour_features(data.events, customers["customer_id"].to_numpy(), as_of)
    frame = pd.concat([customers, behaviour], axis=1)
    exp = data.exposures.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    out = data.outcomes.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    ids = frame["customer_id"]
    purchased = out["purchased"].reindex(ids).to_numpy()
    if np.isnan(purchased.astype(float)).any():
        missing = ids[np.isnan(purchased.astype(float))].iloc[:5].tolist()
        raise DataValidationError(f"{data.name}: 'outcomes' has no row for customer_id(s) {missing}")
    treated = exp["treatment"].reindex(ids).fillna(0).to_numpy().astype(bool)
    engaged_col = exp["engaged"] if "engaged" in exp.columns else exp["treatment"]
    engaged = engaged_col.reindex(ids).fillna(0).to_numpy().astype(bool) & treated
    purchased = purchased.astype(bool)
    frame["segment"] = np.where(purchased & engaged, 2, np.where(purchased, 1, 0)).astype(np.int64)
    frame["engaged"] = (purchased & engaged).astype(np.float32)
    frame["treated"] = treated.astype(np.float32)
    # P(logged treatment); constant within each group when the assignment did not depend on the customer
    frame["treatment_propensity"] = exp["propensity"].reindex(ids).fillna(1.0).to_numpy(dtype=np.float32)
    frame["first_seen"] = as_of - frame["tenure_active_days"]
    beh_cols = list(behaviour.columns)
    numeric = num_cols + beh_cols
    truth = None
    if data.truth is not None:
        truth = data.truth.set_index("customer_id").reindex(ids).reset_index()
    return TaskView(
        frame=frame,
        categorical=cat_cols,
        numeric=numeric,
        targets={"y_class": "segment", "y": "engaged"},
        stratify="segment",
        time_column="first_seen",
        truth=truth,
        log_columns=[c for c in numeric if c.startswith(COUNT_LIKE_PREFIXES)],
        label_classes={"segment": SEGMENTS, "engaged": ("no", "yes")},
        name="customer",
    )


def response_view(data: CanonicalData) -> TaskView:
    """Customer features plus logged incentive, propensity and outcome ``purchased`` (one row per customer)."""
    view = customer_view(data)
    exp = data.exposures.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    ids = view.frame["customer_id"]
    frame = view.frame.copy()
    frame["incentive"] = exp["incentive"].reindex(ids).fillna(0.0).to_numpy(dtype=np.float32)
    frame["propensity"] = exp["propensity"].reindex(ids).fillna(1.0).to_numpy(dtype=np.float32)
    frame["purchased"] = (view.frame["segment"].to_numpy() > 0).astype(np.float32)
    view.frame = frame
    view.targets = {"y": "purchased"}
    view.extras = {"treatment": "incentive", "propensity": "propensity"}
    view.treatment_levels = None if data.incentive_levels is None else tuple(float(v) for v in data.incentive_levels)
    view.treatment_arms = None if data.arm_names is None else tuple(str(a) for a in data.arm_names)
    view.stratify = "purchased"
    view.label_classes = {"purchased": ("no", "yes")}
    view.name = "response"
    return view


def purchase_view(data: CanonicalData, points_every_days=None, points_first_day=None, points_last_day=None,
                  horizon_days=None) -> TaskView:
    """Will the customer purchase in the next window? Features, the event sequence and the label per row.

    Default (no option): one row per customer at its prediction time, ``history_end`` (or the source's per-row
    ``as_of``: :func:`source_as_of`); label ``purchased`` = a purchase in the response window (the outcomes).
    Features: the customer view's static attributes, RFM and 7/30/90-day windows, plus the campaign context
    known at decision time (``campaign_incentive``: the incentive the customer was sent, 0 = none) and the raw
    event sequence before the prediction time (``TaskView.sequences``).

    With ``points_every_days`` (config ``data.view_options``): rolling prediction points, one row per
    (customer, ``as_of``) of a grid (:func:`prediction_points`), see :func:`rolling_purchase_view`.
    """
    options = {"points_first_day": points_first_day, "points_last_day": points_last_day,
               "horizon_days": horizon_days}
    if points_every_days is not None:
        return rolling_purchase_view(data, points_every_days, points_first_day, points_last_day, horizon_days)
    given = sorted(k for k, v in options.items() if v is not None)
    if given:
        raise DataValidationError(f"view option(s) {given} of the purchase view need points_every_days (rolling "
                                  "prediction points); without it the view has one row per customer at history_end")
    view = customer_view(data)
    exp = data.exposures.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    ids = view.frame["customer_id"]
    frame = view.frame.copy()
    frame["campaign_incentive"] = exp["incentive"].reindex(ids).fillna(0.0).to_numpy(dtype=np.float32)
    frame["purchased"] = (view.frame["segment"].to_numpy() > 0).astype(np.float32)
    as_of = source_as_of(data, ids)
    if np.ndim(as_of):  # staggered prediction times: the time split orders and gaps by them
        frame[AS_OF_COLUMN] = as_of
        frame[LABEL_END_COLUMN] = as_of + float(data.response_days)
        view.time_column = AS_OF_COLUMN
    view.frame = frame
    view.numeric = view.numeric + ["campaign_incentive"]
    view.targets = {"y": "purchased"}
    view.stratify = "purchased"
    view.label_classes = {"purchased": ("no", "yes")}
    view.sequences = group_events(data.events, ids.to_numpy(), as_of)
    view.name = "purchase"
    return view


def source_as_of(data: CanonicalData, customer_ids) -> float | np.ndarray:
    """Each customer's prediction time in days: ``data.meta['as_of']`` (a frame of ``customer_id, as_of``, e.g.
    the table source's ``as_of`` role) reindexed to ``customer_ids`` when the source has one, else the scalar
    ``history_end``."""
    table = data.meta.get("as_of") if isinstance(data.meta, dict) else None
    if table is None:
        return float(data.history_end)
    values = table.set_index("customer_id")["as_of"].reindex(np.asarray(customer_ids)).to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        missing = np.asarray(customer_ids)[~np.isfinite(values)][:5].tolist()
        raise DataValidationError(f"{data.name}: meta['as_of'] has no finite prediction time for customer_id(s) "
                                  f"{missing}")
    return values


def _days_option(value, option: str, positive: bool = False) -> float | None:
    """A view option in days: a finite number (> 0 when ``positive``) or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(float(value)) or (positive and float(value) <= 0):
        kind = "a finite number of days > 0" if positive else "a finite day number (days since day 0) or null"
        raise DataValidationError(f"view option {option} must be {kind}, got {value!r} (config key "
                                  f"data.view_options.{option})")
    return float(value)


def prediction_points(data: CanonicalData, every_days: float, first_day: float | None = None,
                      last_day: float | None = None, horizon_days: float | None = None) -> pd.DataFrame:
    """The rows of a rolling view: ``customer_id`` and ``as_of`` (days), sorted by (as_of, customers order).

    Grid: ``history_end + k * every_days`` for integers k (so ``history_end`` itself is a point when in range),
    from ``first_day`` (None = the first event) to ``last_day`` (None = the newest point whose label window
    ``[as_of, as_of + horizon_days)`` ends by the end of the last event's day, ``floor(max ts) + 1``; a later
    ``last_day`` is an error: its labels would miss the purchases after the data end). One row per customer and
    grid point at which the customer has at least one event before it (``ts < as_of``): none before a customer's
    first event. horizon_days: None = ``data.response_days``.
    """
    every = _days_option(every_days, "points_every_days", positive=True)
    first, last = _days_option(first_day, "points_first_day"), _days_option(last_day, "points_last_day")
    horizon = _days_option(horizon_days, "horizon_days", positive=True) or float(data.response_days)
    customers = data.customers["customer_id"].to_numpy()
    ev = data.events
    ts = ev["ts"].to_numpy(dtype=np.float64)
    code = pd.Index(customers).get_indexer(ev["customer_id"].to_numpy())
    known = (code >= 0) & np.isfinite(ts)
    if not known.any():
        raise DataValidationError(f"{data.name}: rolling prediction points need the customers' events; there are none")
    data_end = float(np.floor(ts[known].max())) + 1.0
    if last is None:
        last = data_end - horizon
    elif last + horizon > data_end:
        raise DataValidationError(
            f"view option points_last_day={last_day!r}: its label window [{last:g}, {last + horizon:g}) ends after "
            f"the data (events end on day {data_end - 1:g}, so windows must end by day {data_end:g}); use at most "
            f"{data_end - horizon:g} or a shorter horizon_days")
    if first is None:
        first = float(ts[known].min())
    H = float(data.history_end)
    grid = H + every * np.arange(np.ceil((first - H) / every), np.floor((last - H) / every) + 1)
    if grid.size == 0:
        raise DataValidationError(
            f"view options points_first_day={first_day!r}, points_last_day={last_day!r} hold no grid point "
            f"history_end ({H:g}) + k * {every:g} between day {first:g} and day {last:g}")
    first_event = np.full(len(customers), np.inf)
    np.minimum.at(first_event, code[known], ts[known])
    start = np.searchsorted(grid, first_event, side="right")  # the first grid point after the first event
    counts = grid.size - start
    cust = np.repeat(np.arange(len(customers)), counts)
    point = np.repeat(start, counts) + np.arange(cust.size) - np.repeat(np.cumsum(counts) - counts, counts)
    order = np.lexsort((cust, point))
    if order.size == 0:
        raise DataValidationError(f"{data.name}: no customer has an event before any prediction point "
                                  f"(days {grid[0]:g} .. {grid[-1]:g})")
    return pd.DataFrame({"customer_id": customers[cust[order]], AS_OF_COLUMN: grid[point[order]]})


def rolling_purchase_view(data: CanonicalData, every_days: float, first_day: float | None = None,
                          last_day: float | None = None, horizon_days: float | None = None) -> TaskView:
    """The purchase view at rolling prediction points: one row per (customer, ``as_of``) of
    :func:`prediction_points` (every grid point after the customer's first event), sorted by ``as_of``.

    Each row reads only events with ``ts < as_of``: static attributes (taken as known at every point), RFM and
    7/30/90-day windows (``behaviour_features`` with per-row as_of) and the event sequence (``sequences`` carries
    the per-row as_of). Label ``purchased`` = a ``purchase`` event in ``[as_of, as_of + horizon_days)``
    (horizon default: ``data.response_days``). ``campaign_incentive`` is 0 in every row: the canonical
    exposures hold one decision per customer, for the source's response window only, so no incentive is known
    at the other points (and one known only at ``history_end`` would exist in the latest split alone). Columns
    ``as_of`` (the view's ``time_column``) and ``label_end`` (= as_of + horizon) let the time split keep every
    training label before the test period; a customer repeats across rows, so only ``data.split=time`` is
    accepted (``deepromo.data.datamodule.split_indices``). ``truth`` is None (it describes the response window).
    """
    data.validate()
    if isinstance(data.meta, dict) and data.meta.get("as_of") is not None:
        raise DataValidationError(f"{data.name}: the source gives each row its own prediction time (as_of); "
                                  "rolling prediction points (points_every_days) would replace them — use one or "
                                  "the other")
    horizon = _days_option(horizon_days, "horizon_days", positive=True) or float(data.response_days)
    points = prediction_points(data, every_days, first_day, last_day, horizon)
    ids = points["customer_id"].to_numpy()
    as_of = points[AS_OF_COLUMN].to_numpy(dtype=np.float64)
    customers = data.customers.reset_index(drop=True)
    cat_cols, num_cols = static_columns(customers)
    static = customers.iloc[pd.Index(customers["customer_id"]).get_indexer(ids)].reset_index(drop=True)
    behaviour = behaviour_features(data.events, ids, as_of)
    frame = pd.concat([static, behaviour], axis=1)
    frame["campaign_incentive"] = np.zeros(len(frame), dtype=np.float32)
    ev = data.events
    buys = (ev["event_type"] == "purchase").to_numpy(dtype=bool, na_value=False)
    n_buys = window_counts(ev["customer_id"].to_numpy()[buys], ev["ts"].to_numpy(dtype=np.float64)[buys], ids,
                           as_of, as_of + horizon)
    frame["purchased"] = (n_buys > 0).astype(np.float32)
    frame[AS_OF_COLUMN] = as_of
    frame[LABEL_END_COLUMN] = as_of + horizon
    frame["first_seen"] = as_of - frame["tenure_active_days"].to_numpy()
    numeric = num_cols + list(behaviour.columns) + ["campaign_incentive"]
    return TaskView(
        frame=frame,
        categorical=cat_cols,
        numeric=numeric,
        targets={"y": "purchased"},
        stratify="purchased",
        time_column=AS_OF_COLUMN,
        log_columns=[c for c in numeric if c.startswith(COUNT_LIKE_PREFIXES)],
        label_classes={"purchased": ("no", "yes")},
        name="purchase",
        sequences=group_events(data.events, ids, as_of),
    )


def offer_graph_view(data: CanonicalData, **graph_options) -> TaskView:
    """One row per positive (customer, offer) redemption pair of every split of the customer–product–offer
    graph, which rides along as ``view.graph``. graph_options: ``deepromo.data.graph.build.build_offer_graph``'s
    (``split``, ``split_days``, ``half_life_days``, ``max_products_per_customer``, ``val_frac``, ``test_frac``,
    ``seed``)."""
    from deepromo.data.graph.build import SPLITS, build_offer_graph

    og = build_offer_graph(data, **graph_options)
    frames = []
    for s in SPLITS:
        p = og.pairs(s).numpy()
        frames.append(pd.DataFrame({
            "customer_id": og.node_ids["customer"][p[0]],
            "offer_id": og.node_ids["offer"][p[1]],
            "ts": og.pair_times[s].numpy(),
            "split": s,
            "redeemed": np.ones(p.shape[1], dtype=np.float32),
        }))
    frame = pd.concat(frames, ignore_index=True)
    return TaskView(frame=frame, categorical=[], numeric=[], targets={"y": "redeemed"}, time_column="ts",
                    label_classes={"redeemed": ("no", "yes")}, name="offer_graph", graph=og)


VIEWS = {"customer": customer_view, "response": response_view, "purchase": purchase_view,
         "offer_graph": offer_graph_view}
PREDICTION_POINT_OPTIONS = ("points_every_days", "points_first_day", "points_last_day", "horizon_days")
VIEW_OPTIONS = {"customer": (), "response": (), "purchase": PREDICTION_POINT_OPTIONS,
                "offer_graph": ("split", "split_days", "half_life_days", "max_products_per_customer", "val_frac",
                                "test_frac", "seed")}


def build_view(name: str, data: CanonicalData, **options) -> TaskView:
    """The task view ``name`` of ``data``; ``options`` (config ``data.view_options``) are the view's own settings,
    and one the view does not take is an error rather than silently ignored."""
    if name not in VIEWS:
        raise UnknownNameError(f"unknown task view '{name}'; valid views are {sorted(VIEWS)}")
    unknown = sorted(set(options) - set(VIEW_OPTIONS[name]))
    if unknown:
        raise DataValidationError(f"view '{name}' takes no option(s) {unknown}; its options are "
                                  f"{list(VIEW_OPTIONS[name]) or 'none'} (config key data.view_options)")
    return VIEWS[name](data, **options)
