"""Sweeps: one hyperparameter varied and the rest held, each value trained with several seeds,
all as one population, stored as a study of their own.

    from dltune.sweep import sweep
    result = sweep("learning_rate", value_range="1e-5:10:13:log", data="digits")

`dltune.analysis.sweeps.analyze_sweep(result.study)` reads it back: a row per value and plain
readings; `dltune.report.write_report(result.study, "sweep.html")` draws it.
"""

from .plan import SweepPlan
from .runner import SweepResult, sweep
from .values import SWEEPABLE

__all__ = ["SWEEPABLE", "SweepPlan", "SweepResult", "sweep"]
