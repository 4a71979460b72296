"""``load_data``: one entry point from a source name or path to a :class:`Dataset`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dltune.errors import DataError, did_you_mean, param

from ..vocabulary import TASKS
from .arrays import from_arrays
from .dataset import Dataset
from .mnist import load_mnist
from .shapes import SHAPE_RULE, Shape, check_shape, parse_shape
from .sources import load_csv, load_idx_dir, load_npz, load_parquet

BUILTINS = ("digits", "mnist")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
ACCEPTED = (
    "'digits' (built-in, 1797 8x8 images), 'mnist' (downloaded once, or local IDX files), "
    "a directory of IDX files, a .csv or .parquet file (with target=COLUMN), "
    "or a .npz file (arrays x, y and optionally x_val, y_val, x_test, y_test; "
    f"{SHAPE_RULE})"
)
DIGITS_SHAPE = (1, 8, 8)


def load_digits(*, task: str | None = None, seed: int = 0, shape: Shape | None = None) -> Dataset:
    """scikit-learn's 8x8 digits: 1797 images, 10 classes, 64 pixel features, examples of
    shape (1, 8, 8) (or ``shape``)."""
    from sklearn.datasets import load_digits as sk_digits  # lazy: sklearn is slow to import

    bunch = sk_digits()
    return from_arrays(
        bunch.data,
        bunch.target,
        name="digits",
        source="digits",
        task=task,
        seed=seed,
        feature_names=list(bunch.feature_names),
        input_shape=shape or DIGITS_SHAPE,
    )


def load_data(
    source: str | Path = "digits",
    *,
    target: str | int | None = None,
    task: str | None = None,
    data_dir: str | Path | None = None,
    seed: int = 0,
    shape: str | Sequence[int] | None = None,
    encode: bool = True,
) -> Dataset:
    """Load a dataset, split 70/15/15 (unless splits are given) and standardized.

    ``source``: "digits", "mnist", a directory of IDX files, or a .csv/.parquet/.npz file.
    ``target``: the target column of a .csv/.parquet file (a name, or a position like -1).
    ``task``: "classification" or "regression" to override detection from the target.
    ``data_dir``: where the MNIST files are (else $DLTUNE_DATA_DIR, else the cache).
    ``seed``: the seed of the splits.
    ``shape``: the shape of one example, ``(C, L)`` (a signal of C channels) or ``(C, H, W)``
    (an image), or the text "C,L" / "C,H,W"; its product must be the number of features.
    ``encode``: a .csv/.parquet table's text, categorical and boolean columns one-hot or 0/1,
    missing numbers imputed, identifiers and constant columns dropped, all learned from the
    training split (dltune.data.encoding; ``Dataset.encoding``, ``Dataset.notes``); False: every
    feature must be a number and present, as before tables were encoded.

    Without ``shape``, examples keep the source's own shape: digits (1, 8, 8), MNIST and IDX
    images (1, H, W) (or (C, H, W) for a 4-D IDX file); a .npz ``x`` of shape (N, F) is a
    table of F features, (N, C, L) a signal, (N, C, H, W) an image (other axes are refused);
    .csv and .parquet rows are flat. The arrays stay flat ``(N, n_features)`` and are
    standardized per feature with the training split's statistics, whatever the shape; the
    fingerprint covers the flat arrays, so a shape never changes it.
    """
    if task is not None and task not in TASKS:
        raise DataError(
            f"task must be 'classification' or 'regression'. Got {task!r}."
            f"{did_you_mean(task, TASKS)}"
        )
    asked = parse_shape(shape)
    dataset = _load(source, target, task, data_dir, seed, asked, encode)
    dataset.shape_given = asked is not None  # digits' and IDX's own shapes were not asked for
    return dataset


def with_shape(dataset: Dataset, shape: str | Sequence[int] | None) -> Dataset:
    """``dataset`` with examples of ``shape`` (as load_data's ``shape``), or itself for None:
    for a Dataset given as it is, where a path would have been loaded with the shape."""
    asked = parse_shape(shape)
    if asked is None:
        return dataset
    return dataset.reshaped(check_shape(asked, dataset.n_features, dataset.source))


def _load(
    source: str | Path,
    target: str | int | None,
    task: str | None,
    data_dir: str | Path | None,
    seed: int,
    shape: Shape | None,
    encode: bool = True,
) -> Dataset:
    name = str(source)
    if isinstance(source, str) and source.strip().lower() in BUILTINS:
        builtin = source.strip().lower()
        _no_target(target, builtin)
        if builtin == "digits":
            return load_digits(task=task, seed=seed, shape=shape)
        return load_mnist(data_dir, task=task, seed=seed, shape=shape)

    path = Path(source).expanduser()
    suffix = path.suffix.lower()
    if path.is_dir():
        _no_target(target, name)
        return load_idx_dir(path, task, seed, shape)
    if suffix in (*TABLE_SUFFIXES, ".npz"):
        if not path.exists():
            raise DataError(
                f"data file not found: {path} (looked at {path.absolute()}). Check the path."
            )
        if not path.is_file():
            raise DataError(f"{path} is not a regular file.")
        if path.stat().st_size == 0:
            raise DataError(f"{path}: the file is empty.")
        if suffix == ".npz":
            _no_target(target, name)
            return load_npz(path, task, seed, shape)
        if suffix in (".parquet", ".pq"):
            return load_parquet(path, target, task, seed, shape, encode)
        return load_csv(path, target, task, seed, shape, encode)
    what = "unsupported file type" if path.exists() else "unknown data source"
    raise DataError(f"{what} {name!r}.{did_you_mean(name, BUILTINS)} Accepted sources: {ACCEPTED}.")


def _no_target(target: str | int | None, source: str) -> None:
    if target is not None:
        raise DataError(
            f"{param('target', target)} applies only to .csv and .parquet files; {source!r} "
            f"has its target built in. Leave {param('target')} out."
        )
