"""The logged market world: ``history_days`` of the market under a logging policy, then one campaign.

History: every ``CAMPAIGN_EVERY`` days a random share of the live customers receives ``OFFERS_PER_CONTACT``
catalogue offers drawn uniformly (propensities logged), and the market runs day by day. At ``history_end`` the
campaign of the canonical tables is decided (randomised or biased, as in the snapshot world): a sitewide coupon of
face value = the incentive level, valid for the response window. Its true response curve is exact
(:meth:`Market.window_purchase_probability`), the outcome is drawn from it with common random numbers, so
``bought_because_of_campaign`` is known. Same canonical tables as the snapshot world, plus
``meta['offer_exposures']``, ``meta['redemptions']`` (affinity-driven), ``meta['offer_products']`` and an
``offer_id`` column on events (the clicked or redeemed offer).
"""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import pandas as pd

from deepromo.data.market import customers as S
from deepromo.data.market import params as P
from deepromo.data.market.customers import OFFER_TIMINGS, OFFER_TYPES
from deepromo.data.market.engine import EVENT_CODES, SITEWIDE, Market, build_catalogue, draw_population
from deepromo.data.market.params import MarketStructures
from deepromo.data.tables import INTENTS, CanonicalData, true_curve_columns

CAMPAIGN_EVERY, CAMPAIGN_FIRST = 7, 3   # history campaigns on days 3, 10, 17, ...
CAMPAIGN_REACH = 0.6                    # share of live customers contacted by a history campaign
OFFERS_PER_CONTACT = 2                  # distinct catalogue offers per contacted customer
COUPON_TYPE = OFFER_TYPES.index("amount_off")   # the response-window campaign: a sitewide amount-off coupon


def history_campaign_offers(rng: np.random.Generator, market: Market, day: int, n_offers: int):
    """The history's logging policy on ``day``: (customers, offer indices) or None on a day without a campaign.
    A contacted customer gets ``OFFERS_PER_CONTACT`` distinct offers drawn uniformly (propensity
    ``CAMPAIGN_REACH * OFFERS_PER_CONTACT / n_offers`` per offer)."""
    if day % CAMPAIGN_EVERY != CAMPAIGN_FIRST:
        return None
    per_contact = min(OFFERS_PER_CONTACT, n_offers)
    reached = np.flatnonzero(market.alive & (rng.random(market.pop.n) < CAMPAIGN_REACH))
    picks = np.argsort(rng.random((reached.size, n_offers)), axis=1)[:, :per_contact]
    return np.repeat(reached, per_contact), picks.ravel()


def generate_market_world(cfg, structures: MarketStructures) -> CanonicalData:
    """The market world for a validated :class:`~deepromo.data.sources.synthetic.SyntheticConfig`."""
    rng = np.random.default_rng(int(cfg.seed))
    n, H, R = int(cfg.n_customers), float(cfg.history_days), float(cfg.response_days)
    levels = np.asarray(cfg.incentive_levels, dtype=float)
    nz_levels = levels[1:]
    drawn = S.draw_customers(rng, n, np.asarray(cfg.intent_shares, dtype=float))
    catalogue = build_catalogue(rng, S.CATEGORIES, S.CATEGORY_PRICE, S.N_BRANDS, int(cfg.n_products),
                                int(cfg.n_offers), nz_levels, structures)
    n_cat = catalogue.n_categories
    pop = draw_population(rng, drawn, S.age_category_weights(), n_cat, structures)
    market = Market(pop, catalogue, structures, rng)
    n_off = int(cfg.n_offers)
    per_contact = min(OFFERS_PER_CONTACT, n_off)

    days = int(math.ceil(H))
    logs, exposures_log = [], []
    for d in range(days):
        log = market.step(offers=history_campaign_offers(rng, market, d, n_off))
        logs.append(log)
        if log.exposure_customer.size:
            exposures_log.append((log.exposure_customer, log.exposure_offer,
                                  d + 0.0 + np.zeros(log.exposure_customer.size)))

    ev_c = np.concatenate([g.ev_customer for g in logs])
    ev_ts = np.concatenate([g.ev_ts for g in logs])
    keep = ev_ts < H
    ev = {k: np.concatenate([getattr(g, k) for g in logs])[keep]
          for k in ("ev_customer", "ev_ts", "ev_type", "ev_product", "ev_amount", "ev_offer")}
    order = np.lexsort((ev["ev_ts"], ev["ev_customer"]))
    ev = {k: v[order] for k, v in ev.items()}
    del ev_c, ev_ts, keep, order
    prod_cat = catalogue.product_category
    cat_code = np.where(ev["ev_product"] >= 0, prod_cat[np.maximum(ev["ev_product"], 0)], n_cat).astype(np.int8)
    day_idx = ev["ev_ts"].astype(np.int64)
    promo_flag = np.zeros(day_idx.size, np.int8)  # history campaigns run on their days
    promo_flag[(day_idx % CAMPAIGN_EVERY) == CAMPAIGN_FIRST] = 1
    events = pd.DataFrame({
        "customer_id": ev["ev_customer"].astype(np.int64),
        "ts": ev["ev_ts"],
        "event_type": pd.Categorical.from_codes(ev["ev_type"], categories=list(EVENT_CODES)),
        "product_id": ev["ev_product"].astype(np.int64),
        "category": pd.Categorical.from_codes(cat_code, categories=list(catalogue.categories) + [""]),
        "amount": ev["ev_amount"],
        "promo_active": promo_flag,
        "offer_id": ev["ev_offer"].astype(np.int64),
    }, copy=False)

    # ---------------- the campaign at history_end: logging policy as in the snapshot world ----------------
    recent = ev["ev_ts"] >= H - 30
    n_purch = np.bincount(ev["ev_customer"][recent & (ev["ev_type"] == 2)], minlength=n)
    n_views = np.bincount(ev["ev_customer"][recent & (ev["ev_type"] == 0)], minlength=n)
    n_clicks = np.bincount(ev["ev_customer"][ev["ev_type"] == 3], minlength=n)
    treated, lvl_idx, incentive, propensity, p_treat = S.log_campaign(rng, cfg, n, nz_levels, n_purch, n_views,
                                                                       n_clicks)
    all_c = np.arange(n)
    curves = np.empty((n, levels.size))
    curves[:, 0] = market.window_purchase_probability(int(round(R)))
    for j, level in enumerate(nz_levels, start=1):
        mass = market.response_mass(all_c, np.full(n, COUPON_TYPE), np.full(n, level), np.zeros(n, np.int64),
                                    np.full(n, SITEWIDE))
        curves[:, j] = market.window_purchase_probability(int(round(R)), extra_mass=mass)
    curves = np.maximum.accumulate(curves, axis=1)  # exact values are monotone; this removes rounding noise
    p0 = curves[:, 0]
    p_c = curves[np.arange(n), np.where(treated, lvl_idx + 1, 0)]
    u = rng.random(n)
    u_org = u < p0
    purchased = u < p_c
    u_inc = purchased & ~u_org
    p_inc = np.clip((p_c - p0) / np.maximum(1.0 - p0, 1e-12), 0.0, 1.0)
    intent = pop.intent
    is_p, is_o = intent == 0, intent == 1
    e = np.where(is_p, S.ENGAGE_PROMPTED, np.where(is_o, float(cfg.organic_engage_rate), S.ENGAGE_INACTIVE))
    engaged = treated & (rng.random(n) < S.engagement_probability(e, p_inc, u_inc))
    cat_mean_price = np.asarray(S.CATEGORY_PRICE)[:n_cat]
    basket = (pop.affinity @ cat_mean_price) * 1.3 * np.exp(0.3 * rng.standard_normal(n) - 0.045)
    revenue = np.where(purchased, np.round(basket * np.exp(0.25 * rng.standard_normal(n) - 0.03125), 2), 0.0)

    # the campaign's offer: the catalogue offer with the nearest face value (the coupon's identity for the graph)
    offer_id = S.campaign_offer_ids(rng, treated, lvl_idx, nz_levels, catalogue.offer_face)
    cust_id = np.arange(n, dtype=np.int64)
    customers = S.customers_table(drawn)
    exposures, outcomes = S.campaign_tables(rng, H, treated, incentive, propensity, p_treat, offer_id, engaged,
                                            purchased, revenue)
    products = pd.DataFrame({
        "product_id": np.arange(prod_cat.size, dtype=np.int64),
        "category": np.asarray(catalogue.categories, dtype=object)[prod_cat],
        "brand": np.asarray([f"brand_{b:02d}" for b in range(S.N_BRANDS)], dtype=object)[catalogue.product_brand],
        "price": catalogue.product_price.astype(np.float64),
        "stock_capacity": np.where(np.isfinite(market.capacity), market.capacity, -1.0),
    })
    offers = pd.DataFrame({
        "offer_id": np.arange(n_off, dtype=np.int64),
        "offer_type": np.asarray(OFFER_TYPES, dtype=object)[catalogue.offer_type],
        "face_value": catalogue.offer_face.astype(np.float64),
        "timing": np.asarray(OFFER_TIMINGS, dtype=object)[catalogue.offer_timing],
        "category": np.asarray(catalogue.categories, dtype=object)[catalogue.offer_category],
        "product_id": catalogue.offer_product,
    })
    applies = [(o, p) for o in range(n_off) for p in np.flatnonzero(prod_cat == catalogue.offer_category[o])]
    offer_products = pd.DataFrame(applies, columns=["offer_id", "product_id"]).astype(np.int64)
    if exposures_log:
        xc, xo, xt = (np.concatenate(a) for a in zip(*exposures_log))
    else:
        xc, xo, xt = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    reach_p = CAMPAIGN_REACH * per_contact / n_off
    offer_exposures = pd.DataFrame({"customer_id": xc.astype(np.int64), "offer_id": xo.astype(np.int64),
                                    "ts": xt, "propensity": np.full(xc.size, reach_p)})
    red = [(g.redeem_customer, g.redeem_offer, g.redeem_ts) for g in logs]
    rc, ro, rt = (np.concatenate(a) for a in zip(*red))
    catalogue_redeemed = (ro >= 0) & (rt < H)
    redemptions = pd.DataFrame({"customer_id": rc[catalogue_redeemed].astype(np.int64),
                                "offer_id": ro[catalogue_redeemed].astype(np.int64), "ts": rt[catalogue_redeemed]})

    days_since = H - market.last_purchase
    truth_cols = {
        "customer_id": cust_id,
        "intent": pd.Categorical.from_codes(intent, categories=list(INTENTS)),
        "organic_rate": pop.rate,
        "history_organic_rate": pop.rate,
        "sensitivity": pop.sensitivity,
        "view_rate": pop.view_rate,
        "churn_hazard": pop.churn_base,
        "churn_day": market.churn_day,
        "churned": (~market.alive).astype(np.int8),
        "preferred_category": pd.Categorical.from_codes(np.argmax(pop.affinity, axis=1).astype(np.int8),
                                                        categories=list(catalogue.categories)),
        "engage_prob": e,
        "p0": p0,
        "pmax": curves[:, -1],
        "basket_value": basket,
        "cycle_period": 1.0 / pop.rate,
        "cycle_shape": np.full(n, market.k),
        "cycle_position": days_since * pop.rate,   # days since the last purchase / the mean period
        "purchase_hazard_next_day": market.base_intensity(days),
        "churn_hazard_at_end": market.churn_hazard(days),
        "fatigue_at_end": market.fatigue.copy(),
    }
    for c, name in enumerate(catalogue.categories):
        truth_cols[f"affinity_{name}"] = pop.affinity[:, c]
    for c, name in enumerate(catalogue.categories):
        truth_cols[f"elasticity_{name}"] = pop.elasticity[:, c]
    for t, name in enumerate(OFFER_TYPES):
        truth_cols[f"type_pref_{name}"] = pop.type_pref[:, t]
    for t, name in enumerate(OFFER_TIMINGS):
        truth_cols[f"timing_pref_{name}"] = pop.timing_pref[:, t]
    for column, j in zip(true_curve_columns(levels), range(levels.size)):
        truth_cols[column] = curves[:, j]
    truth_cols["bought_because_of_campaign"] = (treated & u_inc).astype(np.int8)
    truth_cols["next_purchase_organic"] = u_org.astype(np.int8)
    truth = pd.DataFrame(truth_cols)

    meta = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}
    meta.update({
        "source": "synthetic", "world": "market", "structures": structures.as_dict(), "c_max": float(levels[-1]),
        "intent_intercepts": drawn["intercept"].tolist(),
        "campaign_days": list(range(CAMPAIGN_FIRST, days, CAMPAIGN_EVERY)),
        "offer_exposures": offer_exposures, "redemptions": redemptions, "offer_products": offer_products,
        "market": {"stockouts": int(sum(g.stockouts for g in logs)), "margin_rate": P.MARGIN_RATE,
                   "offer_type_cost": list(P.OFFER_TYPE_COST)},
    })
    data = CanonicalData(
        customers=customers, events=events, exposures=exposures, outcomes=outcomes, products=products,
        offers=offers, truth=truth, history_end=H, response_days=R,
        incentive_levels=tuple(float(x) for x in levels), name="synthetic", meta=meta,
    )
    return data.validate()


def market_marginals(data: CanonicalData) -> dict:
    """The logged world's headline rates, to compare with public ranges (docs/synthetic-world.md):
    conversion (share of history contacts followed by a purchase within 7 days), offer use (share of contacts
    with a redemption of one of their offers), 30-day repurchase (customers whose first history purchase is
    followed by another within 30 days), the weekend/weekday purchase ratio and the median redemption delay."""
    ev = data.events
    pur = ev[ev["event_type"] == "purchase"]
    ox, rd = data.meta["offer_exposures"], data.meta["redemptions"]
    contacts = ox.drop_duplicates(["customer_id", "ts"])[["customer_id", "ts"]]
    p_c = pur["customer_id"].to_numpy()
    p_t = pur["ts"].to_numpy()
    order = np.lexsort((p_t, p_c))
    p_c, p_t = p_c[order], p_t[order]
    key = p_c * 1e4 + p_t
    c_c, c_t = contacts["customer_id"].to_numpy(), contacts["ts"].to_numpy()
    lo = np.searchsorted(key, c_c * 1e4 + c_t)
    hi = np.searchsorted(key, c_c * 1e4 + c_t + 7)
    usable = c_t + 7 <= data.history_end
    conversion = float(np.mean((hi > lo)[usable]))
    red = rd.merge(ox[["customer_id", "offer_id", "ts"]].rename(columns={"ts": "sent"}), on=["customer_id", "offer_id"])
    red = red[(red["ts"] >= red["sent"]) & (red["ts"] < red["sent"] + P.OFFER_VALID_DAYS + P.MONTH_DAYS)]
    red = red.sort_values("sent").drop_duplicates(["customer_id", "offer_id", "ts"], keep="last")
    used = red.drop_duplicates(["customer_id", "sent"])
    usable_c = contacts["ts"] + P.OFFER_VALID_DAYS <= data.history_end
    offer_use = float(len(used[used["sent"] + P.OFFER_VALID_DAYS <= data.history_end]) / max(int(usable_c.sum()), 1))
    first = pur.groupby("customer_id")["ts"].min()
    eligible = first[first < data.history_end - 30]
    nxt = pur.merge(eligible.rename("first"), left_on="customer_id", right_index=True)
    again = nxt[(nxt["ts"] >= np.floor(nxt["first"]) + 1) & (nxt["ts"] < nxt["first"] + 30)]["customer_id"].nunique()
    day = np.floor(pur["ts"].to_numpy()).astype(np.int64)
    weekend = day % 7 >= 5
    n_days = np.bincount(np.arange(int(np.ceil(data.history_end))) % 7 >= 5, minlength=2)
    ratio = (weekend.sum() / n_days[1]) / ((~weekend).sum() / n_days[0])
    return {"conversion_7d_after_contact": conversion, "offer_use": offer_use,
            "repurchase_30d": float(again / max(len(eligible), 1)), "weekend_weekday_ratio": float(ratio),
            "redemption_delay_median_days": float(np.median(red["ts"] - red["sent"])) if len(red) else float("nan"),
            "response_window_conversion": float(data.outcomes["purchased"].mean())}
