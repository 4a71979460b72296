"""The trade-offs of a study of several objectives (issue 18): its Pareto front as the report
draws it, and what the front says in plain words.

A study of one objective has no front here (its report is unchanged). The front is
dltune.study.front's: the trials (complete, or stopped after a whole epoch, at their best
epoch) that no other dominates, on the metric and the costs (parameters, flops, latency) the
study was told.

The readings, each a Diagnosis of kind "front" with its evidence:
- the cheapest point within a small margin of the best metric (0.005 of an accuracy, 1% of an
  error), and how many times fewer parameters (or less latency) it has, with the command that
  trains it;
- the widest network past which no run was more accurate (the most accurate trial's units,
  when wider runs were tried);
- points on the front only for their size: a network at chance accuracy is "small" and
  nothing else, and the pick rule's margin leaves it out.
"""

from __future__ import annotations

from typing import Any

from ..study.front import Front, front_of, pick_point
from .diagnostics import Diagnosis
from .trials import StudyTrials

ACCURACY_MARGIN = 0.005  # absolute, for a metric in [0, 1] to maximize
ERROR_MARGIN_PERCENT = 1.0  # relative, for an error (rmse, mae, ...)
WORTH_SAYING = 1.5  # a cheaper point is worth a diagnosis at this ratio or more
CHANCE_SLACK = 0.02  # within this of 1/classes counts as chance


def study_front(trials: StudyTrials) -> Front | None:
    """The study's front, or None for a study of one objective."""
    if len(trials.objectives) < 2:
        return None
    return front_of(trials.trials, trials.objectives, trials.directions)


def front_view(trials: StudyTrials) -> dict[str, Any] | None:
    """The front as plain data for the report: every counted trial's objectives, the front's
    first, the most accurate first."""
    front = study_front(trials)
    if front is None:
        return None

    def point(record: Any) -> dict[str, Any]:
        return {
            "trial": record.number,
            "values": dict(zip(front.names, front.values(record), strict=True)),
            "config": record.config,
        }

    return {
        "names": front.names,
        "directions": front.directions,
        "points": [point(r) for r in front.points],
        "dominated": [point(r) for r in front.dominated],
        "pick": pick_rule(front),
    }


def pick_rule(front: Front) -> str:
    """The pick the readings suggest: the cheapest within the margin of the best metric."""
    word = "fastest" if front.costs and front.costs[0].startswith("latency") else "smallest"
    if front.directions[0] == "maximize":
        return f"{word} within {ACCURACY_MARGIN} of the best {front.metric}"
    return f"{word} within {ERROR_MARGIN_PERCENT:g}% of the best {front.metric}"


def read_front(trials: StudyTrials) -> list[Diagnosis]:
    """What the front says (see the module's note); nothing for a study of one objective."""
    front = study_front(trials)
    if front is None or not front.points:
        return []
    return [*_cheaper_point(front), *_no_wider_gain(trials, front), *_at_chance(trials, front)]


def _cheaper_point(front: Front) -> list[Diagnosis]:
    rule = pick_rule(front)
    cost = front.costs[0]
    best = front.points[0]
    picked = pick_point(front, rule)
    index = front.names.index(cost)
    best_cost, picked_cost = front.values(best)[index], front.values(picked)[index]
    if picked is best or picked_cost <= 0 or best_cost / picked_cost < WORTH_SAYING:
        return []
    ratio = best_cost / picked_cost
    metric = front.metric
    word, _, margin = rule.partition(" within ")
    fewer = "less latency" if cost.startswith("latency") else f"fewer {cost}"
    return [
        Diagnosis(
            kind="front",
            title=(
                f"The {word} network within {margin} has {_times(ratio)} {fewer}: trial "
                f"#{picked.number} ({metric} {picked.value:.4f}, {_amount(picked_cost, cost)}) "
                f"against the most accurate, #{best.number} ({best.value:.4f}, "
                f"{_amount(best_cost, cost)})."
            ),
            explanation=(
                "The front holds the trials no other trial beats on every objective. Past a "
                f"point, a larger network buys little {metric}; a model to deploy is often "
                "the cheapest one that is nearly as good."
            ),
            suggestion=f'dltune train-best --pick "{rule}" -o model/',
            evidence=[_point_evidence(front, r) for r in front.points[:8]],
            weight=0.8,
        )
    ]


def _no_wider_gain(trials: StudyTrials, front: Front) -> list[Diagnosis]:
    """No run wider than the most accurate one was more accurate (when some were tried)."""
    best = front.points[0]
    complete = [t for t in trials.trials if t.state == "complete" and t.widths]
    if not best.widths:
        return []
    width = max(best.widths)
    wider = [t for t in complete if max(t.widths) > width]
    if len(wider) < 2:
        return []
    top = (
        max(wider, key=lambda t: t.value or 0.0)
        if front.directions[0] == "maximize"
        else (min(wider, key=lambda t: t.value or 0.0))
    )
    return [
        Diagnosis(
            kind="front",
            title=(
                f"Above {width} units no run was more accurate: {len(wider)} wider runs "
                f"reached at best {front.metric} {top.value:.4f}, against {best.value:.4f} "
                f"with {width}."
            ),
            explanation=(
                "Wider layers cost parameters and time per example; here they did not buy "
                f"{front.metric}."
            ),
            suggestion=f"Lower the top of units to about {width} in the space.",
            evidence=[
                {"trial": t.number, "units": max(t.widths), "value": t.value}
                for t in sorted(wider, key=lambda t: -(t.value or 0.0))[:8]
            ],
            weight=0.45,
        )
    ]


def _at_chance(trials: StudyTrials, front: Front) -> list[Diagnosis]:
    """Front points that are there only for being small: their accuracy is chance."""
    classes = trials.data.get("classes")
    if front.metric != "accuracy" or not classes:
        return []
    chance = 1.0 / int(classes)
    idle = [r for r in front.points if (r.value or 0.0) <= chance + CHANCE_SLACK]
    if not idle:
        return []
    shown = ", ".join(f"#{r.number}" for r in idle)
    return [
        Diagnosis(
            kind="front",
            title=(
                f"{shown} {'is' if len(idle) == 1 else 'are'} on the front only for "
                f"{'its' if len(idle) == 1 else 'their'} size: accuracy about chance "
                f"(1/{classes} = {chance:.3f})."
            ),
            explanation=(
                "A network that learned nothing is still the smallest of its kind, so no "
                "trial dominates it. It is no trade-off: pick within a margin of the best."
            ),
            suggestion=f'dltune train-best --pick "{pick_rule(front)}" -o model/',
            evidence=[_point_evidence(front, r) for r in idle[:8]],
            weight=0.3,
        )
    ]


def _point_evidence(front: Front, record: Any) -> dict[str, Any]:
    return {"trial": record.number, **dict(zip(front.names, front.values(record), strict=True))}


def _times(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:.0f}x"


def _amount(value: float, cost: str) -> str:
    if cost.startswith("latency"):
        return f"{value:.3g} ms"
    return f"{int(value):,} {cost}"
