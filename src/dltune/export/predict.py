"""`dltune predict`: read new data, match its columns to the model's features, write predictions.

DATA may be a .csv file (with or without a header row), a .parquet file, a .npz file (array `x`,
optionally `y` and `feature_names`) or the built-in name `digits`. A .npz `x` holds flat rows
(N, n_features) or examples of the model's shape, (N, C, L) or (N, C, H, W) (a one-channel image
also as (N, H, W)), flattened row-major before the model as in training. Where DATA holds the target
column too (by the name it had in training, or `y` in a .npz), the predictions are scored with
the study's metric.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_file
from ..data.checks import as_features
from ..data.columns import is_missing
from ..data.encoding import Encoded
from ..data.tables import (
    column_floats,
    column_kind,
    column_text,
    read_csv,
    read_npz,
    read_parquet,
)
from ..errors import DataError, did_you_mean, param
from .features import encode_columns, match_columns, match_inputs
from .loaded import TunedModel
from .retrain import metric_of

BUILTIN = ("digits",)


@dataclass
class Table:
    """Data as read from a file: column names (None: by position), the cells, the target."""

    columns: list[str] | None
    cells: list[np.ndarray]  # one array per column, numbers or text
    where: str
    truth: np.ndarray | None = None  # the target, when the file holds it apart (npz `y`)
    row_label: Any = None  # i -> "line 7" for messages
    example_shape: tuple[int, ...] | None = None  # a .npz x of signals or images: one's shape


@dataclass
class Predictions:
    rows: int
    predictions: np.ndarray
    probabilities: np.ndarray | None
    metric: str | None = None  # when the data held the target
    value: float | None = None
    notes: list[str] = field(default_factory=list)  # what the encoder did to these rows


def encoded_notes(encoded: Encoded) -> list[str]:
    """What the encoder did to new rows: cells imputed, labels it had not seen in training."""
    notes = []
    if encoded.imputed:
        cells = ", ".join(f"{n} in {name!r}" for name, n in encoded.imputed.items())
        notes.append(
            f"imputed {sum(encoded.imputed.values())} empty cell(s) ({cells}) with the "
            "training medians"
        )
    for name, labels in encoded.unseen.items():
        shown = ", ".join(repr(v) for v, _ in labels.most_common(5))
        more = f" and {len(labels) - 5} more" if len(labels) > 5 else ""
        notes.append(
            f"{sum(labels.values())} value(s) of {name!r} not among its training columns "
            f"({shown}{more}) read as {name}=<other>"
        )
    return notes


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


def _read_csv(path: Path) -> Table:
    # With or without a header row: without one, the columns are matched by position.
    columns, rows, lines = read_csv(path, header="optional")
    width = len(rows[0])
    cells = [np.array([r[j].strip() for r in rows]) for j in range(width)]
    return Table(columns, cells, str(path), row_label=lambda i: f"line {lines[i]}")


def _read_parquet(path: Path) -> Table:
    table = read_parquet(path)
    cells = []
    for name in table.column_names:
        col = table.column(name)
        # Numbers as float64 (nulls NaN); anything else, decimals included, as text.
        cells.append(column_floats(col) if column_kind(col) == "number" else column_text(col))
    return Table(list(table.column_names), cells, str(path))


def _read_npz(path: Path) -> Table:
    arrays = read_npz(path, "Save plain arrays: np.savez(path, x=...).")
    unknown = [k for k in arrays if k not in ("x", "y", "feature_names")]
    if "x" not in arrays or unknown:
        raise DataError(
            f"{path}: expected an array 'x' (and optionally 'y', 'feature_names'); it holds "
            f"{', '.join(repr(k) for k in arrays) or 'nothing'}. Save np.savez(path, x=...)."
        )
    x = arrays["x"]
    shape = tuple(int(n) for n in x.shape[1:]) if x.ndim > 2 else None
    x = x.reshape(-1, 1) if x.ndim == 1 else x.reshape(len(x), math.prod(x.shape[1:]))
    names = arrays.get("feature_names")
    columns = [str(n) for n in names] if names is not None else None
    if columns is not None and len(columns) != x.shape[1]:
        raise DataError(f"{path}: {len(columns)} feature_names for {x.shape[1]} columns of x.")
    cells = [x[:, j] for j in range(x.shape[1])]
    return Table(columns, cells, str(path), truth=arrays.get("y"), example_shape=shape)


def check_example_shape(table: Table, model: TunedModel) -> None:
    """Examples given with a shape must have the model's (flat rows are matched by column):
    (C, L) or (C, H, W) as trained, or (H, W) for a one-channel image."""
    given, expected = table.example_shape, model.preprocessing.input_shape
    if given is None or given == expected or (1, *given) == expected:
        return
    if len(expected) > 1:
        fits = f"examples of shape {_shape(expected)}, i.e. x of shape (N, {_axes(expected)})"
    else:
        fits = f"flat rows of {expected[0]} features, i.e. x of shape (N, {expected[0]})"
    raise DataError(
        f"{table.where}: x holds examples of shape {_shape(given)} (x of shape "
        f"(N, {_axes(given)})), but the model takes {fits}. Reshape x to that, or save it "
        f"flat as (N, {math.prod(expected)}) in the order the model was trained on."
    )


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape)


def _axes(shape: tuple[int, ...]) -> str:
    return ", ".join(str(n) for n in shape)


def _first_row_as_data(table: Table, inputs: list[str], target: str | None) -> Table:
    """A CSV's first row read as data rather than names when it names none of the model's
    columns and has one cell per input column: a table of text has no first row of numbers
    only by which the reader could tell (tables.read_csv), so the model's names tell."""
    if table.columns is None or len(table.columns) != len(inputs):
        return table
    if set(table.columns) & {*inputs, target}:
        return table
    pairs = zip(table.columns, table.cells, strict=True)
    cells = [np.concatenate([[name], column]) for name, column in pairs]
    label = table.row_label

    def row_label(i: int) -> str:
        return "the first line" if i == 0 else (label(i - 1) if label else f"row {i}")

    return Table(None, cells, table.where, table.truth, row_label, table.example_shape)


def predict_table(model: TunedModel, table: Table) -> Predictions:
    """Predictions for every row of `table`; scored when it holds the target."""
    prep = model.preprocessing
    check_example_shape(table, model)
    notes: list[str] = []
    if prep.encoding is not None:
        table = _first_row_as_data(table, prep.encoding.inputs, prep.target)
        match = match_inputs(
            table.columns, len(table.cells), prep.encoding, prep.target, table.where
        )
        encoded = encode_columns(prep.encoding, match, table.cells, table.where, table.row_label)
        x, notes = encoded.x, encoded_notes(encoded)
    else:
        match = match_columns(table.columns, len(table.cells), prep, table.where)
        columns = [table.cells[j] for j in match.features]
        names = [table.columns[j] for j in match.features] if table.columns else None
        kwargs = {"row_label": table.row_label} if table.row_label else {}
        x = as_features(np.stack(columns, axis=1), table.where, names, **kwargs)
    predictions, proba = model.head(model.outputs(model.scaled(x)))
    result = Predictions(len(x), predictions, proba, notes=notes)
    truth = table.truth if match.target is None else table.cells[match.target]
    metric = (model.card or {}).get("test", {}).get("metric") or _default_metric(prep.task)
    if truth is not None:
        truth = np.asarray(truth)
        present = np.array([not is_missing(v) for v in truth.tolist()], dtype=bool)
        labels = _as_truth(truth[present], model)
        if labels is not None and present.any():
            result.metric = metric
            result.value = metric_of(metric, predictions[present], labels)
            if not present.all():
                result.notes.append(
                    f"{metric} on the {int(present.sum())} row(s) whose target is not empty "
                    f"(of {len(present)})"
                )
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
    """A CSV: `prediction`, then for classification `probability_<label>` per class; written
    under a temporary name beside `output` and renamed onto it once whole (dltune.atomic), so
    a crash leaves the previous file or the new one, never part of one."""
    path = Path(output)
    if not path.parent.is_dir():
        raise DataError(
            f"{param('output', str(path))}: the folder {str(path.parent)!r} does not exist; "
            "create it first"
        )
    header = ["prediction"]
    if result.probabilities is not None:
        header += [f"probability_{c}" for c in model.classes or []]

    def write(temp: Path) -> None:
        with open(temp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for i in range(result.rows):
                row = [_cell(result.predictions[i])]
                if result.probabilities is not None:
                    row += [_cell(p) for p in result.probabilities[i]]
                writer.writerow(row)

    return write_file(path, write)


def _cell(value: Any) -> str:
    """The shortest text that reads back as the same float32 (or the label as it is)."""
    if isinstance(value, np.floating):
        return str(value)  # numpy prints a float32 as its shortest round-trip form
    return str(value.item() if isinstance(value, np.generic) else value)
