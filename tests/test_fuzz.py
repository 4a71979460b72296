"""Property-based tests: random and malformed space files and data files.

The contract (issue 7): every file given to ``SearchSpace.from_file`` or ``load_data`` either
loads, or raises dltune's own error (:class:`~dltune.errors.DLTuneError`) with a message that names
the file; never a TypeError, KeyError, ValueError, RecursionError or a YAML/numpy/pyarrow error.
A file that loads must give a usable result: a space that survives its own YAML round trip, a
dataset whose arrays are finite and consistent.

Each test draws a few dozen to a hundred examples (``max_examples``), so the file runs in seconds.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import math
import os
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dltune.data import Dataset, load_data
from dltune.errors import DLTuneError
from dltune.space import KEYS, SearchSpace

try:  # optional: only the parquet tests need it
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError:  # pragma: no cover
    pa = pq = None
needs_pyarrow = pytest.mark.skipif(pa is None, reason="pyarrow is not installed")

# DLTUNE_FUZZ_SCALE=20 hunts twenty times longer (a run by hand; CI keeps the default).
SCALE = int(os.environ.get("DLTUNE_FUZZ_SCALE", "1"))
FAST = settings(
    max_examples=80 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MORE = settings(FAST, max_examples=150 * SCALE)


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh directory per example (pytest's tmp_path is one per test, not per example)."""
    with tempfile.TemporaryDirectory(prefix="dltune-fuzz-") as d:
        yield Path(d)


def check_error(error: DLTuneError, path: Path) -> None:
    message = str(error)
    assert message.strip(), f"empty message from {type(error).__name__}"
    assert str(path) in message, f"the message does not name {path}: {message}"


# --------------------------------------------------------------------------------------------
# Space files
# --------------------------------------------------------------------------------------------

NAMES = ["relu", "tanh", "sigmoid", "elu", "mse", "adam", "sgd", "rmsprop", "adagrad", "none"]
NAMES += ["categorical_crossentropy", "mean_squared_error", "accuracy", "rmse", "mae", "rleu"]
NUMERIC_TEXT = ["1e-3", "1e400", "-1e400", "nan", "inf", "0x10", "1_000", " 3 ", "1e-320", ""]
RANGE_KEYS = ["low", "high", "log", "step", "choices", "per_layer"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-100, max_value=100),
    st.integers(),  # arbitrarily large, including past float's range
    st.floats(),  # nan, inf, -0.0, subnormals
    st.floats(min_value=0, max_value=1),
    st.sampled_from(NAMES + NUMERIC_TEXT),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.sampled_from(RANGE_KEYS) | st.text(max_size=6), children, max_size=5),
    ),
    max_leaves=12,
)
top_keys = st.sampled_from([*KEYS, "lr"]) | st.text(max_size=8)
space_dicts = st.dictionaries(top_keys, values, max_size=8)

# Fragments of YAML syntax: joined at random they make mostly-broken, sometimes-valid YAML,
# with tags, anchors, aliases, merges, odd scalars and deep brackets.
FRAGMENTS = [
    *KEYS,
    "lr",
    "low",
    "high",
    "log",
    "step",
    "choices",
    "per_layer",
    ":",
    ": ",
    " ",
    "\n",
    "\n  ",
    "\t",
    ", ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "? ",
    "&a ",
    "*a",
    "<<: ",
    "!!int ",
    "!!float ",
    "!!bool ",
    "!!timestamp ",
    "!!binary ",
    "!!set ",
    "!!omap ",
    "!!python/object ",
    "!foo ",
    "'",
    '"',
    "# ",
    "|",
    ">",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "1",
    "0",
    "-3",
    "0.5",
    "1e-3",
    "1.0e-320",
    "1.0e400",
    ".nan",
    ".inf",
    "0x_",
    "0b_",
    "0x1F",
    "2020-13-45",
    "2001-02-30",
    "2001-01-01 00:00:00 +99:99",
    "9" * 30,
    "9" * 400,
    "~",
    "null",
    "yes",
    "true",
    "relu",
    "adam",
    "\x00",
    "\ufeff",
    "é",
]
yaml_texts = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)


def dump(data: Any, flow: bool | None) -> str:
    return yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True, sort_keys=False)


space_files = st.one_of(
    st.builds(dump, space_dicts, st.sampled_from([None, True, False])).map(str.encode),
    yaml_texts.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.text().map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=200),
    st.binary(max_size=50).map(lambda b: b"layers: " + b + b"\xff\xfe\n"),  # invalid UTF-8
    # deep nesting (PyYAML scans deep brackets slowly: 1000 levels take a second)
    st.integers(1, 650).map(lambda n: ("[" * n + "]" * n).encode()),
    st.integers(1, 3000).map(lambda n: ("layers: " + "{a: " * n + "1" + "}" * n).encode()),
    st.integers(1, 3000).map(lambda n: ("- " * n + "1").encode()),
)


def load_space(path: Path) -> SearchSpace | None:
    """SearchSpace.from_file under the contract; the space, or None after a good error."""
    try:
        space = SearchSpace.from_file(path)
    except DLTuneError as e:
        check_error(e, path)
        return None
    assert isinstance(space, SearchSpace)
    # a space that loads is usable: it describes itself and survives its own YAML
    assert space.describe()
    again = SearchSpace.from_dict(yaml.safe_load(space.to_yaml()), source=str(path))
    assert again == space
    return space


@MORE
@given(content=space_files)
@example(content=b"layers: &a [*a]\n")  # a list that contains itself
@example(content=b"&a {name: *a}\n")
@example(content=b"layers: &a {low: *a, high: 3}\n")
@example(content=b"layers: " + b"9" * 400 + b"\n")  # an int past float's range
@example(content=b"layers: " + b"9" * 5000 + b"\n")  # past Python's int-from-text limit
@example(content=b"dropout: {low: 0, high: 0.5, step: 1.0e-320}\n")
@example(content=b"min_epochs: 5.0e-324\n")
@example(content=b"name: 2020-13-45\n")
@example(content=b"layers: 0x_\n")
@example(content=b"layers: !!int abc\n")
@example(content=b"layers: !!float abc\n")
@example(content=b"layers: !!bool maybe\n")
@example(content=b"name: !!timestamp soon\n")
@example(content=b"- " * 3000 + b"1")
@example(content=b"!!set .")
def test_space_files_load_or_raise_a_dltune_error(content: bytes) -> None:
    with scratch() as d:
        path = d / "space.yaml"
        path.write_bytes(content)
        load_space(path)


@FAST
@given(data=space_dicts)
def test_space_dicts_load_or_raise_a_dltune_error(data: dict[str, Any]) -> None:
    """The same contract for plain Python values (SearchSpace.from_dict), no YAML in between."""
    try:
        space = SearchSpace.from_dict(data, source="<fuzz>")
    except DLTuneError as e:
        assert "<fuzz>" in str(e)
        return
    assert SearchSpace.from_dict(yaml.safe_load(space.to_yaml())) == space


# Near-valid spaces: every key of the right shape, values at and past the edges of their rules.
edge_numbers = st.one_of(
    st.integers(-2, 70000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=2),
    st.sampled_from([0, 1, 2, 32, 33, 65536, 65537, 1e-320, 5e-324, 1e308, 0.999999]),
)
ranges = st.fixed_dictionaries(
    {"low": edge_numbers, "high": edge_numbers},
    optional={"log": st.booleans() | st.none(), "step": edge_numbers},
)
param_values = st.one_of(
    edge_numbers, st.lists(edge_numbers, min_size=1, max_size=4, unique=True), ranges
)
near_valid = st.fixed_dictionaries(
    {},
    optional={
        "layers": param_values,
        "units": param_values
        | st.builds(lambda r: {**r, "per_layer": True}, ranges)
        | st.builds(lambda ps: {"per_layer": ps}, st.lists(param_values, max_size=4)),
        "dropout": param_values,
        "learning_rate": param_values,
        "weight_decay": param_values,
        "batch_size": param_values,
        "activation": st.sampled_from(NAMES) | st.lists(st.sampled_from(NAMES), max_size=3),
        "epochs": edge_numbers,
        "patience": edge_numbers | st.none(),
        "min_epochs": edge_numbers,
        "reduction": edge_numbers,
    },
)


@MORE
@given(data=near_valid)
def test_near_valid_space_files(data: dict[str, Any]) -> None:
    with scratch() as d:
        path = d / "near.yaml"
        path.write_text(dump(data, None), encoding="utf-8")
        load_space(path)


# --------------------------------------------------------------------------------------------
# Writes that are whole or absent (issue 28): dltune.atomic, failing at any step
# --------------------------------------------------------------------------------------------


class Crash(Exception):
    """A failure injected at one step of a write."""


FOLDER_STEPS = ("fill", "flush", "first-rename", "second-rename", "after-swap", "never")
FILES = st.dictionaries(
    st.text(alphabet="abcdefgh_", min_size=1, max_size=8), st.binary(max_size=64), max_size=4
)


def folder_contents(folder: Path) -> dict[str, bytes] | None:
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.is_dir() else None


def folder_filler(files: dict[str, bytes], crash: bool = False) -> Any:
    def fill(folder: Path) -> None:
        for name, data in files.items():
            (folder / name).write_bytes(data)
            if crash:
                raise Crash("while filling")

    return fill


@FAST
@given(
    old=st.none() | FILES,
    new=FILES.filter(bool),
    step=st.sampled_from(FOLDER_STEPS),
    exchange=st.booleans(),
)
def test_a_folder_write_failing_at_any_step_leaves_the_old_or_the_new_whole(
    old: dict[str, bytes] | None, new: dict[str, bytes], step: str, exchange: bool
) -> None:
    """Whatever step fails, the target holds the old folder (none, if there was none) or the
    new one, whole; the new one once the swap is done; and the next write leaves nothing
    beside it."""
    from unittest import mock

    from dltune import atomic

    with scratch() as root:
        target = root / "model"
        if old is not None:
            atomic.write_folder(target, folder_filler(old))
        renames = 0
        rename, exchange_of, fsync_folder = os.rename, atomic._exchange, atomic._fsync_folder

        def renaming(src: Any, dst: Any) -> None:
            nonlocal renames
            renames += 1
            if (step, renames) in (("first-rename", 1), ("second-rename", 2)):
                raise Crash(step)
            rename(src, dst)

        def exchanging(a: Path, b: Path) -> bool:
            if not exchange:
                return False
            if step == "first-rename":
                raise Crash(step)
            return exchange_of(a, b)

        def flushing(folder: Path) -> None:
            if step == "after-swap" and folder == root:
                raise Crash(step)
            fsync_folder(folder)

        def flush_tree(folder: Path) -> None:
            raise Crash(step)

        patches = [
            mock.patch.object(atomic.os, "rename", renaming),
            mock.patch.object(atomic, "_exchange", exchanging),
            mock.patch.object(atomic, "_fsync_folder", flushing),
        ]
        if step == "flush":
            patches.append(mock.patch.object(atomic, "_fsync_tree", flush_tree))
        crashed = False
        with contextlib.ExitStack() as stack:
            for patch in patches:
                stack.enter_context(patch)
            try:
                atomic.write_folder(target, folder_filler(new, crash=step == "fill"))
            except Crash:
                crashed = True
        got = folder_contents(target)
        assert got == (new if not crashed or step == "after-swap" else old)
        atomic.write_folder(target, folder_filler(new))
        assert folder_contents(target) == new
        assert [p.name for p in root.iterdir()] == ["model"]


@FAST
@given(old=st.none() | st.binary(max_size=64), new=st.binary(max_size=64), fail=st.booleans())
def test_a_file_write_failing_leaves_the_old_file_and_nothing_beside_it(
    old: bytes | None, new: bytes, fail: bool
) -> None:
    from dltune import atomic

    with scratch() as root:
        target = root / "report.json"
        if old is not None:
            target.write_bytes(old)

        def write(temp: Path) -> None:
            temp.write_bytes(new[: len(new) // 2])
            if fail:
                raise Crash("mid-write")
            temp.write_bytes(new)

        with contextlib.suppress(Crash):
            atomic.write_file(target, write)
        got = target.read_bytes() if target.exists() else None
        assert got == (old if fail else new)
        assert [p.name for p in root.iterdir()] == ([] if got is None else ["report.json"])


# --------------------------------------------------------------------------------------------
# Data files
# --------------------------------------------------------------------------------------------


def load_dataset(path: Path, target: str | int | None = None) -> Dataset | None:
    """load_data under the contract: a usable Dataset, or None after a good error."""
    try:
        ds = load_data(path, target=target)
    except DLTuneError as e:
        check_error(e, path)
        return None
    assert isinstance(ds, Dataset)
    n_features = ds.x_train.shape[1]
    assert n_features >= 1
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == n_features
        assert y.ndim == 1 and len(y) == len(x) >= 1
        assert np.isfinite(x).all(), "standardized features hold NaN or inf"
        if ds.classes is None:
            assert y.dtype == np.float32 and np.isfinite(y).all(), "targets hold NaN or inf"
        else:
            assert y.dtype == np.int64 and y.min() >= 0 and y.max() < len(ds.classes)
    if ds.classes is None:
        assert ds.target_mean is not None and ds.target_std is not None
        assert math.isfinite(ds.target_mean) and math.isfinite(ds.target_std)
    else:
        assert len(ds.classes) >= 2
    assert np.isfinite(ds.x_mean).all() and np.isfinite(ds.x_std).all()
    return ds


def mutate(raw: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    """Bytes with some changed (position, new value) and optionally truncated."""
    out = bytearray(raw)
    for pos, value in flips:
        if out:
            out[pos % len(out)] = value
    return bytes(out[:cut] if cut is not None else out)


flips = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4)
cuts = st.none() | st.integers(0, 400)

# ---- csv ----

cells = st.one_of(
    st.integers(-5, 5).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-1e3, 1e3).map(lambda v: f"{v:.3f}"),
    st.sampled_from(["", " ", "NA", "nan", "-nan", "inf", "-Infinity", "1e999", "1_0", "a", "b"]),
    st.sampled_from(["3.4e38", "-3.4e38", "3.4028235e38", "1e-45", "1e300", "NULL", "None"]),
    st.text(max_size=6),
)
column_names = st.sampled_from(["a", "b", "c", "y", "target", "", " ", "1", "2.5"]) | st.text(
    max_size=5
)


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, str, str | int | None]:
    """(file bytes, suffix, target): a table, mostly rectangular, and a target that may exist."""
    kind = draw(st.sampled_from(["table", "table", "table", "text", "binary"]))
    suffix = draw(st.sampled_from([".csv", ".csv", ".tsv"]))
    if kind == "text":
        return draw(st.text()).encode("utf-8", "surrogatepass"), suffix, draw(column_names)
    if kind == "binary":
        return draw(st.binary(max_size=300)), suffix, "y"
    n_cols = draw(st.integers(1, 5))
    header = draw(st.lists(column_names, min_size=n_cols, max_size=n_cols))
    # a column is clean numbers (most), few labels, or anything
    col_kinds = draw(st.lists(st.sampled_from(["num", "num", "label", "any"]), min_size=n_cols))
    col_kinds = (col_kinds * n_cols)[:n_cols]
    col_cells = {
        "num": st.floats(-1e6, 1e6).map(repr) | st.integers(-9, 9).map(str),
        "label": st.sampled_from(["0", "1", "2", "cat", "dog"]),
        "any": cells,
    }
    n_rows = draw(st.integers(0, 40))
    rows = []
    for _ in range(n_rows):
        width = n_cols if draw(st.integers(0, 19)) else draw(st.integers(0, n_cols + 2))  # ragged
        row = [draw(col_cells[col_kinds[j % n_cols]]) for j in range(width)]
        rows.append(row)
    delimiter = "\t" if suffix == ".tsv" else draw(st.sampled_from([",", ",", ";", "|"]))
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    if draw(st.booleans()) or not rows:
        writer.writerow(header)  # sometimes no header: the first data row is taken for one
    writer.writerows(rows)
    text = buffer.getvalue()
    if draw(st.booleans()):
        text = "\ufeff" + text  # a byte-order mark, as Excel writes
    target = draw(st.one_of(st.sampled_from(header), column_names, st.integers(-6, 6), st.none()))
    return text.encode("utf-8", "surrogatepass"), suffix, target


@MORE
@given(case=csv_files())
@example(case=(b"a,y\n" + b"3.4e38,1\n-3.4e38,2\n" * 2 + b"3.4e38,3\n" * 8, ".csv", "y"))
@example(
    case=(b"a,y\n" + b"".join(b"%d,3e38\n" % i for i in range(10)) + b"0,-3e38\n", ".csv", "y")
)
@example(case=(b"a,y\n" + b"".join(b"%d,1e300\n" % i for i in range(12)), ".csv", "y"))
def test_csv_files_load_or_raise_a_dltune_error(case: tuple[bytes, str, str | int | None]) -> None:
    content, suffix, target = case
    with scratch() as d:
        path = d / f"data{suffix}"
        path.write_bytes(content)
        load_dataset(path, target)


# ---- npz ----

DTYPES = [
    "float64",
    "float32",
    "float16",
    "int8",
    "int64",
    "uint64",
    "bool",
    "complex128",
    "U3",
    "S3",
    "datetime64[s]",
    "timedelta64[s]",
    "V4",
    [("a", "i4"), ("b", "f8")],
]
NPZ_NAMES = ["x", "y", "x_val", "y_val", "x_test", "y_test", "feature_names", "X", "target"]


def arrays_of(dtype: Any, shape: Any, elements: Any = None) -> st.SearchStrategy[np.ndarray]:
    """hypothesis's arrays, or zeros for the void and structured dtypes it cannot fill."""
    dtype = np.dtype(dtype)
    if dtype.kind == "V":
        shapes = shape if isinstance(shape, st.SearchStrategy) else st.just(shape)
        return shapes.map(lambda s: np.zeros(s, dtype))
    return hnp.arrays(dtype, shape, elements=elements)


def any_array(shape: Any) -> st.SearchStrategy[np.ndarray]:
    return st.sampled_from(DTYPES).flatmap(lambda dt: arrays_of(dt, shape))


@st.composite
def npz_files(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["arrays", "arrays", "arrays", "npy", "object", "binary"]))
    if kind == "binary":
        return draw(st.binary(max_size=300))
    buffer = io.BytesIO()
    if kind == "npy":  # a .npy file named .npz
        np.save(buffer, draw(any_array(hnp.array_shapes(min_dims=0, max_dims=2, max_side=4))))
        return buffer.getvalue()
    arrays: dict[str, np.ndarray] = {}
    if kind == "object":
        arrays["x"] = np.array([[1.0], [2.0]] * 6)
        arrays["y"] = np.array([1, "a", None] * 4, dtype=object)
    else:
        n = draw(st.integers(0, 30))
        d = draw(st.integers(0, 3))
        x_shape = draw(st.sampled_from([(n, d), (n,), (n, d, 2), (), (n, 0, 2), (0, d, 2)]))
        y_shape = draw(st.sampled_from([(n,), (n,), (n, 1), (n, 2), (), (n + 1,)]))
        numeric = st.sampled_from(["float64", "int64", "float32", "bool"])
        x_dtype = draw(numeric | st.sampled_from(DTYPES))
        arrays["x"] = draw(arrays_of(x_dtype, x_shape))
        y_elements = st.integers(0, 3) if draw(st.booleans()) else None
        y_dtype = draw(
            st.sampled_from(["int64", "int64", "float64", "U3"]) | st.sampled_from(DTYPES)
        )
        if y_elements is not None and np.dtype(y_dtype).kind in "iuf":
            arrays["y"] = draw(arrays_of(y_dtype, y_shape, y_elements))
        else:
            arrays["y"] = draw(arrays_of(y_dtype, y_shape))
        extra = draw(st.lists(st.sampled_from(NPZ_NAMES), max_size=3, unique=True))
        for key in extra:
            shape = draw(st.sampled_from([(), (n,), (n, d), (4, d), (d,), (n + 2, d)]))
            arrays[key] = draw(any_array(shape))
        for key in draw(st.lists(st.sampled_from(["x", "y"]), max_size=1)):
            arrays.pop(key, None)  # a missing key
    save = np.savez_compressed if draw(st.booleans()) else np.savez
    save(buffer, allow_pickle=True, **arrays)  # type: ignore[arg-type]
    raw = buffer.getvalue()
    if draw(st.integers(0, 4)) == 0:  # a damaged file
        raw = mutate(raw, draw(flips), draw(cuts))
    return raw


def npz_bytes(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@MORE
@given(content=npz_files())
@example(content=npz_bytes(x=np.zeros((0, 3, 2)), y=np.zeros(0)))
@example(content=npz_bytes(x=np.ones((12, 2)), y=np.array([b"\xff\xfe", b"a"] * 6)))
@example(content=npz_bytes(x=np.ones((12, 2)), y=np.arange(12) % 2, feature_names=np.array("a")))
def test_npz_files_load_or_raise_a_dltune_error(content: bytes) -> None:
    with scratch() as d:
        path = d / "data.npz"
        path.write_bytes(content)
        load_dataset(path)


@FAST
@given(flips=flips, cut=cuts, compressed=st.booleans())
def test_damaged_npz_files(flips: list[tuple[int, int]], cut: int | None, compressed: bool) -> None:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    save = np.savez_compressed if compressed else np.savez
    save(buffer, x=rng.normal(size=(40, 3)), y=np.arange(40) % 2)
    with scratch() as d:
        path = d / "data.npz"
        path.write_bytes(mutate(buffer.getvalue(), flips, cut))
        load_dataset(path)


# ---- parquet ----


@st.composite
def parquet_tables(draw: st.DrawFn) -> Any:
    n = draw(st.integers(0, 30))
    n_cols = draw(st.integers(0, 4))
    names = draw(st.lists(st.sampled_from(["a", "b", "y", "", "target"]), min_size=n_cols))
    names = (names * n_cols)[:n_cols]
    floats = st.floats(allow_nan=True, allow_infinity=True) | st.floats(-100, 100) | st.none()
    kinds = {
        "int": (st.integers(-3, 3) | st.none(), pa.int64()),
        "float": (floats, pa.float64()),
        "float32": (st.floats(-100, 100, width=32) | st.none(), pa.float32()),
        "bool": (st.booleans() | st.none(), pa.bool_()),
        "text": (st.sampled_from(["u", "v", ""]) | st.none(), pa.string()),
        "null": (st.none(), pa.null()),
        "list": (st.lists(st.integers(0, 3), max_size=2), pa.list_(pa.int64())),
    }
    columns = []
    for _ in range(n_cols):
        elements, kind = kinds[draw(st.sampled_from(sorted(kinds)))]
        columns.append(pa.array(draw(st.lists(elements, min_size=n, max_size=n)), type=kind))
    if draw(st.integers(0, 5)) == 0:
        columns = [c.dictionary_encode() if c.type == pa.string() else c for c in columns]
    return pa.Table.from_arrays(columns, names=names)


@needs_pyarrow
@FAST
@given(table=parquet_tables(), target=st.sampled_from(["a", "b", "y", "", "target", 0, -1, None]))
def test_parquet_files_load_or_raise_a_dltune_error(table: Any, target: str | int | None) -> None:
    with scratch() as d:
        path = d / "data.parquet"
        pq.write_table(table, path)
        load_dataset(path, target)


@needs_pyarrow
@FAST
@given(flips=flips, cut=cuts, junk=st.binary(max_size=200), kind=st.integers(0, 2))
@example(flips=[(334, 128)], cut=None, junk=b"", kind=0)  # a column name no longer UTF-8
def test_damaged_parquet_files(
    flips: list[tuple[int, int]], cut: int | None, junk: bytes, kind: int
) -> None:
    buffer = io.BytesIO()
    table = pa.table({"a": np.arange(20.0), "y": np.arange(20) % 2})
    pq.write_table(table, buffer)
    raw = buffer.getvalue()
    content = [mutate(raw, flips, cut), junk, b"PAR1" + junk + b"PAR1"][kind]
    with scratch() as d:
        path = d / "data.parquet"
        path.write_bytes(content)
        load_dataset(path, "y")


# ---- IDX folders ----

IDX_NAMES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
    "test-images.idx3-ubyte",
    "test-labels.idx1-ubyte",
    "extra-images-idx2-ubyte",
    "readme.txt",
]
IDX_CODES = [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07, 0x00]
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@st.composite
def idx_contents(draw: st.DrawFn, labels: bool) -> bytes:
    kind = draw(st.sampled_from(["array", "array", "array", "header", "binary"]))
    if kind == "binary":
        return draw(st.binary(max_size=64))
    if kind == "header":  # a header with any dims, and any body
        code = draw(st.sampled_from(IDX_CODES))
        dims = draw(st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 4), max_size=5))
        head = bytes([0, 0, code, len(dims)]) + np.asarray(dims, dtype=">u4").tobytes()
        return head + draw(st.binary(max_size=64))
    code = draw(st.sampled_from(list(IDX_DTYPES)))
    n = draw(st.integers(0, 24))
    shape = (n,) if labels else (n, *draw(st.lists(st.integers(0, 3), min_size=0, max_size=2)))
    elements = st.integers(0, 2) if labels and draw(st.booleans()) else None
    arr = draw(hnp.arrays(np.dtype(IDX_DTYPES[code]), shape, elements=elements))
    head = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return head + arr.tobytes()


@st.composite
def idx_folders(draw: st.DrawFn) -> dict[str, bytes]:
    names = draw(st.lists(st.sampled_from(IDX_NAMES), min_size=0, max_size=4, unique=True))
    files = {}
    for name in names:
        content = draw(idx_contents(labels="labels" in name))
        how = draw(st.sampled_from(["plain", "plain", "gz", "gz-named-only", "gz-truncated"]))
        if how == "gz":
            name, content = name + ".gz", gzip.compress(content)
        elif how == "gz-named-only":
            name += ".gz"
        elif how == "gz-truncated":
            name, content = name + ".gz", gzip.compress(content)[: draw(st.integers(0, 30))]
        files[name] = content
    return files


def idx_head(code: int, dims: list[int]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + np.asarray(dims, dtype=">u4").tobytes()


@MORE
@given(files=idx_folders())
@example(
    files={
        "train-images-idx3-ubyte": idx_head(8, [0, 2, 2]),
        "train-labels-idx1-ubyte": idx_head(8, [0]),
    }
)
@example(
    files={
        "train-images-idx3-ubyte": idx_head(8, [65536] * 4),  # 2**64 values: int64 wraps to 0
        "train-labels-idx1-ubyte": idx_head(8, [0]),
    }
)
def test_idx_folders_load_or_raise_a_dltune_error(files: dict[str, bytes]) -> None:
    with scratch() as d:
        folder = d / "mnist"
        folder.mkdir()
        for name, content in files.items():
            (folder / name).write_bytes(content)
        load_dataset(folder)


# ---- any suffix, any bytes ----


@FAST
@given(
    content=st.binary(max_size=200),
    suffix=st.sampled_from([".csv", ".tsv", ".npz", ".parquet", ".pq", ".txt", ""]),
    target=st.none() | st.sampled_from(["y", "a", 0, -1]),
)
def test_any_bytes_under_any_name(content: bytes, suffix: str, target: str | int | None) -> None:
    with scratch() as d:
        path = d / f"data{suffix}"
        path.write_bytes(content)
        load_dataset(path, target)


def test_zip_with_foreign_members(tmp_path: Path) -> None:
    """A .npz whose members are not .npy arrays (a zip made by hand)."""
    path = tmp_path / "data.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", b"not an array")
        z.writestr("y", b"1,2,3")
    load_dataset(path)


@pytest.mark.parametrize("levels", [7, 12])
def test_a_yaml_alias_bomb_is_refused_at_once_with_a_short_message(
    tmp_path: Path, levels: int
) -> None:
    """A space file whose aliases nest aliases ("billion laughs": 9**levels strings) is
    refused within a second, its message bounded: the formatter stops at SHOW_LIMIT."""
    import time

    from dltune.errors import SpaceError
    from dltune.space import SearchSpace
    from dltune.space.rules import SHOW_LIMIT

    node = '&l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'
    for level in range(1, levels):
        node = f"&l{level} [{node}, " + ", ".join([f"*l{level - 1}"] * 8) + "]"
    path = tmp_path / "bomb.yaml"
    path.write_text(f"activation: {node}\n")
    started = time.perf_counter()
    with pytest.raises(SpaceError) as refused:
        SearchSpace.from_file(path)
    assert time.perf_counter() - started < 1.0
    assert len(str(refused.value)) < SHOW_LIMIT + 200 and str(path) in str(refused.value)


# --------------------------------------------------------------------------------------------
# Passwords in storage URLs (issue 28): display_url, the one mask, hides every form
# --------------------------------------------------------------------------------------------

SECRET = "Sup3rSecret"

MASKED_FORMS = [
    ("postgresql://me:Sup3rSecret@db:5432/x", "postgresql://me:***@db:5432/x"),
    ("postgresql+psycopg2://me:Sup3rSecret@db/x", "postgresql+psycopg2://me:***@db/x"),
    ("postgresql://:Sup3rSecret@db/x", "postgresql://:***@db/x"),  # no user
    ("mysql+pymysql://me:Sup@3r:Secret@db/x", "mysql+pymysql://me:***@db/x"),  # @ and :
    ("postgresql://me:Sup%403rSecret@db/x", "postgresql://me:***@db/x"),  # percent-escaped
    ("postgresql://me:Sup3r Secret@db/x", "postgresql://me:***@db/x"),  # a space
    (  # Azure's user@server
        "postgresql://me@srv:Sup3rSecret@srv.postgres.database.azure.com/x",
        "postgresql://me@srv:***@srv.postgres.database.azure.com/x",
    ),
    ("postgresql://me@db/x?password=Sup3rSecret", "postgresql://me@db/x?password=***"),
    (
        "postgresql://me@db/x?sslmode=require&sslpassword=Sup3rSecret&application_name=t",
        "postgresql://me@db/x?sslmode=require&sslpassword=***&application_name=t",
    ),
    ("mysql://me@db/x?passwd=Sup3rSecret", "mysql://me@db/x?passwd=***"),
    ("postgresql://me@db/x?Password=Sup%263rSecret", "postgresql://me@db/x?Password=***"),
    (
        "postgresql:///x?host=/run/postgresql&user=me&password=Sup3rSecret",
        "postgresql:///x?host=/run/postgresql&user=me&password=***",
    ),
    ("host=db user=me password=Sup3rSecret dbname=x", "host=db user=me password=*** dbname=x"),
    ("host=db password = 'Sup3r Secret' dbname=x", "host=db password = *** dbname=x"),
    ("host=db password='Sup3r\\'Secret' dbname=x", "host=db password=*** dbname=x"),
    ("PGPASSWORD=Sup3rSecret psql", "PGPASSWORD=*** psql"),
    (
        "storage 'postgresql://me:Sup3rSecret@db/x' cannot be opened: refused",
        "storage 'postgresql://me:***@db/x' cannot be opened: refused",
    ),
    ("{'password': 'Sup3rSecret', 'host': 'db'}", "{'password': '***', 'host': 'db'}"),
    ('{"storage": "postgresql://me:Sup3rSecret@db/x"}', '{"storage": "postgresql://me:***@db/x"}'),
]
UNCHANGED = [
    "sqlite:///dltune.db",
    "sqlite:////tmp/odd:name@here.db",  # a file name, not a password
    "journal:///study.log",
    "postgresql://me@db:5432/x?sslmode=require",
    "postgresql://USER:PASSWORD@HOST:PORT/DB",  # dltune's own hint: the form, no secret
    "learning_rate=0.1 is too high; the study 'x' holds 3 trials",
]


@pytest.mark.parametrize(("text", "shown"), MASKED_FORMS)
def test_display_url_masks_every_form_of_password(text: str, shown: str) -> None:
    from dltune.storage import display_url

    assert display_url(text) == shown
    assert display_url(shown) == shown  # idempotent
    for piece in ("Sup3r", "Secret", "3rSecret"):
        assert piece not in display_url(text)


@pytest.mark.parametrize("text", UNCHANGED)
def test_display_url_leaves_text_without_a_password_alone(text: str) -> None:
    from dltune.storage import display_url

    assert display_url(text) == text


passwords = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=4, max_size=24
)
URL_FORMS = [
    "postgresql://me:{raw}@db.example:5432/x",
    "postgresql+psycopg2://:{raw}@db.example/x?sslmode=require",
    "mysql://me@srv:{raw}@db.example/x",
    "postgresql://me:{quoted}@db.example/x",
    "postgresql://me@db.example/x?sslmode=require&password={quoted}&application_name=t",
    "postgresql://me@db.example/x?sslpassword={quoted}",
    "host=db.example user=me password={libpq} dbname=x",
    "error: 'postgresql://me:{quoted}@db.example/x' refused",
]


@FAST
@given(password=passwords, form=st.sampled_from(URL_FORMS))
@example(password="p@ss:w/rd?#&=", form=URL_FORMS[0])
@example(password="a b'c\\d", form=URL_FORMS[6])
def test_no_password_survives_display_url(password: str, form: str) -> None:
    """Any password, written in a URL as it must be there (raw in the user part, percent-escaped
    in a query, quoted in a libpq string), is gone from what display_url shows, and what is
    shown is stable."""
    from urllib.parse import quote

    from dltune.storage import display_url

    libpq = "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"
    text = form.format(raw=password, quoted=quote(password, safe=""), libpq=libpq)
    shown = display_url(text)
    # the password may coincide with text around it (a password "db.example"): only a secret
    # that is not already part of the form itself can be looked for
    fixed = form.format(raw="***", quoted="***", libpq="***")
    for secret in {password, quote(password, safe="")}:
        if secret.strip() and secret not in fixed:
            assert secret not in shown, (text, shown)
    assert display_url(shown) == shown
    assert "db.example" in shown or "@" in password  # the host stays, unless hidden with it


# --------------------------------------------------------------------------------------------
# What a storage or a model folder says: checkpoint ids and recorded builds (issue 28)
# --------------------------------------------------------------------------------------------

CRAFTED_IDS = ["../victim", "sub/../../victim", "a/b", "/abs", "..", ".", "", "ckpt-../victim"]


def checkpoint_store(folder: Path) -> Any:
    from dltune.storage.checkpoints import AtomicFileStore, CheckpointStore

    (folder / "checkpoints").mkdir()
    return CheckpointStore(AtomicFileStore(folder / "checkpoints"), str(folder / "checkpoints"))


@pytest.mark.parametrize("crafted", [*CRAFTED_IDS, "VICTIM"])
def test_a_crafted_checkpoint_id_never_becomes_a_path(tmp_path: Path, crafted: str) -> None:
    from dltune.study.checkpointing import _load

    store = checkpoint_store(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    crafted = str(victim) if crafted == "VICTIM" else crafted  # an absolute path to it
    with pytest.raises(DLTuneError, match="is not one dltune writes"):
        store.load(crafted)
    with pytest.warns(RuntimeWarning, match="so it is not opened or removed"):
        store.remove(crafted)  # the run goes on: a warning, nothing removed
    assert victim.read_text() == "keep"

    class Holder:  # what _load reads of a Checkpointer
        pass

    holder = Holder()
    holder.store = store  # type: ignore[attr-defined]
    snapshot, problem = _load(holder, {"id": crafted})  # type: ignore[arg-type]
    assert snapshot is None and "is not one dltune writes" in problem


@FAST
@given(st.text(max_size=40))
@example("ckpt-" + "0" * 32)
@example("ckpt-" + "0" * 32 + "/../x")
def test_any_checkpoint_id_is_read_or_refused_cleanly(crafted: str) -> None:
    with scratch() as folder:
        store = checkpoint_store(folder)
        try:
            assert store.load(crafted) is None  # our form: a file that is not there
        except DLTuneError as error:
            assert "is not one dltune writes" in str(error)


def test_a_resumed_trial_whose_checkpoint_id_was_crafted_starts_from_its_seed(
    tmp_path: Path,
) -> None:
    """An interrupted study whose stored checkpoint ids were replaced by paths: the continued
    run warns, retrains those trials from their seeds, and touches nothing outside."""
    import json
    import sqlite3

    import optuna

    from dltune.storage import schema
    from dltune.study import tune

    from .helpers import SMALL_SPACE
    from .test_checkpoints import StopAfter

    (tmp_path / "small.yaml").write_text(SMALL_SPACE)
    db = tmp_path / "dltune.db"
    options: dict[str, Any] = dict(
        data="digits", storage=f"sqlite:///{db}", seed=0, workers=1, checkpoint_every=0,
        cv="holdout",
    )  # fmt: skip
    first = tune(tmp_path / "small.yaml", trials=40, progress=StopAfter(13), **options)
    failed = optuna.trial.TrialState.FAIL  # interrupted: resumed from their checkpoints
    left = [t for t in first.study.get_trials() if t.state == failed and schema.read_checkpoint(t)]
    assert first.interrupted and left
    victim = tmp_path / "victim"
    victim.write_text("keep")
    with sqlite3.connect(db) as connection:  # what a hand (or a download) could make of it
        for trial, crafted in zip(left, [str(victim), "../victim", "a/b"] * 9, strict=False):
            record = json.dumps({"id": crafted, "epochs": 1, "bytes": 3})
            connection.execute(
                "UPDATE trial_user_attributes SET value_json = ? WHERE trial_id = ? AND key = ?",
                (record, trial._trial_id, "checkpoint"),
            )
    with pytest.warns(RuntimeWarning, match="from its seed, not from its checkpoint: checkpoint"):
        again = tune(tmp_path / "small.yaml", trials=2, **options)
    assert victim.read_text() == "keep"
    continued = {schema.read_resumes(t) for t in again.study.get_trials()}
    assert {t.number for t in left} <= continued
    assert not [t for t in again.study.get_trials() if t.state == optuna.trial.TrialState.RUNNING]


RECORD_KEYS = {
    "kind": st.sampled_from(["file", "module", "FILE", "", None, 1]),
    "attr": st.one_of(st.sampled_from(["build", "a.b", "__class__", ""]), st.none()),
    "path": st.one_of(
        st.sampled_from([None, "/etc/passwd", "../evil.py", "evil.py", "a/b.py", "/", ""]),
        st.text(max_size=12),
        st.integers(),
    ),
    # top-level names only: finding a dotted name imports its parent packages
    "module": st.one_of(
        st.sampled_from([None, "json", "sys", "os", "../evil", "", "no_such_mod_xyz"]),
        st.text(max_size=12).filter(lambda t: "." not in t),
    ),
    "sha256": st.one_of(
        st.sampled_from([None, "", "abc", "0" * 64, "G" * 64]), st.text(max_size=70)
    ),
}


@FAST
@given(
    st.one_of(
        st.fixed_dictionaries({}, optional=RECORD_KEYS),
        st.none(),
        st.text(max_size=20),
        st.lists(st.integers(), max_size=3),
    )
)
def test_a_recorded_build_runs_only_trusted_and_checked(record: Any) -> None:
    """Whatever a folder or study records as its build: refused untrusted, naming where;
    trusted, refused before any of it runs unless its hash matches (none here can)."""
    from unittest import mock

    from dltune.usermodel import source

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"{record!r} ran")

    with mock.patch.object(source, "_exec_module", forbidden):
        with pytest.raises(DLTuneError) as refused:
            source.stored(record, "FOLDER/config.json", trust=False)
        assert "FOLDER/config.json" in str(refused.value)
        with pytest.raises(DLTuneError):
            source.stored(record, "FOLDER/config.json", trust=True).load()
