"""How to run a study, as one frozen object: checked once, then handed to every part (and every
worker process) that runs it, so that a new setting cannot silently miss one of them.

Like a scikit-learn estimator, the constructor only stores; :meth:`TuneSettings.validate` is
the one step that checks, naming the parameter, the value received and the rule; the rules are
declared once, in the parameter table (parameters.py). This module imports neither torch nor
optuna: the command line takes its defaults from here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..devices import DEFAULT_DEVICE
from ..errors import InvalidParameterError, param
from ..storage.urls import DEFAULT_STORAGE, masked_repr
from .choice import DEFAULT_CHOICE
from .parameters import PARAMETERS

if TYPE_CHECKING:
    import optuna

    from ..data import Dataset
    from ..space import SearchSpace
    from ..storage import Storage
    from ..usermodel.source import ModelSource

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
        """Self, or an InvalidParameterError (a DLTuneError and a ValueError; for a value of
        the wrong type a ParameterTypeError, also a TypeError) naming the first setting that
        breaks its rule: each setting against its entry in the parameter table
        (parameters.py), then the rules that join several settings."""
        for entry in PARAMETERS:
            entry.check(getattr(self, entry.name))
        _check_sampler_object(self.sampler)
        _check_model_importable(self)
        _check_ray_alone(self)
        check_objects_travel(self)
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


def _check_sampler_object(sampler: Any) -> None:
    """Optuna's own GridSampler stops the study from inside Study.optimize (its after_trial),
    which dltune's ask/tell loop does not run: its grid is sampler="grid"."""
    import sys

    optuna = sys.modules.get("optuna")  # an Optuna object was made where Optuna was imported
    if optuna is None or isinstance(sampler, str):
        return
    grid = optuna.samplers.GridSampler
    if isinstance(sampler, grid) and type(sampler).after_trial is grid.after_trial:
        raise InvalidParameterError(
            f"{param('sampler')}: Optuna's GridSampler stops a study only inside "
            "Study.optimize, which dltune's ask/tell loop does not run; give "
            f"{param('sampler', 'grid')} (the grid of the space's lists of values)"
        )


def _check_model_importable(settings: TuneSettings) -> None:
    """A user's build(hp) that other processes must import again (workers, Ray) is importable
    by them: a file or a module, not a function defined in __main__ or a notebook."""
    if settings.model is None or not (settings.several or settings.ray is not None):
        return
    from ..usermodel.source import importable

    problem = importable(settings.model)
    if problem:
        raise InvalidParameterError(f"{problem} (each worker imports it again)")


def _check_ray_alone(settings: TuneSettings) -> None:
    if settings.ray is not None and settings.several:
        raise InvalidParameterError(
            f"{param('ray')} and {param('workers')} do not mix: Ray places the workers itself"
        )


def check_objects_travel(settings: TuneSettings, workers: int | None = None) -> None:
    """A sampler or stopping rule given as an object goes, pickled with the other settings,
    to each worker process: with several workers (`workers`, as arranged; by default as
    asked), one that cannot be pickled is refused here, not deep in a child's start."""
    count = workers if workers is not None else settings.workers
    if not (isinstance(count, int) and count > 1):
        return
    import pickle

    for name in ("sampler", "schedule"):
        value = getattr(settings, name)
        if isinstance(value, str):
            continue
        try:
            pickle.dumps(value)
        except Exception as exc:  # PicklingError, AttributeError, TypeError: all say why
            raise InvalidParameterError(
                f"{param(name)}: the {type(value).__name__} object cannot be sent to the "
                f"{count} worker processes ({type(exc).__name__}: {exc}); give "
                f"{param('workers', 1)}, or an object that pickles (no lambda, no open file, "
                "a class defined in an importable module)"
            ) from exc
