"""dltune.data: every source, the splits, scaling, task detection and every error path."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from dltune.data import Dataset, from_arrays, load_data, read_idx, write_idx
from dltune.data.tables import column_floats, column_kind, column_text, read_csv, read_parquet
from dltune.errors import DataError

MNIST_10K = Path(__file__).parents[2] / "shared" / "data" / "mnist-10k"


def blobs(n: int = 200, k: int = 3, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Separable integer-labelled classes 0..k-1 (about equally many)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = rng.normal(size=(n, d)) + y[:, None] * 3.0
    return x, y


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def raises(match: str | list[str], fn, *args, **kwargs) -> str:
    """Call fn expecting a DataError whose message contains every word in match."""
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    for word in [match] if isinstance(match, str) else match:
        assert word in msg, f"{word!r} not in: {msg}"
    return msg


# --- built-in -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_data("digits")


def test_digits(digits: Dataset) -> None:
    assert digits.describe() == (
        "digits: classification (10 classes), 64 features of shape 1x8x8, "
        "1257/270/270 train/val/test"
    )
    assert digits.sizes == (1257, 270, 270)
    assert digits.task == "classification" and digits.n_classes == 10 and digits.n_features == 64
    assert digits.task_reason == "target has 10 distinct integer values"
    assert digits.classes == list(range(10)) and all(type(c) is int for c in digits.classes)
    assert digits.split == "70/15/15 stratified, seed 0"
    assert digits.source == "digits" and digits.feature_names is not None
    assert len(digits.feature_names) == 64
    for x in (digits.x_train, digits.x_val, digits.x_test):
        assert x.dtype == np.float32
    for y in (digits.y_train, digits.y_val, digits.y_test):
        assert y.dtype == np.int64 and y.min() >= 0 and y.max() <= 9
    assert digits.x_mean.dtype == np.float32 and digits.x_std.dtype == np.float32
    assert digits.target_mean is None and digits.target_std is None


def test_fingerprint_is_stable_and_tracks_the_split(digits: Dataset) -> None:
    fp = digits.fingerprint()
    assert len(fp) == 64 and fp == load_data("digits").fingerprint()
    assert load_data("digits", seed=1).fingerprint() != fp


# --- standardization and splits --------------------------------------------------------------


def test_standardized_with_train_statistics_only() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(5.0, 2.0, size=(100, 3))
    y = rng.normal(size=100)
    ds = from_arrays(
        x, y, x_val=x[:20] + 100.0, y_val=y[:20], x_test=x[20:40] - 50.0, y_test=y[20:40]
    )
    assert ds.split == "given"
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_mean, x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(ds.x_std, x.std(axis=0), rtol=1e-5)
    assert ds.x_val.mean() > 10 and ds.x_test.mean() < -10  # scaled by train stats, not theirs


def test_split_data_val_and_test_not_exactly_standardized(digits: Dataset) -> None:
    varying = digits.x_std != 1.0
    np.testing.assert_allclose(digits.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(digits.x_train[:, varying].std(axis=0), 1.0, atol=1e-4)
    assert np.abs(digits.x_val.mean(axis=0)).max() > 1e-3
    assert np.abs(digits.x_test.mean(axis=0)).max() > 1e-3


def test_constant_feature_gets_std_one() -> None:
    x, y = blobs()
    x[:, 2] = 7.0
    ds = from_arrays(x, y)
    assert ds.x_std[2] == 1.0 and ds.x_mean[2] == 7.0
    assert np.all(ds.x_train[:, 2] == 0.0) and np.isfinite(ds.x_val).all()


def test_stratification_keeps_class_proportions() -> None:
    x, _ = blobs(400)
    y = np.where(np.arange(400) % 10 < 2, "rare", "common")  # 20% rare
    ds = from_arrays(x, y, seed=3)
    assert ds.classes == ["common", "rare"]
    assert ds.sizes == (280, 60, 60)
    for part in (ds.y_train, ds.y_val, ds.y_test):
        assert abs(part.mean() - 0.2) < 0.01
    assert ds.split == "70/15/15 stratified, seed 3"


def test_split_depends_on_seed_and_covers_every_row_once() -> None:
    x = np.arange(100, dtype=float)[:, None]
    y = np.arange(100) % 2
    a, b = from_arrays(x, y, seed=0), from_arrays(x, y, seed=1)
    rows = np.concatenate([a.x_train, a.x_val, a.x_test]) * a.x_std + a.x_mean
    np.testing.assert_allclose(np.sort(rows.ravel()), np.arange(100), atol=1e-4)
    assert not np.array_equal(a.y_val, b.y_val) or not np.array_equal(a.x_val, b.x_val)


def test_too_few_per_class_falls_back_to_random_split() -> None:
    x, y = blobs(40, k=2)
    y = y.astype(object)
    y[0] = "lonely"
    y = y.astype(str)
    ds = from_arrays(x, y)
    assert "random" in ds.split and "too few" in ds.split and "'lonely'" in ds.split
    assert sum(ds.sizes) == 40


def test_regression_split_is_random_and_target_stats_from_train() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = x[:, 0] * 10 + 1000 + rng.normal(size=200)
    ds = from_arrays(x, y)
    assert ds.task == "regression" and ds.n_classes is None and ds.classes is None
    assert ds.split == "70/15/15 random, seed 0"
    assert ds.y_train.dtype == np.float32 and ds.y_train.mean() > 900  # original units
    assert ds.target_mean == pytest.approx(float(ds.y_train.astype(np.float64).mean()))
    assert ds.target_std == pytest.approx(float(ds.y_train.astype(np.float64).std()))
    assert "regression, 2 features, 140/30/30" in ds.describe()


# --- task detection --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y", "task", "reason"),
    [
        (np.arange(100) % 3, "classification", "target has 3 distinct integer values"),
        (np.arange(100) % 3 + 0.0, "classification", "3 distinct integer values"),
        (np.linspace(0, 1, 100), "regression", "non-integer"),
        (np.arange(100) % 60, "regression", "more than 50"),
        (np.arange(100) % 50, "regression", "not fewer than half"),
        (np.array(["a", "b"] * 50), "classification", "non-numeric"),
        (np.arange(100) % 2 == 0, "classification", "boolean"),
    ],
)
def test_task_detection(y: np.ndarray, task: str, reason: str) -> None:
    x = np.random.default_rng(0).normal(size=(len(y), 2))
    ds = from_arrays(x, y)
    assert ds.task == task and reason in ds.task_reason


def test_bool_and_float_integer_labels_become_plain_values() -> None:
    x, _ = blobs(100)
    assert from_arrays(x, np.arange(100) % 2 == 0).classes == [False, True]
    ds = from_arrays(x, (np.arange(100) % 3) * 2.0)
    assert ds.classes == [0, 2, 4] and all(type(c) is int for c in ds.classes)


def test_task_override() -> None:
    x, y = blobs(100)
    ds = from_arrays(x, y, task="regression")
    assert ds.task == "regression" and ds.task_reason == "task='regression' given"
    assert ds.y_train.dtype == np.float32 and ds.target_std is not None
    ds = from_arrays(x, np.linspace(0, 1, 100).round(1), task="classification")
    assert ds.task == "classification" and ds.n_classes == 11
    raises(["task", "'classification' or 'regression'", "classifcation"], from_arrays, x, y,
           task="classifcation")  # fmt: skip
    raises(["did you mean 'regression'"], load_data, "digits", task="regresion")
    raises(["regression", "non-numeric"], from_arrays, x, np.array(["a", "b"] * 50),
           task="regression")  # fmt: skip


# --- npz -------------------------------------------------------------------------------------


def test_npz_without_splits(tmp_path: Path) -> None:
    x, y = blobs(100)
    path = tmp_path / "blobs.npz"
    np.savez(path, x=x, y=y)
    ds = load_data(path)
    assert ds.name == "blobs" and ds.source == str(path)
    assert ds.sizes == (70, 15, 15) and ds.split.startswith("70/15/15 stratified")


def test_npz_with_given_splits(tmp_path: Path) -> None:
    x, y = blobs(100)
    path = tmp_path / "given.npz"
    np.savez(
        path, x=x[:60], y=y[:60], x_val=x[60:80], y_val=y[60:80], x_test=x[80:], y_test=y[80:],
        feature_names=np.array(["a", "b", "c", "d"]),
    )  # fmt: skip
    ds = load_data(str(path))
    assert ds.sizes == (60, 20, 20) and ds.split == "given"
    assert ds.feature_names == ["a", "b", "c", "d"]
    np.testing.assert_allclose(ds.x_val * ds.x_std + ds.x_mean, x[60:80], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(ds.y_test, y[80:])


def test_npz_with_only_test_or_only_val(tmp_path: Path) -> None:
    x, y = blobs(120)
    only_test = tmp_path / "t.npz"
    np.savez(only_test, x=x[:100], y=y[:100], x_test=x[100:], y_test=y[100:])
    ds = load_data(only_test)
    assert ds.sizes == (85, 15, 20)
    assert ds.split == "test given; validation 15% of train, stratified, seed 0"
    only_val = tmp_path / "v.npz"
    np.savez(only_val, x=x[:100], y=y[:100], x_val=x[100:], y_val=y[100:])
    ds = load_data(only_val, seed=2)
    assert ds.sizes == (85, 20, 15)
    assert ds.split == "validation given; test 15% of train, stratified, seed 2"


def test_npz_errors(tmp_path: Path) -> None:
    x, y = blobs(100)
    p = tmp_path / "a.npz"
    np.savez(p, x=x, target=y)
    raises(["a.npz", "'target'", "Accepted names"], load_data, p)
    np.savez(p, x=x)
    raises(["a.npz", "no array 'y'", "np.savez"], load_data, p)
    np.savez(p, x=x, y=y, x_val=x[:5])
    raises(["x_val", "without y_val"], load_data, p)
    np.savez(p, x=x, y=y, x_val=x[:5], y_val=y[:4])
    raises(["x_val has 5 rows", "y_val has 4"], load_data, p)
    np.savez(p, x=x, y=y, x_test=x[:5, :2], y_test=y[:5])
    raises(["x_test has 2 features", "x has 4"], load_data, p)
    (tmp_path / "bad.npz").write_bytes(b"not a zip file at all")
    raises(["bad.npz"], load_data, tmp_path / "bad.npz")
    raises(["applies only to .csv and .parquet"], load_data, p, target="y")


# --- csv -------------------------------------------------------------------------------------


def test_csv_with_string_labels(tmp_path: Path) -> None:
    x, y = blobs(90)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    rows = [[*map(float, r), lab] for r, lab in zip(x, names, strict=True)]
    path = write_csv(tmp_path / "iris.csv", ["a", "b", "c", "d", "species"], rows)
    ds = load_data(path, target="species")
    assert ds.task == "classification" and ds.classes == ["setosa", "versicolor", "virginica"]
    assert ds.feature_names == ["a", "b", "c", "d"] and ds.name == "iris"
    assert ds.task_reason == "target has non-numeric values"
    assert ds.sizes == (62, 14, 14)
    assert load_data(path, target=-1).classes == ds.classes  # a position works too


def test_csv_regression_target_in_the_middle(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = [
        [f"{a:.3f}", f"{250000 + 1000 * a:.2f}", f"{b:.3f}"] for a, b in rng.normal(size=(60, 2))
    ]
    path = write_csv(tmp_path / "house.csv", ["rooms", "price", "age"], rows)
    ds = load_data(path, target="price")
    assert ds.task == "regression" and ds.feature_names == ["rooms", "age"]
    assert 245000 < ds.y_train.mean() < 255000 and ds.target_mean == pytest.approx(
        float(ds.y_train.astype(np.float64).mean())
    )


def test_csv_semicolons_blank_lines_and_tsv(tmp_path: Path) -> None:
    x, y = blobs(30, k=2)
    lines = ["f1;f2;label"] + [f"{a};{b};{c}" for (a, b, *_), c in zip(x, y, strict=True)]
    path = tmp_path / "semi.csv"
    path.write_text("\n".join(lines[:10]) + "\n\n" + "\n".join(lines[10:]) + "\n")
    assert load_data(path, target="label").n_features == 2
    tsv = tmp_path / "t.tsv"
    tsv.write_text("\n".join(line.replace(";", "\t") for line in lines))
    assert load_data(tsv, target="label").n_classes == 2


def test_csv_errors(tmp_path: Path) -> None:
    x, y = blobs(30)
    rows = [[*map(float, r[:2]), int(c)] for r, c in zip(x, y, strict=True)]
    good = write_csv(tmp_path / "good.csv", ["height", "width", "label"], rows)
    raises(["good.csv", "no column 'lable'", "did you mean 'label'", "'height'"],
           load_data, good, target="lable")  # fmt: skip
    raises(["good.csv", "target=COLUMN", "Columns", "'label'"], load_data, good)
    raises(["not found", "missing.csv"], load_data, tmp_path / "missing.csv", target="label")
    (tmp_path / "empty.csv").write_text("")
    raises(["empty.csv", "empty"], load_data, tmp_path / "empty.csv", target="label")
    (tmp_path / "header.csv").write_text("a,b,label\n")
    raises(["header.csv", "no data rows"], load_data, tmp_path / "header.csv", target="label")
    (tmp_path / "noheader.csv").write_text("1,2,3\n4,5,6\n")
    raises(["noheader.csv", "header"], load_data, tmp_path / "noheader.csv", target="2")

    # encode=False keeps the strict reading: text, empty cells and targets are errors
    bad = [r.copy() for r in rows]
    bad[4][1] = "blue"
    p = write_csv(tmp_path / "color.csv", ["height", "color", "label"], bad)
    raises(["color.csv", "'color'", "not numeric", "line 6", "'blue'"], load_data, p,
           target="label", encode=False)  # fmt: skip
    # by default: text, and a column of numbers but for one word gets a hint
    assert any("'blue'" in n and "numbers" in n for n in load_data(p, target="label").notes)

    bad = [r.copy() for r in rows]
    bad[6][0] = ""
    p = write_csv(tmp_path / "gap.csv", ["height", "width", "label"], bad)
    raises(["gap.csv", "'height'", "line 8", "NaN"], load_data, p, target="label", encode=False)
    assert "height" in load_data(p, target="label").feature_names  # imputed by default
    bad[6][0] = "inf"
    p = write_csv(tmp_path / "inf.csv", ["height", "width", "label"], bad)
    for encode in (True, False):  # an infinite number is no missing value: an error either way
        raises(["inf.csv", "'height'", "line 8", "infinite"], load_data, p, target="label",
               encode=encode)  # fmt: skip

    bad = [r.copy() for r in rows]
    bad[2][2] = "nan"
    p = write_csv(tmp_path / "nolabel.csv", ["height", "width", "label"], bad)
    raises(["nolabel.csv", "target", "'label'", "line 4"], load_data, p, target="label",
           encode=False)  # fmt: skip
    assert sum(load_data(p, target="label").sizes) == len(rows) - 1  # the row dropped

    one = [[*r[:2], 1] for r in rows]
    p = write_csv(tmp_path / "one.csv", ["height", "width", "label"], one)
    raises(["one.csv", "one class only"], load_data, p, target="label")

    p = write_csv(tmp_path / "tiny.csv", ["height", "width", "label"], rows[:6])
    raises(["tiny.csv", "only 6 sample", "at least 10"], load_data, p, target="label")

    (tmp_path / "ragged.csv").write_text("a,b,label\n1,2,0\n3,1\n")
    raises(["ragged.csv", "line 3", "2 fields"], load_data, tmp_path / "ragged.csv", target="b")


# --- the one CSV reader: header required (training data) or optional (predict) ---------------


def test_csv_reader_header_required_or_optional(tmp_path: Path) -> None:
    named = tmp_path / "named.csv"  # a BOM, ';' found in the first line, a blank line skipped
    named.write_text("\ufeff a ; b \n\n1; x \n2;y\n", encoding="utf-8")
    for header in ("required", "optional"):
        # names stripped, cells as written, the file's line numbers
        assert read_csv(named, header=header) == (["a", "b"], [["1", " x "], ["2", "y"]], [3, 4])
    tsv = tmp_path / "t.tsv"
    tsv.write_text("x\ty,z\n1\t2\n")  # .tsv: tabs, whatever the first line holds
    assert read_csv(tsv, header="required") == (["x", "y,z"], [["1", "2"]], [2])
    numbers = tmp_path / "numbers.csv"  # a first row of numbers only: data, to predict
    numbers.write_text("1,2\n3,4\n")
    assert read_csv(numbers, header="optional") == (None, [["1", "2"], ["3", "4"]], [1, 2])
    raises(["numbers.csv", "looks like data, not a header"], read_csv, numbers, header="required")


@pytest.mark.parametrize(
    ("text", "header", "message"),
    [
        ("", "required", "the file is empty; it needs a header row and data rows."),
        ("\n \n", "optional", "the file is empty."),
        ("a,b\n", "required", "the file has a header row but no data rows."),
        ("a,b\n", "optional", "the file has a header row but no data rows."),
        ("a, ,c\n1,2,3\n", "required", "column 1 has an empty name in the header row; name it."),
        (
            "a, ,c\n1,2,3\n",
            "optional",
            "column name '' in the header is empty or repeated; fix the header.",
        ),
        ("a,b,a\n1,2,3\n", "required", "column name 'a' appears twice in the header; rename one."),
        (
            "a,b,a\n1,2,3\n",
            "optional",
            "column name 'a' in the header is empty or repeated; fix the header.",
        ),
        ("1,1\n2,3\n", "required", "column name '1' appears twice in the header; rename one."),
        ("a,b\n1,2\n\n3\n", "required", "line 4 has 1 fields but the header has 2."),
        ("a,b\n1,2\n\n3\n", "optional", "line 4 has 1 fields, but the header has 2."),
        ("1,2\n3\n", "optional", "line 2 has 1 fields, but the first line has 2."),
    ],
)
def test_csv_reader_messages_per_header_rule(
    tmp_path: Path, text: str, header: str, message: str
) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        read_csv(path, header=header)
    assert str(info.value) == f"{path}: {message}"


def test_csv_reader_reports_the_first_problem_as_each_caller_did(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"  # a ragged line, then a byte that is not UTF-8 far on
    path.write_bytes(b"a,b\n1,2\n3\n" + b"4,5\n" * 5000 + b"\xff,6\n")
    raises(["late.csv: line 3 has 1 fields"], read_csv, path, header="required")  # as read
    raises(["late.csv: not UTF-8 text"], read_csv, path, header="optional")  # read whole first


# --- parquet ---------------------------------------------------------------------------------


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    x, _ = blobs(60, k=2)
    table = pa.table(
        {"a": x[:, 0], "b": x[:, 1].astype(np.float32), "n": np.arange(60), "kind": ["u", "v"] * 30}
    )
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    strict = load_data(path, target="kind", encode=False)
    assert strict.classes == ["u", "v"] and strict.feature_names == ["a", "b", "n"]
    assert strict.sizes == (42, 9, 9)
    ds = load_data(path, target="kind")  # encoded: the running number n is an identifier
    assert ds.feature_names == ["a", "b"] and ds.sizes == (42, 9, 9)
    assert np.array_equal(ds.x_train, strict.x_train[:, :2])  # numbers as they were
    raises(["t.parquet", "feature column 'kind'", "not numeric"], load_data, path, target="a",
           encode=False)  # fmt: skip
    raises(["t.parquet", "did you mean 'kind'"], load_data, path, target="kinds")
    pq.write_table(table.set_column(1, "b", pa.array(["x"] * 60)), path)
    raises(["t.parquet", "feature column 'b'", "not numeric"], load_data, path, target="kind",
           encode=False)  # fmt: skip
    col = pa.array([1.0] * 10 + [None] + [2.0] * 49)
    pq.write_table(table.set_column(1, "b", col), path)
    raises(["t.parquet", "'b'", "row 10"], load_data, path, target="kind", encode=False)
    pq.write_table(table.set_column(3, "kind", pa.array(["u"] * 5 + [None] + ["v"] * 54)), path)
    raises(["t.parquet", "target", "'kind'", "row 5"], load_data, path, target="kind",
           encode=False)  # fmt: skip
    assert any("row 5" in note for note in load_data(path, target="kind").notes)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    raises(["junk.parquet"], load_data, tmp_path / "junk.parquet", target="kind")


def test_parquet_regression(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    x, _ = blobs(60, k=2)
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "price": x[:, 0] * 2.5 + 0.1}), path)
    ds = load_data(path, target="price")
    assert ds.task == "regression" and ds.feature_names == ["a", "b"]


def test_parquet_reader_and_its_column_kinds(tmp_path: Path) -> None:
    from decimal import Decimal

    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "k.parquet"
    columns = {
        "i": [1, None],
        "f": [0.5, 1.5],
        "b": [True, False],
        "d": [Decimal("1.25"), Decimal("2.50")],
        "s": ["u", None],
    }
    pq.write_table(pa.table(columns), path)
    table = read_parquet(path)
    kinds = [column_kind(table.column(name)) for name in table.column_names]
    assert kinds == ["number", "number", "number", "decimal", "other"]
    floats = column_floats(table.column("i"))
    assert floats.dtype == np.float64 and floats[0] == 1.0 and np.isnan(floats[1])
    assert column_floats(table.column("d")).tolist() == [1.25, 2.5]
    assert column_text(table.column("s")).tolist() == ["u", "None"]


def test_parquet_without_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)
    monkeypatch.setitem(__import__("sys").modules, "pyarrow.parquet", None)
    raises(["pyarrow", "pip install 'dltune[parquet]'"], load_data, path, target="y")


# --- IDX -------------------------------------------------------------------------------------


def idx_images(n: int, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % k).astype(np.uint8)
    images = rng.integers(0, 256, size=(n, 5, 4), dtype=np.uint8)
    return images, labels


def test_idx_roundtrip(tmp_path: Path) -> None:
    for arr in (np.arange(24, dtype=np.uint8).reshape(2, 3, 4), np.linspace(0, 1, 5)):
        for name in ("a-idx", "a-idx.gz"):
            got = read_idx(write_idx(tmp_path / name, arr))
            assert got.dtype == arr.dtype and got.shape == arr.shape
            np.testing.assert_array_equal(got, arr)


def test_idx_dir_with_one_pair(tmp_path: Path) -> None:
    images, labels = idx_images(100)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    ds = load_data(tmp_path)
    assert ds.sizes == (70, 15, 15) and ds.n_features == 20 and ds.n_classes == 3
    assert ds.split == "70/15/15 stratified, seed 0" and ds.name == tmp_path.name
    assert ds.x_train.dtype == np.float32


def test_idx_dir_with_train_and_test_pairs(tmp_path: Path) -> None:
    images, labels = idx_images(100)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    write_idx(tmp_path / "test-images-idx3-ubyte", images[:30])  # uncompressed works too
    write_idx(tmp_path / "test-labels-idx1-ubyte", labels[:30])
    ds = load_data(str(tmp_path))
    assert ds.sizes == (85, 15, 30)
    assert ds.split.startswith("test given; validation 15% of train, stratified")
    raw_test = ds.x_test * ds.x_std + ds.x_mean
    np.testing.assert_allclose(raw_test, images[:30].reshape(30, -1), atol=1e-3)


def test_idx_errors(tmp_path: Path) -> None:
    images, labels = idx_images(50)
    raises(["no IDX files"], load_data, tmp_path)
    img = write_idx(tmp_path / "train-images-idx3-ubyte", images)
    raises(["train-images-idx3-ubyte", "no matching"], load_data, tmp_path)
    lab = write_idx(tmp_path / "train-labels-idx1-ubyte", labels[:40])
    raises(["50 images", "40 labels"], load_data, tmp_path)
    lab.write_bytes(b"\x00\x00\x08\x01" + (50).to_bytes(4, "big") + bytes(49))
    raises(["train-labels-idx1-ubyte", "size mismatch", "truncated"], load_data, tmp_path)
    lab.write_bytes(b"\x12\x34\x08\x01" + (50).to_bytes(4, "big") + bytes(50))
    raises(["train-labels-idx1-ubyte", "magic number 12340801"], load_data, tmp_path)
    lab.write_bytes(b"\x00\x00\x07\x01" + (50).to_bytes(4, "big") + bytes(50))
    raises(["train-labels-idx1-ubyte", "magic"], load_data, tmp_path)
    write_idx(lab, labels)
    img.unlink()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    raises(["train-images-idx3-ubyte.gz", "cannot read"], load_data, tmp_path)


@pytest.mark.skipif(not MNIST_10K.is_dir(), reason="shared MNIST 10k copy not present")
def test_mnist_10k_folder() -> None:
    ds = load_data(MNIST_10K)
    assert sum(ds.sizes) == 10_000 and ds.sizes == (7000, 1500, 1500)
    assert ds.n_features == 784 and ds.classes == list(range(10))
    counts = np.bincount(np.concatenate([ds.y_train, ds.y_val, ds.y_test]))
    assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# --- arrays and the rest of the error paths --------------------------------------------------


def text_of(x: np.ndarray) -> np.ndarray:
    """x as text with one word that is no number (row 4, column 1)."""
    text = x.astype(object)
    text[4, 1] = "tall"
    return text


def test_from_arrays_errors() -> None:
    x, y = blobs(50)
    raises(["x has 50 rows", "y has 49"], from_arrays, x, y[:49])
    raises(["only 9 sample", "at least 10"], from_arrays, x[:9], y[:9])
    raises(["one class only", "0"], from_arrays, x, np.zeros(50, dtype=int))
    bad = x.copy()
    bad[7, 2] = np.nan
    raises(["feature column 2", "row 7"], from_arrays, bad, y)
    raises(["feature column 'c'", "row 7"], from_arrays, bad, y, feature_names=list("abcd"))
    yn = y.astype(float)
    yn[3] = np.nan
    raises(["target", "NaN", "row 3"], from_arrays, x, yn)
    yo = y.astype(object)
    yo[5] = None
    raises(["target", "missing", "row 5"], from_arrays, x, yo)
    raises(["3 feature names", "4 feature columns"], from_arrays, x, y, feature_names=list("abc"))
    # The count is checked before the values, whose messages name columns by these names.
    raises(["0 feature names", "4 feature columns"], from_arrays, bad, y, feature_names=[])
    raises(["0 feature names", "4 feature columns"], from_arrays, text_of(x), y, feature_names=[])
    raises(["feature column 1", "not numeric", "'tall'"], from_arrays, text_of(x), y)
    raises(["constant"], from_arrays, x, np.full(50, 2.5), task="regression")


def test_unknown_source_lists_what_is_accepted(tmp_path: Path) -> None:
    raises(["unknown data source", "did you mean 'digits'", "mnist", ".csv", ".npz", "IDX"],
           load_data, "digit")  # fmt: skip
    (tmp_path / "data.xlsx").write_bytes(b"x")
    raises(["unsupported file type", ".parquet"], load_data, tmp_path / "data.xlsx")
    raises(["applies only to .csv"], load_data, "digits", target="label")


# --- regressions found by the property tests (tests/test_fuzz.py) ----------------------------


def test_npz_files_that_crashed_the_loader(tmp_path: Path) -> None:
    import io
    import zipfile

    p = tmp_path / "a.npz"
    np.save(p.with_suffix(".npy"), np.zeros(3))  # np.load returned an ndarray: TypeError
    p.write_bytes(p.with_suffix(".npy").read_bytes())
    raises(["a.npz", "single .npy array", "np.savez"], load_data, p)
    np.savez(p, x=np.ones((12, 2)), y=np.arange(12) % 2, feature_names=np.array("a"))
    raises(["a.npz", "feature_names must be a 1-D array", "shape ()"], load_data, p)  # TypeError
    np.savez(p, x=np.ones((12, 2)), y=np.array([b"\xff\xfe", b"a"] * 6))  # UnicodeDecodeError
    raises(["a.npz", "target is bytes", "row 0", "not ASCII"], load_data, p)
    np.savez(p, x=np.zeros((0, 3, 2)), y=np.zeros(0))  # reshape(0, -1): ValueError
    raises(["a.npz", "only 0 sample(s)"], load_data, p)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=blobs(40)[0], y=blobs(40)[1])
    raw = bytearray(buffer.getvalue())
    raw[55] = 0  # inside x.npy's deflated data: zlib.error
    p.write_bytes(bytes(raw))
    raises(["a.npz", "not a readable .npz file"], load_data, p)
    header = io.BytesIO()  # a header that claims 80 TB: MemoryError
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**13,)}
    )
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("x.npy", header.getvalue() + bytes(64))
        z.writestr("y.npy", b"")
    raises(["a.npz", "does not fit in memory"], load_data, p)


def test_idx_files_that_crashed_the_loader(tmp_path: Path) -> None:
    def head(dims: list[int]) -> bytes:
        return bytes([0, 0, 8, len(dims)]) + np.asarray(dims, dtype=">u4").tobytes()

    (tmp_path / "train-labels-idx1-ubyte").write_bytes(head([0]))
    images = tmp_path / "train-images-idx3-ubyte"
    images.write_bytes(head([0, 2, 2]))  # no images: reshape(0, -1) raised ValueError
    raises([str(tmp_path), "only 0 sample(s)"], load_data, tmp_path)
    images.write_bytes(head([65536] * 4))  # 2**64 values: np.prod wrapped to 0, reshape raised
    raises([str(images), "IDX size mismatch"], load_data, tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(head([4]) + bytes(4))
    images.write_bytes(head([4, 0, 28]))  # images of height 0: a bad shape, the file unnamed
    raises([str(images), "no values per example"], load_data, tmp_path)


def test_values_beyond_float32_are_refused_or_standardized(tmp_path: Path) -> None:
    # x - mean overflowed float32 in standardization: -inf features in a loaded dataset
    rows = [[3.4e38, 1], [-3.4e38, 2]] * 2 + [[3.4e38, 3]] * 8
    ds = load_data(write_csv(tmp_path / "wide.csv", ["a", "y"], rows), target="y")
    assert all(np.isfinite(x).all() for x in (ds.x_train, ds.x_val, ds.x_test))
    # a regression target past float32's range became inf
    rows = [[i, 1e300 * (i + 1)] for i in range(12)]
    raises(
        ["big.csv", "target is", "beyond float32's range"],
        load_data,
        write_csv(tmp_path / "big.csv", ["a", "y"], rows),
        target="y",
    )
    # a test value too far from the training mean for float32, even in float64
    x = np.full((40, 1), -3e38)
    x_test = np.full((5, 1), 3e38)
    raises(
        ["test split", "beyond float32's range"],
        from_arrays,
        x,
        np.arange(40) % 2,
        x_test=x_test,
        y_test=np.arange(5) % 2,
    )
