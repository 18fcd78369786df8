"""Shared benchmark helpers: describe the machine, time things, write results as Markdown + JSON.

Benchmarks are not tests: they run side by side with their baselines in one process and report
ratios (machines are noisy); absolute times are given only for context.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """CPU, cores, memory, OS and library versions of this run."""
    import numpy
    import pandas
    import torch

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gb = float("nan")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gb": round(mem_gb, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, in GiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def time_repeats(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> dict:
    """Median / min wall time in seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": repeats}


def markdown_table(rows: list[dict], columns: list[str] | None = None, digits: int = 3) -> str:
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))

    def cell(v):
        if isinstance(v, float):
            return f"{v:.{digits}g}" if abs(v) >= 1e4 or (v != 0 and abs(v) < 1e-3) else f"{v:.{digits}f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_results(name: str, title: str, sections: list[tuple[str, str]], data: dict, command: str | None = None
                  ) -> Path:
    """Write ``results/<name>.md`` (title, machine, sections of Markdown) and ``results/<name>.json``; ``command``:
    the command line that made them (default ``python benchmarks/<name>.py``)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    info = machine()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    md = [f"# {title}", "", f"Run {stamp} with `{command or f'python benchmarks/{name}.py'}`.", "",
          "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items() if v is not None), ""]
    for heading, body in sections:
        md += [f"## {heading}", "", body, ""]
    path = RESULTS_DIR / f"{name}.md"
    path.write_text("\n".join(md))
    (RESULTS_DIR / f"{name}.json").write_text(
        json.dumps({"name": name, "title": title, "run_at": stamp, "command": command, "machine": info, **data},
                   indent=2, default=float)
    )
    return path
