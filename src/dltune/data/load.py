"""``load_data``: one entry point from a source name or path to a :class:`Dataset`."""

from __future__ import annotations

from pathlib import Path

from dltune.errors import DataError, did_you_mean, param

from ..vocabulary import TASKS
from .arrays import from_arrays
from .dataset import Dataset
from .mnist import load_mnist
from .sources import load_csv, load_idx_dir, load_npz, load_parquet

BUILTINS = ("digits", "mnist")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
ACCEPTED = (
    "'digits' (built-in, 1797 8x8 images), 'mnist' (downloaded once, or local IDX files), "
    "a directory of IDX files, a .csv or .parquet file (with target=COLUMN), "
    "or a .npz file (arrays x, y and optionally x_val, y_val, x_test, y_test)"
)


def load_digits(*, task: str | None = None, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits: 1797 images, 10 classes, 64 pixel features."""
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
    )


def load_data(
    source: str | Path = "digits",
    *,
    target: str | int | None = None,
    task: str | None = None,
    data_dir: str | Path | None = None,
    seed: int = 0,
) -> Dataset:
    """Load a dataset, split 70/15/15 (unless splits are given) and standardized.

    ``source``: "digits", "mnist", a directory of IDX files, or a .csv/.parquet/.npz file.
    ``target``: the target column of a .csv/.parquet file (a name, or a position like -1).
    ``task``: "classification" or "regression" to override detection from the target.
    ``data_dir``: where the MNIST files are (else $DLTUNE_DATA_DIR, else the cache).
    ``seed``: the seed of the splits.
    """
    if task is not None and task not in TASKS:
        raise DataError(
            f"task must be 'classification' or 'regression'. Got {task!r}."
            f"{did_you_mean(task, TASKS)}"
        )
    name = str(source)
    if isinstance(source, str) and source.strip().lower() in BUILTINS:
        builtin = source.strip().lower()
        _no_target(target, builtin)
        if builtin == "digits":
            return load_digits(task=task, seed=seed)
        return load_mnist(data_dir, task=task, seed=seed)

    path = Path(source).expanduser()
    suffix = path.suffix.lower()
    if path.is_dir():
        _no_target(target, name)
        return load_idx_dir(path, task, seed)
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
            return load_npz(path, task, seed)
        if suffix in (".parquet", ".pq"):
            return load_parquet(path, target, task, seed)
        return load_csv(path, target, task, seed)
    what = "unsupported file type" if path.exists() else "unknown data source"
    raise DataError(f"{what} {name!r}.{did_you_mean(name, BUILTINS)} Accepted sources: {ACCEPTED}.")


def _no_target(target: str | int | None, source: str) -> None:
    if target is not None:
        raise DataError(
            f"{param('target', target)} applies only to .csv and .parquet files; {source!r} "
            f"has its target built in. Leave {param('target')} out."
        )
