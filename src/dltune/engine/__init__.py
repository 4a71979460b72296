"""Training engines: they turn configurations into learning curves.

``sequential`` trains one configuration at a time and is the reference every faster engine is
tested against.
"""

from .result import EpochReport, TrainResult
from .sequential import SequentialTrainer

__all__ = ["EpochReport", "SequentialTrainer", "TrainResult"]
