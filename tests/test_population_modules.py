"""The population beyond the dense network: convolutional networks and users' modules stacked
in exact-shape buckets (torch.func), each member equal to its sequential run; and modules that
cannot be stacked, trained one at a time with a note that says why."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from dltune.engine import SequentialTrainer
from dltune.engine.module_bucket import ModuleBucket
from dltune.engine.population import PopulationTrainer
from dltune.nets.dense import SeededDropout, dropout_generator

from .helpers import bright_rows, make_config
from .test_population import _run_with_pauses, assert_same_curve

CONV = make_config(conv_layers=2, filters=(4, 6), pool=2, units=(16,), epochs=3)


@pytest.fixture(scope="module")
def images():
    """Noisy 8x8 images of three classes (helpers.bright_rows)."""
    return bright_rows(300, seed=0)


def assert_same_state(a: dict, b: dict, atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key].double(), b[key].double(), rtol=1e-4, atol=atol)


def check_against_sequential(data, configs, results, network=None):
    sequential = SequentialTrainer(data, network=network)
    for key, config, seed in configs:
        alone = sequential.train(config, seed=seed, keep_best_state=True)
        assert_same_curve(results[key], alone)
        if results[key].best_state is not None:
            assert_same_state(results[key].best_state, alone.best_state)


# Members of one architecture differing in optimizer, learning rate, weight decay, dropout
# rate and loss (dropout > 0 for all: a network without dropout has no dropout layer, so it is
# another architecture).
MIXED_CONV = [
    CONV.replace(optimizer=opt, learning_rate=lr, dropout=rate, loss=loss, weight_decay=wd)
    for opt, lr, rate, loss, wd in [
        ("adam", 1e-2, 0.3, "categorical_crossentropy", 0.0),
        ("sgd", 0.1, 0.5, "categorical_crossentropy", 1e-3),
        ("rmsprop", 1e-3, 0.1, "mean_squared_error", 0.0),
        ("adamw", 1e-2, 0.2, "categorical_crossentropy", 1e-2),
        ("nesterov", 0.05, 0.4, "binary_crossentropy", 0.0),
    ]
]


def test_conv_members_train_in_one_bucket_and_each_equals_its_sequential_run(images):
    population = PopulationTrainer(images)
    configs = [(i, config, 10 + i) for i, config in enumerate(MIXED_CONV)]
    for key, config, seed in configs:
        population.add(key, config, seed=seed, keep_best_state=True)
    population.advance()
    assert not population.buckets and len(population.modules.buckets) == 1
    assert len(population.modules.buckets[0].members) == len(MIXED_CONV)
    results = dict(population.advance()[0])
    while len(population):
        results.update(population.advance()[0])
    # learning curves, and the weights at the best epoch, are those of the run alone
    check_against_sequential(images, configs, results)
    assert not population.notes


def test_batch_norm_statistics_are_kept_per_member(images):
    """Each member's running statistics are its own (its sequential run's), for every kind of
    optimizer: the convolutions before batch normalization have no bias (a bias it cancels
    would get a gradient of rounding noise, which Adam-like optimizers scale up to full steps)."""
    normed = CONV.replace(batch_norm=True, dropout=0.2)
    configs = [
        (0, normed.replace(optimizer="sgd", learning_rate=0.1), 1),
        (1, normed.replace(optimizer="momentum", learning_rate=0.02, dropout=0.4), 2),
        (2, normed.replace(optimizer="sgd", learning_rate=0.05, loss="huber"), 3),
        (3, normed.replace(optimizer="adam"), 4),
        (4, normed.replace(optimizer="adamw", dropout=0.0), 5),
    ]
    results = PopulationTrainer(images).train(configs, keep_best_state=True)
    check_against_sequential(images, configs, results)
    means = [results[k].best_state["features.1.running_mean"] for k, _, _ in configs]
    assert not torch.allclose(means[0], means[1])
    assert "features.0.bias" not in results[0].best_state


def test_a_members_dropout_masks_are_its_own_whoever_its_companions(images):
    target = MIXED_CONV[0]
    among = PopulationTrainer(images).train([("a", MIXED_CONV[1], 1), ("t", target, 7)])
    among_others = PopulationTrainer(images).train(
        [("t", target, 7), ("b", MIXED_CONV[2], 2), ("c", MIXED_CONV[3], 3)]
    )
    np.testing.assert_array_equal(
        [r.train_loss for r in among["t"].history],
        [r.train_loss for r in among_others["t"].history],
    )
    assert_same_curve(among["t"], SequentialTrainer(images).train(target, seed=7))


def test_paused_at_rungs_joining_late_and_others_leaving_change_no_member(images):
    configs = [(i, config, 20 + i) for i, config in enumerate(MIXED_CONV[:4])]
    # rungs inside an epoch and at its end; each paused member waits while others go on
    results = _run_with_pauses(
        PopulationTrainer(images, segments=2), lambda key: 0.5 + key % 3 * 0.5, configs
    )
    check_against_sequential(images, configs, results)
    population = PopulationTrainer(images)
    population.add("early", MIXED_CONV[0], seed=1)
    population.add("short", MIXED_CONV[1].replace(epochs=1), seed=2)
    finished = dict(population.run_epoch())
    assert set(finished) == {"short"}
    population.add("late", MIXED_CONV[2], seed=3)  # joins one epoch after "early"
    while len(population):
        finished.update(population.run_epoch())
    late = [("early", MIXED_CONV[0], 1), ("short", MIXED_CONV[1].replace(epochs=1), 2)]
    check_against_sequential(images, [*late, ("late", MIXED_CONV[2], 3)], finished)


def test_dense_configs_keep_the_padded_path_beside_conv_members(images):
    dense = make_config(units=(24,), epochs=2)
    conv = MIXED_CONV[0].replace(epochs=2)
    population = PopulationTrainer(images)
    population.add("dense", dense, seed=1)
    population.add("conv", conv, seed=2)
    population.advance()
    assert [m.key for b in population.buckets for m in b.members] == ["dense"]
    assert [m.key for b in population.modules.buckets for m in b.members] == ["conv"]
    results = {}
    while len(population):
        results.update(population.advance()[0])
    check_against_sequential(images, [("dense", dense, 1), ("conv", conv, 2)], results)


def test_buckets_are_exact_shapes_and_batch_sizes(images):
    population = PopulationTrainer(images)
    population.add(0, MIXED_CONV[0], seed=0)
    population.add(1, MIXED_CONV[1], seed=1)  # same shapes: same bucket
    population.add(2, MIXED_CONV[0].replace(filters=(4, 8)), seed=2)  # other shapes
    population.add(3, MIXED_CONV[0].replace(batch_size=64), seed=3)  # other batch size
    population.add(4, MIXED_CONV[0].replace(activation="tanh"), seed=4)  # other function
    population.advance()
    groups = sorted(sorted(m.key for m in b.members) for b in population.modules.buckets)
    assert groups == [[0, 1], [2], [3], [4]]


def test_the_memory_budget_counts_conv_members(images):
    small = PopulationTrainer(images, memory="2MB")
    assert small.has_room(CONV)
    wide = CONV.replace(filters=(256, 256), units=(256,))
    assert not small.has_room(wide)
    assert PopulationTrainer(images, memory="1GB").has_room(wide)


# ---------------------------------------------------------------------------------------------
# Users' modules
# ---------------------------------------------------------------------------------------------


class UserNet(nn.Module):
    """A user's module: flat rows in, its own layers, dropout drawn from its own generator."""

    def __init__(self, n_outputs: int, rate: float, seed: int, device) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.norm = nn.BatchNorm2d(3)
        self.drop = SeededDropout(rate, dropout_generator(seed, device))
        self.out = nn.Linear(3 * 16, n_outputs)
        self.to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.norm(self.conv(x.view(-1, 1, 8, 8))))
        h = nn.functional.max_pool2d(h, 2).flatten(1)
        return self.out(self.drop(h))


def user_factory(config, n_outputs, *, seed, device):
    return UserNet(n_outputs, config.dropout, seed, device)


class GlobalDropoutNet(nn.Module):
    """A user's module with torch's own nn.Dropout (the global generator)."""

    def __init__(self, n_outputs: int, rate: float) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 12), nn.ReLU(), nn.Dropout(rate))
        self.out = nn.Linear(12, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


class ItemNet(nn.Module):
    """A module vmap cannot stack: its forward reads a value out of a tensor."""

    def __init__(self, n_outputs: int) -> None:
        super().__init__()
        self.out = nn.Linear(64, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = 1.0 if x.abs().max().item() < 1e6 else 0.0
        return self.out(x) * scale


def test_a_users_modules_train_stacked_each_equal_to_its_sequential_run(images):
    configs = [
        (i, make_config(optimizer=opt, learning_rate=lr, dropout=rate, epochs=3), 30 + i)
        for i, (opt, lr, rate) in enumerate(
            [("sgd", 0.1, 0.3), ("momentum", 0.05, 0.1), ("sgd", 0.02, 0.5)]
        )
    ]
    population = PopulationTrainer(images, network=user_factory)
    results = _run_with_pauses(population, 2, configs)  # pauses at a rung, then resumes
    check_against_sequential(images, configs, results, network=user_factory)
    assert len(population.bucket_seconds) == 1  # one architecture, one batch size
    assert not population.notes


def test_a_users_nn_dropout_is_fed_each_members_own_rate(images):
    """nn.Dropout draws from torch's global generator: not exact, but each member drops at its
    own rate (a mask fed per member, its rate read from its own module)."""

    def factory(config, n_outputs, *, seed, device):
        torch.manual_seed(seed)
        return GlobalDropoutNet(n_outputs, config.dropout).to(device)

    configs = [(i, make_config(dropout=rate, epochs=2), i) for i, rate in enumerate([0.0, 0.9])]
    population = PopulationTrainer(images, network=factory)
    for key, config, seed in configs:
        population.add(key, config, seed=seed)
    population.advance()
    assert len(population.modules.buckets) == 1
    bucket: ModuleBucket = population.modules.buckets[0]
    sources = [m.sources for m in bucket.members]
    assert [s.rate for own in sources for s in own] == [0.0, 0.9]
    assert all(s.generator is None for own in sources for s in own)  # the global generator
    masks = bucket.stacked.masks_for([(0, (2000, 12))], sources, torch.device("cpu"))
    kept = (masks[0] > 0).float().mean(dim=(1, 2))
    assert kept[0] == 1.0 and 0.05 < float(kept[1]) < 0.15


def test_a_module_that_cannot_be_stacked_trains_one_at_a_time_and_says_why_once(images):
    def factory(config, n_outputs, *, seed, device):
        torch.manual_seed(seed)
        return ItemNet(n_outputs).to(device)

    configs = [(i, make_config(learning_rate=lr, epochs=2), i) for i, lr in enumerate([1e-2, 1e-3])]
    population = PopulationTrainer(images, network=factory)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = _run_with_pauses(population, 1, configs)
    assert len(population.notes) == 1
    assert "ItemNet" in population.notes[0] and "one at a time" in population.notes[0]
    assert "item()" in population.notes[0]  # vmap's own reason
    assert sum("cannot be trained stacked" in str(w.message) for w in caught) == 1
    check_against_sequential(images, configs, results, network=factory)
    assert population.epochs_trained == pytest.approx(4.0)
    assert not math.isnan(results[0].best_value)


def test_the_example_build_trains_stacked_through_its_factory(images):
    """examples/my_model.py through dltune.usermodel's factory: members of one set of the
    build's values stack (one bucket) and equal their sequential runs; its nn.Dropout at 0."""
    import importlib.util
    from pathlib import Path

    from dltune.usermodel.network import UserNetworks

    path = Path(__file__).resolve().parents[1] / "examples" / "my_model.py"
    spec = importlib.util.spec_from_file_location("my_model_for_population", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    rows = images.x_train.shape[0]
    from dltune.data import from_arrays

    ten = from_arrays(
        np.concatenate([images.x_train, images.x_val, images.x_test]),
        np.arange(rows + len(images.x_val) + len(images.x_test)) % 10,
        name="ten",
        seed=0,
    )
    ten.set_input_shape((1, 8, 8))
    factory = UserNetworks(example.build, ten.input_shape)
    model = (("filters", 8), ("pool", True), ("second_block", True), ("units", 32))
    configs = [
        (i, make_config(model=(*model, ("dropout", 0.0)), optimizer=opt, learning_rate=lr), i)
        for i, (opt, lr) in enumerate([("adam", 1e-2), ("sgd", 0.1), ("rmsprop", 1e-3)])
    ]
    configs = [(k, c.replace(epochs=2), s) for k, c, s in configs]
    population = PopulationTrainer(ten, network=factory)
    for key, config, seed in configs:
        population.add(key, config, seed=seed, keep_best_state=True)
    results = dict(population.advance()[0])
    assert len(population.modules.buckets) == 1
    while len(population):
        results.update(population.advance()[0])
    check_against_sequential(ten, configs, results, network=factory)
    assert not population.notes


@pytest.fixture(scope="module")
def signals():
    """240 noisy signals of length 24 in three classes (a bump at a place per class)."""
    from dltune.data import from_arrays

    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=240)
    x = rng.normal(0, 1, size=(240, 1, 24)).astype(np.float32)
    for i, label in enumerate(y):
        x[i, 0, 6 * label + 2 : 6 * label + 6] += 2.0
    return from_arrays(x, y, name="bumps", seed=0)


# A small FCN (Wang et al. 2017): three blocks with kernels 8, 5, 3, batch normalization,
# global average pooling, no hidden Dense layer; members differ in training knobs only.
SMALL_FCN = make_config(
    layers=0,
    conv_layers=3,
    filters=(8, 16, 8),
    kernel_size=(8, 5, 3),
    batch_norm=True,
    global_pool=True,
    epochs=3,
)


def test_fcn_members_with_a_kernel_per_block_equal_their_sequential_runs(signals):
    assert signals.input_shape == (1, 24)
    configs = [
        (0, SMALL_FCN, 1),
        (1, SMALL_FCN.replace(optimizer="sgd", learning_rate=0.1, weight_decay=1e-3), 2),
        (2, SMALL_FCN.replace(optimizer="rmsprop", learning_rate=1e-3), 3),
        (3, SMALL_FCN.replace(kernel_size=[3, 5, 8]), 4),  # another architecture
        (4, SMALL_FCN.replace(kernel_size=[8, 5, 3], layers=1, units=(16,), dropout=0.2), 5),
    ]
    population = PopulationTrainer(signals)
    for key, config, seed in configs:
        population.add(key, config, seed=seed, keep_best_state=True)
    population.advance()
    # one module bucket per architecture: the kernels per block are part of it
    sizes = sorted(len(b.members) for b in population.modules.buckets)
    assert sizes == [1, 1, 3]
    results = dict(population.advance()[0])
    while len(population):
        results.update(population.advance()[0])
    check_against_sequential(signals, configs, results)
    assert not population.notes
