"""The best value of a hyperparameter at an end of its range, and what to do about it.

Where the key's rule (space.rules: what values the key allows) leaves room past that end, the
optimum may lie beyond, and the reading says how far to widen the range: to a value the rule
allows, checked against it before it is shown. Where the end is the key's own floor or ceiling
(conv_layers 0, dropout 0, layers 32), there is nothing past it to try: the reading says what
the best trials' choice means instead ("the data may not need convolutions"), and suggests
fixing the key there, when most of the best trials share it.
"""

from __future__ import annotations

import math
from typing import Any

from ..space.rules import NETWORK_KEYS, value_rule
from .effects import top_trials
from .findings import MAX_EVIDENCE, Diagnosis, evidence, is_user_model
from .trials import StudyTrials, TrialView

EDGE_SHARE = 0.05  # within 5% of a range's width (log width for log ranges) of its end
LOG_STEP_MOST = 10.0  # a log range widens by at most a decade ...
LOG_STEP_LEAST = 2.0  # ... and at least doubles

# What the best trials' value at a key's own limit means, where it means more than "the end":
# (what they used, what that says, what to do)
LIMIT_MEANINGS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("conv_layers", "low"): (
        "no convolutions",
        "the data may not need them",
        "Keep the dense network: fix conv_layers: 0 in the space to give it every trial (tune "
        "filters, kernel_size and batch_norm first if you want to rule convolutions out).",
    ),
    ("dropout", "low"): (
        "no dropout",
        "these networks generalised without it",
        "Fix dropout: 0 in the space to spend the trials on the other keys.",
    ),
    ("weight_decay", "low"): (
        "no weight decay",
        "these networks generalised without it",
        "Fix weight_decay: 0 in the space to spend the trials on the other keys.",
    ),
    ("pool", "low"): (
        "no pooling",
        "their blocks did best keeping every position of the input",
        "Fix pool: 0 in the space to spend the trials on the other keys.",
    ),
}
# Said by another diagnostic: layers 0 is the linear model (diagnostics.linear_model)
SAID_ELSEWHERE = {("layers", "low")}


def edge_of_space(study: StudyTrials) -> list[Diagnosis]:
    """For each numeric key of the space whose best value lies at an end of its range: widen
    the range past it, or, at the key's own limit, what the best trials' choice means."""
    best = study.best()
    if best is None or len(study.scored) < 5:
        return []
    top = top_trials(study)
    found = []
    for name, spec in study.space.items():
        reading = _reading(name, spec, best, top)
        if reading is not None:
            found.append(reading)
    return found


def _reading(name: str, spec: Any, best: TrialView, top: list[TrialView]) -> Diagnosis | None:
    value = best.params.get(name)
    if _rule(name) is None or value is None or (is_user_model(best) and name in NETWORK_KEYS):
        return None  # not a numeric key of dltune's own (a user's build ignores NETWORK_KEYS)
    spec = _without_per_layer(spec)
    end = edge(spec, value, [t.params.get(name) for t in top])
    if end is None:
        return None
    beyond = widened(name, spec, end)
    if beyond is None:
        return _at_limit(name, spec, end, best, top)
    low, high = value_range(spec)
    at = high if end == "high" else low
    rule = value_rule(name)
    limit = rule.high if end == "high" else rule.low
    own_limit = f", the {'most' if end == 'high' else 'least'} it allows" if beyond == limit else ""
    return Diagnosis(
        kind="edge",
        title=(
            f"The best {name}, {_show(value)}, is at the {'top' if end == 'high' else 'bottom'} "
            f"of its range [{_show(low)}, {_show(high)}]"
        ),
        explanation=(
            "A best value at the end of a range means the optimum may lie beyond it: the "
            "search could not look there."
        ),
        suggestion=(
            f"Widen the range of {name} {'above' if end == 'high' else 'below'} {_show(at)} "
            f"({'up' if end == 'high' else 'down'} to {_show(beyond)}{own_limit})."
        ),
        evidence=_evidence(name, top),
        weight=0.55,
        proposes={name: beyond},
    )


def _at_limit(
    name: str, spec: Any, end: str, best: TrialView, top: list[TrialView]
) -> Diagnosis | None:
    """The best value at the key's own floor or ceiling: what it means, when most of the best
    trials are there (None when fewer are, or another diagnostic says it)."""
    if (name, end) in SAID_ELSEWHERE:
        return None
    there = [t for t in top if _near_end(spec, t.params.get(name), end)]
    if len(there) < 0.5 * len(top):
        return None
    rule, value = value_rule(name), best.params[name]
    limit = rule.low if end == "low" else rule.high
    used, meaning, suggestion = LIMIT_MEANINGS.get(
        (name, end),
        (
            f"{name} {_show(value)}",
            f"the {'lowest' if end == 'low' else 'highest'} value {name} allows",
            f"Keep {name} at {_show(value)}: fix it in the space to spend the trials on the other "
            "keys.",
        ),
    )
    share = f"All {len(top)}" if len(there) == len(top) else f"{len(there)} of the {len(top)}"
    return Diagnosis(
        kind="limit",
        title=f"{share} best trials used {used}: {meaning}",
        explanation=(
            f"{name} cannot go {'below' if end == 'low' else 'above'} {_show(limit)} (it must be "
            f"{rule.text()}), so there is no range to widen: the best trials chose the end of "
            "what the key allows."
        ),
        suggestion=suggestion,
        evidence=_evidence(name, top),
        weight=0.5 if name == "conv_layers" else 0.3,
        proposes={name: limit if (name, end) in LIMIT_MEANINGS else value},
    )


def widened(name: str, spec: Any, end: str) -> float | None:
    """A value past the range `spec`'s `end` ("low" or "high") that the key's rule allows: a
    step as wide as the range's own (a decade at most on a log scale, the next choice of a
    list), cut back to the rule; None where the end is the key's own limit."""
    rule = value_rule(name)
    low, high = value_range(spec)
    at, sign = (high, 1.0) if end == "high" else (low, -1.0)
    candidate = _step_past(spec, at, sign)
    if not rule.allows(candidate):
        bound = rule.high if sign > 0 else rule.low
        is_open = rule.high_open if sign > 0 else rule.low_open
        candidate = (at + bound) / 2 if is_open else bound
    if rule.kind == "int":
        candidate = float(round(candidate))
    if candidate == at or not math.isfinite(candidate) or not rule.allows(candidate):
        return None
    return int(candidate) if rule.kind == "int" else candidate


def _step_past(spec: Any, at: float, sign: float) -> float:
    """One step past `at`: the range's own step (a list's ratio or gap between its last two
    choices; one for a few integers; half the width, or a factor on a log scale)."""
    if isinstance(spec, dict) and "low" in spec and "high" in spec and not _few_integers(spec):
        low, high = float(spec["low"]), float(spec["high"])
        if spec.get("log") and low > 0:
            factor = min(LOG_STEP_MOST, max(LOG_STEP_LEAST, math.sqrt(high / low)))
            return at * factor**sign
        return at + sign * (high - low) / 2
    if isinstance(spec, dict) and _few_integers(spec):
        return at + sign
    numbers = sorted(float(v) for v in _choices(spec))
    if len(numbers) < 2:
        return at + sign
    near, next_in = (numbers[-1], numbers[-2]) if sign > 0 else (numbers[0], numbers[1])
    if near > 0 and next_in > 0 and max(near, next_in) / min(near, next_in) >= 1.5:
        return at * (max(near, next_in) / min(near, next_in)) ** sign  # 16, 32, 64: doubling
    return at + sign * abs(near - next_in)


def value_range(spec: Any) -> tuple[float, float]:
    if isinstance(spec, dict) and "choices" not in spec:
        return float(spec["low"]), float(spec["high"])
    numbers = [float(v) for v in _choices(spec) if _number(v)] or [math.nan]
    return min(numbers), max(numbers)


def edge(spec: Any, value: Any, top: list[Any]) -> str | None:
    """'low' or 'high' where `value` lies at an end of the range `spec`, else None."""
    if not _number(value):
        return None
    if isinstance(spec, dict) and _few_integers(spec):
        spec = list(range(int(spec["low"]), int(spec["high"]) + 1))
    if isinstance(spec, dict) and "low" in spec and "high" in spec:
        if float(spec["high"]) <= float(spec["low"]):
            return None
        return next((end for end in ("high", "low") if _near_end(spec, value, end)), None)
    choices = _choices(spec)
    if len(choices) < 3 or not all(_number(c) for c in choices):
        return None
    # among a few choices, the end one is only telling when most of the best trials chose it
    if sum(v == value for v in top) < 0.5 * len(top):
        return None
    if value == max(choices):
        return "high"
    return "low" if value == min(choices) else None


def _near_end(spec: Any, value: Any, end: str) -> bool:
    """Whether `value` lies at the `end` of `spec`: within EDGE_SHARE of a range's width (on
    its log scale where it has one), or that end's choice."""
    if not _number(value):
        return False
    if isinstance(spec, dict) and "low" in spec and "high" in spec and not _few_integers(spec):
        low, high = float(spec["low"]), float(spec["high"])
        log = bool(spec.get("log")) and low > 0 and value > 0
        scale = math.log if log else float
        width = scale(high) - scale(low)
        if end == "high":
            return bool(scale(value) >= scale(high) - EDGE_SHARE * width)
        return bool(scale(value) <= scale(low) + EDGE_SHARE * width)
    low, high = value_range(spec)
    return bool(value == (high if end == "high" else low))


def _few_integers(spec: dict[str, Any]) -> bool:
    """An integer range of a handful of values (layers 1-3) is judged like a list of choices."""
    low, high = spec.get("low"), spec.get("high")
    return isinstance(low, int) and isinstance(high, int) and high - low < 5


def _choices(spec: Any) -> list[Any]:
    """A list spec's choices (a mapping's `choices`; [] for a fixed value or other forms)."""
    if isinstance(spec, dict):
        if _few_integers(spec):
            return list(range(int(spec["low"]), int(spec["high"]) + 1))
        spec = spec.get("choices")
    return list(spec) if isinstance(spec, list) else []


def _without_per_layer(spec: Any) -> Any:
    """A per-layer spec as one range or list (each layer draws from it; the analysis compares
    the widest layer's value)."""
    if isinstance(spec, dict) and spec.get("per_layer") is True:
        return {k: v for k, v in spec.items() if k != "per_layer"}
    return spec


def _rule(name: str) -> Any:
    """The key's rule where it is a number dltune's space rules (None: a name, true/false, a
    key of no rule here, or epochs: the trials' best epoch, not the space's maximum)."""
    if name == "epochs":
        return None
    try:
        rule = value_rule(name)
    except KeyError:
        return None
    return rule if rule.kind in ("int", "float") else None


def _show(value: float) -> str:
    """A value as a space file would write it: whole numbers whole, others to 12 figures (so
    that a proposal never reads as the end it widens)."""
    return str(int(value)) if float(value).is_integer() else f"{value:.12g}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _evidence(name: str, top: list[TrialView]) -> list[dict[str, Any]]:
    return [
        evidence(t, t.best_epoch, t.score, f"{name} {_show(t.params[name])}")
        for t in top
        if _number(t.params.get(name))
    ][:MAX_EVIDENCE]
