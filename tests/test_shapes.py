"""Data keep their shape: per source, asked for with `shape` / --shape, refused when wrong,
recorded with a study and a model folder, and given back to a resumed run, train-best and
predict. The arrays and the fingerprint stay flat."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import optuna
import pytest

from dltune import tune
from dltune.data import from_arrays, load_data, with_shape, write_idx
from dltune.data.dataset import digest_arrays
from dltune.data.shapes import parse_shape
from dltune.data.split import split_three
from dltune.errors import DataError, ModelError, StudyError
from dltune.export import read_bundle, train_best
from dltune.export.predict import predict_table, read_table
from dltune.export.preprocessing import Preprocessing
from dltune.export.retrain import study_data
from dltune.storage import schema

from .helpers import dltune as run_cli

# digits' fingerprint (seed 0) as the loader computed it before examples had shapes: stored
# studies on digits must still open.
DIGITS_FINGERPRINT = "77ea234036e3b784765edbf802b7af0203c11852066e0e9fc3a1abcc10f5eb25"
TINY = {
    "layers": 1,
    "units": [8],
    "activation": ["relu"],
    "optimizer": ["adam"],
    "learning_rate": {"low": 1e-2, "high": 3e-2, "log": True},
    "batch_size": [64],
    "epochs": 1,
}


def raises(words: list[str], fn, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in: {message}"
    return message


def classes(n: int, seed: int = 0, features: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Three separable classes of `features` values each."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, size=(3, features))
    y = rng.integers(0, 3, size=n)
    x = centers[y] + rng.normal(0, 1, size=(n, features))
    return x.astype(np.float32), y


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"f{j}" for j in range(x.shape[1])] + ["y"])
        writer.writerows([*map(float, row), int(label)] for row, label in zip(x, y, strict=True))
    return path


# --- per source -------------------------------------------------------------------------------


def test_digits_are_8x8_images_and_keep_their_old_fingerprint() -> None:
    from sklearn.datasets import load_digits

    data = load_data("digits")
    assert data.input_shape == (1, 8, 8) and data.shaped and not data.shape_given
    assert data.x_train.shape == (1257, 64)  # the arrays stay flat
    assert "64 features of shape 1x8x8" in data.describe()
    assert data.fingerprint() == DIGITS_FINGERPRINT
    # ... which is the digest of the flat split arrays, the old way.
    bunch = load_digits()
    x, y = bunch.data.astype(np.float32), bunch.target.astype(np.int64)
    tr, va, te, _ = split_three(len(x), y, 0, list(range(10)))
    flat = (x[tr], y[tr], x[va], y[va], x[te], y[te])
    assert digest_arrays(flat, list(range(10))) == DIGITS_FINGERPRINT
    # A shape asked for changes neither the fingerprint nor the standardization.
    signal = load_data("digits", shape="2,32")
    assert signal.input_shape == (2, 32) and signal.shape_given
    assert signal.fingerprint() == DIGITS_FINGERPRINT
    np.testing.assert_array_equal(signal.x_mean, data.x_mean)
    np.testing.assert_array_equal(signal.x_train, data.x_train)
    assert load_data("digits", shape=[64]).input_shape == (64,)  # flat again


def test_idx_images_get_one_channel_and_4d_files_keep_theirs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    gray = tmp_path / "gray"
    gray.mkdir()
    write_idx(gray / "train-images-idx3-ubyte.gz", rng.integers(0, 255, (60, 5, 4), np.uint8))
    write_idx(gray / "train-labels-idx1-ubyte.gz", np.tile(np.arange(3, dtype=np.uint8), 20))
    write_idx(gray / "t10k-images-idx3-ubyte", rng.integers(0, 255, (30, 5, 4), np.uint8))
    write_idx(gray / "t10k-labels-idx1-ubyte", np.tile(np.arange(3, dtype=np.uint8), 10))
    data = load_data(gray)
    assert data.input_shape == (1, 5, 4) and data.n_features == 20 and not data.shape_given
    assert data.sizes[2] == 30  # the t10k pair is the test split
    assert load_data(gray, shape="4,5").input_shape == (4, 5)
    raises(
        ["shape='3,3'", "9 values", "20 features", "leave shape out"], load_data, gray, shape="3,3"
    )

    color = tmp_path / "color"
    color.mkdir()
    write_idx(color / "train-images-idx4-ubyte", rng.integers(0, 255, (40, 3, 4, 4), np.uint8))
    write_idx(color / "train-labels-idx1-ubyte", np.tile(np.arange(2, dtype=np.uint8), 20))
    assert load_data(color).input_shape == (3, 4, 4)


def test_npz_x_axes_say_table_signal_or_image(tmp_path: Path) -> None:
    x, y = classes(120, features=24)
    for dims, shape in [((24,), (24,)), ((4, 6), (4, 6)), ((2, 3, 4), (2, 3, 4))]:
        path = tmp_path / f"x{len(dims)}.npz"
        np.savez(path, x=x.reshape(len(x), *dims), y=y)
        data = load_data(path)
        assert data.input_shape == shape and data.x_train.shape[1] == 24
        # The same values in every shape: the same fingerprint as the flat file.
        assert data.fingerprint() == load_data(tmp_path / "x1.npz").fingerprint()
    flat = tmp_path / "x1.npz"
    assert load_data(flat, shape="2,12").input_shape == (2, 12)  # a table made a signal
    assert load_data(tmp_path / "x3.npz", shape=(24,)).input_shape == (24,)  # an image flattened
    raises(["shape='5,5'", "25 values", "24 features"], load_data, flat, shape="5,5")

    five = tmp_path / "five.npz"
    np.savez(five, x=x.reshape(len(x), 1, 2, 3, 4), y=y)
    raises([str(five), "(120, 1, 2, 3, 4)", "5 axes", "(N, C, L)", "(N, C, H, W)"], load_data, five)
    assert load_data(five, shape="2,3,4").input_shape == (2, 3, 4)  # unless a shape says


def test_npz_splits_must_share_the_per_example_shape(tmp_path: Path) -> None:
    x, y = classes(160, features=12)
    path = tmp_path / "splits.npz"
    np.savez(
        path,
        x=x[:100].reshape(100, 3, 4),
        y=y[:100],
        x_val=x[100:130].reshape(30, 4, 3),
        y_val=y[100:130],
        x_test=x[130:].reshape(30, 3, 4),
        y_test=y[130:],
    )
    raises([str(path), "x_val", "(4, 3)", "(3, 4)", "same per-example shape"], load_data, path)
    np.savez(path, x=x[:100].reshape(100, 3, 4), y=y[:100], x_test=x[130:], y_test=y[130:])
    raises(["x_test", "(12,)", "(3, 4)"], load_data, path)
    np.savez(path, x=x[:100].reshape(100, 3, 4), y=y[:100], x_test=x[130:].reshape(30, 3, 4),
             y_test=y[130:])  # fmt: skip
    data = load_data(path)
    assert data.input_shape == (3, 4) and data.split.startswith("test given")


def test_csv_and_parquet_stay_flat_unless_a_shape_is_given(tmp_path: Path) -> None:
    x, y = classes(90)
    path = write_csv(tmp_path / "t.csv", x, y)
    assert load_data(path, target="y").input_shape == (6,)
    data = load_data(path, target="y", shape="2,3")
    assert data.input_shape == (2, 3) and data.feature_names == [f"f{j}" for j in range(6)]
    assert data.fingerprint() == load_data(path, target="y").fingerprint()
    raises([str(path), "shape='4,2'", "8 values", "6 features", "e.g. 1,6"],
           load_data, path, target="y", shape="4,2")  # fmt: skip

    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    table = pa.table({**{f"f{j}": x[:, j] for j in range(6)}, "y": y})
    parquet = tmp_path / "t.parquet"
    pq.write_table(table, parquet)
    assert load_data(parquet, target="y").input_shape == (6,)
    assert load_data(parquet, target="y", shape=(3, 2)).input_shape == (3, 2)
    raises(["shape='7'", "6 features"], load_data, parquet, target="y", shape="7")


def test_shape_text_and_its_errors() -> None:
    assert parse_shape("1,28,28") == (1, 28, 28)
    assert parse_shape(" 3 , 100 ") == (3, 100)
    assert parse_shape("1x8x8") == (1, 8, 8)
    assert parse_shape("(1, 8, 8)") == (1, 8, 8) and parse_shape("64") == (64,)
    assert parse_shape((1, np.int64(8), 8)) == (1, 8, 8)
    assert parse_shape(None) is None
    raises(["shape='0,3'", "'0'", "positive whole number", "C,L", "C,H,W"], parse_shape, "0,3")
    raises(["shape='a,b'", "'a'"], parse_shape, "a,b")
    raises(["shape='1,2,3,4'", "4 axes", "at most 3"], parse_shape, "1,2,3,4")
    raises(["shape=''", "0 axes"], parse_shape, "")
    raises(["'2.5'"], parse_shape, "2.5,4")
    raises(["shape='2,,3'", "''"], parse_shape, "2,,3")
    raises(["shape='2 3'", "'2 3'"], parse_shape, "2 3")
    raises(["True"], parse_shape, [True, 2])


def test_from_arrays_and_with_shape() -> None:
    x, y = classes(100, features=8)
    assert from_arrays(x.reshape(100, 2, 4), y).input_shape == (2, 4)
    assert from_arrays(x, y).input_shape == (8,)
    data = from_arrays(x, y, input_shape="2,2,2")
    assert data.input_shape == (2, 2, 2) and data.shape_given
    reshaped = with_shape(from_arrays(x, y), "4,2")
    assert reshaped.input_shape == (4, 2) and reshaped.x_train is not None
    raises(["shape='3,3'", "8 features"], with_shape, from_arrays(x, y), "3,3")


# --- studies, train-best, predict -------------------------------------------------------------


def test_a_study_records_its_shape_and_a_resumed_run_gets_it_back(tmp_path: Path) -> None:
    x, y = classes(150)
    path = write_csv(tmp_path / "t.csv", x, y)
    storage = optuna.storages.InMemoryStorage()
    first = tune(TINY, path, target="y", shape="2,3", storage=storage, study_name="s",
                 trials=1, seed=0, baseline=False)  # fmt: skip
    assert schema.read_study_meta(first.study)["data"]["input_shape"] == [2, 3]
    assert schema.read_input_shape(schema.read_study_meta(first.study)) == (2, 3)

    # Continued without a shape: the CSV would load flat; the study's shape is taken back.
    again = tune(TINY, path, target="y", storage=storage, study_name="s", trials=1, seed=0)
    assert again.data.input_shape == (2, 3)
    assert any("2,3" in note and "study was run on" in note for note in again.notes)
    assert len(again.study.trials) == 2

    # A different shape asked for is refused, naming both.
    with pytest.raises(StudyError, match=r"examples of shape 2,3, not shape='3,2'"):
        tune(TINY, path, target="y", shape="3,2", storage=storage, study_name="s", trials=1)

    # train-best (and sweeps' --from-study) load the data again: with the study's shape.
    dataset, target = study_data(first.study)
    assert dataset.input_shape == (2, 3) and target == "y"
    result = train_best(storage, "s", on="train", epochs=1)
    assert result.model.preprocessing.input_shape == (2, 3)
    folder = result.save(tmp_path / "model")
    stored = json.loads((folder / "preprocessing.json").read_text())
    assert stored["input_shape"] == [2, 3]
    model = read_bundle(folder)
    assert model.preprocessing.input_shape == (2, 3)

    # predict: x of the model's shape, or flat rows, give the same predictions.
    flat, shaped, wrong = tmp_path / "flat.npz", tmp_path / "shaped.npz", tmp_path / "w.npz"
    np.savez(flat, x=x, y=y)
    np.savez(shaped, x=x.reshape(len(x), 2, 3), y=y)
    np.savez(wrong, x=x.reshape(len(x), 3, 2))
    by_rows = predict_table(model, read_table(flat))
    by_examples = predict_table(model, read_table(shaped))
    np.testing.assert_array_equal(by_rows.predictions, by_examples.predictions)
    assert by_examples.value == by_rows.value and by_rows.value is not None
    raises([str(wrong), "examples of shape 3x2", "(N, 3, 2)", "takes examples of shape 2x3",
            "(N, 2, 3)", "flat as (N, 6)"], predict_table, model, read_table(wrong))  # fmt: skip


def test_a_study_recorded_before_shapes_continues_flat(tmp_path: Path) -> None:
    x, y = classes(150)
    path = tmp_path / "img.npz"
    np.savez(path, x=x.reshape(len(x), 1, 2, 3), y=y)
    storage = optuna.storages.InMemoryStorage()
    # Made flat (as every study was before shapes), then its shape record removed.
    first = tune(TINY, path, shape="6", storage=storage, study_name="old", trials=1, seed=0)
    assert first.data.input_shape == (6,)
    meta = schema.read_study_meta(first.study)
    del meta["data"]["input_shape"]  # as a study written before shapes were recorded
    first.study.set_user_attr(schema.STUDY_META, meta)
    # The file's own shape would be (1, 2, 3); the study goes on with the flat rows it was run on.
    again = tune(TINY, path, storage=storage, study_name="old", trials=1, seed=0)
    assert again.data.input_shape == (6,)
    assert study_data(first.study)[0].input_shape == (6,)


def test_old_model_folders_are_flat_and_bad_shapes_refused() -> None:
    x, y = classes(60)
    prep = Preprocessing.from_dataset(
        from_arrays(x.reshape(60, 2, 3), y), "categorical_crossentropy", None
    )
    assert prep.input_shape == (2, 3) and prep.shaped
    stored = prep.to_dict()
    assert Preprocessing.from_dict(stored, "p.json").input_shape == (2, 3)
    old = {k: v for k, v in stored.items() if k != "input_shape"}
    assert Preprocessing.from_dict(old, "p.json").input_shape == (6,)
    for bad in ([4, 2], [0, 6], "2,3", [2.0, 3.0], [1, 1, 2, 3]):
        with pytest.raises(ModelError, match=r"p\.json: input_shape"):
            Preprocessing.from_dict({**stored, "input_shape": bad}, "p.json")


# --- the command line -------------------------------------------------------------------------


def test_shape_flag_on_run_and_sweep(tmp_path: Path) -> None:
    x, y = classes(150)
    write_csv(tmp_path / "t.csv", x, y)
    space = tmp_path / "tiny.yaml"
    space.write_text(
        "layers: 1\nunits: [8]\noptimizer: [adam]\nbatch_size: [64]\nepochs: 1\n"
        "learning_rate: {low: 1.0e-2, high: 3.0e-2, log: true}\n"
    )
    ran = run_cli("run", str(space), "--data", "t.csv", "--target", "y", "--shape", "2,3",
                  "--trials", "1", "--storage", "sqlite:///s.db", cwd=tmp_path)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "6 features of shape 2x3" in ran.stdout
    bad = run_cli("run", "--data", "t.csv", "--target", "y", "--shape", "4,4",
                  "--storage", "sqlite:///s.db", cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2
    assert "--shape '4,4' holds 16 values per example" in bad.stderr and "6 features" in bad.stderr
    form = run_cli("run", "--shape", "2,x,3", "--storage", "sqlite:///s.db", cwd=tmp_path)
    assert form.returncode == 2 and "--shape '2,x,3'" in form.stderr
    sweep = run_cli("sweep", "units", "--values", "8,16", "--data", "t.csv", "--target", "y",
                    "--shape", "5", "--storage", "sqlite:///s.db", cwd=tmp_path)  # fmt: skip
    assert sweep.returncode == 2 and "--shape '5'" in sweep.stderr


# --- the first trial: the FCN for signals, the textbook convnet for images ---------------------


def test_a_signal_study_starts_with_the_fcn_and_an_image_study_with_the_textbook_convnet():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=120)
    signals = rng.normal(size=(120, 1, 16)).astype(np.float32)
    signals[y == 1, 0, 4:8] += 2.0
    images = rng.normal(size=(120, 1, 8, 8)).astype(np.float32)
    images[y == 1, 0, 2, :] += 2.0

    def first_trial(x: np.ndarray) -> optuna.trial.FrozenTrial:
        data = from_arrays(x, y, name="toy", seed=0)
        storage = optuna.storages.InMemoryStorage()
        result = tune(
            {"epochs": 1}, data, storage=storage, trials=1, seed=0, workers=1, choose="max"
        )
        trial = result.study.trials[0]
        assert trial.user_attrs.get("baseline") is True
        return trial

    fcn = first_trial(signals).user_attrs["config"]
    assert fcn == {
        "layers": 0,
        "units": [],
        "dropout": 0.0,
        "activation": "relu",
        "loss": "categorical_crossentropy",
        "optimizer": "adam",
        "learning_rate": 0.001,
        "weight_decay": 0.0,
        "batch_size": 16,
        "epochs": 1,
        "conv_layers": 3,
        "filters": [128, 256, 128],
        "kernel_size": [8, 5, 3],
        "pool": 0,
        "batch_norm": True,
        "global_pool": True,
    }
    convnet = first_trial(images).user_attrs["config"]
    assert {k: convnet[k] for k in ("layers", "units", "conv_layers", "filters")} == {
        "layers": 1,
        "units": [128],
        "conv_layers": 2,
        "filters": [32, 32],
    }
    assert (convnet["kernel_size"], convnet["pool"], convnet["batch_size"]) == (3, 2, 32)
