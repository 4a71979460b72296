"""Training engines: they turn configurations into learning curves.

Owns training (sequential, population, the fused optimizer update) and the `Engine` protocol
the study loop drives; imports nothing of study, storage, Optuna or the command line.
``sequential`` trains one configuration at a time and is the reference every faster engine is
tested against. Names load lazily: the light modules (protocol, result, memory) need no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names

if TYPE_CHECKING:
    from .protocol import Engine, EpochCallback, PausedRun
    from .result import Checkpoint, EpochReport, TrainResult
    from .sequential import SequentialEngine, SequentialTrainer, TrainingRun

_EXPORTS = {
    "Checkpoint": ".result",
    "EpochReport": ".result",
    "TrainResult": ".result",
    "Engine": ".protocol",
    "EpochCallback": ".protocol",
    "PausedRun": ".protocol",
    "SequentialEngine": ".sequential",
    "SequentialTrainer": ".sequential",
    "TrainingRun": ".sequential",
}

__all__ = [
    "Checkpoint",
    "Engine",
    "EpochCallback",
    "EpochReport",
    "PausedRun",
    "SequentialEngine",
    "SequentialTrainer",
    "TrainResult",
    "TrainingRun",
]


__getattr__ = lazy_names(__name__, _EXPORTS)
