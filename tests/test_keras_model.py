"""A Keras 3 model from build(hp), on the torch backend: what dltune does to it (inputs, outputs,
training flag, seeds, state), and compile() honoured and overridden by the space. The builds
here are shared with test_keras_studies.py (studies, exports, the command line, resume)."""

from __future__ import annotations

import os

import numpy as np
import optuna
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")  # before Keras is first imported
keras = pytest.importorskip("keras")

from dltune.space import Fixed, SearchSpace  # noqa: E402
from dltune.study.user_model import UserModelSpace, training_space  # noqa: E402
from dltune.usermodel import BuildError, KerasBackendError, UserNetworks  # noqa: E402

from .helpers import make_config  # noqa: E402

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
