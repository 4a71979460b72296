"""dltune.keras_tuner: Keras Tuner's API on dltune's studies. Keras Tuner's getting-started
tutorial with only its import changed; each tuner end to end; objectives; EarlyStopping as
patience; get_best_models equal to dltune.load of the same trial; the study continued,
overwritten and opened by the command line; the arguments dltune does not honour refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # before Keras is first imported
keras = pytest.importorskip("keras")

import dltune  # noqa: E402
from dltune import keras_tuner as kt  # noqa: E402
from dltune.keras_tuner.data import search_data  # noqa: E402
from dltune.keras_tuner.objective import as_objective, metric_of  # noqa: E402
from dltune.keras_tuner.tuner import DATABASE  # noqa: E402
from dltune.keras_tuner.tuners import hyperband_trials  # noqa: E402
from dltune.storage import read_trials, study_meta  # noqa: E402

from .conftest import SHARED_MNIST  # noqa: E402
from .helpers import dltune as dltune_cli  # noqa: E402

if keras.backend.backend() != "torch":  # pragma: no cover - imported elsewhere with another
    pytest.skip("Keras was imported with another backend", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def blob_arrays(n: int = 480, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Three separated Gaussian classes in 8 dimensions, of about unit scale (the tuners train
    on arrays as given): (x, y, x_val, y_val)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1, size=(3, 8))
    y = rng.integers(0, 3, size=n)
    x = (centers[y] + rng.normal(0, 0.4, size=(n, 8))).astype(np.float32)
    cut = n * 3 // 4
    return x[:cut], y[:cut], x[cut:], y[cut:]


def blob_model(hp):
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(hp.Int("width", 8, 16, step=4), activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(hp.Choice("lr", [0.03, 0.01])),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def learning_rate_model(hp):
    """As TensorFlow's Keras Tuner tutorial names it: the rate as hp 'learning_rate'."""
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")])
    rate = hp.Choice("learning_rate", values=[1e-2, 3e-2])
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def regression_model(hp):
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(hp.Int("width", 4, 8, step=4)),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    return model


def uncompiled(hp):
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])


class BlobHyperModel(kt.HyperModel):
    def build(self, hp):
        return blob_model(hp)


class FitOverridden(kt.HyperModel):
    def build(self, hp):
        return blob_model(hp)

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(*args, batch_size=hp.Choice("batch_size", [16, 32]), **kwargs)


QUIET = {"verbose": 0}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A RandomSearch of 3 trials on the blobs, in its own folder: (tuner, arrays)."""
    folder = tmp_path_factory.mktemp("kt-random")
    arrays = blob_arrays()
    tuner = kt.RandomSearch(
        blob_model, objective="val_accuracy", max_trials=3, seed=0,
        directory=str(folder), project_name="blobs",
    )  # fmt: skip
    x, y, x_val, y_val = arrays
    tuner.search(x, y, epochs=3, validation_data=(x_val, y_val), **QUIET)
    return tuner, arrays


# ---- the getting-started tutorial ---------------------------------------------------------

# Instead of keras.datasets.mnist.load_data(): a local copy (the tests have no internet).
TUTORIAL_DATA = """\
import numpy as np

_mnist = np.load("mnist.npz")
x_train, y_train, x_val, y_val = (_mnist[k] for k in ("x_train", "y_train", "x_val", "y_val"))
x_test, y_test = _mnist["x_test"], _mnist["y_test"]
"""
TUTORIAL = """\
import keras
from keras import layers
import numpy as np
from dltune import keras_tuner as keras_tuner   # the one line changed: was `import keras_tuner`

def build_model(hp):
    model = keras.Sequential()
    model.add(layers.Flatten())
    model.add(
        layers.Dense(
            units=hp.Int("units", min_value=32, max_value=512, step=32),
            activation=hp.Choice("activation", ["relu", "tanh"]),
        )
    )
    if hp.Boolean("dropout"):
        model.add(layers.Dropout(rate=0.25))
    model.add(layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model

build_model(keras_tuner.HyperParameters())

tuner = keras_tuner.RandomSearch(
    hypermodel=build_model,
    objective="val_accuracy",
    max_trials=3,
    executions_per_trial=2,
    overwrite=True,
    directory="my_dir",
    project_name="helloworld",
)
tuner.search_space_summary()

x_train = np.expand_dims(x_train, -1).astype("float32") / 255.0
x_val = np.expand_dims(x_val, -1).astype("float32") / 255.0
x_test = np.expand_dims(x_test, -1).astype("float32") / 255.0
num_classes = 10
y_train = keras.utils.to_categorical(y_train, num_classes)
y_val = keras.utils.to_categorical(y_val, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

tuner.search(x_train, y_train, epochs=2, validation_data=(x_val, y_val))

models = tuner.get_best_models(num_models=2)
best_model = models[0]
best_model.summary()
tuner.results_summary()

best_hps = tuner.get_best_hyperparameters(5)
model = build_model(best_hps[0])
x_all = np.concatenate((x_train, x_val))
y_all = np.concatenate((y_train, y_val))
model.fit(x=x_all, y=y_all, epochs=1)
"""
TUTORIAL_CHECK = """
import json
_, _accuracy = best_model.evaluate(x_test, y_test, verbose=0)
print("CHECK " + json.dumps({"models": len(models), "best_hps": len(best_hps),
      "values": best_hps[0].values, "test_accuracy": _accuracy}))
"""


def test_the_getting_started_tutorial_runs_with_its_import_changed(tmp_path):
    """Keras Tuner's "Getting started" (keras-io guides/keras_tuner/getting_started.py), its
    search and results, run as a script, as a user runs it. Its MNIST images come from a
    local copy, fewer of them (no download); its line `best_model.build(input_shape=(None,
    28, 28))` is left out: on Keras 3 it fails under Keras Tuner too (the model is already
    built for (None, 28, 28, 1)). A last line prints what the test checks."""
    from dltune.data import read_idx

    if not SHARED_MNIST.is_dir():
        pytest.skip(f"no MNIST images at {SHARED_MNIST}")
    images = read_idx(SHARED_MNIST / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz")
    np.savez(
        tmp_path / "mnist.npz",
        x_train=images[:400], y_train=labels[:400], x_val=images[400:600],
        y_val=labels[400:600], x_test=images[600:800], y_test=labels[600:800],
    )  # fmt: skip
    (tmp_path / "getting_started.py").write_text(TUTORIAL_DATA + TUTORIAL + TUTORIAL_CHECK)
    ran = subprocess.run(
        [sys.executable, "getting_started.py"], cwd=tmp_path, capture_output=True, text=True,
        timeout=600, env={**os.environ, "KERAS_BACKEND": "torch"},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    printed = ran.stdout
    assert "Default search space size: 4" in printed and "units (Int)" in printed
    assert "Results summary" in printed and 'Objective(name="val_accuracy"' in printed
    checked = json.loads(printed.rsplit("CHECK ", 1)[1])
    assert checked["models"] == 2 and checked["best_hps"] == 3
    assert set(checked["values"]) == {"units", "activation", "dropout", "lr"}
    # the best trial's model, its weights trained: it scores on the held-out images
    assert checked["test_accuracy"] > 0.6
    # the study is dltune's, where Keras Tuner keeps its project: my_dir/helloworld
    best = dltune_cli("best", "--json", cwd=tmp_path / "my_dir" / "helloworld")
    record = json.loads(best.stdout)
    assert record["study"] == "helloworld" and record["params"]["model"] == checked["values"]
    # executions_per_trial=2: the top 3 re-evaluated with 2 other seeds each
    assert record["choice"]["rule"] == "top3x2"


# ---- each tuner end to end ----------------------------------------------------------------


def test_random_search_trains_every_trial_to_its_epochs(searched):
    tuner, _ = searched
    study = tuner.result.study
    assert len(study.trials) == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    meta = study_meta(study)
    assert meta["space"]["epochs"] == 3 and meta["space"]["batch_size"] == 32  # fit()'s default
    assert tuner.result.best["value"] > 0.8


def test_hyperband_runs_keras_tuners_brackets_on_dltunes_schedule(tmp_path):
    x, y, x_val, y_val = blob_arrays()
    tuner = kt.Hyperband(
        blob_model, objective="val_accuracy", max_epochs=4, factor=2, seed=1,
        directory=str(tmp_path), project_name="hb",
    )  # fmt: skip
    tuner.search(x, y, epochs=99, validation_data=(x_val, y_val), **QUIET)  # epochs: max_epochs
    study = tuner.result.study
    assert len(study.trials) == hyperband_trials(4, 2) == 10
    space = study_meta(study)["space"]
    assert (space["epochs"], space["min_epochs"], space["reduction"]) == (4, 1.0, 2)
    states = {t.state for t in study.trials}
    assert optuna.trial.TrialState.PRUNED in states  # halved at its rungs
    assert tuner.get_best_hyperparameters(1)[0].values.keys() == {"width", "lr"}


def test_keras_tuners_hyperband_sizes_are_matched():
    # Keras Tuner 1.4's HyperbandOracle: sum of _get_size(b, 0) over its brackets
    assert [hyperband_trials(m, 3) for m in (2, 10, 27, 100)] == [2, 22, 49, 172]


def test_bayesian_optimization_on_a_gaussian_process_with_keras_tuners_random_start(tmp_path):
    x, y, x_val, y_val = blob_arrays()
    tuner = kt.BayesianOptimization(
        BlobHyperModel(), objective=kt.Objective("val_accuracy", "max"), max_trials=4,
        num_initial_points=2, seed=0, directory=str(tmp_path), project_name="bo",
    )  # fmt: skip
    sampler = tuner._sampler(kt.HyperParameters())
    assert isinstance(sampler, optuna.samplers.GPSampler)

    class Epochs(dltune.ProgressListener):  # dltune's own search() argument: its listener
        count = 0

        def epoch_done(self, number, report):
            Epochs.count += 1

    tuner.search(x, y, epochs=2, validation_data=(x_val, y_val), progress=Epochs(), **QUIET)
    assert len(tuner.result.study.trials) == 4 and Epochs.count == 8
    assert tuner.result.best["value"] > 0.8
    assert isinstance(tuner.hypermodel, BlobHyperModel)


def test_a_build_may_name_its_rate_learning_rate_as_keras_tuners_users_do(tmp_path):
    x, y, x_val, y_val = blob_arrays()
    tuner = kt.RandomSearch(
        learning_rate_model, objective="val_accuracy", max_trials=3, seed=0,
        directory=str(tmp_path),
    )  # fmt: skip
    tuner.search(x, y, epochs=2, validation_data=(x_val, y_val), **QUIET)
    records = read_trials(tuner.result.study)
    assert {r.state for r in records} == {"complete"}
    for record in records:  # each trial trained at the rate its build chose
        assert record.config["learning_rate"] == record.config["model"]["learning_rate"]
    assert {r.config["learning_rate"] for r in records} <= {1e-2, 3e-2}


# ---- objectives --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("objective", "task", "loss", "metric"),
    [
        ("val_accuracy", "classification", "categorical_crossentropy", "accuracy"),
        (
            kt.Objective("val_sparse_categorical_accuracy", "max"),
            "classification",
            None,
            "accuracy",
        ),
        ("val_loss", "regression", "mean_squared_error", "rmse"),
        ("val_loss", "regression", "mean_absolute_error", "mae"),
        ("val_mean_squared_error", "regression", "huber", "rmse"),
        (kt.Objective("val_mae", "min"), "regression", None, "mae"),
    ],
)
def test_objectives_become_dltunes_metrics(objective, task, loss, metric):
    assert metric_of(as_objective(objective), task, loss) == metric


@pytest.mark.parametrize(
    ("objective", "words"),
    [
        (None, "objective=None: give the metric to tune"),
        ("accuracy", "give 'val_accuracy'"),
        ("val_auc", "objective 'val_auc' is not one dltune tunes"),
        (kt.Objective("val_accuracy", "min"), "give direction='max'"),
        (["val_accuracy", "val_loss"], "dltune tunes one objective"),
    ],
)
def test_objectives_dltune_cannot_rank_by_are_refused(objective, words):
    with pytest.raises(kt.KerasTunerError, match=words):
        as_objective(objective)


def test_val_loss_of_classes_is_refused_with_what_to_use(tmp_path):
    x, y, x_val, y_val = blob_arrays()
    tuner = kt.RandomSearch(blob_model, objective="val_loss", directory=str(tmp_path))
    with pytest.raises(kt.KerasTunerError, match="give objective='val_accuracy' for classes"):
        tuner.search(x, y, validation_data=(x_val, y_val), **QUIET)


def test_a_regression_tuned_on_val_loss_ranks_by_rmse_on_the_targets_as_given(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0, 0.0]) + 0.1 * rng.normal(size=300)).astype(np.float32)
    tuner = kt.RandomSearch(
        regression_model, objective="val_loss", max_trials=2, seed=0, directory=str(tmp_path)
    )
    tuner.search(x, y, epochs=5, validation_split=0.2, **QUIET)
    study = tuner.result.study
    assert study_meta(study)["metric"] == "rmse"
    assert tuner.result.data.sizes[:2] == (240, 60)  # fit()'s split: the last 20%
    model = tuner.get_best_models(1)[0]
    predicted = np.asarray(model.predict(x[240:], verbose=0))[:, 0]
    rmse = float(np.sqrt(np.mean((predicted - y[240:]) ** 2)))
    assert rmse == pytest.approx(tuner.result.best["value"], rel=1e-4)  # no target scaling


# ---- EarlyStopping -------------------------------------------------------------------------


def test_early_stopping_is_dltunes_patience_on_the_objective(tmp_path):
    x, y, x_val, y_val = blob_arrays()
    epochs = 12
    runs = {}
    for patience in (None, 1):
        callbacks = [] if patience is None else [keras.callbacks.EarlyStopping(patience=patience)]
        tuner = kt.RandomSearch(
            blob_model, objective="val_accuracy", max_trials=2, seed=0,
            directory=str(tmp_path), project_name=f"patience-{patience}",
        )  # fmt: skip
        tuner.search(
            x, y, epochs=epochs, validation_data=(x_val, y_val), callbacks=callbacks,
            verbose=1,
        )  # fmt: skip
        runs[patience] = read_trials(tuner.result.study)
    assert all(r.epochs == epochs for r in runs[None])
    stopped = runs[1]
    assert all(r.epochs < epochs and r.stopped_early for r in stopped)
    assert all(r.epochs == r.best_epoch + 1 for r in stopped)  # 1 epoch without a better one


def test_early_stopping_on_another_monitor_says_what_dltune_watches(tmp_path, capsys):
    x, y, x_val, y_val = blob_arrays()
    tuner = kt.RandomSearch(
        blob_model, objective="val_accuracy", max_trials=1, directory=str(tmp_path)
    )
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    tuner.search(x, y, validation_data=(x_val, y_val), callbacks=[stop])
    printed = capsys.readouterr().out
    assert "EarlyStopping(monitor='val_loss', patience=2) stops a trial after 2 epoch(s)" in printed
    assert study_meta(tuner.result.study)["space"]["patience"] == 2


# ---- the models and the study --------------------------------------------------------------


def test_get_best_models_predict_as_dltune_load_of_the_same_trial(searched, tmp_path):
    tuner, (_, _, x_val, y_val) = searched
    models = tuner.get_best_models(num_models=2)
    assert len(models) == 2 and all(isinstance(m, keras.Model) for m in models)
    best = tuner.result.best["trial"]
    trained = dltune.train_best(
        tuner.storage_url, tuner.study_name, on="train", ensemble=False,
        data=tuner.result.data, trust_source=True,
    )  # fmt: skip
    assert trained.card["study"]["trial"] == best
    loaded = dltune.load(trained.save(tmp_path / "model"), trust_source=True)
    keras_proba = np.asarray(models[0].predict(x_val, verbose=0))
    np.testing.assert_allclose(keras_proba, loaded.predict_proba(x_val), rtol=1e-5, atol=1e-6)
    assert (keras_proba.argmax(axis=1) == loaded.predict(x_val)).all()
    # compiled as build(hp) compiles it: Keras evaluates it at the study's validation value
    _, accuracy = models[0].evaluate(x_val, y_val, verbose=0)
    assert accuracy == pytest.approx(tuner.result.best["value"], abs=1e-6)


def test_a_reopened_project_gives_its_models_from_saved_weights_or_retrains_them(
    searched, tmp_path
):
    tuner, (x, y, x_val, y_val) = searched
    kept = tuner.get_best_models(2)

    def reopened(directory):
        return kt.RandomSearch(
            blob_model, objective="val_accuracy", max_trials=3, seed=0,
            directory=directory, project_name="blobs",
        )  # fmt: skip

    def same(models):
        for a, b in zip(kept[: len(models)], models, strict=True):
            np.testing.assert_allclose(
                a.predict(x_val, verbose=0), b.predict(x_val, verbose=0), rtol=1e-5, atol=1e-6
            )

    # a later process, as after a restart: the weights the search saved, no data needed (the
    # best trial's: a search without an ensemble keeps its best model)
    again = reopened(tuner.directory)
    assert again.result is None
    same(again.get_best_models(1))
    with pytest.raises(kt.KerasTunerError, match=r"trial \d+ of project .* has no saved weights"):
        again.get_best_models(2)
    assert [h.values for h in again.get_best_hyperparameters(3)] == [
        h.values for h in tuner.get_best_hyperparameters(3)
    ]
    # without them (a copy of the database alone): retrained from their seeds, on the data
    copy = tmp_path / "blobs"
    copy.mkdir()
    for end in ("", "-wal", "-shm"):  # the database, as SQLite holds it
        if (Path(tuner.project_dir) / f"{DATABASE}{end}").exists():
            shutil.copy(Path(tuner.project_dir) / f"{DATABASE}{end}", copy / f"{DATABASE}{end}")
    bare = reopened(str(tmp_path))
    with pytest.raises(kt.KerasTunerError, match=r"no saved weights.*call search"):
        bare.get_best_models(1)
    bare.search(x, y, epochs=3, validation_data=(x_val, y_val), **QUIET)  # max_trials reached
    assert bare.result is None and len(bare._study().trials) == 3
    same(bare.get_best_models(2))


def test_best_hyperparameters_rebuild_the_best_model(searched):
    tuner, _ = searched
    hps = tuner.get_best_hyperparameters(5)
    assert len(hps) == 3  # every complete trial, the best first
    best = tuner.result.best
    assert hps[0].values == best["params"]["model"] and hps[0].get("lr") == hps[0].values["lr"]
    model = tuner.hypermodel.build(hps[0])
    assert model.layers[0].units == hps[0].values["width"]


def test_the_summaries_read_as_keras_tuners(searched, capsys):
    tuner, _ = searched
    tuner.search_space_summary()
    tuner.results_summary(num_trials=2)
    printed = capsys.readouterr().out
    assert printed.startswith("Search space summary\nDefault search space size: 2\nwidth (Int)")
    assert f"Results in {tuner.project_dir}" in printed and "Showing 2 best trials" in printed
    assert printed.count("Trial ") == 2 and "Score: " in printed


def test_the_study_opens_with_dltunes_commands(searched, tmp_path):
    tuner, _ = searched
    storage = ["--storage", tuner.storage_url]
    best = dltune_cli("best", "--json", *storage, cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    record = json.loads(best.stdout)
    assert record["study"] == "blobs" and record["trial"] == tuner.result.best["trial"]
    trials = dltune_cli("trials", "--json", *storage, cwd=tmp_path)
    assert len(json.loads(trials.stdout)) == 3
    report = dltune_cli("report", *storage, "-o", "report.html", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "blobs" in (tmp_path / "report.html").read_text()
    # the project's folder is the storage's: `dltune best` there needs no --storage
    here = dltune_cli("best", "--json", cwd=Path(tuner.project_dir))
    assert json.loads(here.stdout)["trial"] == record["trial"]


def test_overwrite_starts_over_and_a_project_continues_to_max_trials(tmp_path):
    x, y, x_val, y_val = blob_arrays()
    options = {"objective": "val_accuracy", "seed": 0, "directory": str(tmp_path)}
    first = kt.RandomSearch(blob_model, max_trials=1, **options)
    first.search(x, y, validation_data=(x_val, y_val), **QUIET)
    more = kt.RandomSearch(blob_model, max_trials=3, **options)
    more.search(x, y, validation_data=(x_val, y_val), **QUIET)
    assert more.result.trials_run == 2 and len(more.result.study.trials) == 3
    other = kt.RandomSearch(blob_model, max_trials=5, **options)
    with pytest.raises(kt.KerasTunerError, match="overwrite=True starts the project over"):
        other.search(x, y, epochs=2, validation_data=(x_val, y_val), **QUIET)  # other epochs
    fresh = kt.RandomSearch(blob_model, max_trials=1, overwrite=True, **options)
    fresh.search(x, y, epochs=2, validation_data=(x_val, y_val), **QUIET)
    assert len(fresh.result.study.trials) == 1


# ---- data as fit() takes it ---------------------------------------------------------------


def test_images_one_hot_labels_and_validation_split_are_read_as_fit_reads_them():
    rng = np.random.default_rng(0)
    x = rng.random((50, 6, 5, 2)).astype(np.float32)  # (n, H, W, C): channels last
    labels = np.tile(np.arange(5), 10)
    one_hot = np.eye(5, dtype=np.float32)[labels]
    data = search_data(x, one_hot, None, 0.2, name="p", task="classification", channels_last=True)
    assert data.input_shape == (2, 6, 5) and data.sizes == (40, 10, 10)
    assert np.array_equal(data.y_val, labels[40:]) and data.n_classes == 5
    # stored channels first, unscaled: the first example's values in dltune's layout
    assert np.array_equal(data.x_train[0], np.moveaxis(x[0], -1, 0).ravel())
    assert float(data.x_std.max()) == 1.0 and float(np.abs(data.x_mean).max()) == 0.0
    grey = search_data(
        x[..., 0], labels, (x[:5, ..., 0], labels[:5]), 0.0, name="p", task=None,
        channels_last=True,
    )  # fmt: skip
    assert grey.input_shape == (1, 6, 5) and grey.sizes == (50, 5, 5)
    assert np.array_equal(grey.x_test, grey.x_val)  # the test split is the validation data


def test_a_sequential_model_with_an_input_of_one_channel_without_its_axis(tmp_path):
    """(n, A, B) arrays to a model declaring keras.Input((A, B)) reach it as given."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=400)
    x = (rng.normal(0, 0.5, size=(400, 4, 3)) + y[:, None, None] - 0.5).astype(np.float32)

    tuner = kt.RandomSearch(
        matrix_model, objective="val_accuracy", max_trials=1, directory=str(tmp_path)
    )
    tuner.search(x[:300], y[:300], epochs=2, validation_data=(x[300:], y[300:]), **QUIET)
    model = tuner.get_best_models(1)[0]
    assert model.predict(x[300:], verbose=0).shape == (100, 2)


def matrix_model(hp):
    model = keras.Sequential(
        [keras.Input((4, 3)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.03), loss="sparse_categorical_crossentropy")
    return model


# ---- what dltune does not honour, refused by name -------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"tuner_id": "chief"}, "tuner_id='chief' is not supported"),
        ({"distribution_strategy": object()}, "distribution_strategy=<object> is not supported"),
        ({"max_retries_per_trial": 2}, "max_retries_per_trial=2 is not supported"),
        ({"hyperparameters": object()}, "hyperparameters=<object> is not supported"),
        ({"tune_new_entries": False}, "tune_new_entries=False is not supported"),
        ({"allow_new_entries": False}, "allow_new_entries=False is not supported"),
        ({"max_model_size": 10_000}, "max_model_size=10000 is not supported"),
        ({"optimizer": "adam"}, "optimizer='adam' is not supported"),
        ({"loss": "mse"}, "loss='mse' is not supported"),
        ({"metrics": ["accuracy"]}, "metrics=\\['accuracy'\\] is not supported"),
        ({"max_consecutive_failed_trials": 5}, "max_consecutive_failed_trials=5"),
        ({"executions_per_trial": 0}, "executions_per_trial=0; give a whole number"),
        ({"max_trials": "3"}, "max_trials='3'; give a whole number"),
        ({"unknown": 1}, "RandomSearch\\(\\) got an unexpected argument unknown=1"),
    ],
)
def test_constructor_arguments_dltune_does_not_honour_are_refused(kwargs, words, tmp_path):
    with pytest.raises(kt.KerasTunerError, match=words):
        kt.RandomSearch(blob_model, objective="val_accuracy", directory=str(tmp_path), **kwargs)


@pytest.mark.parametrize(
    ("tuner", "kwargs", "words"),
    [
        (kt.BayesianOptimization, {"beta": 3.0}, "BayesianOptimization\\(\\): beta=3.0"),
        (kt.BayesianOptimization, {"alpha": 0.1}, "alpha=0.1 is not supported"),
        (kt.Hyperband, {"factor": 1}, "factor=1; give a whole number of at least 2"),
        (kt.Hyperband, {"logger": object()}, "Hyperband\\(\\): logger=<object>"),
    ],
)
def test_each_tuner_refuses_its_own_arguments(tuner, kwargs, words, tmp_path):
    with pytest.raises(kt.KerasTunerError, match=words):
        tuner(blob_model, objective="val_accuracy", directory=str(tmp_path), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"class_weight": {0: 2.0}}, "class_weight=\\{0: 2.0\\} is not supported"),
        ({"sample_weight": np.ones(360)}, "sample_weight=<ndarray> is not supported"),
        ({"shuffle": False}, "shuffle=False is not supported"),
        ({"steps_per_epoch": 5}, "steps_per_epoch=5 is not supported"),
        ({"initial_epoch": 2}, "initial_epoch=2 is not supported"),
        ({"validation_freq": 2}, "validation_freq=2 is not supported"),
        ({"workers": 4}, "search\\(\\) got an unexpected argument workers=4"),
        ({"callbacks": [keras.callbacks.CSVLogger("log.csv")]}, "remove CSVLogger"),
        ({"callbacks": [keras.callbacks.EarlyStopping(baseline=0.9)]}, "baseline=0.9"),
        ({"callbacks": [keras.callbacks.EarlyStopping(min_delta=0.01)]}, "min_delta=-?0.01"),
        ({"callbacks": [keras.callbacks.EarlyStopping(start_from_epoch=2)]}, "start_from_epoch"),
        ({"validation_data": None}, "give validation_data=\\(x_val, y_val\\) or validation_split"),
        ({"validation_data": (1, 2, 3)}, "sample weights are not supported"),
    ],
)
def test_search_arguments_dltune_does_not_honour_are_refused(kwargs, words, tmp_path):
    x, y, x_val, y_val = blob_arrays()
    tuner = kt.RandomSearch(blob_model, objective="val_accuracy", directory=str(tmp_path))
    given = {"validation_data": (x_val, y_val), **kwargs}
    with pytest.raises(kt.KerasTunerError, match=words):
        tuner.search(x, y, **given)
    assert not (tmp_path / "untitled_project" / "dltune.db").exists()  # refused before a study


def test_builds_and_data_dltune_cannot_train_are_refused_with_what_to_do(tmp_path):
    x, y, x_val, y_val = blob_arrays()
    with pytest.raises(kt.KerasTunerError, match=r"FitOverridden.fit\(\) is overridden"):
        kt.RandomSearch(FitOverridden(), objective="val_accuracy", directory=str(tmp_path))
    tuner = kt.RandomSearch(uncompiled, objective="val_accuracy", directory=str(tmp_path))
    with pytest.raises(kt.KerasTunerError, match="not compiled: compile it in build"):
        tuner.search(x, y, validation_data=(x_val, y_val))
    tuner = kt.RandomSearch(blob_model, objective="val_accuracy", directory=str(tmp_path))
    batches = iter([(x, y)])
    with pytest.raises(kt.KerasTunerError, match="x is list_iterator; dltune trains on one"):
        tuner.search(batches, validation_data=(x_val, y_val))
    with pytest.raises(kt.KerasTunerError, match="GridSearch is not offered"):
        kt.GridSearch  # noqa: B018
    assert not hasattr(kt, "GridSearch")


def test_hyperparameters_as_keras_tuner_hands_them_back():
    hp = kt.HyperParameters()
    assert blob_model(hp).layers[0].units == 8  # the defaults: min_value, the first choice
    assert hp.values == {"width": 8, "lr": 0.03}
    stored = kt.HyperParameters({"width": 12, "lr": 0.03})
    assert stored.values == {"width": 12, "lr": 0.03} and stored.get("width") == 12
    assert blob_model(stored).layers[0].units == 12
    with stored.conditional_scope("width", [12]):
        assert stored.Int("width", 8, 16, step=4) == 12
