"""The customer–product–offer graph of the offer ranker (``gat``), split into train / val / test without leakage.

:func:`build_offer_graph` turns :class:`~deepromo.data.tables.CanonicalData` into an :class:`OfferGraph`: PyG
``HeteroData`` message graphs cut in time, the positive (customer, offer) pairs of each split and the node ids.
Nodes, edges, positives and the split rule: docs/models/gat.md, "Graph construction".
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from deepromo.data.encoding import encode, fit_vocabulary
from deepromo.data.errors import UnknownNameError, UserInputError
from deepromo.data.features import COUNT_LIKE_PREFIXES, behaviour_features, static_columns
from deepromo.data.spec import GraphSpec
from deepromo.data.tables import CanonicalData, DataValidationError

NODE_TYPES = ("customer", "product", "offer")
PURCHASED = ("customer", "purchased", "product")
EXPOSED = ("customer", "exposed", "offer")
REDEEMED = ("customer", "redeemed", "offer")
APPLIES_TO = ("offer", "applies_to", "product")
EDGE_TYPES = (PURCHASED, EXPOSED, REDEEMED, APPLIES_TO)
SPLITS = ("train", "val", "test")
SPLIT_MODES = ("auto", "time", "customer")
MIN_SPLIT_SHARE = 0.05   # auto: val and test must each hold >= 5 % of the positive pairs ...
MIN_SPLIT_OFFERS = 3     # ... on >= 3 distinct offers, else the customer split is used
MIN_SPLIT_CUSTOMERS = 3  # ... unless fewer customers than this have response-window positives
WEIGHT_FLOOR = 1e-30     # decayed sums are floored here so that edge_attr stays > 0
DAY_COLUMNS = ("recency_days", "days_since_last_event", "tenure_active_days", "tenure_days")


def reverse_edge_type(edge_type: tuple[str, str, str]) -> tuple[str, str, str]:
    """('customer', 'purchased', 'product') -> ('product', 'rev_purchased', 'customer')."""
    src, rel, dst = edge_type
    return (dst, f"rev_{rel}", src)


@dataclass
class OfferGraph:
    """The graphs, positive pairs, node ids and cut times built by :func:`build_offer_graph`.

    graph_train / graph_val / graph_test: ``HeteroData`` message graphs cut at ``cuts[split]``, each with
        its split's positives as ``edge_label_index`` on the redeemed store. Graphs with the same cut share
        their node and edge tensors: do not modify them in place.
    graph_serve: the message graph of every interaction in the data (cut just after the last one), no
        labels: what a deployed ranker embeds customers and offers from.
    pairs_train / pairs_val / pairs_test: [2, P] long (customer node index, offer node index), disjoint.
    pair_times: split -> [P] float64, the first redemption day of each pair.
    node_ids: node type -> the id of every node (index = node index); :meth:`node_index` maps ids back.
    cuts: split -> the message-edge cut (days); val_start / test_start: the split boundaries.
    split_mode: "time" or "customer" (docs/models/gat.md, "Graph construction").
    customer_split: [n_customers] int8, 0 train / 1 val / 2 test for the customers whose response-window
        positives were split (customer mode), -1 for everyone else (and everyone in time mode).
    feature_columns: node type -> {"cat": [...], "num": [...]} column names of ``x_cat`` / ``x_num``.
    vocabularies: node type -> {cat column -> values; value i has code i + 1}.
    cat_cardinalities: node type -> cardinality of each ``x_cat`` column including code 0.
    info: counts, skipped rows, the chosen mode and why, build seconds.
    """

    graph_train: HeteroData
    graph_val: HeteroData
    graph_test: HeteroData
    pairs_train: torch.Tensor
    pairs_val: torch.Tensor
    pairs_test: torch.Tensor
    pair_times: dict[str, torch.Tensor]
    node_ids: dict[str, np.ndarray]
    cuts: dict[str, float]
    val_start: float
    test_start: float
    split_mode: str
    half_life_days: float
    customer_split: np.ndarray
    feature_columns: dict[str, dict[str, list[str]]]
    vocabularies: dict[str, dict[str, list[str]]]
    cat_cardinalities: dict[str, list[int]]
    info: dict = field(default_factory=dict)
    graph_serve: HeteroData | None = None

    def graph_spec(self) -> GraphSpec:
        """The :class:`~deepromo.data.spec.GraphSpec` a graph model is built from (types, sizes, feature widths)."""
        graph = self.graph_train
        return GraphSpec(node_types=tuple(NODE_TYPES), edge_types=tuple(graph.edge_types),
                         num_nodes={nt: int(len(ids)) for nt, ids in self.node_ids.items()},
                         cat_cardinalities={nt: list(self.cat_cardinalities[nt]) for nt in NODE_TYPES},
                         num_features={nt: int(graph[nt].x_num.shape[1]) for nt in NODE_TYPES})

    def node_index(self, node_type: str, ids) -> np.ndarray:
        """Node indices of ``ids`` for ``node_type`` (-1 for unknown ids)."""
        if node_type not in self.node_ids:
            raise UnknownNameError(f"unknown node type '{node_type}'; valid types are {list(self.node_ids)}")
        return pd.Index(self.node_ids[node_type]).get_indexer(np.asarray(ids))

    def graph(self, split: str) -> HeteroData:
        """The message graph of ``split`` ("train", "val" or "test"), with its positives as labels."""
        return {"train": self.graph_train, "val": self.graph_val, "test": self.graph_test}[_check_split(split)]

    def pairs(self, split: str) -> torch.Tensor:
        """[2, P] (customer, offer) node indices of the positive pairs of ``split``."""
        return {"train": self.pairs_train, "val": self.pairs_val, "test": self.pairs_test}[_check_split(split)]

    def seen_pairs(self, split: str) -> torch.Tensor:
        """[2, P] (customer, offer) pairs already redeemed before the cut of ``split``'s graph (its redeemed
        message edges): the items to exclude when ranking that split's customers for *new* redemptions."""
        return self.graph(split)[REDEEMED].edge_index

    def seen_mask(self, split: str) -> torch.Tensor:
        """Dense [n_customers, n_offers] bool version of :meth:`seen_pairs` (``exclude`` for ranking_report)."""
        n_customers, n_offers = len(self.node_ids["customer"]), len(self.node_ids["offer"])
        mask = torch.zeros(n_customers, n_offers, dtype=torch.bool)
        seen = self.seen_pairs(split)
        mask[seen[0], seen[1]] = True
        return mask

    def summary(self) -> dict:
        """Node and edge counts per graph and positives per split (plain python types)."""
        out: dict = {"split_mode": self.split_mode, "val_start": self.val_start, "test_start": self.test_start,
                     "cuts": dict(self.cuts),
                     "nodes": {nt: int(len(ids)) for nt, ids in self.node_ids.items()},
                     "positives": {split: int(self.pairs(split).shape[1]) for split in SPLITS},
                     "query_customers": {split: int(torch.unique(self.pairs(split)[0]).numel()) for split in SPLITS}}
        for split in SPLITS:
            graph = self.graph(split)
            out[f"edges_{split}"] = {"__".join(et): int(graph[et].edge_index.shape[1]) for et in EDGE_TYPES}
        return out


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise UnknownNameError(f"unknown split '{split}'; valid splits are {list(SPLITS)}")
    return split


class _Interactions(NamedTuple):
    """Every interaction of the data as node indices.

    timed: edge type (PURCHASED, EXPOSED, REDEEMED) -> (source idx [E], target idx [E], ts [E] days); the
        REDEEMED log is every redemption event (the positives). applies: (offer idx [A], product idx [A]),
        static. product_ids: [n_products] the product node ids (sorted).
    """

    timed: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray, np.ndarray]]
    applies: tuple[np.ndarray, np.ndarray]
    product_ids: np.ndarray


# ----------------------------------------------------------------------------------------------
# Public entry point
# ----------------------------------------------------------------------------------------------


def build_offer_graph(
    data: CanonicalData,
    split_days: tuple[float, float] | None = None,
    half_life_days: float = 30.0,
    max_products_per_customer: int | None = None,
    *,
    split: str = "auto",
    val_frac: float = 0.15,
    test_frac: float = 0.15,
    seed: int = 0,
) -> OfferGraph:
    """Build the customer–product–offer graphs and the leak-free positive pairs (docs/models/gat.md,
    "Graph construction").

    split_days: (val_start, test_start) in days; forces the time split. None = chosen by ``split``.
    half_life_days: half-life of the recency decay of edge strengths.
    max_products_per_customer: keep only each customer's strongest purchase edges (ties: the most recent,
        then the lowest product index); None keeps all.
    split: "auto" (time split unless degenerate, then customer split), "time" or "customer".
    val_frac, test_frac: shares of the positive time span (time mode) or of the response-window positive
        customers (customer mode) given to val and test.
    seed: seed of the customer split.
    """
    started = time.perf_counter()
    _check_args(data, split_days, half_life_days, max_products_per_customer, split, val_frac, test_frac, seed)
    data.validate()
    info: dict = {"source": data.name}
    customer_ids = data.customers["customer_id"].to_numpy(np.int64)
    offer_ids = data.offers["offer_id"].to_numpy(np.int64)
    interactions = _interaction_logs(data, pd.Index(customer_ids), pd.Index(offer_ids), info)

    pairs = _first_pairs(interactions.timed[REDEEMED], len(offer_ids))
    mode, val_start, test_start, pair_split, customer_split = _split(
        data, pairs, split_days, split, val_frac, test_frac, seed, len(customer_ids), info)
    # customer mode returns val_start == test_start == history_end: every graph is cut there
    cuts = {"train": val_start, "val": val_start, "test": test_start}

    features = _NodeFeatures(data, customer_ids, interactions.product_ids, cuts["train"], info)
    sizes = {"customer": len(customer_ids), "product": len(interactions.product_ids), "offer": len(offer_ids)}

    def message_graph(cut: float) -> HeteroData:
        return _message_graph(interactions, sizes, features, cut, float(half_life_days), max_products_per_customer)

    graph_at_cut = {cut: message_graph(cut) for cut in dict.fromkeys(cuts.values())}
    graph_serve = message_graph(_serve_cut(interactions, cuts))
    graph_serve.split = "serve"
    graphs, split_pairs, pair_times = _labelled_graphs(graph_at_cut, cuts, pairs, pair_split)

    info.update({
        "split_mode": mode,
        "positive_events": int(len(interactions.timed[REDEEMED][0])),
        "positive_pairs": int(len(pairs["customer"])),
        "build_seconds": round(time.perf_counter() - started, 3),
    })
    return OfferGraph(
        graph_train=graphs["train"], graph_val=graphs["val"], graph_test=graphs["test"],
        pairs_train=split_pairs["train"], pairs_val=split_pairs["val"], pairs_test=split_pairs["test"],
        pair_times=pair_times, node_ids={"customer": customer_ids, "product": interactions.product_ids,
                                         "offer": offer_ids},
        cuts=cuts, val_start=float(val_start), test_start=float(test_start), split_mode=mode,
        half_life_days=float(half_life_days), customer_split=customer_split,
        feature_columns=features.columns, vocabularies=features.vocabularies,
        cat_cardinalities=features.cardinalities, info=info, graph_serve=graph_serve,
    )


def _interaction_logs(data: CanonicalData, customer_index: pd.Index, offer_index: pd.Index,
                      info: dict) -> _Interactions:
    """Purchases, exposures and redemptions (with ts) and offer -> product links, as node indices."""
    purchase_log, purchased_products = _purchases(data, customer_index)
    applies_offers, applies_products = _applies_to(data, offer_index)
    product_ids = _product_ids(data, purchased_products, applies_products)
    product_index = pd.Index(product_ids)
    clicks = _mapped_clicks(data, customer_index, offer_index, (applies_offers, applies_products), info)
    timed = {
        PURCHASED: (purchase_log[0], product_index.get_indexer(purchased_products), purchase_log[1]),
        EXPOSED: _exposures(data, customer_index, offer_index, clicks, info),
        REDEEMED: _positives(data, customer_index, offer_index, clicks, info),
    }
    return _Interactions(timed, (applies_offers, product_index.get_indexer(applies_products)), product_ids)


def _serve_cut(interactions: _Interactions, cuts: dict[str, float]) -> float:
    """Just after the last interaction and every split's cut: the serving graph holds every interaction."""
    last = max([float(np.max(ts)) for _, _, ts in interactions.timed.values() if len(ts)] + [max(cuts.values())])
    return float(np.nextafter(last, np.inf))


def _labelled_graphs(graph_at_cut: dict[float, HeteroData], cuts: dict[str, float], pairs: dict[str, np.ndarray],
                     pair_split: np.ndarray):
    """split -> its graph (the message graph at its cut, with its positives as labels), split -> [2, P] long
    (customer, offer) pairs, split -> [P] float64 first redemption days."""
    graphs, split_pairs, pair_times = {}, {}, {}
    for code, split in enumerate(SPLITS):
        selected = pair_split == code
        split_pairs[split] = torch.from_numpy(
            np.stack([pairs["customer"][selected], pairs["offer"][selected]]).astype(np.int64))
        pair_times[split] = torch.from_numpy(pairs["ts"][selected].astype(np.float64))
        graphs[split] = _with_labels(graph_at_cut[cuts[split]], split_pairs[split], pair_times[split], split)
    return graphs, split_pairs, pair_times


# ----------------------------------------------------------------------------------------------
# Argument and table checks
# ----------------------------------------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_args(data, split_days, half_life_days, max_products, split, val_frac, test_frac, seed) -> None:
    if not isinstance(data, CanonicalData):
        raise TypeError(f"data must be a CanonicalData, got {type(data).__name__}")
    if split_days is not None:
        if (not isinstance(split_days, (tuple, list)) or len(split_days) != 2
                or not all(_is_number(day) and math.isfinite(float(day)) for day in split_days)):
            raise UserInputError(f"split_days must be a pair of finite numbers (val_start, test_start), got {split_days!r}")
        if float(split_days[0]) > float(split_days[1]):
            raise UserInputError(f"split_days must satisfy val_start <= test_start, got {split_days!r}")
    if not _is_number(half_life_days) or not math.isfinite(float(half_life_days)) or float(half_life_days) <= 0:
        raise UserInputError(f"half_life_days must be a finite number > 0, got {half_life_days!r}")
    if max_products is not None and (not isinstance(max_products, (int, np.integer)) or isinstance(max_products, bool)
                                     or max_products < 1):
        raise UserInputError(f"max_products_per_customer must be an integer >= 1 or None, got {max_products!r}")
    if split not in SPLIT_MODES:
        raise UserInputError(f"split must be one of {list(SPLIT_MODES)}, got {split!r}")
    for name, share in (("val_frac", val_frac), ("test_frac", test_frac)):
        if not _is_number(share) or not 0.0 < float(share) < 1.0:
            raise UserInputError(f"{name} must be a number in (0, 1), got {share!r}")
    if float(val_frac) + float(test_frac) >= 1.0:
        raise UserInputError(f"val_frac + test_frac must be < 1, got {val_frac!r} + {test_frac!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise UserInputError(f"seed must be an integer >= 0, got {seed!r}")
    if data.offers is None or len(data.offers) == 0:
        raise DataValidationError(f"{data.name}: table 'offers' is missing or empty; the offer graph needs offers")
    _require(data.offers, ("offer_id",), f"{data.name}: table 'offers'")
    if data.offers["offer_id"].duplicated().any():
        dup = data.offers.loc[data.offers["offer_id"].duplicated(), "offer_id"].iloc[:5].tolist()
        raise DataValidationError(f"{data.name}: duplicated offer_id values in 'offers', e.g. {dup}")
    if data.products is not None:
        _require(data.products, ("product_id",), f"{data.name}: table 'products'")


def _require(df, cols, what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise DataValidationError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [col for col in cols if col not in df.columns]
    if missing:
        raise DataValidationError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")


def _ids(df: pd.DataFrame, col: str, what: str) -> np.ndarray:
    column = df[col]
    if column.isna().any():
        raise DataValidationError(f"{what}: column '{col}' has {int(column.isna().sum())} missing values")
    return column.to_numpy(np.int64)


def _times(df: pd.DataFrame, what: str, default: float) -> np.ndarray:
    if "ts" not in df.columns:
        return np.full(len(df), float(default))
    ts = pd.to_numeric(df["ts"], errors="coerce").to_numpy(np.float64)
    if not np.isfinite(ts).all():
        raise DataValidationError(f"{what}: column 'ts' must hold finite day numbers, found "
                                  f"{int((~np.isfinite(ts)).sum())} missing/non-numeric values")
    return ts


# ----------------------------------------------------------------------------------------------
# Interaction logs
# ----------------------------------------------------------------------------------------------


def _meta_table(data: CanonicalData, key: str) -> pd.DataFrame | None:
    """``data.meta[key]`` (a source's extra table), or None."""
    return data.meta.get(key) if isinstance(data.meta, dict) else None


def _meta_pairs(data: CanonicalData, key: str, customer_index: pd.Index, offer_index: pd.Index,
                required: tuple[str, ...]):
    """(customer idx, offer idx, ts, known) of the rows of ``data.meta[key]``; known: both ids are nodes."""
    frame = _meta_table(data, key)
    what = f"{data.name}: meta['{key}']"
    _require(frame, required, what)
    customer = customer_index.get_indexer(_ids(frame, "customer_id", what))
    offer = offer_index.get_indexer(_ids(frame, "offer_id", what))
    ts = _times(frame, what, data.history_end)
    return customer, offer, ts, (customer >= 0) & (offer >= 0)


def _concat_logs(logs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One (customer idx, offer idx, ts) log from several."""
    customer, offer, ts = zip(*logs)
    return (np.concatenate(customer).astype(np.int64), np.concatenate(offer).astype(np.int64),
            np.concatenate(ts).astype(np.float64))


def _purchases(data: CanonicalData, customer_index: pd.Index):
    """((customer idx, ts), raw product ids) of purchase events with a product and a known customer."""
    events = data.events
    if "product_id" not in events.columns or len(events) == 0:
        return (np.zeros(0, np.int64), np.zeros(0)), np.zeros(0, np.int64)
    is_purchase = (events["event_type"] == "purchase").to_numpy() & (events["product_id"].to_numpy() >= 0)
    customer = customer_index.get_indexer(events["customer_id"].to_numpy()[is_purchase])
    known = customer >= 0
    return (customer[known].astype(np.int64), events["ts"].to_numpy(np.float64)[is_purchase][known]), \
        events["product_id"].to_numpy(np.int64)[is_purchase][known]


def _applies_to(data: CanonicalData, offer_index: pd.Index):
    """(offer idx, raw product id) of every offer -> product link (offers.product_id and meta offer_products)."""
    offer_parts, product_parts = [], []
    if "product_id" in data.offers.columns:
        product = data.offers["product_id"].fillna(-1).to_numpy(np.int64)
        offer_parts.append(np.arange(len(product), dtype=np.int64)[product >= 0])
        product_parts.append(product[product >= 0])
    links = _meta_table(data, "offer_products")
    if links is not None:
        _require(links, ("offer_id", "product_id"), f"{data.name}: meta['offer_products']")
        offer = offer_index.get_indexer(_ids(links, "offer_id", "meta['offer_products']"))
        product = _ids(links, "product_id", "meta['offer_products']")
        known = (offer >= 0) & (product >= 0)
        offer_parts.append(offer[known].astype(np.int64))
        product_parts.append(product[known])
    if not offer_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = pd.DataFrame({"offer": np.concatenate(offer_parts), "product": np.concatenate(product_parts)})
    pairs = pairs.drop_duplicates()
    return pairs["offer"].to_numpy(np.int64), pairs["product"].to_numpy(np.int64)


def _product_ids(data: CanonicalData, *referenced: np.ndarray) -> np.ndarray:
    """Sorted union of the products table's ids and the ``referenced`` raw product ids."""
    parts = list(referenced)
    if data.products is not None:
        parts.append(_ids(data.products, "product_id", f"{data.name}: table 'products'"))
    return np.unique(np.concatenate(parts).astype(np.int64))


def _mapped_clicks(data: CanonicalData, customer_index: pd.Index, offer_index: pd.Index, applies, info: dict):
    """(customer idx, offer idx, ts) of campaign clicks mapped to one offer: through ``events.offer_id``, else
    to the one offer whose product is the clicked product (``applies``: (offer idx, raw product id) links)."""
    events = data.events
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    is_click = (events["event_type"] == "campaign_click").to_numpy() if len(events) else np.zeros(0, bool)
    n_clicks = int(is_click.sum())
    info["clicks"] = n_clicks
    if n_clicks == 0:
        info["clicks_skipped"] = 0
        return empty
    customer = customer_index.get_indexer(events["customer_id"].to_numpy()[is_click])
    ts = events["ts"].to_numpy(np.float64)[is_click]
    if "offer_id" in events.columns:
        offer = offer_index.get_indexer(events["offer_id"].fillna(-1).to_numpy(np.int64)[is_click])
    elif "product_id" in events.columns:
        applies_offers, applies_products = applies
        offers_per_product = pd.Series(applies_offers).groupby(applies_products).agg(["first", "size"])
        only_offer = offers_per_product.loc[offers_per_product["size"] == 1, "first"]
        clicked = events["product_id"].to_numpy(np.int64)[is_click]
        offer = only_offer.reindex(clicked).fillna(-1).to_numpy(np.int64)
    else:
        offer = np.full(n_clicks, -1, np.int64)
    known = (customer >= 0) & (offer >= 0)
    info["clicks_skipped"] = int((~known).sum())
    return customer[known].astype(np.int64), offer[known].astype(np.int64), ts[known]


def _treated_offer_exposures(data: CanonicalData, customer_index: pd.Index, offer_index: pd.Index,
                             also: np.ndarray | None = None):
    """(customer idx, offer idx, ts) of the exposures table's treated rows with a known offer (and ``also`` true)."""
    exposures = data.exposures
    offer_id = exposures["offer_id"].fillna(-1).to_numpy(np.int64)
    selected = (offer_id >= 0) & (exposures["treatment"].to_numpy() > 0)
    if also is not None:
        selected &= also
    customer = customer_index.get_indexer(exposures["customer_id"].to_numpy()[selected])
    offer = offer_index.get_indexer(offer_id[selected])
    ts = _times(exposures, f"{data.name}: table 'exposures'", data.history_end)[selected]
    known = (customer >= 0) & (offer >= 0)
    return customer[known], offer[known], ts[known]


def _exposures(data: CanonicalData, customer_index: pd.Index, offer_index: pd.Index, clicks, info: dict):
    """(customer idx, offer idx, ts) of offer exposures: exposures table, meta offer exposures, mapped clicks."""
    logs = [clicks]
    n_table = n_meta = 0
    if "offer_id" in data.exposures.columns:
        logs.append(_treated_offer_exposures(data, customer_index, offer_index))
        n_table = len(logs[-1][0])
    if _meta_table(data, "offer_exposures") is not None:
        customer, offer, ts, known = _meta_pairs(data, "offer_exposures", customer_index, offer_index,
                                                 ("customer_id", "offer_id"))
        logs.append((customer[known], offer[known], ts[known]))
        n_meta = int(known.sum())
    info["exposure_rows"] = {"exposures_table": n_table, "offer_exposures": n_meta, "clicks": int(len(clicks[0]))}
    return _concat_logs(logs)


def _positives(data: CanonicalData, customer_index: pd.Index, offer_index: pd.Index, clicks, info: dict):
    """(customer idx, offer idx, ts) of every redemption event: ``meta['redemptions']`` when present, else the
    treated & engaged & purchased response-window exposures and the mapped campaign clicks."""
    if _meta_table(data, "redemptions") is not None:
        customer, offer, ts, known = _meta_pairs(data, "redemptions", customer_index, offer_index,
                                                 ("customer_id", "offer_id", "ts"))
        info["positive_source"] = "meta['redemptions']"
        info["redemptions_skipped"] = int((~known).sum())
        return customer[known].astype(np.int64), offer[known].astype(np.int64), ts[known]
    exposures = data.exposures
    logs = [clicks]
    n_response = 0
    if "offer_id" in exposures.columns and "engaged" in exposures.columns:
        purchased = data.outcomes.drop_duplicates("customer_id", keep="last").set_index("customer_id")["purchased"]
        bought = purchased.reindex(exposures["customer_id"].to_numpy()).fillna(0).to_numpy() > 0
        engaged = exposures["engaged"].to_numpy() > 0
        logs.append(_treated_offer_exposures(data, customer_index, offer_index, engaged & bought))
        n_response = len(logs[-1][0])
    info["positive_source"] = "treated & engaged & purchased exposures + mapped campaign clicks"
    info["positive_rows"] = {"response_window": n_response, "clicks": int(len(clicks[0]))}
    return _concat_logs(logs)


def _first_pairs(positives, n_offers: int) -> dict[str, np.ndarray]:
    """Distinct (customer, offer) pairs with their first redemption time, sorted by (customer, offer)."""
    customer, offer, ts = positives
    if len(customer) == 0:
        return {"customer": np.zeros(0, np.int64), "offer": np.zeros(0, np.int64), "ts": np.zeros(0)}
    key = customer * np.int64(n_offers) + offer
    uniq, inv = np.unique(key, return_inverse=True)
    first = np.full(len(uniq), np.inf)
    np.minimum.at(first, inv, ts)
    return {"customer": uniq // n_offers, "offer": uniq % n_offers, "ts": first}


# ----------------------------------------------------------------------------------------------
# Split
# ----------------------------------------------------------------------------------------------


def _split(data, pairs, split_days, split, val_frac, test_frac, seed, n_customers, info):
    """(mode, val_start, test_start, per-pair split code 0/1/2, customer_split [n_customers] int8)."""
    first_ts = pairs["ts"]
    no_customer_split = np.full(n_customers, -1, np.int8)
    if split_days is not None:
        val_start, test_start = float(split_days[0]), float(split_days[1])
        info["split_reason"] = "split_days given"
        return "time", val_start, test_start, _time_codes(first_ts, val_start, test_start), no_customer_split
    val_start, test_start = _span_bounds(first_ts, data.history_end, val_frac, test_frac)
    codes = _time_codes(first_ts, val_start, test_start)
    history_end = float(data.history_end)
    in_response = first_ts >= history_end
    if split == "time":
        info["split_reason"] = "split='time'"
        return "time", val_start, test_start, codes, no_customer_split
    if split == "auto":
        keep_time_split, info["split_reason"] = _auto_split_choice(pairs, codes, in_response)
        if keep_time_split:
            return "time", val_start, test_start, codes, no_customer_split
    else:
        info["split_reason"] = "split='customer'"
    codes, customer_split = _customer_split(pairs, in_response, n_customers, val_frac, test_frac, seed)
    return "customer", history_end, history_end, codes, customer_split


def _span_bounds(first_ts: np.ndarray, history_end: float, val_frac, test_frac) -> tuple[float, float]:
    """(val_start, test_start): over the span [t0, t1] of the positives' times, test is the last ``test_frac``
    and val the ``val_frac`` before it (an empty span sits at history_end)."""
    if len(first_ts):
        t0, t1 = float(first_ts.min()), float(first_ts.max())
    else:
        t0 = t1 = float(history_end)
    span = t1 - t0
    return t0 + (1.0 - float(val_frac) - float(test_frac)) * span, t0 + (1.0 - float(test_frac)) * span


def _time_codes(first_ts: np.ndarray, val_start: float, test_start: float) -> np.ndarray:
    return np.where(first_ts < val_start, 0, np.where(first_ts < test_start, 1, 2)).astype(np.int8)


def _auto_split_choice(pairs, codes: np.ndarray, in_response: np.ndarray) -> tuple[bool, str]:
    """split="auto": (keep the time split?, why). A time split is degenerate when val or test would hold
    fewer than MIN_SPLIT_SHARE of the positive pairs or positives on fewer than MIN_SPLIT_OFFERS offers."""
    need = max(1, int(math.ceil(MIN_SPLIT_SHARE * len(codes))))
    n_offers = np.unique(pairs["offer"]).size
    spread = all(int((codes == code).sum()) >= need
                 and np.unique(pairs["offer"][codes == code]).size >= min(MIN_SPLIT_OFFERS, n_offers)
                 for code in (1, 2))
    if spread:
        return True, "auto: the positives are spread in time"
    if np.unique(pairs["customer"][in_response]).size < MIN_SPLIT_CUSTOMERS:
        return True, ("auto: time split degenerate, but fewer than 3 customers have response-window "
                      "positives; time split kept")
    return False, (f"auto: a time split would leave val or test with < {MIN_SPLIT_SHARE:.0%} of the "
                   f"positive pairs or < {MIN_SPLIT_OFFERS} distinct offers; customer split")


def _customer_split(pairs, in_response: np.ndarray, n_customers: int, val_frac, test_frac, seed):
    """Customer mode: the customers with response-window positives split at random (``seed``) into train / val /
    test. Returns (per-pair split code: the owner's split for response-window pairs, train for earlier ones;
    customer_split [n_customers] int8, -1 for customers without response-window positives)."""
    owners = np.unique(pairs["customer"][in_response])
    shuffled = owners[np.random.default_rng(int(seed)).permutation(owners.size)]
    n_test = int(round(float(test_frac) * owners.size))
    n_val = int(round(float(val_frac) * owners.size))
    if owners.size >= 3:
        n_test, n_val = max(n_test, 1), max(n_val, 1)
    customer_split = np.full(n_customers, -1, np.int8)
    customer_split[shuffled[:n_test]] = 2
    customer_split[shuffled[n_test:n_test + n_val]] = 1
    customer_split[shuffled[n_test + n_val:]] = 0
    codes = np.where(in_response, customer_split[pairs["customer"]], 0).astype(np.int8)
    return codes, customer_split


# ----------------------------------------------------------------------------------------------
# Node features
# ----------------------------------------------------------------------------------------------


def _codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Categorical column -> (codes 1..K with 0 = unknown, vocabulary): ``deepromo.data.encoding``'s rule."""
    vocab = fit_vocabulary(values)
    return encode(values, vocab), vocab


class _Standardiser:
    """Column-wise (x - mean) / std with the statistics of the rows it was fitted on; non-finite -> 0."""

    def __init__(self, x: np.ndarray):
        x = np.where(np.isfinite(x), x, np.nan)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: mean 0, std 1
            self.mean = np.nan_to_num(np.nanmean(x, axis=0)) if x.shape[0] else np.zeros(x.shape[1])
            std = np.nanstd(x, axis=0) if x.shape[0] else np.ones(x.shape[1])
        self.std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)

    def __call__(self, x: np.ndarray) -> torch.Tensor:
        z = (np.where(np.isfinite(x), x, np.nan) - self.mean) / self.std
        return torch.from_numpy(np.nan_to_num(z, nan=0.0).astype(np.float32))


class _NodeFeatures:
    """Categorical codes and standardised numeric features of the three node types; the customers' numeric
    features depend on the cut (:meth:`customer_num`) and are scaled with the train cut's statistics."""

    def __init__(self, data: CanonicalData, customer_ids: np.ndarray, product_ids: np.ndarray, train_cut: float,
                 info: dict):
        self.data = data
        self.customer_ids = customer_ids
        self.columns: dict[str, dict[str, list[str]]] = {}
        self.vocabularies: dict[str, dict[str, list[str]]] = {}
        self.cardinalities: dict[str, list[int]] = {}
        self.x_cat: dict[str, torch.Tensor] = {}
        self.x_num: dict[str, torch.Tensor] = {}
        self._init_customers(train_cut)
        self._init_products(product_ids)
        self._init_offers(info)

    def _init_customers(self, train_cut: float) -> None:
        """Static columns now; the behaviour part per cut, standardised with the train cut's statistics."""
        customers = self.data.customers.reset_index(drop=True)
        cat_cols, num_cols = static_columns(customers)
        self.customer_static_num = (customers[num_cols].to_numpy(np.float64) if num_cols
                                    else np.zeros((len(customers), 0)))
        self.customer_num_cols = list(num_cols)
        self._set_categorical("customer", {col: customers[col] for col in cat_cols}, len(customers))
        raw, names = self._customer_raw(train_cut)
        self.customer_scaler = _Standardiser(raw)
        self.columns["customer"]["num"] = names
        self._customer_num_at_cut: dict[float, torch.Tensor] = {train_cut: self.customer_scaler(raw)}

    def _init_products(self, product_ids: np.ndarray) -> None:
        products = self.data.products
        products = (products.drop_duplicates("product_id").set_index("product_id").reindex(product_ids)
                    if products is not None else pd.DataFrame(index=pd.Index(product_ids)))
        self._set_categorical("product", {col: products[col] for col in ("category", "brand")
                                          if col in products.columns}, len(product_ids))
        if "price" in products.columns:
            price = pd.to_numeric(products["price"], errors="coerce").to_numpy(np.float64)
            with np.errstate(all="ignore"):
                log_price = np.where(price > 0, np.log(price), np.nan)[:, None]
            self.x_num["product"] = _Standardiser(log_price)(log_price)
            self.columns["product"]["num"] = ["log_price"]
        else:
            self.x_num["product"] = torch.zeros(len(product_ids), 0)
            self.columns["product"]["num"] = []

    def _init_offers(self, info: dict) -> None:
        offers = self.data.offers.reset_index(drop=True)
        self._set_categorical("offer", {col: offers[col] for col in ("offer_type", "timing")
                                        if col in offers.columns}, len(offers))
        num_cols = [col for col in ("face_value", "duration_days") if col in offers.columns]
        if "face_value_observed" in offers.columns and "face_value" in num_cols:
            num_cols.remove("face_value")
            info["dropped_offer_features"] = ["face_value (derived from all redemptions: label leak)"]
        raw = (offers[num_cols].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64) if num_cols
               else np.zeros((len(offers), 0)))
        self.x_num["offer"] = _Standardiser(raw)(raw)
        self.columns["offer"]["num"] = num_cols

    def _set_categorical(self, node_type: str, columns: dict[str, pd.Series], n_nodes: int) -> None:
        codes, vocabs = [], {}
        for name, values in columns.items():
            column_codes, vocabs[name] = _codes(values.reset_index(drop=True))
            codes.append(column_codes)
        self.x_cat[node_type] = torch.from_numpy(np.stack(codes, axis=1) if codes
                                                 else np.zeros((n_nodes, 0), np.int64))
        self.columns[node_type] = {"cat": list(columns), "num": []}
        self.vocabularies[node_type] = vocabs
        self.cardinalities[node_type] = [len(vocab) + 1 for vocab in vocabs.values()]

    def _customer_raw(self, cut: float) -> tuple[np.ndarray, list[str]]:
        """Unscaled [n_customers, Nn] numeric customer features as of ``cut`` (counts, money, days: log1p)."""
        behaviour = behaviour_features(self.data.events, self.customer_ids, cut)
        raw = np.concatenate([self.customer_static_num, behaviour.to_numpy(np.float64)], axis=1)
        names = self.customer_num_cols + list(behaviour.columns)
        log = np.asarray([name.startswith(COUNT_LIKE_PREFIXES) or name in DAY_COLUMNS for name in names], dtype=bool)
        with np.errstate(all="ignore"):
            raw[:, log] = np.log1p(np.maximum(raw[:, log], 0.0))
        return raw, names

    def customer_num(self, cut: float) -> torch.Tensor:
        """[n_customers, Nn] float32 standardised numeric customer features as of ``cut`` (cached per cut)."""
        if cut not in self._customer_num_at_cut:
            self._customer_num_at_cut[cut] = self.customer_scaler(self._customer_raw(cut)[0])
        return self._customer_num_at_cut[cut]


# ----------------------------------------------------------------------------------------------
# Graph assembly
# ----------------------------------------------------------------------------------------------


def _aggregate(src, dst, ts, n_dst: int, cut: float, half_life: float):
    """Distinct (src, dst) pairs of the interactions before ``cut`` with decayed strength, count and last time."""
    before = ts < cut
    src, dst, ts = src[before], dst[before], ts[before]
    if len(src) == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0), empty, np.zeros(0)
    key = src * np.int64(n_dst) + dst
    uniq, inv = np.unique(key, return_inverse=True)
    decayed = np.bincount(inv, weights=np.exp2(-(cut - ts) / half_life), minlength=len(uniq))
    count = np.bincount(inv, minlength=len(uniq)).astype(np.int64)
    last = np.full(len(uniq), -np.inf)
    np.maximum.at(last, inv, ts)
    return uniq // n_dst, uniq % n_dst, np.log1p(np.maximum(decayed, WEIGHT_FLOOR)), count, last


def _top_per_source(src, weight, last, dst, k: int) -> np.ndarray:
    """Positions of each source's k strongest edges (ties: most recent, then lowest dst)."""
    order = np.lexsort((dst, -last, -weight, src))
    sorted_src = src[order]
    start = (np.r_[0, np.flatnonzero(sorted_src[1:] != sorted_src[:-1]) + 1] if len(sorted_src)
             else np.zeros(0, np.int64))
    rank = np.arange(len(sorted_src)) - np.repeat(start, np.diff(np.r_[start, len(sorted_src)]))
    return np.sort(order[rank < k])


def _message_graph(interactions: _Interactions, sizes: dict[str, int], features: _NodeFeatures, cut: float,
                   half_life: float, max_products: int | None) -> HeteroData:
    """The HeteroData of the node features and the message edges before ``cut`` (plus the static applies_to)."""
    graph = HeteroData()
    for node_type in NODE_TYPES:
        x_num = features.customer_num(cut) if node_type == "customer" else features.x_num[node_type]
        graph[node_type].num_nodes = sizes[node_type]
        graph[node_type].x_cat = features.x_cat[node_type]
        graph[node_type].x_num = x_num
        graph[node_type].x = x_num
    for edge_type, (src, dst, ts) in interactions.timed.items():
        edges = _aggregate(src, dst, ts, sizes[edge_type[2]], cut, half_life)
        if edge_type == PURCHASED and max_products is not None:
            src_idx, dst_idx, weight, _, last = edges
            keep = _top_per_source(src_idx, weight, last, dst_idx, max_products)
            edges = tuple(column[keep] for column in edges)
        _set_edges(graph, edge_type, *edges)
    _set_applies_to(graph, *interactions.applies, sizes["product"])
    graph.cut_time = float(cut)
    return graph


def _set_applies_to(graph: HeteroData, offer: np.ndarray, product: np.ndarray, n_products: int) -> None:
    """The static offer -> product edges: strength log1p(1), count 1, known before any cut (time -inf)."""
    known = (offer >= 0) & (product >= 0)
    key = np.unique(offer[known] * np.int64(n_products) + product[known])
    n_edges = len(key)
    _set_edges(graph, APPLIES_TO, key // n_products, key % n_products, np.full(n_edges, math.log(2.0)),
               np.ones(n_edges, np.int64), np.full(n_edges, -np.inf))


def _set_edges(graph: HeteroData, edge_type, src, dst, weight, count, last) -> None:
    """Store one edge type and its reverse (same attributes, flipped index)."""
    edge_index = torch.from_numpy(np.stack([src, dst]).astype(np.int64).reshape(2, -1))
    edge_attr = torch.from_numpy(np.asarray(weight, np.float32).reshape(-1, 1))
    edge_time = torch.from_numpy(np.asarray(last, np.float64))
    edge_count = torch.from_numpy(np.asarray(count, np.int64))
    for stored_type, index in ((edge_type, edge_index), (reverse_edge_type(edge_type), edge_index.flip(0))):
        store = graph[stored_type]
        store.edge_index = index
        store.edge_attr = edge_attr
        store.edge_time = edge_time
        store.edge_count = edge_count


def _with_labels(base: HeteroData, pairs: torch.Tensor, times: torch.Tensor, split: str) -> HeteroData:
    """A new HeteroData sharing ``base``'s tensors (no copy) with ``split``'s supervision on the redeemed store."""
    graph = HeteroData()
    for node_type in base.node_types:
        for key, value in base[node_type].items():
            graph[node_type][key] = value
    for edge_type in base.edge_types:
        for key, value in base[edge_type].items():
            graph[edge_type][key] = value
    graph.cut_time = base.cut_time
    graph.split = split
    graph[REDEEMED].edge_label_index = pairs
    graph[REDEEMED].edge_label = torch.ones(pairs.shape[1], dtype=torch.float32)
    graph[REDEEMED].edge_label_time = times
    return graph


__all__ = [
    "OfferGraph",
    "build_offer_graph",
    "reverse_edge_type",
    "NODE_TYPES",
    "EDGE_TYPES",
    "PURCHASED",
    "EXPOSED",
    "REDEEMED",
    "APPLIES_TO",
]
