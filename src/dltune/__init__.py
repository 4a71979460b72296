"""dltune: tune the hyperparameters of neural networks fast, and explain the result.

    import dltune
    result = dltune.tune(data="digits", trials=30)
    print(result.best)
    dltune.train_best(study=result.study).save("model")   # retrained, tested once, written
    model = dltune.load("model")                            # model.predict(x)

In a Jupyter notebook, tune() shows its progress in the cell, the result displays itself (the
best configuration, how it was chosen, what the study shows, its history) and
`result.report()` shows the full report inline.

Names are imported lazily, so that `import dltune` (and the command line) stays fast and does
not load torch or optuna until they are needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import views
from .lazy import lazy_names
from .version import __version__

# How a result shows itself in a notebook (its HTML, its report inline): drawn by
# dltune.notebook, which the results below it may not import (dltune/views.py says why).
views.provide("dltune.notebook")

_EXPORTS = {
    "tune": "dltune.study",
    "TuneResult": "dltune.study",
    "TuneSettings": "dltune.study",
    "ProgressListener": "dltune.study",
    "SearchSpace": "dltune.space",
    "Config": "dltune.config",
    "load_data": "dltune.data",
    "Dataset": "dltune.data",
    "DLTuneError": "dltune.errors",
    "StoppingRule": "dltune.schedule",
    "TrialCurve": "dltune.schedule",
    "load": "dltune.export",
    "train_best": "dltune.export",
    "TunedModel": "dltune.export",
    "DLTuneClassifier": "dltune.export.estimators",
    "DLTuneRegressor": "dltune.export.estimators",
}

__all__ = [
    "Config",
    "DLTuneClassifier",
    "DLTuneError",
    "DLTuneRegressor",
    "Dataset",
    "ProgressListener",
    "SearchSpace",
    "StoppingRule",
    "TrialCurve",
    "TuneResult",
    "TuneSettings",
    "TunedModel",
    "__version__",
    "load",
    "load_data",
    "train_best",
    "tune",
]

if TYPE_CHECKING:
    from .config import Config
    from .data import Dataset, load_data
    from .errors import DLTuneError
    from .export import TunedModel, load, train_best
    from .export.estimators import DLTuneClassifier, DLTuneRegressor
    from .schedule import StoppingRule, TrialCurve
    from .space import SearchSpace
    from .study import ProgressListener, TuneResult, TuneSettings, tune


__getattr__ = lazy_names(__name__, _EXPORTS)
