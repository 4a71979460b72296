"""The arrangement of a study on this machine (study/arrangement.py): "auto" resolved from plain
facts, an explicit number or engine obeyed, the fallbacks with their fix; and, in this process,
that tune()'s small jobs stay in one process while a real one shares its budgets across
workers."""

from __future__ import annotations

import math
import sys
import types

import optuna
import pytest

from dltune import tune
from dltune.storage.schema import TEST_PREFIX
from dltune.study import arrangement
from dltune.study.arrangement import Facts, arrange, estimated_seconds

BIG = {"cpus": 4, "trials": 500, "examples": 7000, "features": 784, "max_epochs": 27}


def test_a_cpu_gets_one_single_threaded_worker_per_core():
    chosen = arrange("auto", "auto", Facts(**BIG))
    assert (chosen.workers, chosen.engine, chosen.threads) == (4, arrangement.ENGINE_ON_CPU, 1)
    assert chosen.devices == ("cpu",)
    assert chosen.notes == ["4 workers x 1 thread, sequential engine each: one per core"]


def test_an_explicit_number_and_engine_are_obeyed():
    chosen = arrange(3, "population", Facts(**BIG))
    assert (chosen.workers, chosen.engine, chosen.threads) == (3, "population", 1)
    assert chosen.notes == []  # nothing was chosen for the caller
    alone = arrange(1, "sequential", Facts(**BIG))
    assert (alone.workers, alone.threads) == (1, 4)  # one process keeps every core's thread
    small = arrange(2, "auto", Facts(cpus=2, trials=2))
    assert small.workers == 2  # asked for, even where auto would not


def test_small_jobs_stay_in_one_process():
    for facts in (
        Facts(cpus=8, trials=4, examples=1257, features=64, max_epochs=3),  # a few on digits
        Facts(cpus=8, trials=500, timeout=5, examples=7000, features=784),  # a short timeout
        Facts(cpus=8, epoch_budget=2, examples=1257, features=64),
        Facts(cpus=8, trials=15, examples=420, features=8, max_epochs=9),  # the tests' blobs
    ):
        chosen = arrange("auto", "auto", facts)
        assert chosen.workers == 1 and chosen.threads == 8, facts
        assert "small job" in chosen.notes[0] and "--workers N" in chosen.notes[0]
    assert arrange("auto", "auto", Facts(**{**BIG, "cpus": 1})).workers == 1
    assert arrange("auto", "auto", Facts(**{**BIG, "trials": 1})).workers == 1
    assert arrange("auto", "auto", Facts(**{**BIG, "trials": 2})).workers == 2  # not 4


def test_the_size_estimate_takes_the_tightest_budget():
    facts = Facts(cpus=2, trials=100, timeout=30, examples=1000, features=100)
    assert estimated_seconds(facts) == 30
    per_epoch = 1000 * 100 * arrangement.SECONDS_PER_EXAMPLE_FEATURE
    assert estimated_seconds(Facts(cpus=2, epoch_budget=10, examples=1000, features=100)) == (
        pytest.approx(10 * per_epoch)
    )
    # no bound at all (the plan gives the default trial count: test_plan.py): no small job
    unbounded = Facts(cpus=2, examples=1000, features=100, max_epochs=1)
    assert estimated_seconds(unbounded) == math.inf


@pytest.mark.parametrize(
    ("facts", "words"),
    [
        ({"storage_url": False}, ["in memory", "sqlite:///dltune.db"]),
        ({"model_problem": "the build is a lambda"}, ["the build is a lambda"]),
        ({"ray": True}, ["Ray places the workers"]),
        ({"main_problem": "run.py has no guard"}, ["run.py has no guard"]),
    ],
)
def test_what_children_cannot_share_falls_back_to_one_worker_with_the_fix(facts, words):
    chosen = arrange("auto", "auto", Facts(**BIG, **facts))
    assert chosen.workers == 1 and chosen.threads == 4
    assert all(w in chosen.notes[0] for w in words), chosen.notes


def test_ray_actors_train_populations_unless_told_otherwise():
    # the driver's own facts (a CPU) do not choose the cluster's engine
    assert arrange("auto", "auto", Facts(**BIG, ray=True)).engine == "population"
    assert arrange("auto", "sequential", Facts(**BIG, ray=True)).engine == "sequential"


def test_gpus_get_one_process_each_with_a_population():
    chosen = arrange("auto", "auto", Facts(**BIG, cuda_devices=2, device="cuda"))
    assert (chosen.workers, chosen.engine, chosen.threads) == (2, "population", 2)
    assert chosen.devices == ("cuda:0", "cuda:1") and chosen.device_of(1) == "cuda:1"
    assert "one per GPU (cuda:0, cuda:1)" in chosen.notes[0]
    auto = arrange("auto", "auto", Facts(**BIG, cuda_devices=1, device="auto"))
    assert (auto.workers, auto.engine, auto.devices) == (1, "population", ("cuda:0",))
    named = arrange("auto", "auto", Facts(**BIG, cuda_devices=4, device="cuda:2"))
    assert (named.workers, named.devices) == (1, ("cuda:2",))
    # a CPU run on a machine with GPUs is a CPU run; auto without CUDA too
    assert arrange("auto", "auto", Facts(**BIG, cuda_devices=2, device="cpu")).devices == ("cpu",)
    assert arrange("auto", "auto", Facts(**BIG, device="auto")).workers == 4
    # an explicit engine on the GPUs is obeyed; a small job uses one of them
    assert arrange("auto", "sequential", Facts(**BIG, cuda_devices=2)).engine == "sequential"
    missing = arrange("auto", "auto", Facts(**BIG, cuda_devices=0, device="cuda"))
    assert (missing.workers, missing.devices) == (1, ("cuda",))  # one clear error, not four
    small = arrange("auto", "auto", Facts(cpus=4, trials=2, cuda_devices=2, device="cuda"))
    assert (small.workers, small.devices) == (1, ("cuda:0",))


def test_a_script_without_a_main_guard_is_found(tmp_path, monkeypatch):
    def main_module(text: str | None) -> None:
        module = types.ModuleType("__main__")
        if text is not None:
            path = tmp_path / "job.py"
            path.write_text(text)
            module.__file__ = str(path)
        monkeypatch.setitem(sys.modules, "__main__", module)

    main_module("import dltune\ndltune.tune(trials=500)\n")
    problem = arrangement.main_problem()
    assert problem is not None and "job.py" in problem and '__name__ == "__main__"' in problem
    main_module("import dltune\n\nif __name__ == '__main__':\n    dltune.tune(trials=500)\n")
    assert arrangement.main_problem() is None
    main_module(None)  # an interactive session, a notebook
    assert arrangement.main_problem() is None
    main_module("from .cli import main\nmain()\n")  # python -m dltune.cli: never run again
    sys.modules["__main__"].__spec__ = types.SimpleNamespace(name="dltune.cli.__main__")
    assert arrangement.main_problem() is None


def test_the_cpu_count_is_this_process_affinity():
    assert 1 <= arrangement.cpu_count() <= (__import__("os").cpu_count() or 1)


def test_a_small_tune_runs_in_this_process(blobs, storage_url):
    result = tune({"epochs": 2, "layers": 1}, blobs, storage=storage_url, trials=3, seed=0)
    assert any("1 worker: a small job" in note for note in result.notes)
    assert all("worker" not in t.user_attrs for t in result.study.trials)  # untagged: one


def test_an_in_memory_study_that_would_use_workers_stays_in_one_with_a_note(blobs, monkeypatch):
    monkeypatch.setattr(arrangement, "PARALLEL_SECONDS", 0.0)  # any job is big enough
    monkeypatch.setattr(arrangement, "cpu_count", lambda: 2)
    storage = optuna.storages.InMemoryStorage()
    result = tune({"epochs": 1, "layers": 1}, blobs, storage=storage, trials=2, seed=0)
    assert len(result.study.trials) == 2
    assert any("storage is in memory" in note for note in result.notes), result.notes


@pytest.mark.slow
@pytest.mark.xdist_group("workers")
def test_under_auto_the_trials_and_the_epoch_budget_count_for_the_whole_study(
    blobs, storage_url, monkeypatch
):
    """Two workers chosen by auto (the size rule lowered, two cores assumed): the trial count
    and the epoch budget are the study's, not each worker's; the test split used once."""
    monkeypatch.setattr(arrangement, "PARALLEL_SECONDS", 0.0)
    monkeypatch.setattr(arrangement, "cpu_count", lambda: 2)
    space = {"epochs": 3, "layers": [1, 2], "units": [8, 16], "learning_rate": [0.01, 0.03]}
    result = tune(space, blobs, storage=storage_url, study_name="t", trials=8, seed=0)
    assert any("2 workers x 1 thread" in note for note in result.notes), result.notes
    trials = result.study.trials
    assert len(trials) == 8 and result.trials_run == 8
    assert sorted({t.user_attrs["worker"] for t in trials}) == [0, 1]
    assert result.best is not None and result.best["test"] is not None
    tested = [k for k in result.study.user_attrs if k.startswith(TEST_PREFIX)]
    assert len(tested) <= 1, tested  # one trial tested: the best, once
    budgeted = tune(
        space,
        blobs,
        storage=storage_url,
        study_name="e",
        trials=500,
        epoch_budget=10,
        schedule="none",
        seed=0,
        choose="max",
    )
    assert 10 <= budgeted.epochs_trained < 12  # each worker stops at its half, where it is
    stored = sum(len(t.intermediate_values) for t in budgeted.study.trials)
    assert stored <= 12
    assert not [t for t in budgeted.study.trials if t.state.name == "RUNNING"]


def test_the_display_tags_each_workers_trials_and_keeps_the_better_best():
    """The parent's display hears the other workers through worker_event (as the relay calls
    it): their lines tagged, one live line per worker, the best of all kept."""
    import io

    from rich.console import Console

    from dltune.cli.display import LiveProgress, PlainProgress
    from dltune.engine.result import EpochReport
    from dltune.storage import TrialRecord
    from dltune.study.start import StudyStart

    from .helpers import make_config

    out = io.StringIO()
    plain = PlainProgress(Console(file=out, width=200))
    best_one = {"trial": 1, "value": 0.9, "direction": "maximize"}
    worse = {"trial": 0, "value": 0.5, "direction": "maximize"}
    plain.worker_event(1, "trial_finished", (TrialRecord(1, "complete", 0.9, worker=1), best_one))
    plain.trial_finished(TrialRecord(0, "complete", 0.5, worker=0), worse)  # read before #1
    printed = out.getvalue()
    assert "[w1] trial    1 complete" in printed and "[w0] trial    0 complete" in printed
    assert plain.best == best_one and plain.done == 2

    live = LiveProgress(Console(file=io.StringIO(), width=200))
    live.start = StudyStart("s", "x.db", "blobs", "accuracy", None, None, 0, "sequential", "none")
    config = make_config()
    live.trial_started(3, config)
    live.worker_event(1, "trial_started", (4, config))
    live.worker_event(1, "trial_started", (5, config))
    live.worker_event(1, "epoch_done", (5, EpochReport(2, 0.1, 0.2, 0.75, 0.1)))
    lines = [line.plain for line in live._now_lines()]
    assert lines[0].startswith("w0 #3 starting")
    assert lines[1].startswith("w1 #5 epoch 2/") and "accuracy 0.7500 (+1 more)" in lines[1]
