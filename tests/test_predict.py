"""Batch scoring (deepromo.serving.batch_scoring.score_file and predict.py): chunked CSV/Parquet in, Parquet scores out."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import deepromo
from deepromo.data.tables import DataValidationError
from deepromo.serving.batch_scoring import score_file

from conftest import ROOT, tiny_splc

CHUNK = 37  # several chunks for the ~120 test rows


@pytest.fixture(scope="module")
def trained(tiny_world, tmp_path_factory):
    """A tiny splc model saved to disk, and the test split's raw feature frame."""
    model, dm = tiny_splc(tiny_world)
    folder = tmp_path_factory.mktemp("scoring")
    ckpt = folder / "model.ckpt"
    model.save(ckpt)
    columns = ["customer_id", *dm.preprocessor.columns]
    frame = dm.view.frame.iloc[dm.indices["test"]][columns].reset_index(drop=True)
    return {"model": deepromo.load_model(ckpt), "ckpt": ckpt, "frame": frame, "dir": folder}


def write(frame: pd.DataFrame, path):
    if str(path).endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_chunked_scores_equal_whole_frame(trained, tmp_path, suffix):
    model, frame = trained["model"], trained["frame"]
    src = write(frame, tmp_path / f"customers{suffix}")
    out = tmp_path / "scores.parquet"
    summary = score_file(trained["ckpt"], src, out, chunk_size=CHUNK, progress=False)
    assert summary["rows"] == len(frame) and summary["chunks"] == -(-len(frame) // CHUNK) > 1
    assert summary["output"] == str(out)
    scored = pd.read_parquet(out)
    assert list(scored.columns) == ["customer_id", *model.frame_columns()]
    assert scored["customer_id"].tolist() == frame["customer_id"].tolist()
    expected = model.predict_frame(frame)
    for col in model.frame_columns():
        np.testing.assert_allclose(scored[col].to_numpy(), expected[col].to_numpy(), rtol=1e-6, atol=1e-6)
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed


def test_unseen_category_scores_as_unknown(trained, tmp_path):
    model, frame = trained["model"], trained["frame"]
    rows = pd.concat([frame.iloc[[0]]] * 2, ignore_index=True)
    rows["region"] = rows["region"].astype(object)
    rows.loc[0, "region"], rows.loc[1, "region"] = "atlantis", None
    for suffix in (".csv", ".parquet"):
        out = tmp_path / f"scores{suffix}.parquet"
        score_file(model, write(rows, tmp_path / f"odd{suffix}"), out, progress=False)
        scored = pd.read_parquet(out)
        np.testing.assert_allclose(scored.loc[0, model.frame_columns()], scored.loc[1, model.frame_columns()], rtol=1e-6)
    np.testing.assert_allclose(scored["score"], model.predict_frame(rows)["score"], rtol=1e-6)


def test_missing_columns_are_all_named(trained, tmp_path):
    frame = trained["frame"].drop(columns=["region", "spend_30d", "recency_days"])
    for suffix in (".csv", ".parquet"):
        src = write(frame, tmp_path / f"partial{suffix}")
        with pytest.raises(DataValidationError) as info:
            score_file(trained["model"], src, tmp_path / "out.parquet", keep_columns=["nope"], progress=False)
        message = str(info.value)
        for col in ("region", "spend_30d", "recency_days", "nope", str(src)):
            assert col in message
        assert not (tmp_path / "out.parquet").exists() and not list(tmp_path.glob("*.tmp"))


def test_keep_columns_and_empty_input(trained, tmp_path):
    model, frame = trained["model"], trained["frame"]
    src = write(frame, tmp_path / "customers.parquet")
    out = tmp_path / "scores.pq"
    score_file(model, src, out, id_columns=["customer_id"], keep_columns=["region", "tenure_days"], progress=False)
    scored = pd.read_parquet(out)
    assert list(scored.columns)[:3] == ["customer_id", "region", "tenure_days"]
    assert scored["region"].astype(str).tolist() == frame["region"].astype(str).tolist()
    # a header without rows: an empty output with typed columns
    for name in ("empty.parquet", "empty.csv"):
        summary = score_file(model, write(frame.iloc[:0], tmp_path / name), tmp_path / "empty_out.parquet", progress=False)
        assert summary["rows"] == 0
        schema = pq.read_schema(tmp_path / "empty_out.parquet")
        assert schema.names == ["customer_id", *model.frame_columns()]
        assert str(schema.field("score").type) == "float"


def test_bad_paths_and_suffixes(trained, tmp_path):
    model = trained["model"]
    (tmp_path / "customers.json").write_text("{}")
    with pytest.raises(ValueError, match=r"unsupported file type; expected one of \.csv, \.csv\.gz, \.parquet, \.pq"):
        score_file(model, tmp_path / "customers.json", tmp_path / "out.parquet", progress=False)
    src = write(trained["frame"], tmp_path / "customers.csv")
    with pytest.raises(ValueError, match="must be a Parquet file"):
        score_file(model, src, tmp_path / "out.csv", progress=False)
    with pytest.raises(FileNotFoundError, match="no input file"):
        score_file(model, tmp_path / "nope.csv", tmp_path / "out.parquet", progress=False)
    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(DataValidationError, match="empty"):
        score_file(model, tmp_path / "blank.csv", tmp_path / "out.parquet", progress=False)


def start_cli(*args):
    return subprocess.Popen(
        [sys.executable, "predict.py", *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_cli_round_trip_and_user_error(trained, tmp_path):
    """Both CLI runs start at once: each pays ~5-10 s of importing torch and Lightning."""
    frame = trained["frame"]
    src = write(frame, tmp_path / "customers.parquet")
    out = tmp_path / "scores.parquet"
    bad = write(frame.drop(columns=["device"]), tmp_path / "bad.csv")
    good = start_cli("--model", trained["ckpt"], "--input", src, "--output", out, "--chunk-size", CHUNK, "--no-progress")
    failing = start_cli("--model", trained["ckpt"], "--input", bad, "--output", tmp_path / "bad.parquet", "--no-progress")
    stdout, stderr = good.communicate(timeout=120)
    assert good.returncode == 0, stderr
    assert f"scored {len(frame)} rows" in stdout
    assert pd.read_parquet(out)["customer_id"].tolist() == frame["customer_id"].tolist()

    _, stderr = failing.communicate(timeout=120)
    assert failing.returncode == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "'device'" in lines[0], stderr
    assert "Traceback" not in stderr and not (tmp_path / "bad.parquet").exists()


def test_output_has_the_users_umask_and_orphans_of_killed_runs_are_removed(trained, tmp_path):
    import os

    from deepromo.serving.batch_scoring import temporary_prefix

    src = write(trained["frame"], tmp_path / "customers.parquet")
    out = tmp_path / "scores.parquet"
    dead_pid = 2**22 + 12345  # beyond the default pid range: no such process
    orphan = tmp_path / f"{temporary_prefix(out, dead_pid)}abc.tmp"
    live = tmp_path / f"{temporary_prefix(out, os.getppid())}def.tmp"  # a running process's file stays
    orphan.write_bytes(b"left by a killed run")
    live.write_bytes(b"another run still writing")
    old = os.umask(0o022)
    try:
        score_file(trained["ckpt"], src, out, progress=False)
    finally:
        os.umask(old)
    assert (out.stat().st_mode & 0o777) == 0o644
    assert not orphan.exists() and live.exists()


def test_the_sklearn_baselines_cap_the_one_hot_width():
    from types import SimpleNamespace

    import torch

    from deepromo.tasks.base import MAX_ONE_HOT, sklearn_features

    n = 5000
    dm = SimpleNamespace(indices={"train": np.arange(n)},
                         tensors={"cat": torch.arange(n).reshape(-1, 1) * 17 % 100_003, "num": torch.zeros(n, 2)})
    features, encoder = sklearn_features(dm, "train")
    assert features.shape == (n, 2 + MAX_ONE_HOT)  # one column per value would be 5,000 wide
