"""Keras Tuner's arguments that dltune does not honour, each refused with what to do instead.

An argument left at Keras Tuner's default is accepted (it asks for nothing); one set to
anything else raises a KerasTunerError naming the call, the argument and the value, never a
silent ignore. Keras's callbacks given to search(): EarlyStopping is dltune's patience (on the
objective: `patience_of`), TerminateOnNaN is what dltune does anyway (a trial whose loss is not
finite ends diverged); any other callback is refused, since dltune trains with its own loop.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidParameterError

_TRAINS = "dltune trains every model itself, with its own loop"
# Tuner (and oracle) arguments: name -> (Keras Tuner's default, why it is refused / the fix).
CONSTRUCTOR: dict[str, tuple[Any, str]] = {
    "hyperparameters": (
        None,
        "declare every hyperparameter in build(hp) (hp.Int, hp.Float, hp.Choice, "
        "hp.Boolean, hp.Fixed); dltune samples what the build asks for",
    ),
    "tune_new_entries": (True, "every hyperparameter build(hp) asks for is tuned"),
    "allow_new_entries": (True, "build(hp) may always ask for new hyperparameters"),
    "max_retries_per_trial": (
        0,
        "dltune does not retry a trial: a build that fails is one failed trial (its message "
        "stored) and the study goes on",
    ),
    "max_consecutive_failed_trials": (
        3,
        "dltune stops a study when its first 3 trials fail the same way (a fixed number)",
    ),
    "max_model_size": (
        None,
        "bound the model's size in build(hp) (the ranges of hp.Int), or tune its size beside "
        "its accuracy with a space file's objectives: [accuracy, parameters] (dltune run)",
    ),
    "optimizer": (None, "compile the model in build(hp): dltune trains with compile()'s optimizer"),
    "loss": (None, "compile the model in build(hp): dltune trains with compile()'s loss"),
    "metrics": (None, "dltune measures the objective itself; compile()'s metrics are not used"),
    "distribution_strategy": (
        None,
        "dltune places trials itself: one process per core on a CPU, one per GPU, or Ray "
        "(dltune.tune(..., ray='auto'))",
    ),
    "logger": (None, "dltune's study is in SQLite: dltune best, trials and report read it"),
    "tuner_id": (
        None,
        "run several processes on one study with dltune.tune(..., workers=N) (or dltune run)",
    ),
    "alpha": (1e-4, "Optuna's Gaussian process sets its own noise"),
    "beta": (2.6, "Optuna's Gaussian process sampler uses expected improvement, not UCB"),
}
# search()'s (model.fit's) arguments dltune cannot honour: name -> (Keras's default, why / fix).
SEARCH: dict[str, tuple[Any, str]] = {
    "shuffle": (True, f"{_TRAINS} and shuffles the training data every epoch"),
    "class_weight": (None, f"{_TRAINS}, without class weights; resample the data instead"),
    "sample_weight": (None, f"{_TRAINS}, without sample weights; resample the data instead"),
    "initial_epoch": (0, f"{_TRAINS}: every trial starts at epoch 0"),
    "steps_per_epoch": (None, f"{_TRAINS}: an epoch is one pass over the training arrays"),
    "validation_steps": (None, f"{_TRAINS}: it validates on every validation example"),
    "validation_batch_size": (None, f"{_TRAINS}: it validates in its own chunks"),
    "validation_freq": (1, f"{_TRAINS}: it validates after every epoch"),
}
# The callbacks dltune honours: EarlyStopping (as patience) and TerminateOnNaN (as it is).
HONOURED = ("EarlyStopping", "TerminateOnNaN")
# EarlyStopping's options that dltune's patience has no equivalent of: name -> its default.
EARLY_STOPPING = {"baseline": None, "start_from_epoch": 0, "min_delta": 0}


class KerasTunerError(InvalidParameterError):
    """A Keras Tuner argument dltune does not honour, or a value it cannot take."""


class NotOffered(KerasTunerError, AttributeError):
    """A name of Keras Tuner's that dltune.keras_tuner does not offer (hasattr says False)."""


def refuse(call: str, given: dict[str, Any], table: dict[str, tuple[Any, str]]) -> None:
    """A KerasTunerError for the first argument of `given` set away from its default in
    `table`, or not in `table` at all (an argument Keras Tuner does not have either)."""
    for name, value in given.items():
        if name not in table:
            raise KerasTunerError(f"{call} got an unexpected argument {name}={value!r}")
        default, why = table[name]
        if not _same(value, default):
            raise KerasTunerError(
                f"{call}: {name}={_shown(value)} is not supported by dltune: {why}. "
                f"Leave {name} out (Keras Tuner's default: {default!r})"
            )


def _same(value: Any, default: Any) -> bool:
    try:
        return bool(value is default or (type(value) is type(default) and value == default))
    except Exception:  # an array compared elementwise
        return False


def _shown(value: Any) -> str:
    """A value as a message shows it: its repr, or <its type> where that is long or says
    nothing (an object's default repr, an array)."""
    text = repr(value)
    return text if len(text) <= 60 and not text.startswith("<") else f"<{type(value).__name__}>"


def patience_of(callbacks: Any) -> tuple[int | None, str | None]:
    """dltune's patience from search()'s callbacks (None: no EarlyStopping) and the monitor
    EarlyStopping watched, for a note; a KerasTunerError for a callback dltune cannot run."""
    if callbacks is None:
        return None, None
    if not isinstance(callbacks, list | tuple):
        raise KerasTunerError(f"search(callbacks={callbacks!r}): give a list of callbacks")
    stops = []
    for callback in callbacks:
        kind = type(callback).__name__
        if kind not in HONOURED:
            raise KerasTunerError(
                f"search(callbacks=[..., {kind}(), ...]): {_TRAINS} and runs no Keras callback "
                "but EarlyStopping (as dltune's patience) and TerminateOnNaN (a trial whose "
                f"loss is not finite ends diverged); remove {kind} (dltune report shows every "
                "trial's curves)"
            )
        if kind == "EarlyStopping":
            stops.append(callback)
    if not stops:
        return None, None
    if len(stops) > 1:
        raise KerasTunerError(
            "search(callbacks=...): several EarlyStopping callbacks; dltune has one patience"
        )
    return _early_stopping(stops[0])


def _early_stopping(stop: Any) -> tuple[int, str]:
    """(patience, monitor) of Keras's EarlyStopping; its options without an equivalent in
    dltune's patience refused. restore_best_weights either way: dltune keeps the weights of
    each trial's best epoch."""
    for name, default in EARLY_STOPPING.items():
        value = getattr(stop, name, default)
        if not _same(value, default) and not (name == "min_delta" and value == 0):
            raise KerasTunerError(
                f"EarlyStopping({name}={value!r}) is not supported by dltune: its patience "
                "stops a trial after that many epochs without a better objective, nothing "
                f"else; leave {name} out"
            )
    # Keras stops after `patience` epochs without improvement (patience 0: after the first);
    # dltune's patience is the same count, at least 1.
    return max(1, int(stop.patience)), str(getattr(stop, "monitor", "val_loss"))


def oracle_arguments(
    hyperparameters: Any,
    tune_new_entries: bool,
    allow_new_entries: bool,
    max_retries_per_trial: int,
    max_consecutive_failed_trials: int,
) -> dict[str, Any]:
    """Keras Tuner's Oracle arguments every tuner takes, by name, for the refusal of those
    dltune does not support (`refuse`)."""
    return {
        "hyperparameters": hyperparameters,
        "tune_new_entries": tune_new_entries,
        "allow_new_entries": allow_new_entries,
        "max_retries_per_trial": max_retries_per_trial,
        "max_consecutive_failed_trials": max_consecutive_failed_trials,
    }


def whole_number(value: Any, name: str, call: str, low: int = 1) -> int:
    """`value` where it is a whole number of at least `low`, else a KerasTunerError naming the
    call and the argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise KerasTunerError(f"{call}: {name}={value!r}; give a whole number of at least {low}")
    return value
