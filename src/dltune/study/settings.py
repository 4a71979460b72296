"""How to run a study, as one frozen object: checked once, then handed to every part (and every
worker process) that runs it, so that a new setting cannot silently miss one of them.

Like a scikit-learn estimator, the constructor only stores; :meth:`TuneSettings.validate` is
the one step that checks, naming the parameter, the value received and the rule. This module
imports neither torch nor optuna: the command line takes its choices and defaults from here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..devices import DEFAULT_DEVICE, check_device
from ..engine.memory import parse_memory
from ..errors import DLTuneError, param
from ..schedule import SCHEDULES
from ..storage.urls import DEFAULT_STORAGE, masked_repr
from ..vocabulary import TASKS
from .choice import DEFAULT_CHOICE, rule_for
from .validation import parse_cv

if TYPE_CHECKING:
    import optuna

    from ..data import Dataset
    from ..space import SearchSpace
    from ..storage import Storage
    from ..usermodel.source import ModelSource

ENGINES = ("sequential", "population", "auto")  # auto: see arrangement.py
SAMPLERS = ("tpe", "random", "grid", "gp")
DEFAULT_SLOTS = 16  # trials trained at once by the population engine
DEFAULT_TRIALS = 50  # when neither a trial count nor a timeout is given (plan.trial_count)
# A running trial is checkpointed at least this often (seconds of its training), besides at
# every rung (checkpointing.py); benchmarks/checkpoints.py measures what it costs.
DEFAULT_CHECKPOINT_EVERY = 60.0


@dataclass(frozen=True, kw_only=True)
class TuneSettings:
    """Everything `tune` was asked, as given (see `tune` for each parameter's meaning), built
    by keyword only: a value given by position could land in the wrong field unnoticed.

    `space` and `data` may be given as names or paths; the run's plan (plan.py) carries them
    resolved, with what "auto" became, so that worker processes receive the same space and the
    same arrays.
    """

    space: SearchSpace | str | Path | dict[str, Any] | None = None
    data: Dataset | str | Path = "digits"
    storage: str | Storage | optuna.storages.BaseStorage = DEFAULT_STORAGE
    study_name: str | None = None
    trials: int | None = None
    timeout: float | None = None
    seed: int | None = None
    sampler: str | Any = "tpe"  # a name (SAMPLERS) or an optuna sampler
    schedule: str | Any = "asha"  # a name (SCHEDULES) or a scheduler
    epoch_budget: float | None = None
    cost_aware: bool = False
    baseline: bool = True
    engine: str = "auto"
    population: int = DEFAULT_SLOTS
    workers: int | str = "auto"
    memory: str | int | None = None
    device: str = DEFAULT_DEVICE
    target: str | None = None
    task: str | None = None
    data_dir: str | Path | None = None
    ray: str | None = None
    shape: str | tuple[int, ...] | None = None
    # A user's build(hp) (dltune.usermodel.ModelSource: travels to workers as its record)
    model: ModelSource | None = None
    # How the best trial is chosen at the end (choice.py): "max" or "top<k>x<m>"
    choose: str = DEFAULT_CHOICE
    # Where trial checkpoints go (storage.checkpoints): None, beside the storage's file; a
    # folder, s3://bucket or gs://bucket; "off". And how often a running trial is saved.
    checkpoints: str | None = None
    checkpoint_every: float = DEFAULT_CHECKPOINT_EVERY
    # How trials are validated (validation.py): "auto", "holdout" or a number of folds.
    cv: str | int = "auto"
    # Deliver an ensemble of the best configurations (ensemble_choice.py), or the best alone.
    ensemble: bool = True
    # Import the build(hp) a continued study records (its file hashed first); a given build
    # (`model`) is the caller's own and needs no such word (user_model.study_model).
    trust_source: bool = False

    def validate(self) -> TuneSettings:
        """Self, or a DLTuneError naming the first setting that breaks its rule."""
        _one_of("sampler", self.sampler, SAMPLERS)
        _one_of("schedule", self.schedule, SCHEDULES)
        _one_of("engine", self.engine, ENGINES)
        if self.task is not None:
            _one_of("task", self.task, TASKS)
        check_device(self.device)
        if self.shape is not None:
            from ..data.shapes import parse_shape

            parse_shape(self.shape)  # its form; its size is checked against the data
        _at_least("trials", self.trials, 1)
        rule_for(self.choose, 0)  # its form ("auto" is resolved against the data)
        parse_cv(self.cv)
        if not isinstance(self.ensemble, bool):
            raise DLTuneError(f"{param('ensemble', self.ensemble)}: give True or False")
        if not isinstance(self.trust_source, bool):
            raise DLTuneError(f"{param('trust_source', self.trust_source)}: give True or False")
        _at_least("population", self.population, 1)
        if isinstance(self.workers, str) and self.workers != "auto":
            raise DLTuneError(f"{param('workers', self.workers)}: give a whole number or auto")
        if self.workers != "auto":
            _at_least("workers", self.workers, 1)  # type: ignore[arg-type]
        if self.timeout is not None and not (self.timeout >= 0):
            raise DLTuneError(f"{param('timeout', self.timeout)}: give 0 or more seconds")
        if self.epoch_budget is not None and not (self.epoch_budget > 0):
            raise DLTuneError(f"{param('epoch_budget', self.epoch_budget)}: give more than 0")
        if not (isinstance(self.checkpoint_every, (int, float)) and self.checkpoint_every >= 0):
            raise DLTuneError(
                f"{param('checkpoint_every', self.checkpoint_every)}: give 0 or more seconds "
                "(0: after every segment)"
            )
        if isinstance(self.memory, str) and self.memory.strip().lower() != "auto":
            parse_memory(self.memory)
        if self.ray is not None:
            from ..distributed.ray_engine import check_address

            check_address(self.ray)
        if self.model is not None and (self.several or self.ray is not None):
            from ..usermodel.source import importable

            problem = importable(self.model)
            if problem:
                raise DLTuneError(f"{problem} (each worker imports it again)")
        if self.ray is not None and self.several:
            raise DLTuneError(
                f"{param('ray')} and {param('workers')} do not mix: Ray places the workers itself"
            )
        return self

    def replace(self, **changes: Any) -> TuneSettings:
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:  # the storage URL (and any other) with its password masked
        return masked_repr(self)

    @property
    def several(self) -> bool:
        """Several worker processes were asked for by number ("auto" is decided by the
        arrangement: plan.py)."""
        return isinstance(self.workers, int) and self.workers > 1


def _one_of(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise DLTuneError(f"{param(name, value)} is not known; choose from {', '.join(choices)}")


def _at_least(name: str, value: int | None, low: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise DLTuneError(f"{param(name, value)} is not a whole number")
    if value is not None and value < low:
        raise DLTuneError(f"{param(name)} must be at least {low}; got {value}")
