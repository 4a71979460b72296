"""What dltune keeps in storage, key by key: each attribute's name, its writer and its reader.

Nothing outside dltune.storage reads or writes an Optuna attribute: everything goes through
these functions, so this page is the whole schema. All values are JSON (no NaN: an epoch
without a value is null).

Study attributes (user attrs of the study):
    STUDY_META    the study's metadata: version, space, metric, seed, shuffle_seed, data
                  (data: name, source, task, fingerprint, description, target, and
                  DATA_INPUT_SHAPE, the shape of one example; absent in studies made before
                  shapes: flat), and CHECKPOINT_TOKEN, random, drawn when the study is made,
                  which names its checkpoint files (storage.checkpoints; absent before them)
    TEST_PREFIX   + trial number: that trial's test result, evaluated once
    SWEEP         a sweep's plan and chance level (and, after a run, its timing)
    MODEL_SOURCE  a user model's build: where it came from (dltune.usermodel.source's record:
                  kind, path, module, attr, sha256); absent for dltune's own networks
    CHOICE        how the best trial was chosen at the study's end (dltune.study.choice):
                  rule, trial, the number of complete trials it chose among (it holds only
                  while that number stands), candidates, scores, optimism, how (a sentence)
    REEVAL_PREFIX + trial number: that (finished) trial retrained with other seeds for the
                  choice, a list of {seed, value, epochs, best_epoch}; kept on the study
                  because a finished trial's attributes can no longer be written
    VALIDATION    how trials are validated (dltune.study.validation): kind ("holdout" or
                  "kfold"), k, the folds' seed, how (in words), examples; absent in studies
                  made before: holdout
    ENSEMBLE      the delivered ensemble (dltune.study.ensemble_choice): members and weights,
                  its validation (out-of-fold) score beside the best single member's, its
                  test, how its members' weights were had
Trial attributes (user attrs of a trial):
    CONFIG, SEED, WORKER, BASELINE          written when the trial starts (or is enqueued)
    STATE, STOPPED, ERROR                   dltune's state marks (paused, diverged, ...)
    TRAIN_LOSS, VAL_LOSS, TRAIN_METRIC,     its curves, written when it ends (the validation
    EPOCH_SECONDS, BEST_EPOCH,              metric per epoch is Optuna's intermediate values)
    STOPPED_EARLY, DIVERGED_EPOCH
    RUNGS                                   its successive-halving rung results
    SWEEP_VALUE, SWEEP_SEED                 a sweep member's value index and seed index
    OWNER                                   the process training it: host, pid, its start
                                            time, boot id and pid namespace (a dead one's
                                            trials are failed at once, on its machine;
                                            records before boot and pidns: by host alone)
    CHECKPOINT                              its latest checkpoint (storage.checkpoints): id,
                                            epochs, bytes; the file is removed once the
                                            trial has ended (the attribute stays)
    RESUMES                                 (enqueued) the number of the interrupted trial it
                                            continues from that trial's checkpoint
    FOOTPRINT                               its network's size before it trains: parameters,
                                            flops of one prediction (nets.footprint), and
                                            latencies where the study measures them
    CURVE                                   the learning curve where a study has several
                                            objectives (Optuna keeps none for those)
    FOLDS                                   a cross-validated trial's folds: each fold's
                                            value at the trial's best epoch, their spread,
                                            each's own best epoch and value, seed and curve
    PREDICTIONS                             a complete trial's predictions on the rows that
                                            validated it (out-of-fold in k-fold): class
                                            probabilities (float16) or values (float32), as
                                            base64 of little-endian bytes, with dtype and
                                            shape; no pickle. Absent when too large
Trial system attribute:
    HEARTBEAT     the journal's heartbeat (epoch seconds); databases use Optuna's own
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import internals

if TYPE_CHECKING:
    import numpy as np
    import optuna
    from optuna.trial import FrozenTrial

    from ..engine import TrainResult

# ---- study attributes ------------------------------------------------------------------------
STUDY_META = "dltune"
TEST_PREFIX = "test:"
SWEEP = "dltune_sweep"
MODEL_SOURCE = "dltune_model"
CHOICE = "dltune_choice"
REEVAL_PREFIX = "reeval:"
VALIDATION = "dltune_validation"
ENSEMBLE = "dltune_ensemble"
DATA_INPUT_SHAPE = "input_shape"  # in STUDY_META's data record: one example's shape, a list
CHECKPOINT_TOKEN = "checkpoint_token"  # in STUDY_META: 16 hexadecimal digits, random

# ---- trial attributes ------------------------------------------------------------------------
CONFIG = "config"
SEED = "seed"
WORKER = "worker"
BASELINE = "baseline"
STATE = "dltune_state"  # "paused", "running", "diverged", "failed", "interrupted"
STOPPED = "stopped"  # "budget": the budget, not the scheduler, ended it
ERROR = "error"
TRAIN_LOSS = "train_loss"
START_LOSS = "start_loss"  # the training loss of its first batch, before its first step
VAL_LOSS = "val_loss"
TRAIN_METRIC = "train_metric"
EPOCH_SECONDS = "epoch_seconds"
BEST_EPOCH = "best_epoch"
STOPPED_EARLY = "stopped_early"
DIVERGED_EPOCH = "diverged_epoch"
RUNGS = "rungs"
SWEEP_VALUE = "sweep_value"
SWEEP_SEED = "sweep_seed"
HEARTBEAT = "dltune:heartbeat"
OWNER = "owner"
CHECKPOINT = "checkpoint"
RESUMES = "resumes"
FOOTPRINT = "footprint"
# A trial's learning curve in a study of several objectives ({"<step>": value}), where Optuna
# refuses intermediate values (Trial.report raises for those studies).
CURVE = "curve"
FOLDS = "folds"
PREDICTIONS = "predictions"

ERROR_LENGTH = 500  # characters of an error message kept with a failed trial

Attrs = Mapping[str, Any]
# What a reader takes: a study, a study's summary, a trial (anything with user_attrs), or the
# user attributes already read (study_attrs), to read several keys with one query.
Source = Any


def study_attrs(study: Any) -> Attrs:
    """A study's (or a summary's) user attributes, read once: one query of storage."""
    return study.user_attrs


def _attrs(source: Source) -> Attrs:
    return source if isinstance(source, Mapping) else source.user_attrs


# ---- the study's metadata --------------------------------------------------------------------


def read_study_meta(source: Source) -> dict[str, Any]:
    """The metadata in a study's (or a study summary's) user attributes; {} if not dltune's."""
    meta = _attrs(source).get(STUDY_META)
    return meta if isinstance(meta, dict) else {}


def new_checkpoint_token() -> str:
    """A new study's CHECKPOINT_TOKEN: 64 random bits, so that no two studies share one."""
    import secrets

    return secrets.token_hex(8)


def read_checkpoint_token(source: Source) -> str | None:
    """The study's CHECKPOINT_TOKEN; None in a study made before them, or one whose value is
    not of that form (a storage may come from anyone)."""
    token = read_study_meta(source).get(CHECKPOINT_TOKEN)
    ok = isinstance(token, str) and len(token) == 16 and all(c in "0123456789abcdef" for c in token)
    return token if ok else None


def write_study_meta(study: optuna.Study, meta: dict[str, Any]) -> dict[str, Any]:
    """Store a new study's metadata and return what storage kept: two processes starting a new
    study together (a shared database) may both write it, and both must go on with the same
    seeds."""
    study.set_user_attr(STUDY_META, meta)
    kept = read_study_meta(study)  # a fresh read of storage, not a cache
    return kept or meta


def write_metric_names(study: optuna.Study, names: list[str]) -> None:
    """Name the study's objectives as Optuna does (its metric names, which optuna-dashboard
    shows instead of "Objective 0"); nothing when they are named so already."""
    import warnings

    import optuna

    with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use since
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if study.metric_names != names:
            study.set_metric_names(names)


def read_metric_names(study: optuna.Study) -> list[str] | None:
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return study.metric_names


def data_record_shape(shape: tuple[int, ...]) -> dict[str, list[int]]:
    """The shape entry of STUDY_META's data record (JSON: a list)."""
    return {DATA_INPUT_SHAPE: [int(n) for n in shape]}


def read_input_shape(meta: Mapping[str, Any]) -> tuple[int, ...]:
    """The shape of one example the study was run on, from its metadata (read_study_meta);
    () for a study recorded before shapes were: its examples were flat rows."""
    data = meta.get("data")
    shape = data.get(DATA_INPUT_SHAPE) if isinstance(data, Mapping) else None
    if not isinstance(shape, list) or not all(isinstance(n, int) for n in shape):
        return ()
    return tuple(shape)


# ---- test results ----------------------------------------------------------------------------


def read_test_result(source: Source, number: int) -> dict[str, Any] | None:
    """Trial `number`'s test result (value, loss, metric, how), or None if never tested."""
    result = _attrs(source).get(f"{TEST_PREFIX}{number}")
    return result if isinstance(result, dict) else None


def read_test_values(source: Source) -> dict[int, float]:
    """Trial number -> its test value, for every trial tested."""
    tests = {}
    for key, value in _attrs(source).items():
        tested = key.startswith(TEST_PREFIX) and isinstance(value, dict)
        if tested and value.get("value") is not None:
            tests[int(key[len(TEST_PREFIX) :])] = float(value["value"])
    return tests


def write_test_result(study: optuna.Study, number: int, result: dict[str, Any]) -> None:
    study.set_user_attr(f"{TEST_PREFIX}{number}", result)


# ---- sweeps ----------------------------------------------------------------------------------


def read_sweep(source: Source) -> dict[str, Any] | None:
    """A sweep's stored plan, chance level and timing; None when the study is not a sweep."""
    stored = _attrs(source).get(SWEEP)
    return stored if isinstance(stored, dict) else None


def write_sweep(study: optuna.Study, stored: dict[str, Any]) -> None:
    study.set_user_attr(SWEEP, stored)


def enqueue_sweep_member(
    study: optuna.Study, params: dict[str, Any], value_index: int | None, seed_index: int, seed: int
) -> None:
    """Enqueue a sweep member: its value as Optuna params, its value index, seed index and
    seed as attributes."""
    study.enqueue_trial(
        params, user_attrs={SWEEP_VALUE: value_index, SWEEP_SEED: seed_index, SEED: seed}
    )


def read_sweep_member(trial: FrozenTrial) -> tuple[int | None, int] | None:
    """(value index, seed index) of a sweep member, or None for a trial of no sweep."""
    attrs = trial.user_attrs
    if SWEEP_SEED not in attrs:
        return None
    return attrs.get(SWEEP_VALUE), int(attrs[SWEEP_SEED])


# ---- a user model's build -------------------------------------------------------------------


def read_model_source(source: Source) -> dict[str, Any] | None:
    """Where the study's user model (build(hp)) came from; None for dltune's own networks.
    Someone's code: imported only when the caller trusts it (usermodel.source.stored)."""
    stored = _attrs(source).get(MODEL_SOURCE)
    return stored if isinstance(stored, dict) else None


def write_model_source(study: optuna.Study, record: dict[str, Any]) -> None:
    study.set_user_attr(MODEL_SOURCE, record)


# ---- the choice of the best trial ----------------------------------------------------------


def read_choice(source: Source) -> dict[str, Any] | None:
    """The stored choice of the best trial (dltune.study.choice), or None if none was made."""
    stored = _attrs(source).get(CHOICE)
    return stored if isinstance(stored, dict) and isinstance(stored.get("trial"), int) else None


def write_choice(study: optuna.Study, record: dict[str, Any]) -> None:
    study.set_user_attr(CHOICE, record)


def read_reevaluations(source: Source, number: int) -> list[dict[str, Any]]:
    """Trial `number`'s runs with other seeds, in the order they were made ([] if none)."""
    stored = _attrs(source).get(f"{REEVAL_PREFIX}{number}")
    return [run for run in stored if isinstance(run, dict)] if isinstance(stored, list) else []


def write_reevaluations(study: optuna.Study, number: int, runs: list[dict[str, Any]]) -> None:
    """All of trial `number`'s re-evaluations so far (rewritten after each, so that an
    interrupted choice keeps the finished ones)."""
    study.set_user_attr(f"{REEVAL_PREFIX}{number}", runs)


# ---- validation and the delivered ensemble ----------------------------------------------------


def read_validation(source: Source) -> dict[str, Any] | None:
    """How the study validates its trials (None: recorded before k-fold existed: holdout)."""
    stored = _attrs(source).get(VALIDATION)
    return (
        stored if isinstance(stored, dict) and stored.get("kind") in ("holdout", "kfold") else None
    )


def write_validation(study: optuna.Study, record: dict[str, Any]) -> None:
    study.set_user_attr(VALIDATION, record)


def read_ensemble(source: Source) -> dict[str, Any] | None:
    """The study's delivered ensemble (members, weights, scores), or None."""
    stored = _attrs(source).get(ENSEMBLE)
    return stored if isinstance(stored, dict) and isinstance(stored.get("members"), list) else None


def write_ensemble(study: optuna.Study, record: dict[str, Any]) -> None:
    study.set_user_attr(ENSEMBLE, record)


# ---- a trial's start -------------------------------------------------------------------------


def enqueue_baseline(study: optuna.Study, params: dict[str, Any]) -> None:
    """Enqueue the textbook baseline as a new study's first trial. skip_if_exists: another
    process starting the same study may just have enqueued it."""
    study.enqueue_trial(params, user_attrs={BASELINE: True}, skip_if_exists=True)


def read_baseline(trial: optuna.Trial | FrozenTrial) -> bool:
    """Whether a trial is its study's first, the textbook baseline (or continues it)."""
    return bool(trial.user_attrs.get(BASELINE))


def read_enqueued_seed(trial: optuna.Trial | FrozenTrial) -> int | None:
    """The seed a trial was enqueued with (a sweep member's), or None."""
    seed = trial.user_attrs.get(SEED)
    return seed if isinstance(seed, int) else None


def write_trial_start(
    trial: optuna.Trial, config: dict[str, Any], seed: int, worker: int | None
) -> None:
    """What a trial trains, written before it trains: its configuration, its seed, and which
    local worker process asked for it (several workers)."""
    trial.set_user_attr(CONFIG, config)
    trial.set_user_attr(SEED, seed)
    if worker is not None:
        trial.set_user_attr(WORKER, worker)


# ---- a trial's state marks -------------------------------------------------------------------


def write_state(trial: optuna.Trial, state: str) -> None:
    """dltune's state of a trial Optuna sees as running or finished (paused at a rung, ...)."""
    trial.set_user_attr(STATE, state)


def write_stopped_by_budget(trial: optuna.Trial) -> None:
    trial.set_user_attr(STOPPED, "budget")


def write_failure(trial: optuna.Trial, state: str, error: str) -> None:
    """Why a trial ends failed: 'interrupted' (Ctrl-C) or 'failed' (an error), and the error."""
    trial.set_user_attr(STATE, state)
    trial.set_user_attr(ERROR, error[:ERROR_LENGTH])


# ---- a trial's end ---------------------------------------------------------------------------


def write_trial_end(trial: optuna.Trial, result: TrainResult) -> None:
    """The trial's curves and how it ended (the validation metric per epoch is already stored
    as Optuna's intermediate values, one report per epoch)."""
    history = result.history
    trial.set_user_attr(TRAIN_LOSS, [r.train_loss for r in history])
    if math.isfinite(result.start_loss):
        trial.set_user_attr(START_LOSS, result.start_loss)
    trial.set_user_attr(VAL_LOSS, [r.val_loss for r in history])
    trial.set_user_attr(EPOCH_SECONDS, [round(r.seconds, 4) for r in history])
    if any(math.isfinite(r.train_metric) for r in history):  # tracked (sweeps)
        trial.set_user_attr(TRAIN_METRIC, [_json_float(r.train_metric) for r in history])
    trial.set_user_attr(BEST_EPOCH, result.best_epoch)
    trial.set_user_attr(STOPPED_EARLY, result.stopped_early)
    if result.status == "diverged":
        write_state(trial, "diverged")
        trial.set_user_attr(DIVERGED_EPOCH, result.diverged_epoch)


def write_folds(trial: optuna.Trial, record: dict[str, Any]) -> None:
    """A cross-validated trial's folds (study.validation.fold_record's form)."""
    trial.set_user_attr(FOLDS, record)


def read_folds(trial: FrozenTrial) -> dict[str, Any] | None:
    stored = trial.user_attrs.get(FOLDS)
    return stored if isinstance(stored, dict) and isinstance(stored.get("values"), list) else None


def write_predictions(trial: optuna.Trial, predictions: np.ndarray) -> None:
    """A trial's predictions on its validating rows: probabilities stored as float16 (their
    precision, 1e-3, is far below what tells two models apart), values as float32."""
    import base64

    import numpy as np

    dtype = "<f2" if predictions.ndim == 2 else "<f4"
    data = np.ascontiguousarray(predictions, dtype=dtype)
    trial.set_user_attr(
        PREDICTIONS,
        {
            "dtype": dtype,
            "shape": list(data.shape),
            "data": base64.b64encode(data.tobytes()).decode("ascii"),
        },
    )


def read_predictions(trial: FrozenTrial) -> np.ndarray | None:
    """write_predictions' array as float32, or None (not stored, or not readable)."""
    import base64
    import binascii

    import numpy as np

    stored = trial.user_attrs.get(PREDICTIONS)
    if not isinstance(stored, dict) or stored.get("dtype") not in ("<f2", "<f4"):
        return None
    try:
        raw = base64.b64decode(stored["data"], validate=True)
        shape = tuple(int(n) for n in stored["shape"])
        array = np.frombuffer(raw, dtype=stored["dtype"]).reshape(shape)
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None
    return array.astype(np.float32)


def _json_float(value: float) -> float | None:
    """Storage holds JSON, which has no NaN: an epoch without a value is null."""
    return value if math.isfinite(value) else None


# ---- rungs -----------------------------------------------------------------------------------


def write_rungs(trial: optuna.Trial, rungs: dict[str, Any]) -> None:
    """A trial's rung results: {"bracket": b, "promoted": k, "values": {"<epochs>": value}}."""
    trial.set_user_attr(RUNGS, rungs)


def write_footprint(trial: optuna.Trial, footprint: Mapping[str, float]) -> None:
    """What the trial's network costs, known before it trains: {"parameters": n, "flops": n},
    and {"latency": ms, "latency_256": ms} where measured."""
    trial.set_user_attr(FOOTPRINT, footprint)


def write_curve_point(trial: optuna.Trial, step: int, value: float) -> None:
    """One point of CURVE; a step already there is kept, as Trial.report keeps it."""
    curve = trial.user_attrs.get(CURVE, {})
    if str(step) not in curve:
        curve[str(step)] = float(value) if math.isfinite(value) else None
        trial.set_user_attr(CURVE, curve)


def read_curve(trial: FrozenTrial) -> dict[int, float]:
    """A stored trial's learning curve by step (0: inside the first epoch): Optuna's
    intermediate values, or CURVE where the study has several objectives."""
    if trial.intermediate_values:
        return dict(trial.intermediate_values)
    stored = trial.user_attrs.get(CURVE)
    if not isinstance(stored, dict):
        return {}
    return {int(k): math.nan if v is None else float(v) for k, v in stored.items()}


def read_footprint(trial: FrozenTrial) -> dict[str, float]:
    stored = trial.user_attrs.get(FOOTPRINT)
    if not isinstance(stored, dict):
        return {}
    return {
        k: v for k, v in stored.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }


def read_rungs(trial: FrozenTrial) -> dict[str, Any] | None:
    stored = trial.user_attrs.get(RUNGS)
    return stored if isinstance(stored, dict) and "bracket" in stored else None


# ---- the owner process, checkpoints and resumes --------------------------------------------


def write_owner(trial: optuna.Trial, owner: dict[str, Any]) -> None:
    """Which process trains the trial: {"host", "pid", "started", "boot", "pidns"}
    (heartbeats.this_process; the last two absent in records written before them)."""
    trial.set_user_attr(OWNER, owner)


def read_owner(trial: FrozenTrial) -> dict[str, Any] | None:
    stored = trial.user_attrs.get(OWNER)
    return stored if isinstance(stored, dict) and isinstance(stored.get("pid"), int) else None


def write_checkpoint(trial: optuna.Trial, record: dict[str, Any] | None) -> None:
    """The trial's latest checkpoint, {"id", "epochs", "bytes", "paused"}; None once removed."""
    trial.set_user_attr(CHECKPOINT, record)


def read_checkpoint(trial: FrozenTrial) -> dict[str, Any] | None:
    """The trial's checkpoint record; its id as stored, which the checkpoint store checks
    before it becomes a path or a key (checkpoints.id_problem): a storage may come from anyone."""
    stored = trial.user_attrs.get(CHECKPOINT)
    return stored if isinstance(stored, dict) and isinstance(stored.get("id"), str) else None


def enqueue_resume(study: optuna.Study, old: FrozenTrial, seed: int) -> None:
    """Enqueue the continuation of interrupted trial `old`: its params, its seed, whether it
    was the baseline, and which trial it resumes (the next run's ask gets it first)."""
    attrs: dict[str, Any] = {RESUMES: old.number, SEED: seed}
    if old.user_attrs.get(BASELINE):
        attrs[BASELINE] = True
    study.enqueue_trial(dict(old.params), user_attrs=attrs)


def read_resumes(trial: optuna.Trial | FrozenTrial) -> int | None:
    """The number of the trial this one continues, or None for a trial of its own."""
    number = trial.user_attrs.get(RESUMES)
    return number if isinstance(number, int) and not isinstance(number, bool) else None


def read_state(trial: FrozenTrial) -> str | None:
    """dltune's state mark of a trial (write_state, write_failure), or None."""
    state = trial.user_attrs.get(STATE)
    return state if isinstance(state, str) else None


# ---- heartbeats (the journal's) --------------------------------------------------------------


def write_heartbeat(study: optuna.Study, trial: optuna.Trial, when: float) -> None:
    internals.set_trial_system_attr(study, trial, HEARTBEAT, when)


def read_heartbeat(trial: FrozenTrial) -> float | None:
    beat = trial.system_attrs.get(HEARTBEAT)
    return float(beat) if isinstance(beat, (int, float)) else None
