"""Benchmark (a): synthetic world generation and the customer view at 100k and 1M customers.

Each size runs in a fresh subprocess so that its peak RSS is that of one generation alone
(plus the interpreter and the imported libraries, reported separately as the import baseline).
Targets (DESIGN): 1M customers in <= 60 s and <= 4 GB peak memory.

    python benchmarks/world_generation.py                 # 100k and 1M
    python benchmarks/world_generation.py --quick         # 20k and 100k
    python benchmarks/world_generation.py --sizes 50000 500000 --no-view
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, write_results  # noqa: E402

TARGET_SECONDS, TARGET_GB, TARGET_SIZE = 60.0, 4.0, 1_000_000

# Runs in the child process; prints one JSON line on stdout.
CHILD = r"""
import json, resource, sys, time

def rss_now_gb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    return float("nan")

def peak_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

n, seed, with_view = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
from deepromo.data.sources.synthetic import generate_world
from deepromo.data.views import customer_view
import pandas as pd
res = {"n_customers": n, "import_rss_gb": rss_now_gb()}
def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

start, cpu0 = time.perf_counter(), cpu_s()
data = generate_world(n, seed=seed)
res["generate_s"] = time.perf_counter() - start
res["generate_cpu_s"] = cpu_s() - cpu0
res["generate_peak_rss_gb"] = peak_gb()
res["events_rows"] = len(data.events)
res["world_mem_gb"] = sum(
    int(df.memory_usage(deep=True).sum())
    for df in (data.customers, data.events, data.exposures, data.outcomes, data.truth)
    if isinstance(df, pd.DataFrame)
) / 2**30
if with_view:
    start, cpu0 = time.perf_counter(), cpu_s()
    view = customer_view(data)
    res["view_s"] = time.perf_counter() - start
    res["view_cpu_s"] = cpu_s() - cpu0
    res["view_rows"] = len(view)
    res["view_columns"] = view.frame.shape[1]
    res["peak_rss_with_view_gb"] = peak_gb()
print("RESULT " + json.dumps(res))
"""


def run_size(n: int, seed: int, with_view: bool) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(seed), "1" if with_view else "0"],
        capture_output=True, text=True, check=False,
    )
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"generation of {n} customers failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="numbers of customers")
    parser.add_argument("--quick", action="store_true", help="small sizes (20k and 100k) for a smoke run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-view", action="store_true", help="skip timing customer_view")
    parser.add_argument("--no-write", action="store_true", help="print only, do not write results/")
    args = parser.parse_args(argv)
    sizes = [20_000, 100_000] if args.quick else args.sizes

    runs = []
    for n in sizes:
        print(f"generating {n:,} customers in a fresh process ...", flush=True)
        r = run_size(n, args.seed, not args.no_view)
        r["generate_increment_gb"] = r["generate_peak_rss_gb"] - r["import_rss_gb"]
        r["us_per_customer"] = 1e6 * r["generate_s"] / n
        r["kb_per_customer"] = 2**20 * r["generate_increment_gb"] / n
        r["events_per_customer"] = r["events_rows"] / n
        if "view_s" in r:
            r["view_us_per_customer"] = 1e6 * r["view_s"] / n
        runs.append(r)

    rows = [
        {
            "customers": f"{r['n_customers']:,}",
            "events rows": f"{r['events_rows']:,}",
            "generate s": r["generate_s"],
            "generate CPU s": r["generate_cpu_s"],
            "peak RSS GB": r["generate_peak_rss_gb"],
            "import RSS GB": r["import_rss_gb"],
            "generation GB (peak - import)": r["generate_increment_gb"],
            "world tables GB": r["world_mem_gb"],
            "us / customer": r["us_per_customer"],
            "KB / customer": r["kb_per_customer"],
            "customer_view s": r.get("view_s"),
            "customer_view CPU s": r.get("view_cpu_s"),
            "peak RSS incl. view GB": r.get("peak_rss_with_view_gb"),
        }
        for r in runs
    ]
    table = markdown_table(rows)
    sections = [("Results", table)]

    scaling = ""
    if len(runs) >= 2:
        a, b = runs[0], runs[-1]
        k = b["n_customers"] / a["n_customers"]
        scaling = (
            f"{a['n_customers']:,} -> {b['n_customers']:,} customers (x{k:g}): time x{b['generate_s'] / a['generate_s']:.2f} "
            f"(CPU time x{b['generate_cpu_s'] / a['generate_cpu_s']:.2f}), "
            f"generation memory (peak - import) x{b['generate_increment_gb'] / max(a['generate_increment_gb'], 1e-9):.2f}, "
            f"events x{b['events_rows'] / a['events_rows']:.2f}"
            + (f", customer_view time x{b['view_s'] / a['view_s']:.2f}" if "view_s" in a and "view_s" in b else "")
            + ". Linear growth means all ratios near x" + f"{k:g}" + " (equal per-customer cost at both sizes)."
        )
        sections.append(("Scaling", scaling))

    verdict = ""
    big = [r for r in runs if r["n_customers"] == TARGET_SIZE]
    if big:
        r = big[0]
        verdict = (
            f"1M customers: generation {r['generate_s']:.1f} s (target <= {TARGET_SECONDS:.0f} s: "
            f"{'met' if r['generate_s'] <= TARGET_SECONDS else 'NOT met'}), peak RSS {r['generate_peak_rss_gb']:.2f} GB "
            f"(target <= {TARGET_GB:.0f} GB: {'met' if r['generate_peak_rss_gb'] <= TARGET_GB else 'NOT met'}; "
            f"the peak includes {r['import_rss_gb']:.2f} GB of interpreter + imported torch/pandas)."
            + (f" customer_view on the 1M world: {r['view_s']:.1f} s (peak RSS incl. view {r['peak_rss_with_view_gb']:.2f} GB)."
               if "view_s" in r else "")
        )
        sections.insert(0, ("Targets", verdict))
    sections.append((
        "Method",
        "Each size runs `generate_world(n, seed)` then `customer_view(world)` in a fresh `python -c` subprocess. "
        "Peak RSS is `ru_maxrss` of that subprocess right after generation (so before the view); import RSS is "
        "VmRSS after importing deepromo (torch, pandas, ...) and before generating. World tables GB is the "
        "pandas deep memory usage of the generated tables. CPU s is user + system time of the subprocess (less "
        "sensitive than wall time to other load on the machine). One run per size (generation is deterministic).",
    ))

    print()
    print(table)
    for text in (scaling, verdict):
        if text:
            print("\n" + text)
    if not args.no_write:
        path = write_results("world_generation", "Synthetic world generation: time and memory", sections,
                             {"runs": runs, "targets": {"seconds": TARGET_SECONDS, "peak_rss_gb": TARGET_GB,
                                                        "n_customers": TARGET_SIZE}})
        print(f"\nwrote {path} (+ .json)")
    return {"runs": runs}


if __name__ == "__main__":
    main()
