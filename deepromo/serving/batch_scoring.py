"""Batch scoring: score a CSV/TSV or Parquet file of customers in chunks and write the scores to Parquet.

``score_file`` never holds the whole input in memory: the file is read through ``deepromo.data.io`` (the
reader the data sources train from: same suffixes, only the needed columns) in chunks of ``chunk_size`` rows.
Each chunk is scored with ``model.predict_frame`` and appended to the output through one
``pyarrow.parquet.ParquetWriter``; the output is written to a temporary file beside the target and renamed at
the end, so a crash never leaves a complete-looking half file. With ``drift`` on, the scored rows are also
compared with the model's training data profile (``deepromo.serving.drift``) chunk by chunk, and the drift table is
written beside the scores. ``score_frame`` does the same for a frame already in memory (the scoring frame of new
customers read through training roles: ``deepromo.serving.new_customers``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from deepromo.data import io
from deepromo.data.errors import MissingInputError, UserInputError
from deepromo.data.tables import DataValidationError
from deepromo.serving import drift as drift_monitor

log = logging.getLogger("deepromo")
DEFAULT_ID_COLUMN = "customer_id"
FORWARD_BATCH = 8192  # rows per forward pass inside a chunk


def input_format(path: str | os.PathLike) -> str:
    """``"csv"``, ``"tsv"`` or ``"parquet"`` from the file name (``deepromo.data.io.SUFFIXES``); else a ValueError."""
    try:
        return io.file_format(path)
    except DataValidationError:
        raise UserInputError(
            f"cannot read '{os.fspath(path)}' (suffix '{Path(path).suffix}'): unsupported file type; "
            f"expected one of {', '.join(io.SUFFIXES)}"
        ) from None


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _output_table(scores: pd.DataFrame, chunk: pa.Table, pass_columns: list[str]) -> pa.Table:
    table = chunk.select(pass_columns)
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
    events: str | os.PathLike | Sequence[str] | pd.DataFrame | None = None,
    as_of: float | None = None,
    events_columns: Mapping[str, str] | None = None,
    event_type_map: Mapping[str, str] | None = None,
    encoding: str | None = None,
    drift: bool | str | os.PathLike = False,
    drift_threshold: float = drift_monitor.DEFAULT_PSI_THRESHOLD,
    drift_ks_pvalue: float | None = None,
    drift_share_shift: float | None = None,
    drift_tracking_uri: str | None = None,
) -> dict:
    """Score every row of a CSV/TSV or Parquet file and write the scores to a Parquet file.

    model_source: a checkpoint path, a ``models:/NAME@alias`` / ``models:/NAME/VERSION`` URI (anything
        ``deepromo.load_model`` accepts), or an already loaded model.
    input_path: any file the table source reads (``deepromo.data.io.SUFFIXES``: ``.csv``, ``.tsv``, compressed
        ``.csv.gz`` ..., ``.parquet``, ``.pq``); it must hold every column the model's preprocessor needs (checked
        from the header/schema before anything is scored).
    output_path: ``.parquet`` or ``.pq``. Columns: ``id_columns``, then ``keep_columns``, then the model's
        ``frame_columns()``; one row per input row, in input order.
    chunk_size: rows read and scored at a time (bounds memory).
    id_columns: copied to the output first; default ``["customer_id"]`` if the file has it, else none.
    keep_columns: more input columns copied to the output after the ids.
    progress: show a tqdm progress bar (rows and rows/s) on stderr.
    events: for sequence models (txl), the behaviour events of the customers: CSV/Parquet file(s) (a path, a
        glob or a list) or a DataFrame with customer_id, ts (days), event_type, amount and optionally category,
        promo_active; read once, joined to each chunk's customers by ``customer_id``. events_columns,
        event_type_map: rename an events file's columns and event types, as the table source's options of
        these names do. as_of: the prediction time in days (default: just after each customer's newest event).
    encoding: the text encoding of CSV/TSV inputs and events files (default UTF-8; e.g. ``latin-1``).
    drift: compare the scored rows' features and main score with the model's training profile and write the drift
        table (``deepromo.serving.drift.drift_table``): True for ``<output stem>.drift.csv`` beside the output, or
        a ``.csv`` / ``.parquet`` path. A model saved without a profile is then an error (before anything is scored).
    drift_threshold: PSI at or above which a feature (or the score) is flagged (0.2: a significant shift).
    drift_ks_pvalue, drift_share_shift: also flag numeric features whose KS p-value is below this, and categorical
        ones whose largest category share moved by at least this (absolute share, e.g. 0.1); default off.
    drift_tracking_uri: log the drift table to a new MLflow run in this tracking store (experiment
        ``deepromo-scoring``); with an MLflow run active it is logged to that run, no URI needed.

    An input with a header but no rows gives an output with the right columns and zero rows.
    Returns ``{"rows", "chunks", "seconds", "rows_per_s", "input", "output", "columns"}``, and with drift on
    ``"drift": {"table" (DataFrame), "path", "drifted" (flagged rows' names), "summary" (one line), "mlflow_run_id"}``.
    """
    with io.text_encoding(encoding):  # the CSV/TSV reads below decode with it
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise UserInputError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
        input_path, output_path = Path(input_path), Path(output_path)
        input_format(input_path)
        if not output_path.name.lower().endswith(io.PARQUET_SUFFIXES):
            raise UserInputError(
                f"output '{output_path}' must be a Parquet file ({' or '.join(io.PARQUET_SUFFIXES)}); scores are "
                f"written as Parquet"
            )
        if not input_path.is_file():
            raise MissingInputError(f"no input file at '{input_path}'")
        if output_path.resolve() == input_path.resolve():
            raise UserInputError(f"output '{output_path}' is the input file; choose another output path")

        model = _resolve_model(model_source)
        reference, drift_path, accumulator = _drift_setup(model, model_source, drift, output_path, [input_path],
                                                          drift_threshold, drift_ks_pvalue, drift_share_shift)
        pre = model.preprocessor
        model_columns = model.input_columns()
        output_columns = model.frame_columns()

        present = set(io.file_columns(input_path))
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
            raise UserInputError(f"id/keep column(s) {clash} would clash with the model's output columns {output_columns}")

        features = list(model_columns)
        context = {}
        if pre is not None and pre.events is not None:  # a sequence model: each chunk's customers are joined to their events
            if events is None:
                raise UserInputError(f"model '{model.name}' reads each customer's event history: pass the events file "
                                 "(predict.py --events FILE)")
            if DEFAULT_ID_COLUMN not in present:
                raise DataValidationError(f"input '{input_path}' lacks '{DEFAULT_ID_COLUMN}', needed to join the events")
            features = _unique([*features, DEFAULT_ID_COLUMN])
            context = {"events": read_events(events, events_columns, event_type_map), "as_of": as_of}
        needed = _unique([*features, *pass_columns])
        # CSV: categorical features as text ("01" stays "01"), numeric ones as float64 whatever the first rows look
        # like; ids and kept columns keep the type pyarrow infers (a kept numeric feature too)
        categorical = list(pre.categorical) if pre is not None else []
        numeric = [c for c in pre.numeric if c not in pass_columns] if pre is not None else []
        typed = [c for c in needed if c not in categorical and c not in numeric]
        chunks = io.iter_batches(input_path, needed, numeric=numeric, typed=typed, rows=chunk_size)
        scored = _scored_file_chunks(model, chunks, features, pass_columns, input_path, context, accumulator)
        rows, n_chunks, seconds = _write_scores(scored, output_path, io.row_count(input_path), progress)
        summary = _summary(rows, n_chunks, seconds, str(input_path), output_path, [*pass_columns, *output_columns])
        if accumulator is not None:
            summary["drift"] = _report_drift(reference, accumulator, drift_path, drift_threshold, drift_ks_pvalue,
                                             drift_share_shift, drift_tracking_uri,
                                             {"deepromo.model": model.name, "deepromo.input": str(input_path),
                                              "deepromo.output": str(output_path), "deepromo.rows": str(rows)})
        return summary


def score_frame(
    model_source,
    frame: pd.DataFrame,
    output_path: str | os.PathLike,
    pass_through: pd.DataFrame | None = None,
    context: Mapping | None = None,
    chunk_size: int = 100_000,
    progress: bool = True,
    source: str = "frame",
    drift: bool | str | os.PathLike = False,
    drift_threshold: float = drift_monitor.DEFAULT_PSI_THRESHOLD,
    drift_ks_pvalue: float | None = None,
    drift_share_shift: float | None = None,
    drift_tracking_uri: str | None = None,
) -> dict:
    """Score a frame held in memory, ``chunk_size`` rows at a time, and write the scores to a Parquet file, as
    :func:`score_file` does for a file (same output, drift and summary).

    frame: ``[n rows]`` the model's ``input_columns()`` (other columns ignored; sequence models also read
        ``customer_id`` and, when present, ``as_of``). pass_through: ``[n rows]`` columns copied to the output
        before the scores (e.g. the customers' original ids), row-aligned with ``frame``; default none.
    context: ``predict_frame`` keyword arguments beyond the frame (sequence models: ``events``).
    source: what the rows are, for messages and the drift run's ``deepromo.input`` tag (e.g. the rows file).
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise UserInputError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    output_path = Path(output_path)
    if not output_path.name.lower().endswith(io.PARQUET_SUFFIXES):
        raise UserInputError(f"output '{output_path}' must be a Parquet file ({' or '.join(io.PARQUET_SUFFIXES)}); "
                             "scores are written as Parquet")
    pass_through = pd.DataFrame(index=frame.index) if pass_through is None else pass_through
    if len(pass_through) != len(frame):
        raise UserInputError(f"pass_through has {len(pass_through)} rows, the frame {len(frame)}; they must align")
    model = _resolve_model(model_source)
    output_columns = model.frame_columns()
    clash = [c for c in pass_through.columns if c in output_columns]
    if clash:
        raise UserInputError(f"pass-through column(s) {clash} would clash with the model's output columns "
                             f"{output_columns}")
    missing = [c for c in model.input_columns() if c not in frame.columns]
    if missing:
        raise DataValidationError(f"{source}: the frame lacks {len(missing)} column(s) the model '{model.name}' needs: "
                                  f"{missing}")
    reference, drift_path, accumulator = _drift_setup(model, model_source, drift, output_path, [],
                                                      drift_threshold, drift_ks_pvalue, drift_share_shift)
    passed = pa.Table.from_pandas(pass_through.reset_index(drop=True), preserve_index=False)

    def pieces() -> Iterator[pa.Table]:
        for start in range(0, max(len(frame), 1), chunk_size):  # no rows: one empty piece, a typed empty output
            part = frame.iloc[start:start + chunk_size]
            yield _score_chunk(model, part, passed.slice(start, len(part)), list(pass_through.columns), start,
                               Path(source), dict(context or {}), accumulator)

    rows, n_chunks, seconds = _write_scores(pieces(), output_path, len(frame), progress)
    summary = _summary(rows, n_chunks, seconds, source, output_path, [*pass_through.columns, *output_columns])
    if accumulator is not None:
        summary["drift"] = _report_drift(reference, accumulator, drift_path, drift_threshold, drift_ks_pvalue,
                                         drift_share_shift, drift_tracking_uri,
                                         {"deepromo.model": model.name, "deepromo.input": source,
                                          "deepromo.output": str(output_path), "deepromo.rows": str(rows)})
    return summary


def _drift_setup(model, model_source, drift, output_path: Path, inputs: list[Path], threshold: float,
                 ks_pvalue: float | None, share_shift: float | None):
    """(training profile, drift table path, accumulator) when ``drift`` is on, else three Nones; the settings are
    checked before anything is scored."""
    if drift is False or drift is None:
        return None, None, None
    reference = drift_monitor.model_reference(model, "" if model is model_source else str(model_source))
    drift_path = drift_monitor.default_table_path(output_path) if drift is True else Path(drift)
    if not drift_path.name.lower().endswith((".csv", *io.PARQUET_SUFFIXES)):
        raise UserInputError(f"drift table '{drift_path}' must end in .csv, .parquet or .pq")
    if drift_path.resolve() in [p.resolve() for p in (*inputs, output_path)]:
        raise UserInputError(f"drift table '{drift_path}' is the input or output file; choose another path")
    drift_monitor.check_thresholds(threshold, ks_pvalue, share_shift)
    return reference, drift_path, drift_monitor.DriftAccumulator(reference)


def _scored_file_chunks(model, chunks: Iterable[pa.Table], features: list[str], pass_columns: list[str], path: Path,
                        context: dict, accumulator) -> Iterator[pa.Table]:
    """The output table of each chunk read from ``path``."""
    first_row = 0
    for chunk in chunks:  # an input without rows gives one empty chunk: a typed, empty output
        frame = chunk.select(features).to_pandas()
        table = _score_chunk(model, frame, chunk, pass_columns, first_row, path, context, accumulator)
        first_row += len(frame)
        yield table
        del chunk, frame, table  # freed before the next chunk is read, not after


def _write_scores(tables: Iterable[pa.Table], output_path: Path, total: int | None, progress: bool):
    """Write the scored ``tables`` to ``output_path`` through a temporary file renamed at the end; returns
    (rows, non-empty chunks, seconds)."""
    output_path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphan_temporaries(output_path)
    fd, tmp_name = tempfile.mkstemp(dir=output_path.parent, prefix=temporary_prefix(output_path), suffix=".tmp")
    os.close(fd)
    writer: pq.ParquetWriter | None = None
    rows = n_chunks = 0
    start_time = time.perf_counter()
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="rows", unit_scale=True, desc="scoring", disable=not progress, leave=True)
    try:
        for table in tables:
            if writer is None:
                writer = pq.ParquetWriter(tmp_name, table.schema)
            writer.write_table(table)
            rows += table.num_rows
            n_chunks += 1 if table.num_rows else 0
            bar.update(table.num_rows)
            del table  # freed before the next chunk is read, not after
        writer.close()
        writer = None
        os.chmod(tmp_name, 0o666 & ~current_umask())  # mkstemp makes it 0600; the output gets the user's umask
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
    return rows, n_chunks, time.perf_counter() - start_time


def _summary(rows: int, n_chunks: int, seconds: float, source: str, output_path: Path, columns: list[str]) -> dict:
    return {"rows": rows, "chunks": n_chunks, "seconds": seconds,
            "rows_per_s": rows / seconds if seconds > 0 else float("nan"), "input": source,
            "output": str(output_path), "columns": columns}


def _report_drift(reference: dict, accumulator, path: Path, threshold: float, ks_pvalue: float | None,
                  share_shift: float | None, tracking_uri: str | None, tags: dict) -> dict:
    """The drift table of the scored rows, written to ``path`` and logged to MLflow (see ``score_file``)."""
    table = drift_monitor.drift_table(reference, accumulator, threshold, ks_pvalue, share_shift)
    drift_monitor.write_table(table, path)
    line = drift_monitor.drift_summary(table, threshold, ks_pvalue, share_shift)
    log.info("%s -> %s", line, path)
    run_id = drift_monitor.log_drift(table, f"drift/{path.stem}.json", path, tracking_uri, tags)
    return {"table": table, "path": str(path), "drifted": table.loc[table["drifted"], "feature"].tolist(),
            "summary": line, "mlflow_run_id": run_id}


def _resolve_model(model_source):
    from deepromo.models.base import PromoModel

    if isinstance(model_source, PromoModel):
        return model_source.eval()
    import deepromo

    return deepromo.load_model(model_source)


def read_events(source, events_columns: Mapping[str, str] | None = None,
                event_type_map: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The events table from a DataFrame (canonical columns) or CSV/Parquet file(s) (a path, a glob or a list,
    read through ``deepromo.data.io.read_events`` with ``events_columns`` / ``event_type_map``), checked."""
    from deepromo.data.sequences import HISTORY_FIELDS, check_events

    if isinstance(source, pd.DataFrame):
        if events_columns or event_type_map:
            raise UserInputError("events_columns / event_type_map rename an events file; rename the DataFrame's columns "
                             "and values instead")
        events = source
    else:
        files = io.resolve_files(source, "events", "events")
        optional = [c for c in HISTORY_FIELDS if c in io.EVENT_OPTIONAL]
        # customer_id typed like the input's ids, so that the two join
        events, _ = io.read_events(files, events_columns, event_type_map, optional=optional,
                                   numeric=("ts", "amount"), typed=("customer_id", "promo_active"))
    check_events(events, "events")
    return events


def temporary_prefix(output_path: Path, pid: int | None = None) -> str:
    """Name prefix of the temporary file a scoring run writes before renaming it to ``output_path``."""
    return f".{output_path.name}.{os.getpid() if pid is None else pid}."


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_orphan_temporaries(output_path: Path) -> list[Path]:
    """Delete the temporary files of earlier runs for ``output_path`` whose process is gone (a killed run)."""
    removed = []
    for path in output_path.parent.glob(f".{output_path.name}.*.tmp"):
        pid = path.name[len(output_path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _score_chunk(model, frame: pd.DataFrame, chunk: pa.Table, pass_columns: list[str], first_row: int, path: Path,
                 context: dict | None = None, accumulator=None) -> pa.Table:
    try:
        # forward passes over at most FORWARD_BATCH rows: activations, not the chunk, would dominate memory
        scores = model.predict_frame(frame, batch_size=FORWARD_BATCH, **(context or {}))
    except DataValidationError as exc:
        raise DataValidationError(
            f"'{path}', chunk of rows {first_row}-{first_row + len(frame) - 1} (row numbers below count from its start): {exc}"
        ) from None
    if accumulator is not None:  # after scoring: drift counts exactly the rows that were scored
        accumulator.update(frame, scores)
    return _output_table(scores, chunk, pass_columns)
