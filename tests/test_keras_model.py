"""A Keras 3 model from build(hp), on the torch backend: what dltune does to it (inputs, outputs,
training flag, seeds, state), compile() honoured and overridden by the space, Sequential,
functional and subclassed models tuned end to end (the command line setting the backend
itself, populations stacking Keras members), resume after a kill, train-best, load, predict,
and the native .keras export reloaded in Keras."""

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

os.environ.setdefault("KERAS_BACKEND", "torch")  # before Keras is first imported
keras = pytest.importorskip("keras")

import dltune  # noqa: E402
from dltune.space import Fixed, SearchSpace  # noqa: E402
from dltune.study.user_model import UserModelSpace, training_space  # noqa: E402
from dltune.usermodel import BuildError, KerasBackendError, UserNetworks  # noqa: E402

from .helpers import Forked, make_config  # noqa: E402
from .helpers import dltune as dltune_cli  # noqa: E402

if keras.backend.backend() != "torch":  # pragma: no cover - imported elsewhere with another
    pytest.skip("Keras was imported with another backend", allow_module_level=True)

# Keras's own code converts tensors with np.array(copy=False), which NumPy 2 warns about.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# The training knobs only, fixed, so that the model's own hyperparameters are all that vary.
SPACE = {
    "name": "keras",
    "loss": "categorical_crossentropy",
    "optimizer": "adam",
    "learning_rate": 0.03,
    "batch_size": 32,
    "epochs": 3,
}
QUICK = {"seed": 0, "schedule": "none", "cv": "holdout", "choose": "max", "ensemble": False}

# ---- builds (module level: importable again) -----------------------------------------------


def functional(hp):
    """A functional model of logits for the 8-feature blobs; batch normalization when asked."""
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(hp.Int("width", 4, 12, step=4), activation="relu")(inputs)
    if hp.Boolean("normed"):
        hidden = keras.layers.BatchNormalization()(hidden)
    return keras.Model(inputs, keras.layers.Dense(3)(hidden))


@keras.saving.register_keras_serializable(package="dltune_tests")
class TwoLayers(keras.Model):
    """A subclassed model of softmax outputs, registered so that its .keras file loads."""

    def __init__(self, width=8, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.hidden = keras.layers.Dense(width, activation="relu")
        self.out = keras.layers.Dense(3, activation="softmax")

    def call(self, x, training=False):
        return self.out(self.hidden(x))

    def get_config(self):
        return {**super().get_config(), "width": self.width}


def subclassed(hp):
    return TwoLayers(hp.Int("width", 4, 12, step=4))


class Unregistered(TwoLayers):
    """As TwoLayers, but Keras cannot find its class when it loads a file."""


def unregistered(hp):
    return Unregistered(8)


def sequential(layers, compile_with=None):
    def build(hp):
        model = keras.Sequential(layers())
        if compile_with is not None:
            model.compile(**compile_with(hp))
        return model

    return build


def compiled_adam(hp):
    """Adam whose rate the build tunes, on logits (a Loss object with from_logits)."""
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    rate = hp.Choice("lr", [0.01, 0.003], default=0.003)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=rate), loss=loss)
    return model


def built(build, shape, n_outputs=3, seed=0, **model):
    """The KerasNetwork dltune makes of `build` (behind its ShapedInput)."""
    config = make_config(model=tuple(model.items()))
    return UserNetworks(build, shape)(config, n_outputs, seed=seed, device="cpu")


# ---- inputs, outputs, training, seeds, state -----------------------------------------------


def dense_on(input_layer):
    return sequential(lambda: [input_layer, keras.layers.Flatten(), keras.layers.Dense(3)])


@pytest.mark.parametrize(
    ("declared", "layout", "reaches"),
    [
        (keras.Input((2, 3, 4)), "as_is", (5, 2, 3, 4)),
        (keras.Input((3, 4, 2)), "channels_last", (5, 3, 4, 2)),
        (keras.Input((None, 4, 2)), "channels_last", (5, 3, 4, 2)),
        (None, "channels_last", (5, 3, 4, 2)),  # no Input: Keras's default data format
    ],
)
def test_examples_reach_the_model_channels_last_where_it_says_so(declared, layout, reaches):
    seen = []

    class Probe(keras.layers.Layer):
        def call(self, x):
            seen.append(tuple(x.shape))
            return x

    layers = [Probe(), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)]
    build = sequential(lambda: ([declared] if declared is not None else []) + layers)
    network = built(build, (2, 3, 4))
    assert network.model.layout == layout
    assert network(torch.zeros(5, 24)).shape == (5, 3)  # the trainers hold flat rows
    assert seen[-1] == reaches


def test_one_channel_without_its_axis_and_flat_inputs_are_taken():
    no_axis = built(dense_on(keras.Input((8, 8))), (1, 8, 8))
    flat = built(dense_on(keras.Input((64,))), (1, 8, 8))
    assert (no_axis.model.layout, flat.model.layout) == ("no_channel_axis", "flat")
    assert no_axis.model.describe() == [
        "the examples (1, 8, 8) reach it without their channel axis, as (8, 8)"
    ]
    assert flat.model.describe() == ["the examples (1, 8, 8) reach it flat, as (64,)"]
    assert no_axis(torch.zeros(2, 64)).shape == flat(torch.zeros(2, 64)).shape == (2, 3)


def test_an_input_of_another_shape_fails_the_trial_with_the_shapes_that_would_fit():
    with pytest.raises(BuildError) as caught:
        built(dense_on(keras.Input((7, 8))), (1, 8, 8))
    message = str(caught.value)
    assert "keras.Input(shape=(7, 8))" in message and "(1, 8, 8)" in message
    assert "(8, 8, 1) (channels last)" in message and "(64,)" in message


def softmax_dense():
    return [keras.Input((8,)), keras.layers.Dense(3, activation="softmax")]


def softmax_layer():
    return [keras.Input((8,)), keras.layers.Dense(3), keras.layers.Softmax()]


def sigmoid_dense():
    return [keras.Input((8,)), keras.layers.Dense(3, activation="sigmoid")]


def logits_dense():
    return [keras.Input((8,)), keras.layers.Dense(3)]


def softmax_op(hp):
    """Probabilities from keras.ops after the last layer: no layer says so."""
    inputs = keras.Input((8,))
    return keras.Model(inputs, keras.ops.softmax(keras.layers.Dense(3)(inputs)))


@pytest.mark.parametrize(
    ("build", "kind"),
    [
        (sequential(softmax_dense), "softmax"),
        (sequential(softmax_layer), "softmax"),
        (sequential(sigmoid_dense), "sigmoid"),
        (sequential(logits_dense), "logits"),
        (subclassed, "softmax"),  # read from its outputs on a probe batch
        (softmax_op, "softmax"),
        (functional, "logits"),
    ],
)
def test_probabilities_become_the_logits_dltunes_losses_read(build, kind):
    network = built(build, (8,), width=8, normed=False)
    assert network.model.outputs == kind
    x = torch.randn(6, 8)
    network.eval()
    logits = network(x)
    keras_out = torch.as_tensor(keras.ops.convert_to_numpy(network.model.keras_model(x)))
    if kind == "softmax":  # the log of the probabilities: softmax gives them back
        torch.testing.assert_close(torch.softmax(logits, dim=1), keras_out)
    elif kind == "sigmoid":
        torch.testing.assert_close(torch.sigmoid(logits), keras_out)
    else:
        torch.testing.assert_close(logits, keras_out)


def test_the_model_trains_with_keras_training_flag_and_its_moving_statistics_are_buffers():
    build = sequential(
        lambda: [
            keras.Input((8,)),
            keras.layers.Dense(16),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(3),
        ]
    )
    network = built(build, (8,))
    x = torch.randn(32, 8) * 3 + 1
    buffers = dict(network.named_buffers())
    mean = next(v for k, v in buffers.items() if k.startswith("model.non_trainable_"))
    before = mean.clone()
    network.eval()
    assert torch.equal(network(x), network(x))  # no dropout, moving statistics unchanged
    assert torch.equal(mean, before)
    network.train()
    assert not torch.equal(network(x), network(x))  # dropout draws
    assert not torch.equal(mean, before)  # batch normalization's moving mean learned
    keras_mean = network.model.keras_model.layers[1].moving_mean
    assert np.array_equal(keras.ops.convert_to_numpy(keras_mean), mean.numpy())  # one memory
    outputs = network(x)
    outputs.square().mean().backward()
    assert all(p.grad is not None for p in network.parameters())


def test_the_seed_decides_the_weights_and_the_state_round_trips_by_position():
    torch.manual_seed(123)
    import random

    python_state = random.getstate()
    a, b = (
        built(functional, (8,), seed=5, width=8, normed=True),
        built(functional, (8,), seed=5, width=8, normed=True),
    )
    c = built(functional, (8,), seed=6, width=8, normed=True)
    assert random.getstate() == python_state  # seeded for the build, restored after
    state = a.state_dict()
    # named by position: a second build in one process has the same names (Keras's paths
    # would number its layers dense_2, dense_3, ...)
    assert list(state) == list(b.state_dict()) == list(c.state_dict())
    assert all(k.startswith("model.trainable_") or "non_trainable" in k for k in state)
    assert all(torch.equal(state[k], v) for k, v in b.state_dict().items())
    assert any(not torch.equal(state[k], v) for k, v in c.state_dict().items())
    c.load_state_dict(state)
    x = torch.randn(4, 8)
    a.eval(), c.eval()
    assert torch.equal(a(x), c(x))


def test_a_keras_model_costs_what_its_torch_twin_costs():
    from torch import nn

    from dltune.nets.footprint import footprint_of

    def keras_mlp(hp):
        return keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)]
        )

    def torch_mlp(hp):
        return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    builds = (keras_mlp, torch_mlp)
    costs = [footprint_of(UserNetworks(b, (8,)), make_config(), 3, 8) for b in builds]
    assert costs[0] == costs[1] == {"parameters": 195, "flops": 2 * (8 * 16 + 16 * 3)}


def test_a_keras_model_of_another_backend_stops_the_run_with_what_to_do(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(KerasBackendError, match="KERAS_BACKEND=torch before Keras is first"):
        built(functional, (8,), width=8, normed=False)


# ---- compile() --------------------------------------------------------------------------------


def test_compile_gives_the_knobs_the_space_leaves_and_each_trial_its_own_rate(blobs):
    space, notes = training_space(SearchSpace.from_dict({"name": "k"}), compiled_adam, blobs)
    fixed = {k: space.params[k] for k in ("optimizer", "learning_rate", "loss")}
    assert fixed == {
        "optimizer": Fixed("adam"),
        "learning_rate": Fixed(0.003),  # the build's default rate
        "loss": Fixed("categorical_crossentropy"),
    }
    said = " ".join(notes)
    assert (
        "optimizer adam (Adam), learning_rate 0.003, loss categorical_crossentropy "
        "(sparse_categorical_crossentropy) from compile(), as the space does not set them"
    ) in said
    again, notes = training_space(space, compiled_adam, blobs)  # a worker's, a resumed run's
    assert again == space and not any("instead of" in n for n in notes)
    study = optuna.create_study()
    asked = UserModelSpace(space, compiled_adam, (8,), 3)
    for lr in (0.01, 0.003):
        study.enqueue_trial({"lr": lr})
        config = asked.suggest(study.ask())
        assert (config.learning_rate, config.optimizer) == (lr, "adam")  # the trial's compile()


def test_what_the_space_sets_wins_over_compile(blobs):
    given = {"name": "k", "optimizer": "sgd", "learning_rate": {"low": 1e-3, "high": 0.1}}
    space, notes = training_space(SearchSpace.from_dict(given), compiled_adam, blobs)
    assert space.params["optimizer"] == Fixed("sgd")
    assert not isinstance(space.params["learning_rate"], Fixed)
    assert space.params["loss"] == Fixed("categorical_crossentropy")  # the space left it
    assert "the space's optimizer, learning_rate instead of compile()'s adam, 0.003" in notes[-1]
    study = optuna.create_study()
    study.enqueue_trial({"lr": 0.01})
    trial = study.ask()
    config = UserModelSpace(space, compiled_adam, (8,), 3).suggest(trial)
    assert config.optimizer == "sgd" and config.learning_rate == trial.params["learning_rate"]


def with_compile(optimizer, loss):
    return sequential(logits_dense, lambda hp: {"optimizer": optimizer(), "loss": loss})


@pytest.mark.parametrize(
    ("optimizer", "loss", "fixed", "words"),
    [
        (
            lambda: keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
            keras.losses.mean_squared_error,
            {"optimizer": "nesterov", "learning_rate": 0.1, "loss": "mean_squared_error"},
            "optimizer nesterov (SGD)",
        ),
        (
            lambda: keras.optimizers.SGD(0.1, momentum=0.5),
            "huber",
            {"optimizer": "momentum", "loss": "huber"},
            "not used: compile()'s SGD momentum 0.5 (dltune's momentum uses 0.9)",
        ),
        (
            lambda: keras.optimizers.AdamW(0.002),
            "binary_crossentropy",
            {"optimizer": "adamw", "weight_decay": 0.004, "loss": "binary_crossentropy"},
            "weight_decay 0.004, loss binary_crossentropy from compile()",
        ),
        (
            lambda: keras.optimizers.Nadam(),
            "log_cosh",
            {},
            "not used: compile()'s optimizer Nadam (dltune has sgd, momentum",
        ),
    ],
)
def test_compile_in_dltunes_names_and_what_it_cannot_use(blobs, optimizer, loss, fixed, words):
    space, notes = training_space(
        SearchSpace.from_dict({"name": "k"}), with_compile(optimizer, loss), blobs
    )
    for key, value in fixed.items():
        assert space.params[key] == Fixed(value), key
    if not fixed:  # nothing taken: the default space as it was
        assert not isinstance(space.params["optimizer"], Fixed)
    assert words in notes[-1]


def test_a_compiled_loss_that_does_not_fit_the_task_is_left_to_the_space(linear_regression):
    build = sequential(
        lambda: [keras.Input((5,)), keras.layers.Dense(1)],
        lambda hp: {"optimizer": "rmsprop", "loss": "sparse_categorical_crossentropy"},
    )
    space, notes = training_space(SearchSpace.from_dict({"name": "k"}), build, linear_regression)
    assert space.params["optimizer"] == Fixed("rmsprop")
    assert not isinstance(space.params["loss"], Fixed)
    assert (
        "compile()'s loss sparse_categorical_crossentropy (not for a regression target)"
        in (notes[-1])
    )


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
