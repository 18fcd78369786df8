"""Batch scoring of N customers: Spark ``local[2]`` (``predict.py --engine spark``) vs single-process ``predict.py``.

A splc model is trained on a 20k-customer world and registered in a local SQLite MLflow store; the customers file is
its test rows tiled up to N (written to Parquet in row groups, never all in memory). Both engines score the same file
with the same registered model: ``predict.py`` (chunks of 100k rows in one process) and ``predict.py --engine spark
--spark-master local[2]`` (``mlflow.pyfunc.spark_udf``). Each is one subprocess; wall time includes start-up (the
JVM for Spark), and peak memory is the largest summed RSS of the process and all its children (the JVM and Spark's
Python workers), sampled every 0.2 s.

    python benchmarks/spark_scoring.py              # 10M customers
    python benchmarks/spark_scoring.py --quick      # 1M customers
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NAME = "deepromo-splc-synthetic"


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_measured(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; wall seconds and the peak summed RSS (GiB) of its process tree."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    handle, peak, stop = psutil.Process(proc.pid), [0], threading.Event()

    def sample():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], tree_rss(handle))
            except psutil.Error:
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return {"seconds": time.perf_counter() - started, "peak_gb": peak[0] / 2**30, "stdout": out.strip()}


def write_customers(model, path: Path, n: int) -> None:
    """The test-split rows of a fresh world tiled to ``n`` rows with unique customer ids, in 1M-row groups."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from deepromo.data.sources.synthetic import generate_world
    from deepromo.data.views import build_view
    from deepromo.serving.mlflow_model import plain_columns

    base = plain_columns(build_view("customer", generate_world(n_customers=20_000, seed=11)).frame)
    base = base[model.input_columns()].reset_index(drop=True)
    writer = None
    for start in range(0, n, 1_000_000):
        rows = min(1_000_000, n - start)
        chunk = base.iloc[np.arange(rows) % len(base)].reset_index(drop=True)
        chunk.insert(0, "customer_id", np.arange(start, start + rows, dtype=np.int64))
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="1M rows")
    args = parser.parse_args(argv)
    n = 1_000_000 if args.quick else args.rows
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        uri = f"sqlite:///{tmp}/mlflow.db"
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
        subprocess.run([sys.executable, "train.py", "model=splc", "data.options.n_customers=20000",
                        "trainer.max_epochs=3", "model.baselines=null", "logger=mlflow", f"logger.tracking_uri={uri}",
                        "registry.alias=champion", "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp}/run"],
                       cwd=ROOT, env=env, check=True, capture_output=True)
        os.environ["MLFLOW_TRACKING_URI"] = uri
        import deepromo

        model_uri = f"models:/{NAME}@champion"
        write_customers(deepromo.load_model(model_uri), tmp / "customers.parquet", n)
        local = run_measured([sys.executable, "predict.py", "--model", model_uri, "--input",
                              str(tmp / "customers.parquet"), "--output", str(tmp / "local.parquet"),
                              "--no-progress"], env)
        spark = run_measured([sys.executable, "predict.py", "--engine", "spark", "--spark-master", "local[2]",
                              "--model", model_uri, "--input", str(tmp / "customers.parquet"), "--output",
                              str(tmp / "spark_scores")], env)
    rows = [{"engine": name, "rows": n, "seconds": r["seconds"], "rows_per_s": n / r["seconds"],
             "peak_memory_gb": r["peak_gb"], "vs_predict_py": local["seconds"] / r["seconds"]}
            for name, r in (("predict.py (1 process)", local), ("Spark local[2] (spark_udf)", spark))]
    body = markdown_table(rows)
    note = (f"{n:,} customers (a 20k world's rows tiled), splc registered in a SQLite store, both engines reading "
            "the same Parquet file. Wall time of the whole command, start-up included; peak memory summed over the "
            "process tree.")
    write_results("spark_scoring", f"Scoring {n:,} customers: Spark local[2] vs predict.py",
                  [("Throughput and memory", note + "\n\n" + body)],
                  {"rows": rows, "outputs": {"predict.py": local["stdout"], "spark": spark["stdout"]}},
                  command="python benchmarks/spark_scoring.py" + (" --quick" if args.quick else ""))
    print(body)


if __name__ == "__main__":
    main()
