"""Defaults fitted to a short budget: the default space, the first trial and the choice's reserve
sized to what a timeout or an epoch budget can train, decided once in the plan (plan.py) from
the cost of training estimated on this machine (costs.py), and said in one note.

Why (issue 31): on 6,000 signals of length 40 (benchmarks/bumps.py) the default study at 30 s
spent its first trial's first epoch on the FCN (24 s on a loaded machine: a quarter of the
timeout by a flop count that left out each step's fixed cost), then a convolutional trial of
140-250 filters a block whose first epoch alone outlasted the timeout, and held a quarter of
the timeout back to re-evaluate trials the search had not yet found: the dense network alone,
searched for the same 30 s, did better. The rules, each applied only where its budget is
given:

- The default space's convolutional filters (a timeout on a CPU): the costliest convolutional
  trial the space allows (costliest: the most blocks, the largest kernel, no pooling, the
  smallest batch) must train its lowest rung in at most 1/SEARCH_RUNGS of the training the
  timeout gives (the timeout times the workers), so that the search reaches past TPE's 10
  random trials however wide they are drawn, and no trial's first rung outlasts a short
  timeout. The filters' high is halved until it does; where even the fewest filters do not,
  the space has no blocks (the dense network alone, as `conv_layers: 0` asks). A space the
  user gives is never narrowed. An epoch budget narrows nothing: it counts every network's
  epochs alike.
- The first trial (first_trial.py): for signals the FCN at the widest width the space holds
  whose whole training fits a quarter of the timeout (k-fold, where it is not paused) or
  whose lowest rung fits 1/SEARCH_RUNGS of the training (holdout), else the textbook dense
  network. In k-fold it stays unpaused whatever it costs: on digits at an epoch budget of
  100, the Keras convnet, unpaused, took all of it and delivered 0.9815 test accuracy (2
  seeds), where the same first trial paused like the others left a search that delivered
  0.974 and 0.967 (the dense network alone: 0.963 and 0.959).
- The reserve of `choose="auto"`'s re-evaluation (choice.py): kept only where the whole of it
  (the top k retrained with m seeds each) fits in it at the first trial's cost; a reserve
  that cannot hold it is spent for a partial round, or for nothing (a round not finished
  counts for nothing). Otherwise the best single run is chosen, and the search keeps the
  quarter. A rule asked for by name is kept as asked.

On a GPU (or Ray's cluster) this machine's CPU rates say nothing, and nothing is fitted to the
timeout there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .choice import RESERVE, ChoiceRule
from .first_trial import SEARCH_RUNGS, FirstTrial, first_trial

if TYPE_CHECKING:
    from ..space import SearchSpace
    from .costs import Cost


@dataclass(frozen=True)
class Facts:
    """What a run's budget is, for fitting its defaults to it."""

    timeout: float | None = None
    epoch_budget: float | None = None  # member-epochs, all workers together
    workers: int = 1
    members: int = 1  # fold members a trial trains (K in k-fold)
    timed: bool = True  # the cost estimate holds for where the run trains (a CPU)
    narrow: bool = False  # the space is dltune's default, which the budget may narrow
    rule: ChoiceRule = field(default_factory=ChoiceRule)
    rule_auto: bool = False  # the rule is choose="auto"'s: its reserve may be dropped

    @property
    def training(self) -> float | None:
        """Seconds of training the timeout gives, all workers together."""
        return self.timeout * self.workers if self.timeout is not None else None


@dataclass(frozen=True)
class BudgetFit:
    """What was fitted to the budget (the defaults: nothing)."""

    filters: int | None = None  # the default space's filters at most this (None: as it is)
    dense_only: bool = False  # the default space without convolutional blocks
    first: FirstTrial = field(default_factory=FirstTrial)
    reserve: bool = True  # the choice's reserve is kept
    note: str | None = None  # what was fitted and why, in one line (None: nothing)

    def space(self, space: SearchSpace) -> SearchSpace:
        """The part of `space` this run samples."""
        from ..space.narrowing import with_filters_at_most, without_blocks

        if self.dense_only:
            return without_blocks(space)
        return with_filters_at_most(space, self.filters) if self.filters else space


def fit_budget(facts: Facts, space: SearchSpace, cost: Cost) -> BudgetFit:
    """The run's defaults fitted to its budget, in `space` (fitted to the data), given the
    cost of a member-epoch of a configuration on this machine (costs.py)."""
    from ..space.narrowing import has_blocks

    training = facts.training if facts.timed else None
    timed = training is not None
    filters, dense_only, why_space = None, False, None
    if training is not None and facts.narrow and has_blocks(space):
        filters, dense_only, why_space = _filters(space, cost, training, facts.members)
    searched = BudgetFit(filters=filters, dense_only=dense_only).space(space)
    first = first_trial(
        searched, cost if timed else None, facts.timeout, facts.members, facts.training
    )
    whole = first.seconds
    if timed and whole is None:
        whole = space.epochs * facts.members * cost(first.config(searched))
    reserve, why_reserve = _reserve(facts, space.epochs, whole)
    why = [w for w in (why_space, first.why, why_reserve) if w]
    note = f"fitted to the budget ({_budget(facts)}): {'; '.join(why)}" if why else None
    return BudgetFit(filters, dense_only, first, reserve, note)


def _filters(
    space: SearchSpace, cost: Cost, training: float, members: int
) -> tuple[int | None, bool, str | None]:
    """The most filters a block may have (None: as the space says), whether no block fits
    (the dense network alone), and why, for `training` seconds of it."""
    from ..space.narrowing import costliest, filter_range

    allowed = training / SEARCH_RUNGS
    rung = space.min_epochs * members  # member-epochs of a trial's lowest rung
    fewest, widest = filter_range(space)
    most = widest
    seconds = rung * cost(costliest(space, most))
    while seconds > allowed and most > fewest:
        most = max(fewest, most // 2)
        seconds = rung * cost(costliest(space, most))
    share = f"1/{SEARCH_RUNGS} of {training:.0f} s of training"
    if seconds > allowed:
        why = (
            f"no convolutional blocks: even with {fewest} filters the costliest convolutional "
            f"trial's first rung would train about {seconds:.1f} s, more than {share}"
        )
        return None, True, why
    if most == widest:
        return None, False, None
    why = (
        f"convolutional blocks of at most {most} filters (not {widest}), so that the costliest "
        f"convolutional trial's first rung trains about {seconds:.1f} s, at most {share}"
    )
    return most, False, why


def _reserve(facts: Facts, epochs: int, seconds: float | None) -> tuple[bool, str | None]:
    """Whether the re-evaluation's reserve is kept: where the whole of it, at the first trial's
    cost, fits in it (see the module's note)."""
    rule = facts.rule
    if not (rule.reevaluates and facts.rule_auto):
        return True, None
    runs = rule.candidates * rule.seeds
    needs, has = [], []
    if facts.epoch_budget is not None and runs * epochs > RESERVE * facts.epoch_budget:
        needs.append(f"{runs * epochs} epochs")
        has.append(f"{RESERVE * facts.epoch_budget:g}")
    timeout = facts.timeout
    if timeout is not None and seconds is not None and runs * seconds > RESERVE * timeout:
        needs.append(f"about {runs * seconds:.0f} s")
        has.append(f"{RESERVE * timeout:.1f} s")
    if not needs:
        return True, None
    return False, (
        f"the best single run chosen, no reserve for {rule.name}'s re-evaluation: it would "
        f"train {' and '.join(needs)} at the first trial's cost, more than the "
        f"{' and '.join(has)} ({RESERVE:g} of the budget) it would hold back"
    )


def _budget(facts: Facts) -> str:
    parts = []
    if facts.timeout is not None:
        workers = f" on {facts.workers} workers" if facts.workers > 1 else ""
        parts.append(f"{facts.timeout:g} s{workers}")
    if facts.epoch_budget is not None:
        parts.append(f"{facts.epoch_budget:g} epochs")
    estimated = facts.timed and facts.timeout is not None
    return ", ".join(parts) + (", its costs estimated for this CPU" if estimated else "")
