"""Input checks: features and targets turned into clean numpy arrays, or a DataError saying where.

``where`` names what is being checked ("data.csv", "x_val") so every message points at the file,
the column and the row to fix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from dltune.errors import DataError

RowLabel = Callable[[int], str]


def row_number(i: int) -> str:
    return f"row {i}"


def column_label(j: int, names: Sequence[str] | None) -> str:
    return f"feature column '{names[j]}'" if names is not None else f"feature column {j}"


def as_features(
    x: object, where: str, names: Sequence[str] | None = None, row_label: RowLabel = row_number
) -> np.ndarray:
    """Features as a float32 ``(n, n_features)`` array; images and other n-d inputs flattened."""
    arr = np.asarray(x)
    if arr.ndim == 0:
        raise DataError(f"{where}: features must be an array of samples, got a scalar.")
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)  # one feature
    elif arr.ndim > 2:  # (n, h, w) images -> (n, h*w); explicit, as -1 is ambiguous for n = 0
        arr = arr.reshape(arr.shape[0], int(np.prod(arr.shape[1:])))
    if arr.shape[1] == 0:
        raise DataError(f"{where}: there are no feature columns.")
    if arr.dtype.kind in "OUS":
        arr = _text_to_float(arr, where, names, row_label)
    elif arr.dtype.kind not in "biuf":
        raise DataError(
            f"{where}: features must be numbers; got dtype {arr.dtype}. Convert them to floats."
        )
    out = arr.astype(np.float32)
    check_finite(out, where, names, row_label)
    return out


def _text_to_float(
    arr: np.ndarray, where: str, names: Sequence[str] | None, row_label: RowLabel
) -> np.ndarray:
    out = np.empty(arr.shape, dtype=np.float64)
    for j in range(arr.shape[1]):
        for i, v in enumerate(arr[:, j]):
            try:
                out[i, j] = float(v)
            except (TypeError, ValueError):
                raise DataError(
                    f"{where}: {column_label(j, names)} is not numeric ({row_label(i)} holds "
                    f"{v!r}). Encode it as numbers (e.g. one-hot) or drop the column."
                ) from None
    return out


def check_finite(
    x: np.ndarray, where: str, names: Sequence[str] | None = None, row_label: RowLabel = row_number
) -> None:
    """Raise naming the column and the first row of the first NaN or infinite feature value."""
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    rows, cols = np.nonzero(bad)
    first = int(np.argmin(cols * x.shape[0] + rows))  # the first bad column, its first row
    i, j = int(rows[first]), int(cols[first])
    n_bad = int(bad[:, j].sum())
    raise DataError(
        f"{where}: {column_label(j, names)} has a missing, NaN or infinite value at "
        f"{row_label(i)} ({n_bad} such value(s) in that column; value {float(x[i, j])}). "
        f"Fill or drop those rows before tuning."
    )


def _is_missing(v: object) -> bool:
    if v is None:
        return True
    if isinstance(v, (float, np.floating)):
        return not np.isfinite(v)
    return isinstance(v, str) and v.strip() == ""


def as_target(y: object, where: str, row_label: RowLabel = row_number) -> np.ndarray:
    """The target as a 1-D array of kind U (text), b (bool), or i/u/f (numbers), all present."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise DataError(
            f"{where}: the target must be one value per sample (1-D); got shape {arr.shape}."
        )
    if arr.dtype.kind == "S":  # bytes: labels if they are text, which numpy decodes as ASCII
        try:
            arr = arr.astype(str)
        except UnicodeDecodeError:
            i = next(i for i, v in enumerate(arr) if not v.isascii())
            raise DataError(
                f"{where}: the target is bytes, not text, and {row_label(i)} holds "
                f"{bytes(arr[i])!r}, which is not ASCII. Save the labels as text (str) or numbers."
            ) from None
    if arr.dtype.kind in "OU":
        missing = [i for i, v in enumerate(arr) if _is_missing(v)]
        if missing:
            raise DataError(
                f"{where}: the target is missing (empty, None or NaN) at {row_label(missing[0])} "
                f"({len(missing)} row(s) in all). Drop those rows or fill them in."
            )
        if arr.dtype.kind == "O":
            if all(isinstance(v, (bool, np.bool_)) for v in arr):
                arr = arr.astype(bool)
            elif all(
                isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                for v in arr
            ):
                arr = arr.astype(np.float64)
            else:
                arr = arr.astype(str)
        return arr
    if arr.dtype.kind == "f":
        bad = np.nonzero(~np.isfinite(arr))[0]
        if len(bad):
            raise DataError(
                f"{where}: the target is NaN or infinite at {row_label(int(bad[0]))} "
                f"({len(bad)} row(s) in all). Drop those rows or fill them in."
            )
        return arr
    if arr.dtype.kind in "biu":
        return arr
    raise DataError(f"{where}: the target must be numbers or labels; got dtype {arr.dtype}.")
