"""The market simulator as a Gymnasium environment: one step is one day for many customers at once.

Action per customer (``MultiDiscrete``): 0 = nothing, ``1..O`` = catalogue offer ``a - 1`` (type x face value x
timing on a category), then one code per price change of :attr:`MarketEnv.price_levels`, last = a retention
message. The observation holds only what a real system logs (the event history summarised per customer, plus
observed attributes and the calendar), never the latent state; ``event_log()`` gives the raw history. The
reward is the day's margin minus incentive cost over all customers; ``info`` reports it per customer with
conversion, retention and stock separately. Contact caps and an incentive budget are enforced here.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from deepromo.data.errors import UserInputError
from deepromo.data.market import customers as S
from deepromo.data.market import params as P
from deepromo.data.market.customers import OFFER_TIMINGS, OFFER_TYPES
from deepromo.data.market.engine import EVENT_CODES, Market, build_catalogue, draw_population
from deepromo.data.market.params import MarketStructures
from deepromo.data.market.world import history_campaign_offers

OBSERVATION_FEATURES = (
    "days_since_purchase", "purchases_7d", "purchases_30d", "purchases_90d", "spend_30d", "views_7d", "carts_7d",
    "days_since_offer", "offers_30d", "redemptions_30d", "clicks_30d", "days_since_retention",
    "tenure_days", "membership", "age_band", "device", "day_of_week", "day_of_month",
)
NEVER = 365.0  # "days since" of something the log has never seen
OBSERVATION_HIGH = 1e7  # a finite bound of every feature (money, counts, days)


class MarketEnv(gym.Env):
    """Vectorised market over ``n_customers`` (see the module docstring for actions, observation, reward).

    burn_in_days: days simulated at reset under the history campaigns (so the log has a past).
    horizon_days: steps per episode (then ``truncated``).
    contact_cap, contact_window_days: at most ``contact_cap`` offers or retention messages per customer in any
        ``contact_window_days`` days; further contacts are refused (``info['refused_contacts']``).
    budget: total face value of offers the episode may send (money; None = unlimited); offers past it are refused
        in customer order (``info['refused_budget']``).
    price_levels: relative price changes a price action may set for the day (inside ``PRICE_BAND``).
    structures: the market's switches (``MarketStructures.parse``); intent_shares, n_products, n_offers,
        face_values: the population and catalogue.
    """

    metadata = {"render_modes": []}

    def __init__(self, n_customers: int = 1000, horizon_days: int = 90, burn_in_days: int = 60, seed: int = 0,
                 structures=None, contact_cap: int = 2, contact_window_days: int = 7, budget: float | None = None,
                 price_levels=(-0.12, -0.06, 0.04, 0.08), intent_shares=(0.20, 0.30, 0.50), n_products: int = 200,
                 n_offers: int = 84, face_values=(5.0, 10.0, 15.0, 20.0), keep_events: bool = True):
        super().__init__()
        for name, value, low in (("n_customers", n_customers, 1), ("horizon_days", horizon_days, 1),
                                 ("burn_in_days", burn_in_days, 0), ("contact_cap", contact_cap, 0),
                                 ("contact_window_days", contact_window_days, 1), ("n_offers", n_offers, 1),
                                 ("n_products", n_products, 1), ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise UserInputError(f"MarketEnv: {name} must be an integer >= {low}, got {value!r}")
        levels = np.asarray(price_levels, dtype=float)
        lo, hi = P.PRICE_BAND
        if levels.ndim != 1 or np.any(levels < lo - 1e-12) or np.any(levels > hi + 1e-12):
            raise UserInputError(f"MarketEnv: price_levels must lie in the band [{lo}, {hi}], got {list(price_levels)}")
        if budget is not None and not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget >= 0):
            raise UserInputError(f"MarketEnv: budget must be a number >= 0 or None, got {budget!r}")
        self.n, self.horizon, self.burn_in = int(n_customers), int(horizon_days), int(burn_in_days)
        self.base_seed = int(seed)
        self.structures = MarketStructures.parse(structures)
        self.contact_cap, self.contact_window = int(contact_cap), int(contact_window_days)
        self.budget = None if budget is None else float(budget)
        self.price_levels = levels
        self.intent_shares = np.asarray(intent_shares, dtype=float)
        self.n_products, self.n_offers = int(n_products), int(n_offers)
        self.face_values = np.asarray(face_values, dtype=float)
        self.keep_events = bool(keep_events)
        self.n_actions = 1 + self.n_offers + levels.size + 1
        self.action_space = spaces.MultiDiscrete(np.full(self.n, self.n_actions, dtype=np.int64), seed=int(seed))
        self.observation_space = spaces.Box(0.0, OBSERVATION_HIGH, shape=(self.n, len(OBSERVATION_FEATURES)),
                                            dtype=np.float32)
        self.market: Market | None = None

    # ---------------- action codes ----------------
    @property
    def retention_action(self) -> int:
        return self.n_actions - 1

    def offer_action(self, offer: int) -> int:
        return 1 + int(offer)

    def price_action(self, level_index: int) -> int:
        return 1 + self.n_offers + int(level_index)

    def describe_action(self, action: int) -> str:
        a = int(action)
        if a == 0:
            return "none"
        if a <= self.n_offers:
            c = self.market.cat
            o = a - 1
            return (f"offer {o}: {OFFER_TYPES[c.offer_type[o]]} {c.offer_face[o]:g} {OFFER_TIMINGS[c.offer_timing[o]]} "
                    f"on {c.categories[c.offer_category[o]]}")
        if a < self.retention_action:
            return f"price {self.price_levels[a - 1 - self.n_offers]:+.0%}"
        return "retention message"

    # ---------------- Gymnasium API ----------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        world_seed = self.base_seed if seed is None else int(seed)
        rng = np.random.default_rng(world_seed)
        drawn = S.draw_customers(rng, self.n, self.intent_shares)
        catalogue = build_catalogue(rng, S.CATEGORIES, S.CATEGORY_PRICE, S.N_BRANDS, self.n_products,
                                    self.n_offers, self.face_values, self.structures)
        pop = draw_population(rng, drawn, S.age_category_weights(), catalogue.n_categories, self.structures)
        self.market = Market(pop, catalogue, self.structures, rng)
        self.static = np.stack([drawn["tenure"], drawn["member"], drawn["age"], drawn["device"]], axis=1)
        n = self.n
        self._purch = np.zeros((90, n), np.int8)
        self._spend = np.zeros((30, n), np.float32)
        self._views = np.zeros((7, n), np.int16)
        self._carts = np.zeros((7, n), np.int16)
        self._offers = np.zeros((30, n), np.int8)
        self._redeem = np.zeros((30, n), np.int8)
        self._clicks = np.zeros((30, n), np.int8)
        self._contacts = np.zeros((self.contact_window, n), np.int8)
        self._last = {k: np.full(n, -np.inf) for k in ("purchase", "offer", "retention")}
        self._events: list = []
        self.spent = 0.0
        self.t = 0
        for d in range(self.burn_in):
            offers = history_campaign_offers(rng, self.market, d, self.n_offers)
            self._record(self.market.step(offers=offers), retention=np.zeros(0, np.int64))
        return self._observation(), {"day": self.market.day, "burn_in_days": self.burn_in}

    def step(self, action):
        if self.market is None:
            raise UserInputError("MarketEnv.step before reset(): call env.reset() first")
        a = np.asarray(action)
        if a.shape != (self.n,) or not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= self.n_actions:
            raise UserInputError(f"MarketEnv.step: action must be {self.n} integers in [0, {self.n_actions}), got "
                                 f"shape {a.shape}, dtype {a.dtype}" + (f", range [{a.min()}, {a.max()}]" if a.size else ""))
        a = a.astype(np.int64)
        market = self.market
        is_offer = (a >= 1) & (a <= self.n_offers)
        is_ret = a == self.retention_action
        is_price = ~is_offer & ~is_ret & (a > 0)
        contact = is_offer | is_ret
        # contact cap: contacts in the last window (including today) may not exceed the cap
        over = contact & (self._contacts.sum(axis=0) + 1 > self.contact_cap)
        refused_contacts = int(over.sum())
        is_offer &= ~over
        is_ret &= ~over
        refused_budget = 0
        offer_ids = np.flatnonzero(is_offer)
        if self.budget is not None and offer_ids.size:
            face = market.cat.offer_face[a[offer_ids] - 1]
            fits = self.spent + np.cumsum(face) <= self.budget + 1e-9
            refused_budget = int((~fits).sum())
            offer_ids = offer_ids[fits]
            self.spent += float(face[fits].sum())
        elif offer_ids.size:
            self.spent += float(market.cat.offer_face[a[offer_ids] - 1].sum())
        delta = np.zeros(self.n)
        delta[is_price] = self.price_levels[a[is_price] - 1 - self.n_offers]
        retention = np.flatnonzero(is_ret)
        log = market.step(offers=(offer_ids, a[offer_ids] - 1), retention=retention,
                          price_delta=delta if is_price.any() else None)
        self._record(log, retention=retention)
        reward_per_customer = log.margin - log.incentive_cost
        self.t += 1
        info = {
            "day": log.day,
            "reward_per_customer": reward_per_customer,
            "margin": float(log.margin.sum()),
            "revenue": float(log.revenue.sum()),
            "incentive_cost": float(log.incentive_cost.sum()),
            "conversions": int(log.purchased.sum()),
            "redemptions": int(log.redeem_customer.size),
            "retained_share": float(market.alive.mean()),
            "churned_today": int(log.churned_today.sum()),
            "stockouts": int(log.stockouts),
            "stock_level": float(np.sum(np.where(np.isfinite(market.stock), market.stock, 0.0))),
            "offers_sent": int(offer_ids.size),
            "retention_sent": int(retention.size),
            "refused_contacts": refused_contacts,
            "refused_budget": refused_budget,
            "budget_spent": self.spent,
        }
        truncated = self.t >= self.horizon
        terminated = not bool(market.alive.any())
        return self._observation(), float(reward_per_customer.sum()), terminated, truncated, info

    # ---------------- the log ----------------
    def _record(self, log, retention: np.ndarray) -> None:
        """Roll the per-day windows and keep the day's logged events."""
        d = log.day
        n = self.n
        for buf in (self._purch, self._spend, self._views, self._carts, self._offers, self._redeem, self._clicks,
                    self._contacts):
            buf[d % buf.shape[0]] = 0
        typ, cid = log.ev_type, log.ev_customer
        self._purch[d % 90] = np.minimum(np.bincount(cid[typ == 2], minlength=n), 127)
        self._spend[d % 30] = np.bincount(cid[typ == 2], weights=log.ev_amount[typ == 2], minlength=n)
        self._views[d % 7] = np.bincount(cid[typ == 0], minlength=n)
        self._carts[d % 7] = np.bincount(cid[typ == 1], minlength=n)
        sent = np.bincount(log.exposure_customer, minlength=n)
        self._offers[d % 30] = np.minimum(sent, 127)
        self._redeem[d % 30] = np.minimum(np.bincount(log.redeem_customer, minlength=n), 127)
        self._clicks[d % 30] = np.minimum(np.bincount(cid[typ == 3], minlength=n), 127)
        self._contacts[d % self.contact_window] = np.minimum(sent + np.bincount(retention, minlength=n), 127)
        self._last["purchase"][cid[typ == 2]] = d
        self._last["offer"][log.exposure_customer] = d
        self._last["retention"][retention] = d
        if self.keep_events:
            self._events.append((cid, log.ev_ts, typ, log.ev_product, log.ev_amount, log.ev_offer))
            self._events.append(("exposures", log.exposure_customer, log.exposure_offer, d))

    def _observation(self) -> np.ndarray:
        day = self.market.day  # the next day to act on
        since = {k: np.minimum(day - v, NEVER) for k, v in self._last.items()}
        obs = np.empty((self.n, len(OBSERVATION_FEATURES)), np.float32)
        obs[:, 0] = since["purchase"]
        p = self._purch.astype(np.int16)
        idx = (day - 1 - np.arange(90)) % 90  # most recent first
        obs[:, 1] = p[idx[:7]].sum(axis=0)
        obs[:, 2] = p[idx[:30]].sum(axis=0)
        obs[:, 3] = p.sum(axis=0)
        obs[:, 4] = self._spend.sum(axis=0)
        obs[:, 5] = self._views.sum(axis=0)
        obs[:, 6] = self._carts.sum(axis=0)
        obs[:, 7] = since["offer"]
        obs[:, 8] = self._offers.sum(axis=0)
        obs[:, 9] = self._redeem.sum(axis=0)
        obs[:, 10] = self._clicks.sum(axis=0)
        obs[:, 11] = since["retention"]
        obs[:, 12:16] = self.static
        obs[:, 16] = day % 7
        obs[:, 17] = day % P.MONTH_DAYS
        return np.minimum(obs, OBSERVATION_HIGH)

    def event_log(self) -> pd.DataFrame:
        """Every logged event so far (burn-in included): customer_id, ts, event_type, product_id, amount, offer_id."""
        rows = [e for e in self._events if not isinstance(e[0], str)]
        if not rows:
            return pd.DataFrame(columns=["customer_id", "ts", "event_type", "product_id", "amount", "offer_id"])
        cols = [np.concatenate(c) for c in zip(*rows)]
        frame = pd.DataFrame({"customer_id": cols[0].astype(np.int64), "ts": cols[1],
                              "event_type": pd.Categorical.from_codes(cols[2], categories=list(EVENT_CODES)),
                              "product_id": cols[3].astype(np.int64), "amount": cols[4],
                              "offer_id": cols[5].astype(np.int64)})
        return frame.sort_values(["customer_id", "ts"], kind="stable").reset_index(drop=True)

    def exposure_log(self) -> pd.DataFrame:
        """Every offer sent so far: customer_id, offer_id, day."""
        rows = [e[1:] for e in self._events if isinstance(e[0], str)]
        if not rows:
            return pd.DataFrame(columns=["customer_id", "offer_id", "day"])
        return pd.DataFrame({"customer_id": np.concatenate([r[0] for r in rows]).astype(np.int64),
                             "offer_id": np.concatenate([r[1] for r in rows]).astype(np.int64),
                             "day": np.concatenate([np.full(r[0].size, r[2]) for r in rows]).astype(np.int64)})
