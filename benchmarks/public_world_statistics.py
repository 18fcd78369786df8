"""Public statistics that justify the synthetic market's defaults, computed from two real, locally installed datasets.

Complete Journey (84.51°, 2,469 grocery households, 2017, with campaigns and coupons) and CDNOW (23,570 customers
of a CD retailer first buying in Q1 1997, followed to June 1998): purchase cycles and their regularity, weekly and
yearly seasonality, repurchase, inactivity and churn, coupon redemption and its delay, basket values and discounts.
Nothing is downloaded. Writes ``results/public_world_statistics.{json,md}``.

    python benchmarks/public_world_statistics.py
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, write_results  # noqa: E402

from deepromo.data.sources import cdnow, completejourney  # noqa: E402

CJ, CD = "completejourney", "cdnow"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MIN_GAPS_REGULARITY = 5  # customers need >= this many gaps for CV and per-customer Weibull fits
RECENCY_EDGES = (0, 7, 30, 90, 180, np.inf)  # days since last purchase, [lo, hi)
HAZARD_HORIZON = 30  # days: "no purchase in the next 30 days"
HAZARD_STEP = 7  # days between snapshots of the inactivity hazard
REPURCHASE_WINDOWS = (14, 30, 90)
FATIGUE_BUCKETS = ((0, 0), (1, 1), (2, 2), (3, 3), (4, 5), (6, 8), (9, 99))
BOOTSTRAP_REPS = 200
SEED = 0


# ----------------------------------------------------------------------------------------------
# Collecting results: one nested JSON dict plus Markdown rows per section
# ----------------------------------------------------------------------------------------------


def rounded(x):
    """Numbers rounded to 4 significant digits (recursively through dicts/lists); NaN becomes None."""
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [rounded(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        if not np.isfinite(x):
            return None
        return float(f"{float(x):.4g}")
    return x


def formatted(value, unit: str) -> str:
    """A value for the Markdown table: shares as percentages, others with their unit."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if isinstance(value, str):
        return value
    if unit == "share":
        return f"{100 * value:.1f} %"
    if unit == "pp":
        return f"{100 * value:+.2f} pp"
    if unit == "$":
        return f"${value:,.2f}"
    text = f"{value:,.0f}" if isinstance(value, (int, np.integer)) else f"{value:,.3g}"
    return f"{text} {unit}".strip()


class Section:
    """One report section: ``add`` files a value under ``json[dataset][key]`` and a Markdown row."""

    def __init__(self, key: str, heading: str, methods: str):
        self.key, self.heading, self.methods = key, heading, methods
        self.json: dict = {}
        self.rows: list[dict] = []

    def add(self, dataset: str, key: str, label: str, value, unit: str = "", store: bool = True) -> None:
        """``store=False``: a Markdown row only (its numbers are filed in the JSON another way)."""
        if store:
            self.json.setdefault(dataset, {})[key] = value
        self.rows.append({"statistic": label, "value": formatted(value, unit), "dataset": dataset})

    def missing(self, dataset: str, key: str, label: str, why: str) -> None:
        self.json.setdefault(dataset, {})[key] = None
        self.json[dataset].setdefault("not_computable", {})[key] = why
        self.rows.append({"statistic": label, "value": f"not computable: {why}", "dataset": dataset})

    def markdown(self) -> str:
        return f"Methods: {self.methods}\n\n" + markdown_table(self.rows, ["statistic", "value", "dataset"])


def quartiles(x) -> dict:
    """q25, median, q75 and mean of ``x`` (1-D numeric)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return {"q25": np.nan, "median": np.nan, "q75": np.nan, "mean": np.nan, "n": 0}
    q25, q50, q75 = np.quantile(x, [0.25, 0.5, 0.75])
    return {"q25": q25, "median": q50, "q75": q75, "mean": float(x.mean()), "n": len(x)}


def qtext(q: dict, unit: str = "") -> str:
    """``median (q25-q75)`` for the Markdown table."""
    if q["n"] == 0:
        return "n/a"
    u = f" {unit}" if unit and unit != "$" else ""
    d = "$" if unit == "$" else ""
    return f"{d}{q['median']:.3g}{u} ({d}{q['q25']:.3g}-{d}{q['q75']:.3g}); mean {d}{q['mean']:.3g}; n={q['n']:,}"


# ----------------------------------------------------------------------------------------------
# Loading: purchase lines -> one row per (customer, purchase day)
# ----------------------------------------------------------------------------------------------


def load_completejourney() -> dict:
    """CJ tables: ``baskets`` (customer_id, basket_id, ts, day int, value $), ``lines`` and the campaign tables.

    Calendar 2017 only: the 86 baskets stamped 2018-01-01 are dropped so that the window is 365 whole days.
    """
    directory = completejourney.data_dir()
    read = lambda stem: completejourney._read(directory, stem)  # noqa: E731 - reuse the source's checked reader
    lines = read("transactions").rename(columns={"household_id": "customer_id"})
    day0 = pd.Timestamp("2017-01-01")
    end = pd.Timestamp("2018-01-01")
    dropped = int(lines.loc[lines.transaction_timestamp >= end, "basket_id"].nunique())
    lines = lines[lines.transaction_timestamp < end]
    baskets = (lines.groupby("basket_id", sort=False)
               .agg(customer_id=("customer_id", "first"), ts=("transaction_timestamp", "min"),
                    value=("sales_value", "sum"))
               .reset_index())
    baskets["day"] = ((baskets.ts - day0) // pd.Timedelta(days=1)).astype(np.int64)
    return {
        "lines": lines, "baskets": baskets, "day0": day0, "n_days": int((end - day0).days),
        "dropped_baskets": dropped,
        "campaigns": read("campaigns").rename(columns={"household_id": "customer_id"}),
        "campaign_descriptions": read("campaign_descriptions"),
        "coupons": read("coupons"),
        "redemptions": read("coupon_redemptions").rename(columns={"household_id": "customer_id"}),
    }


def load_cdnow() -> dict:
    """CDNOW purchase lines with ``day`` = whole days since 1997-01-01; window 1997-01-01 .. 1998-06-30."""
    lines = cdnow.read_purchases(cdnow.data_file())
    day0 = lines.date.min()
    lines["day"] = ((lines.date - day0) // pd.Timedelta(days=1)).astype(np.int64)
    return {"lines": lines, "day0": day0, "n_days": int(lines.day.max()) + 1}


def purchase_days(events: pd.DataFrame) -> pd.DataFrame:
    """One row per (customer_id, day) with ``n`` events that day, sorted by customer then day."""
    return (events.groupby(["customer_id", "day"], sort=True).size().rename("n").reset_index())


def gaps_by_customer(days: pd.DataFrame) -> pd.DataFrame:
    """Inter-purchase gaps (days between consecutive purchase days of a customer): customer_id, gap (int >= 1)."""
    same = days.customer_id.to_numpy()[1:] == days.customer_id.to_numpy()[:-1]
    gap = np.diff(days.day.to_numpy())
    return pd.DataFrame({"customer_id": days.customer_id.to_numpy()[1:][same], "gap": gap[same]})


# ----------------------------------------------------------------------------------------------
# 1. Inter-purchase time and regularity
# ----------------------------------------------------------------------------------------------


def weibull_shape(gaps: np.ndarray) -> float:
    """Weibull shape k of ``gaps`` by maximum likelihood with location 0 (k > 1: more regular than exponential)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shape, _, _ = stats.weibull_min.fit(gaps, floc=0)
    return float(shape)


def regularity(gaps: pd.DataFrame, min_gaps: int = MIN_GAPS_REGULARITY) -> dict:
    """Per-customer mean gap, CV of gaps and Weibull shape; pooled Weibull shape of gaps / customer's mean gap.

    CV and per-customer shapes use customers with >= ``min_gaps`` gaps; the pooled fit uses the same customers.
    """
    g = gaps.groupby("customer_id").gap
    per = pd.DataFrame({"n": g.size(), "mean": g.mean(), "std": g.std(ddof=1)})
    keep = per.index[per.n >= min_gaps]
    cv = (per.loc[keep, "std"] / per.loc[keep, "mean"]).to_numpy()
    sub = gaps[gaps.customer_id.isin(keep)]
    shapes = np.array([weibull_shape(x.to_numpy(np.float64)) for _, x in sub.groupby("customer_id").gap])
    normalised = sub.gap.to_numpy(np.float64) / sub.customer_id.map(per["mean"]).to_numpy()
    return {"per_customer_mean": quartiles(per["mean"]), "cv": quartiles(cv), "weibull_shape": quartiles(shapes),
            "pooled_weibull_shape": weibull_shape(normalised), "n_regular_customers": len(keep),
            "share_cv_below_1": float(np.mean(cv < 1)) if len(cv) else np.nan,
            "share_shape_above_1": float(np.mean(shapes > 1)) if len(shapes) else np.nan}


def section_inter_purchase(cj_days, cd_days) -> Section:
    s = Section("inter_purchase", "1. Inter-purchase time and regularity",
                "a purchase is a customer's purchase day (CJ: a day with >= 1 basket; CDNOW: a day with >= 1 order "
                "line); gap = days between consecutive purchase days (>= 1). CV and Weibull shapes use customers "
                f"with >= {MIN_GAPS_REGULARITY} gaps; per-customer shapes are scipy `weibull_min.fit(gaps, floc=0)`, "
                "the pooled shape is one fit to all gaps divided by their customer's mean gap. CV < 1 and shape > 1 "
                "mean more regular than a Poisson (memoryless) buyer. Gaps are capped by the window (365 / 546 days), "
                "and per-customer MLE shapes from few gaps are biased upward, so the pooled shape is the safer "
                "default.")
    for name, days in ((CJ, cj_days), (CD, cd_days)):
        gaps = gaps_by_customer(days)
        per_customer_days = days.groupby("customer_id").size()
        s.add(name, "purchase_days_per_customer", "purchase days per customer: median (IQR); mean",
              qtext(quartiles(per_customer_days)))
        s.json[name]["purchase_days_per_customer"] = quartiles(per_customer_days)
        if name == CJ:
            q = quartiles(days.n)
            s.add(name, "baskets_per_purchase_day_mean", "baskets per purchase day (mean)", q["mean"])
        q = quartiles(gaps.gap)
        s.add(name, "gap_days", "gap between purchase days: median (IQR); mean", qtext(q, "d"))
        s.json[name]["gap_days"] = q
        r = regularity(gaps)
        s.add(name, "per_customer_mean_gap_days", "per-customer mean gap: median (IQR) over customers with >= 1 gap",
              qtext(r["per_customer_mean"], "d"))
        s.json[name]["per_customer_mean_gap_days"] = r["per_customer_mean"]
        s.add(name, "n_customers_5plus_gaps", f"customers with >= {MIN_GAPS_REGULARITY} gaps", r["n_regular_customers"])
        s.add(name, "cv_gaps", "per-customer CV of gaps: median (IQR)", qtext(r["cv"]))
        s.json[name]["cv_gaps"] = r["cv"]
        s.add(name, "share_cv_below_1", "customers with CV < 1", r["share_cv_below_1"], "share")
        s.add(name, "weibull_shape_per_customer", "per-customer Weibull shape: median (IQR)", qtext(r["weibull_shape"]))
        s.json[name]["weibull_shape_per_customer"] = r["weibull_shape"]
        s.add(name, "share_shape_above_1", "customers with Weibull shape > 1", r["share_shape_above_1"], "share")
        s.add(name, "weibull_shape_pooled_normalised", "pooled Weibull shape of gaps / customer mean gap",
              r["pooled_weibull_shape"])
    return s


# ----------------------------------------------------------------------------------------------
# 2. Weekly and yearly seasonality
# ----------------------------------------------------------------------------------------------


def weekday_rates(event_dates: pd.Series, first: pd.Timestamp, n_days: int) -> dict:
    """Share of events per weekday and the rate per calendar occurrence of that weekday relative to the mean rate.

    ``weekend_to_weekday`` = mean Sat/Sun rate / mean Mon-Fri rate (per calendar day, so unequal weekday
    counts in the window do not bias it).
    """
    calendar = pd.date_range(first, periods=n_days, freq="D")
    occurrences = np.bincount(calendar.day_of_week, minlength=7)
    counts = np.bincount(pd.DatetimeIndex(event_dates).day_of_week, minlength=7).astype(np.float64)
    rate = counts / occurrences
    return {"share": dict(zip(WEEKDAYS, counts / counts.sum())),
            "rate_index": dict(zip(WEEKDAYS, rate / rate.mean())),
            "weekend_to_weekday": float(rate[5:].mean() / rate[:5].mean())}


def monthly_index(event_dates: pd.Series) -> dict:
    """Events per calendar day of each month relative to the mean over months, keyed ``YYYY-MM``."""
    d = pd.DatetimeIndex(event_dates)
    per_month = pd.Series(1, index=d).groupby(d.to_period("M")).size()
    per_day = per_month / per_month.index.days_in_month
    return {str(k): float(v) for k, v in (per_day / per_day.mean()).items()}


def detrended_monthly_index(event_dates: pd.Series) -> dict:
    """Monthly events per day divided by a log-linear trend fitted over the months (removes cohort decay)."""
    d = pd.DatetimeIndex(event_dates)
    per_month = pd.Series(1, index=d).groupby(d.to_period("M")).size()
    per_day = (per_month / per_month.index.days_in_month).to_numpy(np.float64)
    t = np.arange(len(per_day))
    slope, intercept = np.polyfit(t, np.log(per_day), 1)
    ratio = per_day / np.exp(intercept + slope * t)
    return {"index": {str(k): float(v) for k, v in zip(per_month.index, ratio)},
            "trend_per_month": float(np.exp(slope) - 1)}


def section_seasonality(cj, cd, cj_days, cd_days) -> Section:
    s = Section("seasonality", "2. Weekly and yearly seasonality",
                "weekday rate = purchases on that weekday / number of such calendar days in the window (CJ: baskets by "
                "their timestamp; CDNOW: purchase days by date), indexed to the mean; weekend/weekday = mean Sat-Sun "
                "rate / mean Mon-Fri rate. Monthly index = purchases per calendar day of the month / mean over months. "
                "CDNOW is one acquisition cohort (first purchases Jan-Mar 1997), so its raw monthly curve is mostly "
                "cohort decay; its repeat purchases (first purchase day excluded) from Apr 1997 are also shown "
                "divided by a log-linear trend. One year (CJ) or 18 months (CDNOW) cannot separate seasonality "
                "from trend; treat the monthly numbers as one draw.")
    wk = weekday_rates(cj["baskets"].ts, cj["day0"], cj["n_days"])
    s.add(CJ, "weekday", "basket share by weekday (Mon..Sun)",
          " / ".join(f"{100 * v:.1f}" for v in wk["share"].values()) + " %")
    s.json[CJ]["weekday"] = wk
    s.add(CJ, "weekend_to_weekday", "weekend-day rate / weekday rate", wk["weekend_to_weekday"])
    cd_dates = cd["day0"] + pd.to_timedelta(cd_days.day, unit="D")
    wk = weekday_rates(cd_dates, cd["day0"], cd["n_days"])
    s.add(CD, "weekday", "purchase-day share by weekday (Mon..Sun)",
          " / ".join(f"{100 * v:.1f}" for v in wk["share"].values()) + " %")
    s.json[CD]["weekday"] = wk
    s.add(CD, "weekend_to_weekday", "weekend-day rate / weekday rate", wk["weekend_to_weekday"])

    m = monthly_index(cj["baskets"].ts)
    s.add(CJ, "monthly_index", "baskets per day by month / mean (Jan..Dec 2017)",
          " / ".join(f"{v:.2f}" for v in m.values()))
    s.json[CJ]["monthly_index"] = m
    s.add(CJ, "monthly_index_range", "monthly index min / max", f"{min(m.values()):.2f} / {max(m.values()):.2f}")
    s.add(CJ, "december_index", "December index", m["2017-12"])
    m = monthly_index(cd_dates)
    s.add(CD, "monthly_index", "purchase days per day by month / mean (Jan 1997..Jun 1998), raw",
          " / ".join(f"{v:.2f}" for v in m.values()))
    s.json[CD]["monthly_index"] = m
    first_day = cd_days.groupby("customer_id").day.transform("min")
    repeat = cd_days[(cd_days.day > first_day) & (cd_days.day >= 90)]  # day 90 = 1997-04-01
    r = detrended_monthly_index(cd["day0"] + pd.to_timedelta(repeat.day, unit="D"))
    s.add(CD, "repeat_monthly_detrended", "repeat purchase days by month / log-linear trend (Apr 1997..Jun 1998)",
          " / ".join(f"{v:.2f}" for v in r["index"].values()))
    s.json[CD]["repeat_monthly_detrended"] = r
    s.add(CD, "repeat_trend_per_month", "trend of repeat purchases per month", r["trend_per_month"], "share")
    s.add(CD, "december_1997_detrended", "December 1997 detrended index", r["index"]["1997-12"])
    return s


# ----------------------------------------------------------------------------------------------
# 3. Repurchase after the first purchase
# ----------------------------------------------------------------------------------------------


def repurchase_shares(days: pd.DataFrame, n_days: int, windows=REPURCHASE_WINDOWS) -> dict:
    """Share of customers whose next purchase day falls within w days after their first purchase day, for each w.

    Only customers whose first purchase day is <= n_days - 1 - max(windows) count, so every window is observed.
    """
    first = days.groupby("customer_id").day.min()
    rank = days.groupby("customer_id").cumcount()
    second = days.day[rank == 1].set_axis(days.customer_id[rank == 1]).reindex(first.index).astype(np.float64)
    second = second.fillna(np.inf)
    eligible = first <= n_days - 1 - max(windows)
    wait = (second - first)[eligible]
    out = {f"within_{w}d": float(np.mean(wait <= w)) for w in windows}
    out["n_customers"] = int(eligible.sum())
    out["days_to_second_purchase"] = quartiles(wait[np.isfinite(wait)])
    return out


def section_repurchase(cj, cd, cj_days, cd_days) -> Section:
    s = Section("repurchase", "3. Repurchase after the first purchase",
                "share of customers with another purchase day within 14 / 30 / 90 days after their first purchase day "
                "(customers whose first purchase is at least 90 days before the end of the data). The go-to-market "
                "paper's Table 5 repurchase range is 20-50 %. CDNOW is a true acquisition cohort (first-ever "
                "purchase); "
                "in CJ the 'first purchase' is only the first one observed in 2017 (an established panel), so CJ "
                "repurchase describes active shoppers, not new customers.")
    for name, days, n in ((CJ, cj_days, cj["n_days"]), (CD, cd_days, cd["n_days"])):
        r = repurchase_shares(days, n)
        for w in REPURCHASE_WINDOWS:
            s.add(name, f"repurchase_{w}d", f"repurchase within {w} days of first purchase", r[f"within_{w}d"], "share")
        s.add(name, "n_customers", "customers counted", r["n_customers"])
        s.add(name, "days_to_second_purchase", "days to second purchase day (repeaters): median (IQR)",
              qtext(r["days_to_second_purchase"], "d"))
        s.json[name]["days_to_second_purchase"] = r["days_to_second_purchase"]
    return s


# ----------------------------------------------------------------------------------------------
# 4. Inactivity and churn
# ----------------------------------------------------------------------------------------------


def inactivity_hazard(days: pd.DataFrame, n_days: int, start: int, edges=RECENCY_EDGES,
                      horizon: int = HAZARD_HORIZON, step: int = HAZARD_STEP) -> list[dict]:
    """P(no purchase in the next ``horizon`` days | days since last purchase in [lo, hi)).

    Snapshots at t = start, start + step, ... <= n_days - 1 - horizon (end of day t, so a purchase on day t is past).
    Each snapshot counts every customer with a purchase on or before t; recency = t - last purchase day;
    the outcome is "no purchase day in t+1 .. t+horizon".
    """
    codes, uniques = pd.factorize(days.customer_id, sort=True)
    span = n_days + 2 * horizon + 1
    keys = codes.astype(np.int64) * span + days.day.to_numpy(np.int64)  # sorted: days are sorted per customer
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    cust = np.arange(len(uniques), dtype=np.int64)
    recency_all, quiet_all = [], []
    for t in range(start, n_days - horizon, step):
        last_idx = np.searchsorted(keys, cust * span + t, side="right") - 1
        has_past = (last_idx >= 0) & (keys[np.clip(last_idx, 0, None)] // span == cust)
        nxt = last_idx + 1
        has_next = (nxt < len(keys)) & (keys[np.clip(nxt, 0, len(keys) - 1)] // span == cust)
        next_day = np.where(has_next, keys[np.clip(nxt, 0, len(keys) - 1)] % span, np.iinfo(np.int64).max)
        recency_all.append(t - keys[last_idx[has_past]] % span)
        quiet_all.append(next_day[has_past] > t + horizon)
    recency, quiet = np.concatenate(recency_all), np.concatenate(quiet_all)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (recency >= lo) & (recency < hi)
        rows.append({"recency": f"{lo}-{hi:g}" if np.isfinite(hi) else f"{lo}+", "n_snapshots": int(m.sum()),
                     "p_no_purchase_next_30d": float(quiet[m].mean()) if m.any() else np.nan})
    return rows


def section_churn(cj, cd, cj_days, cd_days) -> Section:
    s = Section("churn", "4. Inactivity and churn",
                "share of customers with no purchase day in the last 90 days of the data (CJ: from 2017-10-03; "
                "CDNOW: from 1998-04-02); share with a single purchase day in the whole window. Hazard: snapshots "
                f"every {HAZARD_STEP} days; at each, every customer with a past purchase is classed by days since the "
                f"last purchase and we record whether they buy in the next {HAZARD_HORIZON} days. CJ snapshots "
                "start on "
                "day 91 (1 Apr 2017) so that recency is not cut short by the start of the data; CDNOW's start on "
                "day 0 (customers join at their first purchase). Both datasets are right-censored: no purchase in "
                "the last 90 days is inactivity, not proven churn.")
    for name, days, n, start in ((CJ, cj_days, cj["n_days"], 91), (CD, cd_days, cd["n_days"], 0)):
        last = days.groupby("customer_id").day.max()
        count = days.groupby("customer_id").size()
        s.add(name, "inactive_last_90d", "customers with no purchase in the last 90 days",
              float(np.mean(last < n - 90)), "share")
        s.add(name, "single_purchase_day", "customers who never repurchase (one purchase day in the window)",
              float(np.mean(count == 1)), "share")
        rows = inactivity_hazard(days, n, start)
        s.json[name]["hazard_no_purchase_next_30d"] = rows
        for r in rows:
            s.add(name, f"hazard_{r['recency']}", f"P(no purchase in next 30 d given inactive {r['recency']} d), "
                  f"{r['n_snapshots']:,} snapshots",
                  r["p_no_purchase_next_30d"] if r["n_snapshots"] >= 50 else "n/a (< 50 snapshots)", "share",
                  store=False)
    return s


# ----------------------------------------------------------------------------------------------
# 5. Coupons (CJ only)
# ----------------------------------------------------------------------------------------------


def without_fixed_effects(values: np.ndarray, groups: list[np.ndarray], iterations: int = 200,
                       tol: float = 1e-10) -> np.ndarray:
    """``values`` with the fixed effects of each grouping removed (alternating projections, Gaure 2013)."""
    v = values.astype(np.float64).copy()
    for _ in range(iterations):
        before = v.copy()
        for g in groups:
            sums = np.bincount(g, weights=v)
            v -= (sums / np.bincount(g))[g]
        if np.max(np.abs(v - before)) < tol:
            break
    return v


def fixed_effect_slope(y: np.ndarray, x: np.ndarray, groups: list[np.ndarray]) -> float:
    """OLS slope of y on x after removing the fixed effects in ``groups``."""
    yt, xt = without_fixed_effects(y, groups), without_fixed_effects(x, groups)
    return float(np.dot(xt, yt) / np.dot(xt, xt))


def section_coupons(cj) -> Section:
    s = Section("coupons", "5. Coupons and campaigns",
                "CJ only (CDNOW ran no recorded campaigns). A (household, campaign) pair is a row of "
                "campaigns.parquet; "
                "the data do not say which of a campaign's coupons a household got, so every household in a campaign "
                "is taken to receive all of that campaign's distinct coupon UPCs (an upper bound on coupons received, "
                "so the per-coupon redemption rate is a lower bound). Redemptions are distinct (household, UPC, "
                "campaign). Delay = redemption date - campaign start date; 'fully observed' keeps campaigns that start "
                "and end within 2017 (the redemption table starts 2017-01-01 and stops at 2017-12-31). Fatigue proxy: "
                "redemption share of a (household, campaign) pair by the number of campaigns the household received "
                "that started earlier; campaigns are targeted and heavy shoppers get more, so the raw curve is "
                "confounded; the within-household slope (household fixed effects) and the two-way slope (household "
                "and campaign fixed effects) compare the same household across its campaigns, with a 95 % "
                f"household-bootstrap interval ({BOOTSTRAP_REPS} draws).")
    camps, desc, coupons, red = cj["campaigns"], cj["campaign_descriptions"], cj["coupons"], cj["redemptions"]
    n_households = cj["baskets"].customer_id.nunique()
    per_campaign = coupons.drop_duplicates(["coupon_upc", "campaign_id"]).groupby("campaign_id").size()
    pairs = camps.drop_duplicates(["customer_id", "campaign_id"]).merge(desc, on="campaign_id")
    pairs["n_coupons"] = pairs.campaign_id.map(per_campaign).fillna(0).astype(np.int64)
    red = red.drop_duplicates(["customer_id", "coupon_upc", "campaign_id"])
    red_per_pair = red.groupby(["customer_id", "campaign_id"]).size().rename("n_redeemed")
    pairs = pairs.merge(red_per_pair, on=["customer_id", "campaign_id"], how="left").fillna({"n_redeemed": 0})
    pairs["redeemed"] = (pairs.n_redeemed > 0).astype(np.float64)

    s.add(CJ, "households_in_campaigns", "households receiving >= 1 campaign",
          pairs.customer_id.nunique() / n_households, "share")
    q = quartiles(pairs.groupby("customer_id").size())
    s.add(CJ, "campaigns_per_household", "campaigns per receiving household: median (IQR)", qtext(q))
    s.json[CJ]["campaigns_per_household"] = q
    q = quartiles(pairs.n_coupons)
    s.add(CJ, "coupons_per_household_campaign",
          "coupons received per (household, campaign), upper bound: median (IQR)", qtext(q))
    s.json[CJ]["coupons_per_household_campaign"] = q
    s.add(CJ, "coupon_redemption_rate", "redemptions / (household, coupon) pairs received",
          len(red) / pairs.n_coupons.sum(), "share")
    s.add(CJ, "household_campaign_redemption_share", "(household, campaign) pairs with >= 1 redemption",
          pairs.redeemed.mean(), "share")
    s.add(CJ, "household_ever_redeems", "receiving households that ever redeem",
          pairs.groupby("customer_id").redeemed.max().mean(), "share")
    q = quartiles(pairs.loc[pairs.redeemed > 0, "n_redeemed"])
    s.add(CJ, "redemptions_per_redeeming_pair", "coupons redeemed per redeeming (household, campaign): median (IQR)",
          qtext(q))
    s.json[CJ]["redemptions_per_redeeming_pair"] = q

    by_type = {}
    for ctype, g in pairs.groupby("campaign_type"):
        n_red = int(g.n_redeemed.sum())
        by_type[ctype] = {"campaigns": int(g.campaign_id.nunique()), "household_campaign_pairs": len(g),
                          "median_coupons": float(g.n_coupons.median()),
                          "coupon_redemption_rate": n_red / g.n_coupons.sum(),
                          "household_campaign_redemption_share": float(g.redeemed.mean()),
                          "median_duration_days": float(((g.end_date - g.start_date).dt.days + 1).median())}
        b = by_type[ctype]
        s.add(CJ, f"type_{ctype}", f"{ctype}: per-coupon rate / pair share ({b['campaigns']} campaigns, "
              f"{b['household_campaign_pairs']:,} pairs, median {b['median_coupons']:.0f} coupons, "
              f"{b['median_duration_days']:.0f} d)",
              f"{100 * b['coupon_redemption_rate']:.2f} % / {100 * b['household_campaign_redemption_share']:.1f} %",
              store=False)
    s.json[CJ]["by_campaign_type"] = by_type

    r = red.merge(desc, on="campaign_id")
    r["delay"] = (r.redemption_date - r.start_date).dt.days
    r["duration"] = (r.end_date - r.start_date).dt.days + 1
    inside = (r.start_date >= cj["day0"]) & (r.end_date < cj["day0"] + pd.Timedelta(days=cj["n_days"]))
    for key, label, sub in (("delay_all", "all redemptions", r), ("delay_fully_observed", "fully observed", r[inside])):
        q = quartiles(sub.delay)
        s.add(CJ, key, f"days from campaign start to redemption, {label}: median (IQR)", qtext(q, "d"))
        s.json[CJ][key] = q
    sub = r[inside]
    first = sub.groupby(["customer_id", "campaign_id"]).delay.min()
    q = quartiles(first)
    s.add(CJ, "first_redemption_delay", "days to a pair's first redemption, fully observed: median (IQR)",
          qtext(q, "d"))
    s.json[CJ]["first_redemption_delay"] = q
    s.add(CJ, "redeemed_in_first_7d", "redemptions within 7 days of campaign start, fully observed",
          float(np.mean(sub.delay < 7)), "share")
    q = quartiles(sub.delay / sub.duration)
    s.add(CJ, "delay_fraction_of_duration", "delay / campaign duration, fully observed: median (IQR)", qtext(q))
    s.json[CJ]["delay_fraction_of_duration"] = q

    # fatigue proxy: campaigns the household received that started strictly earlier
    pairs = pairs.sort_values(["customer_id", "start_date"]).reset_index(drop=True)
    starts = pairs.start_date.to_numpy()
    prior = np.zeros(len(pairs), dtype=np.int64)
    for _, idx in pairs.groupby("customer_id").indices.items():
        st = starts[idx]
        prior[idx] = np.searchsorted(np.sort(st), st, side="left")
    pairs["prior"] = prior
    curve = []
    for lo, hi in FATIGUE_BUCKETS:
        g = pairs[(pairs.prior >= lo) & (pairs.prior <= hi)]
        curve.append({"prior_campaigns": f"{lo}" if lo == hi else f"{lo}-{hi}" if hi < 99 else f"{lo}+",
                      "pairs": len(g), "redemption_share": float(g.redeemed.mean()) if len(g) else np.nan})
    s.json[CJ]["fatigue_curve"] = curve
    s.add(CJ, "fatigue_curve", "pair redemption share by prior campaigns received (raw): "
          + " / ".join(c["prior_campaigns"] for c in curve),
          " / ".join(f"{100 * c['redemption_share']:.1f} % (n={c['pairs']:,})" for c in curve), store=False)
    hh = pd.factorize(pairs.customer_id)[0]
    cp = pd.factorize(pairs.campaign_id)[0]
    y, x = pairs.redeemed.to_numpy(), pairs.prior.to_numpy(np.float64)
    slopes = {"household_fe": fixed_effect_slope(y, x, [hh]), "two_way_fe": fixed_effect_slope(y, x, [hh, cp])}
    rng = np.random.default_rng(SEED)
    members = [np.flatnonzero(hh == h) for h in range(hh.max() + 1)]
    draws = {k: [] for k in slopes}
    for _ in range(BOOTSTRAP_REPS):
        pick = rng.integers(0, len(members), len(members))
        rows = np.concatenate([members[h] for h in pick])
        new_hh = np.repeat(np.arange(len(pick)), [len(members[h]) for h in pick])  # resampled households are distinct
        draws["household_fe"].append(fixed_effect_slope(y[rows], x[rows], [new_hh]))
        draws["two_way_fe"].append(fixed_effect_slope(y[rows], x[rows], [new_hh, cp[rows]]))
    for k, label in (("household_fe", "household FE"), ("two_way_fe", "household + campaign FE")):
        lo, hi = np.quantile(draws[k], [0.025, 0.975])
        s.json[CJ][f"fatigue_slope_{k}"] = {"slope": slopes[k], "ci95": [lo, hi]}
        s.add(CJ, f"fatigue_slope_{k}", f"change in pair redemption share per extra prior campaign, {label} [95 % CI]",
              f"{100 * slopes[k]:+.2f} pp [{100 * lo:+.2f}, {100 * hi:+.2f}]", store=False)
    s.missing(CD, "coupons", "coupon / campaign statistics", "CDNOW has no campaign, offer or coupon records")
    return s


# ----------------------------------------------------------------------------------------------
# 6. Basket value and price promotions
# ----------------------------------------------------------------------------------------------


def section_baskets(cj, cd) -> Section:
    s = Section("basket_value", "6. Basket value and price promotions",
                "CJ basket value = sum of sales_value of its lines (dollars paid, after discounts); CDNOW order "
                "value = dollars of one order line and, summed, of one customer-day. Discounts (CJ only): the "
                "packaged retail_disc / coupon_disc are positive amounts; a discounted line has a non-zero value; "
                "depth = discount / (sales_value + discount), i.e. share off the shelf price. retail_disc is mostly "
                "the retailer's loyalty-card price, so it measures everyday promotional pricing, not targeted offers. "
                "CDNOW records no prices or discounts.")
    q = quartiles(cj["baskets"].value)
    s.add(CJ, "basket_value", "basket value: median (IQR); mean", qtext(q, "$"))
    s.json[CJ]["basket_value"] = q
    lines = cd["lines"]
    q = quartiles(lines.dollars)
    s.add(CD, "order_line_value", "order line value: median (IQR); mean", qtext(q, "$"))
    s.json[CD]["order_line_value"] = q
    q = quartiles(lines.groupby(["customer_id", "day"]).dollars.sum())
    s.add(CD, "purchase_day_value", "customer-day order value: median (IQR); mean", qtext(q, "$"))
    s.json[CD]["purchase_day_value"] = q
    s.add(CD, "zero_dollar_lines", "order lines with $0", float(np.mean(lines.dollars == 0)), "share")

    tx = cj["lines"]
    for col, label in (("retail_disc", "retail discount"), ("coupon_disc", "coupon discount")):
        on = tx[col] != 0
        s.add(CJ, f"{col}_line_share", f"lines with a {label}", float(on.mean()), "share")
        s.add(CJ, f"{col}_spend_share", f"spend (sales_value) on lines with a {label}",
              float(tx.sales_value[on].sum() / tx.sales_value.sum()), "share")
        s.add(CJ, f"{col}_basket_share", f"baskets with >= 1 {label} line",
              float(on.groupby(tx.basket_id).any().mean()), "share")
        disc = tx[col].abs()
        s.add(CJ, f"{col}_depth_overall", f"{label} / shelf value, all spend",
              float(disc.sum() / (tx.sales_value.sum() + disc.sum())), "share")
        depth = disc[on] / (tx.sales_value[on] + disc[on])
        q = quartiles(depth[np.isfinite(depth)])
        s.add(CJ, f"{col}_depth_discounted_lines", f"{label} depth on discounted lines: median (IQR)", qtext(q))
        s.json[CJ][f"{col}_depth_discounted_lines"] = q
    s.missing(CD, "discounts", "price promotion share", "CDNOW records no prices or discounts")
    return s


# ----------------------------------------------------------------------------------------------


def main() -> None:
    start = time.perf_counter()
    cj, cd = load_completejourney(), load_cdnow()
    cj_days, cd_days = purchase_days(cj["baskets"]), purchase_days(cd["lines"])
    loaded = time.perf_counter() - start
    datasets = {
        CJ: {"households": int(cj["baskets"].customer_id.nunique()), "baskets": len(cj["baskets"]),
             "purchase_days": len(cj_days), "window": "2017-01-01..2017-12-31 (365 d)",
             "dropped_baskets_2018_01_01": cj["dropped_baskets"]},
        CD: {"customers": int(cd["lines"].customer_id.nunique()), "order_lines": len(cd["lines"]),
             "purchase_days": len(cd_days), "window": f"1997-01-01..1998-06-30 ({cd['n_days']} d)"},
    }
    sections = [section_inter_purchase(cj_days, cd_days), section_seasonality(cj, cd, cj_days, cd_days),
                section_repurchase(cj, cd, cj_days, cd_days), section_churn(cj, cd, cj_days, cd_days),
                section_coupons(cj), section_baskets(cj, cd)]
    run_s = time.perf_counter() - start
    overview = (f"Complete Journey: {datasets[CJ]['households']:,} households, {datasets[CJ]['baskets']:,} baskets, "
                f"{datasets[CJ]['purchase_days']:,} household purchase days, {datasets[CJ]['window']}; "
                f"{cj['dropped_baskets']} baskets dated 2018-01-01 dropped. CDNOW: {datasets[CD]['customers']:,} "
                f"customers, {datasets[CD]['order_lines']:,} order lines, {datasets[CD]['purchase_days']:,} customer "
                f"purchase days, {datasets[CD]['window']}. Run time {run_s:.1f} s (loading {loaded:.1f} s), one "
                "process. Values: median (q25-q75); mean; n = count; shares in %.")
    md = [("Data", overview)] + [(s.heading, s.markdown()) for s in sections]
    data = {"datasets": datasets, "run_seconds": round(run_s, 1), "load_seconds": round(loaded, 1),
            **{s.key: rounded(s.json) for s in sections}}
    path = write_results("public_world_statistics", "Public statistics for the synthetic market's defaults", md, data,
                         command="python benchmarks/public_world_statistics.py")
    print(path.read_text())


if __name__ == "__main__":
    main()
