"""Canonical tables: the one shape every data source translates into.

A source (synthetic, table, hillstrom, ...) returns a :class:`CanonicalData`; task views
(``deepromo.data.views``) read only these tables and never know where they came from.

Column contract (pandas DataFrames; ``*`` = optional column):

customers  one row per customer
    customer_id  int64, unique
    <static attributes>  categorical columns (str / pandas Categorical) and numeric columns (float)
events     one row per behaviour event, any order
    customer_id  int64
    ts           float64, days since the start of the observation window (0 .. history_end)
    event_type   str: "view" | "cart" | "purchase" | "campaign_click" (others allowed)
    product_id   int64 (-1 when the event has no product)
    category     str (item category; "" when none)
    amount       float64 >= 0, money spent (0 for non-purchases)
    promo_active int8, 1 if a promotion was running at ts
exposures  one row per campaign exposure in the response window (treated or control)
    customer_id  int64
    ts           float64, days; >= history_end
    treatment    int8, 1 = received the campaign, 0 = control
    incentive    float64 >= 0, incentive level offered (0 for control)
    propensity   float64 in (0, 1], probability of the (treatment, incentive) actually logged
    offer_id*    int64 (-1 for control)
    engaged      int8, 1 = opened/clicked the campaign (always 0 for control)
outcomes   one row per customer, the response window after history_end
    customer_id  int64
    purchased    int8, 1 = at least one purchase in the response window
    revenue      float64 >= 0
products*  product_id int64, category str, brand str, price float64 > 0
offers*    offer_id int64, offer_type str, face_value float64, timing str, product_id int64

Ground truth (synthetic worlds only) lives in ``truth`` and is never fed to a model:
truth      one row per customer
    customer_id, intent (str: "prompted" | "organic" | "inactive"), and any latent
    quantities the source knows (organic rate, sensitivity, true response curve values ...)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from deepromo.data.errors import UserInputError

INTENTS = ("prompted", "organic", "inactive")

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id",),
    "events": ("customer_id", "ts", "event_type", "amount"),
    "exposures": ("customer_id", "treatment", "incentive", "propensity"),
    "outcomes": ("customer_id", "purchased"),
}


class DataValidationError(UserInputError):
    """Bad input data: the message names the table, column or value and what was expected."""


@dataclass
class CanonicalData:
    """All canonical tables of one dataset plus its time frame and incentive levels.

    history_end: day at which the behaviour history stops and the response window starts.
    response_days: length of the response window in days.
    incentive_levels: ordered discrete incentive levels (level 0 = no incentive), or None.
    arm_names: for a categorical treatment with unordered arms, the name of each level (level 0 = control;
        the levels are then codes 0..K, not amounts); None for incentive amounts.
    """

    customers: pd.DataFrame
    events: pd.DataFrame
    exposures: pd.DataFrame
    outcomes: pd.DataFrame
    products: pd.DataFrame | None = None
    offers: pd.DataFrame | None = None
    truth: pd.DataFrame | None = None
    history_end: float = 120.0
    response_days: float = 14.0
    incentive_levels: tuple[float, ...] | None = None
    arm_names: tuple[str, ...] | None = None
    name: str = "data"
    meta: dict = field(default_factory=dict)

    def validate(self) -> "CanonicalData":
        """Check required columns, emptiness, ids and amounts; raise DataValidationError naming the problem."""
        for table, cols in REQUIRED_COLUMNS.items():
            df = getattr(self, table)
            if df is None:
                raise DataValidationError(f"{self.name}: table '{table}' is missing")
            missing = [c for c in cols if c not in df.columns]
            if missing:
                raise DataValidationError(
                    f"{self.name}: table '{table}' lacks required column(s) {missing}; "
                    f"it has {list(df.columns)}"
                )
        if len(self.customers) == 0:
            raise DataValidationError(f"{self.name}: table 'customers' is empty (0 rows)")
        if self.customers["customer_id"].duplicated().any():
            dup = self.customers.loc[self.customers["customer_id"].duplicated(), "customer_id"].iloc[:5].tolist()
            raise DataValidationError(f"{self.name}: duplicated customer_id values in 'customers', e.g. {dup}")
        if len(self.events) and (self.events["amount"] < 0).any():
            bad = self.events.loc[self.events["amount"] < 0, "amount"].iloc[:3].tolist()
            raise DataValidationError(
                f"{self.name}: column 'events.amount' has negative values, e.g. {bad}; expected amounts >= 0"
            )
        if (self.exposures["incentive"] < 0).any():
            raise DataValidationError(f"{self.name}: column 'exposures.incentive' has negative values; expected >= 0")
        if self.arm_names is not None and (self.incentive_levels is None
                                           or len(self.arm_names) != len(self.incentive_levels)):
            raise DataValidationError(f"{self.name}: arm_names {list(self.arm_names)} must name each of the "
                                      f"incentive levels {self.incentive_levels} (level 0 = control)")
        p = self.exposures["propensity"]
        if ((p <= 0) | (p > 1) | p.isna()).any():
            raise DataValidationError(f"{self.name}: column 'exposures.propensity' must lie in (0, 1]")
        return self


def true_curve_columns(levels) -> list[str]:
    """Names of the truth table's true purchase probability at each incentive level (synthetic worlds)."""
    return [f"true_p_{float(level):g}" for level in levels]


def true_response_curves(truth: pd.DataFrame | None, levels) -> np.ndarray | None:
    """``[n, L]`` true purchase probability at each of ``levels`` from a truth table row-aligned with its
    view (None when the source has no such truth): the one reader of the ``true_p_<level>`` columns."""
    columns = true_curve_columns(levels)
    if truth is None or not set(columns) <= set(truth.columns):
        return None
    return truth[columns].to_numpy(dtype=np.float64)
