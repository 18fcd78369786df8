"""The market's switches and numbers: which structures the world has, and every default it uses.

Each constant's source (a public statistic where one exists, else the reason for the choice) is in
``docs/synthetic-world.md``; ``benchmarks/public_world_statistics.py`` measures the public ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from deepromo.data.errors import UserInputError

STRUCTURES = ("cycles", "affinity", "fatigue", "delayed_feedback", "churn", "prices")


@dataclass(frozen=True)
class MarketStructures:
    """Which parts of the market exist (all on by default; each off gives that part's homogeneous version).

    cycles: Weibull inter-purchase times with a customer-specific period and phase, yearly seasonality
        (off: memoryless Poisson purchases, no yearly term).
    affinity: latent category affinity drives what customers buy and which offers they redeem, offer type and
        timing preferences differ by customer (off: everyone has the population's category mix and no preference).
    fatigue: response to an offer decays with recent exposures (off: no decay).
    delayed_feedback: an offer's effect is released over the days after exposure (off: all on the first valid day).
    churn: a churn hazard that rises with inactivity, lowered for a while by a retention message (off: no churn).
    prices: per-customer, per-category price elasticity and finite product stock (off: no response to prices,
        unlimited stock).
    """

    cycles: bool = True
    affinity: bool = True
    fatigue: bool = True
    delayed_feedback: bool = True
    churn: bool = True
    prices: bool = True

    @classmethod
    def parse(cls, value) -> "MarketStructures":
        """From None / True (all on), False / "none" (all off), a list of names that are on, or a mapping."""
        if isinstance(value, MarketStructures):
            return value
        if value is None or value is True or value == "all":
            return cls()
        if value is False or value == "none":
            return cls(**{name: False for name in STRUCTURES})
        if isinstance(value, (list, tuple)):
            unknown = [v for v in value if v not in STRUCTURES]
            if unknown:
                raise UserInputError(f"unknown market structure(s) {unknown}; expected names from {list(STRUCTURES)}")
            return cls(**{name: name in value for name in STRUCTURES})
        if hasattr(value, "items"):
            items = dict(value.items())
            unknown = sorted(set(items) - set(STRUCTURES))
            if unknown:
                raise UserInputError(f"unknown market structure switch(es) {unknown} (config key "
                                     f"data.options.structures); expected keys from {list(STRUCTURES)}")
            bad = {k: v for k, v in items.items() if not isinstance(v, bool)}
            if bad:
                raise UserInputError(f"market structure switches must be true or false, got {bad}")
            return cls(**items)
        raise UserInputError(f"structures must be true/false, 'all', 'none', a list of names from {list(STRUCTURES)} "
                             f"or a mapping name -> bool, got {value!r}")

    def as_dict(self) -> dict:
        return asdict(self)

    def on(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name)]


# ---------------- calendar ----------------
WEEKDAY_W, WEEKEND_W = 0.973, 1.068    # weekly seasonality x1.1 on weekends (weekend offers add the rest of CJ's 1.2)
YEAR_AMPLITUDE, YEAR_PEAK_DAY = 0.04, 335.0   # yearly seasonality 1 + A cos(2 pi (d - peak) / 365); day 0 = 1 Jan
MONTH_DAYS, MONTH_END_FROM = 30, 25    # 30-day months; "end of month" offers are valid on days 25..29 of a month

# ---------------- purchase cycles ----------------
CYCLE_SHAPE = 1.3                      # Weibull shape k of inter-purchase times (1 = memoryless; CJ pooled 1.28)
RATE_CAP = 0.5                         # purchases per day at most (the mean period is at least 2 days)
RATE_SCALE = 0.6                       # the market's purchase rates = 0.6 x the snapshot world's organic rates

# ---------------- category affinity ----------------
AFFINITY_CONCENTRATION = 0.6           # Dirichlet concentration per category (x the age band's category weights)
TYPE_PREFERENCE_SD = 0.8               # latent offer-type preference ~ N(0, sd) per (customer, type), on the log scale
TIMING_PREFERENCE_SD = 0.5             # latent timing preference ~ N(0, sd) per (customer, timing), on the log scale
AFFINITY_RESPONSE_CAP = 3.0            # an offer's appeal x min(C * affinity, cap)

# ---------------- offers ----------------
OFFER_TYPE_APPEAL = (1.0, 1.1, 0.7, 0.9, 0.6, 0.5, 0.8)   # per OFFER_TYPES: average appeal (x response mass)
OFFER_TYPE_COST = (1.0, 1.0, 0.6, 0.9, 0.8, 0.5, 0.7)     # per OFFER_TYPES: cost to the retailer per unit face value
OFFER_RESPONSE_MAX = 2.0               # expected extra purchases of an offer at saturation (appeal 1, no fatigue)
OFFER_VALUE_SCALE = 20.0               # response mass = max x (1 - exp(-s x face / scale))
OFFER_VALID_DAYS = 14                  # validity of an offer after it is sent (end_of_month: until the month ends)
OFFER_SLOTS = 4                        # offers a customer holds at once (a new one replaces the oldest)
RELEASE_PER_DAY = 0.15                 # delayed feedback: share of an offer's remaining response mass released per valid day
CLICK_RATE = (0.30, 0.06, 0.02)        # P(click | offer received) per intent (prompted, organic, inactive), x appeal

# ---------------- fatigue ----------------
FATIGUE_DECAY = 0.97                   # exposure stock x 0.97 per day (half-life 23 days)
FATIGUE_STRENGTH = 0.06                # response x exp(-0.06 x exposure stock)

# ---------------- churn and retention ----------------
CHURN_HAZARD = (1 / 400, 1 / 700, 1 / 90)   # base daily churn hazard per intent
CHURN_INACTIVITY = 1.0                 # hazard x (1 + 1.0 x max(days since purchase / period - 1, 0)), capped
CHURN_INACTIVITY_CAP = 4.0
RETENTION_FACTOR = 0.4                 # a retention message multiplies the churn hazard by 0.4 ...
RETENTION_DAYS = 30                    # ... for 30 days (an enduring effect)
RETENTION_COST = 0.5                   # money per retention message

# ---------------- prices and stock ----------------
ELASTICITY_MEAN, ELASTICITY_SD = -2.0, 0.35    # per (customer, category) own-price elasticity, lognormal magnitude
PRICE_BAND = (-0.12, 0.08)             # price changes allowed (go-to-market paper section 4.4)
MARGIN_RATE = 0.30                     # gross margin at the list price
STOCK_DAYS = 21.0                      # stock of a product covers ~21 days of its expected demand
RESTOCK_EVERY = 7                      # days between replenishments (to capacity)

# ---------------- browsing ----------------
VIEW_RATE = (0.15, 0.12, 0.03)         # views per day per intent
VIEW_CYCLE_GAIN = 2.0                  # views x (1 + 2.0 x readiness): browsing rises as the next purchase nears
CART_PROB = (0.10, 0.12, 0.04)         # P(add-to-cart | view)
CART_BEFORE_PURCHASE = 0.5             # P(a purchase is preceded by a cart event the same day)
