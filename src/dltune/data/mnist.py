"""MNIST from the official IDX files: local copies first, else downloaded once into the cache.

Where the files are looked for: ``data_dir``, else ``$DLTUNE_DATA_DIR``, else the cache
(``$XDG_CACHE_HOME`` or ``~/.cache``)``/dltune/mnist``. Each may be gzip-compressed or not; local
copies are used as they are. Missing files are downloaded into the cache, md5-verified.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from dltune.errors import DataError, param

from .arrays import from_arrays
from .dataset import Dataset
from .download import DEFAULT_TIMEOUT, DownloadFailed, cache_dir, download_files
from .idx import IdxPair, read_pair
from .shapes import Shape, idx_example_shape

# md5 of the .gz files, as torchvision lists them.
MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
DEFAULT_MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
MIRROR_ENV = "DLTUNE_MNIST_MIRROR"  # one URL, or several separated by commas or spaces
DATA_DIR_ENV = "DLTUNE_DATA_DIR"


def mnist_mirrors() -> list[str]:
    """The mirrors to try, in order: ``$DLTUNE_MNIST_MIRROR`` if set, else the defaults."""
    env = os.environ.get(MIRROR_ENV, "").strip()
    return [m for m in re.split(r"[,\s]+", env) if m] if env else list(DEFAULT_MIRRORS)


def mnist_dir(data_dir: str | Path | None = None) -> Path:
    """Where MNIST files are looked for: data_dir, else $DLTUNE_DATA_DIR, else the cache."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(env).expanduser() if env else cache_dir("mnist")


def _local_copy(directory: Path, gz_name: str) -> Path | None:
    for candidate in (directory / gz_name, directory / gz_name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def mnist_files(
    data_dir: str | Path | None = None, timeout: float = DEFAULT_TIMEOUT
) -> dict[str, Path]:
    """The path of each of the four MNIST files, downloading the missing ones into the cache."""
    look = mnist_dir(data_dir)
    cache = cache_dir("mnist")
    paths: dict[str, Path] = {}
    need: dict[str, str] = {}
    for name, md5 in MNIST_FILES.items():
        found = _local_copy(look, name) or _local_copy(cache, name)
        if found is not None:
            paths[name] = found
        else:
            need[name] = md5
    if need:
        try:
            paths.update(download_files(need, mnist_mirrors(), cache, timeout))
        except DownloadFailed as e:
            elsewhere = f" (downloads go to {cache})" if cache != look else ""
            raise DataError(
                f"MNIST files missing: {', '.join(e.missing)} are not in {look}{elsewhere}, "
                f"and downloading them failed ({e.reasons}). Put them (gzip-compressed or not) "
                f"in {look}, or point {param('data_dir')} / DLTUNE_DATA_DIR at a folder with local "
                f"copies, or set {MIRROR_ENV} to a mirror you can reach. To use only the IDX "
                f"files you have, pass their folder itself as the data source."
            ) from None
    return paths


def load_mnist(
    data_dir: str | Path | None = None,
    *,
    task: str | None = None,
    seed: int = 0,
    timeout: float = DEFAULT_TIMEOUT,
    shape: Shape | None = None,
) -> Dataset:
    """MNIST: the official test split as test; validation carved (15%, stratified, ``seed``)
    from the official training split; 784 pixel features, examples of shape (1, 28, 28)
    (or ``shape``)."""
    paths = mnist_files(data_dir, timeout)
    train = IdxPair(
        "train", paths["train-images-idx3-ubyte.gz"], paths["train-labels-idx1-ubyte.gz"]
    )
    test = IdxPair("t10k", paths["t10k-images-idx3-ubyte.gz"], paths["t10k-labels-idx1-ubyte.gz"])
    x, y = read_pair(train)
    x_test, y_test = read_pair(test)
    return from_arrays(
        x,
        y,
        x_test=x_test,
        y_test=y_test,
        name="mnist",
        source="mnist",
        task=task,
        seed=seed,
        input_shape=shape or idx_example_shape(x.shape, str(train.images)),
    )
