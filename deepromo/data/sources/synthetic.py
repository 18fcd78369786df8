"""The synthetic marketplace: one seeded, coherent world with the ground truth real logs lack.

``generate_world(...)`` (or ``generate_world_from_config(SyntheticConfig(...))``) returns a
:class:`~deepromo.data.tables.CanonicalData` with customers, behaviour events, one campaign
exposure and one outcome per customer, products, offers and a ``truth`` table (latent intent,
latent rates, the true response curve at every incentive level, counterfactual flags).

Everything is vectorised numpy (no Python loop over customers or events): memory and time grow
linearly with ``n_customers``. The story and its numbers are documented in
``docs/synthetic-world.md``; the constants below are the defaults described there.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from deepromo.data.errors import UserInputError
from deepromo.data.market.customers import (
    CATEGORIES, CATEGORY_PRICE, ENGAGE_INACTIVE, ENGAGE_PROMPTED, N_BRANDS, OFFER_TIMINGS, OFFER_TYPES,
    _categorical_rows, age_category_weights, campaign_offer_ids, campaign_tables, customers_table, draw_customers,
    engagement_probability, log_campaign,
)
from deepromo.data.market.params import MarketStructures
from deepromo.data.market.world import generate_market_world
from deepromo.data.sources import register_source
from deepromo.data.tables import INTENTS, CanonicalData, true_curve_columns

# ----------------------------------------------------------------------------------------------
# World constants (documented in docs/synthetic-world.md)
# ----------------------------------------------------------------------------------------------


EVENT_TYPES = ("view", "cart", "purchase", "campaign_click")

# Per-intent latent-trait means, ordered as INTENTS = (prompted, organic, inactive).
CHURN_HAZARD = (1 / 400, 1 / 700, 1 / 90)  # per day
CLICK_RATE = (0.30, 0.06, 0.02)        # P(click | past campaign received), before fatigue
CART_PROB = (0.10, 0.12, 0.04)         # P(add-to-cart | view)
PMAX_PROMPTED = 0.50                   # prompted: response probability at saturation
HEADROOM_ORGANIC, HEADROOM_INACTIVE = 0.05, 0.03   # pmax - p0 for organic / inactive
CHURNED_FACTOR = 0.2                   # response-window activity of a customer churned before history_end

WEEKDAY_W, WEEKEND_W = 0.88, 1.30      # weekly seasonality (days 5, 6 of each week are weekend)
PROMO_PERIOD, PROMO_LEN, PROMO_OFFSET = 14, 3, 10   # promo days: (d - 10) mod 14 < 3
PROMO_K = 2.0                          # purchase intensity x (1 + PROMO_K * s) during promos
PROMO_K_VIEW = 1.0                     # view intensity x (1 + PROMO_K_VIEW * s) during promos
VIEW_BURST, VIEW_BURST_SCALE = 0.30, 0.05          # extra views per view, delay ~ Exp(days)
PURCHASE_BURST, PURCHASE_BURST_SCALE = 0.10, 1.0   # extra purchases per purchase
PREF_CATEGORY_P = 0.7                  # share of events in the preferred category
CART_BEFORE_PURCHASE = 0.5             # P(a purchase is preceded by a cart event)
CAMPAIGN_PERIOD, CAMPAIGN_OFFSET = 10, 4           # past campaigns on days 4, 14, 24, ...
CAMPAIGN_REACH = 0.6                   # P(customer receives a past campaign)
FATIGUE = 0.85                         # click prob x FATIGUE ** (#campaigns received before)
CLICK_TO_PURCHASE = 0.35               # P(purchase after click) = 0.35 * (1 - exp(-s))


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the synthetic world; see :func:`generate_world` for their meaning."""

    n_customers: int = 20000
    seed: int = 0
    history_days: float = 120.0
    response_days: float = 14.0
    policy: str = "randomised"
    treat_share: float = 0.8
    incentive_levels: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0, 20.0)
    intent_shares: tuple[float, float, float] = (0.20, 0.30, 0.50)
    organic_engage_rate: float = 0.5
    n_products: int = 200
    n_offers: int = 84
    world: str = "market"
    structures: MarketStructures = MarketStructures()

    def validate(self) -> "SyntheticConfig":
        """Raise ValueError naming the argument and the expected value when a knob is invalid."""
        _validate(self)
        return self


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _parse_structures(world, structures) -> MarketStructures:
    """The market's switches; the snapshot world has none (asking for some there is an error)."""
    parsed = MarketStructures.parse(structures)
    if world != "snapshot":
        return parsed
    if structures not in (None, False, "none") and parsed != MarketStructures():  # the config's defaults pass
        raise UserInputError(f"structures={structures!r} needs world='market'; the snapshot world (the one-campaign "
                             "world of deepromo 0.1) has no market structures")
    return MarketStructures.parse(False)


def _validate(cfg: SyntheticConfig) -> None:
    if cfg.world not in ("market", "snapshot"):
        raise UserInputError(f"world must be 'market' (the market with cycles, affinity, fatigue, churn, prices) or "
                             f"'snapshot' (the one-campaign world of deepromo <= 0.1), got {cfg.world!r}")
    if not isinstance(cfg.structures, MarketStructures):
        raise UserInputError(f"structures must be a MarketStructures, got {type(cfg.structures).__name__}")
    if not _is_int(cfg.n_customers) or cfg.n_customers < 1:
        raise UserInputError(f"n_customers must be an integer >= 1, got {cfg.n_customers!r}")
    if not _is_int(cfg.seed) or cfg.seed < 0:
        raise UserInputError(f"seed must be an integer >= 0, got {cfg.seed!r}")
    for name in ("history_days", "response_days"):
        v = getattr(cfg, name)
        if not isinstance(v, (int, float, np.number)) or not math.isfinite(float(v)) or float(v) <= 0:
            raise UserInputError(f"{name} must be a finite number > 0, got {v!r}")
    if float(cfg.history_days) < 1:
        raise UserInputError(f"history_days must be >= 1 day, got {cfg.history_days!r}")
    if cfg.policy not in ("randomised", "biased"):
        raise UserInputError(f"policy must be 'randomised' or 'biased', got {cfg.policy!r}")
    ts = cfg.treat_share
    if not isinstance(ts, (int, float, np.number)) or not (0.0 <= float(ts) <= 1.0):
        raise UserInputError(f"treat_share must be a number in [0, 1], got {ts!r}")
    if cfg.policy == "biased" and not (0.0 < float(ts) < 1.0):
        raise UserInputError(f"treat_share must lie strictly in (0, 1) for policy='biased', got {ts!r}")
    try:
        lv = np.asarray(cfg.incentive_levels, dtype=float)
    except (TypeError, ValueError):
        raise UserInputError(f"incentive_levels must be a sequence of numbers, got {cfg.incentive_levels!r}") from None
    if lv.ndim != 1 or lv.size < 2 or not np.all(np.isfinite(lv)):
        raise UserInputError(
            f"incentive_levels must hold at least 2 finite numbers (0 and one positive level), "
            f"got {cfg.incentive_levels!r}"
        )
    if lv[0] != 0.0 or np.any(np.diff(lv) <= 0):
        raise UserInputError(
            f"incentive_levels must be strictly increasing and start at 0, got {cfg.incentive_levels!r}"
        )
    try:
        sh = np.asarray(cfg.intent_shares, dtype=float)
    except (TypeError, ValueError):
        raise UserInputError(f"intent_shares must be 3 numbers, got {cfg.intent_shares!r}") from None
    if sh.shape != (3,) or not np.all(np.isfinite(sh)) or np.any(sh < 0) or abs(sh.sum() - 1.0) > 1e-6:
        raise UserInputError(
            f"intent_shares must be 3 non-negative numbers (prompted, organic, inactive) summing to 1, "
            f"got {cfg.intent_shares!r}"
        )
    r = cfg.organic_engage_rate
    if not isinstance(r, (int, float, np.number)) or not (0.0 <= float(r) <= 1.0):
        raise UserInputError(f"organic_engage_rate must be a number in [0, 1], got {r!r}")
    if not _is_int(cfg.n_products) or cfg.n_products < 1:
        raise UserInputError(f"n_products must be an integer >= 1, got {cfg.n_products!r}")
    if not _is_int(cfg.n_offers) or cfg.n_offers < 1:
        raise UserInputError(f"n_offers must be an integer >= 1, got {cfg.n_offers!r}")


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


@register_source("synthetic")
def generate_world(
    n_customers: int | SyntheticConfig = 20000,
    seed: int = 0,
    history_days: float = 120.0,
    response_days: float = 14.0,
    policy: str = "randomised",
    treat_share: float = 0.8,
    incentive_levels=(0.0, 5.0, 10.0, 15.0, 20.0),
    intent_shares=(0.20, 0.30, 0.50),
    organic_engage_rate: float = 0.5,
    n_products: int = 200,
    n_offers: int = 84,
    world: str = "market",
    structures=None,
) -> CanonicalData:
    """Generate one synthetic marketplace as canonical tables (validated).

    n_customers: number of customers (>= 1); may also be a :class:`SyntheticConfig`, in which
        case all other arguments are ignored.
    seed: the world is a pure function of its knobs and this seed.
    history_days: length of the behaviour window [0, history_days).
    response_days: length of the response window after the campaign.
    policy: logging policy, "randomised" (an RCT) or "biased" (towards engaged customers).
    treat_share: P(treatment) (randomised) or its baseline (biased).
    incentive_levels: ascending incentive levels starting at 0 (0 = control).
    intent_shares: target shares of prompted / organic / inactive customers.
    organic_engage_rate: P(organic customer engages with the campaign | treated).
    n_products, n_offers: catalogue sizes.
    world: "market" (default: the market of ``deepromo.data.market`` run day by day over the history) or
        "snapshot" (the one-campaign world of deepromo 0.1, bit for bit).
    structures: the market's switches (:class:`~deepromo.data.market.params.MarketStructures`; None = all on,
        a mapping such as ``{"cycles": False}``, a list of the names that are on, or "none").
    """
    if isinstance(n_customers, SyntheticConfig):
        return generate_world_from_config(n_customers)
    cfg = SyntheticConfig(
        n_customers=n_customers, seed=seed, history_days=history_days, response_days=response_days,
        policy=policy, treat_share=treat_share, incentive_levels=_as_tuple(incentive_levels),
        intent_shares=_as_tuple(intent_shares), organic_engage_rate=organic_engage_rate,
        n_products=n_products, n_offers=n_offers, world=world, structures=_parse_structures(world, structures),
    )
    return generate_world_from_config(cfg)


def _as_tuple(x):
    """Sequences of numbers become tuples of floats (hashable config); anything else is kept for validation."""
    try:
        return tuple(float(v) for v in x)
    except (TypeError, ValueError):
        return x


def generate_world_from_config(config: SyntheticConfig) -> CanonicalData:
    """Generate the world described by ``config`` (see :func:`generate_world`)."""
    if not isinstance(config, SyntheticConfig):
        raise UserInputError(f"config must be a SyntheticConfig, got {type(config).__name__}")
    _validate(config)
    if config.world == "snapshot":
        return _generate(config)
    return generate_market_world(config, config.structures)


def summarize_world(data: CanonicalData) -> dict:
    """Headline numbers of a synthetic world (needs ``truth``): shares, conversion, segment mix."""
    t, ex, oc = data.truth, data.exposures, data.outcomes
    intent = t["intent"].to_numpy().astype(str)
    treated = ex["treatment"].to_numpy() == 1
    engaged = ex["engaged"].to_numpy() == 1
    bought = oc["purchased"].to_numpy() == 1
    eng_buy = treated & engaged & bought
    out = {
        "n_customers": int(len(t)),
        "n_events": int(len(data.events)),
        "intent_shares": {k: float(np.mean(intent == k)) for k in INTENTS},
        "conversion": float(bought.mean()),
        "conversion_by_intent_treated": {
            f"{k}/{'treated' if tr else 'control'}": float(bought[(intent == k) & (treated == tr)].mean())
            if np.any((intent == k) & (treated == tr)) else float("nan")
            for k in INTENTS for tr in (True, False)
        },
        "prompted_share_among_engaged_purchasers": float(np.mean(intent[eng_buy] == "prompted"))
        if eng_buy.any() else float("nan"),
        "segment_shares": {
            "engaged_purchase": float(eng_buy.mean()),
            "unengaged_purchase": float((bought & ~eng_buy).mean()),
            "inactive": float((~bought).mean()),
        },
    }
    return out


# ----------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------


def _time_grid(H: float):
    """Day grid with weekly seasonality and promo periods, as cumulative intensity functions."""
    D = int(math.ceil(H))
    d = np.arange(D)
    w = np.where(d % 7 >= 5, WEEKEND_W, WEEKDAY_W)
    promo = ((d - PROMO_OFFSET) % PROMO_PERIOD) < PROMO_LEN
    frac = np.minimum(1.0, H - d)
    grid = np.minimum(np.arange(D + 1, dtype=float), H)
    cum_w = np.concatenate([[0.0], np.cumsum(w * frac)])
    cum_p = np.concatenate([[0.0], np.cumsum(w * promo * frac)])
    return grid, cum_w, cum_p, promo


def _draw_times(rng, counts, T, grid, cum):
    """Per-event customer ids and timestamps in [0, T_i) with density proportional to d(cum)."""
    n = counts.size
    cid = np.repeat(np.arange(n, dtype=np.int64), counts)
    mass = np.interp(T, grid, cum)
    u = rng.random(cid.size)
    u *= mass[cid]
    ts = np.interp(u, cum, grid)
    return cid, ts


def _pick_products(rng, cid, pref_cat, cat_start, cat_count, n_cat):
    """Products of events: preferred category with prob PREF_CATEGORY_P, else uniform category."""
    m = cid.size
    cat = pref_cat[cid].astype(np.int64)
    other = rng.random(m) >= PREF_CATEGORY_P
    cat[other] = rng.integers(0, n_cat, size=int(other.sum()))
    prod = cat_start[cat] + (rng.random(m) * cat_count[cat]).astype(np.int64)
    return prod


def _bursts(rng, cid, ts, prod, rate, scale, T):
    """Each event spawns Poisson(rate) followers at ts + Exp(scale); those past T_i are dropped."""
    k = rng.poisson(rate, size=cid.size)
    idx = np.repeat(np.arange(cid.size), k)
    c_cid = cid[idx]
    c_ts = ts[idx] + rng.exponential(scale, size=idx.size)
    keep = c_ts < T[c_cid]
    return c_cid[keep], c_ts[keep], prod[idx][keep]


def _generate(cfg: SyntheticConfig) -> CanonicalData:
    rng = np.random.default_rng(int(cfg.seed))
    n = int(cfg.n_customers)
    H = float(cfg.history_days)
    R = float(cfg.response_days)
    levels = np.asarray(cfg.incentive_levels, dtype=float)
    nz_levels = levels[1:]
    c_max = float(levels[-1])
    shares = np.asarray(cfg.intent_shares, dtype=float)

    drawn = draw_customers(rng, n, shares)
    age, region, member, device, tenure = (drawn[k] for k in ("age", "region", "member", "device", "tenure"))
    intent, intercept = drawn["intent"], drawn["intercept"]
    lam, sens, view_rate = drawn["lam"], drawn["sens"], drawn["view_rate"]
    is_p, is_o = intent == 0, intent == 1

    def by_intent(vals):
        return np.asarray(vals, dtype=float)[intent]

    churn_h = by_intent(CHURN_HAZARD) * np.exp(0.5 * rng.standard_normal(n) - 0.125) * np.where(
        tenure < 180, 1.5, 1.0)
    churn_day = rng.exponential(1.0, size=n) / churn_h
    churned = churn_day < H
    T = np.minimum(churn_day, H)
    # preferred category: age shifts the odds a little
    cat_w = age_category_weights()

    # ---------------- products and offers ----------------
    n_prod = int(cfg.n_products)
    n_cat = min(len(CATEGORIES), n_prod)
    prod_cat = np.sort(np.concatenate([np.arange(n_cat), rng.integers(0, n_cat, size=n_prod - n_cat)]))
    prod_brand = rng.integers(0, N_BRANDS, size=n_prod)
    prod_price = np.round(np.asarray(CATEGORY_PRICE)[prod_cat] * np.exp(0.5 * rng.standard_normal(n_prod)), 2)
    prod_price = np.maximum(prod_price, 0.5)
    cat_count = np.bincount(prod_cat, minlength=n_cat).astype(np.int64)
    cat_start = np.concatenate([[0], np.cumsum(cat_count)[:-1]]).astype(np.int64)
    products = pd.DataFrame({
        "product_id": np.arange(n_prod, dtype=np.int64),
        "category": np.asarray(CATEGORIES, dtype=object)[prod_cat],
        "brand": np.asarray([f"brand_{b:02d}" for b in range(N_BRANDS)], dtype=object)[prod_brand],
        "price": prod_price.astype(np.float64),
    })
    # preferred category (restricted to existing categories)
    cw = cat_w[:, :n_cat] / cat_w[:, :n_cat].sum(axis=1, keepdims=True)
    pref_cat = _categorical_rows(rng, cw[age]).astype(np.int8)

    n_off = int(cfg.n_offers)
    F, NT = nz_levels.size, len(OFFER_TIMINGS)
    combo = np.arange(n_off) % (len(OFFER_TYPES) * F * NT)
    off_type = combo // (F * NT)
    off_face = nz_levels[(combo // NT) % F]
    off_timing = combo % NT
    off_prod = rng.integers(0, n_prod, size=n_off).astype(np.int64)
    offers = pd.DataFrame({
        "offer_id": np.arange(n_off, dtype=np.int64),
        "offer_type": np.asarray(OFFER_TYPES, dtype=object)[off_type],
        "face_value": off_face.astype(np.float64),
        "timing": np.asarray(OFFER_TIMINGS, dtype=object)[off_timing],
        "product_id": off_prod,
    })

    # ---------------- behaviour events over [0, H) ----------------
    grid, cum_w, cum_p, promo_days = _time_grid(H)
    mass_w = np.interp(T, grid, cum_w)
    mass_p = np.interp(T, grid, cum_p)
    ev_cid, ev_ts, ev_type, ev_prod = [], [], [], []

    def add(cid, ts, code, prod):
        ev_cid.append(cid)
        ev_ts.append(ts)
        ev_type.append(np.full(cid.size, code, dtype=np.int8))
        ev_prod.append(prod)

    # views: base + promo component (prompted browse more during promos), then bursts
    v_cid0, v_ts0 = _draw_times(rng, rng.poisson(view_rate * mass_w), T, grid, cum_w)
    v_cid1, v_ts1 = _draw_times(rng, rng.poisson(view_rate * PROMO_K_VIEW * sens * mass_p), T, grid, cum_p)
    v_cid = np.concatenate([v_cid0, v_cid1])
    v_ts = np.concatenate([v_ts0, v_ts1])
    del v_cid0, v_ts0, v_cid1, v_ts1
    v_prod = _pick_products(rng, v_cid, pref_cat, cat_start, cat_count, n_cat)
    b_cid, b_ts, b_prod = _bursts(rng, v_cid, v_ts, v_prod, VIEW_BURST, VIEW_BURST_SCALE, T)
    v_cid = np.concatenate([v_cid, b_cid])
    v_ts = np.concatenate([v_ts, b_ts])
    v_prod = np.concatenate([v_prod, b_prod])
    del b_cid, b_ts, b_prod
    # carts from views
    is_cart = rng.random(v_cid.size) < by_intent(CART_PROB)[v_cid]
    c_cid = v_cid[is_cart]
    c_ts = v_ts[is_cart] + rng.exponential(0.01, size=c_cid.size)
    c_prod = v_prod[is_cart]
    keep = c_ts < T[c_cid]
    add(v_cid, v_ts, 0, v_prod)
    add(c_cid[keep], c_ts[keep], 1, c_prod[keep])
    n_views = np.bincount(v_cid[v_ts >= H - 30], minlength=n)
    del v_cid, v_ts, v_prod, is_cart, c_cid, c_ts, c_prod, keep

    # purchases: lambda * w(t) * (1 + PROMO_K * s * promo(t)) as a base + promo mixture, then bursts
    p_cid0, p_ts0 = _draw_times(rng, rng.poisson(lam * mass_w), T, grid, cum_w)
    p_cid1, p_ts1 = _draw_times(rng, rng.poisson(lam * PROMO_K * sens * mass_p), T, grid, cum_p)
    p_cid = np.concatenate([p_cid0, p_cid1])
    p_ts = np.concatenate([p_ts0, p_ts1])
    del p_cid0, p_ts0, p_cid1, p_ts1
    p_prod = _pick_products(rng, p_cid, pref_cat, cat_start, cat_count, n_cat)
    b_cid, b_ts, b_prod = _bursts(rng, p_cid, p_ts, p_prod, PURCHASE_BURST, PURCHASE_BURST_SCALE, T)
    p_cid = np.concatenate([p_cid, b_cid])
    p_ts = np.concatenate([p_ts, b_ts])
    p_prod = np.concatenate([p_prod, b_prod])
    del b_cid, b_ts, b_prod

    # past campaigns: reach, clicks with fatigue, some clicks convert
    camp_days = np.arange(CAMPAIGN_OFFSET, H, CAMPAIGN_PERIOD, dtype=float)
    camp_offer = rng.integers(0, n_off, size=camp_days.size)
    click_base = by_intent(CLICK_RATE)
    received_before = np.zeros(n, dtype=np.int16)
    n_clicks = np.zeros(n, dtype=np.int32)
    k_cid, k_ts, k_prod = [], [], []
    for j, day in enumerate(camp_days):  # loop over campaigns (~12), vectorised over customers
        active = T > day
        got = active & (rng.random(n) < CAMPAIGN_REACH)
        clicked = got & (rng.random(n) < click_base * FATIGUE ** received_before)
        received_before += got
        ids = np.flatnonzero(clicked)
        ts = day + rng.exponential(1.0, size=ids.size)
        ok = ts < T[ids]
        ids, ts = ids[ok], ts[ok]
        n_clicks[ids] += 1
        k_cid.append(ids.astype(np.int64))
        k_ts.append(ts)
        k_prod.append(np.full(ids.size, off_prod[camp_offer[j]], dtype=np.int64))
    k_cid = np.concatenate(k_cid) if k_cid else np.zeros(0, np.int64)
    k_ts = np.concatenate(k_ts) if k_ts else np.zeros(0)
    k_prod = np.concatenate(k_prod) if k_prod else np.zeros(0, np.int64)
    conv = rng.random(k_cid.size) < CLICK_TO_PURCHASE * (1.0 - np.exp(-sens[k_cid]))
    q_cid = k_cid[conv]
    q_ts = k_ts[conv] + rng.exponential(0.2, size=q_cid.size)
    q_prod = k_prod[conv]
    ok = q_ts < T[q_cid]
    add(k_cid, k_ts, 3, k_prod)
    p_cid = np.concatenate([p_cid, q_cid[ok]])
    p_ts = np.concatenate([p_ts, q_ts[ok]])
    p_prod = np.concatenate([p_prod, q_prod[ok]])
    del k_cid, k_ts, k_prod, conv, q_cid, q_ts, q_prod, ok

    # carts preceding purchases
    pc = rng.random(p_cid.size) < CART_BEFORE_PURCHASE
    pc_ts = np.maximum(p_ts[pc] - rng.exponential(0.02, size=int(pc.sum())), 0.0)
    add(p_cid[pc], pc_ts, 1, p_prod[pc])
    add(p_cid, p_ts, 2, p_prod)
    n_purch = np.bincount(p_cid[p_ts >= H - 30], minlength=n)
    del p_cid, p_ts, p_prod, pc, pc_ts

    ev_cid = np.concatenate(ev_cid)
    ev_ts = np.concatenate(ev_ts)
    ev_type = np.concatenate(ev_type)
    ev_prod = np.concatenate(ev_prod)
    np.minimum(ev_ts, np.nextafter(H, 0.0), out=ev_ts)
    order = np.lexsort((ev_ts, ev_cid))
    ev_cid = ev_cid[order]
    ev_ts = ev_ts[order]
    ev_type = ev_type[order]
    ev_prod = ev_prod[order]
    del order
    is_purchase = ev_type == 2
    amount = np.zeros(ev_cid.size)
    npur = int(is_purchase.sum())
    qty = 1 + rng.poisson(0.3, size=npur)
    amount[is_purchase] = np.round(prod_price[ev_prod[is_purchase]] * qty * np.exp(
        0.15 * rng.standard_normal(npur) - 0.15**2 / 2), 2)
    cat_code = np.where(ev_prod >= 0, prod_cat[np.maximum(ev_prod, 0)], n_cat).astype(np.int8)
    day_idx = np.minimum(ev_ts.astype(np.int64), promo_days.size - 1)
    promo_flag = promo_days[day_idx].astype(np.int8)
    del day_idx, is_purchase
    events = pd.DataFrame({
        "customer_id": ev_cid,
        "ts": ev_ts,
        "event_type": pd.Categorical.from_codes(ev_type, categories=list(EVENT_TYPES)),
        "product_id": ev_prod,
        "category": pd.Categorical.from_codes(cat_code, categories=list(CATEGORIES[:n_cat]) + [""]),
        "amount": amount,
        "promo_active": promo_flag,
    }, copy=False)
    del ev_cid, ev_ts, ev_type, ev_prod, amount, cat_code, promo_flag

    # ---------------- exposures: logging policy ----------------
    treated, lvl_idx, incentive, propensity, p_treat = log_campaign(rng, cfg, n, nz_levels, n_purch, n_views,
                                                                     n_clicks)
    # offer with the matching face value (nearest if the catalogue has none)
    offer_id = campaign_offer_ids(rng, treated, lvl_idx, nz_levels, offers["face_value"].to_numpy())

    # ---------------- true response curves and outcomes ----------------
    act = np.where(churned, CHURNED_FACTOR, 1.0)
    lam_resp = lam * act
    p0 = np.minimum(1.0 - np.exp(-lam_resp * R), 0.95)
    pmax_prompted = np.minimum(PMAX_PROMPTED * np.exp(0.2 * rng.standard_normal(n) - 0.02), 0.95)
    headroom = np.where(is_p, np.maximum(pmax_prompted - p0, 0.05),
                        np.where(is_o, HEADROOM_ORGANIC, HEADROOM_INACTIVE))
    pmax = np.minimum(p0 + act * headroom, 0.99)

    def curve(c):
        return p0 + (pmax - p0) * (1.0 - np.exp(-sens * c / c_max))

    p_c = curve(incentive)
    u_org = rng.random(n) < p0
    p_inc = np.clip((p_c - p0) / (1.0 - p0), 0.0, 1.0)
    u_inc = rng.random(n) < p_inc
    purchased = u_org | u_inc
    # engagement (treated only); campaign-caused purchases are more likely engaged while the
    # marginal P(engaged | treated) stays e_i:  e_hi = 1 - (1 - e)^3, e_lo solves the mixture.
    e = np.where(is_p, ENGAGE_PROMPTED, np.where(is_o, float(cfg.organic_engage_rate), ENGAGE_INACTIVE))
    engaged = treated & (rng.random(n) < engagement_probability(e, p_inc, u_inc))
    basket = np.asarray(CATEGORY_PRICE)[pref_cat.astype(np.int64) % len(CATEGORY_PRICE)] * 1.3 * np.exp(
        0.3 * rng.standard_normal(n) - 0.045)
    revenue = np.where(purchased, np.round(basket * np.exp(0.25 * rng.standard_normal(n) - 0.03125), 2), 0.0)

    cust_id = np.arange(n, dtype=np.int64)
    customers = customers_table(drawn)
    exposures, outcomes = campaign_tables(rng, H, treated, incentive, propensity, p_treat, offer_id, engaged,
                                          purchased, revenue)
    truth_cols = {
        "customer_id": cust_id,
        "intent": pd.Categorical.from_codes(intent, categories=list(INTENTS)),
        "organic_rate": lam_resp,
        "history_organic_rate": lam,
        "sensitivity": sens,
        "view_rate": view_rate,
        "churn_hazard": churn_h,
        "churn_day": churn_day,
        "churned": churned.astype(np.int8),
        "preferred_category": pd.Categorical.from_codes(pref_cat, categories=list(CATEGORIES[:n_cat])),
        "engage_prob": e,
        "p0": p0,
        "pmax": pmax,
        "basket_value": basket,  # mean order value of this customer (money); revenue = basket x LogNormal(0, 0.25)
    }
    for column, level in zip(true_curve_columns(levels), levels):
        truth_cols[column] = curve(level)
    truth_cols["bought_because_of_campaign"] = (treated & u_inc & ~u_org).astype(np.int8)
    truth_cols["next_purchase_organic"] = u_org.astype(np.int8)
    truth = pd.DataFrame(truth_cols)

    meta = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}
    meta.update({
        "source": "synthetic",
        "c_max": c_max,
        "intent_intercepts": intercept.tolist(),
        "promo_period": PROMO_PERIOD, "promo_len": PROMO_LEN, "promo_offset": PROMO_OFFSET,
        "campaign_days": camp_days.tolist(),
    })
    data = CanonicalData(
        customers=customers, events=events, exposures=exposures, outcomes=outcomes,
        products=products, offers=offers, truth=truth, history_end=H, response_days=R,
        incentive_levels=tuple(float(x) for x in levels), name="synthetic", meta=meta,
    )
    return data.validate()


__all__ = [
    "SyntheticConfig",
    "generate_world",
    "generate_world_from_config",
    "summarize_world",
]
