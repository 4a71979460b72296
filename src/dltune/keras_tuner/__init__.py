"""Keras Tuner's own API on dltune's studies, one import away:

    from dltune import keras_tuner as kt

    tuner = kt.Hyperband(build_model, objective="val_accuracy", max_epochs=10, factor=3,
                         directory="my_dir", project_name="intro")
    tuner.search(x_train, y_train, epochs=10, validation_data=(x_val, y_val))
    best_model = tuner.get_best_models(1)[0]

`kt.Hyperband`, `kt.RandomSearch` and `kt.BayesianOptimization` take Keras Tuner's constructor
arguments and run `dltune.tune` on a build(hp): Hyperband as dltune's Hyperband schedule (TPE
sampling in its brackets), RandomSearch as random sampling with every trial trained to its
epochs, BayesianOptimization as Optuna's Gaussian-process sampler. The study lives in SQLite
at `directory/project_name/dltune.db` (study `project_name`), so that `dltune best`, `trials`
and `report` open it. An argument dltune cannot honour raises a KerasTunerError that names it
and says what to do (arguments.py), never a silent ignore.

objective.py     Objective, and Keras Tuner's objective names in dltune's metrics
arguments.py     the arguments refused (constructors, search, callbacks) and why
hypermodel.py    HyperParameters (the hp of stored values) and HyperModel
data.py          search()'s arrays as a Dataset: validation data, one-hot labels, layout
tuner.py         the Tuner they share: the study, search() and its budget, the results
tuners.py        Hyperband, RandomSearch, BayesianOptimization: schedule, sampler, trials
results.py       the best trials, their hyperparameters, their trained Keras models
summaries.py     results_summary(), search_space_summary() and the progress lines

May import study, export, storage, usermodel, data and errors (rank of sweep); never analysis,
report or the command line, and never keras itself (the user's build imports it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..usermodel.keras_model import prefer_torch_backend

if TYPE_CHECKING:
    from .arguments import KerasTunerError
    from .hypermodel import HyperModel, HyperParameters
    from .objective import Objective
    from .tuners import BayesianOptimization, Hyperband, RandomSearch

# Keras on PyTorch, where Keras is not imported yet: `from dltune import keras_tuner` before
# `import keras` is all a script needs (Keras reads KERAS_BACKEND once, when first imported).
prefer_torch_backend()

_EXPORTS = {
    "BayesianOptimization": ".tuners",
    "Hyperband": ".tuners",
    "RandomSearch": ".tuners",
    "HyperModel": ".hypermodel",
    "HyperParameters": ".hypermodel",
    "Objective": ".objective",
    "KerasTunerError": ".arguments",
}
# Keras Tuner's names that dltune does not offer, and what to use instead.
_NOT_OFFERED = {
    "Tuner": "a tuner of your own (run_trial) is Keras Tuner's; give dltune a build(hp): "
    "kt.RandomSearch, kt.Hyperband, kt.BayesianOptimization or dltune.tune(build, ...)",
    "GridSearch": "use kt.RandomSearch (or dltune.tune(..., sampler='grid') on a space file)",
    "SklearnTuner": "use dltune.DLTuneClassifier or DLTuneRegressor",
    "Oracle": "dltune's samplers are Optuna's: dltune.tune(..., sampler=...)",
    "oracles": "dltune's samplers are Optuna's: dltune.tune(..., sampler=...)",
    "applications": "write the model in build(hp)",
}

__all__ = [
    "BayesianOptimization",
    "HyperModel",
    "HyperParameters",
    "Hyperband",
    "KerasTunerError",
    "Objective",
    "RandomSearch",
]


def __getattr__(name: str) -> Any:
    import importlib

    module = _EXPORTS.get(name)
    if module is not None:
        return getattr(importlib.import_module(module, __name__), name)
    if name in _NOT_OFFERED:
        from .arguments import NotOffered

        raise NotOffered(
            f"Keras Tuner's {name} is not offered by dltune.keras_tuner: {_NOT_OFFERED[name]}"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
