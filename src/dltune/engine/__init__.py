"""Training engines: they turn configurations into learning curves.

``sequential`` trains one configuration at a time and is the reference every faster engine is
tested against.
"""

from .result import Checkpoint, EpochReport, TrainResult
from .sequential import SequentialEngine, SequentialTrainer, TrainingRun

__all__ = [
    "Checkpoint",
    "EpochReport",
    "SequentialEngine",
    "SequentialTrainer",
    "TrainResult",
    "TrainingRun",
]
