"""A run executed, process by process. The main process (the caller's) resolves the run into its
plan (resolve.py) and executes it; each worker process receives the plan and executes its part
of it. Both go one path (`_execute`); their role (roles.py) holds what differs.

The loop is Optuna's ask/tell, so a custom loop and this one share one path. Everything a later
run needs (the space, the data's fingerprint, seeds, each trial's configuration and learning
curve, the test result) is written to storage; nothing lives only in this process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import DLTuneError
from ..storage import best_record, fail_stale_trials, resolve_storage
from ..storage.checkpoints import open_checkpoints
from ..storage.presence import presence
from . import factories, resolve, validation
from .checkpointing import Checkpointer, checkpoint_note
from .front import pareto_front
from .opening import open_study
from .result import TuneResult
from .roles import Ended, MainRole, Role, WorkerRole, kept_models
from .run import run_study
from .start import StudyStart
from .stopping import StopRequest, on_sigterm
from .workers import WorkerSummary, pack_state

if TYPE_CHECKING:
    from ..data import Dataset
    from ..schedule import Scheduler
    from ..space import SearchSpace
    from ..storage import Storage
    from ..storage.checkpoints import CheckpointStore
    from ..storage.presence import Presence
    from .filling import ShapeFiller
    from .loop import StudyLoop
    from .opening import OpenedStudy
    from .plan import Plan
    from .progress import ProgressListener
    from .settings import TuneSettings


def run_main(settings: TuneSettings, progress: ProgressListener) -> TuneResult:
    """The caller's process: the run resolved into its plan, then executed, with the other
    workers it starts; `settings` as validated."""
    began, started = time.time(), time.perf_counter()  # the deadline's clock; the duration's
    storage = resolve_storage(settings.storage)
    with presence(storage.url) as held:  # its turn taken before any trial (presence.py)
        role = MainRole(run_worker)
        store, store_note = open_checkpoints(settings.checkpoints, storage)
        space, dataset = resolve.resolve_space(settings.space), resolve.resolve_data(settings)
        arrangement = resolve.arrange(settings, storage, space, dataset)
        parallel = arrangement.parallel
        opened, dataset = _open(settings, space, dataset, storage, role, parallel, store, held)
        opened.notes[:0] = [*arrangement.notes, store_note]
        plan = resolve.plan_run(settings, storage, opened, dataset, arrangement, began)
        return _execute(plan, role, opened, dataset, storage, store, progress, started)


def run_worker(
    plan: Plan, index: int, progress: ProgressListener, stop: StopRequest
) -> WorkerSummary:
    """The body of worker process `index` (workers.py): its part of `plan`, its progress
    forwarded to the parent, stopped by `stop` (a SIGTERM, its parent dying)."""
    started = time.perf_counter()
    settings = plan.settings  # every name resolved by the main process
    storage = resolve_storage(settings.storage)
    with presence(storage.url) as held:
        role = WorkerRole(index)
        store, _ = open_checkpoints(settings.checkpoints, storage)
        space, dataset = resolve.resolve_space(settings.space), resolve.resolve_data(settings)
        parallel = plan.parallel
        opened, dataset = _open(settings, space, dataset, storage, role, parallel, store, held)
        result = _execute(plan, role, opened, dataset, storage, store, progress, started, stop)
    kept = result.best_state
    return WorkerSummary(
        index,
        trials=result.trials_run,
        epochs=result.epochs_trained,
        overhead=result.overhead_seconds,
        checkpoints=result.checkpoints,
        interrupted=result.interrupted,
        best_state=(kept[0], pack_state(kept[1])) if kept is not None else None,
        kept=[(n, [pack_state(s) for s in states]) for n, states in result.kept.items()],
    )


def _open(
    settings: TuneSettings,
    space: SearchSpace,
    dataset: Dataset,
    storage: Storage,
    role: Role,
    parallel: bool,
    store: CheckpointStore | None,
    held: Presence,
) -> tuple[OpenedStudy, Dataset]:
    """The study opened (or created) for this process (`parallel`: trials run side by side),
    taken over in its turn on the storage (presence.py: the stale trials failed, every
    running one when it is alone there now, and what its role does there), its validation
    resolved (the data, with their folds in k-fold: validation.py), and what its role adds."""
    opened = open_study(
        space,
        dataset,
        storage,
        study_name=settings.study_name,
        sampler=settings.sampler,
        seed=settings.seed,
        parallel=parallel,
        worker_index=role.index,
        target=settings.target,
        model=settings.model,
        trust_source=settings.trust_source,
    )
    # Its turn, one process at a time: a run that started while this one loaded its data took
    # its turn first, is not gone, and keeps its trials
    with held.turn() as alone:
        fail_stale_trials(opened.study, everyone_gone=alone)
        resumed = role.take_over(opened.study, storage, store, alone)
    dataset, how_validated = validation.resolve(
        settings.cv, dataset, opened.study, opened.shuffle_seed, first=role.decides
    )
    role.prepare(settings, opened, dataset, how_validated)
    if resumed:
        opened.notes.append(
            f"resuming {len(resumed)} interrupted trial{'s' * (len(resumed) > 1)} "
            "from their checkpoints (or their seeds, where none was taken)"
        )
    return opened, dataset


def _execute(
    plan: Plan,
    role: Role,
    opened: OpenedStudy,
    dataset: Dataset,
    storage: Storage,
    store: CheckpointStore | None,
    progress: ProgressListener,
    started: float,
    stop: StopRequest | None = None,
) -> TuneResult:
    """This process's part of the plan, on its opened study: its loop run to its end, then
    its role's end of the run (the main process's: the choice, the delivery, the test)."""
    settings = plan.settings
    role.begin(plan, opened)
    progress = role.listener(plan, progress)
    scheduler = factories.scheduler(settings, opened)
    helpers = role.start_helpers(plan, storage, progress)
    trainer = factories.sequential_trainer(dataset, opened, plan.device_of(role.index))
    searched = plan.fit.space(opened.space)  # the part of it fitted to the budget
    tag = role.tag(plan)
    lifecycle = factories.lifecycle(settings, opened, dataset, trainer, progress, tag, searched)
    checkpointer = Checkpointer(store, lifecycle, settings.checkpoint_every) if store else None
    budget = plan.budget(role.index)
    start = _study_start(plan, opened, storage, dataset, scheduler)
    loop = factories.study_loop(plan, opened, dataset, trainer, scheduler, lifecycle, budget)
    loop.checkpointer = checkpointer
    loop.stop = stop if stop is not None else StopRequest()
    forward = helpers.forward_stop if helpers else None
    with _threads(plan.threads), on_sigterm(loop.stop, forward, escalate=role.escalates):
        interrupted = run_study(
            loop, start, storage, progress, cleanup=helpers.join if helpers else None
        )
    interrupted = interrupted or bool(helpers and helpers.interrupted)  # Ctrl-C in the join
    others = helpers.summaries if helpers else []
    ended = Ended(opened.study, dataset, trainer, lifecycle, others, interrupted)
    ended = dataclasses.replace(ended, interrupted=role.finish(plan, ended))
    _raise_failed(others)
    tallies = [checkpointer.tally() if checkpointer else (0, 0, 0.0)]
    tallies += [o.checkpoints for o in others]
    notes = [*_filling_note(loop.filler), *_checkpoint_note(checkpointer, tallies)]
    return _result(opened, storage, loop, ended, tallies, notes, started)


def _result(
    opened: OpenedStudy,
    storage: Storage,
    loop: StudyLoop,
    ended: Ended,
    tallies: list[tuple[int, int, float]],
    notes: list[str],
    started: float,
) -> TuneResult:
    """What this process of the run did, and (the main process's) every worker with it."""
    study, engine, others = opened.study, loop.engine, ended.others
    written, size, seconds = (sum(column) for column in zip(*tallies, strict=True))
    lifecycle = ended.lifecycle
    return TuneResult(
        study=study,
        storage=storage,
        space=opened.space,
        data=ended.dataset,
        best=best_record(study),
        trials_run=loop.budget.started + sum(o.trials for o in others),
        seconds=time.perf_counter() - started,
        interrupted=ended.interrupted,
        # the engine's notes (found training) and how many trials filled a population
        notes=[*opened.notes, *getattr(engine, "notes", []), *notes],
        epochs_trained=engine.epochs_trained + sum(o.epochs for o in others),
        overhead_seconds=loop.overhead_seconds + sum(o.overhead for o in others),
        checkpoints=(int(written), int(size), float(seconds)),
        best_state=lifecycle.best_state,
        front=pareto_front(study).to_json() if len(study.directions) > 1 else [],
        kept=kept_models(lifecycle.kept, others),  # the main process's: every worker's too
    )


def _study_start(
    plan: Plan,
    opened: OpenedStudy,
    storage: Storage,
    dataset: Dataset,
    scheduler: Scheduler,
) -> StudyStart:
    settings = plan.settings
    return StudyStart(
        study=opened.study.study_name,
        storage=storage.shown,
        data=dataset.describe(),
        metric=opened.metric,
        trials=plan.trials,  # the run's, all workers together
        timeout=settings.timeout,
        existing_trials=len(opened.study.trials),
        engine=plan.engine,
        schedule=scheduler.rungs.describe() if settings.schedule != "none" else "none",
        notes=list(opened.notes),
    )


@contextlib.contextmanager
def _threads(threads: int | None) -> Iterator[None]:
    """Torch's threads while this process trains (beside other workers: as arranged)."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _checkpoint_note(
    checkpointer: Checkpointer | None, tallies: list[tuple[int, int, float]]
) -> list[str]:
    note = checkpoint_note(checkpointer.store.location, tallies) if checkpointer else None
    return [note] if note else []


def _filling_note(filler: ShapeFiller | None) -> list[str]:
    note = filler.note() if filler is not None else None
    return [note] if note else []


def _raise_failed(others: list[WorkerSummary]) -> None:
    failed = [o for o in others if o.error is not None]
    if failed:
        raise DLTuneError(f"worker {failed[0].worker} failed: {failed[0].error}")
