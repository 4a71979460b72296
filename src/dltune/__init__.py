"""dltune: tune the hyperparameters of dense neural networks fast, and explain the result.

    import dltune
    result = dltune.tune(data="digits", trials=30)
    print(result.best)

Names are imported lazily, so that `import dltune` (and the command line) stays fast and does
not load torch or optuna until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "tune": "dltune.tuner",
    "TuneResult": "dltune.tuner",
    "SearchSpace": "dltune.space",
    "Config": "dltune.config",
    "load_data": "dltune.data",
    "Dataset": "dltune.data",
    "DLTuneError": "dltune.errors",
}

__all__ = [
    "Config",
    "DLTuneError",
    "Dataset",
    "SearchSpace",
    "TuneResult",
    "__version__",
    "load_data",
    "tune",
]

if TYPE_CHECKING:
    from .config import Config
    from .data import Dataset, load_data
    from .errors import DLTuneError
    from .space import SearchSpace
    from .tuner import TuneResult, tune


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dltune' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
