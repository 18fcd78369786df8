"""(d) splc vs its baselines as the share of organic buyers among the "engaged" positives grows.

The stage-2 positives of splc are the engaged purchasers (treated, engaged with the campaign and
purchased). Organic customers that engage with a campaign they would not have needed are label
noise there; the synthetic world's knob ``data.options.organic_engage_rate`` sets how many there
are. For every grid value this script first measures the realised organic share among engaged
purchasers from the truth table (exactly: ``intent == "organic"`` among ``segment == 2`` rows of
the customer view), then runs the full training job (``deepromo.jobs.train.run``, the same job as
``train.py``) for each seed with the baselines splc, bce_two_stage, rfm_segments and logistic
(random_forest is dropped to save time), and reports mean ± sd over seeds of the targeting
metrics against the true "prompted" intent, plus splc − bce_two_stage per seed.

    python benchmarks/splc_noise.py                      # full settings (~15 min on 2 cores)
    python benchmarks/splc_noise.py --quick              # smoke run (small world, few epochs)
    python benchmarks/splc_noise.py --rates 0 0.3 --seeds 0 1
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
warnings.filterwarnings("ignore")
for _name in ("pytorch_lightning", "lightning.pytorch", "lightning", "lightning_fabric"):
    logging.getLogger(_name).setLevel(logging.ERROR)
logging.getLogger("deepromo").setLevel(logging.WARNING)

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, write_results  # noqa: E402

METHODS = ["splc", "bce_two_stage", "logistic", "rfm_segments"]
METRICS = ["balanced_accuracy", "weighted_f1", "auc", "gain_at_40", "precision", "recall"]
# organic_engage_rate -> realised organic share among engaged purchasers (seed 0, 20k customers):
# 0.0 -> 0 %, 0.1 -> 20 %, 0.2 -> 32 %, 0.3 -> 42 %, 0.45 -> ~51 %, 0.5 -> 53 %, 0.9 -> 66 %.
DEFAULT_RATES = [0.0, 0.1, 0.2, 0.3, 0.45]


def organic_share(n_customers: int, seed: int, rate: float) -> dict:
    """Exact organic share among engaged purchasers (segment 2) of the world the job will build."""
    from deepromo.data.sources.synthetic import generate_world, summarize_world
    from deepromo.data.views import customer_view

    world = generate_world(n_customers, seed=seed, organic_engage_rate=rate)
    view = customer_view(world)
    seg2 = view.frame["segment"].to_numpy() == 2
    intent = view.truth["intent"].to_numpy().astype(str)
    summary = summarize_world(world)
    return {
        "organic_share": float(np.mean(intent[seg2] == "organic")) if seg2.any() else float("nan"),
        "one_minus_prompted_share": 1.0 - summary["prompted_share_among_engaged_purchasers"],
        "n_engaged_purchasers": int(seg2.sum()),
        "engaged_purchase_share": summary["segment_shares"]["engaged_purchase"],
    }


def compose(overrides: list[str]):
    from deepromo.jobs.config import compose_train_config

    return compose_train_config(overrides)


def run_job(overrides: list[str]) -> tuple[dict, float]:
    """One full train.py job in a throw-away output folder; returns (results, seconds)."""
    from deepromo.jobs.train import run

    with tempfile.TemporaryDirectory(prefix="splc_noise_") as tmp:
        cfg = compose(["logger=none", "trainer.enable_progress_bar=false", f"paths.output_dir={tmp}", *overrides])
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # run() prints its own table
            results = run(cfg)
        return results, time.perf_counter() - started


def mean_sd(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(m: float, s: float, digits: int = 3) -> str:
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def fmt_signed(m: float, s: float, digits: int = 3) -> str:
    return f"{m:+.{digits}f} ± {s:.{digits}f}"


def verdict(diffs: list[float]) -> str:
    """'+' / '−' when the mean difference is beyond 2 standard errors over seeds, else '≈'."""
    m, s = mean_sd(diffs)
    if len(diffs) < 2:
        return "+" if m > 0 else ("−" if m < 0 else "≈")
    se = s / math.sqrt(len(diffs))
    if abs(m) > 2 * se and m != 0:
        return "+" if m > 0 else "−"
    return "≈"


def build_report(rates, seeds, shares, runs, tau_rows, args, elapsed):
    """Markdown sections and JSON data from the raw per-run results."""
    share_rows = []
    for rate in rates:
        s = [shares[(rate, seed)] for seed in seeds if (rate, seed) in shares]
        if not s:
            continue
        m, sd = mean_sd([x["organic_share"] for x in s])
        share_rows.append({
            "organic_engage_rate": rate,
            "organic share among engaged purchasers": fmt(m, sd),
            "1 − prompted share (summarize_world)": f"{statistics.fmean(x['one_minus_prompted_share'] for x in s):.3f}",
            "engaged purchasers (of world)": f"{statistics.fmean(x['n_engaged_purchasers'] for x in s):.0f}",
        })

    metric_rows, diff_rows, agg = [], [], {}
    for rate in rates:
        done = [seed for seed in seeds if (rate, seed) in runs]
        if not done:
            continue
        share = statistics.fmean(shares[(rate, seed)]["organic_share"] for seed in done)
        agg[rate] = {"organic_share": share, "seeds": done, "methods": {}, "splc_minus_bce": {}}
        for method in METHODS:
            row = {"rate": rate, "organic share": f"{share:.2f}", "method": method}
            agg[rate]["methods"][method] = {}
            for metric in METRICS:
                m, sd = mean_sd([runs[(rate, seed)]["test"][method].get(metric) for seed in done])
                row[metric] = fmt(m, sd)
                agg[rate]["methods"][method][metric] = {"mean": m, "sd": sd}
            metric_rows.append(row)
        drow = {"rate": rate, "organic share": f"{share:.2f}"}
        for metric in METRICS:
            diffs = [runs[(rate, seed)]["test"]["splc"][metric] - runs[(rate, seed)]["test"]["bce_two_stage"][metric]
                     for seed in done]
            m, sd = mean_sd(diffs)
            wins = sum(d > 0 for d in diffs)
            drow[metric] = f"{fmt_signed(m, sd)} ({wins}/{len(diffs)}) {verdict(diffs)}"
            agg[rate]["splc_minus_bce"][metric] = {"mean": m, "sd": sd, "wins": wins, "n": len(diffs),
                                                   "verdict": verdict(diffs), "per_seed": diffs}
        diff_rows.append(drow)

    summary = summarise(agg)
    tau = args.tau_default
    sections = [
        ("Setup", (
            f"World: synthetic, {args.customers} customers, randomised exposure, all other knobs at their "
            f"config defaults; seeds {list(seeds)} (the seed sets the world, the split, the weights and the "
            f"baselines). Job: `deepromo.jobs.train.run` (the `train.py` job) with `logger=none`, "
            f"`~model.baselines.random_forest`, trainer max_epochs "
            f"{args.epochs if args.epochs else 'default (30)'}, torch threads {torch.get_num_threads()}. "
            f"splc uses the model default tau = {tau} (pos_to_neg correction after "
            f"{args.warmup_default} warm-up epochs, decision threshold {args.threshold_default}). "
            "bce_two_stage is the same two networks with label correction off. Metrics are on the test "
            "split against the true intent 'prompted' (precision, recall, balanced accuracy and weighted F1 of "
            "the model's 0/1 decision; AUC and gain at 40 % of its score). Cells: mean ± sd over seeds. "
            f"Total wall time {elapsed / 60:.1f} min."
        )),
        ("Realised label noise per grid point",
         "Organic share among engaged purchasers (stage-2 positives), exact from the truth table, "
         "mean ± sd over seeds.\n\n" + markdown_table(share_rows)),
        ("Metrics per noise level", markdown_table(metric_rows, ["rate", "organic share", "method", *METRICS])),
        ("splc − bce_two_stage", (
            "Per metric: mean ± sd over seeds of the per-seed difference, (seeds where splc is higher / seeds), "
            "and a sign: + / − when |mean| > 2 standard errors over seeds, ≈ otherwise (within seed noise).\n\n"
            + markdown_table(diff_rows, ["rate", "organic share", *METRICS]))),
        ("Where correction helps and where it does not", summary),
    ]
    if tau_rows:
        sections.append((f"tau at the highest noise level (rate {tau_rows[0]['rate']}, seed {tau_rows[0]['seed']})",
                         "splc alone (no baselines) with `model.params.tau` overridden; bce_two_stage of the same "
                         "seed from the main grid for reference.\n\n"
                         + markdown_table(tau_rows, ["tau", *METRICS, "share_targeted"])))
    data = {
        "settings": {"customers": args.customers, "seeds": list(seeds), "rates": list(rates),
                     "epochs": args.epochs, "tau": tau, "torch_threads": torch.get_num_threads(),
                     "elapsed_s": elapsed},
        "organic_share": {f"{r}/{s}": v for (r, s), v in shares.items()},
        "runs": {f"{r}/{s}": {"test": v["test"], "seconds": v["seconds"]} for (r, s), v in runs.items()},
        "aggregate": {str(r): v for r, v in agg.items()},
        "tau_sweep": tau_rows,
        "summary": summary,
    }
    return sections, data, metric_rows, diff_rows


def summarise(agg: dict) -> str:
    """A plain-language paragraph computed from the splc − bce differences."""
    if not agg:
        return "No runs."
    lines = []
    names = {"balanced_accuracy": "balanced accuracy", "weighted_f1": "weighted F1", "auc": "AUC",
             "gain_at_40": "gain at 40 %", "precision": "precision", "recall": "recall"}
    for metric in METRICS:
        pos, neg, flat = [], [], []
        for rate, a in agg.items():
            d = a["splc_minus_bce"][metric]
            label = f"{a['organic_share'] * 100:.0f} % ({d['mean']:+.3f}, {d['wins']}/{d['n']})"
            {"+": pos, "−": neg, "≈": flat}[d["verdict"]].append(label)
        parts = []
        if pos:
            parts.append("higher beyond seed noise at organic share " + ", ".join(pos))
        if neg:
            parts.append("lower beyond seed noise at " + ", ".join(neg))
        if flat:
            parts.append("within seed noise at " + ", ".join(flat))
        lines.append(f"- **{names[metric]}** (splc − bce_two_stage): " + "; ".join(parts) + ".")
    # the strongest plain baseline per level on balanced accuracy, for context
    ctx = []
    for rate, a in agg.items():
        best = max(METHODS, key=lambda m: a["methods"][m]["balanced_accuracy"]["mean"])
        ctx.append(f"{a['organic_share'] * 100:.0f} %: {best}")
    lines.append("- Best method on mean balanced accuracy per organic share: " + ", ".join(ctx) + ".")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rates", type=float, nargs="+", default=DEFAULT_RATES,
                        help="organic_engage_rate grid values")
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=None, help="trainer.max_epochs (default: config default)")
    parser.add_argument("--taus", type=float, nargs="*", default=[0.3, 0.4, 0.5],
                        help="tau sweep at the highest rate, first seed (empty = skip)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is ~2.5x faster than 2 on a shared 2-core machine)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2000 customers, 2 epochs, 2 rates, 1 seed")
    parser.add_argument("--name", default="splc_noise", help="results file name under benchmarks/results")
    args = parser.parse_args(argv)
    if args.quick:
        args.customers, args.epochs, args.rates, args.seeds, args.taus = 2000, 2, [0.0, 0.45], [0], [0.3]
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    rates, seeds = list(args.rates), list(args.seeds)
    base = [f"data.options.n_customers={args.customers}", "~model.baselines.random_forest"]
    if args.epochs:
        base.append(f"trainer.max_epochs={args.epochs}")
    shares, runs, tau_rows = {}, {}, []
    params = compose(base).model.params
    args.tau_default, args.warmup_default = float(params.tau), int(params.warmup_epochs)
    args.threshold_default = float(params.decision_threshold)
    for rate in rates:
        for seed in seeds:
            shares[(rate, seed)] = organic_share(args.customers, seed, rate)
            results, seconds = run_job([*base, f"seed={seed}", f"data.options.organic_engage_rate={rate}"])
            runs[(rate, seed)] = {"test": results["test"], "seconds": seconds}
            t = results["test"]
            print(f"rate {rate:.2f} seed {seed}: organic share {shares[(rate, seed)]['organic_share']:.3f}  "
                  + "  ".join(f"{m} bacc {t[m]['balanced_accuracy']:.3f}" for m in METHODS)
                  + f"  ({seconds:.0f} s)", flush=True)
        # keep a complete file after every grid point (a cut-off run still leaves results)
        sections, data, *_ = build_report(rates, seeds, shares, runs, tau_rows, args,
                                          time.perf_counter() - started)
        write_results(args.name, "splc label correction vs organic-buyer noise", sections, data)
    if args.taus:
        rate, seed = max(rates), seeds[0]
        for tau in args.taus:
            if math.isclose(tau, args.tau_default) and (rate, seed) in runs:
                row = runs[(rate, seed)]["test"]["splc"]
            else:
                results, _ = run_job([*base, f"seed={seed}", f"data.options.organic_engage_rate={rate}",
                                      f"model.params.tau={tau}", "model.baselines={}"])
                row = results["test"]["splc"]
            tau_rows.append({"rate": rate, "seed": seed, "tau": f"{tau:g}", **row})
            print(f"tau {tau:g}: bacc {row['balanced_accuracy']:.3f} wf1 {row['weighted_f1']:.3f}", flush=True)
        bce = runs[(rate, seed)]["test"]["bce_two_stage"]
        tau_rows.append({"rate": rate, "seed": seed, "tau": "bce_two_stage", **bce})

    elapsed = time.perf_counter() - started
    sections, data, metric_rows, diff_rows = build_report(rates, seeds, shares, runs, tau_rows, args, elapsed)
    path = write_results(args.name, "splc label correction vs organic-buyer noise", sections, data)
    print()
    for heading, body in sections:
        print(f"## {heading}\n\n{body}\n")
    print(f"wrote {path} ({elapsed / 60:.1f} min)")


if __name__ == "__main__":
    main()
