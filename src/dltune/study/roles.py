"""The part a process plays in a run. Every process executes the same plan through the same code
(execute.py); its role holds the few things that differ between the main process (the caller's:
worker 0) and a worker (a child it started: workers.py):

- in its turn on the storage, the main process sweeps stray checkpoints and enqueues the
  continuations of interrupted trials (once: turns are one at a time); a worker does neither;
- the main process records how the study is validated, and, once the run is planned, enqueues
  a new study's baseline (the plan's first trial: budget.py);
- it starts the other workers, and relays their progress (one listener call at a time);
- a second SIGTERM stops it at once; a worker leaves that to its parent (stopping.py);
- at the end, once every worker has ended, it chooses the best trial, delivers the model and
  tests it once; a worker hands its best weights back instead (its summary).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import DLTuneError
from ..storage import best_trial
from ..storage import schema as stored
from . import choice, ensemble_choice
from .checkpointing import enqueue_interrupted, sweep_strays
from .held_out import evaluate_test
from .workers import GuardedListener, LocalWorkers, WorkerSummary, WorkerTarget, unpack_state

if TYPE_CHECKING:
    import optuna

    from ..data import Dataset
    from ..engine import SequentialTrainer
    from ..storage import Storage
    from ..storage.checkpoints import CheckpointStore
    from .lifecycle import TrialLifecycle
    from .opening import OpenedStudy
    from .plan import Plan
    from .predictions import KeptModels
    from .progress import ProgressListener
    from .settings import TuneSettings


class Role:
    """What a process of a run does beyond the path every process shares. As it is, a worker's
    part: nothing more."""

    index = 0  # the process's worker number: 0 the main process, 1.. the others
    escalates = False  # a second SIGTERM stops it at once (stopping.on_sigterm)
    decides = False  # it records what a new study decides once (how it is validated)

    def tag(self, plan: Plan) -> int | None:
        """Its trials' worker tag in storage and on the display (None: no tag)."""
        return self.index

    def listener(self, plan: Plan, progress: ProgressListener) -> ProgressListener:
        return progress

    def take_over(
        self, study: optuna.Study, storage: Storage, store: CheckpointStore | None, alone: bool
    ) -> list[int]:
        """In its turn on the storage, once the stale trials are failed: the trials whose
        continuations it enqueued."""
        return []

    def prepare(
        self, settings: TuneSettings, opened: OpenedStudy, dataset: Dataset, how_validated: str
    ) -> None:
        """The study is open, its validation resolved (`how_validated` says how)."""

    def begin(self, plan: Plan, opened: OpenedStudy) -> None:
        """The run is planned; nothing has trained yet, no other worker started."""

    def start_helpers(
        self, plan: Plan, storage: Storage, progress: ProgressListener
    ) -> LocalWorkers | None:
        """The other workers, started (None: none)."""
        return None

    def finish(self, plan: Plan, ended: Ended) -> bool:
        """The loop ended (and every other worker with it): whether the run was interrupted."""
        return ended.interrupted


class WorkerRole(Role):
    """A worker process started by the main one: `index` 1, 2, ..."""

    def __init__(self, index: int) -> None:
        self.index = index


class MainRole(Role):
    """The caller's process: `worker_body` is what each other worker process runs
    (execute.run_worker, given here so that this module need not import it back)."""

    escalates = True
    decides = True

    def __init__(self, worker_body: WorkerTarget) -> None:
        self.worker_body = worker_body

    def tag(self, plan: Plan) -> int | None:
        return 0 if plan.several else None

    def listener(self, plan: Plan, progress: ProgressListener) -> ProgressListener:
        """The caller's listener, called one call at a time beside workers (their relay, a
        thread, calls it too)."""
        return GuardedListener(progress) if plan.several else progress

    def take_over(
        self, study: optuna.Study, storage: Storage, store: CheckpointStore | None, alone: bool
    ) -> list[int]:
        """Where checkpoints are kept: stray checkpoint files swept away when it is alone on
        the storage (all in the storage's own folder, its studies' in a shared one:
        sweep_strays), and the continuation of every trial a previous run left interrupted
        enqueued, once (turns are one at a time)."""
        if store is None:
            return []
        if alone:
            sweep_strays(store, storage)
        return enqueue_interrupted(study)

    def prepare(
        self, settings: TuneSettings, opened: OpenedStudy, dataset: Dataset, how_validated: str
    ) -> None:
        """How the study is validated, said first."""
        opened.notes.insert(0, how_validated)

    def begin(self, plan: Plan, opened: OpenedStudy) -> None:
        """A new study's baseline enqueued, before any worker starts."""
        _enqueue_baseline(plan, opened)

    def start_helpers(
        self, plan: Plan, storage: Storage, progress: ProgressListener
    ) -> LocalWorkers | None:
        """Workers 1..n-1, started on the same study with the same plan; their progress
        relayed to `progress`."""
        if not plan.several:
            return None
        if storage.url is None:
            raise DLTuneError(
                "several workers need a storage every process can open: give its URL "
                "(e.g. sqlite:///dltune.db), not an in-memory storage"
            )
        helpers = LocalWorkers(plan, self.worker_body, progress)
        helpers.start()
        return helpers

    def finish(self, plan: Plan, ended: Ended) -> bool:
        """The end of the study, once every worker has ended: the best trial chosen, the
        delivered model (the ensemble, or in k-fold the best trial's bag) chosen and tested
        once, the best trial tested once. Whether it was interrupted (Ctrl-C in the choice)."""
        study, dataset, trainer = ended.study, ended.dataset, ended.trainer
        interrupted = ended.interrupted
        reserve = plan.reserve()  # one for the choice and the delivery: their spending adds up
        if not interrupted:
            interrupted = not choice.choose(study, trainer, plan.rule, reserve)
        if not interrupted:
            kept = kept_models(ended.lifecycle.kept, ended.others)
            ensemble_choice.deliver(study, dataset, trainer, kept, reserve, plan.settings.ensemble)
        if dataset.folds is None:
            mine = ended.lifecycle.best_state
            _test_once(study, trainer, _kept(mine, ended.others), interrupted)
        return interrupted


@dataclass(frozen=True)
class Ended:
    """A process's loop, ended (and every other worker with it): what its end works from."""

    study: optuna.Study
    dataset: Dataset
    trainer: SequentialTrainer
    lifecycle: TrialLifecycle
    others: list[WorkerSummary]  # the other workers' summaries (the main process's)
    interrupted: bool


def _enqueue_baseline(plan: Plan, opened: OpenedStudy) -> None:
    """A new study's first trial: the textbook configuration, for signals sized to the
    timeout, as the plan fitted it (first_trial.py; not for a grid, which is its own plan)."""
    study, settings = opened.study, plan.settings
    if settings.baseline and settings.sampler != "grid" and not study.trials:
        params = plan.fit.first.params(plan.fit.space(opened.space))
        if opened.model is not None:  # and the build's own defaults
            from .user_model import default_params

            params |= default_params(opened.model.build)
        stored.enqueue_baseline(study, params)


def kept_models(
    mine: KeptModels | None, others: list[WorkerSummary]
) -> dict[int, list[dict[str, Any]]]:
    """The best trials' weights every process of this run kept (the workers' unpacked)."""
    kept = dict(mine.states) if mine is not None else {}
    for other in others:
        for number, packed in other.kept:
            kept.setdefault(number, [unpack_state(p) for p in packed])
    return kept


def _kept(
    mine: tuple[int, dict[str, Any]] | None, others: list[WorkerSummary]
) -> list[tuple[int, Any]]:
    """The best trials' weights this run holds: this process's, and each worker's (as bytes
    until one is needed)."""
    kept: list[tuple[int, Any]] = [mine] if mine is not None else []
    kept += [o.best_state for o in others if o.best_state is not None]
    return kept


def _test_once(
    study: optuna.Study,
    trainer: SequentialTrainer,
    kept: list[tuple[int, Any]],
    interrupted: bool,
) -> None:
    """The study's best trial on the test split, by the main process alone, once every worker
    has ended (so that the test sees the best of them all, once): from the weights some worker
    kept for it, or, retrained, unless interrupted (a retrain waits for the next,
    uninterrupted run)."""
    best = best_trial(study)
    held = next((k for k in kept if best is not None and k[0] == best.number), None)
    if held is not None and isinstance(held[1], bytes):
        held = (held[0], unpack_state(held[1]))
    if held is not None or not interrupted:
        evaluate_test(study, trainer, held)
