"""Headroom of each market structure: what an oracle that sees the latent gains over a model that cannot.

- cycles (purchase task, rolling points every 14 days, 14-day horizon, time split): gradient boosting on the
  view's aggregates vs the same with the true cycle (rate, position in the cycle, expected purchases over the
  horizon) and churn state; in the default world and with cycles off.
- affinity (ranking task, the offer graph's time split): random, popularity and the true-affinity ranker (the
  expected redemption propensity of each offer from the latent affinity and preferences); with affinity off too.
- prices (simulator, 14 days from the same state): the best uniform price change vs a per-customer price change
  chosen with the true elasticities.
- churn (simulator, 60 days): retention messages to the 20 % most inactive customers (what the log shows) vs to the
  20 % with the highest true churn hazard.
Each row: mean over world seeds, the paired difference with a 95 % CI (bootstrap over seeds and rows/customers).

    python benchmarks/world_headroom.py [--seeds 3] [--customers 20000]
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, write_results  # noqa: E402

from deepromo.data.market import params as P  # noqa: E402
from deepromo.data.sources.synthetic import generate_world  # noqa: E402

N_BOOT = int(__import__("os").environ.get("HEADROOM_BOOT", 1000))


def paired_ci(per_seed_a: list[np.ndarray], per_seed_b: list[np.ndarray], metric, rng) -> tuple[float, float, float]:
    """Mean over seeds of metric(b) - metric(a) and a two-level bootstrap 95 % CI (seeds, then rows inside a seed)."""
    diffs = [metric(b) - metric(a) for a, b in zip(per_seed_a, per_seed_b)]
    boots = []
    for _ in range(N_BOOT):
        seeds = rng.integers(0, len(diffs), len(diffs))
        vals = []
        for s in seeds:
            n = len(per_seed_a[s][0]) if isinstance(per_seed_a[s], tuple) else len(per_seed_a[s])
            rows = rng.integers(0, n, n)
            vals.append(metric(_take(per_seed_b[s], rows)) - metric(_take(per_seed_a[s], rows)))
        boots.append(np.mean(vals))
    return float(np.mean(diffs)), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def _take(x, rows):
    return tuple(v[rows] for v in x) if isinstance(x, tuple) else x[rows]


# ---------------------------------------------------------------------------------------------- cycles


def purchase_headroom(seed: int, n: int, structures) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    from deepromo.data.views import build_view

    world = generate_world(n, seed=seed, structures=structures)
    view = build_view("purchase", world, points_every_days=14)
    f = view.frame
    truth = world.truth.set_index("customer_id").loc[f["customer_id"]]
    rate = truth["organic_rate"].to_numpy()
    k = truth["cycle_shape"].to_numpy()
    theta = 1.0 / (rate * np.array([math.gamma(1 + 1 / v) for v in k]))
    tau = f["recency_days"].to_numpy(dtype=float)
    horizon = 14.0
    expected = ((tau + horizon) / theta) ** k - (tau / theta) ** k
    alive = (truth["churn_day"].to_numpy() > f["as_of"].to_numpy()).astype(float)
    aggregates = f[view.numeric].to_numpy(dtype=float)
    cats = np.column_stack([f[c].cat.codes.to_numpy() if hasattr(f[c], "cat") else f[c].to_numpy()
                            for c in view.categorical]) if view.categorical else np.zeros((len(f), 0))
    base = np.column_stack([aggregates, cats])
    oracle = np.column_stack([base, np.log(rate), tau * rate, expected, alive, truth["churn_hazard"].to_numpy()])
    y = f["purchased"].to_numpy()
    as_of = f["as_of"].to_numpy()
    cut = np.sort(np.unique(as_of))[-2]  # the last grid point is the test period; train labels end by it
    train = f["label_end"].to_numpy() <= cut
    test = as_of >= cut
    out = {}
    for name, X in (("aggregates", base), ("aggregates + true cycle", oracle)):
        model = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=seed)
        model.fit(X[train], y[train])
        out[name] = model.predict_proba(X[test])[:, 1]
    out["y"] = y[test]
    out["auc"] = {k: float(roc_auc_score(y[test], v)) for k, v in out.items() if k != "y" and k != "auc"}
    return out


def auc_metric(pair):
    from sklearn.metrics import roc_auc_score

    y, score = pair
    return roc_auc_score(y, score) if 0 < y.sum() < len(y) else 0.5


# ---------------------------------------------------------------------------------------------- affinity


def true_redemption_scores(world, customer_ids: np.ndarray) -> np.ndarray:
    """[Q, n_offers] expected redemptions of each offer: the organic purchases in its category during its validity
    plus its response mass (both from the latent truth; fatigue left out)."""
    truth = world.truth.set_index("customer_id").loc[customer_ids]
    offers = world.offers
    cats = offers["category"].to_numpy()
    aff = np.column_stack([truth[f"affinity_{c}"].to_numpy() for c in cats])
    types = offers["offer_type"].to_numpy()
    timings = offers["timing"].to_numpy()
    from deepromo.data.market.customers import OFFER_TYPES

    appeal = np.asarray(P.OFFER_TYPE_APPEAL)[[OFFER_TYPES.index(t) for t in types]]
    pref = np.column_stack([truth[f"type_pref_{t}"].to_numpy() for t in types]) * np.column_stack(
        [truth[f"timing_pref_{t}"].to_numpy() for t in timings])
    n_cat = len(set(world.products["category"]))
    value = 1.0 - np.exp(-truth["sensitivity"].to_numpy()[:, None] * offers["face_value"].to_numpy()[None, :]
                         / P.OFFER_VALUE_SCALE)
    mass = P.OFFER_RESPONSE_MAX * value * appeal * pref * np.minimum(n_cat * aff, P.AFFINITY_RESPONSE_CAP)
    organic = truth["organic_rate"].to_numpy()[:, None] * aff * P.OFFER_VALID_DAYS
    return organic + mass


def ranking_headroom(seed: int, n: int, structures) -> dict:
    from deepromo.data.views import build_view
    from deepromo.metrics.ranking import ranking_report
    from deepromo.tasks import get_task

    world = generate_world(n, seed=seed, structures=structures)
    task = get_task("ranking")
    dm = task.make_datamodule(build_view("offer_graph", world), seed=seed)
    dm.setup()
    customers, relevant, exclude = (t.numpy() for t in dm.ranking_targets("test"))
    scores = {name: task.run_baseline(name, dm, ("test",), seed=seed)["test"]["scores"]
              for name in ("random", "popularity")}
    ids = dm.graph.node_ids["customer"][customers]
    offer_ids = dm.graph.node_ids["offer"]
    oracle = true_redemption_scores(world, ids)
    order = world.offers.set_index("offer_id").index.get_indexer(offer_ids)
    scores["true affinity"] = oracle[:, order]
    return {"scores": scores, "relevant": relevant, "exclude": exclude,
            "ndcg": {k: float(ranking_report(v, relevant, k=10, exclude=exclude)["ndcg@10"]) for k, v in scores.items()}}


# ---------------------------------------------------------------------------------------------- prices, churn


def _simulate(env, codes_first_day, days, seed, every_day=False):
    run = copy.deepcopy(env)
    run.market.rng = np.random.default_rng([seed, 7])
    nothing = np.zeros(env.n, dtype=np.int64)
    reward = np.zeros(env.n)
    for d in range(days):
        _, _, _, _, info = run.step(codes_first_day if (d == 0 or every_day) else nothing)
        reward += info["reward_per_customer"]
    return reward, run


def price_headroom(seed: int, n: int) -> dict:
    from deepromo.sim import MarketEnv

    env = MarketEnv(n_customers=n, burn_in_days=60, horizon_days=10_000, seed=seed, contact_cap=0)
    env.reset()
    levels = env.price_levels
    uniform = {}
    for j, d in enumerate(levels):
        uniform[f"{d:+.0%}"] = _simulate(env, np.full(env.n, env.price_action(j)), 14, seed, every_day=True)[0]
    uniform["0%"] = _simulate(env, np.zeros(env.n, dtype=np.int64), 14, seed)[0]
    best = max(uniform, key=lambda k: uniform[k].mean())
    pop = env.market.pop
    eps = (pop.affinity * pop.elasticity).sum(axis=1)  # spend-weighted elasticity of each customer
    cand = np.concatenate([[0.0], levels])
    value = (1.0 + cand[None, :]) ** eps[:, None] * (P.MARGIN_RATE + cand[None, :])
    pick = np.argmax(value, axis=1)
    codes = np.where(pick == 0, 0, np.array([0] + [env.price_action(j) for j in range(levels.size)])[pick])
    oracle = _simulate(env, codes, 14, seed, every_day=True)[0]
    return {"best uniform": uniform[best], "best_uniform_level": best, "true elasticity": oracle}


def churn_headroom(seed: int, n: int) -> dict:
    from deepromo.sim import MarketEnv
    from deepromo.sim.env import OBSERVATION_FEATURES

    env = MarketEnv(n_customers=n, burn_in_days=60, horizon_days=10_000, seed=seed)
    obs, _ = env.reset()
    top = int(0.2 * n)
    inactive = np.argsort(-obs[:, OBSERVATION_FEATURES.index("days_since_purchase")], kind="stable")[:top]
    hazard = env.market.churn_hazard(env.market.day)
    risky = np.argsort(-np.where(env.market.alive, hazard, -1.0), kind="stable")[:top]
    out = {}
    for name, who in (("inactivity rule", inactive), ("true hazard", risky)):
        codes = np.zeros(n, dtype=np.int64)
        codes[who] = env.retention_action
        reward, run = _simulate(env, codes, 60, seed)
        out[name] = (run.market.alive.astype(float), reward)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--sim-customers", type=int, default=20000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    seeds = list(range(args.seeds))
    rows = []

    for label, structures in (("default world", None), ("cycles off", {"cycles": False})):
        runs = [purchase_headroom(s, args.customers, structures) for s in seeds]
        a = [(r["y"], r["aggregates"]) for r in runs]
        b = [(r["y"], r["aggregates + true cycle"]) for r in runs]
        diff, lo, hi = paired_ci(a, b, auc_metric, rng)
        rows.append({"structure": "cycles", "world": label, "task": "purchase (rolling 14 d)", "metric": "AUC",
                     "without latent": f"aggregates {np.mean([r['auc']['aggregates'] for r in runs]):.4f}",
                     "oracle": f"{np.mean([r['auc']['aggregates + true cycle'] for r in runs]):.4f}",
                     "headroom [95% CI]": f"{diff:+.4f} [{lo:+.4f}, {hi:+.4f}]"})
        print(rows[-1], flush=True)

    for label, structures in (("default world", None), ("affinity off", {"affinity": False})):
        runs = [ranking_headroom(s, args.customers, structures) for s in seeds]
        from deepromo.metrics.ranking import ranking_report

        def ndcg(pack):
            sc, rel, exc = pack
            return float(ranking_report(sc, rel, k=10, exclude=exc)["ndcg@10"])

        for base in ("random", "popularity"):
            a = [(r["scores"][base], r["relevant"], r["exclude"]) for r in runs]
            b = [(r["scores"]["true affinity"], r["relevant"], r["exclude"]) for r in runs]
            diff, lo, hi = paired_ci(a, b, ndcg, rng)
            rows.append({"structure": "affinity", "world": label, "task": "ranking (time split)", "metric": "NDCG@10",
                         "without latent": f"{base} {np.mean([r['ndcg'][base] for r in runs]):.4f}",
                         "oracle": f"{np.mean([r['ndcg']['true affinity'] for r in runs]):.4f}",
                         "headroom [95% CI]": f"{diff:+.4f} [{lo:+.4f}, {hi:+.4f}]"})
            print(rows[-1], flush=True)

    runs = [price_headroom(s, args.sim_customers) for s in seeds]
    a = [r["best uniform"] for r in runs]
    b = [r["true elasticity"] for r in runs]
    diff, lo, hi = paired_ci(a, b, np.mean, rng)
    rows.append({"structure": "prices", "world": "default world", "task": "simulator, 14 days",
                 "metric": "margin - incentive cost per customer",
                 "without latent": f"best uniform price ({', '.join(r['best_uniform_level'] for r in runs)}) "
                                   f"{np.mean([x.mean() for x in a]):.3f}",
                 "oracle": f"{np.mean([x.mean() for x in b]):.3f}",
                 "headroom [95% CI]": f"{diff:+.3f} [{lo:+.3f}, {hi:+.3f}]"})
    print(rows[-1], flush=True)

    runs = [churn_headroom(s, args.sim_customers) for s in seeds]
    for k, metric in ((0, "customers alive after 60 days"), (1, "margin - cost per customer, 60 days")):
        a = [r["inactivity rule"][k] for r in runs]
        b = [r["true hazard"][k] for r in runs]
        diff, lo, hi = paired_ci(a, b, np.mean, rng)
        rows.append({"structure": "churn", "world": "default world", "task": "retention to 20 % of customers",
                     "metric": metric, "without latent": f"most inactive {np.mean([x.mean() for x in a]):.4f}",
                     "oracle": f"highest true hazard {np.mean([x.mean() for x in b]):.4f}",
                     "headroom [95% CI]": f"{diff:+.4f} [{lo:+.4f}, {hi:+.4f}]"})
        print(rows[-1], flush=True)

    seconds = time.perf_counter() - t0
    note = (f"{args.seeds} world seeds; {args.customers} customers for the task rows, {args.sim_customers} in the "
            "simulator. Headroom = oracle - the model without the latent, paired on the same rows / customers / "
            "random numbers; 95 % CI from a two-level bootstrap (seeds, then rows). Not measured here: fatigue and "
            f"delayed feedback (their switches exist; their effect shows in the marginals). Run time {seconds:.0f} s.")
    body = markdown_table(rows)
    write_results("world_headroom", "Headroom of each market structure (oracle vs model without the latent)",
                  [("Headroom", note + "\n\n" + body)], {"rows": rows, "seeds": seeds, "seconds": seconds},
                  command=f"python benchmarks/world_headroom.py --seeds {args.seeds} --customers {args.customers}")
    print(body)


if __name__ == "__main__":
    main()
