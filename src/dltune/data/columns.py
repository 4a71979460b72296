"""A table's columns as they are before encoding: numbers, booleans or labels, missing cells kept.

One :class:`RawColumn` per column of a CSV file, a Parquet table or a pandas DataFrame, in one
representation whatever the source: ``number`` and ``boolean`` columns hold float64 values (NaN
where a cell is missing; a boolean as 0 or 1), ``category`` columns hold text labels (None where
a cell is missing). The encoder (:mod:`.encoding`) learns from these and turns them into
numbers; the same converters read the new rows that `predict` gets, so training and prediction
read a cell the same way.

A CSV column is a number column when every cell that is not empty (or NA, NaN, null, None) is
a number, a boolean one when every such cell is true or false (any case), a category otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from dltune.errors import DataError

from .tables import MISSING_TOKENS

Kind = Literal["number", "boolean", "category"]
KINDS: tuple[Kind, ...] = ("number", "boolean", "category")
TRUE, FALSE = frozenset({"true"}), frozenset({"false"})


@dataclass(frozen=True)
class RawColumn:
    name: str
    kind: Kind
    values: np.ndarray  # float64 (number, boolean; NaN missing) or object of str/None (category)

    def take(self, rows: np.ndarray) -> RawColumn:
        return RawColumn(self.name, self.kind, self.values[rows])

    @property
    def missing(self) -> np.ndarray:
        """A boolean mask of the missing cells."""
        if self.kind == "category":
            return np.array([v is None for v in self.values], dtype=bool)
        return np.isnan(self.values)


def is_missing(value: Any) -> bool:
    """An empty cell: None, NaN (float or pandas' NA), or text that says nothing
    (MISSING_TOKENS: '', NA, N/A, NaN, null, None)."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().lower() in MISSING_TOKENS
    if isinstance(value, (float, np.floating)):
        return bool(np.isnan(value))
    try:  # pandas.NA and NaT: their truth is ambiguous, and `x != x` for NaT
        return bool(value != value)
    except (TypeError, ValueError):
        return True


def _number(value: Any) -> float | None:
    """A cell as a float, or None when it is not a number (a missing cell is NaN)."""
    if is_missing(value):
        return float("nan")
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _boolean(value: Any) -> float | None:
    """A cell as 1.0 (true) or 0.0 (false), NaN when missing, None when it is neither."""
    if is_missing(value):
        return float("nan")
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        return 1.0 if text in TRUE else 0.0 if text in FALSE else None
    number = _number(value)
    return number if number in (0.0, 1.0) else None


def label(value: Any) -> str | None:
    """A cell as a category's label (its text, stripped), None when missing."""
    if is_missing(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))  # 3.0 in a table of numbers and '3' in a CSV: one label
    return str(value.item() if isinstance(value, np.generic) else value).strip()


def labels(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    return np.array([label(v) for v in values], dtype=object)


def converted(
    values: Sequence[Any] | np.ndarray,
    kind: Kind,
    where: str,
    name: str,
    row_label: Callable[[int], str],
) -> np.ndarray:
    """`values` read as `kind` (float64, or labels), or a DataError naming the first cell that
    is not of that kind: a column that held numbers in training must hold numbers now."""
    if kind == "category":
        return labels(values)
    arr = np.asarray(values)
    if arr.dtype.kind in "biuf":  # already numbers: a boolean or number column of an array
        out = arr.astype(np.float64)
        if kind == "boolean" and not np.isin(out[~np.isnan(out)], (0.0, 1.0)).all():
            i = int(np.argmax(~np.isin(out, (0.0, 1.0)) & ~np.isnan(out)))
            raise _wrong_kind(where, name, kind, row_label(i), arr[i])
        return out
    read = _boolean if kind == "boolean" else _number
    out = np.empty(len(arr), dtype=np.float64)
    for i, v in enumerate(arr):
        got = read(v)
        if got is None:
            raise _wrong_kind(where, name, kind, row_label(i), v)
        out[i] = got
    return out


def _wrong_kind(where: str, name: str, kind: Kind, row: str, value: Any) -> DataError:
    value = value.item() if isinstance(value, np.generic) else value  # 'x', not np.str_('x')
    what = "numbers" if kind == "number" else "true or false"
    return DataError(
        f"{where}: column {name!r} holds {value!r} at {row}, but the model reads it as {kind} "
        f"(it held {what} in training). Fix that cell, or leave it empty (empty cells are "
        f"imputed)."
    )


# ---- what kind a column is, from the data ---------------------------------------------------


def from_cells(name: str, cells: Sequence[str]) -> RawColumn:
    """A CSV column, its kind told from its cells (see the module's note)."""
    present = [c.strip() for c in cells if not is_missing(c)]
    if all(_number(c) is not None for c in present):
        return RawColumn(name, "number", converted(cells, "number", "", name, str))
    if present and all(c.lower() in TRUE | FALSE for c in present):
        return RawColumn(name, "boolean", converted(cells, "boolean", "", name, str))
    return RawColumn(name, "category", labels(cells))


def from_arrow(name: str, column: Any) -> RawColumn:
    """A pyarrow column: integers, floats and decimals are numbers, booleans booleans, anything
    else (text, dictionaries, i.e. categoricals, dates) labels."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_boolean(kind):
        return RawColumn(name, "boolean", column.cast(pa.float64()).to_numpy(zero_copy_only=False))
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return RawColumn(name, "number", column.cast(pa.float64()).to_numpy(zero_copy_only=False))
    return RawColumn(name, "category", labels(column.to_pylist()))


def from_series(name: str, series: Any) -> RawColumn:
    """A pandas column: bool (and the nullable boolean) are booleans, numbers (nullable
    integers too) numbers, categoricals, text and objects labels. An object column of numbers
    only (and missing cells) is numbers."""
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return RawColumn(name, "boolean", series.to_numpy(dtype=np.float64, na_value=np.nan))
    if pd.api.types.is_numeric_dtype(dtype):
        return RawColumn(name, "number", series.to_numpy(dtype=np.float64, na_value=np.nan))
    values = series.to_numpy(dtype=object)
    present = [v for v in values if not is_missing(v)]
    if (
        present
        and not isinstance(dtype, pd.CategoricalDtype)
        and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in present)
    ):
        return RawColumn(name, "number", converted(values, "number", "", name, str))
    return RawColumn(name, "category", labels(values))


def is_dataframe(x: Any) -> bool:
    """Whether `x` is a pandas DataFrame (told without importing pandas)."""
    return type(x).__module__.startswith("pandas") and type(x).__name__ == "DataFrame"


def frame_columns(frame: Any) -> list[RawColumn]:
    """Every column of a pandas DataFrame, named by its text."""
    return [from_series(str(c), frame[c]) for c in frame.columns]


def needs_encoding(frame: Any) -> bool:
    """Whether a DataFrame has a column that is not plain numbers or booleans, or a missing
    value: then it goes through the encoder, else through the numeric path as an array."""
    return any(c.kind == "category" or c.missing.any() for c in frame_columns(frame))
