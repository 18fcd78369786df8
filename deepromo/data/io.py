"""The one CSV/TSV/Parquet reader, shared by the data sources and batch scoring (docs/byod.md, "Reading files").

Only the asked-for columns are read, with pyarrow, in batches of bounded size. CSV columns are text unless
named ``numeric`` (float64, converted per batch: a bad value is reported with its file and row) or ``typed``
(pyarrow infers their type from the first block); Parquet columns keep their stored types.
"""

from __future__ import annotations

import contextlib
import contextvars
import glob
import io as io_module
import lzma
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from deepromo.data.errors import UserInputError
from deepromo.data.tables import DataValidationError

PARQUET_SUFFIXES = (".parquet", ".pq")
# .gz, .bz2 and .zst are decompressed by pyarrow, .xz and .zip (one member) by the standard library
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zip")
CSV_SUFFIXES = (".csv", *(".csv" + c for c in COMPRESSIONS))
TSV_SUFFIXES = (".tsv", *(".tsv" + c for c in COMPRESSIONS))
# the order messages list them in: the most used first
SUFFIXES = (".csv", ".csv.gz", *PARQUET_SUFFIXES, ".tsv", ".tsv.gz",
            *(s for c in COMPRESSIONS[1:] for s in (".csv" + c, ".tsv" + c)))
PARQUET_BATCH_ROWS = 262_144  # rows per batch when the caller does not ask for a size
PARQUET_BUFFER_BYTES = 1 << 20
CSV_BLOCK_BYTES = 1 << 20  # pyarrow's default: its parser holds several blocks at a time, so keep them small
EVENT_REQUIRED = ("customer_id", "ts", "event_type")
EVENT_OPTIONAL = ("amount", "product_id", "category", "promo_active", "offer_id")
READ_ERRORS = (pa.ArrowException, OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile)


def _prefix(what: str) -> str:
    return f"{what}: " if what else ""


def _error(what: str, text: str) -> DataValidationError:
    return DataValidationError(_prefix(what) + text)


def file_format(file, what: str = "") -> str:
    """``"csv"``, ``"tsv"`` or ``"parquet"`` from the file name; any other suffix is an error listing ``SUFFIXES``."""
    name = Path(file).name.lower()
    for fmt, suffixes in (("csv", CSV_SUFFIXES), ("tsv", TSV_SUFFIXES), ("parquet", PARQUET_SUFFIXES)):
        if name.endswith(suffixes):
            return fmt
    raise _error(what, f"file '{file}' has an unknown suffix; expected one of {list(SUFFIXES)}, "
                       f"got '{Path(file).suffix}'")


def resolve_files(path, option: str, what: str = "") -> list[Path]:
    """The files named by option ``option``: one path, a glob pattern, or a list of either (in that order); each
    must exist and have a known suffix."""
    if path is None or (isinstance(path, str) and path.strip() == ""):
        raise _error(what, f"option {option} is required (a CSV/Parquet file path, a glob or a list)")
    items = [path] if isinstance(path, (str, Path)) else path
    if not isinstance(items, Sequence) or isinstance(items, (bytes, bytearray)) or len(items) == 0:
        raise UserInputError(f"{_prefix(what)}option {option} must be a path, a glob pattern or a non-empty list of them, "
                         f"got {path!r}")
    files: list[Path] = []
    for item in items:
        if not isinstance(item, (str, Path)):
            raise UserInputError(f"{_prefix(what)}option {option} must hold path strings, got {item!r}")
        text = str(Path(item).expanduser())
        if any(ch in text for ch in "*?["):
            matches = sorted(glob.glob(text))
            if not matches:
                raise _error(what, f"no file matches {option}='{item}'")
            files += [Path(m) for m in matches]
        else:
            files.append(Path(text))
    for file in files:
        file_format(file, what)
        if not file.is_file():
            state = "is a directory, not a file" if file.is_dir() else "does not exist"
            raise _error(what, f"file '{file}' (option {option}) {state}")
    return files


def _zip_member(file: Path):
    with zipfile.ZipFile(file) as archive:  # the member stays readable after the archive is closed
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) != 1:
            raise DataValidationError(f"file '{file}' holds {len(members)} files; expected a .zip of exactly one "
                                      f"CSV/TSV file")
        return archive.open(members[0])


def _byte_stream(file: Path):
    """The file's CSV/TSV text as a readable byte stream, decompressed by its suffix."""
    name = file.name.lower()
    if name.endswith(".xz"):
        return lzma.open(file, "rb")
    if name.endswith(".zip"):
        return _zip_member(file)
    return pa.input_stream(str(file), compression="detect")


TEXT_ENCODING: contextvars.ContextVar[str] = contextvars.ContextVar("text_encoding", default="utf8")


@contextlib.contextmanager
def text_encoding(encoding: str | None):
    """Read CSV/TSV text in ``encoding`` (e.g. ``latin-1``) inside this block (the sources' and scoring's
    ``encoding`` option); UTF-8 otherwise."""
    import codecs

    name = encoding or "utf8"
    try:
        codecs.lookup(name)
    except LookupError:
        raise DataValidationError(f"encoding={encoding!r}: not a text encoding Python knows (e.g. utf-8, latin-1, "
                                  "cp1252)") from None
    token = TEXT_ENCODING.set(name)
    try:
        yield
    finally:
        TEXT_ENCODING.reset(token)


def undecodable_text(file: Path, error: Exception) -> DataValidationError | None:
    """For pyarrow's "invalid UTF8" error: one naming the column and the first row that is not valid text in the
    current encoding, and the option that reads it; None for other errors."""
    if "invalid UTF8" not in str(error):
        return None
    match = re.search(r"column #(\d+)", str(error))  # pyarrow counts the file's columns
    encoding, row, header = TEXT_ENCODING.get(), None, []
    with _byte_stream(file) as stream:
        for number, line in enumerate(io_module.TextIOWrapper(io_module.BufferedReader(stream), encoding="latin-1")):
            if number == 0:
                header = line.rstrip("\r\n").split("\t" if file_format(file) == "tsv" else ",")
            try:
                line.encode("latin-1").decode(encoding)
            except UnicodeDecodeError:
                row = number - 1  # the header is line 0
                break
    index = int(match.group(1)) if match else -1
    column = header[index].strip('"') if 0 <= index < len(header) else "?"
    where = f"column '{column}'" + (f", row {row}" if row is not None else "")
    return DataValidationError(f"file '{file}': {where} is not valid {encoding} text; pass the file's encoding "
                               "(data option encoding=latin-1, or predict.py --encoding latin-1)")


@contextlib.contextmanager
def _csv_reader(file: Path, fmt: str, convert: pa_csv.ConvertOptions | None = None):
    read = pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES, encoding=TEXT_ENCODING.get())
    parse = pa_csv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",")
    with _byte_stream(file) as stream, pa_csv.open_csv(stream, read_options=read, parse_options=parse,
                                                       convert_options=convert) as reader:
        yield reader


def _is_empty(file: Path) -> bool:
    try:
        with _byte_stream(file) as stream:
            return len(stream.read(1)) == 0
    except READ_ERRORS:
        return False


def file_columns(file, what: str = "") -> list[str]:
    """Column names of a CSV/TSV file (its header) or Parquet file (its schema); reads at most one CSV block."""
    file = Path(file)
    fmt = file_format(file, what)
    try:
        if fmt == "parquet":
            return list(pq.read_schema(file).names)
        with _csv_reader(file, fmt) as reader:
            names = list(reader.schema.names)
    except READ_ERRORS as e:
        if fmt != "parquet" and _is_empty(file):
            raise _error(what, f"file '{file}' is empty: no header row; expected a {fmt.upper()} header") from None
        raise _error(what, f"file '{file}' is not a readable {fmt} file ({e})") from None
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise _error(what, f"file '{file}' has the column header(s) {repeated} more than once; rename them so that "
                           "each column has one name (only one of each could be read)")
    return names


def row_count(file) -> int | None:
    """The number of data rows of a Parquet file (from its metadata); None for CSV/TSV (unknown until read)."""
    if file_format(file) != "parquet":
        return None
    return pq.read_metadata(file).num_rows


def require_columns(file, columns: Sequence[str], what: str = "", role: str = "") -> list[str]:
    """The file's columns; an error listing by name every one of ``columns`` it lacks, and the columns it has."""
    have = file_columns(file, what)
    missing = [c for c in columns if c not in have]
    if missing:
        raise _error(what, f"file '{Path(file).name}' lacks column(s) {missing}{role}; it has {have}")
    return have


def _to_float(arr: pa.Array, column: str, file: Path, offset: int, what: str) -> pa.Array:
    """One batch of a numeric column as float64; non-numeric values are an error with examples and rows."""
    t = arr.type
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t):
        return pc.cast(arr, pa.float64())
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        if not pa.types.is_dictionary(t):
            try:
                return pc.cast(arr, pa.float64())  # fast path; fails on any unparsable value
            except pa.ArrowInvalid:
                pass
        s = pd.Series(arr.to_pandas(), dtype=object)
        text = s.where(s.isna(), s.astype(str).str.strip())
        v = pd.to_numeric(text, errors="coerce")
        bad = (v.isna() & s.notna()).to_numpy()
        if bad.any():
            rows = np.flatnonzero(bad)[:3]
            examples = ", ".join(f"{s.iloc[r]!r} (row {offset + r})" for r in rows)
            raise _error(what, f"column '{column}' of '{file.name}' must be numeric, got non-numeric value(s) "
                               f"{examples} ({int(bad.sum())} in this batch; rows count from 0, header excluded)")
        return pa.array(v.to_numpy(dtype=np.float64), type=pa.float64())
    example = arr.slice(0, 1).to_pylist()
    kind = ("timestamps" if pa.types.is_timestamp(t) or pa.types.is_date(t) else "durations"
            if pa.types.is_duration(t) else "values of that type")
    raise _error(what, f"column '{column}' of '{file.name}' must be numeric, got type {t}: {kind} (e.g. {example}); "
                       "convert it to plain numbers (e.g. days) first")


def _record_batches(file: Path, columns: list[str], typed: set[str], batch_rows: int, what: str
                    ) -> Iterator[pa.RecordBatch]:
    """The file's record batches of ``columns``; one empty batch when it has no data rows."""
    fmt = file_format(file, what)
    try:
        if fmt == "parquet":
            # no pre-buffering, a bounded read buffer and no threads: pages are decoded one batch at a time, and
            # no further batch is read ahead
            with pq.ParquetFile(file, pre_buffer=False, buffer_size=PARQUET_BUFFER_BYTES) as parquet:
                schema = pa.schema([parquet.schema_arrow.field(c) for c in columns])
                batches = parquet.iter_batches(batch_size=batch_rows, columns=columns, use_threads=False)
                yield from _or_empty(batches, schema)
        else:
            # text unless typed: types inferred on the first block could not hold for later ones
            convert = pa_csv.ConvertOptions(include_columns=columns, strings_can_be_null=True,
                                            column_types={c: pa.string() for c in columns if c not in typed})
            with _csv_reader(file, fmt, convert) as reader:
                yield from _or_empty(reader, reader.schema)
    except READ_ERRORS as e:
        decoding = undecodable_text(file, e) if fmt != "parquet" else None
        if decoding is not None:
            raise decoding from None
        raise _error(what, f"cannot read file '{file}' ({e})") from None


def _or_empty(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    empty = True
    for batch in batches:
        empty = False
        yield batch
    if empty:
        yield pa.RecordBatch.from_pylist([], schema=schema)


def _converted(file: Path, columns: list[str], numeric: set[str], typed: set[str], batch_rows: int,
               what: str) -> Iterator[pa.Table]:
    offset = 0
    for batch in _record_batches(file, columns, typed, batch_rows, what):
        arrays = [_to_float(batch.column(c), c, file, offset, what) if c in numeric else batch.column(c)
                  for c in columns]
        offset += batch.num_rows
        yield pa.Table.from_arrays(arrays, names=columns)


def _regrouped(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The same rows as tables of exactly ``rows`` rows (the last one shorter; one empty table if there are none)."""
    pending: list[pa.Table] = []
    count, done = 0, False
    for table in tables:
        pending.append(table)
        count += table.num_rows
        while count >= rows:
            whole = pa.concat_tables(pending)
            yield whole.slice(0, rows)
            rest = whole.slice(rows)
            pending, count, done = ([rest] if rest.num_rows else []), count - rows, True
    if count or not done:
        yield pa.concat_tables(pending)


def iter_batches(file, columns: Sequence[str], *, numeric: Iterable[str] = (), typed: Iterable[str] = (),
                 rows: int | None = None, what: str = "", role: str = "") -> Iterator[pa.Table]:
    """Only ``columns`` of one file, in that order, as Arrow tables of ``rows`` rows each (the last one shorter;
    None: as read, at most ``PARQUET_BATCH_ROWS`` rows or ``CSV_BLOCK_BYTES`` of CSV). A file without data rows
    gives one empty table with the columns' types. Memory: one batch (plus one CSV block), not the file.

    numeric: columns converted to float64 (a non-number is an error naming the file, column and row).
    typed: CSV columns whose type pyarrow infers from the first block (e.g. ids written back as they are);
        the other CSV columns are text, missing cells (``""``, ``NA``, ``null`` ...) null.
    The missing columns are an error (``role`` ends its message) before anything is read.
    """
    file, columns = Path(file), list(dict.fromkeys(columns))
    require_columns(file, columns, what, role)
    tables = _converted(file, columns, set(numeric), set(typed), rows or PARQUET_BATCH_ROWS, what)
    return tables if rows is None else _regrouped(tables, rows)


def read_files(files: Sequence, columns: Sequence[str], *, numeric: Iterable[str] = (), typed: Iterable[str] = (),
               what: str = "", role: str = "") -> pd.DataFrame:
    """Only ``columns`` of ``files`` (concatenated in order) as one DataFrame ``[rows, len(columns)]``, read in
    batches; ``numeric`` / ``typed`` as for :func:`iter_batches` (missing CSV cells are NA)."""
    numeric, typed = list(numeric), list(typed)
    frames = [pa.concat_tables(list(iter_batches(file, columns, numeric=numeric, typed=typed, what=what,
                                                 role=role))).to_pandas()
              for file in files]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def name_map(value, option: str, what: str = "") -> dict[str, str]:
    """Option ``option`` as a dict of names to names (None: empty); anything else is a ValueError."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise UserInputError(f"{_prefix(what)}option {option} must map names to names, got {value!r}")
    return dict(value)


def read_canonical(files: Sequence, required: Sequence[str], optional: Sequence[str] = (), renames=None, *,
                   option: str = "columns", known: Sequence[str] = (), defaults: Mapping[str, str] | None = None,
                   numeric: Iterable[str] = (), typed: Iterable[str] = (), what: str = "",
                   role: str = "") -> tuple[pd.DataFrame, dict[str, str]]:
    """The ``required`` columns of ``files`` and the ``optional`` ones the first file has, under canonical names.

    renames: option ``option``, canonical name -> file column name where the file spells it differently; its
        keys must be canonical names (``required``, ``optional`` or ``known``: names this read skips), and an
        optional column it names must be in the files.
    defaults: canonical name -> file column used instead of the canonical name when ``renames`` does not name
        one and the first file has it.
    numeric, typed: canonical names, as for :func:`iter_batches`.
    Returns (the DataFrame with canonical column names, canonical name -> file column of each column read).
    """
    renames = name_map(renames, option, what)
    canonical = list(dict.fromkeys((*required, *optional, *known)))
    unknown = sorted(set(renames) - set(canonical))
    if unknown:
        raise UserInputError(f"{_prefix(what)}option {option} has unknown key(s) {unknown}; canonical columns are "
                         f"{canonical}")
    have = file_columns(files[0], what)
    source = {c: renames.get(c, c) for c in (*required, *optional)}
    for c, column in (defaults or {}).items():
        if c not in renames and column in have:
            source[c] = column
    read = [*required, *(c for c in optional if source[c] in have or c in renames)]
    source = {c: source[c] for c in read}
    frame = read_files(files, list(source.values()), numeric=[source[c] for c in numeric if c in source],
                       typed=[source[c] for c in typed if c in source], what=what, role=role)
    return frame.rename(columns={column: c for c, column in source.items()}), source


def read_events(files: Sequence, events_columns=None, event_type_map=None, *,
                optional: Sequence[str] = EVENT_OPTIONAL, id_column: str | None = None,
                numeric: Iterable[str] = ("amount",), typed: Iterable[str] = (),
                what: str = "events") -> tuple[pd.DataFrame, dict[str, str]]:
    """Events files under the canonical event column names, event types stripped and renamed.

    Reads ``EVENT_REQUIRED`` and the ``optional`` columns (some of ``EVENT_OPTIONAL``) the first file has.
    events_columns: canonical name -> file column name (any canonical event column). event_type_map: file event
    type -> canonical type (others kept; missing stay missing). id_column: the file column of ``customer_id``
    when events_columns names none and the file has it.
    numeric, typed: canonical names, as for :func:`iter_batches`.
    Returns (events with canonical column names, canonical name -> file column of each column read).
    """
    type_map = name_map(event_type_map, "event_type_map", what)
    frame, source = read_canonical(
        files, EVENT_REQUIRED, optional, events_columns, option="events_columns", known=EVENT_OPTIONAL,
        defaults={"customer_id": id_column} if id_column else None, numeric=numeric, typed=typed, what=what,
        role=" (needed as event columns customer_id, ts, event_type; rename with events_columns)")
    types = pd.Series(frame["event_type"], dtype=object)
    types = types.where(types.isna(), types.astype(str).str.strip())
    frame["event_type"] = types.map(lambda v: type_map.get(v, v) if isinstance(v, str) else v)
    return frame, source


def read_fields(file, names: Sequence[str], what: str = "", expected: str = "") -> pd.DataFrame:
    """A headerless text file of whitespace-separated fields (e.g. CDNOW_master.txt; compressed by its suffix) as
    text columns ``names``, ``[lines, len(names)]``; an empty file has zero rows. expected: the format, for errors."""
    file = Path(file)
    try:
        return pd.read_csv(file, sep=r"\s+", header=None, names=list(names), dtype=str, engine="c")
    except pd.errors.EmptyDataError:
        return pd.DataFrame({name: pd.Series(dtype=str) for name in names})
    except (pd.errors.ParserError, UnicodeDecodeError, *READ_ERRORS) as e:
        raise _error(what, f"file '{file.name}' is not in {expected or 'the expected format'}: {e}") from None


__all__ = [
    "CSV_SUFFIXES",
    "EVENT_OPTIONAL",
    "EVENT_REQUIRED",
    "PARQUET_SUFFIXES",
    "SUFFIXES",
    "TSV_SUFFIXES",
    "file_columns",
    "file_format",
    "iter_batches",
    "name_map",
    "read_canonical",
    "read_events",
    "read_fields",
    "read_files",
    "require_columns",
    "resolve_files",
    "row_count",
]
