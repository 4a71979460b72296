"""Run a sweep: the plan's members trained as one population, stored as a study of their own.

The sweep goes through the same study loop, trial lifecycle and run as `tune` (dltune.study),
with every member enqueued in Optuna beforehand (its value as the trial's
params, its seed as a user attribute) and no scheduler: every member trains all its epochs. So
the sweep's study looks like any other to `dltune report`, `dltune trials` and optuna-dashboard,
a Ctrl-C keeps the finished members, and running the same command again trains only the
members still missing.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import errors, views
from ..config import Config
from ..devices import DEFAULT_DEVICE
from ..errors import DLTuneError, StudyError
from ..storage import (
    DEFAULT_STORAGE,
    best_trial,
    directions,
    fail_stale_trials,
    read_trials,
    resolve_storage,
    schema,
    study_meta,
)
from ..storage.urls import masked_repr
from ..study import validation
from ..study.lifecycle import TrialLifecycle
from ..study.loop import Budget, StudyLoop
from ..study.notebook_progress import default_progress
from ..study.progress import ProgressListener
from ..study.run import run_study
from ..study.start import StudyStart
from ..vocabulary import CONVOLUTIONAL, DEFAULT_METRIC, FINISHED_STATES, loss_applies
from .estimate import TrainedMember, one_at_a_time
from .plan import DEFAULT_SEED, DEFAULT_SEEDS, SweepPlan
from .study import enqueue_members, missing_members, open_sweep_study
from .values import default_values, parse_range, parse_values

if TYPE_CHECKING:
    import optuna

    from ..data import Dataset
    from ..space import SearchSpace
    from ..storage import Storage
    from ..study.opening import OpenedStudy


@dataclass
class SweepResult:
    study: optuna.Study
    storage: Storage
    plan: SweepPlan
    data: Dataset
    seconds: float  # this call, the estimate's sample included
    trained: int  # members trained in this call
    interrupted: bool = False
    timing: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # a notebook shows it: no password of a storage URL
        return masked_repr(self)

    def _repr_html_(self) -> str:
        """What Jupyter shows of the sweep: the readings, the score against the value and a
        row per value (dltune.notebook draws it, from what storage holds)."""
        return str(views.view("sweep_html")(self))

    def report(self, path: str | Path | None = None) -> Any:
        """The sweep's page (as `dltune report` writes it): a notebook shows it inline;
        `.save(path)` writes it, as does giving `path` here."""
        return views.view("report_of")(self.study, path)


def sweep(
    param: str,
    *,
    values: str | list[Any] | tuple[Any, ...] | None = None,
    value_range: str | None = None,
    data: Dataset | str | Path | None = None,
    base: SearchSpace | str | Path | dict[str, Any] | None = None,
    from_study: str | None = None,
    storage: str | Storage = DEFAULT_STORAGE,
    study_name: str | None = None,
    epochs: int | None = None,
    seeds: int = DEFAULT_SEEDS,
    seed: int = DEFAULT_SEED,
    estimate: bool = True,
    memory: str | int | None = None,
    device: str = DEFAULT_DEVICE,
    target: str | None = None,
    task: str | None = None,
    data_dir: str | Path | None = None,
    progress: ProgressListener | None = None,
    shape: str | tuple[int, ...] | None = None,
    cv: str | int | None = None,
) -> SweepResult:
    """Train the base configuration with `param` set to each of its values, `seeds` times each.

    The base is the best trial of study `from_study` (in `storage`), or the space `base` with
    its fixed values and, for what it samples, the textbook configuration's nearest values
    (the default space: one Dense(128, relu) layer, dropout 0.2, Adam at 1e-3, batch 32).
    `data`: None is the study's data with `from_study`, else digits.
    `values` ("V1,V2,..." or a list) or `value_range` ("LOW:HIGH:N[:log]") choose the values;
    neither: every choice of a categorical, a wide default range of a numeric one.
    `shape` ("C,L", "C,H,W"): the shape of one example of `data` (see load_data).
    `cv`: how each member is validated ("holdout", "kfold", a number of folds, "auto"; see
    dltune.study.validation): None is the study's with `from_study`, else holdout. In k-fold a
    member is its value trained K times, one per fold, stacked with the rest.
    """
    from .values import parameter_name

    started = time.perf_counter()
    progress = progress or default_progress()
    param = parameter_name(param)
    _check_options(values, value_range, from_study, base, seeds)
    opened_storage = resolve_storage(storage)
    dataset, config, metric, target = _base(
        from_study, base, data, opened_storage, target, task, data_dir, shape
    )
    plan = _plan(param, values, value_range, config, dataset.task, epochs, seeds, seed)
    opened = open_sweep_study(plan, metric, dataset, opened_storage, study_name, target)
    dataset, how = validation.resolve(
        _sweep_cv(cv, from_study, opened_storage), dataset, opened.study, opened.shuffle_seed, True
    )
    result = SweepResult(opened.study, opened_storage, plan, dataset, 0.0, 0, notes=[how])
    _run(result, opened, memory, device, estimate, progress)
    result.seconds = time.perf_counter() - started
    return result


def _sweep_cv(cv: str | int | None, from_study: str | None, storage: Storage) -> str | int:
    """The sweep's validation: as asked; else its source study's; else holdout."""
    if cv is not None:
        return cv
    if from_study is not None:
        stored = schema.read_validation(storage.load_study(from_study))
        if stored is not None and stored["kind"] == "kfold":
            return int(stored["k"])
    return "holdout"


def _check_options(
    values: Any, value_range: str | None, from_study: str | None, base: Any, seeds: int
) -> None:
    if values is not None and value_range is not None:
        raise DLTuneError(
            f"give {errors.param('values')} or {errors.param('value_range')}, not both"
        )
    if from_study is not None and base is not None:
        raise DLTuneError(
            f"give {errors.param('from_study')} or {errors.param('base')}, not both: each "
            "names the base"
        )
    if seeds < 1:
        raise DLTuneError(f"{errors.param('seeds')} must be at least 1; got {seeds}")


# ---- the base configuration and the plan --------------------------------------------------


def _base(
    from_study: str | None,
    base: SearchSpace | str | Path | dict[str, Any] | None,
    data: Dataset | str | Path | None,
    storage: Storage,
    target: str | None,
    task: str | None,
    data_dir: str | Path | None,
    shape: str | tuple[int, ...] | None = None,
) -> tuple[Dataset, Config, str, str | None]:
    """The data, the base configuration, the metric and the target column."""
    from ..study.resolve import resolve_space

    if from_study is not None:
        return _base_from_study(from_study, data, storage, target, task, data_dir, shape)
    dataset = _load(data if data is not None else "digits", target, task, data_dir, shape)
    space, _notes = resolve_space(base).for_task(dataset.task)
    space, _notes = space.for_input(dataset.input_shape)
    config = space.config_from_params(space.baseline_params())
    return dataset, config, space.metric or DEFAULT_METRIC[dataset.task], target


def _base_from_study(
    from_study: str,
    data: Dataset | str | Path | None,
    storage: Storage,
    target: str | None,
    task: str | None,
    data_dir: str | Path | None,
    shape: str | tuple[int, ...] | None = None,
) -> tuple[Dataset, Config, str, str | None]:
    """The best trial of study `from_study` as the base; its data (and their shape) unless
    `data` is given."""
    from ..export.retrain import study_data

    source = storage.load_study(from_study)
    best = best_trial(source)
    where = errors.param("from_study", from_study)
    if best is None:
        raise StudyError(
            f"{where}: the study has no complete trial yet, so no best configuration to sweep "
            f"around; run it longer, or use {errors.param('base', shown='SPACE')}"
        )
    recorded = schema.read_model_source(source)
    if recorded is not None:  # nothing of it is imported: a sweep builds dltune's own networks
        raise StudyError(
            f"{where}: its network is a build(hp) of Python code "
            f"({recorded.get('path') or recorded.get('module')}, its function "
            f"{recorded.get('attr')!r}), and a sweep trains dltune's own networks only, so its "
            "best trial cannot be the base (the sweep would train another network); to see "
            "what a training knob does to your build, tune the build with that knob's values "
            "in the space"
        )
    # The study's data unless other data is given: the sweep then asks the same question
    # of another dataset, which is allowed (the base is only a starting point).
    if data is None:
        dataset, stored_target = study_data(source, data_dir=data_dir)
        dataset = _load(dataset, target, task, data_dir, shape)  # --shape reshapes them too
    else:
        dataset, stored_target = _load(data, target, task, data_dir, shape), target
    config = Config.from_dict(best.config)
    metric = study_meta(source).get("metric") or DEFAULT_METRIC[dataset.task]
    if not loss_applies(config.loss, dataset.task):
        raise StudyError(
            f"{where}: its best loss {config.loss!r} does not apply to a {dataset.task} target "
            f"({dataset.describe()})"
        )
    return dataset, config, metric, None if stored_target is None else str(stored_target)


def _load(
    data: Dataset | str | Path,
    target: str | None,
    task: str | None,
    data_dir: str | Path | None,
    shape: str | tuple[int, ...] | None = None,
) -> Dataset:
    from ..data import Dataset, load_data, with_shape

    if isinstance(data, Dataset):
        return with_shape(data, shape)
    return load_data(data, target=target, task=task, data_dir=data_dir, shape=shape)


def _plan(
    param: str,
    values: str | list[Any] | tuple[Any, ...] | None,
    value_range: str | None,
    base: Config,
    task: str,
    epochs: int | None,
    seeds: int,
    seed: int,
) -> SweepPlan:
    if epochs is not None and epochs < 1:
        raise DLTuneError(f"{errors.param('epochs')} must be at least 1; got {epochs}")
    most = epochs or base.epochs
    if param in CONVOLUTIONAL and param != "conv_layers" and not base.convolutional:
        raise DLTuneError(
            f"a sweep of {param} varies the convolutional blocks, but the base network has "
            f"none ({base.short()}): the data are flat rows, or the base has conv_layers 0. "
            f"Give the data a shape ({errors.param('shape', shown='C,L')} or "
            f"{errors.param('shape', shown='C,H,W')}) or a base with conv_layers of 1 or more."
        )
    if param in ("units", "dropout") and base.layers == 0:
        raise DLTuneError(
            f"a sweep of {param} varies the hidden layers, but the base network has none "
            f"({base.short()}: layers 0, the linear model). Sweep layers instead, or start "
            f"from a base with layers of 1 or more."
        )
    if values is not None:
        text = values if isinstance(values, str) else ",".join(str(v) for v in values)
        chosen = parse_values(param, text)
    elif value_range is not None:
        chosen = parse_range(param, value_range)
    else:
        chosen = default_values(param, task, most)
    if param == "loss":
        wrong = [v for v in chosen if not loss_applies(v, task)]
        if wrong:
            raise DLTuneError(
                f"{errors.param('values')}: loss {', '.join(wrong)} does not apply to a {task} "
                "target; losses "
                f"that apply: {', '.join(default_values('loss', task, 1))}"
            )
    if param == "epochs":
        if epochs is not None and max(chosen) > epochs:
            raise DLTuneError(
                f"{errors.param('values')}: epochs {max(chosen)} is above "
                f"{errors.param('epochs')} {epochs}; drop {errors.param('epochs')} "
                "(an epochs sweep trains up to its largest value)"
            )
        most = max(chosen)
        chosen = tuple(sorted(chosen))
    return SweepPlan(param, tuple(chosen), base.replace(epochs=most), seeds, seed)


# ---- training -------------------------------------------------------------------------------


def _run(
    result: SweepResult,
    opened: OpenedStudy,
    memory: str | int | None,
    device: str,
    estimate: bool,
    progress: ProgressListener,
) -> None:
    """Train the members still missing as one population, then time a sample alone."""
    from ..devices import resolve_device
    from ..engine.population import PopulationTrainer

    study, plan = result.study, result.plan
    fail_stale_trials(study)
    missing, _ = missing_members(study, plan)
    enqueue_members(study, plan, missing)
    if not missing:
        result.notes.append("every member was trained before: nothing to train")
        return
    resolved = resolve_device(device)
    trainer = PopulationTrainer(
        result.data,
        metric=opened.metric,
        device=resolved,
        shuffle_seed=opened.shuffle_seed,
        memory=memory,
        track_train=True,
    )
    engine: Any = trainer
    if result.data.folds is not None:  # each member's K folds, stacked with the rest
        from ..engine.folds import FoldEngine

        engine = FoldEngine(trainer, result.data.folds.k, trainer.metric)
    loop = _loop(opened, plan, engine, len(missing), progress)
    loop.lifecycle.footprint = _footprint(trainer, result.data, resolved)
    start = StudyStart(
        study=study.study_name,
        storage=result.storage.shown,
        data=result.data.describe(),
        metric=opened.metric,
        trials=len(missing),
        timeout=None,
        existing_trials=len(study.trials) - len(missing),
        engine="population",
        schedule="none",
        notes=[
            f"sweep of {plan.param}: {len(plan.values)} values x {plan.seeds} seeds",
            *result.notes,
        ],
    )
    started = time.perf_counter()
    run_started = datetime.datetime.now()  # Optuna's datetime_start: naive local time
    result.interrupted = run_study(loop, start, result.storage, progress)
    seconds = time.perf_counter() - started
    result.trained = loop.budget.started
    if result.interrupted:
        return
    timing: dict[str, Any] = {
        "seconds": seconds,  # wall time of the loop: training, evaluating, storing
        "train_seconds": sum(trainer.bucket_seconds.values()),  # training and evaluating
        "members": len(missing),
        "earlier": len(plan.members()) - len(missing),  # finished by an interrupted run
        "member_epochs": trainer.epochs_trained,
        "overhead_seconds": loop.overhead_seconds,
        "buckets": len(trainer.bucket_seconds),
        "param": plan.param,
    }
    if estimate:
        _estimate(result, opened, timing, run_started, resolved)
    result.timing = timing
    stored = dict(schema.read_sweep(study) or {})
    stored["timing"] = timing
    schema.write_sweep(study, stored)


def _loop(
    opened: OpenedStudy,
    plan: SweepPlan,
    trainer: Any,
    members: int,
    progress: ProgressListener,
) -> StudyLoop:
    """The study loop over every missing member at once, with no scheduler: each trains all
    its epochs."""
    from ..schedule import make_scheduler

    scheduler = make_scheduler(
        "none",
        min_epochs=plan.epochs,
        max_epochs=plan.epochs,
        reduction=3,
        direction=directions(opened.study)[0],
    )
    lifecycle = TrialLifecycle(opened.study, opened.space, opened.base_seed, progress)
    return StudyLoop(
        lifecycle, trainer, scheduler, Budget(members, None), patience=None, slots=members
    )


def _footprint(trainer: Any, dataset: Dataset, device: Any) -> Callable[[Config], dict[str, float]]:
    """Each member's network size and latencies on the sweep's device (nets.footprint),
    measured before it trains, so that the sweep shows what a value costs beside its metric."""
    from ..nets.footprint import footprint_of

    n_features = math.prod(dataset.input_shape)
    n_outputs = trainer.tensors.n_outputs
    return lambda config: footprint_of(
        trainer.network, config, n_outputs, n_features, latency_on=device
    )


def _estimate(
    result: SweepResult,
    opened: OpenedStudy,
    timing: dict[str, Any],
    run_started: datetime.datetime,
    device: str,
) -> None:
    """Time a sample of this run's members trained one at a time (timing["one_at_a_time"])."""
    trained, usable = _trained_members(result.study, result.plan, since=run_started)
    try:
        timing["one_at_a_time"] = one_at_a_time(
            result.plan,
            result.data,
            trained,
            usable=usable,
            metric=opened.metric,
            shuffle_seed=opened.shuffle_seed,
            device=device,
        )
    except KeyboardInterrupt:
        result.notes.append("the one-at-a-time estimate was interrupted: not stored")


def _trained_members(
    study: optuna.Study, plan: SweepPlan, since: datetime.datetime
) -> tuple[list[TrainedMember], list[int]]:
    """Every member finished in this run (started `since`), charged its finished epochs; the
    values none of whose members diverged (the ones worth timing)."""
    members, diverged = [], set()
    for trial in read_trials(study):
        if trial.sweep_member is None or trial.state not in FINISHED_STATES:
            continue
        if trial.started is None or trial.started < since:
            continue
        value_index = trial.sweep_member[0]
        epochs = len(trial.train_loss)
        if trial.state == "diverged":
            diverged.add(value_index)
            epochs -= 1
        members.append(TrainedMember(value_index, max(0, epochs)))
    usable = [i for i in range(len(plan.values)) if i not in diverged]
    return members, usable
