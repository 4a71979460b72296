"""The population engine against the sequential reference, and its members against each other."""

from __future__ import annotations

import numpy as np
import pytest

from dltune.engine import SequentialTrainer
from dltune.engine.memory import parse_memory
from dltune.engine.population import PopulationTrainer, ladder_width
from dltune.errors import DLTuneError
from dltune.vocabulary import ACTIVATIONS, LOSSES, OPTIMIZERS

from .helpers import make_config

# A mixed population: every optimizer, activation and classification loss, several widths
# (padded to the ladder), weight decay on some.
MIXED = [
    make_config(
        optimizer=OPTIMIZERS[i % len(OPTIMIZERS)],
        activation=ACTIVATIONS[i % len(ACTIVATIONS)],
        loss=list(LOSSES)[i % len(LOSSES)],
        learning_rate=0.3 if OPTIMIZERS[i % len(OPTIMIZERS)] in ("sgd", "adagrad") else 0.01,
        weight_decay=(0.0, 1e-3, 1e-2)[i % 3],
        layers=2,
        units=(32, (16, 13, 20, 9)[i % 4]),
        epochs=4,
    )
    for i in range(max(len(OPTIMIZERS), len(ACTIVATIONS), len(LOSSES)))
]


def curves(result):
    return (
        np.array([r.train_loss for r in result.history]),
        np.array([r.val_loss for r in result.history]),
        np.array([r.val_metric for r in result.history]),
    )


def assert_same_curve(a, b, rtol=1e-5, atol=1e-6):
    for x, y in zip(curves(a), curves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)
    assert a.status == b.status
    assert a.best_epoch == b.best_epoch


def test_every_member_of_a_mixed_population_matches_its_sequential_run(blobs):
    population = PopulationTrainer(blobs).train(
        [(i, config, 100 + i) for i, config in enumerate(MIXED)]
    )
    sequential = SequentialTrainer(blobs)
    for i, config in enumerate(MIXED):
        alone = sequential.train(config, seed=100 + i)
        assert population[i].status == "complete"
        assert_same_curve(population[i], alone)


@pytest.mark.parametrize(
    "activations",
    [("relu", "relu", "tanh", "tanh", "linear"), ("relu", "tanh", "relu", "linear", "tanh")],
    ids=["side by side (a sweep)", "interleaved"],
)
def test_activation_groups_side_by_side_or_interleaved_match_sequential_runs(
    blobs, activations: tuple[str, ...]
):
    configs = [make_config(activation=name, dropout=0.2, epochs=2) for name in activations]
    population = PopulationTrainer(blobs).train([(i, c, 10 + i) for i, c in enumerate(configs)])
    for i, config in enumerate(configs):
        assert_same_curve(population[i], SequentialTrainer(blobs).train(config, seed=10 + i))


def test_regression_members_match_their_sequential_runs(linear_regression):
    configs = [
        make_config(loss=loss, activation="linear", optimizer=opt, learning_rate=0.01, epochs=5)
        for loss, opt in [
            ("mean_squared_error", "adam"),
            ("huber", "rmsprop"),
            ("mean_absolute_error", "adamw"),
        ]
    ]
    population = PopulationTrainer(linear_regression).train(
        [(i, c, i) for i, c in enumerate(configs)]
    )
    for i, config in enumerate(configs):
        alone = SequentialTrainer(linear_regression).train(config, seed=i)
        assert_same_curve(population[i], alone)


def test_with_dropout_a_member_is_the_same_alone_and_among_any_others(blobs):
    target = make_config(dropout=0.3, layers=2, units=(32, 20), epochs=4)
    others = [
        make_config(dropout=0.5, layers=2, units=(32, 16), learning_rate=0.05, epochs=4),
        make_config(dropout=0.1, layers=2, units=(30, 20), optimizer="sgd", epochs=4),
        make_config(dropout=0.2, layers=2, units=(24, 17), optimizer="rmsprop", epochs=4),
        make_config(dropout=0.0, layers=2, units=(32, 18), optimizer="adamw", epochs=4),
    ]
    alone = PopulationTrainer(blobs).train([("t", target, 7)])
    among = PopulationTrainer(blobs).train(
        [("a", others[0], 1), ("t", target, 7), ("b", others[1], 2)]
    )
    among_others = PopulationTrainer(blobs).train(
        [("c", others[2], 3), ("t", target, 7), ("d", others[3], 4)]
    )
    # Whoever its companions are, a member's results are bit for bit the same ...
    for a, b in zip(curves(among["t"]), curves(among_others["t"]), strict=True):
        np.testing.assert_array_equal(a, b)
    # ... and alone (stepped by torch.optim rather than the fused kernel) the same to float32
    # rounding, as is its sequential run: its dropout masks are its own.
    assert_same_curve(alone["t"], among["t"])
    assert_same_curve(alone["t"], SequentialTrainer(blobs).train(target, seed=7))


def test_joining_late_and_others_leaving_change_no_member(blobs):
    early = make_config(layers=1, units=(24,), epochs=5)
    late = make_config(layers=1, units=(20,), optimizer="rmsprop", epochs=3)
    short = make_config(layers=1, units=(17,), optimizer="sgd", learning_rate=0.2, epochs=1)
    population = PopulationTrainer(blobs)
    population.add("early", early, seed=1)
    population.add("short", short, seed=3)
    finished = dict(population.run_epoch())  # "short" leaves after one epoch
    assert set(finished) == {"short"}
    finished.update(population.run_epoch())
    population.add("late", late, seed=2)  # joins two epochs after "early"
    while len(population):
        finished.update(population.run_epoch())
    sequential = SequentialTrainer(blobs)
    for key, config, seed in [("early", early, 1), ("late", late, 2), ("short", short, 3)]:
        assert_same_curve(finished[key], sequential.train(config, seed=seed))


def test_a_diverging_member_is_stopped_without_disturbing_the_others(blobs):
    wild = make_config(optimizer="sgd", learning_rate=1e3, layers=2, units=(64, 64), epochs=6)
    calm = make_config(layers=2, units=(64, 64), epochs=6)
    results = PopulationTrainer(blobs).train([("wild", wild, 0), ("calm", calm, 1)])
    assert results["wild"].status == "diverged"
    assert results["wild"].diverged_epoch == 1
    assert_same_curve(results["wild"], SequentialTrainer(blobs).train(wild, seed=0))
    assert_same_curve(results["calm"], SequentialTrainer(blobs).train(calm, seed=1))


def test_the_callback_prunes_and_patience_stops_like_the_sequential_trainer(blobs):
    slow = make_config(optimizer="sgd", learning_rate=1e-7, epochs=30)
    fine = make_config(epochs=6)
    results = PopulationTrainer(blobs).train(
        [("slow", slow, 0), ("fine", fine, 1)],
        patience=2,
        on_epoch=lambda key, report: not (key == "fine" and report.epoch == 3),
    )
    assert results["fine"].status == "pruned" and results["fine"].epochs_run == 3
    assert results["slow"].stopped_early
    alone = SequentialTrainer(blobs).train(slow, seed=0, patience=2)
    assert results["slow"].epochs_run == alone.epochs_run


def test_best_state_is_the_members_own_network(blobs):
    config = make_config(layers=2, units=(32, 13), epochs=4)
    results = PopulationTrainer(blobs).train(
        [("m", config, 5), ("other", make_config(units=(64,)), 6)], keep_best_state=True
    )
    sequential = SequentialTrainer(blobs)
    model = sequential.model_from_state(config, results["m"].best_state)
    _, value = sequential.evaluate(model, "val", config.loss)
    assert value == pytest.approx(results["m"].best_value, abs=1e-6)


def test_the_memory_budget_limits_the_population(blobs):
    small = PopulationTrainer(blobs, memory="1MB")
    tiny = make_config(units=(8,))
    big = make_config(layers=2, units=(1024, 1024))
    assert small.has_room(tiny)
    assert not small.has_room(big)
    assert PopulationTrainer(blobs, memory="1GB").has_room(big)


@pytest.mark.parametrize(
    ("text", "size"),
    [("2GB", 2 * 2**30), ("512m", 512 * 2**20), ("1.5 GiB", int(1.5 * 2**30)), ("100", 100)],
)
def test_memory_sizes_parse(text, size):
    assert parse_memory(text) == size


def test_a_bad_memory_size_is_a_clear_error():
    with pytest.raises(DLTuneError, match="memory='lots'"):
        parse_memory("lots")


@pytest.mark.parametrize(
    ("width", "padded"), [(16, 16), (17, 20), (100, 112), (1000, 1024), (3, 3), (1024, 1024)]
)
def test_widths_are_padded_by_at_most_a_quarter(width, padded):
    assert ladder_width(width) == padded
    assert padded < width * 1.25 + 1


# ---------------------------------------------------------------------------------------------
# Pausing at a rung and resuming; rungs inside an epoch
# ---------------------------------------------------------------------------------------------


def _run_with_pauses(population, pause_at, configs, resume_after=1):
    """Advance a population; members pause at `pause_at` epochs and come back after
    `resume_after` more advances, while the others go on. Returns results by key."""
    for key, config, seed in configs:
        until = pause_at(key) if callable(pause_at) else pause_at
        population.add(key, config, seed=seed, until=until)
    paused, results, waited = {}, {}, {}
    while len(population) or paused:
        for key in list(paused):
            waited[key] -= 1
            if waited[key] < 0:
                population.resume(paused.pop(key))
        if not len(population):
            continue
        finished, checkpoints = population.advance()
        results.update(finished)
        for checkpoint in checkpoints:
            paused[checkpoint.key] = population.pause(checkpoint.key)
            waited[checkpoint.key] = resume_after
    return results


def test_a_member_paused_at_a_rung_and_resumed_matches_an_uninterrupted_run(blobs):
    configs = [(i, config, 100 + i) for i, config in enumerate(MIXED)]
    # Each pauses after 2 epochs and waits one round while the others go on: it rejoins a
    # rebuilt bucket beside other members, with its weights, moments and step count.
    resumed = _run_with_pauses(
        PopulationTrainer(blobs), lambda key: 1 + key % 3, configs, resume_after=1
    )
    sequential = SequentialTrainer(blobs)
    for key, config, seed in configs:
        assert_same_curve(resumed[key], sequential.train(config, seed=seed))


def test_rungs_inside_an_epoch_stop_members_there_and_change_nothing_else(blobs):
    configs = [(i, config, 100 + i) for i, config in enumerate(MIXED[:4])]
    population = PopulationTrainer(blobs, segments=4)
    for key, config, seed in configs:
        population.add(key, config, seed=seed, until=0.25)
    finished, checkpoints = population.advance()
    assert not finished
    assert sorted(c.key for c in checkpoints) == [0, 1, 2, 3]
    assert all(c.epochs == 0.25 and 0 <= c.value <= 1 for c in checkpoints)
    assert population.epochs_trained == 1.0  # four members, a quarter of an epoch each
    # a quarter-epoch pause, then on to the end: the same curve as whole epochs throughout
    results = _run_with_pauses(PopulationTrainer(blobs, segments=4), 0.75, configs)
    sequential = SequentialTrainer(blobs)
    for key, config, seed in configs:
        assert_same_curve(results[key], sequential.train(config, seed=seed))


def test_one_trainers_updates_do_not_decide_whether_another_compiles(blobs, monkeypatch):
    """The compile-after-N-updates count belongs to a trainer: a trainer that has done a lot
    of eager work compiles, a fresh one starts eager again (no process-wide counter)."""
    from dltune.engine import stacked_optim

    monkeypatch.delenv("DLTUNE_COMPILE", raising=False)
    monkeypatch.setattr(stacked_optim, "COMPILE_AFTER_UPDATES", 1.0)  # compile at the 2nd call
    compiled: list[object] = []

    def fake_compile(function, **options):  # the real one costs seconds: count, run eagerly
        compiled.append(function)
        return lambda *tensors: function(*tensors)

    monkeypatch.setattr(stacked_optim.torch, "compile", fake_compile)
    first = PopulationTrainer(blobs, metric="accuracy")
    first.train([(seed, MIXED[0].replace(epochs=1), seed) for seed in range(3)])  # one bucket
    assert first.kernel.eager_updates > 0 and first.kernel.compiled and len(compiled) == 1
    second = PopulationTrainer(blobs, metric="accuracy")
    assert second.kernel is not first.kernel
    assert second.kernel.eager_updates == 0 and not second.kernel.compiled


def test_members_without_hidden_layers_match_their_sequential_runs(blobs, linear_regression):
    """layers 0, the linear model: a bucket of no hidden widths, alone or beside networks;
    a dropout rate has no layer to act on (as in the DenseNet trained alone)."""
    linear = [
        make_config(layers=0, epochs=4),
        make_config(layers=0, optimizer="sgd", learning_rate=0.3, dropout=0.4, epochs=4),
        make_config(layers=0, optimizer="rmsprop", weight_decay=1e-2, loss="mean_squared_error"),
        make_config(layers=0, optimizer="adamw", loss="binary_crossentropy", epochs=3),
    ]
    others = [make_config(units=(24,), epochs=4), make_config(layers=2, units=(16, 9), epochs=2)]
    configs = [*linear, *others]
    population = PopulationTrainer(blobs)
    results = population.train(
        [(i, c, 30 + i) for i, c in enumerate(configs)], keep_best_state=True
    )
    sequential = SequentialTrainer(blobs)
    for i, config in enumerate(configs):
        alone = sequential.train(config, seed=30 + i)
        assert results[i].status == "complete"
        assert_same_curve(results[i], alone)
    assert list(results[0].best_state) == ["output.weight", "output.bias"]
    model = sequential.model_from_state(linear[0], results[0].best_state)
    assert sequential.evaluate(model, "val", "categorical_crossentropy")[1] == pytest.approx(
        results[0].best_value, abs=1e-6
    )
    # linear regression
    ridge = make_config(layers=0, loss="mean_squared_error", learning_rate=0.05, epochs=5)
    fitted = PopulationTrainer(linear_regression).train([("r", ridge, 1)])
    assert_same_curve(fitted["r"], SequentialTrainer(linear_regression).train(ridge, seed=1))
