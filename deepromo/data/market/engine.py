"""The market engine: a population with latent state, a catalogue, and one day of dynamics at a time.

:class:`Market` is shared by the logged world (``deepromo.data.market.world``) and the Gymnasium simulator
(``deepromo.sim``). Each :meth:`Market.step` takes the day's decisions per customer (offers sent, retention
messages, price changes), draws that day's churn, purchases (with redemptions), views and carts, and returns
the logged events and the money. Everything is vectorised over customers; the only loop is over days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from deepromo.data.market import params as P
from deepromo.data.market.customers import OFFER_TIMINGS, OFFER_TYPES
from deepromo.data.market.params import MarketStructures

EVENT_CODES = {"view": 0, "cart": 1, "purchase": 2, "campaign_click": 3}
SITEWIDE = -1  # offer category of a coupon that applies to every category


@dataclass
class Catalogue:
    """Products (sorted by category) and offers. Prices in money, categories as codes 0..C-1."""

    categories: tuple[str, ...]
    product_category: np.ndarray   # [P] int
    product_brand: np.ndarray      # [P] int
    product_price: np.ndarray      # [P] list price
    product_popularity: np.ndarray  # [P] within-category choice weights (sum 1 per category)
    offer_type: np.ndarray         # [O] index into OFFER_TYPES
    offer_face: np.ndarray         # [O] face value (money)
    offer_timing: np.ndarray       # [O] index into OFFER_TIMINGS
    offer_category: np.ndarray     # [O] category code the offer applies to
    offer_product: np.ndarray      # [O] a representative product of that category (the offers table's product_id)

    @property
    def n_categories(self) -> int:
        return len(self.categories)

    def __post_init__(self):
        self._cum = np.cumsum(self.product_popularity) + 0.0
        self._cum_cat = self.product_category + 0.0
        # global cumulative weights: category c occupies (c, c + 1]
        seg = np.zeros(self.product_price.size)
        for c in range(self.n_categories):
            m = self.product_category == c
            seg[m] = c + np.cumsum(self.product_popularity[m])
        self._seg = seg

    def draw_products(self, rng: np.random.Generator, category: np.ndarray) -> np.ndarray:
        """One product per entry of ``category`` ([m] codes), by within-category popularity."""
        u = category + rng.random(category.size) * (1.0 - 1e-12)
        return np.minimum(np.searchsorted(self._seg, u, side="right"), self._seg.size - 1)


def build_catalogue(rng: np.random.Generator, categories, category_price, n_brands: int, n_products: int,
                    n_offers: int, face_values: np.ndarray, structures: MarketStructures) -> Catalogue:
    """Products with Zipf-like within-category popularity; offers cycle through type x face value x timing, each
    on a category (round robin, so every category has offers of every kind when n_offers allows)."""
    n_cat = min(len(categories), n_products)
    prod_cat = np.sort(np.concatenate([np.arange(n_cat), rng.integers(0, n_cat, size=n_products - n_cat)]))
    prod_brand = rng.integers(0, n_brands, size=n_products)
    price = np.maximum(np.round(np.asarray(category_price)[prod_cat] * np.exp(0.5 * rng.standard_normal(n_products)),
                                2), 0.5)
    pop = np.zeros(n_products)
    for c in range(n_cat):
        m = np.flatnonzero(prod_cat == c)
        w = 1.0 / (1.0 + rng.permutation(m.size)) ** 0.8
        pop[m] = w / w.sum()
    F, NT = face_values.size, len(OFFER_TIMINGS)
    combo = np.arange(n_offers) % (len(OFFER_TYPES) * F * NT)
    off_cat = (np.arange(n_offers) * 7 + rng.integers(0, n_cat)) % n_cat
    off_prod = np.empty(n_offers, dtype=np.int64)
    for o in range(n_offers):
        m = np.flatnonzero(prod_cat == off_cat[o])
        off_prod[o] = m[np.argmax(pop[m])]
    return Catalogue(
        categories=tuple(categories[:n_cat]), product_category=prod_cat, product_brand=prod_brand,
        product_price=price, product_popularity=pop,
        offer_type=combo // (F * NT), offer_face=face_values[(combo // NT) % F], offer_timing=combo % NT,
        offer_category=off_cat, offer_product=off_prod,
    )


@dataclass
class Population:
    """Per-customer latent state that never changes: ``[n]`` arrays unless noted."""

    intent: np.ndarray        # 0 prompted, 1 organic, 2 inactive
    rate: np.ndarray          # mean purchases per day (1 / the mean inter-purchase period)
    sensitivity: np.ndarray   # incentive sensitivity s
    view_rate: np.ndarray     # views per day
    churn_base: np.ndarray    # base daily churn hazard
    affinity: np.ndarray      # [n, C] category shares (rows sum to 1)
    type_pref: np.ndarray     # [n, 7] multiplicative offer-type preference (mean 1)
    timing_pref: np.ndarray   # [n, 3] multiplicative timing preference (mean 1)
    elasticity: np.ndarray    # [n, C] own-price elasticity (< 0; 0 without prices)
    phase: np.ndarray         # days since the last purchase at day 0 (the cycle phase)
    attributes: dict = field(default_factory=dict)  # observed attributes (codes), for the customers table

    @property
    def n(self) -> int:
        return self.rate.size


def draw_population(rng: np.random.Generator, drawn: dict, age_category_weights: np.ndarray, n_cat: int,
                    structures: MarketStructures) -> Population:
    """Market traits on top of the customers drawn by ``synthetic.draw_customers`` (``drawn``)."""
    n = drawn["intent"].size
    intent = drawn["intent"]
    rate = np.minimum(P.RATE_SCALE * drawn["lam"], P.RATE_CAP)
    churn = np.asarray(P.CHURN_HAZARD)[intent] * np.exp(0.5 * rng.standard_normal(n) - 0.125) * np.where(
        drawn["tenure"] < 180, 1.5, 1.0)
    base = age_category_weights[:, :n_cat] / age_category_weights[:, :n_cat].sum(axis=1, keepdims=True)
    if structures.affinity:
        affinity = rng.gamma(P.AFFINITY_CONCENTRATION * n_cat * base[drawn["age"]], 1.0)
        affinity = np.maximum(affinity, 1e-6)
        affinity /= affinity.sum(axis=1, keepdims=True)
        sd_t, sd_m = P.TYPE_PREFERENCE_SD, P.TIMING_PREFERENCE_SD
        type_pref = np.exp(sd_t * rng.standard_normal((n, len(OFFER_TYPES))) - sd_t**2 / 2)
        timing_pref = np.exp(sd_m * rng.standard_normal((n, len(OFFER_TIMINGS))) - sd_m**2 / 2)
    else:
        affinity = np.tile(base.T @ np.bincount(drawn["age"], minlength=base.shape[0]) / n, (n, 1))
        type_pref = np.ones((n, len(OFFER_TYPES)))
        timing_pref = np.ones((n, len(OFFER_TIMINGS)))
    if structures.prices:
        elasticity = P.ELASTICITY_MEAN * np.exp(P.ELASTICITY_SD * rng.standard_normal((n, n_cat))
                                                - P.ELASTICITY_SD**2 / 2)
    else:
        elasticity = np.zeros((n, n_cat))
    k = P.CYCLE_SHAPE if structures.cycles else 1.0
    theta = 1.0 / (rate * math.gamma(1.0 + 1.0 / k))
    # equilibrium phase of a renewal process: the current gap is length-biased (for a Weibull, gap^k ~
    # Gamma(1 + 1/k) x theta^k) and the time since the last purchase is uniform within it
    gap = theta * rng.gamma(1.0 + 1.0 / k, 1.0, size=n) ** (1.0 / k)
    phase = rng.random(n) * gap
    return Population(intent=intent, rate=rate, sensitivity=drawn["sens"], view_rate=drawn["view_rate"],
                      churn_base=churn, affinity=affinity, type_pref=type_pref, timing_pref=timing_pref,
                      elasticity=elasticity, phase=phase)


def week_factor(day: int) -> float:
    return P.WEEKEND_W if day % 7 >= 5 else P.WEEKDAY_W


def year_factor(day: int, cycles: bool) -> float:
    if not cycles:
        return 1.0
    return 1.0 + P.YEAR_AMPLITUDE * math.cos(2.0 * math.pi * (day - P.YEAR_PEAK_DAY) / 365.0)


def timing_valid(timing: np.ndarray, day: int) -> np.ndarray:
    """Whether offers of each timing (codes) can be used on ``day``."""
    valid = np.array([True, day % 7 >= 5, day % P.MONTH_DAYS >= P.MONTH_END_FROM])
    return valid[timing]


@dataclass
class DayLog:
    """What one day produced. Events: parallel arrays; money per customer ``[n]``."""

    day: int
    ev_customer: np.ndarray
    ev_ts: np.ndarray
    ev_type: np.ndarray
    ev_product: np.ndarray
    ev_amount: np.ndarray
    ev_offer: np.ndarray
    exposure_customer: np.ndarray   # offers sent today (after caps): customer, offer index (-1 = sitewide coupon)
    exposure_offer: np.ndarray
    redeem_customer: np.ndarray     # redemptions today: customer, offer index, ts
    redeem_offer: np.ndarray
    redeem_ts: np.ndarray
    revenue: np.ndarray             # [n] money paid by customers today
    margin: np.ndarray              # [n] revenue - cost of goods
    incentive_cost: np.ndarray      # [n] offers redeemed today + retention messages sent today
    purchased: np.ndarray           # [n] bool
    churned_today: np.ndarray       # [n] bool
    stockouts: int                  # purchases lost to an empty shelf


class Market:
    """The live market: latent population + catalogue + dynamic state, advanced one day per :meth:`step`.

    Dynamic state: last purchase day (cycle phase), alive flag, exposure (fatigue) stock, retention-until day,
    offer slots ``[n, OFFER_SLOTS]`` (offer, category, face, type, remaining response mass, last valid day) and
    product stock.
    """

    def __init__(self, population: Population, catalogue: Catalogue, structures: MarketStructures,
                 rng: np.random.Generator, start_day: int = 0):
        self.pop, self.cat, self.s, self.rng = population, catalogue, structures, rng
        n, K = population.n, P.OFFER_SLOTS
        self.day = int(start_day)
        self.k = P.CYCLE_SHAPE if structures.cycles else 1.0
        self.theta = 1.0 / (population.rate * math.gamma(1.0 + 1.0 / self.k))
        self.last_purchase = start_day - population.phase
        self.alive = np.ones(n, dtype=bool)
        self.churn_day = np.full(n, np.inf)
        self.fatigue = np.zeros(n)
        self.retention_until = np.full(n, -1, dtype=np.int64)
        self.slot_offer = np.full((n, K), -2, dtype=np.int64)   # -2 empty, -1 sitewide coupon, else offer index
        self.slot_category = np.full((n, K), -2, dtype=np.int64)
        self.slot_face = np.zeros((n, K))
        self.slot_cost = np.zeros((n, K))
        self.slot_timing = np.zeros((n, K), dtype=np.int64)
        self.slot_mass = np.zeros((n, K))
        self.slot_end = np.full((n, K), -1, dtype=np.int64)
        self.slot_sent = np.zeros((n, K), dtype=np.int64)
        demand = (population.rate[:, None] * population.affinity).sum(axis=0)   # [C] purchases per day
        per_product = demand[catalogue.product_category] * catalogue.product_popularity
        if structures.prices:
            self.capacity = np.ceil(P.STOCK_DAYS * per_product * np.exp(0.5 * rng.standard_normal(per_product.size)))
            self.capacity = np.maximum(self.capacity, 1.0)
        else:
            self.capacity = np.full(per_product.size, np.inf)
        self.stock = self.capacity.copy()

    # ---------------- response model ----------------
    def response_mass(self, customers: np.ndarray, offer_type: np.ndarray, face: np.ndarray, timing: np.ndarray,
                      category: np.ndarray) -> np.ndarray:
        """Expected extra purchases an offer brings each customer (before it is released over its valid days)."""
        pop = self.pop
        appeal = np.asarray(P.OFFER_TYPE_APPEAL)[offer_type] * pop.type_pref[customers, offer_type] \
            * pop.timing_pref[customers, timing]
        aff = np.where(category >= 0, np.minimum(self.cat.n_categories * pop.affinity[customers, np.maximum(category, 0)],
                                                 P.AFFINITY_RESPONSE_CAP), 1.0)
        value = 1.0 - np.exp(-pop.sensitivity[customers] * face / P.OFFER_VALUE_SCALE)
        return P.OFFER_RESPONSE_MAX * value * appeal * aff * self.fatigue_factor(customers)

    def fatigue_factor(self, customers: np.ndarray) -> np.ndarray:
        if not self.s.fatigue:
            return np.ones(customers.size)
        return np.exp(-P.FATIGUE_STRENGTH * self.fatigue[customers])

    def base_intensity(self, day: int, customers: np.ndarray | None = None,
                       last_purchase: np.ndarray | None = None) -> np.ndarray:
        """Expected organic purchases on ``day`` (Weibull hazard increment x weekly x yearly factors)."""
        sl = slice(None) if customers is None else customers
        last = self.last_purchase[sl] if last_purchase is None else last_purchase
        theta = self.theta[sl]
        tau = np.maximum(day - last, 0.0)
        if self.k == 1.0:
            inc = 1.0 / theta
        else:
            inc = ((tau + 1.0) / theta) ** self.k - (tau / theta) ** self.k
        return inc * week_factor(day) * year_factor(day, self.s.cycles)

    def churn_hazard(self, day: int, customers: np.ndarray | None = None,
                     last_purchase: np.ndarray | None = None) -> np.ndarray:
        sl = slice(None) if customers is None else customers
        if not self.s.churn:
            return np.zeros(self.pop.rate[sl].size)
        last = self.last_purchase[sl] if last_purchase is None else last_purchase
        overdue = np.maximum((day - last) * self.pop.rate[sl] - 1.0, 0.0)
        h = self.pop.churn_base[sl] * (1.0 + P.CHURN_INACTIVITY * np.minimum(overdue, P.CHURN_INACTIVITY_CAP))
        return np.where(self.retention_until[sl] > day, h * P.RETENTION_FACTOR, h)

    # ---------------- decisions ----------------
    def send_offers(self, customers: np.ndarray, offers: np.ndarray, *, face: np.ndarray | None = None,
                    offer_type: np.ndarray | None = None, timing: np.ndarray | None = None,
                    category: np.ndarray | None = None, valid_days: int | None = None) -> np.ndarray:
        """Give ``customers`` the catalogue ``offers`` (indices; -1 = a sitewide coupon described by face / type /
        timing / category). Returns the response mass of each. The oldest slot is replaced."""
        customers = np.asarray(customers, dtype=np.int64)
        offers = np.asarray(offers, dtype=np.int64)
        if customers.size == 0:
            return np.zeros(0)
        cat = self.cat
        known = offers >= 0
        o = np.maximum(offers, 0)
        f = np.where(known, cat.offer_face[o], 0.0 if face is None else face)
        y = np.where(known, cat.offer_type[o], 1 if offer_type is None else offer_type)
        m = np.where(known, cat.offer_timing[o], 0 if timing is None else timing)
        c = np.where(known, cat.offer_category[o], SITEWIDE if category is None else category)
        mass = self.response_mass(customers, y, f, m, c)
        slot = np.argmin(np.where(self.slot_offer[customers] == -2, -1, self.slot_sent[customers]), axis=1)
        days = P.OFFER_VALID_DAYS if valid_days is None else int(valid_days)
        end = np.where(m == 2, self.day + max(days, P.MONTH_DAYS - self.day % P.MONTH_DAYS), self.day + days)
        self.slot_offer[customers, slot] = offers
        self.slot_category[customers, slot] = c
        self.slot_face[customers, slot] = f
        self.slot_cost[customers, slot] = f * np.asarray(P.OFFER_TYPE_COST)[y]
        self.slot_timing[customers, slot] = m
        self.slot_mass[customers, slot] = mass
        self.slot_end[customers, slot] = end
        self.slot_sent[customers, slot] = self.day
        if self.s.fatigue:
            np.add.at(self.fatigue, customers, 1.0)
        return mass

    def release_fraction(self) -> float:
        return P.RELEASE_PER_DAY if self.s.delayed_feedback else 1.0

    # ---------------- one day ----------------
    def step(self, offers: tuple[np.ndarray, np.ndarray] | None = None, retention: np.ndarray | None = None,
             price_delta: np.ndarray | None = None) -> DayLog:
        """Advance one day. offers: (customers, offer indices) sent this morning; retention: customers messaged;
        price_delta: ``[n]`` relative price change of each customer's prices today (inside ``PRICE_BAND``)."""
        rng, pop, cat, d = self.rng, self.pop, self.cat, self.day
        n, C = pop.n, cat.n_categories
        cost = np.zeros(n)
        exp_c = np.zeros(0, np.int64)
        exp_o = np.zeros(0, np.int64)
        if offers is not None and len(offers[0]):
            exp_c, exp_o = (np.asarray(a, dtype=np.int64) for a in offers)
            keep = self.alive[exp_c]
            exp_c, exp_o = exp_c[keep], exp_o[keep]
            mass = self.send_offers(exp_c, exp_o)
        if retention is not None and len(retention):
            r = np.asarray(retention, dtype=np.int64)
            r = r[self.alive[r]]
            self.retention_until[r] = d + P.RETENTION_DAYS
            np.add.at(cost, r, P.RETENTION_COST)

        # churn (absorbing)
        churned_today = np.zeros(n, dtype=bool)
        if self.s.churn:
            h = self.churn_hazard(d)
            churned_today = self.alive & (rng.random(n) < h)
            self.alive &= ~churned_today
            self.churn_day[churned_today] = d + rng.random(int(churned_today.sum()))
        alive = self.alive

        # purchase intensity: organic by category (price response) + offers released today
        base = self.base_intensity(d)
        by_cat = base[:, None] * pop.affinity
        if price_delta is not None and self.s.prices:
            delta = np.asarray(price_delta, dtype=float)
            moved = np.flatnonzero(delta != 0)
            if moved.size:
                by_cat[moved] *= (1.0 + delta[moved, None]) ** pop.elasticity[moved]
        else:
            delta = None
        valid = (self.slot_offer > -2) & (self.slot_end > d) & (self.slot_sent <= d)
        if valid.any():
            valid &= timing_valid(self.slot_timing, d)
        released = np.where(valid, self.slot_mass * self.release_fraction(), 0.0)
        self.slot_mass -= released
        total = by_cat.sum(axis=1) + released.sum(axis=1)
        buy = alive & (rng.random(n) < -np.expm1(-total))
        buyers = np.flatnonzero(buy)

        # what buyers buy: a category in proportion to its intensity (a sitewide coupon lifts every category)
        w = by_cat[buyers]
        rel = released[buyers]
        scat = self.slot_category[buyers]
        site = np.where(scat == SITEWIDE, rel, 0.0).sum(axis=1)
        w = w + site[:, None] * pop.affinity[buyers]
        for j in range(rel.shape[1]):
            on = (scat[:, j] >= 0) & (rel[:, j] > 0)
            w[np.flatnonzero(on), scat[on, j]] += rel[on, j]
        cum = np.cumsum(w, axis=1)
        choice = np.minimum((rng.random(buyers.size)[:, None] * cum[:, -1:] >= cum).sum(axis=1), C - 1)
        product = cat.draw_products(rng, choice)
        stockouts = 0
        if self.s.prices:
            demand = np.bincount(product, minlength=self.stock.size)
            short = demand > self.stock
            if short.any():
                order = rng.permutation(buyers.size)
                rank = np.empty(buyers.size, dtype=np.int64)
                prod_o = product[order]
                # position of each buyer among the buyers of its product (random order)
                srt = np.argsort(prod_o, kind="stable")
                first = np.searchsorted(prod_o[srt], prod_o[srt], side="left")
                rank_s = np.arange(buyers.size) - first
                rank[order[srt]] = rank_s
                served = rank < self.stock[product]
                stockouts = int((~served).sum())
                buyers, product, choice = buyers[served], product[served], choice[served]
                buy = np.zeros(n, dtype=bool)
                buy[buyers] = True
            np.subtract.at(self.stock, product, 1.0)
        qty = 1 + rng.poisson(0.3, size=buyers.size)
        list_price = cat.product_price[product]
        paid_price = list_price if delta is None else list_price * (1.0 + delta[buyers])
        amount = np.round(paid_price * qty, 2)
        revenue = np.zeros(n)
        margin = np.zeros(n)
        revenue[buyers] = amount
        margin[buyers] = amount - list_price * (1.0 - P.MARGIN_RATE) * qty

        # redemption: the first valid offer slot that applies to the bought category
        scat = self.slot_category[buyers]
        applies = valid[buyers] & ((scat == SITEWIDE) | (scat == choice[:, None]))
        has = applies.any(axis=1)
        slot = np.argmax(applies, axis=1)
        rb = buyers[has]
        rs = slot[has]
        red_offer = self.slot_offer[rb, rs]
        np.add.at(cost, rb, self.slot_cost[rb, rs])
        self.slot_offer[rb, rs] = -2
        self.slot_mass[rb, rs] = 0.0
        self.last_purchase[buyers] = d + 0.0
        buy_ts = d + rng.random(buyers.size) * 0.98 + 0.01
        ev_offer = np.full(buyers.size, -1, dtype=np.int64)
        ev_offer[np.flatnonzero(has)] = red_offer

        # clicks on today's offers
        if exp_c.size:
            click_p = np.asarray(P.CLICK_RATE)[pop.intent[exp_c]] * np.sqrt(
                np.clip(mass / (P.OFFER_RESPONSE_MAX * 0.5), 0.05, 4.0))
            clicked = rng.random(exp_c.size) < np.minimum(click_p, 0.95)
            k_c, k_o = exp_c[clicked], exp_o[clicked]
            k_ts = d + rng.random(k_c.size) * 0.99
        else:
            k_c = k_o = np.zeros(0, np.int64)
            k_ts = np.zeros(0)

        # browsing: views rise as the next purchase nears; some views become carts
        readiness = base * (1.0 / pop.rate) / (week_factor(d) * year_factor(d, self.s.cycles))
        readiness = np.minimum(readiness, 3.0) if self.s.cycles else np.ones(n)
        vr = pop.view_rate * week_factor(d) * (1.0 + P.VIEW_CYCLE_GAIN * readiness) / (1.0 + P.VIEW_CYCLE_GAIN)
        n_views = np.where(alive, rng.poisson(vr), 0)
        v_c = np.repeat(np.arange(n), n_views)
        aff = pop.affinity[v_c]
        vcum = np.cumsum(aff, axis=1)
        v_cat = np.minimum((rng.random(v_c.size)[:, None] * vcum[:, -1:] >= vcum).sum(axis=1), C - 1)
        v_prod = cat.draw_products(rng, v_cat)
        v_ts = d + rng.random(v_c.size) * 0.99
        is_cart = rng.random(v_c.size) < np.asarray(P.CART_PROB)[pop.intent[v_c]]
        pc = rng.random(buyers.size) < P.CART_BEFORE_PURCHASE
        ev_c = np.concatenate([v_c, v_c[is_cart], buyers[pc], buyers, k_c])
        ev_ts = np.concatenate([v_ts, np.minimum(v_ts[is_cart] + 0.001, d + 0.9999),
                                np.maximum(buy_ts[pc] - 0.005, d), buy_ts, k_ts])
        ev_type = np.concatenate([np.zeros(v_c.size, np.int8), np.ones(int(is_cart.sum()), np.int8),
                                  np.ones(int(pc.sum()), np.int8), np.full(buyers.size, 2, np.int8),
                                  np.full(k_c.size, 3, np.int8)])
        ev_prod = np.concatenate([v_prod, v_prod[is_cart], product[pc], product,
                                  np.where(k_o >= 0, cat.offer_product[np.maximum(k_o, 0)], -1)])
        ev_amount = np.concatenate([np.zeros(v_c.size + int(is_cart.sum()) + int(pc.sum())), amount,
                                    np.zeros(k_c.size)])
        ev_off = np.concatenate([np.full(v_c.size + int(is_cart.sum()) + int(pc.sum()), -1, np.int64), ev_offer,
                                 k_o])

        # end of day: fatigue decays, expired slots free, shelves restock
        if self.s.fatigue:
            self.fatigue *= P.FATIGUE_DECAY
        expired = self.slot_end <= d + 1
        self.slot_offer[expired] = -2
        self.slot_mass[expired] = 0.0
        if self.s.prices and (d + 1) % P.RESTOCK_EVERY == 0:
            self.stock = self.capacity.copy()
        self.day = d + 1
        return DayLog(day=d, ev_customer=ev_c, ev_ts=ev_ts, ev_type=ev_type, ev_product=ev_prod, ev_amount=ev_amount,
                      ev_offer=ev_off, exposure_customer=exp_c, exposure_offer=exp_o, redeem_customer=rb,
                      redeem_offer=red_offer, redeem_ts=buy_ts[has], revenue=revenue, margin=margin,
                      incentive_cost=cost, purchased=buy, churned_today=churned_today, stockouts=stockouts)

    # ---------------- exact window probabilities (ground truth) ----------------
    def window_purchase_probability(self, days: int, extra_mass: np.ndarray | None = None,
                                    extra_timing: int = 0, extra_end: int | None = None) -> np.ndarray:
        """P(at least one purchase in the next ``days`` days) per customer from the current state, with an extra
        sitewide offer of response mass ``extra_mass`` ``[n]`` sent today (None: none), without any other
        decision. Exact under the model (churn, then purchase each day; the state evolves deterministically
        until the first purchase). Stock-outs are ignored (stock is ample in expectation)."""
        n = self.pop.n
        alive_nobuy = self.alive.astype(float)
        p = np.zeros(n)
        mass = self.slot_mass.copy()
        f = self.release_fraction()
        extra = None if extra_mass is None else np.asarray(extra_mass, dtype=float).copy()
        end = self.day + days if extra_end is None else extra_end
        for t in range(self.day, self.day + days):
            h = self.churn_hazard(t)
            valid = (self.slot_offer > -2) & (self.slot_end > t) & (self.slot_sent <= t)
            valid &= timing_valid(self.slot_timing, t)
            rel = np.where(valid, mass * f, 0.0)
            mass -= rel
            mu = self.base_intensity(t) + rel.sum(axis=1)
            if extra is not None and t < end and timing_valid(np.array([extra_timing]), t)[0]:
                r = extra * f
                extra -= r
                mu = mu + r
            alive_t = alive_nobuy * (1.0 - h)
            buy_t = -np.expm1(-mu)
            p += alive_t * buy_t
            alive_nobuy = alive_t * (1.0 - buy_t)
        return p
