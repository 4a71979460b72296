"""IDX files (the MNIST format): read, write, and find image/label pairs in a directory.

An IDX file is a 4-byte magic number (0, 0, dtype code, number of dimensions), one big-endian
uint32 per dimension, then the values, big-endian, row-major. Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltune.atomic import write_bytes
from dltune.errors import DataError, InvalidDataError

_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_CODES: dict[str, int] = {np.dtype(v).str.lstrip("<>|"): k for k, v in _DTYPES.items()}

# train-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte, train-images.idx3-ubyte (Kaggle's copy)
_IMAGES = re.compile(r"^(?P<prefix>.+?)-images[-.]idx(?P<ndim>\d)-ubyte(?P<gz>\.gz)?$")
_LABELS = re.compile(r"^(?P<prefix>.+?)-labels[-.]idx1-ubyte(?P<gz>\.gz)?$")
TRAIN_PREFIXES = ("train",)
TEST_PREFIXES = ("t10k", "test")


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"IDX file not found: {path}") from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"{path}: cannot read this file ({e}); it may be truncated or not gzip. "
            f"Delete it and download it again."
        ) from None


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally .gz) into a native-endian numpy array."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: not an IDX file (only {len(data)} bytes).")
    zero1, zero2, code, ndim = data[0], data[1], data[2], data[3]
    if zero1 != 0 or zero2 != 0 or code not in _DTYPES or ndim == 0:
        raise DataError(
            f"{path}: not an IDX file (magic number {data[:4].hex()}; expected 0000 followed by "
            f"a type code among {', '.join(f'{c:02x}' for c in _DTYPES)} and the number of "
            f"dimensions)."
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: IDX header is truncated ({len(data)} bytes for {ndim} dims).")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[code])
    expected = header + math.prod(dims) * dtype.itemsize  # exact: np.prod wraps past 2**63
    if len(data) != expected:
        raise DataError(
            f"{path}: IDX size mismatch: the header says dims {dims} of {dtype.name} "
            f"({expected} bytes in all) but the file has {len(data)} bytes; it is truncated or "
            f"corrupt. Delete it and download it again."
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends with .gz."""
    path = Path(path)
    arr = np.asarray(array)
    key = arr.dtype.str.lstrip("<>|=")
    if key not in _CODES:
        raise InvalidDataError(f"IDX cannot store dtype {arr.dtype}; use one of {sorted(_CODES)}.")
    code = _CODES[key]
    head = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    body = arr.astype(np.dtype(_DTYPES[code])).tobytes()
    data = gzip.compress(head + body) if path.suffix == ".gz" else head + body
    return write_bytes(path, data)  # whole or absent (dltune.atomic)


@dataclass(frozen=True)
class IdxPair:
    prefix: str  # "train", "t10k", ...
    images: Path
    labels: Path


def find_idx_pairs(directory: Path) -> tuple[list[IdxPair], list[str]]:
    """Image/label pairs in ``directory`` (uncompressed preferred over .gz) and the names of
    image or label files that have no partner."""
    images: dict[str, Path] = {}
    labels: dict[str, Path] = {}
    for p in sorted(directory.iterdir()):
        for pattern, found in ((_IMAGES, images), (_LABELS, labels)):
            m = pattern.match(p.name)
            if m and p.is_file():
                prefix = m["prefix"]
                if prefix not in found or not m["gz"]:  # prefer the uncompressed copy
                    found[prefix] = p
    pairs = [IdxPair(k, images[k], labels[k]) for k in sorted(images) if k in labels]
    lonely = [images[k].name for k in images if k not in labels]
    lonely += [labels[k].name for k in labels if k not in images]
    return pairs, sorted(lonely)


def read_pair(pair: IdxPair) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of one pair, checked: labels 1-D, one per image."""
    x = read_idx(pair.images)
    y = read_idx(pair.labels)
    if x.ndim < 2:
        raise DataError(
            f"{pair.images}: an images file needs at least 2 dimensions (count, ...); "
            f"got shape {x.shape}."
        )
    if y.ndim != 1:
        raise DataError(f"{pair.labels}: a labels file must be 1-D; got shape {y.shape}.")
    if len(x) != len(y):
        raise DataError(
            f"{pair.images.name} has {len(x)} images but {pair.labels.name} has {len(y)} "
            f"labels (in {pair.images.parent}); they must match one for one."
        )
    return x, y


def split_pairs(pairs: list[IdxPair], directory: Path) -> tuple[IdxPair, IdxPair | None]:
    """(train pair, test pair or None) from the pairs found in a directory."""
    if len(pairs) == 1:
        return pairs[0], None
    train = [p for p in pairs if p.prefix.lower().startswith(TRAIN_PREFIXES)]
    test = [p for p in pairs if p.prefix.lower().startswith(TEST_PREFIXES)]
    if len(pairs) == 2 and len(train) == 1 and len(test) == 1:
        return train[0], test[0]
    raise DataError(
        f"{directory}: found {len(pairs)} IDX image/label pairs "
        f"({', '.join(p.prefix for p in pairs)}); expected one pair, or a train- pair and a "
        f"t10k-/test- pair. Move the others elsewhere."
    )
