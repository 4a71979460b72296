"""The parts one process of a run builds from its plan and its opened study: the scheduler, the
sequential trainer, the engine that trains its trials (sequential, population, fold members,
Ray actors), the trials' life in storage and the study loop over them all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..storage import directions, maximizes
from .filling import filler_for
from .lifecycle import TrialLifecycle
from .loop import Budget, StudyLoop
from .predictions import KEPT_TRIALS, KeptModels, ValidationRows

if TYPE_CHECKING:
    from ..config import Config
    from ..data import Dataset
    from ..engine import Engine, SequentialTrainer
    from ..engine.population import PopulationTrainer
    from ..schedule import Scheduler
    from ..space import SearchSpace
    from .opening import OpenedStudy
    from .plan import Plan
    from .progress import ProgressListener
    from .settings import TuneSettings


def scheduler(settings: TuneSettings, opened: OpenedStudy) -> Scheduler:
    """Successive halving (or none) over the space's epochs, for the study's objectives."""
    from ..schedule import make_scheduler

    space = opened.space
    return make_scheduler(
        settings.schedule,
        min_epochs=space.min_epochs,
        max_epochs=space.epochs,
        reduction=space.reduction,
        direction=directions(opened.study)[0],
        cost_aware=settings.cost_aware,
        static_directions=tuple(directions(opened.study)[1:]),
    )


def sequential_trainer(dataset: Dataset, opened: OpenedStudy, device: str) -> SequentialTrainer:
    """The sequential trainer: it trains (sequential engine) and evaluates the test split."""
    from ..devices import resolve_device
    from ..engine import SequentialTrainer

    network = None
    if opened.model is not None:  # a user's build(hp), rebuilt from each trial's values
        from .user_model import networks

        network = networks(opened.model, dataset)
    return SequentialTrainer(
        dataset,
        metric=opened.metric,
        device=resolve_device(device),
        shuffle_seed=opened.shuffle_seed,
        network=network,
    )


def lifecycle(
    settings: TuneSettings,
    opened: OpenedStudy,
    dataset: Dataset,
    trainer: SequentialTrainer,
    progress: ProgressListener,
    worker: int | None,
    space: SearchSpace | None = None,
) -> TrialLifecycle:
    """The trials' life in storage, counting each network's size, keeping the predictions
    and the best weights the delivered model is made of. `worker`: its trials' tag; `space`:
    the part of the study's space its trials are drawn from (the plan's: budget.py)."""
    asked = _trial_space(opened, dataset, trainer, space or opened.space)
    made = TrialLifecycle(opened.study, asked, opened.base_seed, progress, worker=worker)
    made.footprint = _footprint(trainer, dataset, opened.space.costs)
    made.rows = ValidationRows(dataset)
    made.kept = KeptModels(maximizes(opened.study), KEPT_TRIALS if settings.ensemble else 1)
    return made


def study_loop(
    plan: Plan,
    opened: OpenedStudy,
    dataset: Dataset,
    trainer: SequentialTrainer,
    scheduler: Scheduler,
    lifecycle: TrialLifecycle,
    budget: Budget,
) -> StudyLoop:
    """The loop over this process's engine, asking in cohorts where the engine stacks."""
    engine, slots = _engine(plan, opened, dataset, trainer, scheduler)  # Ray adds a note
    filler = filler_for(
        engine, slots, user_model=opened.model is not None, sampler=plan.settings.sampler
    )
    return StudyLoop(
        lifecycle,
        engine,
        scheduler,
        budget,
        patience=opened.space.patience,
        slots=slots,
        filler=filler,
        protect_baseline=dataset.folds is not None,  # first_trial.py
    )


def _footprint(
    trainer: SequentialTrainer, dataset: Dataset, costs: tuple[str, ...]
) -> Callable[[Config], dict[str, float]]:
    """A trial's network size, counted before it trains (nets.footprint), and its latencies
    on the study's device where an objective asks for one."""
    from ..nets.footprint import LATENCIES, footprint_of

    n_features = math.prod(dataset.input_shape)
    device = trainer.device if any(c in LATENCIES for c in costs) else None
    return lambda config: footprint_of(
        trainer.network, config, trainer.n_outputs, n_features, latency_on=device
    )


def _trial_space(
    opened: OpenedStudy, dataset: Dataset, trainer: SequentialTrainer, space: SearchSpace
) -> Any:
    """What a trial's configuration is asked of: `space`, and a user model's own
    hyperparameters by a dry build on the same trial (study/user_model.py)."""
    if opened.model is None:
        return space
    from .user_model import UserModelSpace

    return UserModelSpace(space, opened.model.build, dataset.input_shape, trainer.n_outputs)


def _engine(
    plan: Plan,
    opened: OpenedStudy,
    dataset: Dataset,
    trainer: SequentialTrainer,
    scheduler: Scheduler,
) -> tuple[Engine[Any], int]:
    """The engine that trains this process's trials, and how many it trains at once."""
    settings = plan.settings
    segments = scheduler.rungs.segments
    if dataset.folds is not None and settings.ray is None:
        return _fold_engine(plan, opened, dataset, trainer, segments)
    if settings.ray is not None:
        from ..distributed.ray_engine import RayEngine

        model = opened.model.to_dict() if opened.model is not None else None
        # a population per node (per GPU), unless the sequential engine was asked for; the
        # one local process (no workers beside Ray: settings.validate) asks for its device
        ray = RayEngine.start(
            settings.ray, dataset, opened.metric, opened.shuffle_seed, segments, model,
            kind="sequential" if plan.engine == "sequential" else "population",
            population=settings.population, memory=settings.memory, device=plan.device_of(0),
        )  # fmt: skip
        opened.notes.append(ray.describe(settings.ray))
        return ray, ray.slots
    if plan.engine == "population":
        # a user model stacks too (one bucket per architecture its hp give), or trains one
        # member at a time where torch.func cannot run it: the engine's notes say which
        return _population(settings, opened, dataset, trainer, segments), plan.slots
    from ..engine import SequentialEngine

    return SequentialEngine(trainer, segments), plan.slots


def _fold_engine(
    plan: Plan,
    opened: OpenedStudy,
    dataset: Dataset,
    trainer: SequentialTrainer,
    segments: int,
) -> tuple[Engine[Any], int]:
    """Cross-validated trials: each trial's K fold members stacked in one population (one
    shape: they share a bucket), a trial at a time where the arrangement chose one, else the
    population's slots shared out K members a trial."""
    from ..engine.folds import FoldEngine

    assert dataset.folds is not None
    k = dataset.folds.k
    settings = plan.settings
    population = _population(settings, opened, dataset, trainer, segments)
    slots = max(1, settings.population // k) if plan.engine == "population" else 1
    return FoldEngine(population, k, trainer.metric), slots


def _population(
    settings: TuneSettings,
    opened: OpenedStudy,
    dataset: Dataset,
    trainer: SequentialTrainer,
    segments: int,
) -> PopulationTrainer:
    """The population engine on this process's device, within its memory budget."""
    from ..engine.population import PopulationTrainer

    return PopulationTrainer(
        dataset,
        metric=opened.metric,
        device=trainer.device,
        shuffle_seed=opened.shuffle_seed,
        memory=settings.memory,
        segments=segments,
        network=trainer.network if opened.model is not None else None,
    )
