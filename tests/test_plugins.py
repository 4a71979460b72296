"""Parameters declared once (one table checks tune's settings and gives the command line its
types and help), parameter errors that are ValueErrors and TypeErrors too, and an expert's own
sampler object and stopping rule, each running a study end to end."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
import warnings
from collections.abc import Sequence

import click
import optuna
import pytest

from dltune.errors import DLTuneError, InvalidParameterError, ParameterTypeError, render
from dltune.schedule import StoppingRule, TrialCurve, make_scheduler
from dltune.storage import trial_records
from dltune.study import TuneSettings, tune
from dltune.study.parameters import PARAMETERS, Choice, Number, WholeNumber, parameter

# ---- errors: DLTuneErrors that are ValueErrors (wrong value) and TypeErrors (wrong type) ----


@pytest.mark.parametrize(
    ("options", "kind", "said"),
    [
        ({"trials": 0}, InvalidParameterError, "trials must be at least 1; got 0"),
        ({"trials": "3"}, ParameterTypeError, "trials='3' is not a whole number"),
        ({"timeout": "10"}, ParameterTypeError, "timeout='10': give 0 or more seconds"),
        ({"baseline": 1}, ParameterTypeError, "baseline=1: give True or False"),
        ({"engine": "x"}, InvalidParameterError, "engine='x' is not known; choose from"),
        ({"sampler": 3}, ParameterTypeError, "or give an optuna.samplers.BaseSampler"),
        ({"schedule": object()}, ParameterTypeError, "a dltune.StoppingRule"),
        ({"cv": "folds"}, InvalidParameterError, "cv='folds' is not a validation"),
        ({"shape": "0,3"}, InvalidParameterError, "shape='0,3'"),
        ({"device": 0}, ParameterTypeError, "device=0: give auto, cpu, cuda or cuda:N"),
        ({"memory": "lots"}, InvalidParameterError, "memory='lots' is not a size"),
    ],
)
def test_a_parameter_error_is_a_dltune_error_and_a_value_error(tmp_path, options, kind, said):
    storage = f"sqlite:///{tmp_path / 'never.db'}"
    with pytest.raises(ValueError) as caught:  # the point: ValueError catches it
        tune(data="no-such-data.csv", storage=storage, **options)
    error = caught.value
    assert type(error) is kind and isinstance(error, DLTuneError)
    assert said in str(error)
    assert isinstance(error, TypeError) == (kind is ParameterTypeError)
    assert not (tmp_path / "never.db").exists()  # refused before the storage or data
    # across a process boundary (a worker's error) it keeps its class and its marks
    assert type(pickle.loads(pickle.dumps(error))) is kind


# ---- the table: every setting declared once, and the command line reads it ----------------


def test_the_table_declares_every_setting_of_tune_once():
    named = [entry.name for entry in PARAMETERS]
    assert len(named) == len(set(named))
    fields = {f.name for f in dataclasses.fields(TuneSettings)}
    set_by_the_arrangement = {"threads", "devices"}
    assert set(named) == fields - set_by_the_arrangement
    keywords = set(inspect.signature(tune).parameters) - {"space_or_build", "progress"}
    assert keywords <= set(named)


def _run_options() -> dict[str, click.Option]:
    from dltune.cli.run import run

    return {o.name: o for o in run.params if isinstance(o, click.Option) and o.name is not None}


def test_dltune_run_takes_its_choices_bounds_and_help_from_the_table():
    from dltune.cli.common import flag_for

    options = _run_options()
    checked = 0
    for entry in PARAMETERS:
        option = options.get(entry.name)
        if option is None:  # the SPACE argument
            continue
        shown = render(entry.help, flag_for)
        assert option.help == shown or (entry.name == "data" and option.help.startswith(shown))
        if isinstance(entry, Choice):
            assert isinstance(option.type, click.Choice)
            assert tuple(option.type.choices) == entry.choices
        elif isinstance(entry, WholeNumber) and not entry.words:
            assert isinstance(option.type, click.IntRange) and option.type.min == entry.low
        elif isinstance(entry, Number):
            assert isinstance(option.type, click.FloatRange)
            assert (option.type.min, option.type.min_open) == (entry.low, entry.open)
        checked += 1
    assert checked == len(PARAMETERS) - 1
    assert "--timeout/--epoch-budget" in options["choose"].help  # names rendered as flags


def test_a_bound_changed_in_the_table_changes_what_validate_checks():
    trials = parameter("trials")
    stricter = dataclasses.replace(trials, low=5)
    stricter.check(5)
    with pytest.raises(InvalidParameterError, match="trials must be at least 5; got 4"):
        stricter.check(4)
    trials.check(None)  # None allowed: the default decides


# ---- a sampler object ------------------------------------------------------------------------

NUMERIC = {  # CMA-ES samples numbers: every sampled parameter here is a float or an int
    "conv_layers": 0,  # digits are 8x8 images: dense networks only, to keep it quick
    "layers": 1,
    "units": {"low": 16, "high": 64},
    "activation": "relu",
    "optimizer": "adam",
    "loss": "categorical_crossentropy",
    "dropout": {"low": 0.0, "high": 0.5},
    "learning_rate": {"low": 1e-3, "high": 0.05, "log": True},
    "batch_size": 64,
    "epochs": 2,
}
QUICK = {  # one process, one trial at a time, no re-evaluation, no ensemble: seconds
    "engine": "sequential",
    "workers": 1,
    "cv": "holdout",
    "choose": "max",
    "ensemble": False,
    "checkpoints": "off",
}


def test_an_optuna_cmaes_sampler_object_runs_a_study(storage_url):
    pytest.importorskip("cmaes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.CmaEsSampler(seed=0, n_startup_trials=1)
    result = tune(
        NUMERIC, "digits", storage=storage_url, trials=4, seed=0, sampler=sampler,
        schedule="none", **QUICK,
    )  # fmt: skip
    assert result.study.sampler is sampler  # used as it is
    records = trial_records(result.study)
    assert [r["state"] for r in records] == ["complete"] * 4
    # trial 0 is the baseline (enqueued); CMA-ES proposed the others
    sampled_by_cma = [t.number for t in result.study.trials if "cma:generation" in t.system_attrs]
    assert sampled_by_cma == [1, 2, 3]
    assert result.best is not None and 0.5 < result.best["value"] <= 1.0


def test_a_sampler_object_that_cannot_be_pickled_is_refused_for_several_workers(tmp_path):
    storage = f"sqlite:///{tmp_path / 'never.db'}"
    unpicklable = optuna.samplers.TPESampler(gamma=lambda n: 1)
    with pytest.raises(InvalidParameterError, match="TPESampler object cannot be sent"):
        tune(data="digits", storage=storage, sampler=unpicklable, workers=2)
    assert not (tmp_path / "never.db").exists()


def test_optunas_own_grid_sampler_is_refused_for_dltunes_grid(tmp_path):
    grid = optuna.samplers.GridSampler({"units": [16, 32]})
    with pytest.raises(InvalidParameterError, match="sampler='grid'"):
        TuneSettings(sampler=grid).validate()  # type: ignore[arg-type]


def test_a_sampler_object_in_a_worker_process_is_reseeded():
    from dltune.space import SearchSpace
    from dltune.study.samplers import make_sampler

    def first_draw(sampler: optuna.samplers.BaseSampler) -> float:
        study = optuna.create_study(sampler=sampler)
        return study.ask().suggest_float("x", 0, 1)

    space = SearchSpace.default()
    mine = optuna.samplers.RandomSampler(seed=0)
    assert make_sampler(mine, space, seed=1, worker=0) is mine  # its own seed: untouched
    # each worker receives a pickled copy, in the same state: unless reseeded, the same draws
    copy, worker_copy = (pickle.loads(pickle.dumps(mine)) for _ in range(2))
    assert first_draw(pickle.loads(pickle.dumps(mine))) == first_draw(copy)
    assert make_sampler(worker_copy, space, seed=1, worker=1) is worker_copy
    assert first_draw(worker_copy) != first_draw(mine)


# ---- a stopping rule object ------------------------------------------------------------------


class StopBelow:
    """Stop every trial whose value at epoch 2 is below `threshold`; remember each verdict."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.asked: list[tuple[int, int, int]] = []  # (trial, epochs so far, others)
        self.stopped: set[int] = set()

    def should_stop(self, trial: TrialCurve, others: Sequence[TrialCurve]) -> bool:
        self.asked.append((trial.number, len(trial.values), len(others)))
        stop = len(trial.values) == 2 and trial.values[-1] < self.threshold
        if stop:
            self.stopped.add(trial.number)
        return stop


def test_a_stopping_rule_object_stops_trials_in_a_study(storage_url):
    # The grid runs both learning rates once: 1e-6 learns nothing in 2 epochs, 0.01 learns.
    space = {
        **NUMERIC,
        **{"units": 32, "dropout": 0.0, "filters": 16, "epochs": 3},
        "learning_rate": [1e-6, 0.01],  # the only choice: a grid of two
    }
    rule = StopBelow(0.5)
    assert isinstance(rule, StoppingRule)
    result = tune(
        space, "digits", storage=storage_url, trials=2, seed=0, sampler="grid", schedule=rule,
        **QUICK,
    )  # fmt: skip
    records = {r["params"]["learning_rate"]: r for r in trial_records(result.study)}
    slow, fast = records[1e-6], records[0.01]
    assert rule.stopped == {slow["trial"]}
    # its decisions, as stored: the stopped trial pruned after 2 epochs, the other complete
    assert (slow["state"], slow["epochs"]) == ("pruned", 2)
    assert (fast["state"], fast["epochs"]) == ("complete", 3)
    # asked after every epoch but the last, the other trial among the others once it ran
    asked = {(n, epochs) for n, epochs, _ in rule.asked}
    assert asked == {(slow["trial"], 1), (slow["trial"], 2), (fast["trial"], 1), (fast["trial"], 2)}
    assert max(others for *_, others in rule.asked) == 1


def test_a_rule_scheduler_asks_the_rule_after_each_epoch_with_the_others_curves():
    seen: list[tuple[TrialCurve, tuple[TrialCurve, ...]]] = []

    class BelowTheBestThere:  # stop a trial below the best other at the same epoch
        def should_stop(self, trial: TrialCurve, others: Sequence[TrialCurve]) -> bool:
            seen.append((trial, tuple(others)))
            epoch = len(trial.values)
            rivals = [o.values[epoch - 1] for o in others if len(o.values) >= epoch]
            return bool(rivals) and trial.values[-1] < max(rivals)

    scheduler = make_scheduler(
        BelowTheBestThere(), min_epochs=1, max_epochs=3, reduction=3, direction="maximize"
    )
    assert scheduler.rungs.base == (1.0, 2.0, 3.0) and scheduler.rungs.segments == 1
    for number in (0, 1, 2):
        scheduler.start(number)
    assert [scheduler.record(0, v) for v in (0.5, 0.7, 0.8)] == ["continue", "continue", "complete"]
    assert len(seen) == 2  # after epochs 1 and 2, not after the last
    assert scheduler.record(1, 0.4) == "stop"  # below trial 0 at epoch 1
    trial, others = seen[-1]
    assert trial == TrialCurve(1, (0.4,), "maximize", 3) and trial.best == 0.4
    assert {o.number: o.values for o in others} == {0: (0.5, 0.7, 0.8), 2: ()}
    scheduler.protected.add(2)  # a protected trial goes on whatever the rule would say
    assert scheduler.record(2, 0.1) == "continue" and len(seen) == 3
    assert scheduler.promotion([1]) is None and not scheduler.is_promotable(1)
    assert "BelowTheBestThere: asked after every epoch up to 3" in scheduler.rungs.describe()
