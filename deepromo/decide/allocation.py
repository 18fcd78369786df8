"""Budgeted incentive allocation: one incentive level per customer, total expected cost <= budget.

:func:`allocate_budget` solves the multiple-choice knapsack by Lagrangian relaxation and a greedy fill (with
optional segment caps and per-customer level caps); :func:`solve_exact` is the MILP check, and the value / cost
matrices, ROI and baseline plans live here too. Problem, method and the optimality bound: docs/allocation.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from deepromo.data.errors import UserInputError

__all__ = [
    "Allocation", "allocate_budget", "solve_exact", "expected_value_and_cost", "plan_roi",
    "evaluate_plan", "uniform_plan", "random_plan", "COST_MODELS",
]

COST_MODELS = ("redemption", "contact")
POLISH_MAX_CELLS = 200_000  # polish=None polishes when n customers x L levels is at most this (a few ms to ~1 s)
BLOCK_ROWS = 16_384  # rows per block of the passes over [n, L]: 1 MB per float64 block at 8 levels, cache-sized


# --------------------------------------------------------------------------- result


@dataclass
class Allocation:
    """A plan: one level per customer.

    level: [n] int64, chosen column (0 = no incentive). value / cost: plan totals (money).
    lam: final global multiplier (money of value per money of cost; 0 when the budget does not bind).
    budget: the budget asked for. customer_value / customer_cost: [n] value and cost of each chosen
    level. bound: Lagrangian upper bound on the optimal value (nan for exact / baseline plans).
    segment_lam: {label: multiplier of that segment's cap}. n_iter: bisection iterations (all stages).
    """

    level: np.ndarray
    value: float
    cost: float
    lam: float
    budget: float
    customer_value: np.ndarray
    customer_cost: np.ndarray
    bound: float = float("nan")
    segment_lam: dict = field(default_factory=dict)
    n_iter: int = 0

    @property
    def n_targeted(self) -> int:
        """Number of customers given an incentive (level > 0)."""
        return int(np.count_nonzero(self.level))

    @property
    def gap_bound(self) -> float:
        """bound - value: how far below the optimum this plan can at most be (money)."""
        return float(self.bound - self.value)

    def to_frame(self, customer_ids=None, level_values=None) -> pd.DataFrame:
        """One row per customer: customer_id, level (column index), incentive (level_values[level],
        money; nan when level_values is None), expected_value, expected_cost.

        customer_ids: [n] ids (default 0..n-1). level_values: [L] incentive amount of each column.
        """
        n_customers = len(self.level)
        ids = np.arange(n_customers) if customer_ids is None else np.asarray(customer_ids)
        if ids.shape != (n_customers,):
            raise UserInputError(f"customer_ids: expected shape ({n_customers},), got {ids.shape}")
        if level_values is None:
            incentive = np.full(n_customers, np.nan)
        else:
            amounts = np.asarray(level_values, dtype=np.float64)
            if amounts.ndim != 1 or len(amounts) <= int(self.level.max(initial=0)):
                raise UserInputError(f"level_values: expected a 1-D array covering level {int(self.level.max(initial=0))}, "
                                 f"got shape {amounts.shape}")
            incentive = amounts[self.level]
        return pd.DataFrame({
            "customer_id": ids,
            "level": self.level.astype(np.int64),
            "incentive": incentive,
            "expected_value": self.customer_value,
            "expected_cost": self.customer_cost,
        })

    def to_parquet(self, path, customer_ids=None, level_values=None) -> Path:
        """Write :meth:`to_frame` to ``path`` (parquet, pyarrow); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.to_frame(customer_ids, level_values).to_parquet(path, index=False)
        return path


# --------------------------------------------------------------------------- validation


def _check_matrices(value, cost) -> tuple[np.ndarray, np.ndarray]:
    """value, cost as C-contiguous float64 [n, L] (copied only when they are not), checked in row blocks so that no
    [n, L] temporary is made."""
    value = np.ascontiguousarray(value, dtype=np.float64)
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    if value.ndim != 2 or value.shape[1] < 1 or value.shape[0] < 1:
        raise UserInputError(f"value: expected a 2-D array [n customers, L levels] with n, L >= 1, "
                             f"got shape {value.shape}")
    if cost.shape != value.shape:
        raise UserInputError(f"cost: expected the shape of value {value.shape}, got {cost.shape}")
    value_finite = cost_finite = cost_nonnegative = True
    for start in range(0, len(value), BLOCK_ROWS):
        value_block, cost_block = value[start:start + BLOCK_ROWS], cost[start:start + BLOCK_ROWS]
        value_finite &= bool(np.isfinite(value_block).all())
        cost_finite &= bool(np.isfinite(cost_block).all())
        cost_nonnegative &= not bool((cost_block < 0).any())
    if not value_finite:
        raise UserInputError("value: expected finite numbers (found NaN or inf)")
    if not cost_finite:
        raise UserInputError("cost: expected finite numbers (found NaN or inf)")
    if not cost_nonnegative:
        raise UserInputError(f"cost: expected costs >= 0, found min {cost.min()!r}")
    if (value[:, 0] != 0).any():
        raise UserInputError("value: column 0 is 'no incentive' and must be 0 for every customer")
    if (cost[:, 0] != 0).any():
        raise UserInputError("cost: column 0 is 'no incentive' and must be 0 for every customer")
    return value, cost


def _check_budget(budget, name: str = "budget") -> float:
    try:
        amount = float(budget)
    except (TypeError, ValueError):
        raise UserInputError(f"{name}: expected a number >= 0 (or np.inf), got {budget!r}") from None
    if np.isnan(amount) or amount < 0:
        raise UserInputError(f"{name}: expected a number >= 0 (or np.inf), got {budget!r}")
    return amount


def _check_max_level(max_level, n_customers: int, n_levels: int) -> np.ndarray | None:
    if max_level is None:
        return None
    caps = np.asarray(max_level)
    if caps.ndim == 0:
        caps = np.full(n_customers, caps)
    if caps.shape != (n_customers,):
        raise UserInputError(f"max_level: expected an int or an array of shape ({n_customers},), got shape {caps.shape}")
    if not np.issubdtype(caps.dtype, np.integer):
        if not (np.issubdtype(caps.dtype, np.floating) and np.isfinite(caps).all() and (caps == np.round(caps)).all()):
            raise UserInputError("max_level: expected integer level indices")
    caps = caps.astype(np.int64)
    if (caps < 0).any() or (caps > n_levels - 1).any():
        raise UserInputError(f"max_level: expected indices in 0..{n_levels - 1}, got range {caps.min()}..{caps.max()}")
    return caps


def _check_segments(segments, segment_caps, n_customers: int):
    """Returns (codes [n] int64, -1 = uncapped, labels list, caps [S] float64) or None."""
    if segment_caps is None or len(segment_caps) == 0:
        return None
    if segments is None:
        raise UserInputError("segments: required when segment_caps is given")
    segments = np.asarray(segments)
    if segments.shape != (n_customers,):
        raise UserInputError(f"segments: expected shape ({n_customers},), got {segments.shape}")
    if not isinstance(segment_caps, dict):
        raise UserInputError(f"segment_caps: expected a dict {{label: max total cost}}, got {type(segment_caps).__name__}")
    labels = list(segment_caps)
    caps = np.array([_check_budget(segment_caps[label], f"segment_caps[{label!r}]") for label in labels],
                    dtype=np.float64)
    codes = np.full(n_customers, -1, dtype=np.int64)
    for code, label in enumerate(labels):
        codes[segments == label] = code
    return codes, labels, caps


# --------------------------------------------------------------------------- core
#
# Every pass over the [n, L] matrices runs in blocks of BLOCK_ROWS rows into reused buffers: at 10M customers a
# full-size temporary is 640 MB, and allocating (page-faulting) those dominated the time. The arithmetic and
# the order of every sum are those of the unblocked code (benchmarks/allocation_reference.py), so the plans are
# bit-identical to it: [n]-long results are assembled block by block and reduced whole.


def _block_rows(matrix: np.ndarray, rows: np.ndarray | None, start: int, stop: int, out: np.ndarray) -> np.ndarray:
    """matrix[start:stop] (a view) or, with ``rows``, matrix[rows[start:stop]] gathered into ``out``."""
    if rows is None:
        return matrix[start:stop]
    return np.take(matrix, rows[start:stop], axis=0, out=out[:stop - start])


def _pick(vs: np.ndarray, cs: np.ndarray, mult, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(choice [k], its cost [k]): argmax_j vs - mult * cs per row, on cost-sorted columns (first max = cheapest
    among ties), for the rows ``rows`` [k] (default all n). mult: a number or [k] multipliers (money/money)."""
    n_levels = vs.shape[1]
    n_rows = len(vs) if rows is None else len(rows)
    choice = np.empty(n_rows, dtype=np.intp)
    chosen_cost = np.empty(n_rows)
    block = max(1, min(BLOCK_ROWS, n_rows))
    score, value_buf, cost_buf = (np.empty((block, n_levels)) for _ in range(3))
    flat_offset = np.arange(block) * n_levels
    scalar = np.ndim(mult) == 0
    for start in range(0, n_rows, block):
        stop = min(start + block, n_rows)
        value_block = _block_rows(vs, rows, start, stop, value_buf)
        cost_block = _block_rows(cs, rows, start, stop, cost_buf)
        row_mult = mult if scalar else mult[start:stop, None]
        block_score = np.multiply(cost_block, -row_mult, out=score[:stop - start])
        block_score += value_block
        np.argmax(block_score, axis=1, out=choice[start:stop])
        chosen_cost[start:stop] = cost_block.reshape(-1)[flat_offset[:stop - start] + choice[start:stop]]
    return choice, chosen_cost


def _max_ratio(vs: np.ndarray, cs: np.ndarray, rows: np.ndarray | None = None) -> float:
    """Largest value / cost over the cells with cost > 0 (0 if none), of the rows ``rows`` (default all)."""
    n_rows = len(vs) if rows is None else len(rows)
    block = max(1, min(BLOCK_ROWS, n_rows))
    value_buf, cost_buf = np.empty((block, vs.shape[1])), np.empty((block, vs.shape[1]))
    best = 0.0
    for start in range(0, n_rows, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n_rows)
        value_block = _block_rows(vs, rows, start, stop, value_buf)
        cost_block = _block_rows(cs, rows, start, stop, cost_buf)
        pos = cost_block > 0
        best = max(best, float(np.max(np.where(pos, value_block, 0.0) / np.where(pos, cost_block, 1.0))))
    return best


def _multiplier(lam: float, floor: np.ndarray | None):
    """Each customer's multiplier: max(lam, its segment's floor), or lam without segment caps."""
    return lam if floor is None else np.maximum(lam, floor)


def _row_take(matrix: np.ndarray, idx: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """[k] matrix[rows[i], idx[i]] (rows default 0..k-1); no copy of ``matrix`` when it is C-contiguous."""
    rows = np.arange(len(idx)) if rows is None else rows
    return matrix.reshape(-1)[rows * matrix.shape[1] + idx]


def _budget_left(chosen_cost: np.ndarray, budget: float, codes=None, caps=None):
    """(global budget left, [S] segment caps left or None) after a plan whose customers cost ``chosen_cost`` [n]."""
    segment_left = None
    if codes is not None:
        capped = codes >= 0
        segment_left = caps - np.bincount(codes[capped], weights=chosen_cost[capped], minlength=len(caps))
    return budget - chosen_cost.sum(), segment_left


def _bisect(vs, cs, budget, floor=None, rtol=1e-9, max_iter=100, rows=None):
    """Smallest lam >= 0 whose plan (multiplier max(lam, floor_i) per row) costs <= budget.

    vs, cs: [n, L] cost-sorted value / cost (disallowed cells have value -inf); rows: [k] the rows bisected
    (default all n); floor: [k] or None. Returns lam_lo, lam_hi, choice_lo [k], choice_hi [k], iterations.
    lam_lo == lam_hi == 0 when the plan at lam = 0 is feasible; otherwise the lam_lo plan is infeasible and the
    lam_hi plan feasible.
    """

    def mult(lam, active=None):
        if floor is None:
            return lam
        return np.maximum(lam, floor if active is None else floor[active])

    ch_lo, cost_lo = _pick(vs, cs, mult(0.0), rows)
    if not np.isfinite(budget) or cost_lo.sum() <= budget:
        return 0.0, 0.0, ch_lo, ch_lo.copy(), 0
    # above the largest value/cost ratio every costly option scores below "no incentive" (score 0)
    ratio = _max_ratio(vs, cs, rows)
    lo, hi = 0.0, max(ratio, 0.0) * (1.0 + 1e-6) + 1e-300
    ch_hi, cost_hi = _pick(vs, cs, mult(hi), rows)
    act = np.flatnonzero(ch_lo != ch_hi)
    fixed = cost_hi.sum() - cost_hi[act].sum()  # the rows whose choice cannot change any more
    it = 0
    while it < max_iter and hi - lo > rtol * hi and len(act):
        it += 1
        mid = 0.5 * (lo + hi)
        ch, ch_cost = _pick(vs, cs, mult(mid, act), act if rows is None else rows[act])
        if fixed + ch_cost.sum() <= budget:
            hi = mid
            ch_hi[act] = ch
        else:
            lo = mid
            ch_lo[act] = ch
        same = ch_lo[act] == ch_hi[act]
        if same.any():
            fixed += ch_cost[same].sum()
            act = act[~same]
    return lo, hi, ch_lo, ch_hi, it


def _greedy_fill(choice, target, vs, cs, rem, codes=None, seg_rem=None, max_rounds=10_000):
    """Upgrade rows from ``choice`` to ``target`` by (Δvalue / Δcost) descending while budgets allow.

    rem: global budget left; codes [k] segment code (-1 = uncapped) and seg_rem [S] caps left.
    Each round accepts every candidate whose running total (over the remaining candidates, in ratio
    order) still fits every budget, so round 1 is the plain greedy prefix; later rounds skip over
    candidates that no longer fit. Modifies ``choice`` in place.
    """
    rows = np.flatnonzero(choice != target)
    if len(rows) == 0:
        return choice
    dv = _row_take(vs, target[rows], rows) - _row_take(vs, choice[rows], rows)
    dc = _row_take(cs, target[rows], rows) - _row_take(cs, choice[rows], rows)
    good = dv > 0
    rows, dv, dc = rows[good], dv[good], dc[good]
    with np.errstate(divide="ignore"):
        ratio = np.where(dc > 0, dv / np.where(dc > 0, dc, 1.0), np.inf)
    order = np.argsort(-ratio, kind="stable")
    rows, dc = rows[order], dc[order]
    seg = None if codes is None else codes[rows]
    for _ in range(max_rounds):
        if len(rows) == 0:
            break
        fits = dc <= rem
        if seg is not None:
            capped = seg >= 0
            fits &= ~capped | (dc <= seg_rem[np.where(capped, seg, 0)])
        rows, dc = rows[fits], dc[fits]
        if seg is not None:
            seg = seg[fits]
        if len(rows) == 0:
            break
        ok = np.cumsum(dc) <= rem
        if seg is not None:
            for segment in np.unique(seg[seg >= 0]):
                in_segment = seg == segment
                ok[in_segment] &= np.cumsum(dc[in_segment]) <= seg_rem[segment]
        choice[rows[ok]] = target[rows[ok]]
        rem -= dc[ok].sum()
        if seg is not None:
            acc = ok & (seg >= 0)
            seg_rem -= np.bincount(seg[acc], weights=dc[acc], minlength=len(seg_rem))
            seg = seg[~ok]
        rows, dc = rows[~ok], dc[~ok]
    return choice


def _best_upgrades(vs, cs, choice, chosen_cost, rem, seg_rem, codes, rows):
    """Each candidate's most valuable upgrade that fits its budgets on its own, for the candidates that have one:
    (rows [k], level [k], its Δvalue [k], its Δcost [k]). rows: the candidates, None = every row; scanned in
    blocks, so only [k]-long results outlive a block (at 10M customers k can be millions)."""
    n_rows = len(vs) if rows is None else len(rows)
    block = max(1, min(BLOCK_ROWS, n_rows))
    value_buf, cost_buf = np.empty((block, vs.shape[1])), np.empty((block, vs.shape[1]))
    parts = []
    for start in range(0, n_rows, block):
        stop = min(start + block, n_rows)
        block_rows = np.arange(start, stop) if rows is None else rows[start:stop]
        cost_block = _block_rows(cs, rows, start, stop, cost_buf)
        value_block = _block_rows(vs, rows, start, stop, value_buf)
        lim = np.full(len(block_rows), rem)
        if codes is not None:
            cr = codes[block_rows]
            lim = np.where(cr >= 0, np.minimum(rem, seg_rem[np.maximum(cr, 0)]), rem)
        dc = cost_block - chosen_cost[block_rows, None]
        dv = value_block - _row_take(vs, choice[block_rows], block_rows)[:, None]
        ok = (dc <= lim[:, None]) & (dv > 0)
        has = ok.any(axis=1)
        if not has.any():
            continue
        dvr = np.where(ok[has], dv[has], -np.inf)
        best = dvr.argmax(axis=1)
        parts.append((block_rows[has], best, _row_take(dvr, best), _row_take(dc[has], best)))
    if not parts:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp), np.empty(0), np.empty(0)
    return tuple(np.concatenate(columns) for columns in zip(*parts))


def _fill_leftover(choice, vs, cs, budget, codes=None, caps=None, max_rounds=50):
    """Spend what the budget has left: repeatedly give each customer the most valuable upgrade that
    still fits on its own, take them in Δvalue / Δcost order while the running total fits, repeat.
    Only ever increases the plan's value and keeps it feasible. Modifies ``choice`` in place.
    """
    chosen_cost = _row_take(cs, choice)
    rows = None  # candidates only shrink: budgets left shrink and values only go up
    for _ in range(max_rounds):
        rem, seg_rem = _budget_left(chosen_cost, budget, codes, caps)
        rows, best, gv, gc = _best_upgrades(vs, cs, choice, chosen_cost, rem, seg_rem, codes, rows)
        if not len(rows):
            break
        with np.errstate(divide="ignore"):
            ratio = np.where(gc > 0, gv / np.where(gc > 0, gc, 1.0), np.inf)
        order = np.argsort(-ratio, kind="stable")
        ranked, best, gc = rows[order], best[order], gc[order]
        acc = np.cumsum(gc) <= rem
        if codes is not None:
            seg = codes[ranked]
            for segment in np.unique(seg[seg >= 0]):
                in_segment = seg == segment
                acc[in_segment] &= np.cumsum(gc[in_segment]) <= seg_rem[segment]
        acc[0] = True  # fits on its own
        choice[ranked[acc]] = best[acc]
        chosen_cost[ranked[acc]] = _row_take(cs, best[acc], ranked[acc])
    return choice


def _polish(choice, vs, cs, budget, codes=None, caps=None, n_candidates=60, max_rounds=3):
    """Local search at the margin ("add one, drop several"): for the ``n_candidates`` best upgrades (i, j) not in
    the plan (by Δvalue / Δcost), force it, drop targeted customers to level 0 in ascending
    value / cost order until every budget fits again, refill (:func:`_fill_leftover`); keep the
    trial if it is better. Repeats while it improves (at most ``max_rounds``).
    """
    best_v = _row_take(vs, choice).sum()
    for _ in range(max_rounds):
        cur_v, cur_c = _row_take(vs, choice), _row_take(cs, choice)
        dv = vs - cur_v[:, None]
        dc = cs - cur_c[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(dv > 0, dv / np.maximum(dc, 1e-300), -np.inf)
        flat = np.argsort(-ratio, axis=None, kind="stable")[:n_candidates]
        flat = flat[np.isfinite(ratio.reshape(-1)[flat])]
        improved = False
        for flat_index in flat:
            i, j = divmod(int(flat_index), vs.shape[1])
            trial = choice.copy()
            trial[i] = j
            tc = _row_take(cs, trial)
            over = tc.sum() - budget
            seg_over = 0.0
            if codes is not None and codes[i] >= 0:
                seg_over = tc[codes == codes[i]].sum() - caps[codes[i]]
            if over > 0 or seg_over > 0:
                drop = np.flatnonzero(tc > 0)
                drop = drop[drop != i]
                drop = drop[np.argsort(_row_take(vs[drop], trial[drop]) / tc[drop], kind="stable")]
                need = int(np.searchsorted(np.cumsum(tc[drop]), over - 1e-12, side="left")) + 1 if over > 0 else 0
                if seg_over > 0:
                    in_s = codes[drop] == codes[i]
                    k_s = int(np.searchsorted(np.cumsum(np.where(in_s, tc[drop], 0.0)), seg_over - 1e-12,
                                              side="left")) + 1
                    need = max(need, k_s)
                if need > len(drop):
                    continue
                trial[drop[:need]] = 0
            trial = _fill_leftover(trial, vs, cs, budget, codes, caps)
            tv = _row_take(vs, trial).sum()
            if tv > best_v + 1e-12 * max(1.0, abs(best_v)):
                choice, best_v, improved = trial, tv, True
                break
        if not improved:
            break
    return choice


def allocate_budget(value, cost, budget, *, segments=None, segment_caps=None, max_level=None,
                    tol=1e-9, polish=None) -> Allocation:
    """Choose one level per customer maximising sum value subject to sum cost <= budget.

    value: [n, L] value of giving customer i level j (money; what is maximised, e.g. the incremental
    profit of :func:`expected_value_and_cost`); column 0 = no incentive, must be 0.
    cost: [n, L] expected cost (money, >= 0); column 0 must be 0.
    budget: max total expected cost (>= 0; np.inf = unrestricted, each customer takes its argmax).
    segments: [n] labels, with segment_caps {label: max total cost of that segment}. Each capped
    segment s gets its own multiplier lam_s, bisected on its cap alone; customer i in s then uses
    max(lam, lam_s) and lam is bisected on the global budget. This is the dual optimum: for a fixed
    lam the dual separates by segment, and the best total multiplier of segment s is max(lam, lam_s).
    Uncapped labels (and labels missing from segment_caps) only count towards the global budget.
    max_level: fairness cap, an int or [n] ints: customer i gets no level above max_level[i].
    tol: relative width lam_hi - lam_lo at which bisection stops (at most 100 iterations).
    polish: after the greedy fill, spend any budget left on the best single upgrades that fit
    (always), then (polish=True) an "add one, drop several" local search over the 60 best upgrades not
    in the plan: force one, drop the lowest-ratio customers until the budgets fit, refill, keep if better.
    Default None = polish only when n * L <= POLISH_MAX_CELLS (200,000; a few ms to ~1 s); it matters
    on small instances where one customer is a large share of the value.

    Returns an :class:`Allocation`. The plan is always feasible. Its shortfall from the optimum is at
    most about one customer's value (the one the greedy fill cannot fit); ``Allocation.bound`` is a
    certified upper bound on the optimum. Ties between levels go to the cheaper level.
    Time and memory, linear in n (2-core dev machine, benchmarks/results/allocation.md): 1M customers x 8 levels
    1.1-1.5 s, 10M ~16 s and ~1 GB beyond the 1.2 GB inputs when each row's costs rise with the level; when they
    do not, the rows are sorted into copies first (10M: about the same time, ~2.2 GB beyond the inputs).
    """
    value, cost = _check_matrices(value, cost)
    n_customers, n_levels = value.shape
    budget = _check_budget(budget)
    max_level = _check_max_level(max_level, n_customers, n_levels)
    segment_info = _check_segments(segments, segment_caps, n_customers)
    tol = float(tol)
    if not (tol > 0):
        raise UserInputError(f"tol: expected a number > 0, got {tol!r}")

    order, vs, cs = _sort_levels_by_cost(value, cost, max_level)
    codes = caps = floor_lo = floor_hi = None
    segment_lam, n_iter = {}, 0
    if segment_info is not None:
        codes, labels, caps = segment_info
        floor_lo, floor_hi, segment_lam, n_iter = _segment_multipliers(vs, cs, codes, labels, caps, tol)
    lam_lo, lam_hi, _, choice_hi, iterations = _bisect(vs, cs, budget, floor_hi, tol)
    n_iter += iterations

    # every customer's choice at the lower multipliers: the greedy fill's targets
    target = _choices_at_lower_multipliers(vs, cs, choice_hi, _multiplier(lam_lo, floor_lo),
                                           _multiplier(lam_hi, floor_hi))
    budget_left, segment_left = _budget_left(_row_take(cs, choice_hi), budget, codes, caps)
    choice = _greedy_fill(choice_hi.copy(), target, vs, cs, budget_left, codes, segment_left)
    if np.isfinite(budget) or segment_info is not None:
        choice = _fill_leftover(choice, vs, cs, budget, codes, caps)
        if polish is None:
            polish = n_customers * n_levels <= POLISH_MAX_CELLS
        if polish:
            choice = _polish(choice, vs, cs, budget, codes, caps)

    # the Lagrangian dual bound: the smaller of the bracket's two ends
    bound = _dual_bound(vs, cs, budget, lam_hi, floor_hi, choice_hi, codes, caps)
    if segment_info is None and lam_lo < lam_hi:  # then ``target`` is the plan at lam_lo for every customer
        bound = min(bound, _dual_bound(vs, cs, budget, lam_lo, None, target))

    level = (choice if order is None else _row_take(order, choice)).astype(np.int64)
    customer_value, customer_cost = _row_take(vs, choice), _row_take(cs, choice)
    return Allocation(level=level, value=float(customer_value.sum()), cost=float(customer_cost.sum()),
                      lam=float(lam_hi), budget=budget, customer_value=customer_value, customer_cost=customer_cost,
                      bound=float(bound), segment_lam=segment_lam, n_iter=n_iter)


def _sort_levels_by_cost(value: np.ndarray, cost: np.ndarray, max_level: np.ndarray | None):
    """(order, vs, cs): each row's columns sorted by cost (stable), so that argmax's first maximum is the
    cheapest tied level. order [n, L]: the original column at each sorted position, None when every row's costs
    are already non-decreasing (then vs / cs are value / cost themselves: no copies); vs / cs [n, L]: value and
    cost in that order, with the levels above ``max_level`` at value -inf (vs is then a copy)."""
    n_customers, n_levels = cost.shape
    blocks = range(0, n_customers, BLOCK_ROWS)
    if all(bool((cost[s:s + BLOCK_ROWS, 1:] >= cost[s:s + BLOCK_ROWS, :-1]).all()) for s in blocks):
        if max_level is None:
            return None, value, cost
        vs = value.copy()
        for s in blocks:
            vs[s:s + BLOCK_ROWS][np.arange(n_levels) > max_level[s:s + BLOCK_ROWS, None]] = -np.inf
        return None, vs, cost
    order = np.empty(cost.shape, dtype=np.int8 if n_levels <= 127 else np.int64)
    vs, cs = np.empty_like(value), np.empty_like(cost)
    for s in blocks:
        block_order = np.argsort(cost[s:s + BLOCK_ROWS], axis=1, kind="stable")
        order[s:s + BLOCK_ROWS] = block_order
        cs[s:s + BLOCK_ROWS] = np.take_along_axis(cost[s:s + BLOCK_ROWS], block_order, axis=1)
        vs[s:s + BLOCK_ROWS] = np.take_along_axis(value[s:s + BLOCK_ROWS], block_order, axis=1)
        if max_level is not None:
            vs[s:s + BLOCK_ROWS][block_order > max_level[s:s + BLOCK_ROWS, None]] = -np.inf
    return order, vs, cs


def _segment_multipliers(vs, cs, codes, labels, caps, tol):
    """Each capped segment's multiplier, bisected on its cap alone.

    Returns floor_lo, floor_hi: [n] the (lam_lo, lam_hi) bracket of each customer's segment (0 outside
    capped segments); {label: lam_hi of that segment} (0 for a segment without customers); iterations.
    """
    floor_lo, floor_hi = np.zeros(len(codes)), np.zeros(len(codes))
    segment_lam, n_iter = {}, 0
    for code, label in enumerate(labels):
        rows = np.flatnonzero(codes == code)
        if len(rows) == 0:
            segment_lam[label] = 0.0
            continue
        lam_lo, lam_hi, _, _, iterations = _bisect(vs, cs, caps[code], None, tol, rows=rows)
        floor_lo[rows], floor_hi[rows] = lam_lo, lam_hi
        segment_lam[label] = lam_hi
        n_iter += iterations
    return floor_lo, floor_hi, segment_lam, n_iter


def _choices_at_lower_multipliers(vs, cs, choice_hi, mult_lo, mult_hi) -> np.ndarray:
    """[n] ``choice_hi`` (the plan at multipliers ``mult_hi``) with every customer whose multiplier is lower in
    ``mult_lo`` re-picked there; a new array."""
    target = choice_hi.copy()
    if np.ndim(mult_lo) == 0 and np.ndim(mult_hi) == 0:
        if mult_lo < mult_hi:
            target = _pick(vs, cs, mult_lo)[0]
        return target
    loose = np.flatnonzero(np.broadcast_to(mult_lo < mult_hi, (len(choice_hi),)))
    if len(loose):
        target[loose] = _pick(vs, cs, mult_lo if np.ndim(mult_lo) == 0 else mult_lo[loose], loose)[0]
    return target


def _dual_bound(vs, cs, budget, lam, floor, choice, codes=None, caps=None) -> float:
    """Lagrangian dual value at global multiplier ``lam`` (and segment floors): sum_i (v - m_i c)[i, choice_i]
    + lam * budget + sum_s mu_s * cap_s with m_i = max(lam, floor_i) and mu_s = max(floor_s - lam, 0);
    ``choice`` must be the argmax plan at those multipliers."""
    dual = (_row_take(vs, choice) - _multiplier(lam, floor) * _row_take(cs, choice)).sum()
    if lam > 0:
        dual += lam * budget
    if codes is not None:
        mu = np.maximum(floor - lam, 0.0)
        for code in range(len(caps)):
            in_segment = codes == code
            if in_segment.any() and mu[in_segment][0] > 0:
                dual += mu[in_segment][0] * caps[code]
    return dual


def evaluate_plan(level, value, cost) -> tuple[float, float]:
    """(total value, total cost) of a plan ``level`` [n] on value / cost matrices [n, L]."""
    value, cost = _check_matrices(value, cost)
    level = _check_level(level, *value.shape)
    return float(_row_take(value, level).sum()), float(_row_take(cost, level).sum())


def _check_level(level, n_customers, n_levels) -> np.ndarray:
    level = np.asarray(level)
    if level.shape != (n_customers,) or not np.issubdtype(level.dtype, np.integer):
        raise UserInputError(f"level: expected an int array of shape ({n_customers},), got {level.dtype} {level.shape}")
    if len(level) and (level.min() < 0 or level.max() >= n_levels):
        raise UserInputError(f"level: expected indices in 0..{n_levels - 1}")
    return level.astype(np.int64)


# --------------------------------------------------------------------------- exact


def solve_exact(value, cost, budget, time_limit=60, *, segments=None, segment_caps=None,
                max_level=None) -> Allocation:
    """Exact plan by mixed-integer programming (``scipy.optimize.milp``, HiGHS) for small instances.

    Binary x_ij, sum_j x_ij = 1 per customer, sum_ij cost_ij x_ij <= budget (plus one row per capped
    segment; max_level fixes x_ij = 0 above the cap). time_limit: seconds; if HiGHS stops at the limit
    the best plan found is returned (``bound`` is then HiGHS's dual bound, else the optimum).
    Raises RuntimeError when no plan was found.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix, csr_matrix, vstack

    value, cost = _check_matrices(value, cost)
    n_customers, n_levels = value.shape
    budget = _check_budget(budget)
    max_level = _check_max_level(max_level, n_customers, n_levels)
    segment_info = _check_segments(segments, segment_caps, n_customers)
    n_vars = n_customers * n_levels
    rows = np.repeat(np.arange(n_customers), n_levels)
    one_per_customer = coo_matrix((np.ones(n_vars), (rows, np.arange(n_vars))), shape=(n_customers, n_vars)).tocsr()
    constraints = [LinearConstraint(one_per_customer, 1, 1)]
    if np.isfinite(budget):
        constraints.append(LinearConstraint(csr_matrix(cost.reshape(1, -1)), -np.inf, budget))
    if segment_info is not None:
        codes, _, caps = segment_info
        segment_rows = [csr_matrix(np.where((codes == code)[:, None], cost, 0.0).reshape(1, -1))
                        for code in range(len(caps))]
        constraints.append(LinearConstraint(vstack(segment_rows).tocsr(), -np.inf, caps))
    upper = np.ones((n_customers, n_levels))
    if max_level is not None:
        upper[np.arange(n_levels)[None, :] > max_level[:, None]] = 0.0
    res = milp(-value.reshape(-1), constraints=constraints, integrality=np.ones(n_vars),
               bounds=Bounds(0, upper.reshape(-1)), options={"time_limit": float(time_limit), "disp": False})
    if res.x is None:
        raise RuntimeError(f"solve_exact: no plan found ({res.message})")
    level = res.x.reshape(n_customers, n_levels).argmax(axis=1).astype(np.int64)
    customer_value, customer_cost = _row_take(value, level), _row_take(cost, level)
    bound = (-float(getattr(res, "mip_dual_bound", np.nan) or np.nan) if res.status == 1
             else float(customer_value.sum()))
    return Allocation(level=level, value=float(customer_value.sum()), cost=float(customer_cost.sum()),
                      lam=float("nan"), budget=budget, customer_value=customer_value, customer_cost=customer_cost,
                      bound=bound)


# --------------------------------------------------------------------------- value, cost, ROI


def _check_p_levels_margin(p, levels, margin, cost_model, contact_cost):
    """(p [n, L], levels [L], margin [n], contact_cost) as float64, checked."""
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1:
        raise UserInputError(f"p: expected a 2-D array [n customers, L levels], got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise UserInputError("p: expected probabilities in [0, 1]")
    n_customers, n_levels = p.shape
    amounts = np.asarray(levels, dtype=np.float64)
    if amounts.shape != (n_levels,):
        raise UserInputError(f"levels: expected shape ({n_levels},) (one amount per column of p), got {amounts.shape}")
    if not np.isfinite(amounts).all() or (amounts < 0).any() or amounts[0] != 0:
        raise UserInputError("levels: expected finite amounts >= 0 with levels[0] == 0 (no incentive)")
    margins = np.asarray(margin, dtype=np.float64)
    if margins.ndim == 0:
        margins = np.full(n_customers, float(margins))
    if margins.shape != (n_customers,):
        raise UserInputError(f"margin: expected a number or shape ({n_customers},), got {margins.shape}")
    if not np.isfinite(margins).all():
        raise UserInputError("margin: expected finite numbers")
    if cost_model not in COST_MODELS:
        raise UserInputError(f"cost_model: expected one of {COST_MODELS}, got {cost_model!r}")
    contact = float(contact_cost)
    if not np.isfinite(contact) or contact < 0:
        raise UserInputError(f"contact_cost: expected a finite number >= 0, got {contact_cost!r}")
    return p, amounts, margins, contact


def _revenue_and_cost(p, levels, margin, cost_model, contact_cost):
    """([n, L] incremental revenue, [n, L] expected cost); see :func:`expected_value_and_cost`."""
    revenue = (p - p[:, :1]) * margin[:, None]
    targeted = (np.arange(p.shape[1]) > 0).astype(np.float64)[None, :]
    if cost_model == "redemption":
        cost = levels[None, :] * p + contact_cost * targeted
    else:
        cost = np.broadcast_to((levels[None, :] + contact_cost) * targeted, p.shape).copy()
    return revenue, cost


def expected_value_and_cost(p, levels, margin, cost_model="redemption", contact_cost=0.0):
    """Value (expected incremental profit) and expected incentive cost per customer and level.

    p: [n, L] purchase probability of customer i at incentive column j (column 0 = no incentive).
    levels: [L] incentive amount of each column (money per redemption / per contact), levels[0] = 0.
    margin: number or [n], revenue margin of one purchase before the incentive (money).
    cost_model:
      "redemption" (coupon paid when used):  cost_ij = levels_j * p_ij + contact_cost * [j > 0]
      "contact" (paid to everyone contacted): cost_ij = (levels_j + contact_cost) * [j > 0]
    contact_cost: fixed cost per contacted (level > 0) customer (money, >= 0).

    Returns (value, cost), both [n, L] float64, with
      incremental revenue  r_ij = (p_ij - p_i0) * margin_i
      value_ij = r_ij - cost_ij   (expected incremental profit; column 0 is 0)
    Note the redemption cost counts customers who would have bought anyway: they redeem too.
    With this value, :func:`allocate_budget` maximises total incremental profit subject to total
    expected cost <= budget, and plan ROI = profit / cost (see :func:`plan_roi`).
    """
    p, levels, margin, contact_cost = _check_p_levels_margin(p, levels, margin, cost_model, contact_cost)
    revenue, cost = _revenue_and_cost(p, levels, margin, cost_model, contact_cost)
    return revenue - cost, cost


def plan_roi(level, p_true, levels, margin, cost_model="redemption", contact_cost=0.0) -> dict:
    """ROI of a plan judged on the TRUE response probabilities (same definitions as
    :func:`expected_value_and_cost`), so plans built from any model's predictions are comparable.

    level: [n] chosen column per customer. Returns {incremental_revenue, cost, profit, roi, n_targeted}
    with incremental_revenue = sum_i (p_true[i, level_i] - p_true[i, 0]) * margin_i (money),
    cost = sum_i cost_true[i, level_i] (money), profit = incremental_revenue - cost,
    roi = profit / cost (DESIGN §6: (incremental revenue - incentive cost) / incentive cost; nan when
    cost == 0), n_targeted = number of customers with level > 0.
    """
    p, levels, margin, contact_cost = _check_p_levels_margin(p_true, levels, margin, cost_model, contact_cost)
    level = _check_level(level, *p.shape)
    revenue, cost = _revenue_and_cost(p, levels, margin, cost_model, contact_cost)
    total_revenue = float(_row_take(revenue, level).sum())
    total_cost = float(_row_take(cost, level).sum())
    return {
        "incremental_revenue": total_revenue,
        "cost": total_cost,
        "profit": total_revenue - total_cost,
        "roi": (total_revenue - total_cost) / total_cost if total_cost > 0 else float("nan"),
        "n_targeted": int(np.count_nonzero(level)),
    }


# --------------------------------------------------------------------------- baselines


def _prefix_within_budget(order: np.ndarray, cost_in_order: np.ndarray, budget: float) -> np.ndarray:
    """Positions (into order) of the customers taken: the longest prefix whose cost fits."""
    n_taken = int(np.searchsorted(np.cumsum(cost_in_order), budget, side="right"))
    return order[:n_taken]


def uniform_plan(n, level_index, cost_row_estimate, budget, rng) -> np.ndarray:
    """Same incentive for everyone: customers in random order get ``level_index`` until the budget binds.

    n: number of customers. level_index: column given (>= 1). cost_row_estimate: number or [n],
    the planner's expected cost of that level per customer (money, >= 0). budget: >= 0 or np.inf.
    rng: np.random.Generator (or seed). Returns level [n] int64 (0 = not reached).
    Stops at the first customer that no longer fits (a campaign sent until the money runs out).
    """
    n = int(n)
    column = int(level_index)
    if column < 1:
        raise UserInputError(f"level_index: expected a column >= 1, got {level_index!r}")
    cost = np.asarray(cost_row_estimate, dtype=np.float64)
    cost = np.full(n, float(cost)) if cost.ndim == 0 else cost
    if cost.shape != (n,) or not np.isfinite(cost).all() or (cost < 0).any():
        raise UserInputError(f"cost_row_estimate: expected a number or [{n}] finite costs >= 0")
    budget = _check_budget(budget)
    rng = np.random.default_rng(rng)
    order = rng.permutation(n)
    level = np.zeros(n, dtype=np.int64)
    level[_prefix_within_budget(order, cost[order], budget)] = column
    return level


def random_plan(cost, budget, rng, max_level=None) -> np.ndarray:
    """Random levels in random order until the budget binds.

    cost: [n, L] expected cost estimate (column 0 = 0). Each customer draws a level uniformly from
    1..max_level_i (default L - 1); customers in random order are given it while the budget allows
    (stops at the first that does not fit). Returns level [n] int64.
    """
    cost = np.asarray(cost, dtype=np.float64)
    _check_matrices(np.zeros_like(cost), cost)
    n_customers, n_levels = cost.shape
    if n_levels < 2:
        raise UserInputError(f"cost: expected at least 2 levels, got shape {cost.shape}")
    budget = _check_budget(budget)
    max_level = _check_max_level(max_level, n_customers, n_levels)
    top = np.full(n_customers, n_levels - 1) if max_level is None else max_level
    rng = np.random.default_rng(rng)
    draw = np.where(top > 0, 1 + np.floor(rng.random(n_customers) * np.maximum(top, 1)).astype(np.int64), 0)
    order = rng.permutation(n_customers)
    taken = _prefix_within_budget(order, _row_take(cost, draw)[order], budget)
    level = np.zeros(n_customers, dtype=np.int64)
    level[taken] = draw[taken]
    return level
