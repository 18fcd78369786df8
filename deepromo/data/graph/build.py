"""The customer–product–offer graph for offer ranking (``gat``), with a leak-free split.

``build_offer_graph(data)`` turns :class:`~deepromo.data.tables.CanonicalData` into an
:class:`OfferGraph`: three PyG ``HeteroData`` message graphs (train / val / test), the positive
(customer, offer) pairs of each split, the id maps and the cut times.

Nodes (``num_nodes``, ``x_cat`` [N, Nc] long with 0 = unknown, ``x_num`` [N, Nn] float32 and
``x`` = ``x_num`` on every node store)
    customer  one per row of ``data.customers`` (table order). ``x_num``: the customers table's
              numeric columns plus ``features.behaviour_features`` (RFM and 7/30/90-day windows) computed
              from the events *before the graph's cut*; count/money/day columns are log1p-scaled, then
              every column is standardised with the mean / std of the train graph (so the test graph,
              whose later cut gives other raw values, is on the same scale). ``x_cat``: the customers
              table's categorical columns as codes 1..K (0 = missing / "" / "unknown").
    product   the sorted union of ``products.product_id`` and every product id an edge refers to.
              ``x_cat``: category, brand codes; ``x_num``: standardised log price (0 when unknown).
    offer     one per row of ``data.offers`` (table order). ``x_cat``: offer_type, timing codes;
              ``x_num``: standardised face_value and duration_days when present. When the offers table
              has ``face_value_observed`` (completejourney), face_value is *not* used: that source
              derives it from the whole year's redemptions, so its value tells whether a coupon was
              ever redeemed (a label leak); ``OfferGraph.info["dropped_offer_features"]`` says so.

Edges (``edge_index`` [2, E] long, ``edge_attr`` [E, 1] float32, ``edge_time`` [E] float64,
``edge_count`` [E] long; one edge per distinct (source, target) pair, sorted by (source, target))
    ('customer', 'purchased', 'product')  purchase events with a product (``product_id`` >= 0).
    ('customer', 'exposed', 'offer')      exposures with a real offer (``offer_id`` >= 0, treated), the
                                          offer exposures in ``data.meta["offer_exposures"]`` (customer_id,
                                          offer_id, ts) when a source provides them (completejourney: every
                                          coupon of every campaign a household received) and the mapped
                                          campaign clicks (a click proves that the offer was received).
    ('customer', 'redeemed', 'offer')     redemptions (the positives below) before the cut.
    ('offer', 'applies_to', 'product')    ``offers.product_id`` and ``meta["offer_products"]``; static.
    plus the reverses ``rev_purchased``, ``rev_exposed``, ``rev_redeemed``, ``rev_applies_to`` (same
    ``edge_attr`` / ``edge_time``, flipped ``edge_index``) so that every node type receives messages.

Edge strength: ``edge_attr = log1p(sum_i 0.5 ** ((cut - ts_i) / half_life_days))`` over the pair's
interactions with ``ts_i < cut`` (the sum is floored at 1e-30 so that it stays > 0 for very old
interactions); ``edge_count`` is their number and ``edge_time`` the latest ``ts_i``. Static
``applies_to`` edges have strength ``log1p(1)`` and ``edge_time = -inf`` (known before any cut).

Positives (redemptions)
    * ``data.meta["redemptions"]`` (customer_id, offer_id, ts) when present (completejourney:
      coupon redemptions); nothing else is then used as a positive.
    * otherwise (synthetic world): (a) the response-window campaign: a (customer, offer) pair is a
      redemption when the customer was treated with that offer (``exposures.offer_id`` >= 0), was
      ``engaged`` and ``purchased`` in the response window (the outcome does not say which product was
      bought; the engagement ties the purchase to the offer), at the exposure's ``ts``; (b) past
      campaign clicks: a ``campaign_click`` event counts as a redemption of its campaign's offer at the
      click's ``ts``. Events carry the clicked offer's *product*, not the offer: a click is mapped to an
      offer through ``events.offer_id`` when that column exists, else to the one offer whose product is
      the clicked product (``offers.product_id`` / ``offer_products``); clicks whose product belongs to
      no offer or to several offers are skipped (``info["clicks_skipped"]``; in the synthetic world
      several offers often share a product, so about a third to two thirds of the clicks are skipped).
    A pair is a positive once; its time is its *first* redemption. Later redemptions of the same
    pair only add strength to its message edge.

Split rule (no leakage)
    ``time`` mode (used when ``split_days`` is given, and by ``split="auto"`` when the positives are
    spread in time): with ``val_start <= test_start`` (default: over the span [t0, t1] of the positive
    timestamps, ``val_start = t0 + (1 - val_frac - test_frac) * span`` and ``test_start = t0 +
    (1 - test_frac) * span``, i.e. val and test are the last 15 % + 15 % of the span), a pair is train
    when its first redemption is before ``val_start``, val when in [val_start, test_start), test
    otherwise. Message edges of ``graph_train`` and ``graph_val`` are the interactions with ``ts <
    val_start`` (purchases, exposures, redemptions), those of ``graph_test`` the interactions with
    ``ts < test_start``; customer features are computed as of the same cut. So the graph used to train
    holds no val/test redemption and no purchase/exposure at or after ``val_start``, and val/test pairs
    (first redeemed at or after the cut) never appear among a graph's redemption edges.
    ``customer`` mode (``split="auto"`` falls back to it when a time split is degenerate: the val or the
    test window would hold fewer than 5 % of the positive pairs or positives on fewer than 3 distinct
    offers — ranking one or two offers says nothing about a ranker. This is what happens in the
    synthetic world: its past campaigns carry one offer each and most positives are response-window
    redemptions, all at history_end): all three graphs are cut at ``history_end`` (message edges and
    features from the history only, so the response-window exposures — which would reveal the offer a
    customer was sent — are never message edges); positives before ``history_end`` are train; the
    customers with a positive in the response window (``ts >= history_end``) are split at random
    (``seed``) into train / val / test customers (``1 - val_frac - test_frac`` / ``val_frac`` /
    ``test_frac``), and their response-window positives follow them. Val/test customers are disjoint
    from the train customers whose response-window positives are supervised; their own response-window
    rows never enter any graph. ``val_start = test_start = history_end`` in this mode.

Every graph carries its supervision on the redeemed store: ``edge_label_index`` [2, P] (customer,
offer node indices), ``edge_label`` [P] (ones) and ``edge_label_time`` [P] (first redemption), and
graph-level ``cut_time`` and ``split``. In time mode the train pairs are also message edges of
``graph_train`` (their redemption lies before the cut): a model must hide the supervised edges of a
batch from message passing while training (e.g. a disjoint split of ``pairs_train``), or it learns to
copy the edge. Graphs with the same cut share their node and edge tensors (``graph_train`` and
``graph_val`` always do, all three in customer mode): do not modify them in place. Everything is
vectorised pandas/numpy: a 20k-customer synthetic world builds in ~0.3 s, the full completejourney
data (2,468 households, 78,781 products, 981 coupons, ~0.8M exposure edges) in ~0.7 s.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from deepromo.data.encoding import encode, fit_vocabulary
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
WEIGHT_FLOOR = 1e-30     # decayed sums are floored here so that edge_attr stays > 0
DAY_COLUMNS = ("recency_days", "days_since_last_event", "tenure_active_days", "tenure_days")


def reverse_edge_type(edge_type: tuple[str, str, str]) -> tuple[str, str, str]:
    """('customer', 'purchased', 'product') -> ('product', 'rev_purchased', 'customer')."""
    src, rel, dst = edge_type
    return (dst, f"rev_{rel}", src)


@dataclass
class OfferGraph:
    """The graphs, positive pairs, id maps and cut times built by :func:`build_offer_graph`.

    graph_train / graph_val / graph_test: ``HeteroData`` message graphs cut at ``cuts[split]``, each with
        its split's positives as ``edge_label_index`` on the redeemed store.
    graph_serve: the message graph of every interaction in the data (cut just after the last one), no
        labels: what a deployed ranker embeds customers and offers from.
    pairs_train / pairs_val / pairs_test: [2, P] long (customer node index, offer node index), disjoint.
    pair_times: split -> [P] float64, the first redemption day of each pair.
    node_ids: node type -> the id of every node (index = node index); ``id_maps`` gives id -> index.
    cuts: split -> the message-edge cut (days); val_start / test_start: the split boundaries.
    split_mode: "time" or "customer" (see the module docstring).
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
        g = self.graph_train
        return GraphSpec(node_types=tuple(NODE_TYPES), edge_types=tuple(g.edge_types),
                         num_nodes={nt: int(len(ids)) for nt, ids in self.node_ids.items()},
                         cat_cardinalities={nt: list(self.cat_cardinalities[nt]) for nt in NODE_TYPES},
                         num_features={nt: int(g[nt].x_num.shape[1]) for nt in NODE_TYPES})

    @property
    def id_maps(self) -> dict[str, pd.Index]:
        """node type -> ``pd.Index`` of ids: ``id_maps['customer'].get_indexer(ids)`` gives node indices."""
        return {nt: pd.Index(ids) for nt, ids in self.node_ids.items()}

    def node_index(self, node_type: str, ids) -> np.ndarray:
        """Node indices of ``ids`` for ``node_type`` (-1 for unknown ids)."""
        if node_type not in self.node_ids:
            raise KeyError(f"unknown node type '{node_type}'; valid types are {list(self.node_ids)}")
        return pd.Index(self.node_ids[node_type]).get_indexer(np.asarray(ids))

    def graph(self, split: str) -> HeteroData:
        return {"train": self.graph_train, "val": self.graph_val, "test": self.graph_test}[_check_split(split)]

    def pairs(self, split: str) -> torch.Tensor:
        return {"train": self.pairs_train, "val": self.pairs_val, "test": self.pairs_test}[_check_split(split)]

    def seen_pairs(self, split: str) -> torch.Tensor:
        """[2, P] (customer, offer) pairs already redeemed before the cut of ``split``'s graph (its redeemed
        message edges): the items to exclude when ranking that split's customers for *new* redemptions."""
        return self.graph(split)[REDEEMED].edge_index

    def seen_mask(self, split: str) -> torch.Tensor:
        """Dense [n_customers, n_offers] bool version of :meth:`seen_pairs` (``exclude`` for ranking_report)."""
        n_c, n_o = len(self.node_ids["customer"]), len(self.node_ids["offer"])
        mask = torch.zeros(n_c, n_o, dtype=torch.bool)
        sp = self.seen_pairs(split)
        mask[sp[0], sp[1]] = True
        return mask

    def summary(self) -> dict:
        """Node and edge counts per graph and positives per split (plain python types)."""
        out: dict = {"split_mode": self.split_mode, "val_start": self.val_start, "test_start": self.test_start,
                     "cuts": dict(self.cuts),
                     "nodes": {nt: int(len(ids)) for nt, ids in self.node_ids.items()},
                     "positives": {s: int(self.pairs(s).shape[1]) for s in SPLITS},
                     "query_customers": {s: int(torch.unique(self.pairs(s)[0]).numel()) for s in SPLITS}}
        for s in SPLITS:
            g = self.graph(s)
            out[f"edges_{s}"] = {"__".join(et): int(g[et].edge_index.shape[1]) for et in EDGE_TYPES}
        return out


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise KeyError(f"unknown split '{split}'; valid splits are {list(SPLITS)}")
    return split


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
    """Build the customer–product–offer graphs and the leak-free positive pairs (see the module docstring).

    split_days: (val_start, test_start) in days; forces the time split. None = chosen by ``split``.
    half_life_days: half-life of the recency decay of edge strengths.
    max_products_per_customer: keep only each customer's strongest purchase edges (ties: the most recent,
        then the lowest product index); None keeps all.
    split: "auto" (time split unless degenerate, then customer split), "time" or "customer".
    val_frac, test_frac: shares of the positive time span (time mode) or of the response-window positive
        customers (customer mode) given to val and test.
    seed: seed of the customer split.
    """
    t_start = time.perf_counter()
    _check_args(data, split_days, half_life_days, max_products_per_customer, split, val_frac, test_frac, seed)
    data.validate()
    offers = data.offers
    info: dict = {"source": data.name}

    # ---------------- node id maps ----------------
    cust_ids = data.customers["customer_id"].to_numpy(np.int64)
    cust_index = pd.Index(cust_ids)
    offer_ids = offers["offer_id"].to_numpy(np.int64)
    offer_index = pd.Index(offer_ids)

    # ---------------- interaction logs (node indices, ts) ----------------
    purchases, prod_raw = _purchases(data, cust_index)
    applies_raw = _applies_to(data, offer_index)
    product_ids = _product_ids(data, prod_raw, applies_raw[1])
    prod_index = pd.Index(product_ids)
    purchases = (purchases[0], prod_index.get_indexer(prod_raw), purchases[1])
    applies = (applies_raw[0], prod_index.get_indexer(applies_raw[1]))
    clicks = _mapped_clicks(data, cust_index, offer_index, info)
    exposures = _exposures(data, cust_index, offer_index, clicks, info)
    positives = _positives(data, cust_index, offer_index, clicks, info)

    # ---------------- split ----------------
    pairs = _first_pairs(positives, len(offer_ids))
    mode, val_start, test_start, pair_split, customer_split = _split(
        data, pairs, split_days, split, val_frac, test_frac, seed, len(cust_ids), info)
    if mode == "time":
        cuts = {"train": val_start, "val": val_start, "test": test_start}
    else:
        h = float(data.history_end)
        cuts = {"train": h, "val": h, "test": h}

    # ---------------- node features ----------------
    feats = _NodeFeatures(data, cust_ids, product_ids, cuts["train"], info)

    # ---------------- graphs, one per distinct cut ----------------
    logs = {PURCHASED: purchases, EXPOSED: exposures, REDEEMED: positives}
    sizes = {"customer": len(cust_ids), "product": len(product_ids), "offer": len(offer_ids)}
    base: dict[float, HeteroData] = {}
    for s in SPLITS:
        if cuts[s] not in base:
            base[cuts[s]] = _message_graph(logs, applies, sizes, feats, cuts[s], float(half_life_days),
                                           max_products_per_customer)
    # the serving graph: every interaction the data holds, for the embeddings a deployed ranker uses
    last = max([float(np.max(log[-1])) for log in logs.values() if len(log[-1])] + [max(cuts.values())])
    serve_cut = float(np.nextafter(last, np.inf))
    graph_serve = base.get(serve_cut) or _message_graph(logs, applies, sizes, feats, serve_cut,
                                                        float(half_life_days), max_products_per_customer)
    graph_serve.split = "serve"
    graphs, pair_t, pair_times = {}, {}, {}
    for code, s in enumerate(SPLITS):
        sel = pair_split == code
        p = torch.from_numpy(np.stack([pairs["c"][sel], pairs["o"][sel]]).astype(np.int64))
        t = torch.from_numpy(pairs["ts"][sel].astype(np.float64))
        pair_t[s], pair_times[s] = p, t
        graphs[s] = _with_labels(base[cuts[s]], p, t, s)

    info.update({
        "split_mode": mode,
        "positive_events": int(len(positives[0])),
        "positive_pairs": int(len(pairs["c"])),
        "build_seconds": round(time.perf_counter() - t_start, 3),
    })
    return OfferGraph(
        graph_train=graphs["train"], graph_val=graphs["val"], graph_test=graphs["test"],
        pairs_train=pair_t["train"], pairs_val=pair_t["val"], pairs_test=pair_t["test"], pair_times=pair_times,
        node_ids={"customer": cust_ids, "product": product_ids, "offer": offer_ids},
        cuts=cuts, val_start=float(val_start), test_start=float(test_start), split_mode=mode,
        half_life_days=float(half_life_days), customer_split=customer_split,
        feature_columns=feats.columns, vocabularies=feats.vocabularies, cat_cardinalities=feats.cardinalities,
        info=info, graph_serve=graph_serve,
    )


# ----------------------------------------------------------------------------------------------
# Argument and table checks
# ----------------------------------------------------------------------------------------------


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _check_args(data, split_days, half_life_days, max_products, split, val_frac, test_frac, seed) -> None:
    if not isinstance(data, CanonicalData):
        raise TypeError(f"data must be a CanonicalData, got {type(data).__name__}")
    if split_days is not None:
        if (not isinstance(split_days, (tuple, list)) or len(split_days) != 2
                or not all(_is_number(v) and math.isfinite(float(v)) for v in split_days)):
            raise ValueError(f"split_days must be a pair of finite numbers (val_start, test_start), got {split_days!r}")
        if float(split_days[0]) > float(split_days[1]):
            raise ValueError(f"split_days must satisfy val_start <= test_start, got {split_days!r}")
    if not _is_number(half_life_days) or not math.isfinite(float(half_life_days)) or float(half_life_days) <= 0:
        raise ValueError(f"half_life_days must be a finite number > 0, got {half_life_days!r}")
    if max_products is not None and (not isinstance(max_products, (int, np.integer)) or isinstance(max_products, bool)
                                     or max_products < 1):
        raise ValueError(f"max_products_per_customer must be an integer >= 1 or None, got {max_products!r}")
    if split not in SPLIT_MODES:
        raise ValueError(f"split must be one of {list(SPLIT_MODES)}, got {split!r}")
    for name, v in (("val_frac", val_frac), ("test_frac", test_frac)):
        if not _is_number(v) or not 0.0 < float(v) < 1.0:
            raise ValueError(f"{name} must be a number in (0, 1), got {v!r}")
    if float(val_frac) + float(test_frac) >= 1.0:
        raise ValueError(f"val_frac + test_frac must be < 1, got {val_frac!r} + {test_frac!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
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
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataValidationError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")


def _ids(df: pd.DataFrame, col: str, what: str) -> np.ndarray:
    v = df[col]
    if v.isna().any():
        raise DataValidationError(f"{what}: column '{col}' has {int(v.isna().sum())} missing values")
    return v.to_numpy(np.int64)


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


def _purchases(data: CanonicalData, cust_index: pd.Index):
    """((customer idx, ts), raw product ids) of purchase events with a product and a known customer."""
    ev = data.events
    if "product_id" not in ev.columns or len(ev) == 0:
        return (np.zeros(0, np.int64), np.zeros(0)), np.zeros(0, np.int64)
    is_p = (ev["event_type"] == "purchase").to_numpy() & (ev["product_id"].to_numpy() >= 0)
    c = cust_index.get_indexer(ev["customer_id"].to_numpy()[is_p])
    ok = c >= 0
    return (c[ok].astype(np.int64), ev["ts"].to_numpy(np.float64)[is_p][ok]), \
        ev["product_id"].to_numpy(np.int64)[is_p][ok]


def _applies_to(data: CanonicalData, offer_index: pd.Index):
    """(offer idx, raw product id) of every offer -> product link (offers.product_id and meta offer_products)."""
    o_parts, p_parts = [], []
    if "product_id" in data.offers.columns:
        p = data.offers["product_id"].fillna(-1).to_numpy(np.int64)
        o_parts.append(np.arange(len(p), dtype=np.int64)[p >= 0])
        p_parts.append(p[p >= 0])
    op = data.meta.get("offer_products") if isinstance(data.meta, dict) else None
    if op is not None:
        _require(op, ("offer_id", "product_id"), f"{data.name}: meta['offer_products']")
        o = offer_index.get_indexer(_ids(op, "offer_id", "meta['offer_products']"))
        p = _ids(op, "product_id", "meta['offer_products']")
        ok = (o >= 0) & (p >= 0)
        o_parts.append(o[ok].astype(np.int64))
        p_parts.append(p[ok])
    if not o_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    df = pd.DataFrame({"o": np.concatenate(o_parts), "p": np.concatenate(p_parts)}).drop_duplicates()
    return df["o"].to_numpy(np.int64), df["p"].to_numpy(np.int64)


def _product_ids(data: CanonicalData, *raw: np.ndarray) -> np.ndarray:
    parts = [r for r in raw]
    if data.products is not None:
        parts.append(_ids(data.products, "product_id", f"{data.name}: table 'products'"))
    if not parts:
        return np.zeros(0, np.int64)
    return np.unique(np.concatenate(parts).astype(np.int64))


def _mapped_clicks(data: CanonicalData, cust_index: pd.Index, offer_index: pd.Index, info: dict):
    """(customer idx, offer idx, ts) of campaign clicks mapped to one offer (see the module docstring)."""
    ev = data.events
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    is_click = (ev["event_type"] == "campaign_click").to_numpy() if len(ev) else np.zeros(0, bool)
    n_clicks = int(is_click.sum())
    info["clicks"] = n_clicks
    if n_clicks == 0:
        info["clicks_skipped"] = 0
        return empty
    c = cust_index.get_indexer(ev["customer_id"].to_numpy()[is_click])
    ts = ev["ts"].to_numpy(np.float64)[is_click]
    if "offer_id" in ev.columns:
        o = offer_index.get_indexer(ev["offer_id"].fillna(-1).to_numpy(np.int64)[is_click])
    elif "product_id" in ev.columns:
        o_idx, p_raw = _applies_to(data, offer_index)
        counts = pd.Series(o_idx).groupby(p_raw).agg(["first", "size"])
        unique_offer = counts.loc[counts["size"] == 1, "first"]
        o = unique_offer.reindex(ev["product_id"].to_numpy(np.int64)[is_click]).fillna(-1).to_numpy(np.int64)
    else:
        o = np.full(n_clicks, -1, np.int64)
    ok = (c >= 0) & (o >= 0)
    info["clicks_skipped"] = int((~ok).sum())
    return c[ok].astype(np.int64), o[ok].astype(np.int64), ts[ok]


def _offer_exposure_frame(data: CanonicalData) -> pd.DataFrame | None:
    meta = data.meta if isinstance(data.meta, dict) else {}
    return meta.get("offer_exposures")


def _treated_offer_exposures(data: CanonicalData, cust_index: pd.Index, offer_index: pd.Index,
                             also: np.ndarray | None = None):
    """(customer idx, offer idx, ts) of the exposures table's treated rows with a known offer (and ``also`` true)."""
    ex = data.exposures
    oid = ex["offer_id"].fillna(-1).to_numpy(np.int64)
    sel = (oid >= 0) & (ex["treatment"].to_numpy() > 0)
    if also is not None:
        sel &= also
    c = cust_index.get_indexer(ex["customer_id"].to_numpy()[sel])
    o = offer_index.get_indexer(oid[sel])
    t = _times(ex, f"{data.name}: table 'exposures'", data.history_end)[sel]
    ok = (c >= 0) & (o >= 0)
    return c[ok], o[ok], t[ok]


def _exposures(data: CanonicalData, cust_index: pd.Index, offer_index: pd.Index, clicks, info: dict):
    """(customer idx, offer idx, ts) of offer exposures: exposures table, meta offer exposures, mapped clicks."""
    cs, os_, ts = [clicks[0]], [clicks[1]], [clicks[2]]
    n_table = 0
    if "offer_id" in data.exposures.columns:
        c, o, t = _treated_offer_exposures(data, cust_index, offer_index)
        cs.append(c), os_.append(o), ts.append(t)
        n_table = len(c)
    frame = _offer_exposure_frame(data)
    n_meta = 0
    if frame is not None:
        what = f"{data.name}: meta['offer_exposures']"
        _require(frame, ("customer_id", "offer_id"), what)
        c = cust_index.get_indexer(_ids(frame, "customer_id", what))
        o = offer_index.get_indexer(_ids(frame, "offer_id", what))
        t = _times(frame, what, data.history_end)
        ok = (c >= 0) & (o >= 0)
        cs.append(c[ok]), os_.append(o[ok]), ts.append(t[ok])
        n_meta = int(ok.sum())
    info["exposure_rows"] = {"exposures_table": n_table, "offer_exposures": n_meta, "clicks": int(len(clicks[0]))}
    return (np.concatenate(cs).astype(np.int64), np.concatenate(os_).astype(np.int64),
            np.concatenate(ts).astype(np.float64))


def _positives(data: CanonicalData, cust_index: pd.Index, offer_index: pd.Index, clicks, info: dict):
    """(customer idx, offer idx, ts) of every redemption event (see the module docstring)."""
    meta = data.meta if isinstance(data.meta, dict) else {}
    red = meta.get("redemptions")
    if red is not None:
        what = f"{data.name}: meta['redemptions']"
        _require(red, ("customer_id", "offer_id", "ts"), what)
        c = cust_index.get_indexer(_ids(red, "customer_id", what))
        o = offer_index.get_indexer(_ids(red, "offer_id", what))
        t = _times(red, what, data.history_end)
        ok = (c >= 0) & (o >= 0)
        info["positive_source"] = "meta['redemptions']"
        info["redemptions_skipped"] = int((~ok).sum())
        return c[ok].astype(np.int64), o[ok].astype(np.int64), t[ok]
    ex = data.exposures
    cs, os_, ts = [clicks[0]], [clicks[1]], [clicks[2]]
    n_resp = 0
    if "offer_id" in ex.columns and "engaged" in ex.columns:
        out = data.outcomes.drop_duplicates("customer_id", keep="last").set_index("customer_id")["purchased"]
        bought = out.reindex(ex["customer_id"].to_numpy()).fillna(0).to_numpy() > 0
        c, o, t = _treated_offer_exposures(data, cust_index, offer_index, (ex["engaged"].to_numpy() > 0) & bought)
        cs.append(c), os_.append(o), ts.append(t)
        n_resp = len(c)
    info["positive_source"] = "treated & engaged & purchased exposures + mapped campaign clicks"
    info["positive_rows"] = {"response_window": n_resp, "clicks": int(len(clicks[0]))}
    return (np.concatenate(cs).astype(np.int64), np.concatenate(os_).astype(np.int64),
            np.concatenate(ts).astype(np.float64))


def _first_pairs(positives, n_offers: int) -> dict[str, np.ndarray]:
    """Distinct (customer, offer) pairs with their first redemption time, sorted by (customer, offer)."""
    c, o, t = positives
    if len(c) == 0:
        return {"c": np.zeros(0, np.int64), "o": np.zeros(0, np.int64), "ts": np.zeros(0)}
    key = c * np.int64(n_offers) + o
    uniq, inv = np.unique(key, return_inverse=True)
    first = np.full(len(uniq), np.inf)
    np.minimum.at(first, inv, t)
    return {"c": uniq // n_offers, "o": uniq % n_offers, "ts": first}


# ----------------------------------------------------------------------------------------------
# Split
# ----------------------------------------------------------------------------------------------


def _split(data, pairs, split_days, split, val_frac, test_frac, seed, n_customers, info):
    """(mode, val_start, test_start, per-pair split code 0/1/2, customer_split)."""
    t = pairs["ts"]
    customer_split = np.full(n_customers, -1, np.int8)
    if split_days is not None:
        v, s = float(split_days[0]), float(split_days[1])
        info["split_reason"] = "split_days given"
        return "time", v, s, _time_codes(t, v, s), customer_split
    if len(t):
        t0, t1 = float(t.min()), float(t.max())
    else:
        t0 = t1 = float(data.history_end)
    span = t1 - t0
    v = t0 + (1.0 - float(val_frac) - float(test_frac)) * span
    s = t0 + (1.0 - float(test_frac)) * span
    codes = _time_codes(t, v, s)
    if split == "time":
        info["split_reason"] = "split='time'"
        return "time", v, s, codes, customer_split
    h = float(data.history_end)
    resp = t >= h
    if split == "auto":
        need = max(1, int(math.ceil(MIN_SPLIT_SHARE * len(t))))
        ok = all(int((codes == k).sum()) >= need
                 and np.unique(pairs["o"][codes == k]).size >= min(MIN_SPLIT_OFFERS, np.unique(pairs["o"]).size)
                 for k in (1, 2))
        if ok:
            info["split_reason"] = "auto: the positives are spread in time"
            return "time", v, s, codes, customer_split
        if np.unique(pairs["c"][resp]).size < 3:
            info["split_reason"] = ("auto: time split degenerate, but fewer than 3 customers have response-window "
                                    "positives; time split kept")
            return "time", v, s, codes, customer_split
        info["split_reason"] = (f"auto: a time split would leave val or test with < {MIN_SPLIT_SHARE:.0%} of the "
                                f"positive pairs or < {MIN_SPLIT_OFFERS} distinct offers; customer split")
    else:
        info["split_reason"] = "split='customer'"
    # customer mode: random customer-disjoint split of the response-window positives
    owners = np.unique(pairs["c"][resp])
    rng = np.random.default_rng(int(seed))
    perm = owners[rng.permutation(owners.size)]
    n = owners.size
    n_test = int(round(float(test_frac) * n))
    n_val = int(round(float(val_frac) * n))
    if n >= 3:
        n_test, n_val = max(n_test, 1), max(n_val, 1)
    customer_split[perm[:n_test]] = 2
    customer_split[perm[n_test:n_test + n_val]] = 1
    customer_split[perm[n_test + n_val:]] = 0
    codes = np.where(resp, customer_split[pairs["c"]], 0).astype(np.int8)
    return "customer", h, h, codes, customer_split


def _time_codes(t: np.ndarray, val_start: float, test_start: float) -> np.ndarray:
    return np.where(t < val_start, 0, np.where(t < test_start, 1, 2)).astype(np.int8)


# ----------------------------------------------------------------------------------------------
# Node features
# ----------------------------------------------------------------------------------------------


def _codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Categorical column -> (codes 1..K with 0 = unknown, vocabulary): ``deepromo.data.encoding``'s rule."""
    vocab = fit_vocabulary(values)
    return encode(values, vocab), vocab


class _Standardiser:
    def __init__(self, x: np.ndarray):
        x = np.where(np.isfinite(x), x, np.nan)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: mean 0, std 1
            self.mean = np.nan_to_num(np.nanmean(x, axis=0)) if x.shape[0] else np.zeros(x.shape[1])
            sd = np.nanstd(x, axis=0) if x.shape[0] else np.ones(x.shape[1])
        self.std = np.where(np.isfinite(sd) & (sd > 1e-12), sd, 1.0)

    def __call__(self, x: np.ndarray) -> torch.Tensor:
        z = (np.where(np.isfinite(x), x, np.nan) - self.mean) / self.std
        return torch.from_numpy(np.nan_to_num(z, nan=0.0).astype(np.float32))


class _NodeFeatures:
    """Categorical codes and standardised numeric features of the three node types."""

    def __init__(self, data: CanonicalData, cust_ids: np.ndarray, product_ids: np.ndarray, train_cut: float,
                 info: dict):
        self.data = data
        self.cust_ids = cust_ids
        self.columns: dict[str, dict[str, list[str]]] = {}
        self.vocabularies: dict[str, dict[str, list[str]]] = {}
        self.cardinalities: dict[str, list[int]] = {}
        self.x_cat: dict[str, torch.Tensor] = {}
        self.x_num: dict[str, torch.Tensor] = {}
        # customers: static part now, behaviour part per cut
        cust = data.customers.reset_index(drop=True)
        cat_cols, num_cols = static_columns(cust)
        self.cust_static_num = cust[num_cols].to_numpy(np.float64) if num_cols else np.zeros((len(cust), 0))
        self.cust_num_cols = list(num_cols)
        self._set_cat("customer", {c: cust[c] for c in cat_cols}, len(cust))
        raw, names = self._customer_raw(train_cut)
        self.cust_scaler = _Standardiser(raw)
        self.columns["customer"]["num"] = names
        self._cust_cache: dict[float, torch.Tensor] = {train_cut: self.cust_scaler(raw)}
        # products
        prods = (data.products.drop_duplicates("product_id").set_index("product_id").reindex(product_ids)
                 if data.products is not None else pd.DataFrame(index=pd.Index(product_ids)))
        self._set_cat("product", {c: prods[c] for c in ("category", "brand") if c in prods.columns}, len(product_ids))
        if "price" in prods.columns:
            price = pd.to_numeric(prods["price"], errors="coerce").to_numpy(np.float64)
            with np.errstate(all="ignore"):
                lp = np.where(price > 0, np.log(price), np.nan)[:, None]
            self.x_num["product"] = _Standardiser(lp)(lp)
            self.columns["product"]["num"] = ["log_price"]
        else:
            self.x_num["product"] = torch.zeros(len(product_ids), 0)
            self.columns["product"]["num"] = []
        # offers
        off = data.offers.reset_index(drop=True)
        self._set_cat("offer", {c: off[c] for c in ("offer_type", "timing") if c in off.columns}, len(off))
        num = [c for c in ("face_value", "duration_days") if c in off.columns]
        if "face_value_observed" in off.columns and "face_value" in num:
            num.remove("face_value")
            info["dropped_offer_features"] = ["face_value (derived from all redemptions: label leak)"]
        x = off[num].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64) if num else np.zeros((len(off), 0))
        self.x_num["offer"] = _Standardiser(x)(x)
        self.columns["offer"]["num"] = num

    def _set_cat(self, nt: str, cols: dict[str, pd.Series], n: int) -> None:
        codes, vocabs = [], {}
        for name, s in cols.items():
            c, v = _codes(s.reset_index(drop=True))
            codes.append(c)
            vocabs[name] = v
        self.x_cat[nt] = torch.from_numpy(np.stack(codes, axis=1) if codes else np.zeros((n, 0), np.int64))
        self.columns[nt] = {"cat": list(cols), "num": []}
        self.vocabularies[nt] = vocabs
        self.cardinalities[nt] = [len(v) + 1 for v in vocabs.values()]

    def _customer_raw(self, cut: float) -> tuple[np.ndarray, list[str]]:
        beh = behaviour_features(self.data.events, self.cust_ids, cut)
        raw = np.concatenate([self.cust_static_num, beh.to_numpy(np.float64)], axis=1)
        names = self.cust_num_cols + list(beh.columns)
        log = np.asarray([n.startswith(COUNT_LIKE_PREFIXES) or n in DAY_COLUMNS for n in names], dtype=bool)
        with np.errstate(all="ignore"):
            raw[:, log] = np.log1p(np.maximum(raw[:, log], 0.0))
        return raw, names

    def customer_num(self, cut: float) -> torch.Tensor:
        if cut not in self._cust_cache:
            self._cust_cache[cut] = self.cust_scaler(self._customer_raw(cut)[0])
        return self._cust_cache[cut]


# ----------------------------------------------------------------------------------------------
# Graph assembly
# ----------------------------------------------------------------------------------------------


def _aggregate(src, dst, ts, n_dst: int, cut: float, half_life: float):
    """Distinct (src, dst) pairs of the interactions before ``cut`` with decayed strength, count and last time."""
    keep = ts < cut
    src, dst, ts = src[keep], dst[keep], ts[keep]
    if len(src) == 0:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0), z, np.zeros(0)
    key = src * np.int64(n_dst) + dst
    uniq, inv = np.unique(key, return_inverse=True)
    w = np.bincount(inv, weights=np.exp2(-(cut - ts) / half_life), minlength=len(uniq))
    cnt = np.bincount(inv, minlength=len(uniq)).astype(np.int64)
    last = np.full(len(uniq), -np.inf)
    np.maximum.at(last, inv, ts)
    return uniq // n_dst, uniq % n_dst, np.log1p(np.maximum(w, WEIGHT_FLOOR)), cnt, last


def _top_per_source(src, weight, last, dst, k: int) -> np.ndarray:
    """Positions of each source's k strongest edges (ties: most recent, then lowest dst)."""
    order = np.lexsort((dst, -last, -weight, src))
    s = src[order]
    start = np.r_[0, np.flatnonzero(s[1:] != s[:-1]) + 1] if len(s) else np.zeros(0, np.int64)
    rank = np.arange(len(s)) - np.repeat(start, np.diff(np.r_[start, len(s)]))
    return np.sort(order[rank < k])


def _message_graph(logs, applies, sizes, feats: _NodeFeatures, cut: float, half_life: float,
                   max_products: int | None) -> HeteroData:
    g = HeteroData()
    for nt in NODE_TYPES:
        g[nt].num_nodes = sizes[nt]
        g[nt].x_cat = feats.x_cat[nt]
        x_num = feats.customer_num(cut) if nt == "customer" else feats.x_num[nt]
        g[nt].x_num = x_num
        g[nt].x = x_num
    for et, (src, dst, ts) in logs.items():
        s, d, w, cnt, last = _aggregate(src, dst, ts, sizes[et[2]], cut, half_life)
        if et == PURCHASED and max_products is not None:
            keep = _top_per_source(s, w, last, d, max_products)
            s, d, w, cnt, last = s[keep], d[keep], w[keep], cnt[keep], last[keep]
        _set_edges(g, et, s, d, w, cnt, last)
    o, p = applies
    ok = (o >= 0) & (p >= 0)
    key = np.unique(o[ok] * np.int64(sizes["product"]) + p[ok])
    n = len(key)
    _set_edges(g, APPLIES_TO, key // sizes["product"], key % sizes["product"], np.full(n, math.log(2.0)),
               np.ones(n, np.int64), np.full(n, -np.inf))
    g.cut_time = float(cut)
    return g


def _set_edges(g: HeteroData, et, src, dst, weight, count, last) -> None:
    ei = torch.from_numpy(np.stack([src, dst]).astype(np.int64).reshape(2, -1))
    attr = torch.from_numpy(np.asarray(weight, np.float32).reshape(-1, 1))
    t = torch.from_numpy(np.asarray(last, np.float64))
    cnt = torch.from_numpy(np.asarray(count, np.int64))
    for edge_type, index in ((et, ei), (reverse_edge_type(et), ei.flip(0))):
        store = g[edge_type]
        store.edge_index = index
        store.edge_attr = attr
        store.edge_time = t
        store.edge_count = cnt


def _with_labels(base: HeteroData, pairs: torch.Tensor, times: torch.Tensor, split: str) -> HeteroData:
    """A new HeteroData sharing ``base``'s tensors (no copy) with ``split``'s supervision on the redeemed store."""
    g = HeteroData()
    for nt in base.node_types:
        for k, v in base[nt].items():
            g[nt][k] = v
    for et in base.edge_types:
        for k, v in base[et].items():
            g[et][k] = v
    g.cut_time = base.cut_time
    g.split = split
    g[REDEEMED].edge_label_index = pairs
    g[REDEEMED].edge_label = torch.ones(pairs.shape[1], dtype=torch.float32)
    g[REDEEMED].edge_label_time = times
    return g


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
