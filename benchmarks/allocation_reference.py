"""The budgeted allocation as it was before the blocked rewrite of 2026-12 (deepromo/decide/allocation.py at
commit 8db7753), frozen: ``benchmarks/allocation.py`` times it beside the current code and
``tests/test_allocation.py`` checks that the current code returns the same plans. Not part of the package.
"""

from __future__ import annotations

import numpy as np

from deepromo.data.errors import UserInputError
from deepromo.decide.allocation import (  # the unchanged input checks and result type
    POLISH_MAX_CELLS,
    Allocation,
    _check_budget,
    _check_max_level,
    _check_segments,
)


def _check_matrices(value, cost) -> tuple[np.ndarray, np.ndarray]:
    value = np.asarray(value, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    if value.ndim != 2 or value.shape[1] < 1 or value.shape[0] < 1:
        raise UserInputError(f"value: expected a 2-D array [n customers, L levels] with n, L >= 1, got shape {value.shape}")
    if cost.shape != value.shape:
        raise UserInputError(f"cost: expected the shape of value {value.shape}, got {cost.shape}")
    if not np.isfinite(value).all():
        raise UserInputError("value: expected finite numbers (found NaN or inf)")
    if not np.isfinite(cost).all():
        raise UserInputError("cost: expected finite numbers (found NaN or inf)")
    if (cost < 0).any():
        raise UserInputError(f"cost: expected costs >= 0, found min {cost.min()!r}")
    if (value[:, 0] != 0).any():
        raise UserInputError("value: column 0 is 'no incentive' and must be 0 for every customer")
    if (cost[:, 0] != 0).any():
        raise UserInputError("cost: column 0 is 'no incentive' and must be 0 for every customer")
    return value, cost


# --------------------------------------------------------------------------- core


def _pick(vs: np.ndarray, cs: np.ndarray, mult) -> np.ndarray:
    """[k] argmax_j vs - mult * cs on cost-sorted columns (first max = cheapest among ties)."""
    row_mult = mult if np.ndim(mult) == 0 else np.asarray(mult)[:, None]
    score = cs * (-row_mult)
    score += vs
    return score.argmax(axis=1)


def _multiplier(lam: float, floor: np.ndarray | None):
    """Each customer's multiplier: max(lam, its segment's floor), or lam without segment caps."""
    return lam if floor is None else np.maximum(lam, floor)


def _row_take(matrix: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """[k] matrix[i, idx[i]] for each row i."""
    return np.take_along_axis(matrix, idx[:, None], axis=1)[:, 0]


def _budget_left(chosen_cost: np.ndarray, budget: float, codes=None, caps=None):
    """(global budget left, [S] segment caps left or None) after a plan whose customers cost ``chosen_cost`` [n]."""
    segment_left = None
    if codes is not None:
        capped = codes >= 0
        segment_left = caps - np.bincount(codes[capped], weights=chosen_cost[capped], minlength=len(caps))
    return budget - chosen_cost.sum(), segment_left


def _bisect(vs, cs, budget, floor=None, rtol=1e-9, max_iter=100):
    """Smallest lam >= 0 whose plan (multiplier max(lam, floor_i) per row) costs <= budget.

    vs, cs: [k, L] cost-sorted value / cost (disallowed cells have value -inf). floor: [k] or None.
    Returns lam_lo, lam_hi, choice_lo [k], choice_hi [k], iterations. lam_lo == lam_hi == 0 when the
    plan at lam = 0 is feasible; otherwise the lam_lo plan is infeasible and the lam_hi plan feasible.
    """

    def mult(lam, rows=None):
        if floor is None:
            return lam
        return np.maximum(lam, floor if rows is None else floor[rows])

    ch_lo = _pick(vs, cs, mult(0.0))
    if not np.isfinite(budget) or _row_take(cs, ch_lo).sum() <= budget:
        return 0.0, 0.0, ch_lo, ch_lo.copy(), 0
    # above the largest value/cost ratio every costly option scores below "no incentive" (score 0)
    pos = cs > 0
    ratio = np.max(np.where(pos, vs, 0.0) / np.where(pos, cs, 1.0), initial=0.0)
    lo, hi = 0.0, max(ratio, 0.0) * (1.0 + 1e-6) + 1e-300
    ch_hi = _pick(vs, cs, mult(hi))
    act = np.flatnonzero(ch_lo != ch_hi)
    fixed = _row_take(cs, ch_hi).sum() - _row_take(cs[act], ch_hi[act]).sum()
    va, ca = vs[act], cs[act]
    it = 0
    while it < max_iter and hi - lo > rtol * hi and len(act):
        it += 1
        mid = 0.5 * (lo + hi)
        ch = _pick(va, ca, mult(mid, act))
        if fixed + _row_take(ca, ch).sum() <= budget:
            hi = mid
            ch_hi[act] = ch
        else:
            lo = mid
            ch_lo[act] = ch
        same = ch_lo[act] == ch_hi[act]
        if same.any():
            fixed += _row_take(ca[same], ch_hi[act[same]]).sum()
            keep = ~same
            act, va, ca = act[keep], va[keep], ca[keep]
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
    dv = _row_take(vs[rows], target[rows]) - _row_take(vs[rows], choice[rows])
    dc = _row_take(cs[rows], target[rows]) - _row_take(cs[rows], choice[rows])
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


def _fill_leftover(choice, vs, cs, budget, codes=None, caps=None, max_rounds=50):
    """Spend what the budget has left: repeatedly give each customer the most valuable upgrade that
    still fits on its own, take them in Δvalue / Δcost order while the running total fits, repeat.
    Only ever increases the plan's value and keeps it feasible. Modifies ``choice`` in place.
    """
    rows = np.arange(len(choice))  # candidates only shrink: budgets left shrink and values only go up
    for _ in range(max_rounds):
        cur_c = _row_take(cs, choice)
        rem, seg_rem = _budget_left(cur_c, budget, codes, caps)
        lim = np.full(len(rows), rem)
        if codes is not None:
            cr = codes[rows]
            lim = np.where(cr >= 0, np.minimum(rem, seg_rem[np.maximum(cr, 0)]), rem)
        dc = cs[rows] - cur_c[rows, None]
        dv = vs[rows] - _row_take(vs[rows], choice[rows])[:, None]
        ok = (dc <= lim[:, None]) & (dv > 0)
        has = ok.any(axis=1)
        if not has.any():
            break
        rows, dc, dv, ok = rows[has], dc[has], dv[has], ok[has]
        dvr = np.where(ok, dv, -np.inf)
        best = dvr.argmax(axis=1)  # each candidate's most valuable upgrade that fits
        gv, gc = _row_take(dvr, best), _row_take(dc, best)
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
    Time: ~2 s for 1M customers x 8 levels on 2 cores (see docs/allocation.md).
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

    choice = _fill_towards_lower_multipliers(vs, cs, budget, choice_hi, _multiplier(lam_lo, floor_lo),
                                             _multiplier(lam_hi, floor_hi), codes, caps)
    if np.isfinite(budget) or segment_info is not None:
        choice = _fill_leftover(choice, vs, cs, budget, codes, caps)
        if polish is None:
            polish = n_customers * n_levels <= POLISH_MAX_CELLS
        if polish:
            choice = _polish(choice, vs, cs, budget, codes, caps)

    # the Lagrangian dual bound: the smaller of the bracket's two ends
    bound = _dual_bound(vs, cs, budget, lam_hi, floor_hi, choice_hi, codes, caps)
    if segment_info is None and lam_lo < lam_hi:
        bound = min(bound, _dual_bound(vs, cs, budget, lam_lo, None, _pick(vs, cs, lam_lo)))

    level = np.take_along_axis(order, choice[:, None], axis=1)[:, 0].astype(np.int64)
    customer_value, customer_cost = _row_take(vs, choice), _row_take(cs, choice)
    return Allocation(level=level, value=float(customer_value.sum()), cost=float(customer_cost.sum()),
                      lam=float(lam_hi), budget=budget, customer_value=customer_value, customer_cost=customer_cost,
                      bound=float(bound), segment_lam=segment_lam, n_iter=n_iter)


def _sort_levels_by_cost(value: np.ndarray, cost: np.ndarray, max_level: np.ndarray | None):
    """(order, vs, cs): each row's columns sorted by cost (stable), so that argmax's first maximum is the
    cheapest tied level. order [n, L]: the original column at each sorted position; vs / cs [n, L]: value and
    cost in that order, with the levels above ``max_level`` at value -inf."""
    order = np.argsort(cost, axis=1, kind="stable")
    cs = np.take_along_axis(cost, order, axis=1)
    vs = np.take_along_axis(value, order, axis=1)
    if max_level is not None:
        vs[order > max_level[:, None]] = -np.inf
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
        lam_lo, lam_hi, _, _, iterations = _bisect(vs[rows], cs[rows], caps[code], None, tol)
        floor_lo[rows], floor_hi[rows] = lam_lo, lam_hi
        segment_lam[label] = lam_hi
        n_iter += iterations
    return floor_lo, floor_hi, segment_lam, n_iter


def _fill_towards_lower_multipliers(vs, cs, budget, choice_hi, mult_lo, mult_hi, codes=None, caps=None):
    """The feasible plan ``choice_hi`` (at multipliers ``mult_hi``) greedily upgraded towards each customer's
    choice at the lower multipliers ``mult_lo`` while the budgets allow (:func:`_greedy_fill`); a new array."""
    target = choice_hi.copy()
    loose = np.flatnonzero(np.broadcast_to(mult_lo < mult_hi, (len(choice_hi),)))
    if len(loose):
        target[loose] = _pick(vs[loose], cs[loose], mult_lo if np.ndim(mult_lo) == 0 else mult_lo[loose])
    budget_left, segment_left = _budget_left(_row_take(cs, choice_hi), budget, codes, caps)
    return _greedy_fill(choice_hi.copy(), target, vs, cs, budget_left, codes, segment_left)


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
