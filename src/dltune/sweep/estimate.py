"""How long the same sweep would take trained one run at a time: measured on a sample.

A few members are trained again by the sequential trainer (the engine every one-model-per-trial
tool amounts to), for a couple of epochs each, and their seconds per epoch are charged to every
member of the sweep for the epochs it trained. Sweeps whose values cost differently per epoch
(units, layers and batch size change the shapes; activation, optimizer and loss the arithmetic)
sample every value; the others (learning rate, dropout, weight decay) three values spread over
the sweep.

Measured against training every run alone (benchmarks/sweeps.py, RESULTS.md), the estimate
comes out 5-27% low: a process's seconds per epoch drift upward over minutes of training on
this shared machine, and the sample is short. Low is the safe side: the population's gain is
understated, not overstated.

Choices that keep the estimate conservative (it favours the one-at-a-time side): a diverged run
is charged only its finished epochs, since alone it would stop within a few steps; an epochs
sweep is charged one run per value and seed, each for that value's epochs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..vocabulary import CATEGORICAL
from .plan import SweepPlan

if TYPE_CHECKING:
    from ..data import Dataset

SAMPLE_EPOCHS = 2
MAX_SAMPLED_VALUES = 12


@dataclass(frozen=True)
class TrainedMember:
    value_index: int | None  # None: an epochs sweep's run, serving every value
    epochs: int  # finished epochs it trained (a diverged run: those before it diverged)


def sampled_indices(plan: SweepPlan, usable: list[int]) -> list[int]:
    """The values whose members are timed: every one for shape-changing sweeps (up to
    MAX_SAMPLED_VALUES, spread), else the first, middle and last of `usable` (the values that
    did not diverge)."""
    pool = usable or list(range(len(plan.values)))
    if plan.param == "epochs":
        return pool[:1]  # every value trains the same configuration
    # A choice of activation, optimizer or loss changes the arithmetic (gelu and swish cost
    # more than relu; Adam more than SGD): those are timed value by value too.
    same_cost = plan.shares_shapes and plan.param not in CATEGORICAL
    want = 3 if same_cost else MAX_SAMPLED_VALUES
    if len(pool) <= want:
        return pool
    step = (len(pool) - 1) / (want - 1)
    return sorted({pool[round(i * step)] for i in range(want)})


def one_at_a_time(
    plan: SweepPlan,
    dataset: Dataset,
    trained: list[TrainedMember],
    *,
    usable: list[int],
    metric: str,
    shuffle_seed: int,
    device: Any,
) -> dict[str, Any]:
    """The estimate, with its sample: seconds per epoch per sampled value, and the total."""
    from ..engine import SequentialTrainer

    started = time.perf_counter()
    trainer = SequentialTrainer(
        dataset, metric=metric, device=device, shuffle_seed=shuffle_seed, track_train=True
    )
    per_epoch: dict[int, float] = {}
    sample = []
    # a cross-validated member is K fold members: one is timed, its cost counted K times
    folds = dataset.folds.k if dataset.folds is not None else 1
    fold = 0 if dataset.folds is not None else None
    for index in sampled_indices(plan, usable):
        epochs = min(SAMPLE_EPOCHS, plan.epochs)
        config = plan.config_for(plan.values[index]) if plan.param != "epochs" else plan.base
        result = trainer.train(config, seed=plan.member_seed(0), epochs=epochs, fold=fold)
        if result.status == "diverged" or not result.history:
            continue  # a partial epoch says nothing of a whole one's cost
        per_epoch[index] = folds * result.seconds / result.epochs_run
        sample.append(
            {
                "value": plan.labels()[index],
                "epochs": result.epochs_run,
                "seconds_per_epoch": per_epoch[index],
            }
        )
    if not per_epoch:
        return {"seconds": None, "sample": [], "sample_seconds": time.perf_counter() - started}
    total = 0.0
    for member in trained:
        if member.value_index is None:  # an epochs sweep: one run per value, alone
            spe = _nearest(per_epoch, 0)
            total += spe * sum(int(v) for v in plan.values)
        else:
            total += _nearest(per_epoch, member.value_index) * member.epochs
    return {
        "seconds": total,
        "sample": sample,
        "sample_seconds": time.perf_counter() - started,
    }


def _nearest(per_epoch: dict[int, float], index: int) -> float:
    """Seconds per epoch of value `index`: its own if sampled, else the nearest sampled
    value's (by position in the sweep)."""
    if index in per_epoch:
        return per_epoch[index]
    closest = min(per_epoch, key=lambda i: (abs(i - index), i))
    return per_epoch[closest]
