"""Scoring through the registered MLflow pyfunc vs direct module calls, and tuning overhead per trial.

(a) 1M rows: ``mlflow.pyfunc.load_model(...).predict(df)`` vs ``model.predict_frame(df)`` (same rows, same
    model, one process; target pyfunc >= 0.8 of direct), plus ``predict.py``'s ``score_file`` on a Parquet file.
(b) Tuning: wall time per trial of a study vs the same job run directly (``pipeline.run``): the overhead of
    the study machinery (storage, sampling, config copies, MLflow child runs, plots).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from benchmarks.common import markdown_table, time_repeats, write_results  # noqa: E402


def compose(overrides, out_dir):
    from deepromo.jobs.config import compose_train_config  # the same composition train.py does

    return compose_train_config(["logger=none", "trainer.enable_progress_bar=false", *overrides,
                                 f"paths.output_dir={out_dir}"])


def bench_pyfunc(rows: int, customers: int, tmp: Path) -> list[dict]:
    import mlflow

    from deepromo.jobs.train import run
    from deepromo.serving.mlflow_model import plain_columns
    from deepromo.serving.batch_scoring import score_file

    uri = f"sqlite:///{tmp}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    cfg = compose([f"data.options.n_customers={customers}", "trainer.max_epochs=3", "logger=mlflow",
                   f"logger.artifact_location={tmp}/art", "registry.alias=champion", "~model.baselines"], tmp / "run")
    results = run(cfg)
    name = results["registered"]["name"]
    import deepromo
    from deepromo.data.sources import load_source
    from deepromo.data.views import build_view

    model = deepromo.load_model(f"models:/{name}@champion")
    scorer = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    base = plain_columns(build_view("customer", load_source("synthetic", n_customers=customers, seed=1)).frame)
    frame = base[model.preprocessor.columns]
    frame = pd.concat([frame] * int(np.ceil(rows / len(frame))), ignore_index=True).iloc[:rows]
    parquet = tmp / "customers.parquet"
    frame.assign(customer_id=np.arange(rows)).to_parquet(parquet)
    out = []
    timings = {
        "direct predict_frame": lambda: model.predict_frame(frame),
        "pyfunc predict": lambda: scorer.predict(frame),
        "predict.py score_file (Parquet in/out, 100k chunks)": lambda: score_file(
            f"models:/{name}@champion", parquet, tmp / "scores.parquet", progress=False),
    }
    for label, fn in timings.items():
        t = time_repeats(fn, repeats=3, warmup=1)
        out.append({"method": label, "rows": rows, "median s": t["median_s"], "rows / s": rows / t["median_s"]})
    direct = out[0]["rows / s"]
    for row in out:
        row["vs direct"] = row["rows / s"] / direct
    return out


def bench_tuning(trials: int, customers: int, tmp: Path) -> dict:
    from deepromo.jobs.train import run
    from deepromo.jobs.tune import run_study

    common = [f"data.options.n_customers={customers}", "trainer.max_epochs=3", "logger=mlflow",
              f"logger.artifact_location={tmp}/art2", "~model.baselines", "registry.register=false"]
    direct = []
    for i in range(trials):
        start = time.perf_counter()
        run(compose(common + [f"model.params.tau={0.3 + 0.05 * i}"], tmp / f"direct{i}"))
        direct.append(time.perf_counter() - start)
    start = time.perf_counter()
    run_study(compose(common + ["hparams_search=splc", f"hparams_search.n_trials={trials}",
                                f"hparams_search.storage=sqlite:///{tmp}/optuna.db", "hparams_search.prune_on=null",
                                "hparams_search.study_name=bench"], tmp / "study"))
    study_s = time.perf_counter() - start
    per_direct = float(np.median(direct))
    return {"trials": trials, "direct run s (median)": per_direct, "study s per trial": study_s / trials,
            "overhead s per trial": study_s / trials - per_direct,
            "overhead share": (study_s / trials - per_direct) / per_direct}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="100k rows, 5k customers, 2 trials")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.customers, args.trials = 100_000, 5_000, 2
    logging.disable(logging.WARNING)
    from deepromo.jobs.train import quiet_lightning

    quiet_lightning()
    with tempfile.TemporaryDirectory() as d:
        scoring = bench_pyfunc(args.rows, args.customers, Path(d))
        tuning = bench_tuning(args.trials, min(args.customers, 5000), Path(d))
    ratio = scoring[1]["vs direct"]
    summary = (f"pyfunc / direct = {ratio:.2f} (target >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'}); "
               f"tuning overhead {tuning['overhead s per trial']:.2f} s per trial "
               f"({100 * tuning['overhead share']:.0f} % of a {tuning['direct run s (median)']:.1f} s run).")
    sections = [("Scoring 1M rows: pyfunc vs direct", markdown_table(scoring)),
                ("Tuning overhead per trial", markdown_table([tuning])), ("Summary", summary)]
    print("\n\n".join(f"## {h}\n\n{b}" for h, b in sections))
    if not args.no_write:
        path = write_results("registry_scoring", "Registered-model scoring and tuning overhead", sections,
                             {"scoring": scoring, "tuning": tuning})
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
