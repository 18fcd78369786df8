"""Business-rule filter applied before ranking offers: which (customer, offer) pairs are feasible.

``feasible_mask(customer_index, offers, rules)`` -> bool ndarray [n_customers, n_offers] (True = the offer
may be shown to the customer). Rows follow ``customer_index`` (customer ids), columns follow the rows of
``offers`` (a DataFrame with ``offer_id`` and, depending on the rules used, ``product_id``, ``face_value``,
``brand``). Rules are plain data (an :class:`OfferRules` or a dict with the same keys); each one is
optional and each input is validated with an error that names the rule and the column:

stock          DataFrame[product_id, stock] (stock <= 0 = out of stock), or an iterable of out-of-stock
               product ids. An offer is infeasible when its product is out of stock; with
               ``offer_products`` (DataFrame[offer_id, product_id], an offer covering several products)
               it is infeasible when *all* its covered products are out of stock. Products absent from
               the stock table are in stock.
brand_limits   DataFrame[brand, max_face_value] or dict brand -> max face value: an offer whose face_value
               exceeds its brand's limit is infeasible. The offer's brand is ``offers.brand`` when present,
               else looked up through ``products`` (DataFrame[product_id, brand]) by ``offers.product_id``.
               Brands without a limit are unrestricted.
contacts       DataFrame[customer_id, contacts] (contacts already made in the period) and ``contact_cap``
               (int, or a per-customer ``cap`` column in the same frame): a customer with contacts >= cap
               gets no offer at all. Customers absent from the frame have 0 contacts.
budget_left    float: offers with face_value > budget_left are infeasible for everyone.
exclusions     DataFrame[customer_id, offer_id]: explicit pairs that must not be offered.

``compile_rules(customer_index, offers, rules)`` evaluates the rules once for serving many requests
(``CompiledRules.mask(rows)``); ``feasible_mask`` is ``compile_rules(...).mask()``.

``rank_offers(scores, mask, k)`` -> (indices [n_c, k] long, scores [n_c, k] float): each customer's k
best feasible offers by descending score (ties: lower offer index first); -1 and -inf fill the slots when
fewer than k offers are feasible.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch

from deepromo.data.errors import UserInputError

__all__ = ["CompiledRules", "OfferRules", "RuleValidationError", "compile_rules", "feasible_mask", "rank_offers"]


class RuleValidationError(UserInputError):
    """A rule's input is malformed: the message names the rule and the column."""


@dataclass
class OfferRules:
    """Constraint data for :func:`feasible_mask`; every field is optional (see the module docstring)."""

    stock: pd.DataFrame | Iterable | None = None
    offer_products: pd.DataFrame | None = None
    brand_limits: pd.DataFrame | Mapping | None = None
    products: pd.DataFrame | None = None
    contacts: pd.DataFrame | None = None
    contact_cap: int | None = None
    budget_left: float | None = None
    exclusions: pd.DataFrame | None = None


def _as_rules(rules) -> OfferRules:
    if rules is None:
        return OfferRules()
    if isinstance(rules, OfferRules):
        return rules
    if isinstance(rules, Mapping):
        valid = {f.name for f in fields(OfferRules)}
        unknown = sorted(set(rules) - valid)
        if unknown:
            raise RuleValidationError(f"rules: unknown rule key(s) {unknown}; valid keys are {sorted(valid)}")
        return OfferRules(**dict(rules))
    raise RuleValidationError(f"rules must be an OfferRules, a dict or None, got {type(rules).__name__}")


def _frame(df, rule: str, cols: tuple[str, ...]) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise RuleValidationError(f"rule '{rule}': expected a pandas DataFrame with columns {list(cols)}, "
                                  f"got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise RuleValidationError(f"rule '{rule}': missing column(s) {missing}; expected {list(cols)}, "
                                  f"it has {list(df.columns)}")
    return df


def _int_col(df: pd.DataFrame, col: str, rule: str) -> np.ndarray:
    v = pd.to_numeric(df[col], errors="coerce")
    bad = v.isna() | (np.mod(v.fillna(0.5), 1) != 0)
    if bad.any():
        raise RuleValidationError(f"rule '{rule}': column '{col}' must hold integer ids/counts, got e.g. "
                                  f"{df.loc[bad, col].iloc[:3].tolist()}")
    return v.to_numpy(np.int64)


def _num_col(df: pd.DataFrame, col: str, rule: str) -> np.ndarray:
    v = pd.to_numeric(df[col], errors="coerce")
    if v.isna().any():
        raise RuleValidationError(f"rule '{rule}': column '{col}' must be numeric without missing values, got e.g. "
                                  f"{df.loc[v.isna(), col].iloc[:3].tolist()}")
    return v.to_numpy(np.float64)


def _number(x, rule: str) -> float:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)) \
            or math.isnan(float(x)):
        raise RuleValidationError(f"rule '{rule}': expected a number, got {x!r}")
    return float(x)


def feasible_mask(customer_index, offers: pd.DataFrame, rules=None) -> np.ndarray:
    """Bool [n_customers, n_offers]: True where offer j may be shown to customer i (see the module docstring).

    customer_index: customer ids of the rows (array-like or ``pd.Index``), unique.
    offers: DataFrame with ``offer_id`` (unique) and the columns the given rules need.
    rules: :class:`OfferRules`, a dict with its keys, or None (everything feasible).
    """
    return compile_rules(customer_index, offers, rules).mask()


@dataclass
class CompiledRules:
    """The rules evaluated once for fixed customers and offers, for serving many requests.

    offer_ok [n_offers] bool (stock, brand limits, budget), customer_ok [n_customers] bool (contact caps),
    and the excluded (customer row, offer column) pairs as CSR (``excluded_ptr`` [n_customers + 1],
    ``excluded_offers``). ``mask(rows)`` gives the feasible mask of those customer rows.
    """

    customer_index: pd.Index
    offer_ids: np.ndarray
    offer_ok: np.ndarray
    customer_ok: np.ndarray
    excluded_ptr: np.ndarray
    excluded_offers: np.ndarray

    def mask(self, rows=None) -> np.ndarray:
        """Bool [len(rows), n_offers] for customer rows ``rows`` (positions in ``customer_index``; None = all)."""
        rows = np.arange(len(self.customer_index)) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
        mask = self.customer_ok[rows][:, None] & self.offer_ok[None, :]
        start, stop = self.excluded_ptr[rows], self.excluded_ptr[rows + 1]
        counts = stop - start
        if counts.any():
            local = np.repeat(np.arange(len(rows)), counts)
            pos = np.repeat(start - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
            mask[local, self.excluded_offers[pos]] = False
        return mask


def compile_rules(customer_index, offers: pd.DataFrame, rules=None) -> CompiledRules:
    """Evaluate ``rules`` for ``customer_index`` x ``offers`` once (arguments as :func:`feasible_mask`)."""
    r = _as_rules(rules)
    cust = pd.Index(np.asarray(customer_index).reshape(-1))
    if cust.has_duplicates:
        raise RuleValidationError(f"customer_index: duplicated customer ids, e.g. "
                                  f"{cust[cust.duplicated()][:3].tolist()}")
    _frame(offers, "offers", ("offer_id",))
    offer_ids = _int_col(offers, "offer_id", "offers")
    if pd.Index(offer_ids).has_duplicates:
        raise RuleValidationError("rule 'offers': column 'offer_id' has duplicated values")
    n_c, n_o = len(cust), len(offers)
    offer_ok = np.ones(n_o, dtype=bool)
    customer_ok = np.ones(n_c, dtype=bool)

    def offer_column(col: str, rule: str, numeric: bool) -> np.ndarray:
        if col not in offers.columns:
            raise RuleValidationError(f"rule '{rule}' needs column '{col}' in offers; offers has {list(offers.columns)}")
        return _num_col(offers, col, rule) if numeric else offers[col].to_numpy()

    # ---- stock ----
    if r.stock is not None:
        if isinstance(r.stock, pd.DataFrame):
            st = _frame(r.stock, "stock", ("product_id", "stock"))
            oos = _int_col(st, "product_id", "stock")[_num_col(st, "stock", "stock") <= 0]
        elif isinstance(r.stock, (str, bytes)) or not isinstance(r.stock, Iterable):
            raise RuleValidationError(f"rule 'stock': expected a DataFrame[product_id, stock] or an iterable of "
                                      f"out-of-stock product ids, got {type(r.stock).__name__}")
        else:
            oos = _int_col(pd.DataFrame({"product_id": list(r.stock)}), "product_id", "stock")
        oos = np.unique(oos)
        if r.offer_products is not None:
            op = _frame(r.offer_products, "offer_products", ("offer_id", "product_id"))
            o = pd.Index(offer_ids).get_indexer(_int_col(op, "offer_id", "offer_products"))
            in_stock = ~np.isin(_int_col(op, "product_id", "offer_products"), oos)
            ok = o >= 0
            n_cov = np.bincount(o[ok], minlength=n_o)
            n_in = np.bincount(o[ok], weights=in_stock[ok], minlength=n_o)
            listed = n_cov > 0
            offer_ok &= ~listed | (n_in > 0)
            if "product_id" in offers.columns:  # offers without a mapping row: their own product decides
                own = _int_col(offers, "product_id", "stock")
                offer_ok &= listed | ~np.isin(own, oos)
        else:
            if "product_id" not in offers.columns:
                raise RuleValidationError(f"rule 'stock' needs column 'product_id' in offers (or "
                                          f"offer_products); offers has {list(offers.columns)}")
            offer_ok &= ~np.isin(_int_col(offers, "product_id", "stock"), oos)

    # ---- brand discount limits ----
    if r.brand_limits is not None:
        if isinstance(r.brand_limits, Mapping):
            limits = pd.Series({k: _number(v, "brand_limits") for k, v in r.brand_limits.items()}, dtype=np.float64)
        else:
            bl = _frame(r.brand_limits, "brand_limits", ("brand", "max_face_value"))
            if bl["brand"].duplicated().any():
                raise RuleValidationError(f"rule 'brand_limits': column 'brand' has duplicated brands, e.g. "
                                          f"{bl.loc[bl['brand'].duplicated(), 'brand'].iloc[:3].tolist()}")
            limits = pd.Series(_num_col(bl, "max_face_value", "brand_limits"), index=bl["brand"].to_numpy())
        face = offer_column("face_value", "brand_limits", numeric=True)
        if "brand" in offers.columns:
            brand = offers["brand"].to_numpy()
        elif r.products is not None:
            pr = _frame(r.products, "products", ("product_id", "brand")).drop_duplicates("product_id")
            if "product_id" not in offers.columns:
                raise RuleValidationError(f"rule 'brand_limits' needs column 'brand' or 'product_id' in offers; "
                                          f"offers has {list(offers.columns)}")
            brand = pr.set_index("product_id")["brand"].reindex(_int_col(offers, "product_id", "brand_limits"))
            brand = brand.to_numpy()
        else:
            raise RuleValidationError(f"rule 'brand_limits' needs column 'brand' in offers or a 'products' table "
                                      f"(product_id, brand); offers has {list(offers.columns)}")
        lim = limits.reindex(brand).to_numpy(np.float64)  # NaN = brand without a limit
        offer_ok &= ~(np.isfinite(lim) & (face > lim))

    # ---- budget ----
    if r.budget_left is not None:
        budget = _number(r.budget_left, "budget_left")
        offer_ok &= offer_column("face_value", "budget_left", numeric=True) <= budget

    # ---- contact / fatigue caps ----
    if r.contacts is not None:
        ct = _frame(r.contacts, "contacts", ("customer_id", "contacts"))
        ids = _int_col(ct, "customer_id", "contacts")
        if pd.Index(ids).has_duplicates:
            raise RuleValidationError("rule 'contacts': column 'customer_id' has duplicated customers")
        n_contacts = _num_col(ct, "contacts", "contacts")
        if "cap" in ct.columns:  # per-customer caps; a missing cap falls back to contact_cap (or no cap)
            raw = pd.to_numeric(ct["cap"], errors="coerce")
            if (raw.isna() & ct["cap"].notna()).any():
                raise RuleValidationError(f"rule 'contacts': column 'cap' must be numeric, got e.g. "
                                          f"{ct.loc[raw.isna() & ct['cap'].notna(), 'cap'].iloc[:3].tolist()}")
            default = math.inf if r.contact_cap is None else _number(r.contact_cap, "contact_cap")
            cap = raw.fillna(default).to_numpy(np.float64)
        elif r.contact_cap is not None:
            cap = np.full(len(ct), _number(r.contact_cap, "contact_cap"))
        else:
            raise RuleValidationError("rule 'contacts' needs 'contact_cap' or a 'cap' column in the contacts frame")
        capped = pd.Index(ids[n_contacts >= cap])
        customer_ok &= ~cust.isin(capped)
    elif r.contact_cap is not None:
        raise RuleValidationError("rule 'contact_cap' needs the 'contacts' frame (customer_id, contacts)")

    # ---- explicit exclusions ----
    ci = oi = np.zeros(0, dtype=np.int64)
    if r.exclusions is not None:
        ex = _frame(r.exclusions, "exclusions", ("customer_id", "offer_id"))
        ci = cust.get_indexer(_int_col(ex, "customer_id", "exclusions"))
        oi = pd.Index(offer_ids).get_indexer(_int_col(ex, "offer_id", "exclusions"))
        ok = (ci >= 0) & (oi >= 0)  # pairs of other customers / unknown offers do not concern this mask
        ci, oi = ci[ok], oi[ok]
    order = np.argsort(ci, kind="stable")
    ptr = np.zeros(n_c + 1, dtype=np.int64)
    ptr[1:] = np.cumsum(np.bincount(ci, minlength=n_c))
    return CompiledRules(customer_index=cust, offer_ids=offer_ids, offer_ok=offer_ok, customer_ok=customer_ok,
                         excluded_ptr=ptr, excluded_offers=oi[order].astype(np.int64))


def rank_offers(scores, mask, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k feasible offers per customer: (indices [n_c, k] long, scores [n_c, k] float).

    scores: [n_customers, n_offers] float (tensor or array); NaN is allowed only at infeasible entries.
    mask: same shape, bool, True = feasible. Ties: lower offer index first. Slots beyond the number of
    feasible offers hold index -1 and score -inf.
    """
    s = scores.detach().cpu() if isinstance(scores, torch.Tensor) else torch.as_tensor(np.asarray(scores))
    m = mask.detach().cpu() if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask))
    if s.dim() != 2:
        raise UserInputError(f"scores: expected a [n_customers, n_offers] 2-D array, got shape {tuple(s.shape)}")
    if tuple(m.shape) != tuple(s.shape):
        raise UserInputError(f"mask: expected shape {tuple(s.shape)} like scores, got {tuple(m.shape)}")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise UserInputError(f"k must be an integer >= 1, got {k!r}")
    if not s.is_floating_point():
        s = s.to(torch.float32)
    m = m.bool()
    if torch.isnan(s[m]).any():
        raise UserInputError(f"scores: {int(torch.isnan(s[m]).sum())} feasible entries are NaN")
    masked = torch.where(m, s, torch.full_like(s, -math.inf))
    k_eff = min(int(k), s.shape[1])
    if k_eff == 0 or s.shape[0] == 0:
        return (torch.full((s.shape[0], int(k)), -1, dtype=torch.long),
                torch.full((s.shape[0], int(k)), -math.inf, dtype=s.dtype))
    # fast path: a row whose k-th best score is finite and shared by no other offer has exactly k candidates
    # (score >= the k-th); ordering just those by (score desc, offer index asc) is the exact answer
    kth = torch.topk(masked, k_eff, dim=1).values[:, -1:]
    cand = masked >= kth
    fast = (cand.sum(dim=1) == k_eff) & torch.isfinite(kth[:, 0])
    idx = torch.empty(s.shape[0], k_eff, dtype=torch.long)
    top = torch.empty(s.shape[0], k_eff, dtype=s.dtype)
    if fast.any():
        pos = cand[fast].nonzero()[:, 1].view(-1, k_eff)  # ascending offer index within each row
        vals = torch.gather(masked[fast], 1, pos)
        order = torch.sort(vals, dim=1, descending=True, stable=True).indices
        idx[fast] = torch.gather(pos, 1, order)
        top[fast] = torch.gather(vals, 1, order)
    slow = ~fast
    if slow.any():
        idx[slow], top[slow] = _rank_by_full_sort(masked[slow], m[slow], k_eff)
    if k_eff < k:
        pad = int(k) - k_eff
        idx = torch.cat([idx, torch.full((s.shape[0], pad), -1, dtype=idx.dtype)], dim=1)
        top = torch.cat([top, torch.full((s.shape[0], pad), -math.inf, dtype=top.dtype)], dim=1)
    return idx.long(), top


def _rank_by_full_sort(masked: torch.Tensor, m: torch.Tensor, k_eff: int) -> tuple[torch.Tensor, torch.Tensor]:
    """rank_offers for rows with ties at the k-th score or fewer than k feasible offers (-1 / -inf padding)."""
    # stable descending sort by score (equal scores keep offer order), then a stable sort that moves the
    # feasible offers first (a feasible -inf score still beats an infeasible offer)
    order = torch.sort(masked, dim=1, descending=True, stable=True).indices
    first = torch.sort(torch.gather(m, 1, order).to(torch.int8), dim=1, descending=True, stable=True).indices
    order = torch.gather(order, 1, first)[:, :k_eff]
    top = torch.gather(masked, 1, order)
    feasible = torch.gather(m, 1, order)
    idx = torch.where(feasible, order, torch.full_like(order, -1))
    return idx, torch.where(feasible, top, torch.full_like(top, -math.inf))
