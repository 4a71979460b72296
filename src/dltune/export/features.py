"""Which columns of new data are the model's features: by name where training had names, else
by position. One place decides it, for `predict` on files and for `TunedModel.predict`.

A model trained on a table through the encoder takes that table's columns instead (its
`encoding`'s inputs): matched by name in any order, a column dropped in training welcome but
unused; without names, by position, the training table's columns less the target. Then the
encoder makes the features (`encode_columns`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..data.encoding import Encoded, TableEncoding
from ..errors import DataError
from .preprocessing import Preprocessing


@dataclass(frozen=True)
class ColumnMatch:
    features: list[int]  # the data's column index of each of the model's features, in order
    target: int | None  # the target column, when the data holds it (its values can be scored)


def _listed(names: list[str], most: int = 12) -> str:
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f", ... ({len(names)} in all)" if len(names) > most else "")


def match_columns(
    columns: list[str] | None, n_columns: int, prep: Preprocessing, where: str
) -> ColumnMatch:
    """The model's features among `n_columns` columns named `columns` (None: no names).

    By name when both the training data and this data have names: every feature must be present,
    the target column is set aside, and any other column is an error (a misspelt feature would
    otherwise be ignored silently). By position otherwise: the count must match.
    """
    n = prep.n_features
    if columns is not None and prep.feature_names is not None:
        index = {c: j for j, c in enumerate(columns)}
        missing = [f for f in prep.feature_names if f not in index]
        if missing:
            raise DataError(
                f"{where}: feature column(s) {_listed(missing)} are missing; the model takes "
                f"{n} features: {_listed(prep.feature_names)}. Add them, or give the columns "
                f"without a header to match them by position."
            )
        known = set(prep.feature_names) | ({prep.target} if prep.target else set())
        unknown = [c for c in columns if c not in known]
        if unknown:
            target = f" and the target {prep.target!r}" if prep.target else ""
            raise DataError(
                f"{where}: unknown column(s) {_listed(unknown)}; the model takes the features "
                f"{_listed(prep.feature_names)}{target}. Drop the others."
            )
        target_index = index.get(prep.target) if prep.target else None
        return ColumnMatch([index[f] for f in prep.feature_names], target_index)
    if n_columns != n:
        how = "a header the model cannot match" if columns is not None else "no column names"
        raise DataError(
            f"{where}: {n_columns} columns, but the model takes {n} features; with {how}, "
            f"the columns are matched by position, so there must be exactly {n}."
        )
    return ColumnMatch(list(range(n)), None)


def match_inputs(
    columns: list[str] | None,
    n_columns: int,
    encoding: TableEncoding,
    target: str | None,
    where: str,
) -> ColumnMatch:
    """The encoder's input columns among `n_columns` columns named `columns` (None: no names):
    `features` holds the data's column of each input in the encoder's order (-1: a dropped
    input the data lack)."""
    inputs = encoding.inputs
    needed = [c.name for c in encoding.columns if c.kind != "dropped"]
    if columns is not None:
        index = {c: j for j, c in enumerate(columns)}
        missing = [f for f in needed if f not in index]
        if missing and not set(columns) & {*inputs, target}:
            raise DataError(
                f"{where}: the first row, read as the columns' names, names none of the model's "
                f"columns, and the {n_columns} columns are too many or too few to be data "
                f"matched by position. Give a header row naming {_listed(needed)} (any order), "
                f"or, without one, the {len(inputs)} columns of the training table in its order: "
                f"{_listed(inputs)}."
            )
        if missing:
            raise DataError(
                f"{where}: column(s) {_listed(missing)} are missing; the model takes the table's "
                f"columns {_listed(needed)} (in any order; empty cells are imputed). Add them."
            )
        known = set(inputs) | ({target} if target else set())
        unknown = [c for c in columns if c not in known]
        if unknown:
            also = f" and the target {target!r}" if target else ""
            raise DataError(
                f"{where}: unknown column(s) {_listed(unknown)}; the model takes the columns "
                f"{_listed(needed)}{also}. Drop the others."
            )
        target_index = index.get(target) if target else None
        return ColumnMatch([index.get(name, -1) for name in inputs], target_index)
    if n_columns != len(inputs):
        raise DataError(
            f"{where}: {n_columns} columns without names, but the model takes the {len(inputs)} "
            f"columns of its training table, matched by position: {_listed(inputs)} (give a "
            f"header row to match them by name)."
        )
    return ColumnMatch(list(range(len(inputs))), None)


def encode_columns(
    encoding: TableEncoding,
    match: ColumnMatch,
    cells: Sequence[Any],
    where: str,
    row_label: Callable[[int], str] | None = None,
) -> Encoded:
    """The features the encoder makes of the matched columns' `cells` (one array per column
    of the data)."""
    values = {
        code.name: cells[j]
        for code, j in zip(encoding.columns, match.features, strict=True)
        if j >= 0
    }
    if row_label is None:
        return encoding.transform(values, where)
    return encoding.transform(values, where, row_label)
