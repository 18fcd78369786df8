"""Training samples/s with Lightning DDP: 1 process vs 2 gloo processes on the same cores, for every core model.

Each configuration is the real ``train.py`` job (baselines off, no tracker) on the same synthetic world and the same
effective batch: 1 process with ``data.batch_size=B`` and ``trainer.threads`` 1 or 2, against ``trainer=ddp``
(2 processes x 1 thread) with ``data.batch_size=B/2``, so all three take the same optimizer steps over the same rows.
Two rates: over the whole fit (training rows x epochs / ``fit_seconds`` on rank 0, so DDP's process start-up and
process group are paid inside it) and steady (epochs 2..E from ``epoch_end_seconds``, what a long run approaches).
The interesting ratio is DDP over one process with the same 2 cores (2 threads).

    python benchmarks/ddp_throughput.py            # 20k customers, 5 epochs, 2 repeats
    python benchmarks/ddp_throughput.py --quick    # 5k customers, 3 epochs, 1 repeat
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("splc", "dipn", "txl", "gat")
BATCH = 512
CONFIGS = {  # name -> train.py overrides
    "1 process, 1 thread": ["trainer.threads=1", f"data.batch_size={BATCH}"],
    "1 process, 2 threads": ["trainer.threads=2", f"data.batch_size={BATCH}"],
    "DDP 2 processes x 1 thread": ["trainer=ddp", "trainer.threads=1", f"data.batch_size={BATCH // 2}"],
}


def train_once(model: str, overrides: list[str], customers: int, epochs: int, run_dir: Path) -> dict:
    """One train.py job; its metrics.json (fit_seconds, trained_steps, the test table)."""
    cmd = [sys.executable, "train.py", f"model={model}", f"data.options.n_customers={customers}",
           f"trainer.max_epochs={epochs}", "model.baselines=null", "logger=none",
           "trainer.enable_progress_bar=false", "callbacks.early_stopping.enabled=false", *overrides,
           f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads((run_dir / "metrics.json").read_text())


def train_rows(run_dir: Path) -> int:
    """Rows of the training split, from the job's log line "... (train N / val ...)"."""
    for line in (run_dir / "train.log").read_text().splitlines():
        if "(train " in line:
            return int(line.split("(train ", 1)[1].split(" ", 1)[0])
    raise RuntimeError(f"no training split size in {run_dir / 'train.log'}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args(argv)
    customers, epochs, repeats = (5_000, 3, 1) if args.quick else (20_000, 5, 2)
    rows, raw = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            speeds: dict[str, list[float]] = {name: [] for name in CONFIGS}
            steady: dict[str, list[float]] = {name: [] for name in CONFIGS}
            steps: dict[str, int] = {}
            for repeat in range(repeats):
                for name, overrides in CONFIGS.items():  # interleaved: machine noise spreads over all three
                    run_dir = Path(tmp) / f"{model}-{len(raw)}"
                    metrics = train_once(model, overrides, customers, epochs, run_dir)
                    n = train_rows(run_dir)
                    speeds[name].append(n * epochs / metrics["fit_seconds"])
                    ends = metrics["epoch_end_seconds"]  # epochs 2..E: after start-up and the first epoch
                    steady[name].append(n * (len(ends) - 1) / (ends[-1] - ends[0]))
                    steps[name] = metrics["trained_steps"]
                    raw.append({"model": model, "config": name, "repeat": repeat, "train_rows": n,
                                "fit_seconds": metrics["fit_seconds"], "epoch_end_seconds": metrics["epoch_end_seconds"],
                                "trained_steps": metrics["trained_steps"],
                                "test": metrics["test"][model]})
                    print(f"{model} | {name} | {speeds[name][-1]:,.0f} samples/s over fit, "
                          f"{steady[name][-1]:,.0f} after the first epoch", flush=True)
            base, base_steady = (statistics.median(v["1 process, 2 threads"]) for v in (speeds, steady))
            for name, values in speeds.items():
                median, median_steady = statistics.median(values), statistics.median(steady[name])
                rows.append({"model": model, "config": name, "fit_samples_per_s": median,
                             "fit_vs_1_process_2_threads": median / base,
                             "steady_samples_per_s": median_steady, "steady_min": min(steady[name]),
                             "steady_max": max(steady[name]),
                             "steady_vs_1_process_2_threads": median_steady / base_steady,
                             "optimizer_steps": steps[name]})
    body = markdown_table(rows, ["model", "config", "fit_samples_per_s", "fit_vs_1_process_2_threads",
                                 "steady_samples_per_s", "steady_min", "steady_max",
                                 "steady_vs_1_process_2_threads", "optimizer_steps"])
    note = (f"{customers:,} synthetic customers, {epochs} epochs, effective batch {BATCH}, {repeats} repeat(s) per "
            "configuration (medians; min and max of the steady rate). Every configuration takes the same optimizer "
            "steps over the same rows. fit: training rows x epochs / the whole fit on rank 0, which for DDP includes "
            "starting the second process (imports, building the world) and the gloo group; steady: epochs 2..E "
            "only (each epoch's validation included), the rate a long training run approaches.")
    write_results("ddp_throughput", "DDP training throughput: 1 vs 2 processes",
                  [("Samples/s", note + "\n\n" + body)], {"rows": rows, "runs": raw},
                  command="python benchmarks/ddp_throughput.py" + (" --quick" if args.quick else ""))
    print(body)


if __name__ == "__main__":
    main()
