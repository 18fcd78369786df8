"""The MineThatData e-mail campaign (Kevin Hillstrom, 2008) as canonical tables (``load_source("hillstrom")``).

64,000 customers who bought in the last twelve months, randomised into three equal arms by column
``segment`` (``Mens E-Mail``, ``Womens E-Mail``, ``No E-Mail``), with the outcomes of the two weeks
after the e-mail (``visit``, ``conversion``, ``spend``) — the standard randomised trial for uplift
modelling. The CSV is read from the local ``path`` option; nothing is ever downloaded. The file is
recognised by its columns, not by its name or location: every column below must be there (extra
columns are ignored), arms must be the three names above, flags 0/1, amounts finite and >= 0.

Mapping

customers
    ``customer_id`` = the 0-based data row number in the file (the file has no id; rows dropped by
    ``treatment_arm`` keep their numbers). Numeric features (float64): ``recency`` (months since the
    last purchase), ``history`` (dollars spent in the past year), ``mens``, ``womens`` (bought that line
    in the past year, 0/1), ``newbie`` (new customer in the past twelve months, 0/1). Categorical
    features: ``history_segment``, ``zip_code`` (kept as spelled in the file, ``Surburban`` included),
    ``channel``. ``history_segment`` only bins ``history``; it is kept because the classic benchmarks use it.
events
    none (empty table with the canonical columns): the data hold no dated behaviour. The behaviour
    features of the views are therefore constant; the sequence view has empty sequences.
time
    day 0 = the e-mail; ``history_end`` = 0, ``response_days`` = 14 (the two-week outcome window).
exposures
    one row per customer at ts = 0. ``treatment_arm``:

    * ``any`` (default): treatment = 1 for either e-mail, 0 for ``No E-Mail``; propensity = the design
      probability 2/3 for treated rows and 1/3 for control rows (three equal arms).
    * ``mens`` / ``womens``: that e-mail vs ``No E-Mail``; the other e-mail's rows are dropped;
      propensity = 1/2 for both.
    * ``multi``: all three arms as an unordered categorical treatment: incentive = the arm's code
      (0 = No E-Mail, then ``arm_order``, default Mens 1, Womens 2), ``CanonicalData.arm_names`` names
      them (so no model reads the codes as amounts); propensity = 1/3 for every row.

    incentive = treatment (binary levels (0, 1)) except for ``multi``; ``arm`` = the ``segment`` value; engaged = 1 for
    treated customers who visited the website (``visit``; the data hold no e-mail opens or clicks;
    every converter visited, so the customer view's "engaged purchase" segment = treated purchasers);
    offer_id = -1.
outcomes
    ``outcome``: ``visit`` (default) or ``conversion`` becomes ``purchased``; revenue = ``spend``.

Observed rates in the full file (visit / conversion / mean spend): Mens .183 / .0125 / 1.42, Womens
.151 / .0088 / 1.08, No E-Mail .106 / .0057 / 0.65; ``meta["arm_rates"]`` holds them for the loaded rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepromo.data.errors import UserInputError
from deepromo.data.io import read_files, resolve_files
from deepromo.data.sources import register_source
from deepromo.data.sources.table import binary_values, finite_numbers, refuse_missing, text_categories
from deepromo.data.tables import CanonicalData, DataValidationError

NAME = "hillstrom"
ARMS = ("Mens E-Mail", "Womens E-Mail", "No E-Mail")
CONTROL = "No E-Mail"
TREATMENT_ARMS = {"any": ("Mens E-Mail", "Womens E-Mail"), "mens": ("Mens E-Mail",), "womens": ("Womens E-Mail",),
                  "multi": ("Mens E-Mail", "Womens E-Mail")}
OUTCOMES = ("visit", "conversion")
NUMERIC = ("recency", "history")
FLAGS = ("mens", "womens", "newbie")
CATEGORICAL = ("history_segment", "zip_code", "channel")
COLUMNS = ("recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie", "channel",
           "segment", "visit", "conversion", "spend")
RESPONSE_DAYS = 14.0
SHARED_COPY = "../shared/data/hillstrom.csv"


@register_source("hillstrom")
def load_hillstrom(path: str | None = None, treatment_arm: str = "any", outcome: str = "visit",
                   arm_order=None) -> CanonicalData:
    """Load the Hillstrom CSV as validated canonical tables (see the module docstring).

    path: the local CSV (Kevin Hillstrom's MineThatData file, 64,000 rows); required, never downloaded.
    treatment_arm: "any" (either e-mail vs none), "mens" or "womens" (that e-mail vs none; the other
        arm's rows are dropped), or "multi" (the three arms as an unordered categorical treatment).
    outcome: "visit" or "conversion" (within two weeks), the label ``purchased``.
    arm_order: ``multi`` only: the two e-mail arms in the order of codes 1, 2 (default Mens, Womens); a
        labelling only, since the arms are unordered.
    """
    if treatment_arm not in TREATMENT_ARMS:
        raise UserInputError(f"{NAME}: option treatment_arm must be one of {list(TREATMENT_ARMS)}, got {treatment_arm!r}")
    treated_arms = TREATMENT_ARMS[treatment_arm]
    if arm_order is not None:
        if treatment_arm != "multi":
            raise UserInputError(f"{NAME}: option arm_order applies to treatment_arm 'multi' only, not {treatment_arm!r}")
        if isinstance(arm_order, str) or sorted(map(str, arm_order)) != sorted(treated_arms):
            raise UserInputError(f"{NAME}: option arm_order must list the two e-mail arms {list(treated_arms)} "
                                 f"once each, got {arm_order!r}")
        treated_arms = tuple(str(a) for a in arm_order)
    if outcome not in OUTCOMES:
        raise UserInputError(f"{NAME}: option outcome must be one of {list(OUTCOMES)}, got {outcome!r}")
    if path is None or (isinstance(path, str) and path.strip() == ""):
        raise DataValidationError(
            f"{NAME}: option path is not set. Put the MineThatData e-mail campaign CSV (64,000 rows, columns "
            f"{', '.join(COLUMNS)}) somewhere local and set data.options.path to it (a copy kept beside this "
            f"project is {SHARED_COPY}); the data are never downloaded"
        )
    files = resolve_files(path, "path", NAME)
    numeric = NUMERIC + FLAGS + ("visit", "conversion", "spend")
    raw = read_files(files, COLUMNS, numeric=numeric, what=NAME, role=" (a Hillstrom e-mail campaign CSV has them all)")
    if len(raw) == 0:
        raise DataValidationError(f"{NAME}: file '{files[0].name}' has no data rows")

    segment = pd.Series(raw["segment"], dtype=object)
    refuse_missing(segment.isna().to_numpy(), NAME, "column 'segment'", f"expected one of {list(ARMS)}")
    segment = segment.astype(str).str.strip()
    unknown = ~segment.isin(ARMS).to_numpy()
    if unknown.any():
        raise DataValidationError(
            f"{NAME}: column 'segment' has unknown arm(s) {pd.unique(segment[unknown])[:5].tolist()}; "
            f"expected only {list(ARMS)}"
        )
    keep = segment.isin(treated_arms + (CONTROL,)).to_numpy()
    row_id = np.flatnonzero(keep).astype(np.int64)
    raw = raw.loc[keep].reset_index(drop=True)
    segment = segment[keep].reset_index(drop=True)

    customers = {"customer_id": row_id}
    for c in NUMERIC:
        customers[c] = finite_numbers(raw[c], c, NAME, allow_negative=False)
    for c in FLAGS:
        customers[c] = binary_values(raw[c], c, NAME).astype(np.float64)
    for c in CATEGORICAL:
        customers[c] = text_categories(raw[c])
    customers = pd.DataFrame(customers)

    visit = binary_values(raw["visit"], "visit", NAME)
    conversion = binary_values(raw["conversion"], "conversion", NAME)
    spend = finite_numbers(raw["spend"], "spend", NAME, allow_negative=False)
    label = visit if outcome == "visit" else conversion
    treated = segment.isin(treated_arms).to_numpy()
    n = len(row_id)
    if treatment_arm == "multi":
        codes = {CONTROL: 0.0, **{arm: float(i + 1) for i, arm in enumerate(treated_arms)}}
        incentive = segment.map(codes).to_numpy(dtype=np.float64)
        propensity = np.full(n, 1.0 / 3.0)  # design: three equal arms
        levels, arm_names = (0.0, 1.0, 2.0), (CONTROL, *treated_arms)
    else:
        p_treated = len(treated_arms) / (len(treated_arms) + 1.0)  # design: three equal arms
        incentive, propensity = treated.astype(np.float64), np.where(treated, p_treated, 1.0 - p_treated)
        levels, arm_names = (0.0, 1.0), None
    exposures = pd.DataFrame({
        "customer_id": row_id,
        "ts": np.zeros(n),
        "treatment": treated.astype(np.int8),
        "incentive": incentive,
        "propensity": propensity,
        "offer_id": np.full(n, -1, np.int64),
        "engaged": (treated & (visit == 1)).astype(np.int8),
        "arm": pd.Categorical(segment.to_numpy(dtype=object), categories=list(ARMS)),
    })
    outcomes = pd.DataFrame({"customer_id": row_id, "purchased": label.astype(np.int8), "revenue": spend})
    events = pd.DataFrame({
        "customer_id": np.zeros(0, np.int64), "ts": np.zeros(0), "event_type": pd.Categorical([]),
        "product_id": np.zeros(0, np.int64), "category": pd.Categorical([]), "amount": np.zeros(0),
        "promo_active": np.zeros(0, np.int8),
    })
    frame = pd.DataFrame({"arm": segment, "visit": visit, "conversion": conversion, "spend": spend})
    rates = frame.groupby("arm", sort=True)[["visit", "conversion", "spend"]].mean()
    meta = {
        "source": NAME,
        "path": [str(f) for f in files],
        "treatment_arm": treatment_arm,
        "outcome": outcome,
        "treated_arms": list(treated_arms),
        "arm_rates": {arm: {k: float(v) for k, v in row.items()} for arm, row in rates.iterrows()},
        "counts": {"rows_in_file": len(keep), "rows": int(n), "rows_dropped": int((~keep).sum()),
                   "treated_share": float(treated.mean()), "label_rate": float(label.mean())},
    }
    data = CanonicalData(
        customers=customers, events=events, exposures=exposures, outcomes=outcomes, products=None, offers=None,
        truth=None, history_end=0.0, response_days=RESPONSE_DAYS, incentive_levels=levels, arm_names=arm_names,
        name=NAME, meta=meta,
    )
    return data.validate()


__all__ = ["ARMS", "COLUMNS", "OUTCOMES", "TREATMENT_ARMS", "load_hillstrom"]
