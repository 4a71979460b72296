"""A trial's whole state as a checkpoint: written, read back, and trained on exactly as if it had
never stopped (bit for bit in the sequential engine; to float32 rounding when a population
member is restored into another population)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dltune.engine import SequentialEngine, SequentialTrainer
from dltune.engine.capture import snapshot_of
from dltune.engine.population import PopulationTrainer
from dltune.engine.snapshot import SnapshotError, from_bytes, to_bytes

from .helpers import make_config


def through_bytes(handle):
    """The handle's snapshot, written and read back (what a checkpoint file holds)."""
    return from_bytes(to_bytes(snapshot_of(handle)))


def advance_until(engine, key, epochs: float):
    while True:
        finished, _ = engine.advance()
        assert not finished
        run = engine.runs[key]
        if run.epochs_done >= epochs - 1e-9:
            return run


@pytest.mark.parametrize("optimizer", ["adam", "momentum", "rmsprop", "adagrad", "adamw"])
def test_a_run_resumed_from_its_checkpoint_in_a_new_engine_is_bit_for_bit_unbroken(
    blobs, optimizer
):
    config = make_config(optimizer=optimizer, dropout=0.3, epochs=5, layers=2, units=(32, 16))
    # segments of half an epoch, as a rung inside an epoch cuts them
    again = SequentialEngine(SequentialTrainer(blobs), segments=2)
    again.add(0, config, seed=7, keep_best_state=True)
    advance_until(again, 0, 2.5)  # stopped inside an epoch: its loss sum so far is state too
    snapshot = through_bytes(again.snapshot(0))
    assert snapshot.kind == "run" and snapshot.epochs == 2.5

    fresh = SequentialEngine(SequentialTrainer(blobs), segments=2)
    restored = fresh.restore(snapshot, "k")
    fresh.resume(restored)
    ended = []
    while len(fresh):
        ended += fresh.advance()[0]
    ((key, resumed),) = ended
    assert key == "k"
    straight = SequentialTrainer(blobs).train(config, seed=7, keep_best_state=True)
    assert [r.val_metric for r in resumed.history] == [r.val_metric for r in straight.history]
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in straight.history]
    assert [r.val_loss for r in resumed.history] == [r.val_loss for r in straight.history]
    assert resumed.best_epoch == straight.best_epoch
    for name, value in straight.best_state.items():
        assert torch.equal(resumed.best_state[name], value), name
    assert fresh.epochs_trained == 2.5  # only what was left was trained again


def test_a_population_member_checkpointed_alone_restores_into_another_population(blobs):
    configs = {
        1: make_config(optimizer="adam", dropout=0.2, units=(24,), epochs=4),
        2: make_config(optimizer="rmsprop", learning_rate=1e-3, units=(40,), epochs=4),
        3: make_config(optimizer="momentum", learning_rate=0.05, units=(16,), epochs=4),
    }
    reference = PopulationTrainer(blobs).train([(k, c, 10 + k) for k, c in configs.items()])

    first = PopulationTrainer(blobs)
    for key, config in configs.items():
        first.add(key, config, seed=10 + key)
    first.advance()
    first.advance()  # two epochs
    snapshot = through_bytes(first.snapshot(2))
    assert snapshot.kind == "member" and snapshot.epochs == 2
    # the running member was only copied: it trains on unchanged
    left = {}
    while len(first):
        left.update(first.advance()[0])
    np.testing.assert_array_equal(
        [r.val_metric for r in left[2].history], [r.val_metric for r in reference[2].history]
    )

    other = PopulationTrainer(blobs)  # other companions, another bucket layout
    other.add("x", make_config(units=(64,), batch_size=32, epochs=4), seed=99)
    other.resume(other.restore(snapshot, "moved"))
    done = {}
    while len(other):
        done.update(other.advance()[0])
    np.testing.assert_allclose(
        [r.val_loss for r in done["moved"].history],
        [r.val_loss for r in reference[2].history],
        rtol=1e-5,
        atol=1e-6,
    )
    assert done["moved"].best_epoch == reference[2].best_epoch


def test_a_stacked_conv_member_with_batch_norm_restores_with_its_statistics():
    from dltune.data import from_arrays

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=240)
    x = rng.normal(0, 1, size=(240, 1, 8, 8)).astype(np.float32)
    x[np.arange(240), 0, 2 * y, :] += 2.0
    data = from_arrays(x.reshape(240, -1), y, name="rows", seed=0)
    data.set_input_shape((1, 8, 8))
    conv = make_config(
        conv_layers=1, filters=(4,), pool=2, batch_norm=True, units=(16,), dropout=0.2, epochs=3
    )
    reference = PopulationTrainer(data).train(
        [(0, conv, 5), (1, conv.replace(learning_rate=3e-3), 6)]
    )
    first = PopulationTrainer(data)
    first.add(0, conv, seed=5)
    first.add(1, conv.replace(learning_rate=3e-3), seed=6)
    first.advance()
    snapshot = through_bytes(first.snapshot(1))
    assert snapshot.kind == "module"
    assert any(name.startswith("buffers.") for name in snapshot.tensors)  # running statistics
    other = PopulationTrainer(data)
    other.resume(other.restore(snapshot, 1))
    done = {}
    while len(other):
        done.update(other.advance()[0])
    np.testing.assert_allclose(
        [r.val_loss for r in done[1].history],
        [r.val_loss for r in reference[1].history],
        rtol=1e-5,
        atol=1e-6,
    )


def test_a_sequential_engine_declines_a_members_checkpoint_and_a_population_takes_a_run(blobs):
    config = make_config(epochs=3)
    population = PopulationTrainer(blobs)
    population.add(0, config, seed=1)
    population.advance()
    member = through_bytes(population.snapshot(0))
    assert SequentialEngine(SequentialTrainer(blobs)).restore(member, 0) is None
    engine = SequentialEngine(SequentialTrainer(blobs))
    engine.add(0, config, seed=1)
    engine.advance()
    run = through_bytes(engine.snapshot(0))
    taker = PopulationTrainer(blobs)
    taker.resume(taker.restore(run, 0))
    finished = []
    while len(taker):
        finished += taker.advance()[0]
    assert finished[0][1].epochs_run == 3


def test_what_is_not_a_checkpoint_is_refused_with_a_reason():
    with pytest.raises(SnapshotError, match="not a dltune checkpoint"):
        from_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    from safetensors.torch import save

    with pytest.raises(SnapshotError, match="not a dltune checkpoint"):
        from_bytes(save({"w": torch.zeros(2)}))
