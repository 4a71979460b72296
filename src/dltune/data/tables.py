"""The one CSV, Parquet and NPZ reader each: training data and the new rows of `predict`.

Both callers read text the same way: UTF-8 with or without a byte-order mark, tab-separated for
.tsv and otherwise split on the first of , ; tab | found in the first line, blank lines skipped,
each row's line number in the file kept for messages. They differ in the header row: training
data must name its columns (`header="required"`), while `dltune predict` takes a file with or
without one (`header="optional"`: a first row of numbers only is data). The two modes keep the
messages each caller gave before the readers were merged, word for word.
"""

from __future__ import annotations

import csv
import zipfile
import zlib
from collections.abc import Generator
from contextlib import closing
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from dltune.errors import DataError

MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})  # lower-cased, stripped

Rows = list[list[str]]


@overload
def read_csv(path: Path, *, header: Literal["required"]) -> tuple[list[str], Rows, list[int]]: ...
@overload
def read_csv(
    path: Path, *, header: Literal["optional"]
) -> tuple[list[str] | None, Rows, list[int]]: ...
def read_csv(path: Path, *, header: str) -> tuple[list[str] | None, Rows, list[int]]:
    """(column names, rows of text cells as written, file line number of each row).

    header="required": the first non-blank row names the columns (training data).
    header="optional": it does unless it holds numbers only; then the names are None and every
    row is data (`dltune predict`, which then matches the columns by position).
    Column names come stripped of spaces; cells as the file has them.
    """
    if header == "required":
        return _read_with_header(path)
    if header == "optional":
        return _read_header_optional(path)
    raise ValueError(f"header must be 'required' or 'optional', not {header!r}")


def _records(path: Path) -> Generator[tuple[list[str], int], None, None]:
    """The file's non-blank rows, each with the line it ends on, read as they are asked for."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            first = f.readline()
            f.seek(0)
            if path.suffix.lower() == ".tsv":
                delimiter = "\t"
            else:  # the first separator found in the first line
                delimiter = next((d for d in ",;\t|" if d in first), ",")
            reader = csv.reader(f, delimiter=delimiter)
            for row in reader:
                if row and any(c.strip() for c in row):
                    yield row, reader.line_num
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e}); save it as UTF-8 CSV.") from None
    except csv.Error as e:
        raise DataError(f"{path}: cannot parse as CSV: {e}.") from None


def _read_with_header(path: Path) -> tuple[list[str], Rows, list[int]]:
    """Training data: the header is checked, then each row as it is read, so the first problem
    in the file is the one reported (a ragged line before a decoding error further on)."""
    columns: list[str] | None = None
    rows: Rows = []
    lines: list[int] = []
    # closing(): a refused row leaves the generator paused; shut its file now, not at collection.
    with closing(_records(path)) as records:
        for row, line in records:
            if columns is None:
                columns = _check_header(row, path)
            elif len(row) != len(columns):
                raise DataError(
                    f"{path}: line {line} has {len(row)} fields but the header has {len(columns)}."
                )
            else:
                rows.append(row)
                lines.append(line)
    if columns is None:
        raise DataError(f"{path}: the file is empty; it needs a header row and data rows.")
    if not rows:
        raise DataError(f"{path}: the file has a header row but no data rows.")
    return columns, rows, lines


def _check_header(header: list[str], path: Path) -> list[str]:
    names = [h.strip() for h in header]
    for j, h in enumerate(names):
        if not h:
            raise DataError(f"{path}: column {j} has an empty name in the header row; name it.")
    seen: set[str] = set()
    for h in names:
        if h in seen:
            raise DataError(f"{path}: column name {h!r} appears twice in the header; rename one.")
        seen.add(h)
    if all(_is_number(h) for h in names):
        raise DataError(
            f"{path}: the first row ({', '.join(names[:5])}...) looks like data, not a header. "
            f"Add a header row naming the columns."
        )
    return names


def _read_header_optional(path: Path) -> tuple[list[str] | None, Rows, list[int]]:
    """New rows for `predict`: the whole file is read before the header and widths are checked
    (so a decoding error anywhere is reported first, as `predict` always did)."""
    records = list(_records(path))
    if not records:
        raise DataError(f"{path}: the file is empty.")
    first = [c.strip() for c in records[0][0]]
    # A first row of numbers only is data; anything else names the columns.
    columns = None if all(_is_number(c) for c in first) else first
    if columns is not None:
        records = records[1:]
        seen: set[str] = set()
        for c in columns:
            if not c or c in seen:
                raise DataError(
                    f"{path}: column name {c!r} in the header is empty or repeated; fix the header."
                )
            seen.add(c)
    if not records:
        raise DataError(f"{path}: the file has a header row but no data rows.")
    width = len(columns) if columns is not None else len(records[0][0])
    said = "the header has" if columns is not None else "the first line has"
    for row, line in records:
        if len(row) != width:
            raise DataError(f"{path}: line {line} has {len(row)} fields, but {said} {width}.")
    return columns, [row for row, _ in records], [line for _, line in records]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --- parquet ---------------------------------------------------------------------------------


def read_parquet(path: Path) -> Any:
    """The file as a pyarrow Table. pyarrow is optional: only .parquet files need it."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            f"{path}: reading .parquet files needs pyarrow, which is not installed. "
            f"Install it with: pip install 'dltune[parquet]'"
        ) from None
    try:
        table = pq.read_table(path)
        # A damaged file may read, then fail on first use: its column names or text not UTF-8.
        table.validate(full=True)
        table.column_names  # noqa: B018 - decoded now, so a bad name is this error
    except (OSError, ValueError, pa.ArrowException) as e:  # UnicodeDecodeError: a ValueError
        raise DataError(f"{path}: cannot read as Parquet: {e}") from None
    return table


# The column helpers below are called only on a table read_parquet returned: pyarrow is there.


def column_kind(column: Any) -> Literal["number", "decimal", "other"]:
    """'number': integer, floating or boolean; 'decimal'; 'other': text, dates, categories..."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return "number"
    return "decimal" if pa.types.is_decimal(kind) else "other"


def column_floats(column: Any) -> np.ndarray:
    """The column as float64; nulls become NaN."""
    import pyarrow as pa

    return column.cast(pa.float64()).to_numpy()


def column_text(column: Any) -> np.ndarray:
    """The column's values as text (a null reads 'None')."""
    return np.array([str(v) for v in column.to_pylist()])


def read_npz(path: Path, save_hint: str) -> dict[str, np.ndarray]:
    """The named arrays of an .npz file (nothing unpickled); `save_hint` ends the message for a
    file numpy cannot read, saying how to save one it can. A single .npy array saved under an
    .npz name is refused."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # np.save's one array, named .npz
            raise DataError(
                f"{path}: holds a single .npy array (shape {loaded.shape}), not an .npz archive "
                f"of named arrays. Save it with np.savez(path, x=..., y=...)."
            )
        with loaded as npz:
            return {k: npz[k] for k in npz.files}
    except ValueError as e:
        raise DataError(f"{path}: cannot read ({e}). {save_hint}") from None
    # zlib: damaged members; NotImplementedError, RuntimeError: zipfile's words for a damaged
    # header (an unknown compression method, a member it takes for encrypted).
    except (
        OSError,
        zipfile.BadZipFile,
        EOFError,
        zlib.error,
        NotImplementedError,
        RuntimeError,
    ) as e:
        raise DataError(f"{path}: not a readable .npz file ({e}).") from None
    except MemoryError as e:  # numpy allocates what an array's header claims before reading it
        raise DataError(
            f"{path}: an array in it does not fit in memory ({e}); the file is damaged (its "
            f"header claims that size) or the data are too large for this machine."
        ) from None
