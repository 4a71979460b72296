"""A table's columns to a Dataset through the encoder: rows without a target set aside, the
splits made from the target, the encoder fitted on the training split, every split encoded.

The order matters: the split comes first (from the targets alone, as for arrays), so that the
medians, the levels and which columns are dropped are learned from training rows only, as the
standardization after them is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .arrays import assemble, check_row_count, encoded_targets
from .checks import check_finite
from .columns import RawColumn, is_missing
from .dataset import Dataset
from .encoding import fit_encoding
from .shapes import Shape, check_shape
from .split import split_three

RowLabel = Callable[[int], str]
Splits = tuple[np.ndarray, np.ndarray, np.ndarray]


def without_missing_targets(
    columns: Sequence[RawColumn],
    target: Sequence[Any],
    target_name: str,
    where: str,
    row_label: RowLabel,
) -> tuple[list[RawColumn], list[Any], np.ndarray, list[str]]:
    """(columns, target cells, the original index of each row kept, notes): the rows whose
    target is empty dropped, with a note that says which."""
    missing = np.array([is_missing(v) for v in target], dtype=bool)
    kept = np.flatnonzero(~missing)
    if not missing.any():
        return list(columns), list(target), kept, []
    lost = np.flatnonzero(missing)
    shown = ", ".join(row_label(int(i)) for i in lost[:5]) + (", ..." if len(lost) > 5 else "")
    note = (
        f"dropped {len(lost)} row(s) whose target {target_name!r} is empty ({shown}): there is "
        f"nothing to learn from them"
    )
    return [c.take(kept) for c in columns], [target[int(i)] for i in kept], kept, [note]


def from_columns(
    columns: Sequence[RawColumn],
    y: Any,
    *,
    name: str,
    where: str,
    task: str | None,
    seed: int,
    shape: Shape | None = None,
    row_label: RowLabel = lambda i: f"row {i}",
    notes: Sequence[str] = (),
    splits: Splits | None = None,
) -> Dataset:
    """A Dataset of encoded, standardized splits. `y`: the targets, none missing. `splits`:
    the train, validation and test row indices, when given (else 70/15/15 from the targets,
    stratified for classification, `seed`)."""
    check_row_count(len(y), where)
    targets, classes, reason = encoded_targets(y, task, where)
    if splits is None:
        labels = targets if classes is not None else None
        train, val, test, how = split_three(len(targets), labels, seed, classes)
    else:
        (train, val, test), how = splits, "given"
    for c in columns:  # an infinite number is no missing value: refused, as without encoding
        if c.kind != "category" and np.isinf(c.values).any():
            check_finite(
                np.where(np.isnan(c.values), 0.0, c.values)[:, None], where, [c.name], row_label
            )
    encoding = fit_encoding(columns, train, where)
    encoded = encoding.transform({c.name: c.values for c in columns}, where, row_label)
    names = encoding.feature_names
    check_finite(encoded.x, where, names, row_label)  # an infinite number, as without encoding
    example = check_shape(shape, encoding.n_features, where) if shape else ()
    x = encoded.x
    parts = (x[train], targets[train], x[val], targets[val], x[test], targets[test])
    return assemble(
        parts,
        how,
        classes,
        reason,
        name=name,
        where=where,
        names=names,
        example=example,
        shape_given=shape is not None,
        encoding=encoding,
        notes=[*notes, *encoding.describe(encoded.imputed)],
    )
