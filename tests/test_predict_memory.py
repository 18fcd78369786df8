"""Scoring a 1M-row Parquet file in 100k-row chunks keeps peak memory far below the file as a DataFrame."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import tiny_splc


ROWS, CHUNK = 1_000_000, 100_000

# Runs in a fresh interpreter: imports and one warm-up scoring first, then growth = peak RSS during the
# big call (VmHWM after resetting it; ru_maxrss where that is not possible) minus the RSS just before it, so it is what scoring in chunks costs, not importing torch.
CHILD = """
import json, resource, sys
import deepromo
from deepromo.serving.batch_scoring import score_file
model_path, small, big, out = sys.argv[1:5]
model = deepromo.load_model(model_path)
score_file(model, small, out, chunk_size=1000, progress=False)
def status(key):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(key + ":"))
try:  # Linux: reset the peak (VmHWM) to the current RSS, so the peak below is this call's own
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = status("VmRSS")
except OSError:  # elsewhere: the peak so far, which can only understate the growth
    status = None
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
summary = score_file(model, big, out, chunk_size=int(sys.argv[5]), progress=False)
after = status("VmHWM") if status else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"growth": after - before, "before": before, "peak": after, **summary}))
"""


def score_in_subprocess(tmp_path, big, chunk):
    done = subprocess.run(
        [sys.executable, "-c", CHILD, tmp_path / "model.ckpt", tmp_path / "small.parquet", big,
         tmp_path / "scores.parquet", str(chunk)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_scoring_memory_follows_the_chunk_not_the_file(tiny_world, tmp_path):
    model, dm = tiny_splc(tiny_world, epochs=0)
    model.save(tmp_path / "model.ckpt")  # untrained weights score the same way

    base = dm.view.frame[["customer_id", *dm.preprocessor.columns]]
    frame = base.iloc[np.arange(ROWS) % len(base)].reset_index(drop=True)
    frame["customer_id"] = np.arange(ROWS)
    frame_bytes = int(frame.memory_usage(deep=True).sum())
    frame.to_parquet(tmp_path / "big.parquet", index=False, row_group_size=CHUNK)
    frame.iloc[: ROWS // 5].to_parquet(tmp_path / "fifth.parquet", index=False, row_group_size=CHUNK)
    base.iloc[:2000].to_parquet(tmp_path / "small.parquet", index=False)
    del frame

    full = score_in_subprocess(tmp_path, tmp_path / "big.parquet", CHUNK)
    fifth = score_in_subprocess(tmp_path, tmp_path / "fifth.parquet", CHUNK)
    small_chunks = score_in_subprocess(tmp_path, tmp_path / "big.parquet", CHUNK // 10)
    mib = {k: r["growth"] / 2**20 for k, r in (("full", full), ("fifth", fifth), ("small_chunks", small_chunks))}
    print(f"\ninput as DataFrame {frame_bytes / 2**20:.0f} MiB; peak RSS growth: 1M rows {mib['full']:.0f} MiB, "
          f"200k rows {mib['fifth']:.0f} MiB, 1M rows in 10k chunks {mib['small_chunks']:.0f} MiB; "
          f"{full['rows_per_s']:,.0f} rows/s")
    assert full["rows"] == ROWS and full["chunks"] == ROWS // CHUNK
    # 5x the rows, same chunk: the same working set (one chunk's Arrow batch, frame, arrays, activations)
    assert full["growth"] < 1.3 * fifth["growth"] + 32 * 2**20
    # 10x smaller chunks: a much smaller working set
    assert small_chunks["growth"] < 0.5 * full["growth"]
