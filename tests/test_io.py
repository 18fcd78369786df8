"""deepromo.data.io, the one CSV/TSV/Parquet reader: every suffix, chunked = whole reads, errors that name the file,
the events mapping, and files the table source trains from scored by score_file in the same format."""

from __future__ import annotations

import lzma
import zipfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from deepromo.data import io
from deepromo.data.tables import DataValidationError

FRAME = pd.DataFrame({"id": ["007", "008", "009", "010"], "x": [1.5, -2.0, 3.0, 0.25], "n": [1, 2, 3, 4],
                      "word": ["a", "b", None, "d"], "unused": ["p", "q", "r", "s"]})


def write_text(path, text: str):
    """``text`` into ``path``, compressed by its suffix with writers independent of the reader."""
    data = text.encode()
    name = str(path)
    if name.endswith(".xz"):
        path.write_bytes(lzma.compress(data))
    elif name.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("table.txt", data)
    else:  # plain, .gz, .bz2, .zst
        with pa.output_stream(name, compression="detect") as stream:
            stream.write(data)
    return path


def write_frame(frame: pd.DataFrame, path):
    if io.file_format(path) == "parquet":
        frame.to_parquet(path, index=False)
        return path
    sep = "\t" if io.file_format(path) == "tsv" else ","
    return write_text(path, frame.to_csv(index=False, sep=sep))


@pytest.mark.parametrize("suffix", io.SUFFIXES)
def test_every_suffix_reads_the_same_columns(tmp_path, suffix):
    path = write_frame(FRAME, tmp_path / f"table{suffix}")
    assert io.file_format(path) == ("parquet" if suffix in io.PARQUET_SUFFIXES else suffix[1:4])
    assert io.file_columns(path) == list(FRAME.columns)
    out = io.read_files([path], ["word", "id", "x"], numeric=["x"])
    assert list(out.columns) == ["word", "id", "x"]  # the asked columns, in the asked order
    assert out["x"].dtype == np.float64 and out["x"].tolist() == FRAME["x"].tolist()
    assert out["id"].tolist() == FRAME["id"].tolist()  # CSV text stays text: "007" is not 7
    assert out["word"].isna().tolist() == [False, False, True, False]


@pytest.mark.parametrize("suffix", [".csv", ".tsv.gz", ".parquet"])
def test_chunks_equal_the_whole_read(tmp_path, monkeypatch, suffix):
    monkeypatch.setattr(io, "CSV_BLOCK_BYTES", 128)  # many CSV blocks, regrouped into chunks across them
    monkeypatch.setattr(io, "PARQUET_BATCH_ROWS", 7)
    n = 100
    frame = pd.DataFrame({"id": np.arange(n), "x": np.arange(n) * 0.5, "noise": ["abc"] * n})
    path = write_frame(frame, tmp_path / f"big{suffix}")
    whole = io.read_files([path], ["id", "x"], numeric=["x"], typed=["id"])
    assert whole["id"].tolist() == list(range(n)) and whole["x"].tolist() == frame["x"].tolist()
    chunks = list(io.iter_batches(path, ["id", "x"], numeric=["x"], typed=["id"], rows=30))
    assert [len(c) for c in chunks] == [30, 30, 30, 10]
    pd.testing.assert_frame_equal(pa.concat_tables(chunks).to_pandas(), whole)
    as_read = list(io.iter_batches(path, ["id", "x"], numeric=["x"], typed=["id"]))
    assert len(as_read) > 1 and sum(len(b) for b in as_read) == n


def test_bad_value_deep_in_a_file_names_file_column_and_row(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "CSV_BLOCK_BYTES", 128)
    frame = pd.DataFrame({"x": np.arange(60).astype(object)})
    frame.loc[47, "x"] = "oops"
    path = write_frame(frame, tmp_path / "deep.csv.bz2")
    with pytest.raises(DataValidationError, match=r"src: column 'x' of 'deep.csv.bz2' must be numeric.*'oops' \(row 47\)"):
        io.read_files([path], ["x"], numeric=["x"], what="src")


def test_errors_name_the_file(tmp_path):
    with pytest.raises(DataValidationError, match=r"file '.*x\.xlsx' has an unknown suffix; expected one of "
                                                  r"\['\.csv', '\.csv\.gz', '\.parquet'.*got '\.xlsx'"):
        io.file_format(tmp_path / "x.xlsx")
    path = write_frame(FRAME, tmp_path / "t.tsv")
    with pytest.raises(DataValidationError, match=r"src: file 't.tsv' lacks column\(s\) \['y', 'z'\] \(as roles\); "
                                                  r"it has \['id', 'x', 'n', 'word', 'unused'\]"):
        io.read_files([path], ["id", "y", "z"], what="src", role=" (as roles)")
    for name in ("empty.csv", "empty.csv.gz"):
        with pytest.raises(DataValidationError, match=rf"file '.*{name}' is empty: no header row"):
            io.file_columns(write_text(tmp_path / name, ""))
    (tmp_path / "empty.parquet").write_bytes(b"")
    with pytest.raises(DataValidationError, match=r"file '.*empty.parquet' is not a readable parquet file"):
        io.file_columns(tmp_path / "empty.parquet")
    with zipfile.ZipFile(tmp_path / "two.csv.zip", "w") as archive:
        archive.writestr("a.csv", "x\n1\n")
        archive.writestr("b.csv", "x\n2\n")
    with pytest.raises(DataValidationError, match=r"two.csv.zip' holds 2 files; expected a .zip of exactly one"):
        io.file_columns(tmp_path / "two.csv.zip")
    with pytest.raises(DataValidationError, match=r"src: file '.*nope.csv' \(option path\) does not exist"):
        io.resolve_files(str(tmp_path / "nope.csv"), "path", "src")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_file_without_rows_gives_one_typed_empty_table(tmp_path, suffix):
    path = write_frame(FRAME.iloc[:0], tmp_path / f"header{suffix}")
    tables = list(io.iter_batches(path, ["x", "word"], numeric=["x"], rows=10))
    assert len(tables) == 1 and tables[0].num_rows == 0 and tables[0].column_names == ["x", "word"]
    assert tables[0].schema.field("x").type == pa.float64()


def test_glob_and_list_of_shards(tmp_path):
    write_frame(FRAME.iloc[:2], tmp_path / "part-1.csv")
    write_frame(FRAME.iloc[2:], tmp_path / "part-2.parquet")
    files = io.resolve_files([str(tmp_path / "part-1.csv"), str(tmp_path / "part-2.*")], "path")
    assert [f.name for f in files] == ["part-1.csv", "part-2.parquet"]
    assert io.read_files(files, ["x"], numeric=["x"])["x"].tolist() == FRAME["x"].tolist()


def test_events_mapping(tmp_path):
    path = write_frame(pd.DataFrame({"user": [1, 2, 3], "day": [0.5, 1.0, 2.0], "kind": [" order", "view ", None],
                                     "value": ["9.5", "", "1"]}), tmp_path / "ev.csv.xz")
    events, source = io.read_events([path], {"ts": "day", "event_type": "kind", "amount": "value"},
                                    {"order": "purchase"}, id_column="user", numeric=("ts", "amount"))
    assert list(events.columns) == ["customer_id", "ts", "event_type", "amount"]
    assert source == {"customer_id": "user", "ts": "day", "event_type": "kind", "amount": "value"}
    assert events["event_type"].tolist()[:2] == ["purchase", "view"] and pd.isna(events["event_type"].iloc[2])
    assert events["ts"].tolist() == [0.5, 1.0, 2.0] and np.isnan(events["amount"].iloc[1])
    with pytest.raises(ValueError, match=r"option events_columns has unknown key\(s\) \['when'\]"):
        io.read_events([path], {"when": "day"})
    with pytest.raises(ValueError, match=r"option event_type_map must map names to names"):
        io.read_events([path], {"ts": "day"}, {"order": 1})
    with pytest.raises(DataValidationError, match=r"lacks column\(s\) \['customer_id', 'ts', 'event_type'\] "
                                                  r"\(needed as event columns"):
        io.read_events([path])


def test_whitespace_fields(tmp_path):
    path = write_text(tmp_path / "lines.txt", "00001 19970101  1   11.77\n00002 19970102 2 5\n")
    out = io.read_fields(path, ["id", "date", "n", "dollars"])
    assert out.values.tolist() == [["00001", "19970101", "1", "11.77"], ["00002", "19970102", "2", "5"]]
    assert len(io.read_fields(write_text(tmp_path / "none.txt", ""), ["id", "date"])) == 0
    write_text(tmp_path / "bad.txt", "1 2\n1 2 3\n")
    with pytest.raises(DataValidationError, match=r"src: file 'bad.txt' is not in the 2-field format: .*Expected 2"):
        io.read_fields(tmp_path / "bad.txt", ["a", "b"], "src", expected="the 2-field format")


# ---------------------------------------------------------------- what trains can be scored, in the same format

EVENTS_COLUMNS = {"customer_id": "shopper", "ts": "day", "event_type": "action", "amount": "value"}
EVENT_TYPE_MAP = {"order": "purchase", "look": "view"}


def write_table_files(tmp_path, rows_suffix: str, events_suffix: str, n: int = 160):
    """A learnable rows file and its events under other column and event type names (numeric days)."""
    rng = np.random.default_rng(0)
    treated = rng.random(n) < 0.5
    age = rng.integers(18, 70, n)
    rows = pd.DataFrame({
        "cid": np.arange(1000, 1000 + n), "age": age, "channel": rng.choice(["web", "app", "store"], n),
        "email": treated.astype(int), "bought": (rng.random(n) < 0.15 + 0.25 * treated + 0.2 * (age < 35)).astype(int),
        "opened": (treated & (rng.random(n) < 0.7)).astype(int),
    })
    m = 6 * n
    action = rng.choice(["look", "cart", "order"], m, p=[0.6, 0.2, 0.2])
    events = pd.DataFrame({"shopper": rng.integers(1000, 1000 + n, m), "day": np.round(rng.random(m) * 60, 3),
                           "action": action, "category": rng.choice(["shoes", "bags"], m),
                           "value": np.where(action == "order", np.round(rng.random(m) * 50, 2), 0.0)})
    return write_frame(rows, tmp_path / f"rows{rows_suffix}"), write_frame(events, tmp_path / f"events{events_suffix}")


@pytest.mark.parametrize("suffix, events_suffix", [(".tsv", ".csv.gz"), (".csv.gz", ".tsv")])
def test_files_the_table_source_trains_from_are_scored(tmp_path, suffix, events_suffix):
    import pytorch_lightning as pl

    from deepromo.data.sources import load_source
    from deepromo.models.registry import get_model_class
    from deepromo.serving.batch_scoring import score_file
    from deepromo.tasks import model_datamodule

    rows_file, events_file = write_table_files(tmp_path, suffix, events_suffix)
    data = load_source("table", path=str(rows_file), id="cid", label="bought", treatment="email", engaged="opened",
                       numeric=["age"], categorical=["channel"], events_path=str(events_file),
                       events_columns=EVENTS_COLUMNS, event_type_map=EVENT_TYPE_MAP)
    assert {"purchase", "view"} <= set(data.events["event_type"])
    for name in ("splc", "txl"):
        cls = get_model_class(name)
        pl.seed_everything(0, verbose=False)
        dm = model_datamodule(cls, data, batch_size=64, seed=0, params=cls.test_params[0])
        model = cls.from_datamodule(dm, **cls.test_params[0])
        pl.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                   enable_checkpointing=False).fit(model, datamodule=dm)
        model.eval()
        frame = dm.view.frame[["customer_id", *model.input_columns()]]
        source = write_frame(frame, tmp_path / f"{name}_customers{suffix}")
        out = tmp_path / f"{name}_scores.parquet"
        if name == "txl":  # the events file it trained from, renamed the same way
            summary = score_file(model, source, out, chunk_size=50, progress=False, events=events_file,
                                 events_columns=EVENTS_COLUMNS, event_type_map=EVENT_TYPE_MAP,
                                 as_of=data.history_end)
            expected = model.predict_frame(frame, **dm.view.scoring_context())
        else:
            summary = score_file(model, source, out, chunk_size=50, progress=False)
            expected = model.predict_frame(frame)
        assert summary["rows"] == len(frame) and summary["chunks"] == -(-len(frame) // 50)
        scored = pd.read_parquet(out)
        assert scored["customer_id"].tolist() == frame["customer_id"].tolist()
        for col in model.frame_columns():
            np.testing.assert_allclose(scored[col], expected[col], rtol=1e-5, atol=1e-6, err_msg=f"{name} {col}")
