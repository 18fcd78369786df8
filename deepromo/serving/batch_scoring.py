"""Batch scoring: score a CSV or Parquet file of customers in chunks and write the scores to Parquet.

``score_file`` never holds the whole input in memory: Parquet is read with
``ParquetFile.iter_batches`` (only the needed columns), CSV with ``pandas.read_csv(chunksize=...)``
(only the needed columns). Each chunk is scored with ``model.predict_frame`` and appended to the
output through one ``pyarrow.parquet.ParquetWriter``; the output is written to a temporary file beside
the target and renamed at the end, so a crash never leaves a complete-looking half file.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from deepromo.data.tables import DataValidationError

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
DEFAULT_ID_COLUMN = "customer_id"
FORWARD_BATCH = 8192  # rows per forward pass inside a chunk


def input_format(path: str | os.PathLike) -> str:
    """``"csv"`` or ``"parquet"`` from the file name; anything else is a ValueError."""
    name = os.fspath(path).lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise ValueError(
        f"cannot read '{os.fspath(path)}': unsupported file type; "
        f"expected one of {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
    )


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _file_columns(path: Path, fmt: str) -> tuple[list[str], int | None]:
    """The column names of the file (header/schema only) and, for Parquet, its row count."""
    if fmt == "parquet":
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataValidationError(f"cannot read '{path}' as Parquet: {exc}") from None
        return list(pf.schema_arrow.names), pf.metadata.num_rows
    try:
        header = pd.read_csv(path, nrows=0)
    except pd.errors.EmptyDataError:
        raise DataValidationError(f"'{path}' is empty: no header row") from None
    return [str(c) for c in header.columns], None


def _parquet_chunks(path: Path, columns: list[str], features: list[str], chunk_size: int) -> Iterator:
    """Yield ``(features as DataFrame, passthrough columns as Arrow table)`` per chunk."""
    # No pre-buffering and a bounded read buffer: column chunks are read page by page, so even a single
    # 1M-row row group is decoded one batch at a time; no threads, so no read-ahead of further batches.
    pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    for batch in pf.iter_batches(batch_size=chunk_size, columns=columns, use_threads=False):
        table = pa.Table.from_batches([batch])
        yield table.select(features).to_pandas(), table


def _csv_chunks(path: Path, columns: list[str], categorical: list[str], chunk_size: int) -> Iterator:
    # categorical columns as text: "01" stays "01", and 1 vs 1.0 never depends on the chunk's contents
    reader = pd.read_csv(path, usecols=columns, chunksize=chunk_size, dtype={c: str for c in categorical})
    with reader:
        for chunk in reader:
            yield chunk, None


def _empty_input(path: Path, fmt: str, columns: list[str], categorical: list[str]):
    """A zero-row frame with the file's columns (and, for Parquet, its Arrow types)."""
    if fmt == "parquet":
        table = pq.ParquetFile(path).schema_arrow.empty_table().select(columns)
        return table.to_pandas(), table
    return pd.read_csv(path, usecols=columns, nrows=0, dtype={c: str for c in categorical}), None


def _output_table(scores: pd.DataFrame, passthrough: pa.Table | pd.DataFrame | None, chunk: pd.DataFrame,
                  pass_columns: list[str]) -> pa.Table:
    if passthrough is None:  # CSV: the passthrough columns come from the pandas chunk
        table = pa.Table.from_pandas(chunk[pass_columns], preserve_index=False)
    else:
        table = passthrough.select(pass_columns)
    for col in scores.columns:
        table = table.append_column(col, pa.array(scores[col].to_numpy()))
    return table.replace_schema_metadata(None)


def score_file(
    model_source,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    chunk_size: int = 100_000,
    id_columns: Sequence[str] | None = None,
    keep_columns: Sequence[str] = (),
    progress: bool = True,
    events: str | os.PathLike | pd.DataFrame | None = None,
    as_of: float | None = None,
) -> dict:
    """Score every row of a CSV or Parquet file and write the scores to a Parquet file.

    model_source: a checkpoint path, a ``models:/NAME@alias`` / ``models:/NAME/VERSION`` URI (anything
        ``deepromo.load_model`` accepts), or an already loaded model.
    input_path: ``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq``; it must hold every column the model's
        preprocessor needs (checked from the header/schema before anything is scored).
    output_path: ``.parquet`` or ``.pq``. Columns: ``id_columns``, then ``keep_columns``, then the model's
        ``frame_columns()``; one row per input row, in input order.
    chunk_size: rows read and scored at a time (bounds memory).
    id_columns: copied to the output first; default ``["customer_id"]`` if the file has it, else none.
    keep_columns: more input columns copied to the output after the ids.
    progress: show a tqdm progress bar (rows and rows/s) on stderr.
    events: for sequence models (txl), the behaviour events of the customers (a CSV/Parquet path or a
        DataFrame with customer_id, ts, event_type, category, amount, promo_active); read once, joined to
        each chunk's customers by ``customer_id``. as_of: the prediction time in days (default: just after
        each customer's newest event).

    An input with a header but no rows gives an output with the right columns and zero rows.
    Returns ``{"rows", "chunks", "seconds", "rows_per_s", "input", "output", "columns"}``.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    input_path, output_path = Path(input_path), Path(output_path)
    fmt = input_format(input_path)
    if not output_path.name.lower().endswith(PARQUET_SUFFIXES):
        raise ValueError(
            f"output '{output_path}' must be a Parquet file ({' or '.join(PARQUET_SUFFIXES)}); scores are written as Parquet"
        )
    if not input_path.is_file():
        raise FileNotFoundError(f"no input file at '{input_path}'")
    if output_path.resolve() == input_path.resolve():
        raise ValueError(f"output '{output_path}' is the input file; choose another output path")

    model = _resolve_model(model_source)
    pre = model.preprocessor
    model_columns = model.input_columns()
    output_columns = model.frame_columns()

    file_columns, total_rows = _file_columns(input_path, fmt)
    present = set(file_columns)
    if id_columns is None:
        id_columns = [DEFAULT_ID_COLUMN] if DEFAULT_ID_COLUMN in present else []
    pass_columns = _unique([*id_columns, *keep_columns])
    missing_features = [c for c in model_columns if c not in present]
    missing_pass = [c for c in pass_columns if c not in present]
    if missing_features or missing_pass:
        parts = []
        if missing_features:
            parts.append(f"{len(missing_features)} column(s) the model '{model.name}' needs: {missing_features}")
        if missing_pass:
            parts.append(f"id/keep column(s) {missing_pass}")
        raise DataValidationError(f"input '{input_path}' lacks " + "; and ".join(parts))
    clash = [c for c in pass_columns if c in output_columns]
    if clash:
        raise ValueError(f"id/keep column(s) {clash} would clash with the model's output columns {output_columns}")

    features = list(model_columns)
    categorical = list(pre.categorical) if pre is not None else []  # read as strings from CSV
    context = {}
    if pre is not None and pre.events is not None:  # a sequence model: each chunk's customers are joined to their events
        if events is None:
            raise ValueError(f"model '{model.name}' reads each customer's event history: pass the events file "
                             "(predict.py --events FILE)")
        if DEFAULT_ID_COLUMN not in present:
            raise DataValidationError(f"input '{input_path}' lacks '{DEFAULT_ID_COLUMN}', needed to join the events")
        features = _unique([*features, DEFAULT_ID_COLUMN])
        context = {"events": read_events(events), "as_of": as_of}
    needed = _unique([*features, *pass_columns])
    if fmt == "parquet":
        chunks = _parquet_chunks(input_path, needed, features, chunk_size)
    else:
        chunks = _csv_chunks(input_path, needed, categorical, chunk_size)

    output_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=output_path.parent, prefix=f".{output_path.name}.", suffix=".tmp")
    os.close(fd)
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    rows = n_chunks = 0
    start_time = time.perf_counter()
    from tqdm.auto import tqdm

    bar = tqdm(total=total_rows, unit="rows", unit_scale=True, desc="scoring", disable=not progress, leave=True)
    try:
        for frame, passthrough in chunks:
            if len(frame) == 0:
                continue
            table = _score_chunk(model, frame, passthrough, pass_columns, rows, input_path, context)
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(tmp_name, schema)
            elif not table.schema.equals(schema):
                table = _cast(table, schema, rows, input_path)
            writer.write_table(table)
            rows += len(frame)
            n_chunks += 1
            bar.update(len(frame))
        if writer is None:  # no rows at all: write a typed, empty file
            frame, passthrough = _empty_input(input_path, fmt, needed, categorical)
            table = _score_chunk(model, frame, passthrough, pass_columns, 0, input_path, context)
            writer = pq.ParquetWriter(tmp_name, table.schema)
            writer.write_table(table)
        writer.close()
        writer = None
        os.replace(tmp_name, output_path)
    except BaseException:
        if writer is not None:
            try:
                writer.close()
            except Exception:  # pragma: no cover - already failing
                pass
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - start_time
    return {
        "rows": rows,
        "chunks": n_chunks,
        "seconds": seconds,
        "rows_per_s": rows / seconds if seconds > 0 else float("nan"),
        "input": str(input_path),
        "output": str(output_path),
        "columns": [*pass_columns, *output_columns],
    }


def _resolve_model(model_source):
    from deepromo.models.base import PromoModel

    if isinstance(model_source, PromoModel):
        return model_source.eval()
    import deepromo

    return deepromo.load_model(model_source)


def read_events(source) -> pd.DataFrame:
    """The events table from a DataFrame or a CSV/Parquet path (only the columns a sequence model reads)."""
    from deepromo.data.sequences import EVENT_COLUMNS, HISTORY_FIELDS, check_events

    if isinstance(source, pd.DataFrame):
        events = source
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no events file at '{path}'")
        fmt = input_format(path)
        names, _ = _file_columns(path, fmt)
        columns = [c for c in _unique([*EVENT_COLUMNS, *HISTORY_FIELDS]) if c in names]
        events = pd.read_parquet(path, columns=columns) if fmt == "parquet" else pd.read_csv(path, usecols=columns)
    check_events(events, "events")
    return events


def _score_chunk(model, frame: pd.DataFrame, passthrough, pass_columns: list[str], first_row: int, path: Path,
                 context: dict | None = None) -> pa.Table:
    try:
        # forward passes over at most FORWARD_BATCH rows: activations, not the chunk, would dominate memory
        scores = model.predict_frame(frame, batch_size=FORWARD_BATCH, **(context or {}))
    except DataValidationError as exc:
        raise DataValidationError(
            f"'{path}', chunk of rows {first_row}-{first_row + len(frame) - 1} (row numbers below count from its start): {exc}"
        ) from None
    return _output_table(scores, passthrough, frame, pass_columns)


def _cast(table: pa.Table, schema: pa.Schema, first_row: int, path: Path) -> pa.Table:
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        got = {f.name: str(f.type) for f in table.schema if schema.field(f.name).type != f.type}
        raise DataValidationError(
            f"rows from {first_row} of '{path}' have column types {got} that do not match the first chunk's "
            f"({ {n: str(schema.field(n).type) for n in got} }): {exc}"
        ) from None
