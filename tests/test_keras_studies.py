"""Keras models in studies: populations stacking Keras members, the binary idiom end to end,
Sequential, functional and subclassed models tuned with train-best, load, predict and the
native .keras export reloaded in Keras, the command line setting the backend itself, and resume
after a kill. (test_keras_model.py: what dltune does to one model, and compile().)"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

import dltune
from dltune.usermodel import UserNetworks

from .helpers import Forked, make_config
from .helpers import dltune as dltune_cli

# importing these sets the backend, or skips this module where Keras is missing or imported
# with another backend
from .test_keras_model import (
    QUICK,
    SPACE,
    built,
    functional,
    keras,
    subclassed,
    unregistered,
)

# Keras's own code converts tensors with np.array(copy=False), which NumPy 2 warns about.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# ---- studies -----------------------------------------------------------------------------------


def memory():
    return optuna.storages.InMemoryStorage()


def test_a_functional_model_stacks_in_a_population_as_its_runs_alone(blobs):
    from dltune.storage import read_trials

    runs = {
        engine: dltune.tune(
            functional, data=blobs, space=SPACE, storage=memory(), trials=3, engine=engine, **QUICK
        )
        for engine in ("sequential", "population")
    }
    alone, stacked = (
        {t.number: t for t in read_trials(runs[e].study)} for e in ("sequential", "population")
    )
    assert sorted(alone) == sorted(stacked) == [0, 1, 2]
    assert any(t.config["model"]["normed"] for t in alone.values())  # batch normalization too
    for number, trial in alone.items():
        assert stacked[number].config == trial.config and len(trial.curve) == 3
        np.testing.assert_allclose(stacked[number].curve, trial.curve, rtol=1e-4)
    assert not any("cannot be trained stacked" in n for n in runs["population"].notes)
    assert runs["sequential"].best["value"] > 0.8


def test_a_convolution_vmap_cannot_run_trains_alone_and_the_note_says_why():
    from dltune.data import load_data

    digits = load_data("digits")

    def convolutional(hp):
        return keras.Sequential(
            [
                keras.Input((8, 8, 1)),
                keras.layers.Conv2D(hp.Int("filters", 2, 4, step=2), 3),
                keras.layers.Flatten(),
                keras.layers.Dense(10),
            ]
        )

    space = {**SPACE, "batch_size": 256, "epochs": 1}
    result = dltune.tune(
        convolutional, data=digits, space=space, storage=memory(), trials=1, engine="population",
        **QUICK,
    )  # fmt: skip
    note = next(n for n in result.notes if "cannot be trained stacked" in n)
    assert "Keras model: Conv2D.call():" in note and "vmap" in note
    assert result.study.trials[0].state == optuna.trial.TrialState.COMPLETE


def test_a_subclassed_model_end_to_end_with_train_best_load_predict_and_exports(blobs, tmp_path):
    storage = memory()
    result = dltune.tune(subclassed, data=blobs, space=SPACE, storage=storage, trials=2, **QUICK)
    assert [t.state for t in result.study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert any("outputs are softmax probabilities" in n for n in result.notes)
    assert result.best["value"] > 0.8
    trained = dltune.train_best(storage, result.study.study_name, data=blobs, trust_source=True)
    folder = trained.save(tmp_path / "model")
    loaded = dltune.load(folder, trust_source=True)
    expected = trained.model.predict_proba(blobs.x_test)
    assert np.array_equal(loaded.predict_proba(blobs.x_test), expected)

    from dltune.export.formats import export, reference

    exported = export(loaded, "keras", folder / "model.keras")
    again = keras.saving.load_model(folder / "model.keras")  # its class registered
    raw = blobs.x_test * blobs.x_std + blobs.x_mean  # the export takes raw features
    probabilities = keras.ops.convert_to_numpy(again(raw, training=False))
    np.testing.assert_allclose(probabilities, reference(loaded, raw), rtol=1e-4, atol=1e-5)
    assert exported.max_difference < 1e-4
    pytest.importorskip("onnxruntime")
    assert export(loaded, "onnx", folder / "model.onnx").max_difference < 1e-4


@pytest.fixture(scope="module")
def two_blobs():
    """Two Gaussian classes in 8 dimensions, half a unit apart per feature."""
    from dltune.data import from_arrays

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=400)
    x = rng.normal(0, 1, size=(400, 8)) + y[:, None] * 0.8
    return from_arrays(x.astype(np.float32), y, name="two", seed=0)


def binary(hp):
    """Keras's binary idiom: one sigmoid output, binary cross-entropy."""
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    return model


def binary_logit(hp):
    """One logit output, with a loss that says so (from_logits)."""
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
    return model


@pytest.mark.parametrize(("build", "kind"), [(binary, "one_sigmoid"), (binary_logit, "one_logit")])
def test_one_output_of_two_classes_becomes_their_logits_with_kerass_own_loss(build, kind):
    network = built(build, (8,), n_outputs=2)
    assert network.model.outputs == kind
    x = torch.randn(6, 8)
    network.eval()
    logits = network(x)
    assert logits.shape == (6, 2) and bool((logits[:, 0] == 0).all())
    keras_out = torch.as_tensor(keras.ops.convert_to_numpy(network.model.keras_model(x)))
    p = keras_out if kind == "one_sigmoid" else torch.sigmoid(keras_out)
    torch.testing.assert_close(torch.softmax(logits, dim=1)[:, 1:], p)
    # categorical cross-entropy on the two logits is Keras's binary cross-entropy on p
    targets = torch.tensor([0, 1, 1, 0, 1, 0])
    ours = torch.nn.functional.cross_entropy(logits, targets)
    theirs = keras.losses.BinaryCrossentropy()(targets.float()[:, None], p)
    assert abs(float(ours) - float(keras.ops.convert_to_numpy(theirs))) < 1e-5


def test_kerass_binary_idiom_tunes_end_to_end_and_exports(two_blobs, tmp_path):
    storage = memory()
    space = {k: v for k, v in SPACE.items() if k not in ("loss", "learning_rate", "optimizer")}
    result = dltune.tune(binary, data=two_blobs, space=space, storage=storage, trials=1, **QUICK)
    assert result.study.trials[0].state == optuna.trial.TrialState.COMPLETE
    said = " ".join(result.notes)
    assert "loss categorical_crossentropy (binary_crossentropy on its one output)" in said
    assert "single output is the probability of the second class" in said
    assert result.best["value"] > 0.85
    trained = dltune.train_best(storage, result.study.study_name, data=two_blobs, trust_source=True)
    folder = trained.save(tmp_path / "model")
    loaded = dltune.load(folder, trust_source=True)
    raw = two_blobs.x_test * two_blobs.x_std + two_blobs.x_mean  # a model takes raw features
    proba = loaded.predict_proba(raw)
    network = trained.model.network.model  # the KerasNetwork: the user's model's own sigmoid
    own = keras.ops.convert_to_numpy(network.to_keras()(torch.as_tensor(two_blobs.x_test)))
    np.testing.assert_allclose(proba[:, 1:], own, rtol=1e-4, atol=1e-6)

    from dltune.export.formats import export, reference

    export(loaded, "keras", folder / "model.keras")
    again = keras.saving.load_model(folder / "model.keras")
    probabilities = keras.ops.convert_to_numpy(again(raw, training=False))
    np.testing.assert_allclose(probabilities, reference(loaded, raw), rtol=1e-4, atol=1e-5)


def test_a_model_keras_cannot_load_back_is_not_exported_and_the_error_says_why(blobs, tmp_path):
    from dltune.export import Preprocessing, TunedModel
    from dltune.export.formats import export

    network = UserNetworks(unregistered, blobs.input_shape)
    config = make_config(layers=0, units=(), model=())
    state = network(config, 3, seed=0, device="cpu").state_dict()
    prep = Preprocessing.from_dataset(blobs, config.loss, None)
    model = TunedModel(config, prep, state, network)
    with pytest.raises(dltune.DLTuneError, match="register_keras_serializable"):
        export(model, "keras", tmp_path / "model.keras")
    assert not (tmp_path / "model.keras").exists()


# ---- the command line: the backend, a Sequential model, train-best, predict, export -------

KERAS_FILE = """\
import keras


def build(hp):
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(hp.Int("filters", 4, 8, step=4), 3, activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.1),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return model
"""
RUN = ["--seed", "0", "--schedule", "none", "--cv", "holdout", "--choose", "max"]
RUN += ["--ensemble", "off", "--workers", "1"]


@pytest.fixture(scope="module")
def cli_study(tmp_path_factory):
    """`dltune run` of a Keras Sequential model on digits, in a process of its own started
    without KERAS_BACKEND (Keras would import TensorFlow, which is not installed): the folder
    and the completed process."""
    folder = tmp_path_factory.mktemp("keras-cli")
    (folder / "keras_model.py").write_text(KERAS_FILE)
    (folder / "space.yaml").write_text("batch_size: 128\nepochs: 2\n")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    args = ["run", "space.yaml", "--model", "keras_model.py:build", "--trials", "2", *RUN]
    ran = subprocess.run(
        [sys.executable, "-m", "dltune.cli", *args],
        cwd=folder, capture_output=True, text=True, timeout=600,
        env={**env, "COLUMNS": "200"},
    )  # fmt: skip
    return folder, ran


def test_the_command_line_sets_the_backend_and_tunes_a_sequential_model(cli_study):
    folder, ran = cli_study
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "reach it channels last, as (8, 8, 1)" in ran.stdout
    assert "outputs are softmax probabilities" in ran.stdout
    assert "optimizer adam (Adam), learning_rate 0.01, loss categorical_crossentropy" in ran.stdout
    best = json.loads(dltune_cli("best", "--json", cwd=folder).stdout)
    assert best["params"]["optimizer"] == "adam" and best["params"]["learning_rate"] == 0.01
    assert "filters" in best["params"]["model"] and best["value"] > 0.5


def test_train_best_predict_and_the_keras_export_reload_in_keras(cli_study):
    folder, ran = cli_study
    assert ran.returncode == 0, ran.stdout + ran.stderr
    trained = dltune_cli("train-best", "-o", "model", "--trust-source", cwd=folder)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    exported = dltune_cli("export", "model", "--format", "keras", "--trust-source", cwd=folder)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    predicted = dltune_cli("predict", "model", "digits", "--trust-source", cwd=folder)
    assert predicted.returncode == 0, predicted.stdout + predicted.stderr

    from sklearn.datasets import load_digits

    raw = load_digits().data.astype(np.float32)
    model = dltune.load(folder / "model", trust_source=True)
    again = keras.saving.load_model(folder / "model" / "model.keras")  # safe mode: built-ins
    probabilities = keras.ops.convert_to_numpy(again(raw, training=False))
    np.testing.assert_allclose(probabilities, model.predict_proba(raw), rtol=1e-4, atol=1e-5)
    written = np.genfromtxt(folder / "predictions.csv", delimiter=",", names=True)
    assert np.array_equal(written["prediction"], model.predict(raw))
    assert (probabilities.argmax(axis=1) == model.predict(raw)).all()


# ---- resume after a kill ------------------------------------------------------------------

TRIPWIRE_FILE = """\
import os
import signal

import keras


class Tripwire(keras.layers.Layer):
    \"\"\"Passes its inputs on. Each training call is logged (TRIPWIRE_LOG: the number of the
    model that made it); the TRIPWIRE_AT-th call of this process kills it.\"\"\"

    calls = 0
    made = 0

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        Tripwire.made += 1
        self.number = Tripwire.made

    def call(self, x, training=False):
        if training:
            Tripwire.calls += 1
            if os.environ.get("TRIPWIRE_LOG"):
                with open(os.environ["TRIPWIRE_LOG"], "a") as log:
                    log.write(f"{self.number}\\n")
            if Tripwire.calls == int(os.environ.get("TRIPWIRE_AT", "0")):
                os.kill(os.getpid(), signal.SIGKILL)
        return x


def build(hp):
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(hp.Int("width", 8, 16, step=8), activation="relu"),
        keras.layers.BatchNormalization(),
        Tripwire(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return model
"""
EPOCHS, BATCH = 5, 128


def checkpointed_epochs(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as connection:
        found = connection.execute(
            "SELECT a.value_json FROM trial_user_attributes a JOIN trials t ON "
            "t.trial_id = a.trial_id WHERE t.state = 'RUNNING' AND a.key = 'checkpoint'"
        ).fetchall()
    assert len(found) == 1, found
    return int(json.loads(found[0][0])["epochs"])


@pytest.mark.slow
def test_a_keras_trial_killed_mid_way_resumes_from_its_checkpoint(tmp_path):
    from dltune.config import Config
    from dltune.data import load_data
    from dltune.engine import SequentialTrainer
    from dltune.storage import read_trial, schema
    from dltune.usermodel import resolve_model

    (tmp_path / "mine.py").write_text(TRIPWIRE_FILE)
    (tmp_path / "space.yaml").write_text(f"batch_size: {BATCH}\nepochs: {EPOCHS}\n")
    command = ["run", "space.yaml", "--model", "mine.py:build", "--trials", "1", *RUN]
    command += ["--engine", "sequential", "--checkpoint-every", "0"]
    digits = load_data("digits")
    steps = -(-len(digits.y_train) // BATCH)  # training calls per epoch
    # killed in its third epoch, after the checkpoint of its second
    killed = Forked(*command, cwd=tmp_path, env={"TRIPWIRE_AT": str(2 * steps + 3)})
    killed.process.join(300)
    assert killed.process.exitcode == -9, killed.err.read_text()
    kept = checkpointed_epochs(tmp_path / "dltune.db")
    assert kept >= 1

    log = tmp_path / "calls.log"
    ran = Forked(*command, cwd=tmp_path, env={"TRIPWIRE_LOG": str(log)}).wait(300)
    assert ran.returncode == 0, ran.stderr
    assert "resuming 1 interrupted trial" in ran.stdout
    first_model = log.read_text().split()[0]
    trained = log.read_text().split().count(first_model)
    assert trained == (EPOCHS - kept) * steps  # the resumed trial trained what was left

    study = optuna.load_study(study_name=None, storage=f"sqlite:///{tmp_path / 'dltune.db'}")
    resumed = [t for t in study.trials if schema.read_resumes(t) is not None]
    assert len(resumed) == 1 and resumed[0].state == optuna.trial.TrialState.COMPLETE
    # its curve is the one an uninterrupted run of its seed gives (bit for bit, one thread)
    record = read_trial(resumed[0])
    meta = schema.read_study_meta(study)
    build = resolve_model(f"{tmp_path / 'mine.py'}:build").build
    trainer = SequentialTrainer(
        digits, metric=meta["metric"], shuffle_seed=int(meta["shuffle_seed"]),
        network=UserNetworks(build, digits.input_shape),
    )  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = trainer.train(Config.from_dict(record.config), seed=int(record.seed))
    finally:
        torch.set_num_threads(threads)
    values = resumed[0].intermediate_values
    curve = [values[e] for e in sorted(values) if e]
    assert len(curve) == EPOCHS and [r.val_metric for r in alone.history] == curve
