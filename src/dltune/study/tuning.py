"""tune(): a study on the dense network's hyperparameters, from the first trial to the test.

The loop is Optuna's ask/tell, so a custom loop and this one share one path. Everything a later
run needs (the space, the data's fingerprint, seeds, each trial's configuration and learning
curve, the test result) is written to storage; nothing lives only in this process.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..devices import DEFAULT_DEVICE
from ..errors import DLTuneError, param
from ..storage import (
    DEFAULT_STORAGE,
    best_record,
    best_trial,
    directions,
    fail_stale_trials,
    maximizes,
    resolve_storage,
)
from ..storage import schema as stored
from ..storage.checkpoints import CheckpointStore, open_checkpoints
from ..storage.presence import Presence, presence
from ..storage.urls import masked_repr
from . import choice, ensemble_choice, validation
from .checkpointing import Checkpointer, checkpoint_note, enqueue_interrupted, sweep_strays
from .filling import ShapeFiller, filler_for
from .first_trial import baseline_width
from .front import pareto_front
from .held_out import evaluate_test
from .lifecycle import TrialLifecycle
from .loop import Budget, StudyLoop
from .opening import OpenedStudy, open_study
from .predictions import KEPT_TRIALS, KeptModels, ValidationRows
from .progress import ProgressListener
from .run import StudyStart, run_study
from .settings import DEFAULT_CHECKPOINT_EVERY, DEFAULT_SLOTS, DEFAULT_TRIALS, TuneSettings
from .stopping import StopRequest, on_sigterm
from .workers import GuardedListener, LocalWorkers, WorkerSummary, pack_state, share, unpack_state

if TYPE_CHECKING:
    import optuna

    from ..data import Dataset
    from ..engine import Engine, SequentialTrainer
    from ..engine.population import PopulationTrainer
    from ..schedule import Scheduler
    from ..space import SearchSpace
    from ..storage import Storage
    from ..usermodel.source import ModelSource


@dataclass
class TuneResult:
    """What `tune` returns: the study (still in storage) and its best trial as plain data."""

    study: optuna.Study
    storage: Storage
    space: SearchSpace
    data: Dataset
    best: dict[str, Any] | None
    trials_run: int
    seconds: float
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    epochs_trained: float = 0.0  # member-epochs trained in this call
    overhead_seconds: float = 0.0  # asking, storing and scheduling, not training
    # checkpoints written, their bytes, seconds taking them (every process of this call)
    checkpoints: tuple[int, int, float] = (0, 0, 0.0)
    # The weights of the best trial this process trained (its number, its state dict): a
    # worker hands them to the main process for the one test.
    best_state: tuple[int, dict[str, Any]] | None = field(default=None, repr=False)
    # A study of several objectives: its Pareto front, the most accurate first (front.py's
    # Front.to_json: trial, values by objective, params); [] for a single objective.
    front: list[dict[str, Any]] = field(default_factory=list)
    # The best trials' weights this process trained (trial -> one state per fold member),
    # for the delivered ensemble: a worker hands them to the main process.
    kept: dict[int, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    @property
    def best_config(self) -> Config | None:
        return Config.from_dict(self.best["params"]) if self.best else None

    def __repr__(self) -> str:  # a notebook shows it: no password of a storage URL
        return masked_repr(self)


def tune(
    space_or_build: SearchSpace | str | Path | dict[str, Any] | Callable[..., Any] | None = None,
    /,
    data: Dataset | str | Path = "digits",
    *,
    space: SearchSpace | str | Path | dict[str, Any] | None = None,
    model: str | Callable[..., Any] | None = None,
    storage: str | Storage | optuna.storages.BaseStorage = DEFAULT_STORAGE,
    study_name: str | None = None,
    trials: int | None = None,
    timeout: float | None = None,
    seed: int | None = None,
    sampler: str = "tpe",
    schedule: str = "asha",
    epoch_budget: float | None = None,
    cost_aware: bool = False,
    baseline: bool = True,
    engine: str = "auto",
    population: int = DEFAULT_SLOTS,
    workers: int | str = "auto",
    memory: str | int | None = None,
    device: str = DEFAULT_DEVICE,
    target: str | None = None,
    task: str | None = None,
    data_dir: str | Path | None = None,
    ray: str | None = None,
    progress: ProgressListener | None = None,
    shape: str | tuple[int, ...] | None = None,
    choose: str = choice.DEFAULT_CHOICE,
    checkpoints: str | None = None,
    checkpoint_every: float = DEFAULT_CHECKPOINT_EVERY,
    cv: str | int = "auto",
    ensemble: bool = True,
    trust_source: bool = False,
) -> TuneResult:
    """Tune a network's hyperparameters on `data`; the study lives in `storage`.

    The first argument is the search space (a SearchSpace, a YAML file, a dict; default: the
    built-in one) or your own build function: ``tune(build, data=..., space=...)``, where
    `build(hp)` returns a torch.nn.Module (Keras Tuner's hp.Int, hp.Float, hp.Choice,
    hp.Boolean, hp.Fixed; see dltune.usermodel). `model` names it otherwise: the function,
    "path/to/file.py:build" or "package.module:build". With a build, the space gives only the
    training knobs (optimizer, learning_rate, weight_decay, batch_size, epochs, loss,
    patience, min_epochs); its network keys are ignored (a note says so).

    `trials` more trials are started in this call (like Optuna's n_trials), until `timeout`
    seconds have passed or `epoch_budget` member-epochs have been trained: then the running
    trials end at their next checkpoint (complete with their best epoch so far). A study of the
    same name in the storage is continued.

    `schedule`: "asha" (asynchronous successive halving over epochs, with promotion: rungs at
    the space's min_epochs times powers of its reduction, up to its epochs), "hyperband" (the
    same in Hyperband's brackets) or "none" (every trial trains all its epochs). `cost_aware`:
    among the trials that earned a promotion, the cheapest per epoch goes first.

    `baseline`: a new study's first trial is the textbook configuration (one Dense(128, relu)
    layer, dropout 0.2, Adam at 1e-3, batch size 32), projected into the space, so that every
    study has a known-good start and a baseline to beat.

    `engine` trains trials one at a time ("sequential") or up to `population` at once, stacked,
    within a `memory` budget ("population"). `workers` > 1 runs that many processes on the
    study (this one and workers - 1 children, see workers.py), sharing the trial and epoch
    budgets. "auto" (both defaults) chooses from this machine and the job (arrangement.py):
    on a CPU one single-threaded worker per core, unless the job is too small for another
    process's start-up to pay; on GPUs one process per device, each with a population; a
    note says what was chosen and why. `ray` ("auto" or HOST:PORT): trials are trained by
    Ray actors on that cluster, each a population of `population` trials, one per node or per
    GPU (one per CPU, a trial at a time, with engine "sequential"), fed from this process's
    study (distributed/). At the end the best trial is evaluated once on the test split.

    `shape` ("C,L", "C,H,W" or a tuple): the shape of one example, for data that do not carry
    it (a table) or to reshape them (see load_data); a continued study keeps the shape it was
    run on.

    `choose`: how the best trial is chosen before its test (choice.py): "top3x2", the top 3
    by validation retrained with 2 other seeds, the best mean chosen, in a quarter of the
    timeout or epoch budget held back for it; "max", the best single run; "auto" (default):
    top3x2 when the validation split has fewer than 1000 examples, else max.

    `checkpoints`: where each unfinished trial's latest checkpoint is kept (a folder,
    "s3://bucket", "gs://bucket", or "off"; default: beside the SQLite or journal file, none
    for a database server unless given). A trial is checkpointed at every rung and at least
    every `checkpoint_every` seconds; after a crash, kill -9, SIGTERM or Ctrl-C the same call
    resumes each interrupted trial from its checkpoint. SIGTERM stops at the next checkpoint.

    `cv`: how trials are validated (validation.py): "auto" (default: K-fold cross-validation
    where fewer than 5,000 examples lie outside the test split, else the validation split),
    "holdout", "kfold" (5 folds) or a number of folds. In k-fold a trial is its configuration
    trained K times, each fold member on the other folds, stacked; its value is their mean.

    `ensemble`: deliver the best configurations combined by greedy ensemble selection on their
    out-of-fold (or validation) predictions (ensemble_choice.py), bagged over the folds in
    k-fold; False: the best trial alone.

    `trust_source`: a continued study of a user's build(hp), given no build, imports the
    build its record names (the file's sha256 checked first) only with `trust_source=True`:
    a stored study may come from anyone, and its build is code. A build given here is yours,
    and needs no such word.
    """
    # long: the public signature, one parameter per line, and its documentation
    space, source = _space_and_model(space_or_build, space, model)
    settings = TuneSettings(
        space, data, storage, study_name, trials, timeout, seed, sampler, schedule,
        epoch_budget, cost_aware, baseline, engine, population, workers, memory, device,
        target, task, data_dir, ray, shape=shape, model=source, choose=choose,
        checkpoints=checkpoints, checkpoint_every=checkpoint_every, cv=cv, ensemble=ensemble,
        trust_source=trust_source,
    )  # fmt: skip
    return run_tune(settings.validate(), progress or ProgressListener())


def _space_and_model(first: Any, space: Any, model: Any) -> tuple[Any, ModelSource | None]:
    """tune()'s first argument is a space or a build function; the build, resolved to where it
    came from (dltune.usermodel.source), before anything is opened."""
    from ..space import SearchSpace

    if callable(first) and not isinstance(first, SearchSpace):
        if model is not None:
            raise DLTuneError(
                f"a build function was given first and as {param('model')} too; give it once"
            )
        first, model = None, first
    if first is not None and space is not None:
        raise DLTuneError(
            f"a space was given first and as {param('space')} too; give it once (the first "
            "argument may be a build function instead)"
        )
    if model is None:
        return first if space is None else space, None
    from ..usermodel.source import resolve_model

    return first if space is None else space, resolve_model(model)


def run_tune(
    settings: TuneSettings,
    progress: ProgressListener,
    worker: int = 0,
    stop: StopRequest | None = None,
) -> TuneResult:
    """One process's part of a study: worker 0 is the caller's (it enqueues the baseline and
    the continuations of interrupted trials, starts the other workers and, at the end, tests
    the best trial); 1.. are children. `stop`: a request to stop at the next checkpoint
    (SIGTERM is one; a child's parent dying is another)."""
    started = time.perf_counter()
    storage = resolve_storage(settings.storage)
    with presence(storage.url) as held:  # its turn taken before any trial (presence.py)
        return _run_here(settings, progress, worker, stop, storage, started, held)


def _run_here(
    settings: TuneSettings,
    progress: ProgressListener,
    worker: int,
    stop: StopRequest | None,
    storage: Storage,
    started: float,
    held: Presence,
) -> TuneResult:
    """run_tune's body, with the storage open; `held`: this process on it (presence.py)."""
    store, store_note = open_checkpoints(settings.checkpoints, storage)
    space, dataset = resolve_space(settings.space), _resolve_data(settings)
    arranged: list[str] = []
    if worker == 0:  # "auto" resolved once; the children receive the numbers
        if settings.trials is None and not settings.timeout:  # shared, not one per worker
            settings = settings.replace(trials=DEFAULT_TRIALS)
        settings, arranged = _arranged(settings, storage, space, dataset)
    tagged = worker if settings.several or worker > 0 else None
    if settings.several and worker == 0:
        progress = GuardedListener(progress)  # the relay of the other workers calls it too
    opened, dataset = _open(settings, space, dataset, storage, worker, store, held)
    study = opened.study
    opened.notes[:0] = [*arranged, store_note] if worker == 0 else arranged
    scheduler = _scheduler(settings, opened)
    helpers = (
        _start_helpers(settings, opened, dataset, storage, started, progress)
        if worker == 0
        else None
    )
    trainer = _sequential_trainer(dataset, opened, settings.device)
    lifecycle = _lifecycle(settings, opened, dataset, trainer, progress, tagged)
    checkpointer = Checkpointer(store, lifecycle, settings.checkpoint_every) if store else None
    stop = stop if stop is not None else StopRequest()
    rule = _choice_rule(settings, dataset, opened.notes)
    budget, reserved = _reserved(settings, rule, opened, _budget(settings, worker, started))
    start = _study_start(settings, opened, storage, dataset, budget, scheduler)
    loop = _study_loop(settings, opened, dataset, trainer, scheduler, lifecycle, budget)
    loop.checkpointer, loop.stop = checkpointer, stop
    engine = loop.engine
    forward = helpers.forward_stop if helpers else None
    with _threads(settings.threads), on_sigterm(stop, forward, escalate=worker == 0):
        interrupted = run_study(
            loop, start, storage, progress, cleanup=helpers.join if helpers else None
        )
    interrupted = interrupted or bool(helpers and helpers.interrupted)  # Ctrl-C in the join
    others = helpers.summaries if helpers else []
    if worker == 0:
        interrupted = _deliver(settings, study, dataset, trainer, rule, reserved, lifecycle,
                               others, interrupted)  # fmt: skip
    _raise_failed(others)
    tallies = [checkpointer.tally() if checkpointer else (0, 0, 0.0)]
    tallies += [o.checkpoints for o in others]
    written, size, seconds = (sum(column) for column in zip(*tallies, strict=True))
    return TuneResult(
        study=study,
        storage=storage,
        space=opened.space,
        data=dataset,
        best=best_record(study),
        trials_run=budget.started + sum(o.trials for o in others),
        seconds=time.perf_counter() - started,
        interrupted=interrupted,
        # the engine's notes (found training) and how many trials filled a population
        notes=[
            *opened.notes,
            *getattr(engine, "notes", []),
            *_filling_note(loop.filler),
            *_checkpoint_note(checkpointer, tallies),
        ],
        epochs_trained=engine.epochs_trained + sum(o.epochs for o in others),
        overhead_seconds=loop.overhead_seconds + sum(o.overhead for o in others),
        checkpoints=(int(written), int(size), float(seconds)),
        best_state=lifecycle.best_state,
        front=pareto_front(study).to_json() if len(study.directions) > 1 else [],
        kept=lifecycle.kept.states if lifecycle.kept is not None else {},
    )


def _lifecycle(
    settings: TuneSettings,
    opened: OpenedStudy,
    dataset: Dataset,
    trainer: SequentialTrainer,
    progress: ProgressListener,
    worker: int | None,
) -> TrialLifecycle:
    """The trials' life in storage, counting each network's size, keeping the predictions
    and the best weights the delivered model is made of."""
    asked = _trial_space(opened, dataset, trainer)
    lifecycle = TrialLifecycle(opened.study, asked, opened.base_seed, progress, worker=worker)
    lifecycle.footprint = _footprint(trainer, dataset, opened.space.costs)
    lifecycle.rows = ValidationRows(dataset)
    lifecycle.kept = KeptModels(maximizes(opened.study), KEPT_TRIALS if settings.ensemble else 1)
    return lifecycle


def _deliver(
    settings: TuneSettings,
    study: optuna.Study,
    dataset: Dataset,
    trainer: SequentialTrainer,
    rule: choice.ChoiceRule,
    reserved: choice.Reserve,
    lifecycle: TrialLifecycle,
    others: list[WorkerSummary],
    interrupted: bool,
) -> bool:
    """The main process's end of a study, once every worker has ended: the best trial chosen,
    the delivered model (the ensemble, or in k-fold the best trial's bag) chosen and tested
    once, the best trial tested once. Whether it was interrupted (Ctrl-C in the choice)."""
    if not interrupted:
        interrupted = not choice.choose(study, trainer, rule, reserved)
    if not interrupted:
        kept = _kept_models(lifecycle.kept, others)
        ensemble_choice.deliver(study, dataset, trainer, kept, reserved, settings.ensemble)
    if dataset.folds is None:
        _test_once(study, trainer, _kept(lifecycle.best_state, others), interrupted)
    return interrupted


def _open(
    settings: TuneSettings,
    space: SearchSpace,
    dataset: Dataset,
    storage: Storage,
    worker: int,
    store: CheckpointStore | None,
    held: Presence,
) -> tuple[OpenedStudy, Dataset]:
    """The study opened (or created) for this process, its taking over (`_take_over`), its
    validation resolved (the data, with their folds in k-fold: validation.py), and (by worker
    0) a new study's baseline enqueued."""
    opened = open_study(
        space,
        dataset,
        storage,
        study_name=settings.study_name,
        sampler=settings.sampler,
        seed=settings.seed,
        parallel=settings.parallel or worker > 0,
        worker_index=worker,
        target=settings.target,
        model=settings.model,
        trust_source=settings.trust_source,
    )
    resumed = _take_over(opened.study, storage, worker, store, held)
    dataset, how_validated = validation.resolve(
        settings.cv, dataset, opened.study, opened.shuffle_seed, first=worker == 0
    )
    if worker == 0:
        opened.notes.insert(0, how_validated)
        _enqueue_baseline(settings, opened, dataset)
    if resumed:
        opened.notes.append(
            f"resuming {len(resumed)} interrupted trial{'s' * (len(resumed) > 1)} "
            "from their checkpoints (or their seeds, where none was taken)"
        )
    return opened, dataset


def _take_over(
    study: optuna.Study,
    storage: Storage,
    worker: int,
    store: CheckpointStore | None,
    held: Presence,
) -> list[int]:
    """In this process's turn on the storage, before it asks any trial (presence.py): the
    stale trials failed (every running one when it is alone there now: a run that started
    while this one loaded its data has taken its turn, and so keeps its trials), and (by
    worker 0, where checkpoints are kept) stray checkpoint files swept away (alone: all in
    the storage's own folder, its studies' in a shared one: sweep_strays) and the
    continuation of every trial a previous run left interrupted enqueued, once (turns are one
    at a time); the numbers of those trials."""
    with held.turn() as alone:
        fail_stale_trials(study, everyone_gone=alone)
        if worker != 0 or store is None:
            return []
        if alone:
            sweep_strays(store, storage)
        return enqueue_interrupted(study)


def _study_loop(
    settings: TuneSettings,
    opened: OpenedStudy,
    dataset: Dataset,
    trainer: SequentialTrainer,
    scheduler: Scheduler,
    lifecycle: TrialLifecycle,
    budget: Budget,
) -> StudyLoop:
    """The loop over this process's engine, asking in cohorts where the engine stacks."""
    engine, slots = _engine(settings, opened, dataset, trainer, scheduler)  # Ray adds a note
    filler = filler_for(
        engine, slots, user_model=opened.model is not None, sampler=settings.sampler
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


def run_worker(
    settings: TuneSettings, index: int, progress: ProgressListener, stop: StopRequest
) -> WorkerSummary:
    """The body of worker process `index` (workers.py): its share of the budgets, no
    baseline (worker 0 enqueued it), its device; its progress forwarded to the parent."""
    count = int(settings.workers)
    mine = settings.replace(
        trials=share(settings.trials, count, index),
        epoch_budget=share(settings.epoch_budget, count, index),
        baseline=False,
        device=settings.devices[index % len(settings.devices)]
        if settings.devices
        else settings.device,
    )
    result = run_tune(mine, progress, worker=index, stop=stop)
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


def _arranged(
    settings: TuneSettings, storage: Storage, space: SearchSpace, dataset: Dataset
) -> tuple[TuneSettings, list[str]]:
    """`settings` with workers, engine, threads and devices resolved (arrangement.py), and the
    note that says what was chosen."""
    from . import arrangement

    model_problem = None
    if settings.model is not None:
        from ..usermodel.source import importable

        model_problem = importable(settings.model)
    facts = arrangement.Facts(
        cpus=arrangement.cpu_count(),
        cuda_devices=arrangement.cuda_count(settings.device.lower()),
        device=settings.device.lower(),
        trials=settings.trials,
        timeout=settings.timeout,
        epoch_budget=settings.epoch_budget,
        examples=len(dataset.x_train),
        features=dataset.n_features,
        max_epochs=space.epochs,
        storage_url=storage.url is not None,
        model_problem=model_problem,
        ray=settings.ray is not None,
        main_problem=arrangement.main_problem() if settings.workers == "auto" else None,
    )
    chosen = arrangement.arrange(settings.workers, settings.engine, facts)
    resolved = settings.replace(
        workers=chosen.workers,
        engine=chosen.engine,
        threads=chosen.threads if chosen.workers > 1 or settings.threads else settings.threads,
        devices=chosen.devices,
        device=chosen.device_of(0) if chosen.devices != ("cpu",) else settings.device,
    )
    return resolved, chosen.notes


def _kept_models(
    mine: KeptModels | None, others: list[WorkerSummary]
) -> dict[int, list[dict[str, Any]]]:
    """The best trials' weights every process of this run kept (the workers' unpacked)."""
    kept = dict(mine.states) if mine is not None else {}
    for other in others:
        for number, packed in other.kept:
            kept.setdefault(number, [unpack_state(p) for p in packed])
    return kept


def _reserved(
    settings: TuneSettings, rule: choice.ChoiceRule, opened: OpenedStudy, budget: Budget
) -> tuple[Budget, choice.Reserve]:
    """The search's budget and the share held back for the end: re-evaluating the top trials,
    or retraining delivered members whose weights no process of this run kept: only a
    continued study's (every fresh study measured kept them all: benchmarks/RESULTS.md)."""
    continued = any(t.state.name == "COMPLETE" for t in opened.study.get_trials(deepcopy=False))
    return choice.reserve(rule, budget, settings.timeout, settings.epoch_budget, ensemble=continued)


def _choice_rule(settings: TuneSettings, dataset: Dataset, notes: list[str]) -> choice.ChoiceRule:
    """How the best trial is chosen: `choose` for the validation split's size; in k-fold the
    best mean over the folds (re-evaluating with other seeds is what the folds already do)."""
    if dataset.folds is None:
        return choice.rule_for(settings.choose, len(dataset.y_val))
    asked = choice.rule_for(settings.choose, dataset.folds.n_pool)
    if asked.reevaluates and str(settings.choose).strip().lower() != "auto":
        notes.append(
            f"choose {asked.name}: not in k-fold, whose trials are already the mean of "
            f"{dataset.folds.k} runs; the best mean is chosen"
        )
    return choice.ChoiceRule()


def _kept(
    mine: tuple[int, dict[str, Any]] | None, others: list[WorkerSummary]
) -> list[tuple[int, Any]]:
    """The best trials' weights this run holds: this process's, and each worker's (as bytes
    until one is needed)."""
    kept: list[tuple[int, Any]] = [mine] if mine is not None else []
    kept += [o.best_state for o in others if o.best_state is not None]
    return kept


# ---- the parts of a run --------------------------------------------------------------------


def resolve_space(space: SearchSpace | str | Path | dict[str, Any] | None) -> SearchSpace:
    from ..space import SearchSpace

    if space is None:
        return SearchSpace.default()
    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, dict):
        return SearchSpace.from_dict(space)
    return SearchSpace.from_file(space)


def _resolve_data(settings: TuneSettings) -> Dataset:
    from ..data import Dataset, load_data, with_shape

    if isinstance(settings.data, Dataset):
        return with_shape(settings.data, settings.shape)
    return load_data(
        settings.data,
        target=settings.target,
        task=settings.task,
        data_dir=settings.data_dir,
        shape=settings.shape,
    )


def _scheduler(settings: TuneSettings, opened: OpenedStudy) -> Scheduler:
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


def _enqueue_baseline(settings: TuneSettings, opened: OpenedStudy, dataset: Dataset) -> None:
    """A new study's first trial: the textbook configuration, for signals sized to the
    timeout (first_trial.py; not for a grid, which is its own plan)."""
    study = opened.study
    if settings.baseline and settings.sampler != "grid" and not study.trials:
        members = dataset.folds.k if dataset.folds is not None else 1
        width, note = baseline_width(opened.space, dataset, settings.timeout, members)
        if note:
            opened.notes.append(note)
        params = opened.space.baseline_params(dataset.input_shape, width=width)
        if opened.model is not None:  # and the build's own defaults
            from .user_model import default_params

            params |= default_params(opened.model.build)
        stored.enqueue_baseline(study, params)


def _start_helpers(
    settings: TuneSettings,
    opened: OpenedStudy,
    dataset: Dataset,
    storage: Storage,
    started: float,
    progress: ProgressListener,
) -> LocalWorkers | None:
    """Workers 1..n-1, started on the same study with the same, resolved settings; their
    progress relayed to `progress`."""
    if not settings.several:
        return None
    if storage.url is None:
        raise DLTuneError(
            "several workers need a storage every process can open: give its URL "
            "(e.g. sqlite:///dltune.db), not an in-memory storage"
        )
    left = None if settings.timeout is None else settings.timeout - (time.perf_counter() - started)
    helpers = LocalWorkers(
        settings.replace(
            space=opened.space,
            data=dataset,
            storage=storage.url,
            study_name=opened.study.study_name,
            timeout=left,
            model=opened.model,  # its record: each worker imports the build again
        ),
        run_worker,
        progress,
    )
    helpers.start()
    return helpers


def _sequential_trainer(dataset: Dataset, opened: OpenedStudy, device: str) -> SequentialTrainer:
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


def _trial_space(opened: OpenedStudy, dataset: Dataset, trainer: SequentialTrainer) -> Any:
    """What a trial's configuration is asked of: the space, and a user model's own
    hyperparameters by a dry build on the same trial (study/user_model.py)."""
    if opened.model is None:
        return opened.space
    from .user_model import UserModelSpace

    return UserModelSpace(opened.space, opened.model.build, dataset.input_shape, trainer.n_outputs)


def _engine(
    settings: TuneSettings,
    opened: OpenedStudy,
    dataset: Dataset,
    trainer: SequentialTrainer,
    scheduler: Scheduler,
) -> tuple[Engine[Any], int]:
    """The engine that trains this process's trials, and how many it trains at once."""
    segments = scheduler.rungs.segments
    if dataset.folds is not None and settings.ray is None:
        return _fold_engine(settings, opened, dataset, trainer, segments)
    if settings.ray is not None:
        from ..distributed.ray_engine import RayEngine

        model = opened.model.to_dict() if opened.model is not None else None
        # a population per node (per GPU), unless the sequential engine was asked for
        ray = RayEngine.start(
            settings.ray, dataset, opened.metric, opened.shuffle_seed, segments, model,
            kind="sequential" if settings.engine == "sequential" else "population",
            population=settings.population, memory=settings.memory, device=settings.device,
        )  # fmt: skip
        opened.notes.append(ray.describe(settings.ray))
        return ray, ray.slots
    if settings.engine == "population":
        # a user model stacks too (one bucket per architecture its hp give), or trains one
        # member at a time where torch.func cannot run it: the engine's notes say which
        return _population(settings, opened, dataset, trainer, segments), settings.slots
    from ..engine import SequentialEngine

    return SequentialEngine(trainer, segments), settings.slots


def _fold_engine(
    settings: TuneSettings,
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
    population = _population(settings, opened, dataset, trainer, segments)
    slots = max(1, settings.population // k) if settings.engine == "population" else 1
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


def _budget(settings: TuneSettings, worker: int, started: float) -> Budget:
    """This process's budget: its share of the trials and epochs, the deadline."""
    trials, epochs = settings.trials, settings.epoch_budget
    if worker == 0 and settings.several:
        trials = share(trials, int(settings.workers), 0)
        epochs = share(epochs, int(settings.workers), 0)
    if trials is None and not settings.timeout:
        trials = DEFAULT_TRIALS
    deadline = None if settings.timeout is None else started + settings.timeout
    return Budget(trials, deadline, epochs)


def _study_start(
    settings: TuneSettings,
    opened: OpenedStudy,
    storage: Storage,
    dataset: Dataset,
    budget: Budget,
    scheduler: Scheduler,
) -> StudyStart:
    return StudyStart(
        study=opened.study.study_name,
        storage=storage.shown,
        data=dataset.describe(),
        metric=opened.metric,
        trials=settings.trials if settings.several else budget.trials,  # the study's, all told
        timeout=settings.timeout,
        existing_trials=len(opened.study.trials),
        engine=settings.engine,
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
