"""The population's parts (padded, module, one at a time) behind one interface: every member is
found through one map from its key to the part that owns it, and a key no part owns is a clear
error."""

from __future__ import annotations

import pytest
import torch

from dltune.engine import SequentialEngine, SequentialTrainer, TrainingRun
from dltune.engine.bucket_base import Member
from dltune.engine.module_bucket import ModuleMember
from dltune.engine.population import PopulationTrainer
from dltune.engine.snapshot import Snapshot
from dltune.engine.subpopulation import NoMember, SubPopulation

from .helpers import bright_rows, make_config
from .test_population_modules import CONV, ItemNet

DENSE = make_config(epochs=2)


@pytest.fixture(scope="module")
def images():
    """Noisy 8x8 images of three classes (helpers.bright_rows)."""
    return bright_rows(120, seed=1)


def item_factory(config, n_outputs, *, seed, device):
    torch.manual_seed(seed)
    return ItemNet(n_outputs).to(device)


def test_each_member_is_owned_by_its_part_until_it_leaves(images):
    population = PopulationTrainer(images)
    population.add("dense", DENSE, seed=0)
    population.add("conv", CONV.replace(epochs=2), seed=1)
    assert population.owner("dense") is population.dense
    assert population.owner("conv") is population.modules
    assert all(isinstance(part, SubPopulation) for part in population.parts)
    assert [len(part) for part in population.parts] == [1, 1, 0] and len(population) == 2
    finished = population.run_epoch() + population.run_epoch()
    assert sorted(key for key, _ in finished) == ["conv", "dense"]
    for key in ("dense", "conv"):
        with pytest.raises(NoMember, match=f"'{key}' is not in this population"):
            population.owner(key)


def test_an_architecture_that_cannot_stack_is_owned_by_the_one_at_a_time_part(images):
    population = PopulationTrainer(images, network=item_factory)
    with pytest.warns(RuntimeWarning, match="cannot be trained stacked"):
        population.add(0, make_config(epochs=2), seed=0, until=1)
    assert population.owner(0) is population.alone and len(population) == 1
    _, at_target = population.advance()
    assert [c.key for c in at_target] == [0]
    paused = population.pause(0)
    assert isinstance(paused, TrainingRun) and not len(population)
    population.resume(paused)
    assert population.owner(0) is population.alone
    finished, _ = population.advance()
    assert finished[0][0] == 0 and finished[0][1].epochs_run == 2
    assert population.epochs_trained == pytest.approx(2.0)


@pytest.mark.parametrize(
    "ask",
    [
        lambda p: p.pause("nobody"),
        lambda p: p.stop("nobody"),
        lambda p: p.set_until("nobody", 2),
        lambda p: p.snapshot("nobody"),
        lambda p: p.running_result("nobody"),
    ],
)
def test_a_key_no_part_owns_is_a_key_error_naming_it(blobs, ask):
    population = PopulationTrainer(blobs)
    population.add("somebody", DENSE, seed=0)
    with pytest.raises(KeyError) as caught:
        ask(population)
    assert isinstance(caught.value, NoMember) and caught.value.args == ("nobody",)
    assert str(caught.value) == "member 'nobody' is not in this population"
    assert population.owner("somebody") is population.dense  # the others are untouched


def test_a_member_that_has_not_trained_cannot_pause_but_can_stop(blobs):
    population = PopulationTrainer(blobs)
    population.add(7, DENSE, seed=0)
    with pytest.raises(KeyError, match="7 has not trained yet"):
        population.pause(7)  # a KeyError: Ray's worker stops such a member instead
    assert population.stop(7).status == "pruned"
    assert not len(population)


def test_a_key_is_added_once(blobs):
    population = PopulationTrainer(blobs)
    population.add(1, DENSE, seed=0)
    with pytest.raises(ValueError, match="member 1 is already in this population"):
        population.add(1, DENSE.replace(units=(8,)), seed=1)
    finished = population.train([])
    assert finished[1].epochs_run == 2 and len(finished) == 1


def test_a_paused_member_goes_back_to_the_part_of_its_kind(images):
    population = PopulationTrainer(images)
    population.add("dense", DENSE, seed=0, until=1)
    population.add("conv", CONV.replace(epochs=2), seed=1, until=1)
    _, at_target = population.advance()
    paused = {c.key: population.pause(c.key) for c in at_target}
    assert type(paused["dense"]) is Member and isinstance(paused["conv"], ModuleMember)
    assert population.dense.takes(paused["dense"]) and not population.dense.takes(paused["conv"])
    for handle in paused.values():
        population.resume(handle)
    assert population.owner("dense") is population.dense
    assert population.owner("conv") is population.modules
    with pytest.raises(TypeError, match="a str is not a member of a population"):
        population.resume("neither")  # type: ignore[arg-type]


def test_a_checkpoint_of_a_kind_no_part_takes_is_refused(blobs):
    population = PopulationTrainer(blobs)
    with pytest.raises(ValueError, match="a 'fold' snapshot is not a population member's"):
        population.restore(Snapshot("fold", {}, {}), 0)
    engine = SequentialEngine(SequentialTrainer(blobs))
    engine.add(0, DENSE, seed=0)
    engine.advance()
    run = population.restore(engine.snapshot(0).snapshot(), 0)
    assert isinstance(run, TrainingRun)
    population.resume(run)
    assert population.owner(0) is population.alone
