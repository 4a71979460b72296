"""What training one network costs on this machine, estimated before it trains: the seconds of
one member-epoch (one model's pass over its training rows), for fitting a run's defaults to its
budget (budget.py) and sizing its first trial (first_trial.py).

    seconds = steps x STEP_SECONDS x (1 + blocks) + 3 x flops x rows / FLOPS_PER_SECOND
              + EPOCH_SECONDS

- steps: the optimizer's steps of the pass (its rows over the batch size, rounded up). Each
  costs a fixed time beside its arithmetic (dispatching the operations, batch normalization,
  the optimizer's update), growing with the convolutional blocks. For the small networks of
  small data it is most of the cost: the FCN at an eighth of its width (16/32/16 filters) on
  5,100 signals of length 40 takes 2.2 ms a step, of which its arithmetic is 0.2 ms. Fold
  members stacked in one population (k-fold: engine/folds.py) share a step's dispatch, so a
  member's share is smaller (STACKED_STEP_SECONDS).
- flops: one prediction's (nets.footprint), three times over for the backward pass.
- EPOCH_SECONDS: what each member-epoch costs beside its steps (its evaluation, the keeping of
  its best weights), which decides on tiny data: a fold member of GunPoint trains 40 series,
  3 steps an epoch.

Measured on the 2-core development machine, one torch thread, in process CPU time (what a core
of an idle machine gives; its cores were shared with other jobs), with
``python benchmarks/budget_costs.py`` (benchmarks/RESULTS.md, issue 31): seconds per
member-epoch on 5,100 signals of 1x40 (benchmarks/bumps.py), one member alone / a member of 5
stacked, against the estimate; and a member of 5 stacked on GunPoint (40 series of 1x150):

===================================  =============  =============
network (batch 16 unless said)       measured       estimated
===================================  =============  =============
textbook Dense(128), batch 32        0.083 / 0.026  0.102 / 0.051
1 block of 16, kernel 3              0.30 / 0.12    0.36 / 0.16
3 blocks of 16, kernel 8             0.65 / 0.30    0.77 / 0.37
3 blocks of 64, kernel 8             1.41 / 1.16    1.61 / 1.16
3 blocks of 128, kernel 8            3.79 / 3.83    4.29 / 3.68
3 blocks of 256, kernel 8            13.3 / 13.1    15.0 / 13.8
3 blocks of 16, kernel 8, batch 128  0.19 / 0.21    0.16 / 0.10
GunPoint: the FCN at 1/4, 1/2, 1     0.021, 0.045,  0.022, 0.041,
                                     0.128          0.120
===================================  =============  =============

The estimate is within 0.8-1.5x of the measured time for every other network measured,
digits' 8x8 images (1,257 rows) included, except at a large batch of a small network, whose
steps cost more than their count says (stacked, half of it estimated); the costliest trial of a
space, to which the budget is fitted, has the smallest batch. A GPU's rates are not measured
here: a run on one is not fitted to its timeout (budget.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config
    from ..data import Dataset

STEP_SECONDS = 0.55e-3  # a step of one member trained alone (the sequential trainer), per block + 1
STACKED_STEP_SECONDS = 0.25e-3  # a member's share of a step of fold members stacked
FLOPS_PER_SECOND = 9e10  # the training arithmetic's rate, backward pass included
EPOCH_SECONDS = 0.012  # a member-epoch's evaluation and bookkeeping

# Seconds one member-epoch of a configuration costs, on the run's data (made by `for_data`, or
# given by a test).
Cost = Callable[["Config"], float]


def member_epoch_seconds(
    config: Config, flops: float, rows: int, *, stacked: bool = False
) -> float:
    """The estimated seconds of one pass of `config` (`flops` a prediction) over `rows`."""
    steps = math.ceil(rows / max(1, config.batch_size))
    step = (STACKED_STEP_SECONDS if stacked else STEP_SECONDS) * (1 + config.conv_layers)
    return steps * step + 3 * flops * rows / FLOPS_PER_SECOND + EPOCH_SECONDS


def for_data(dataset: Dataset) -> Cost:
    """The cost of a member-epoch on `dataset` as the study trains it: on its training split
    alone, or in k-fold on each fold member's rows, the members stacked."""
    folds = dataset.folds
    rows = folds.n_train if folds is not None else len(dataset.y_train)
    shape = dataset.input_shape
    outputs = dataset.n_classes or 1
    return lambda config: member_epoch_seconds(
        config, prediction_flops(config, shape, outputs), rows, stacked=folds is not None
    )


def prediction_flops(config: Config, input_shape: tuple[int, ...], outputs: int) -> float:
    """Flops of one prediction of `config`'s network, counted on its module."""
    from ..nets import BuiltinNetworks
    from ..nets.footprint import flops

    model = BuiltinNetworks(input_shape)(config, outputs, seed=0, device="cpu")
    return float(flops(model, math.prod(input_shape)))
