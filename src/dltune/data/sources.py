"""Readers for data files: .csv (csv module), .parquet (pyarrow, optional), .npz, IDX folders.

Each reader turns a file into arrays, with errors naming the file, column and line, and hands
them to :func:`from_arrays`. The text of .csv and .parquet files comes through the readers that
`dltune predict` shares (:mod:`.tables`); what makes a column a feature or a target is here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dltune.errors import DataError, did_you_mean, param

from .arrays import from_arrays
from .checks import check_finite
from .columns import from_arrow, from_cells
from .dataset import Dataset
from .idx import find_idx_pairs, read_pair, split_pairs
from .shapes import Shape, idx_example_shape
from .tables import (
    MISSING_TOKENS,
    column_floats,
    column_kind,
    column_text,
    read_csv,
    read_npz,
    read_parquet,
)
from .tabular import from_columns, without_missing_targets

RowLabel = Callable[[int], str]


def target_index(columns: Sequence[str], target: str | int | None, path: Path) -> int:
    """The index of the target column: its name, or an integer position (negative from the end)."""
    listed = ", ".join(repr(c) for c in columns)
    if target is None:
        raise DataError(
            f"{path}: say which column is the target ({param('target', shown='COLUMN')}). "
            f"Columns: {listed}."
        )
    if str(target) in columns:
        return list(columns).index(str(target))
    try:
        position = int(target)
    except ValueError:
        position = None
    if position is not None and -len(columns) <= position < len(columns):
        return position % len(columns)
    raise DataError(
        f"{path}: no column {str(target)!r}.{did_you_mean(target, columns)} Columns: {listed}."
    )


def _parse_numbers(cells: list[str]) -> np.ndarray | None:
    """The cells as float64 (missing tokens as NaN), or None if any cell is not a number."""
    out = np.empty(len(cells), dtype=np.float64)
    for i, c in enumerate(cells):
        try:
            out[i] = float(c)
        except ValueError:
            if c.strip().lower() in MISSING_TOKENS:
                out[i] = np.nan
            else:
                return None
    return out


def load_csv(
    path: Path,
    target: str | int | None,
    task: str | None,
    seed: int,
    shape: Shape | None = None,
    encode: bool = True,
) -> Dataset:
    """A table with a header row, flat unless ``shape`` is given: its columns encoded
    (:mod:`.encoding`), or, with ``encode=False``, numeric feature columns only."""
    columns, rows, lines = read_csv(path, header="required")
    t = target_index(columns, target, path)

    def row_label(i: int) -> str:
        return f"line {lines[i]}"

    if encode:
        raw = [from_cells(c, [r[j] for r in rows]) for j, c in enumerate(columns) if j != t]
        if not raw:
            raise DataError(
                f"{path}: there is no feature column besides the target {columns[t]!r}."
            )
        cells = [r[t] for r in rows]
        raw, kept_cells, kept, notes = without_missing_targets(
            raw, cells, columns[t], str(path), row_label
        )
        return from_columns(
            raw,
            _csv_target([c.strip() for c in kept_cells], path, columns[t], row_label),
            name=path.stem,
            where=str(path),
            task=task,
            seed=seed,
            shape=shape,
            row_label=lambda i: row_label(int(kept[i])),
            notes=notes,
        )

    features: list[np.ndarray] = []
    for j, name in enumerate(columns):
        if j == t:
            continue
        values = _parse_numbers([r[j] for r in rows])
        if values is None:
            i, cell = next((i, r[j]) for i, r in enumerate(rows) if _parse_numbers([r[j]]) is None)
            raise DataError(
                f"{path}: feature column {name!r} is not numeric ({row_label(i)} holds {cell!r}). "
                f"Encode it as numbers (e.g. one-hot) or drop the column."
            )
        features.append(values)
    names = [c for j, c in enumerate(columns) if j != t]
    if not names:
        raise DataError(f"{path}: there is no feature column besides the target {columns[t]!r}.")
    x = np.stack(features, axis=1)
    check_finite(x, str(path), names, row_label)

    cells = [r[t] for r in rows]
    missing = [i for i, c in enumerate(cells) if c.strip().lower() in MISSING_TOKENS]
    if missing:
        raise DataError(
            f"{path}: the target column {columns[t]!r} is empty or NaN at {row_label(missing[0])} "
            f"({len(missing)} row(s) in all). Drop those rows or fill them in."
        )
    y = _csv_target(cells, path, columns[t], row_label)
    return from_arrays(
        x,
        y,
        name=path.stem,
        task=task,
        seed=seed,
        feature_names=names,
        source=str(path),
        input_shape=shape,
    )


def _csv_target(cells: list[str], path: Path, name: str, row_label: RowLabel) -> np.ndarray:
    """The target cells (none missing) as numbers when all are, else as text labels."""
    numbers = _parse_numbers(cells)
    if numbers is not None and not np.isfinite(numbers).all():
        i = int(np.argmin(np.isfinite(numbers)))
        raise DataError(f"{path}: the target column {name!r} is infinite at {row_label(i)}.")
    return numbers if numbers is not None else np.array([c.strip() for c in cells])


def load_parquet(
    path: Path,
    target: str | int | None,
    task: str | None,
    seed: int,
    shape: Shape | None = None,
    encode: bool = True,
) -> Dataset:
    """A Parquet table, flat unless ``shape`` is given: its columns encoded (text,
    categoricals, booleans, nulls; :mod:`.encoding`), or, with ``encode=False``, numeric
    feature columns only."""
    table = read_parquet(path)
    columns = list(table.column_names)
    t = target_index(columns, target, path)
    if table.num_rows == 0:
        raise DataError(f"{path}: the table has no rows.")
    names = [c for j, c in enumerate(columns) if j != t]
    if not names:
        raise DataError(f"{path}: there is no feature column besides the target {columns[t]!r}.")
    if encode:
        return _encoded_parquet(path, table, names, columns[t], task, seed, shape)
    features = []
    for name in names:
        col = table.column(name)
        if column_kind(col) == "other":
            raise DataError(
                f"{path}: feature column {name!r} is not numeric (type {col.type}). "
                f"Encode it as numbers (e.g. one-hot) or drop the column."
            )
        features.append(column_floats(col))  # nulls become NaN
    x = np.stack(features, axis=1)
    check_finite(x, str(path), names)

    col = table.column(columns[t])
    if col.null_count:
        first = int(np.argmax(col.is_null().to_numpy()))
        raise DataError(
            f"{path}: the target column {columns[t]!r} is null at row {first} "
            f"({col.null_count} row(s) in all). Drop those rows or fill them in."
        )
    # Numbers as they are stored (integer labels stay integers); anything else as text labels.
    y = col.to_numpy() if column_kind(col) == "number" else column_text(col)
    return from_arrays(
        x,
        y,
        name=path.stem,
        task=task,
        seed=seed,
        feature_names=names,
        source=str(path),
        input_shape=shape,
    )


def _encoded_parquet(
    path: Path,
    table: Any,
    names: list[str],
    target: str,
    task: str | None,
    seed: int,
    shape: Shape | None,
) -> Dataset:
    raw = [from_arrow(name, table.column(name)) for name in names]
    col = table.column(target)
    cells = col.to_pylist()
    raw, kept_cells, kept, notes = without_missing_targets(raw, cells, target, str(path), _row)
    # Numbers as they are stored (integer labels stay integers); anything else as text labels.
    if column_kind(col) == "number":
        y = col.drop_null().to_numpy()
    else:
        y = np.array([str(v) for v in kept_cells])
    return from_columns(
        raw,
        y,
        name=path.stem,
        where=str(path),
        task=task,
        seed=seed,
        shape=shape,
        row_label=lambda i: _row(int(kept[i])),
        notes=notes,
    )


def _row(i: int) -> str:
    return f"row {i}"


NPZ_KEYS = ("x", "y", "x_val", "y_val", "x_test", "y_test", "feature_names")


def load_npz(path: Path, task: str | None, seed: int, shape: Shape | None = None) -> Dataset:
    """Arrays x, y and optionally x_val, y_val, x_test, y_test, feature_names.

    The shape of one example is x's own: (N, F) a table of F features (flat, as always),
    (N, C, L) a signal of C channels, (N, C, H, W) an image; any other number of axes is a
    DataError. x_val and x_test must have the same per-example shape. ``shape`` reshapes the
    examples instead (the same number of values, row-major), e.g. a flat (N, F) x to (C, L).
    """
    arrays = read_npz(path, "Save plain number or string arrays with np.savez(path, x=..., y=...).")
    found = ", ".join(repr(k) for k in arrays) or "none"
    for key in arrays:
        if key not in NPZ_KEYS:
            raise DataError(
                f"{path}: unexpected array {key!r}.{did_you_mean(key, NPZ_KEYS)} "
                f"Accepted names: {', '.join(NPZ_KEYS)}."
            )
    for key in ("x", "y"):
        if key not in arrays:
            raise DataError(
                f"{path}: no array {key!r} (arrays in it: {found}). Save the features as x and "
                f"the target as y: np.savez(path, x=..., y=...)."
            )
    names = arrays.pop("feature_names", None)
    if names is not None and names.ndim != 1:  # a 0-d array cannot even be iterated
        raise DataError(
            f"{path}: feature_names must be a 1-D array of names, one per feature column; got "
            f"shape {names.shape}. Save it as np.array(['a', 'b', ...])."
        )
    return from_arrays(
        name=path.stem,
        task=task,
        seed=seed,
        source=str(path),
        feature_names=None if names is None else [str(n) for n in names],
        input_shape=shape,
        scale=True,  # named: mypy reads **arrays as able to fill it
        **arrays,
    )


def load_idx_dir(
    directory: Path, task: str | None, seed: int, shape: Shape | None = None
) -> Dataset:
    """A folder of IDX files: a train pair and a test pair, or one pair (split 70/15/15).
    Images (N, H, W) are examples of shape (1, H, W), (N, C, H, W) of (C, H, W), unless
    ``shape`` says otherwise."""
    pairs, lonely = find_idx_pairs(directory)
    if lonely:
        raise DataError(
            f"{directory}: {', '.join(lonely)} has no matching images/labels partner "
            f"(e.g. train-images-idx3-ubyte.gz goes with train-labels-idx1-ubyte.gz)."
        )
    if not pairs:
        raise DataError(
            f"{directory}: no IDX files found. A data folder needs an images file and a labels "
            f"file, e.g. train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz (and "
            f"optionally a t10k- pair as the test split)."
        )
    train, test = split_pairs(pairs, directory)
    x, y = read_pair(train)
    x_test = y_test = None
    if test is not None:
        x_test, y_test = read_pair(test)
    return from_arrays(
        x,
        y,
        x_test=x_test,
        y_test=y_test,
        name=directory.name,
        source=str(directory),
        task=task,
        seed=seed,
        input_shape=shape or idx_example_shape(x.shape, str(train.images)),
    )
