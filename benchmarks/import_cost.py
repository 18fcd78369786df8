"""Import cost: ``import deepromo`` against ``import torch``, and what scoring a registered splc model loads.

Each statement runs in a fresh interpreter (``python -c``), interleaved, ``--repeats`` times; the cost of a
statement is its median wall time minus the median of an empty interpreter. Target: ``import deepromo``
<= 1.3x ``import torch``, and scoring a registered splc model never imports torch_geometric.

    python benchmarks/import_cost.py            # 7 repeats
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from benchmarks.common import markdown_table, write_results  # noqa: E402

HEAVY = ("torch", "pytorch_lightning", "torch_geometric", "sklearn", "mlflow", "optuna", "hydra")


def run_fresh(code: str, env: dict) -> tuple[float, set[str]]:
    """(wall seconds, heavy top-level packages loaded) of ``code`` in a new interpreter."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    return time.perf_counter() - start, set(out.stdout.split()) & set(HEAVY)


def register_tiny_splc(tmp: Path) -> str:
    """Train a tiny splc through train.py's job and register it in a SQLite store in ``tmp``; its URI."""
    from deepromo.jobs.config import compose_train_config
    from deepromo.jobs.train import run

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
    run(compose_train_config(["debug=tiny", "logger=mlflow", f"logger.artifact_location={tmp}/artifacts",
                              "registry.alias=champion", "~model.baselines", f"paths.output_dir={tmp}/run"]))
    return "models:/deepromo-splc-synthetic@champion"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        uri = register_tiny_splc(Path(tmp))
        from deepromo.data.sources import load_source
        from deepromo.data.views import build_view

        rows = Path(tmp) / "rows.parquet"
        frame = build_view("customer", load_source("synthetic", n_customers=2000, seed=1)).frame
        from deepromo.serving.mlflow_model import plain_columns

        plain_columns(frame).to_parquet(rows)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db"}
        statements = {
            "empty interpreter": "pass",
            "import torch": "import torch",
            "import deepromo": "import deepromo",
            "import deepromo; list_models()": "import deepromo\ndeepromo.list_models()",
            "load + score registered splc (deepromo.load_model)":
                f"import deepromo, pandas as pd\nm = deepromo.load_model({uri!r})\n"
                f"m.predict_frame(pd.read_parquet({str(rows)!r}))",
            "load + score registered splc (mlflow.pyfunc)":
                f"import mlflow, pandas as pd\nm = mlflow.pyfunc.load_model({uri!r})\n"
                f"m.predict(pd.read_parquet({str(rows)!r})[m.metadata.get_input_schema().input_names()])",
        }
        times = {name: [] for name in statements}
        loaded = {}
        for _ in range(args.repeats):
            for name, code in statements.items():
                seconds, heavy = run_fresh(code, env)
                times[name].append(seconds)
                loaded[name] = heavy
    base = statistics.median(times["empty interpreter"])
    torch_cost = statistics.median(times["import torch"]) - base
    rows_out = []
    for name, values in times.items():
        cost = statistics.median(values) - base
        rows_out.append({"statement": name, "median wall s": statistics.median(values), "cost s": cost,
                         "cost / import torch": cost / torch_cost if name != "empty interpreter" else None,
                         "heavy packages loaded": ", ".join(sorted(loaded[name])) or "none"})
    table = markdown_table(rows_out)
    print(table)
    ratio = next(r["cost / import torch"] for r in rows_out if r["statement"] == "import deepromo")
    pyg = any("torch_geometric" in loaded[n] for n in loaded if "splc" in n)
    verdict = (f"`import deepromo` costs {ratio:.2f}x `import torch` (target <= 1.3x); scoring a registered splc "
               f"model {'imports' if pyg else 'never imports'} torch_geometric.")
    print(verdict)
    if not args.no_write:
        path = write_results("import_cost", "Import cost", [
            ("Result", verdict),
            ("Fresh interpreters", f"Median of {args.repeats} interleaved runs each; cost = median wall time minus "
                                   f"the empty interpreter's ({base:.3f} s).\n\n{table}")],
            {"repeats": args.repeats, "rows": rows_out, "ratio_import_deepromo_vs_torch": ratio,
             "splc_scoring_imports_pyg": pyg})
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
