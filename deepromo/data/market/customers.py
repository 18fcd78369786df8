"""Customers shared by the snapshot world and the market: observed attributes, latent intent and the first
traits (one draw order), the customers table, the response-window campaign's logging policy and engagement.

The numbers are documented in ``docs/synthetic-world.md``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
AGE_P = (0.16, 0.27, 0.24, 0.18, 0.15)
REGIONS = ("north", "south", "east", "west", "central")
REGION_P = (0.22, 0.20, 0.20, 0.18, 0.20)
MEMBERSHIPS = ("none", "silver", "gold", "platinum")
MEMBERSHIP_P = (0.50, 0.27, 0.16, 0.07)
DEVICES = ("ios", "android", "web")
DEVICE_P = (0.35, 0.40, 0.25)
TENURE_MIN, TENURE_MAX = 30.0, 2000.0
CATEGORIES = ("electronics", "fashion", "home", "beauty", "grocery",
              "sports", "toys", "books", "garden", "pets")
CATEGORY_PRICE = (120.0, 45.0, 60.0, 25.0, 15.0, 50.0, 30.0, 18.0, 40.0, 28.0)
N_BRANDS = 30
OFFER_TYPES = ("percent_off", "amount_off", "free_shipping", "cashback",
               "bundle", "loyalty_points", "gift")
OFFER_TIMINGS = ("immediate", "weekend", "end_of_month")
ORGANIC_RATE = (0.012, 0.030, 0.002)   # lambda: organic purchases per day
SENSITIVITY = (1.5, 0.15, 0.3)         # s: incentive sensitivity
VIEW_RATE = (0.15, 0.12, 0.03)         # views per day
ENGAGE_PROMPTED, ENGAGE_INACTIVE = 0.70, 0.05
TRAIT_SIGMA = 0.5                      # lognormal noise of lambda / view rate
SENS_SIGMA = 0.35                      # lognormal noise of s
BIASED_SLOPE = 1.0                     # biased policy: logit P(treat) = logit(treat_share) + 1.0 z
BIASED_LEVEL_TILT = 0.6                # biased policy: level logits = -0.6 * z * (rank - mean rank)
EXPOSURE_MAX_OFFSET = 0.5              # exposure ts = history_days + U(0, 0.5)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _categorical_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs`` (n x k)."""
    c = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0]) * c[:, -1]
    idx = (u[:, None] >= c).sum(axis=1)
    return np.minimum(idx, probs.shape[1] - 1)


def draw_customers(rng: np.random.Generator, n: int, shares: np.ndarray) -> dict[str, np.ndarray]:
    """Observed attributes, latent intent and the first latent traits of ``n`` customers (one draw order, shared
    by the snapshot world and the market): age, region, member, device, tenure, log_ten, young, mobile, intent,
    lam (organic purchases per day), sens (incentive sensitivity), view_rate (views per day)."""
    # ---------------- customers: observed attributes ----------------
    age = rng.choice(len(AGE_BANDS), size=n, p=AGE_P).astype(np.int8)
    region = rng.choice(len(REGIONS), size=n, p=REGION_P).astype(np.int8)
    member = rng.choice(len(MEMBERSHIPS), size=n, p=MEMBERSHIP_P).astype(np.int8)
    device = rng.choice(len(DEVICES), size=n, p=DEVICE_P).astype(np.int8)
    tenure = TENURE_MIN + (TENURE_MAX - TENURE_MIN) * rng.beta(1.2, 2.5, size=n)
    log_ten = np.log(tenure / 365.0)

    # ---------------- latent intent: softmax(intercepts + effects) + Gumbel ----------------
    young = (age == 0).astype(float)
    young2 = (age == 1).astype(float)
    mobile = (device < 2).astype(float)
    gold_plus = (member >= 2).astype(float)
    effects = np.empty((n, 3))
    effects[:, 0] = 0.8 * young + 0.4 * young2 + 0.4 * mobile - 0.3 * gold_plus          # prompted
    effects[:, 1] = (0.4 * (member == 1) + 1.0 * (member == 2) + 1.4 * (member == 3)
                     + 0.5 * log_ten + 0.2 * (age >= 3))                                  # organic
    effects[:, 2] = (0.6 * (tenure < 180) - 0.3 * log_ten + 0.3 * (device == 2)
                     + 0.4 * (member == 0))                                               # inactive
    pos = shares > 0
    intercept = np.where(pos, np.log(np.where(pos, shares, 1.0)), -1e3)
    for _ in range(8):  # fixed-point calibration of the expected shares
        m = _softmax(intercept + effects).mean(axis=0)
        intercept = np.where(pos, intercept + np.log(np.where(pos, shares, 1.0) / np.maximum(m, 1e-300)), -1e3)
    logits = intercept + effects
    logits += rng.gumbel(size=(n, 3))
    intent = np.argmax(logits, axis=1).astype(np.int8)
    del logits, effects

    # ---------------- latent traits ----------------
    z_lam = rng.standard_normal(n)
    member_boost = np.asarray([1.0, 1.1, 1.25, 1.4])[member]
    lam = np.asarray(ORGANIC_RATE)[intent] * member_boost * np.exp(TRAIT_SIGMA * z_lam - TRAIT_SIGMA**2 / 2)
    lam = np.minimum(lam, 0.5)
    sens = np.asarray(SENSITIVITY)[intent] * (1.0 + 0.15 * young) * np.exp(
        SENS_SIGMA * rng.standard_normal(n) - SENS_SIGMA**2 / 2)
    # activity: correlated with lambda (shares half of its noise), mobile users browse more
    z_view = 0.6 * z_lam + 0.8 * rng.standard_normal(n)
    view_rate = np.asarray(VIEW_RATE)[intent] * (1.0 + 0.2 * mobile) * np.exp(
        TRAIT_SIGMA * z_view - TRAIT_SIGMA**2 / 2)
    return {"age": age, "region": region, "member": member, "device": device, "tenure": tenure,
            "log_ten": log_ten, "young": young, "mobile": mobile, "intent": intent, "intercept": intercept,
            "lam": lam, "sens": sens, "view_rate": view_rate}


def age_category_weights() -> np.ndarray:
    """``[age bands, categories]`` category odds by age band (rows sum to 1)."""
    w = np.ones((len(AGE_BANDS), len(CATEGORIES)))
    w[0, [0, 1, 6]] += 1.0
    w[1, [0, 1, 3]] += 0.7
    w[3, [2, 8]] += 0.7
    w[4, [2, 7, 8, 9]] += 1.0
    return w / w.sum(axis=1, keepdims=True)


def customers_table(drawn: dict[str, np.ndarray]) -> pd.DataFrame:
    """The customers table of customers drawn by :func:`draw_customers`."""
    return pd.DataFrame({
        "customer_id": np.arange(drawn["age"].size, dtype=np.int64),
        "age_band": pd.Categorical.from_codes(drawn["age"], categories=list(AGE_BANDS)),
        "region": pd.Categorical.from_codes(drawn["region"], categories=list(REGIONS)),
        "membership": pd.Categorical.from_codes(drawn["member"], categories=list(MEMBERSHIPS)),
        "device": pd.Categorical.from_codes(drawn["device"], categories=list(DEVICES)),
        "tenure_days": drawn["tenure"].astype(np.float64),
    })


def log_campaign(rng: np.random.Generator, cfg, n: int, nz_levels: np.ndarray, n_purch: np.ndarray,
                 n_views: np.ndarray, n_clicks: np.ndarray):
    """The response-window campaign under ``cfg.policy``: randomised, or biased towards engaged customers
    (purchases and views in the last 30 history days, campaign clicks). Returns treated [n] bool, level index
    [n] (into ``nz_levels``), incentive [n], propensity of the logged (treatment, level) [n], P(treat) [n]."""
    L1 = nz_levels.size
    if cfg.policy == "randomised":
        p_treat = np.full(n, float(cfg.treat_share))
        level_p = np.full((n, L1), 1.0 / L1)
        z_eng = None
    else:
        score = np.log1p(n_purch) + 0.5 * np.log1p(n_views) + 0.5 * np.log1p(n_clicks)
        sd = score.std()
        z_eng = (score - score.mean()) / sd if sd > 0 else np.zeros(n)
        ts_ = float(cfg.treat_share)
        p_treat = 1.0 / (1.0 + np.exp(-(math.log(ts_ / (1 - ts_)) + BIASED_SLOPE * z_eng)))
        p_treat = np.clip(p_treat, 0.05, 0.95)
        rank = np.arange(L1) - (L1 - 1) / 2.0
        level_p = _softmax(-BIASED_LEVEL_TILT * z_eng[:, None] * rank[None, :])
    treated = rng.random(n) < p_treat
    lvl_idx = _categorical_rows(rng, level_p)
    incentive = np.where(treated, nz_levels[lvl_idx], 0.0)
    propensity = np.where(treated, p_treat * level_p[np.arange(n), lvl_idx], 1.0 - p_treat)
    return treated, lvl_idx, incentive, propensity, p_treat


def engagement_probability(e: np.ndarray, p_caused: np.ndarray, caused: np.ndarray) -> np.ndarray:
    """P(engaged | treated) per customer such that campaign-caused purchasers (``caused``, probability
    ``p_caused``) engage more, e_hi = 1 - (1 - e)^3, while the marginal stays ``e``."""
    e_hi = 1.0 - (1.0 - e) ** 3
    e_lo = np.clip((e - p_caused * e_hi) / np.maximum(1.0 - p_caused, 1e-12), 0.0, 1.0)
    return np.where(caused, e_hi, e_lo)


def campaign_offer_ids(rng: np.random.Generator, treated: np.ndarray, lvl_idx: np.ndarray, nz_levels: np.ndarray,
                       offer_face: np.ndarray) -> np.ndarray:
    """[n] the catalogue offer each treated customer was sent: one with the face value nearest its incentive level,
    drawn uniformly (-1 for control). Draws one uniform per customer."""
    offer_id = np.full(treated.size, -1, dtype=np.int64)
    u_off = rng.random(treated.size)
    for li, lv in enumerate(nz_levels):  # loop over incentive levels, vectorised over customers
        sel = treated & (lvl_idx == li)
        near = offer_face[np.argmin(np.abs(offer_face - lv))]
        cand = np.flatnonzero(offer_face == near)
        offer_id[sel] = cand[(u_off[sel] * cand.size).astype(np.int64)]
    return offer_id


def campaign_tables(rng: np.random.Generator, history_end: float, treated, incentive, propensity, p_treat,
                    offer_id, engaged, purchased, revenue) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The exposures table (one campaign row per customer, ts just after ``history_end``) and the outcomes table."""
    n = treated.size
    cust_id = np.arange(n, dtype=np.int64)
    exposures = pd.DataFrame({
        "customer_id": cust_id,
        "ts": history_end + EXPOSURE_MAX_OFFSET * rng.random(n),
        "treatment": treated.astype(np.int8),
        "incentive": incentive.astype(np.float64),
        "propensity": propensity.astype(np.float64),
        "propensity_treat": p_treat.astype(np.float64),
        "offer_id": offer_id,
        "engaged": engaged.astype(np.int8),
    })
    outcomes = pd.DataFrame({"customer_id": cust_id, "purchased": purchased.astype(np.int8),
                             "revenue": revenue.astype(np.float64)})
    return exposures, outcomes
