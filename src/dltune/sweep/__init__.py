"""Sweeps: one hyperparameter varied and the rest held, each value trained with several seeds,
all as one population, stored as a study of their own.
Runs through dltune.study (the same loop and lifecycle); never imports analysis or the CLI.

    from dltune.sweep import sweep
    result = sweep("learning_rate", value_range="1e-5:10:13:log", data="digits")

`dltune.analysis.sweeps.analyze_sweep(result.study)` reads it back: a row per value and plain
readings; `dltune.report.write_report(result.study, "sweep.html")` draws it.
"""

from typing import TYPE_CHECKING

from ..lazy import lazy_names
from .plan import SweepPlan
from .values import SWEEPABLE

if TYPE_CHECKING:
    from .runner import SweepResult, sweep

__all__ = ["SWEEPABLE", "SweepPlan", "SweepResult", "sweep"]


# The runner on first use: it imports torch, which checking a command's options (and
# `dltune --help`) should not wait for.
__getattr__ = lazy_names(__name__, {"sweep": ".runner", "SweepResult": ".runner"})
