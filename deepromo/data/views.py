"""Task views: canonical tables -> one flat frame per model family.

``customer_view``   one row per customer: static attributes + RFM + 7/30/90-day window
                    aggregates from the behaviour history, and the observed campaign labels
                    (splc and the classic classifiers).
``response_view``   the customer view plus the logged incentive, its propensity and the
                    outcome (dipn and uplift baselines).
``purchase_view``   the customer view plus the campaign context, the response-window purchase as
                    the label, and each customer's raw event sequence (txl and the RNN baselines).
``offer_graph_view`` the positive (customer, offer) redemption pairs of the customer–product–offer
                    graph, which rides along as ``TaskView.graph`` (gat; ``deepromo.data.graph.datamodule``).

Only data before ``history_end`` is turned into features; the response window after it only
provides labels. Ground truth (synthetic worlds) is carried in ``TaskView.truth`` row-aligned
with ``frame`` and never enters the feature columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from deepromo.data.errors import UnknownNameError
from deepromo.data.features import COUNT_LIKE_PREFIXES, behaviour_features, static_columns
from deepromo.data.sequences import EventSequences, group_events
from deepromo.data.tables import CanonicalData, DataValidationError

SEGMENTS = ("inactive", "unengaged", "engaged")  # stage-1 classes of the two-stage model


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
    or None; the datamodule's spec and every model's curve use them.
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
            ids = self.frame["customer_id"].to_numpy()[rows]
            as_of = seqs.as_of if np.ndim(seqs.as_of) == 0 else np.asarray(seqs.as_of)[rows]
            seqs = group_events(seqs.events, ids, as_of)
        truth = None if self.truth is None else self.truth.iloc[rows].reset_index(drop=True)
        return replace(self, frame=self.frame.iloc[rows].reset_index(drop=True), truth=truth, sequences=seqs)

    def scoring_context(self) -> dict:
        """Keyword arguments that ``model.predict_frame(self.frame, ...)`` needs beyond the frame: the events
        and prediction time of sequence views, nothing for flat views."""
        if self.sequences is None:
            return {}
        return {"events": self.sequences.events, "as_of": self.sequences.as_of}


def customer_view(data: CanonicalData) -> TaskView:
    """One row per customer with features and the observed two-stage labels.

    Labels: ``segment`` (0 inactive, 1 unengaged purchase, 2 engaged purchase: treated, engaged
    with the campaign and purchased) and ``engaged`` (1 for the engaged segment).
    """
    data.validate()
    customers = data.customers.reset_index(drop=True)
    cat_cols, num_cols = static_columns(customers)
    behaviour = behaviour_features(data.events, customers["customer_id"].to_numpy(), data.history_end)
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
    frame["first_seen"] = data.history_end - frame["tenure_active_days"]
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
    view.stratify = "purchased"
    view.label_classes = {"purchased": ("no", "yes")}
    view.name = "response"
    return view


def purchase_view(data: CanonicalData) -> TaskView:
    """Will the customer purchase in the response window? One row per customer at ``history_end``.

    Features: the customer view's static attributes, RFM and 7/30/90-day windows, plus the campaign
    context known at decision time (``campaign_incentive``: the incentive the customer was sent, 0 = none)
    and the raw event sequence before ``history_end`` (``TaskView.sequences``). Label: ``purchased``.
    """
    view = customer_view(data)
    exp = data.exposures.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    ids = view.frame["customer_id"]
    frame = view.frame.copy()
    frame["campaign_incentive"] = exp["incentive"].reindex(ids).fillna(0.0).to_numpy(dtype=np.float32)
    frame["purchased"] = (view.frame["segment"].to_numpy() > 0).astype(np.float32)
    view.frame = frame
    view.numeric = view.numeric + ["campaign_incentive"]
    view.targets = {"y": "purchased"}
    view.stratify = "purchased"
    view.label_classes = {"purchased": ("no", "yes")}
    view.sequences = group_events(data.events, ids.to_numpy(), data.history_end)
    view.name = "purchase"
    return view


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
VIEW_OPTIONS = {"customer": (), "response": (), "purchase": (),
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
