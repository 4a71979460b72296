"""A new study's first trial: the known-good configuration, sized to the budget.

For signals the first trial is the fully convolutional network of Wang et al. (2017), whose
published size (128/256/128 filters) costs, on a CPU, more than a short budget holds once it
trains the hundreds of steps it needs on small data. Its width is therefore chosen so that its
whole training (every epoch of the schedule, every fold member) is predicted to take at most
BASELINE_SHARE of the timeout: the cost is its flops per example (three times the forward's
for the backward) times the rows it trains on, at a rate measured on this kind of machine.
Halving the filters quarters the cost of the middle convolutions; the widths tried are the
published one and its halves, down to an eighth.

In a cross-validated study the first trial is not paused by successive halving: on small data
its lowest rungs are a few dozen steps, where a network with batch normalization has not yet
shown what it learns, and the first trial is the one configuration known to be good.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..data import Dataset
    from ..space import SearchSpace

BASELINE_SHARE = 0.25  # of the timeout, for the first trial's whole training
# Floating-point operations a second one worker process (one thread) trains a stacked
# population of convolutional members at, on this 2-core machine (benchmarks/RESULTS.md,
# issue 27: the FCN's 5 fold members on GunPoint)
TRAINING_FLOPS_PER_SECOND = 5e10
WIDTHS = (1.0, 0.5, 0.25, 0.125)


def baseline_width(
    space: SearchSpace, dataset: Dataset, timeout: float | None, members: int
) -> tuple[float, str | None]:
    """The width of the signal baseline whose training fits BASELINE_SHARE of `timeout`, and
    a note when it is not the published one (1.0 and None without a timeout or a signal)."""
    shape = dataset.input_shape
    if timeout is None or len(shape) != 2 or "conv_layers" not in space.conv:
        return 1.0, None
    rows = len(dataset.y_train) * members * space.epochs
    allowed = BASELINE_SHARE * timeout * TRAINING_FLOPS_PER_SECOND
    for width in WIDTHS:
        flops = _flops(space, dataset, width)
        if 3 * flops * rows <= allowed or width == WIDTHS[-1]:
            break
    if width == 1.0:
        return width, None
    seconds = 3 * flops * rows / TRAINING_FLOPS_PER_SECOND
    return width, (
        f"first trial: Wang et al.'s fully convolutional network at {width:g} of its width, "
        f"so that its {space.epochs} epochs x {members} member(s) fit a quarter of the "
        f"timeout (about {seconds:.0f} s predicted of {timeout:g} s)"
    )


def _flops(space: SearchSpace, dataset: Dataset, width: float) -> float:
    """Flops of one prediction of the baseline at `width`, counted on its module."""
    from ..nets import BuiltinNetworks
    from ..nets.footprint import flops

    config = space.config_from_params(space.baseline_params(dataset.input_shape, width=width))
    outputs = dataset.n_classes or 1
    model = BuiltinNetworks(dataset.input_shape)(config, outputs, seed=0, device="cpu")
    return float(flops(model, math.prod(dataset.input_shape)))
