"""A study's Pareto front, and choosing one of its points (issue 18).

The front is the trials that no other trial dominates on the study's objectives: its metric
(validation value) and its costs (parameters, flops, latency...), as each trial recorded them;
the trials are the complete ones and those successive halving stopped after a whole epoch, each
at its best epoch (front_of). A study of one objective has a front of its own too, over the metric
and a cost every trial records before it trains (parameters, flops), so that "the smallest
network within 0.005 of the best accuracy" can be asked of any study.

    front = pareto_front(study)                  # objectives of the study
    front = pareto_front(study, costs=["parameters"])
    chosen = pick_point(front, "smallest within 0.005 of the best accuracy")

The arithmetic (dominance) is schedule.pareto's, shared with the scheduler.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import StudyError, param
from ..schedule.pareto import non_dominated_fronts
from ..storage import TrialRecord, directions, objective_names, read_trials

if TYPE_CHECKING:
    from collections.abc import Sequence

    import optuna

# "smallest": the network's size (parameters, else flops); "fastest": its latency at batch 1
# (else 256); "cheapest": the study's first cost objective, whatever it is.
_PICK_COSTS = {
    "smallest": ("parameters", "flops"),
    "fastest": ("latency", "latency_256"),
    "cheapest": (),
}
_WITHIN = re.compile(
    r"^\s*(?P<word>smallest|fastest|cheapest)\s+within\s+(?P<delta>[0-9]*\.?[0-9]+(?:e-?\d+)?)"
    r"\s*(?P<percent>%?)\s+of\s+the\s+best(?:\s+(?P<metric>[a-z_0-9]+))?\s*$",
    re.IGNORECASE,
)
PICK_EXAMPLES = (
    '"smallest within 0.005 of the best accuracy"',
    '"fastest within 1% of the best rmse"',
    "a trial number on the front, e.g. 12",
)


@dataclass
class Front:
    """The non-dominated trials of a study (front_of says which count), the most accurate
    first."""

    names: list[str]  # the objectives: the metric first, then the costs
    directions: list[str]  # "maximize" or "minimize", one per name
    points: list[TrialRecord]
    dominated: list[TrialRecord]  # the other trials counted (for the report's faded points)

    @property
    def metric(self) -> str:
        return self.names[0]

    @property
    def costs(self) -> list[str]:
        return self.names[1:]

    def values(self, record: TrialRecord) -> list[float]:
        """A trial's objectives, in the order of `names`."""
        return _values(record, self.costs)

    def to_json(self) -> list[dict[str, Any]]:
        """The front as `dltune best --json` lists it."""
        return [
            {
                "trial": record.number,
                "state": record.state,  # complete, or stopped by successive halving
                "values": dict(zip(self.names, self.values(record), strict=True)),
                "params": record.config,
                "best_epoch": record.best_epoch,
                "seed": record.seed,
            }
            for record in self.points
        ]


def pareto_front(
    study: optuna.Study, costs: Sequence[str] | None = None, *, stopped: bool = True
) -> Front:
    """The front of `study` on its own objectives, or on its metric and `costs` (names from
    vocabulary.COSTS, every one minimized); `stopped`: see front_of."""
    names = objective_names(study)
    ways = directions(study)
    if costs is not None:
        names, ways = [names[0], *costs], [ways[0], *("minimize" for _ in costs)]
    return front_of(read_trials(study), names, ways, stopped=stopped)


def front_of(
    records: Sequence[TrialRecord], names: list[str], ways: list[str], *, stopped: bool = True
) -> Front:
    """The front of `records` on the objectives `names` with directions `ways`: the complete
    trials with a finite metric and every cost measured, and with `stopped` also the trials
    successive halving stopped (pruned, or paused when the study ended) after a whole epoch,
    each at its best whole epoch (`value` and `best_epoch` set so: retrained for that many
    epochs, it is that model). A small network stopped early is a real trade-off point; under
    successive halving most trials are stopped, and a front of the complete alone is thin."""
    costs = names[1:]
    maximize = ways[0] == "maximize"
    candidates = [r if r.state == "complete" else _at_best_epoch(r, maximize) for r in records]
    counted = [
        r
        for r in candidates
        if r is not None
        and (r.state == "complete" or stopped)
        and all(_finite(v) for v in _values(r, costs))
    ]
    points = [_values(r, costs) for r in counted]
    first = set(non_dominated_fronts(points, ways)[0]) if points else set()
    sign = -1.0 if ways[0] == "maximize" else 1.0
    on_front = sorted(
        (counted[i] for i in first), key=lambda r: (sign * float(r.value or 0.0), r.number)
    )
    dominated = [r for i, r in enumerate(counted) if i not in first]
    return Front(list(names), list(ways), on_front, dominated)


STOPPED = ("pruned", "paused", "interrupted")  # trained for a while, neither broken nor done


def _at_best_epoch(record: TrialRecord, maximize: bool) -> TrialRecord | None:
    """A stopped trial as the model of its best whole epoch, or None (no whole epoch)."""
    if record.state not in STOPPED:
        return None
    finite = [(v, epoch) for epoch, v in enumerate(record.curve, 1) if _finite(v)]
    if not finite:
        return None
    sign = 1.0 if maximize else -1.0
    value, epoch = max(finite, key=lambda p: (sign * p[0], -p[1]))  # the first of the best
    return dataclasses.replace(record, value=value, best_epoch=epoch)


def _values(record: TrialRecord, costs: Sequence[str]) -> list[float]:
    metric = math.nan if record.value is None else float(record.value)
    measured = [record.cost(name) for name in costs]
    return [metric, *(math.nan if v is None else v for v in measured)]


def _finite(value: float) -> bool:
    return not math.isnan(value) and not math.isinf(value)


@dataclass(frozen=True)
class Pick:
    """A rule for choosing a point: a trial number, or the cheapest within `delta` of the best
    metric on `cost` ("smallest", "fastest" or "cheapest"), `delta` relative when `percent`."""

    text: str
    trial: int | None = None
    word: str | None = None
    delta: float = 0.0
    percent: bool = False
    metric: str | None = None  # as the rule named it (checked against the study's)


def parse_pick(value: str | int) -> Pick:
    """`--pick`'s value as a rule; a clear error for anything else."""
    text = str(value).strip()
    if re.fullmatch(r"#?\d+", text):
        return Pick(text, trial=int(text.lstrip("#")))
    match = _WITHIN.match(text)
    if match is None:
        raise StudyError(
            f"{param('pick', text)} is not a rule dltune knows; give "
            f"{', '.join(PICK_EXAMPLES[:-1])}, or {PICK_EXAMPLES[-1]}"
        )
    return Pick(
        text,
        word=match["word"].lower(),
        delta=float(match["delta"]),
        percent=bool(match["percent"]),
        metric=match["metric"].lower() if match["metric"] else None,
    )


def pick_costs(study: optuna.Study, rule: Pick) -> list[str] | None:
    """The costs the front of `rule` is taken on: the study's own objectives (None) when it
    has the cost the rule asks for, else that cost as every trial recorded it."""
    costs = objective_names(study)[1:]
    if rule.word is None or rule.word == "cheapest" or _cost_for(rule.word, costs):
        return None
    return [_PICK_COSTS[rule.word][0]]


def pick_point(front: Front, rule: Pick | str | int) -> TrialRecord:
    """The trial of `front` that `rule` chooses (see parse_pick)."""
    rule = rule if isinstance(rule, Pick) else parse_pick(rule)
    if not front.points:
        raise StudyError("the study has no complete trial yet; run it first")
    if rule.trial is not None:
        return _numbered(front, rule.trial)
    if rule.metric is not None and rule.metric != front.metric:
        raise StudyError(
            f"{param('pick', rule.text)} names the metric {rule.metric!r}, but the study's is "
            f"{front.metric!r}; write ... of the best {front.metric}"
        )
    cost = _cost_for(str(rule.word), front.costs)
    if cost is None:
        raise StudyError(
            f"{param('pick', rule.text)} needs a cost to compare, and the study has none "
            f"(objectives: {', '.join(front.names)}); give the space "
            f"objectives: [{front.metric}, parameters] or pick a trial number"
        )
    best = float(front.points[0].value or 0.0)
    margin = abs(best) * rule.delta / 100 if rule.percent else rule.delta
    maximize = front.directions[0] == "maximize"
    # The best point is always near: `margin` only admits more
    near = [r for r in front.points if _within(float(r.value or 0.0), best, margin, maximize)]
    index = front.names.index(cost)
    return min(near, key=lambda r: (front.values(r)[index], front.points.index(r)))


def _within(value: float, best: float, margin: float, maximize: bool) -> bool:
    return value >= best - margin if maximize else value <= best + margin


def _cost_for(word: str, costs: Sequence[str]) -> str | None:
    """The cost among `costs` that `word` compares on, or None."""
    if word == "cheapest":
        return costs[0] if costs else None
    return next((c for c in _PICK_COSTS[word] if c in costs), None)


def _numbered(front: Front, number: int) -> TrialRecord:
    for record in front.points:
        if record.number == number:
            return record
    shown = ", ".join(str(r.number) for r in front.points)
    where = next((r for r in front.dominated if r.number == number), None)
    reason = (
        "is dominated (another trial is better on every objective)"
        if where
        else ("is not a complete trial of the study")
    )
    raise StudyError(
        f"{param('pick', str(number))}: trial {number} {reason}; the front's trials are {shown}"
    )
