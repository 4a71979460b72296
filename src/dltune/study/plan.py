"""A run resolved once, then executed: the Plan the main process makes from the settings, the
data and the arrangement, and that it and every worker process carry out as it is.

Each rule that turns what was asked into what runs is applied here, and nowhere else:

- the trial count: as given, or DEFAULT_TRIALS where neither a trial count nor a timeout bounds
  the run (`trial_count`);
- the deadline: the timeout after the run's start, made once (`make_plan`) as a wall-clock
  instant (time.time()). Every local process reads the same clock, so a worker reads the
  parent's deadline as it is: no time left is computed and handed on, and a worker that took
  seconds to start ends with the others (a time.perf_counter() instant means nothing in another
  process). A step of the system clock during a run moves it (time synchronization slews the
  clock of a running machine; it does not step it);
- what is held back from the search for the end (choice.held_back: re-evaluating the top
  trials, or retraining an ensemble's members): the search ends that share of the timeout
  before the deadline, on the rest of the epoch budget; the end spends the share;
- each worker's share of the trials and of the epochs (`share`);
- the arrangement (arrangement.py): processes, engine, threads, devices;
- what was fitted to a short budget (budget.py): the part of the default space the run samples,
  its first trial, whether the choice keeps its reserve (where it does not, the rule is the
  best single run and nothing is held back).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .budget import BudgetFit
from .choice import ChoiceRule, Reserve, held_back
from .loop import Budget
from .settings import DEFAULT_TRIALS

if TYPE_CHECKING:
    from .arrangement import Arrangement
    from .settings import TuneSettings


def trial_count(trials: int | None, timeout: float | None) -> int | None:
    """The trials a run starts: `trials`, or DEFAULT_TRIALS when neither it nor a timeout
    bounds the run (an epoch budget alone still starts at most DEFAULT_TRIALS)."""
    return DEFAULT_TRIALS if trials is None and not timeout else trials


def share(total: float | None, workers: int, index: int) -> Any:
    """Worker `index`'s part of a budget of `total` (trials or epochs), or None for no limit."""
    if total is None:
        return None
    if isinstance(total, int):
        return total // workers + (1 if index < total % workers else 0)
    return total / workers


@dataclass(frozen=True, kw_only=True)
class Plan:
    """One run, resolved: what every process of it executes."""

    # As validated, with what the main process resolved in place of names (the space, the
    # data with their folds, the storage's URL, the study's name, the build's record): a
    # worker opens the same study on the same arrays.
    settings: TuneSettings
    arrangement: Arrangement
    trials: int | None  # trials the run starts, all processes together (None: no count)
    epochs: float | None  # member-epochs the run trains, all together (the epoch budget)
    deadline: float | None  # time.time() by which the run ends, its end included
    search_ends: float | None  # time.time() by which the search ends (the deadline less the
    #                            share held back)
    rule: ChoiceRule  # how the best trial is chosen at the end (choice.py)
    held: float = 0.0  # share of the timeout and of the epoch budget held back for the end
    # What was fitted to a short budget (budget.py)
    fit: BudgetFit = field(default_factory=BudgetFit)

    @property
    def workers(self) -> int:
        return self.arrangement.workers

    @property
    def several(self) -> bool:
        return self.arrangement.workers > 1

    @property
    def engine(self) -> str:
        return self.arrangement.engine

    @property
    def threads(self) -> int | None:
        """Torch threads for each process beside others; None: one process leaves them be."""
        return self.arrangement.threads if self.several else None

    @property
    def parallel(self) -> bool:
        """Trials run side by side (a population, or several workers): samplers must know."""
        return self.arrangement.parallel

    @property
    def slots(self) -> int:
        """Trials trained at once by one process's engine."""
        return self.settings.population if self.engine == "population" else 1

    def device_of(self, worker: int) -> str:
        """The device worker `worker` trains on: its own where the arrangement spread the
        workers over devices; on a CPU run, the device as asked ("auto" resolves to it)."""
        if self.arrangement.devices == ("cpu",):
            return self.settings.device
        return self.arrangement.device_of(worker)

    def budget(self, worker: int) -> Budget:
        """Worker `worker`'s budget: its share of the trials and of the search's epochs,
        until the search ends."""
        epochs = share(self.epochs, self.workers, worker)
        return Budget(
            share(self.trials, self.workers, worker),
            self.search_ends,
            None if epochs is None else epochs * (1 - self.held),
        )

    def reserve(self) -> Reserve:
        """What the end may spend (the main process, once every worker ended): the share held
        back of the whole epoch budget, until the deadline."""
        return Reserve(None if self.epochs is None else self.epochs * self.held, self.deadline)


def make_plan(
    settings: TuneSettings,
    arrangement: Arrangement,
    rule: ChoiceRule,
    *,
    continued: bool,
    began: float,
    fit: BudgetFit | None = None,
) -> Plan:
    """The plan of a run that began at `began` (time.time()): its timeout turned into its
    deadline, here alone. `continued`: the study had complete trials before this run (an
    ensemble's members may then need retraining: choice.held_back). `fit`: what was fitted
    to its budget (budget.py; a reserve it drops leaves the best single run as the rule)."""
    fit = fit if fit is not None else BudgetFit()
    rule = rule if fit.reserve else ChoiceRule()
    held = held_back(rule, ensemble=continued)
    timeout = settings.timeout
    deadline = search_ends = None
    if timeout is not None:
        deadline = began + timeout
        search_ends = deadline - held * timeout
    return Plan(
        settings=settings,
        arrangement=arrangement,
        trials=trial_count(settings.trials, timeout),
        epochs=settings.epoch_budget,
        deadline=deadline,
        search_ends=search_ends,
        rule=rule,
        held=held,
        fit=fit,
    )
