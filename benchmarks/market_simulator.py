"""Speed of the market simulator: 100k customers x 90 days (target <= 60 s on 2 cores), and the checker.

The episode: reset (a 30-day burn-in under the history campaigns), then 90 steps in which 5 % of the customers
take a random action each day (offers, price changes, retention messages), with the default contact cap.
Also the logged market world's generation time at the default size and at 100k customers.

    python benchmarks/market_simulator.py [--customers 100000] [--days 90]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, peak_rss_gb, write_results  # noqa: E402

from deepromo.data.sources.synthetic import generate_world  # noqa: E402
from deepromo.sim import MarketEnv  # noqa: E402


def episode(n: int, days: int, seed: int, keep_events: bool) -> dict:
    env = MarketEnv(n_customers=n, horizon_days=days, burn_in_days=30, seed=seed, keep_events=keep_events)
    t0 = time.perf_counter()
    env.reset()
    reset_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    totals = {"reward": 0.0, "conversions": 0, "redemptions": 0, "offers_sent": 0, "refused_contacts": 0}
    t0 = time.perf_counter()
    done = False
    while not done:
        act = np.where(rng.random(n) < 0.05, rng.integers(0, env.n_actions, n), 0)
        _, reward, terminated, truncated, info = env.step(act)
        totals["reward"] += reward
        for k in ("conversions", "redemptions", "offers_sent", "refused_contacts"):
            totals[k] += info[k]
        done = terminated or truncated
    steps_s = time.perf_counter() - t0
    return {"customers": n, "days": days, "keep_events": keep_events, "reset_s (30-day burn-in)": reset_s,
            "steps_s": steps_s, "target_s": 60.0, "steps_s / target": steps_s / 60.0,
            "customer_days_per_s": n * days / steps_s, "retained_share": info["retained_share"], **totals}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()
    from gymnasium.utils.env_checker import check_env

    check_env(MarketEnv(n_customers=100, horizon_days=5, burn_in_days=10), skip_render_check=True)
    runs = [episode(args.customers, args.days, seed, keep) for seed, keep in ((0, False), (1, True))]
    worlds = []
    for n in (20_000, 100_000):
        t0 = time.perf_counter()
        world = generate_world(n, seed=0)
        worlds.append({"customers": n, "history_days": 120, "seconds": time.perf_counter() - t0,
                       "events": len(world.events)})
    body = ("Gymnasium `check_env` passed.\n\n" + markdown_table(runs, digits=3) + "\n\nLogged market world "
            "generation (`generate_world`, default structures):\n\n" + markdown_table(worlds, digits=2)
            + f"\n\nPeak RSS {peak_rss_gb():.2f} GiB.")
    write_results("market_simulator", "Market simulator speed", [("100k customers x 90 days", body)],
                  {"episodes": runs, "worlds": worlds, "check_env": "passed"},
                  command=f"python benchmarks/market_simulator.py --customers {args.customers} --days {args.days}")
    print(body)


if __name__ == "__main__":
    main()
