"""A new study's first trial: the known-good configuration, sized to the budget.

For signals the first trial is the fully convolutional network of Wang et al. (2017), whose
published size (128/256/128 filters) costs, on a CPU, more than a short budget holds once it
trains the hundreds of steps it needs. Its width is therefore the widest of the published one
and its halves, down to an eighth, that the space (as fitted to the budget: budget.py) holds
and the budget affords, by the cost estimated for this CPU (costs.py):

- in k-fold, where successive halving does not pause it (below), its whole training (every
  epoch of the schedule, every fold member) must take at most FIRST_SHARE of the timeout; the
  eighth goes first anyway where its whole training ends within the timeout, as on GunPoint at
  30 s (about 14 s: the FCN's bag was delivered in 5 of 6 such studies, benchmarks/RESULTS.md,
  issue 27);
- on a holdout split, where successive halving pauses it like any other trial once others
  beat it, its lowest rung must take at most 1/SEARCH_RUNGS of the training the timeout gives
  (the bound budget.py puts on every trial of the default space).

Otherwise the textbook dense network goes first. The FCN at an eighth of its width costs 2.2 ms
a step on this CPU, its dispatch more than its arithmetic: on 6,000 signals of length 40 one
epoch takes 0.7 s, its 27 epochs about 20 s (a study of the default before this sizing spent
24 s of its 30 s in that trial's first epoch, on a loaded machine, where a count of its flops
alone had predicted 3 s for all 27). Images start from Keras' MNIST convnet, and tables from
the textbook dense network, as they are.

In a cross-validated study the first trial is not paused by successive halving: on small data
its lowest rungs are a few dozen steps, where a network with batch normalization has not yet
shown what it learns, and the first trial is the one configuration known to be good.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..space.baseline import FCN_FILTERS

if TYPE_CHECKING:
    from ..config import Config
    from ..space import SearchSpace
    from .costs import Cost

FIRST_SHARE = 0.25  # of the timeout, for a cross-validated first trial's whole training
# Every trial's lowest rung at most 1/SEARCH_RUNGS of the training a timeout gives (budget.py)
SEARCH_RUNGS = 30
WIDTHS = (1.0, 0.5, 0.25, 0.125)  # of the FCN's published filters, widest first


@dataclass(frozen=True)
class FirstTrial:
    """What a study's first trial is: the space's known-good configuration, the FCN at `width`
    for signals, or the textbook dense network (`dense`) where the budget affords no FCN."""

    width: float = 1.0
    dense: bool = False
    # Its whole training, estimated (None: not estimated, or no time to fit it to)
    seconds: float | None = None
    # Why it is not the space's own first trial (None: it is)
    why: str | None = None

    def params(self, space: SearchSpace) -> dict[str, Any]:
        """Its Optuna params in `space` (fixed values left out)."""
        return space.baseline_params(space.input_shape, width=self.width, dense=self.dense)

    def config(self, space: SearchSpace) -> Config:
        return space.config_from_params(self.params(space))


def first_trial(
    space: SearchSpace,
    cost: Cost | None,
    timeout: float | None,
    members: int,
    training: float | None = None,
) -> FirstTrial:
    """The first trial of a study in `space` (fitted to the data and to the budget), given the
    cost of a member-epoch on this machine (None: not known; nothing is sized to time), its
    fold members (more than 1: k-fold, where it is not paused) and the seconds of training
    the timeout gives all workers together (`training`: the timeout's where not given)."""
    from ..space.narrowing import filter_range, has_blocks

    shape = space.input_shape
    signal = shape is not None and len(shape) == 2 and has_blocks(space)
    if not signal or timeout is None or cost is None:
        return FirstTrial()
    training = training or timeout
    most = filter_range(space)[1]
    # the widths whose filters the space holds (a wider one, cut to it, is another network),
    # and the narrowest, cut or not
    widths = [w for w in WIDTHS[:-1] if max(FCN_FILTERS) * w <= most] + [WIDTHS[-1]]
    whole = space.epochs * members  # member-epochs of its whole training
    if members > 1:
        runs, allowed, what = float(whole), FIRST_SHARE * timeout, f"{FIRST_SHARE:g} of the timeout"
    else:
        runs, allowed = space.min_epochs, training / SEARCH_RUNGS
        what = f"1/{SEARCH_RUNGS} of {training:.0f} s of training"
    for width in widths:
        seconds = runs * cost(FirstTrial(width).config(space))
        if seconds <= allowed or (members > 1 and width == WIDTHS[-1] and seconds <= timeout):
            shown = what if seconds <= allowed else "the timeout, which it ends within"
            why = _narrower(width, seconds, shown, members, space.epochs) if width < 1 else None
            return FirstTrial(width, seconds=seconds * whole / runs, why=why)
    dense = FirstTrial(dense=True)
    part = "its whole training" if members > 1 else "its first rung"
    what = "the timeout" if members > 1 else what
    why = (
        f"first trial the textbook dense network: {part} of Wang et al.'s fully convolutional "
        f"network, even at {WIDTHS[-1]:g} of its width, would take about {seconds:.1f} s, "
        f"more than {what}"
    )
    return FirstTrial(dense=True, seconds=whole * cost(dense.config(space)), why=why)


def _narrower(width: float, seconds: float, what: str, members: int, epochs: int) -> str:
    many = members > 1
    part = f"its {epochs} epochs x {members} fold members take" if many else "its first rung takes"
    return (
        f"first trial Wang et al.'s fully convolutional network at {width:g} of its width, "
        f"so that {part} about {seconds:.1f} s, at most {what}"
    )
