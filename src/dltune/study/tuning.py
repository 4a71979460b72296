"""tune(): a study on a network's hyperparameters, from the first trial to the test, and what it
returns. What was asked is checked once (settings.py), resolved once into the run's plan
(resolve.py, plan.py), and executed by this process and its workers (execute.py, roles.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..devices import DEFAULT_DEVICE
from ..errors import DLTuneError, param
from ..storage.urls import DEFAULT_STORAGE
from . import choice, execute
from .notebook_progress import default_progress
from .progress import ProgressListener
from .result import TuneResult
from .settings import DEFAULT_CHECKPOINT_EVERY, DEFAULT_SLOTS, TuneSettings

if TYPE_CHECKING:
    import optuna

    from ..data import Dataset
    from ..schedule import StoppingRule
    from ..space import SearchSpace
    from ..storage import Storage
    from ..usermodel.source import ModelSource

__all__ = ["TuneResult", "tune"]


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
    sampler: str | optuna.samplers.BaseSampler = "tpe",
    schedule: str | StoppingRule = "asha",
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

    A study of the same name in the storage is continued. Trials start until `trials` have
    started in this call, `timeout` seconds have passed or `epoch_budget` member-epochs have
    been trained (with none of them given: 50 trials); then the running trials end at their
    next checkpoint, complete with their best epoch so far. At the end the best trial is
    chosen (`choose`), the delivered model made (`ensemble`) and tested once on the test split.

    Args:
        space_or_build: The search space (a SearchSpace, a YAML file, a dict; default: the
            built-in one), or your own build function: ``tune(build, data=..., space=...)``,
            where ``build(hp)`` returns a torch.nn.Module or a Keras 3 model (Keras Tuner's
            hp.Int, hp.Float, hp.Choice, hp.Boolean, hp.Fixed; see dltune.usermodel).
            Positional only.
        data: A Dataset, or a name or path load_data reads: "digits", "mnist", a folder of
            IDX files, a .csv/.parquet/.npz file.
        space: The search space, given by name (where the first argument is a build).
        model: Your build function by another name: the function, "path/to/file.py:build" or
            "package.module:build". With a build, the space gives only the training knobs
            (optimizer, learning_rate, weight_decay, batch_size, epochs, loss, patience,
            min_epochs); its network keys are ignored (a note says so).
        storage: An Optuna storage URL (sqlite:///FILE.db, postgresql://..., journal:///FILE.log),
            a dltune Storage or an Optuna storage object.
        study_name: The study's name; default: the space's and the data's.
        trials: How many more trials to start in this call (like Optuna's n_trials).
        timeout: Seconds after which no trial starts and the running ones end at their next
            checkpoint (less the share held back for `choose`, spent on it after).
        seed: Seed of the sampler and of the trials' weights (None: drawn at random; a
            continued study keeps its own).
        sampler: "tpe" (default), "random", "grid" (every combination of the space's lists,
            once) or "gp"; or any ``optuna.samplers.BaseSampler`` object (CMA-ES, QMC, your
            own), used as it is with its own seed (`seed` then seeds the trials' weights). With
            several workers each process gets a pickled copy, reseeded; an object that cannot
            be pickled is refused, and so is Optuna's GridSampler (use "grid").
        schedule: "asha" (asynchronous successive halving over epochs, with promotion: rungs
            at the space's min_epochs times powers of its reduction, up to its epochs),
            "hyperband" (the same in Hyperband's brackets), "none" (every trial trains all its
            epochs); or a stopping rule of your own (``dltune.StoppingRule``): any object
            with ``should_stop(trial, others) -> bool``, asked after every epoch of a trial but
            its last with its validation values so far (a ``dltune.TrialCurve``) and the other
            trials'; True ends the trial pruned there (min_epochs, reduction and `cost_aware`
            then play no part).
        epoch_budget: Member-epochs this call may train, all trials together.
        cost_aware: Among the trials that earned a promotion, the cheapest per epoch goes first.
        baseline: A new study's first trial is the textbook configuration (one Dense(128, relu)
            layer, dropout 0.2, Adam at 1e-3, batch size 32), projected into the space: every
            study has a known-good start and a baseline to beat.
        engine: "sequential" (trials one at a time), "population" (up to `population` trials
            at once, stacked, within `memory`) or "auto" (chosen with `workers`).
        population: Trials the population engine trains at once.
        workers: Processes on the study (this one and workers - 1 children, sharing the trial
            and epoch budgets), or "auto": on a CPU one single-threaded worker per core unless
            the job is too small for another process's start-up to pay, on GPUs one process
            per device, each with a population (a note says what was chosen and why).
        memory: Memory the population may use ("4GB", a number of bytes; None or "auto": a
            quarter of RAM, at most 8 GB; half the free memory of a GPU).
        device: "auto", "cpu", "cuda" or "cuda:N".
        target: The target column of a .csv or .parquet file (a name, or a position like -1).
        task: "classification" or "regression", to override what the target tells.
        data_dir: Where local copies of downloadable data live (else $DLTUNE_DATA_DIR).
        ray: "auto" or HOST:PORT of a Ray cluster's head: trials are trained by Ray actors
            there, each a population of `population` trials, one per node or per GPU (one per
            CPU, a trial at a time, with engine "sequential"), fed from this process's study.
        progress: A ProgressListener told of the study's start, each trial and epoch, its end
            (default: in a Jupyter notebook, a display in the cell; elsewhere none).
        shape: The shape of one example ("C,L", "C,H,W" or a tuple), for data that do not
            carry it (a table) or to reshape them; a continued study keeps the shape it was
            run on.
        choose: How the best trial is chosen before its test: "top3x2" (the top 3 by
            validation retrained with 2 other seeds, the best mean chosen, in a quarter of the
            timeout or epoch budget held back for it), "max" (the best single run), or "auto"
            (top3x2 when the validation split has fewer than 1000 examples, else max).
        checkpoints: Where each unfinished trial's latest checkpoint is kept (a folder,
            "s3://bucket", "gs://bucket" or "off"; default: beside the SQLite or journal file,
            none for a database server). After a crash, kill -9, SIGTERM or Ctrl-C the same
            call resumes each interrupted trial from its checkpoint; SIGTERM stops at the next
            checkpoint.
        checkpoint_every: A running trial is checkpointed at every rung and at least this
            often (seconds of its training; 0: after every segment).
        cv: How trials are validated: "auto" (K-fold cross-validation where fewer than 5,000
            examples lie outside the test split, else the validation split), "holdout",
            "kfold" (5 folds) or a number of folds. In k-fold a trial is its configuration
            trained K times, each fold member on the other folds, stacked; its value is their
            mean.
        ensemble: Deliver the best configurations combined by greedy ensemble selection on
            their out-of-fold (or validation) predictions, bagged over the folds in k-fold;
            False: the best trial alone.
        trust_source: A continued study of a user's build(hp), given no build, imports the
            build its record names (the file's sha256 checked first) only when True: a stored
            study may come from anyone, and its build is code. A build given here is yours.

    Returns:
        A TuneResult: the study (still in storage), its best trial as plain data, the trials
        run, the seconds and epochs spent, notes on what was chosen and why, and whether the
        run was interrupted (Ctrl-C, SIGTERM: the same call continues it).

    Raises:
        DLTuneError: A setting breaks its rule (the error names it, the value and the rule), a
            continued study does not match this call, or a worker process failed.
    """
    space, source = _space_and_model(space_or_build, space, model)
    settings = TuneSettings(
        space=space,
        data=data,
        storage=storage,
        study_name=study_name,
        trials=trials,
        timeout=timeout,
        seed=seed,
        sampler=sampler,
        schedule=schedule,
        epoch_budget=epoch_budget,
        cost_aware=cost_aware,
        baseline=baseline,
        engine=engine,
        population=population,
        workers=workers,
        memory=memory,
        device=device,
        target=target,
        task=task,
        data_dir=data_dir,
        ray=ray,
        shape=shape,
        model=source,
        choose=choose,
        checkpoints=checkpoints,
        checkpoint_every=checkpoint_every,
        cv=cv,
        ensemble=ensemble,
        trust_source=trust_source,
    )
    return execute.run_main(settings.validate(), progress or default_progress())


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
