"""`dltune predict`: read new data, match its columns to the model's features, write predictions.

DATA may be a .csv file (with or without a header row), a .parquet file, a .npz file (array `x`,
optionally `y` and `feature_names`) or the built-in name `digits`. Where DATA holds the target
column too (by the name it had in training, or `y` in a .npz), the predictions are scored with
the study's metric.
"""

from __future__ import annotations

import csv
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.checks import as_features
from ..errors import DataError, did_you_mean
from .features import match_columns
from .loaded import TunedModel
from .retrain import metric_of

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none"})
BUILTIN = ("digits",)


@dataclass
class Table:
    """Data as read from a file: column names (None: by position), the cells, the target."""

    columns: list[str] | None
    cells: list[np.ndarray]  # one array per column, numbers or text
    where: str
    truth: np.ndarray | None = None  # the target, when the file holds it apart (npz `y`)
    row_label: Any = None  # i -> "line 7" for messages


@dataclass
class Predictions:
    rows: int
    predictions: np.ndarray
    probabilities: np.ndarray | None
    metric: str | None = None  # when the data held the target
    value: float | None = None


def read_table(source: str | Path) -> Table:
    """The columns of a .csv, .parquet or .npz file, or of a built-in dataset."""
    name = str(source)
    if name.strip().lower() in BUILTIN:
        return _builtin(name.strip().lower())
    path = Path(source)
    suffix = path.suffix.lower()
    if not path.is_file():
        hint = did_you_mean(name, BUILTIN)
        raise DataError(
            f"{path}: no such file (looked at {path.absolute()}).{hint} DATA is a .csv, "
            f".parquet or .npz file, or 'digits'."
        )
    if suffix in (".csv", ".tsv", ".txt"):
        return _read_csv(path)
    if suffix in (".parquet", ".pq"):
        return _read_parquet(path)
    if suffix == ".npz":
        return _read_npz(path)
    raise DataError(
        f"{path}: cannot read {suffix or 'a file without suffix'}; give a .csv, .parquet or "
        f".npz file."
    )


def _builtin(name: str) -> Table:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    columns = list(bunch.feature_names)
    return Table(columns, [bunch.data[:, j] for j in range(len(columns))], name, truth=bunch.target)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_csv(path: Path) -> Table:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            first = f.readline()
            f.seek(0)
            delimiter = (
                "\t"
                if path.suffix.lower() == ".tsv"
                else next((d for d in ",;\t|" if d in first), ",")
            )
            reader = csv.reader(f, delimiter=delimiter)
            rows: list[list[str]] = []
            lines: list[int] = []
            for row in reader:
                if row and any(c.strip() for c in row):
                    rows.append([c.strip() for c in row])
                    lines.append(reader.line_num)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e}); save it as UTF-8 CSV.") from None
    except csv.Error as e:
        raise DataError(f"{path}: cannot parse as CSV: {e}.") from None
    if not rows:
        raise DataError(f"{path}: the file is empty.")
    # A first row of numbers only is data; anything else names the columns.
    columns = None if all(_is_number(c) for c in rows[0]) else rows[0]
    if columns is not None:
        rows, lines = rows[1:], lines[1:]
        seen: set[str] = set()
        for c in columns:
            if not c or c in seen:
                raise DataError(
                    f"{path}: column name {c!r} in the header is empty or repeated; fix the header."
                )
            seen.add(c)
    if not rows:
        raise DataError(f"{path}: the file has a header row but no data rows.")
    width = len(rows[0]) if columns is None else len(columns)
    first = "the header has" if columns is not None else "the first line has"
    for row, line in zip(rows, lines, strict=True):
        if len(row) != width:
            raise DataError(f"{path}: line {line} has {len(row)} fields, but {first} {width}.")
    cells = [np.array([r[j] for r in rows]) for j in range(width)]
    return Table(columns, cells, str(path), row_label=lambda i: f"line {lines[i]}")


def _read_parquet(path: Path) -> Table:
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
    except (OSError, ValueError, pa.ArrowException) as e:
        raise DataError(f"{path}: cannot read as Parquet: {e}") from None
    cells = []
    for name in table.column_names:
        col = table.column(name)
        kind = col.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            cells.append(col.cast(pa.float64()).to_numpy())
        else:
            cells.append(np.array([str(v) for v in col.to_pylist()]))
    return Table(list(table.column_names), cells, str(path))


def _read_npz(path: Path) -> Table:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as e:
        raise DataError(
            f"{path}: cannot read ({e}). Save plain arrays: np.savez(path, x=...)."
        ) from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e}).") from None
    unknown = [k for k in arrays if k not in ("x", "y", "feature_names")]
    if "x" not in arrays or unknown:
        raise DataError(
            f"{path}: expected an array 'x' (and optionally 'y', 'feature_names'); it holds "
            f"{', '.join(repr(k) for k in arrays) or 'nothing'}. Save np.savez(path, x=...)."
        )
    x = arrays["x"]
    x = x.reshape(-1, 1) if x.ndim == 1 else x.reshape(len(x), -1)
    names = arrays.get("feature_names")
    columns = [str(n) for n in names] if names is not None else None
    if columns is not None and len(columns) != x.shape[1]:
        raise DataError(f"{path}: {len(columns)} feature_names for {x.shape[1]} columns of x.")
    return Table(columns, [x[:, j] for j in range(x.shape[1])], str(path), truth=arrays.get("y"))


def predict_table(model: TunedModel, table: Table) -> Predictions:
    """Predictions for every row of `table`; scored when it holds the target."""
    prep = model.preprocessing
    match = match_columns(table.columns, len(table.cells), prep, table.where)
    columns = [table.cells[j] for j in match.features]
    names = [table.columns[j] for j in match.features] if table.columns else None
    kwargs = {"row_label": table.row_label} if table.row_label else {}
    x = as_features(np.stack(columns, axis=1), table.where, names, **kwargs)
    predictions, proba = model.head(model.outputs(model.standardized(x)))
    result = Predictions(len(x), predictions, proba)
    truth = table.truth if match.target is None else table.cells[match.target]
    metric = (model.card or {}).get("test", {}).get("metric") or _default_metric(prep.task)
    if truth is not None:
        labels = _as_truth(np.asarray(truth), model)
        if labels is not None:
            result.metric, result.value = metric, metric_of(metric, predictions, labels)
    return result


def _default_metric(task: str) -> str:
    return "accuracy" if task == "classification" else "rmse"


def _as_truth(truth: np.ndarray, model: TunedModel) -> np.ndarray | None:
    """Targets as the predictions come (labels of `classes`, or float values); None when they
    hold labels the model does not know (nothing to score against)."""
    if model.classes is None:
        try:
            return truth.astype(np.float64)
        except ValueError:
            return None
    by_text = {_label_text(c): c for c in model.classes}
    labels = [by_text.get(_label_text(v)) for v in truth.tolist()]
    if any(label is None for label in labels):
        return None
    return np.asarray(labels)


def _label_text(value: Any) -> str:
    """One spelling per label: '3', '3.0' and 3 are the same class."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else repr(number)


def write_predictions(result: Predictions, model: TunedModel, output: str | Path) -> Path:
    """A CSV: `prediction`, then for classification `probability_<label>` per class."""
    path = Path(output)
    if not path.parent.is_dir():
        raise DataError(
            f"-o {str(path)!r}: the folder {str(path.parent)!r} does not exist; create it first"
        )
    header = ["prediction"]
    if result.probabilities is not None:
        header += [f"probability_{c}" for c in model.classes or []]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i in range(result.rows):
            row = [_cell(result.predictions[i])]
            if result.probabilities is not None:
                row += [_cell(p) for p in result.probabilities[i]]
            writer.writerow(row)
    return path


def _cell(value: Any) -> str:
    """The shortest text that reads back as the same float32 (or the label as it is)."""
    if isinstance(value, np.floating):
        return str(value)  # numpy prints a float32 as its shortest round-trip form
    return str(value.item() if isinstance(value, np.generic) else value)
