"""What every diagnostic returns (a Diagnosis), and what several of them ask of a study: its
evidence rows and which families of network its trials are.

A study may hold the dense network, convolutional networks and a user's own build; a
suggestion names only the knobs the study's trials have (raise dropout where they have Dense
layers, use fewer filters where they have convolutions, a user's build its own keys).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .trials import TrialView

MAX_EVIDENCE = 8


@dataclass
class Diagnosis:
    kind: str  # diverged, overfit, underfit, slow, wasted, edge, limit, linear, few_trials, ...
    title: str  # one sentence, the finding
    explanation: str  # why it happens, in plain words
    suggestion: str  # what to change
    evidence: list[dict[str, Any]] = field(default_factory=list)  # trial, epoch, value, note
    weight: float = 0.5  # 0..1: how much it matters, for ordering
    # The values the suggestion proposes for the space's keys (a new end of a range, a cap, a
    # value to fix), key -> value: each one the key's rule allows (space.rules), so a test can
    # hold every suggestion to it
    proposes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evidence(t: TrialView, epoch: int | None, value: float | None, note: str) -> dict[str, Any]:
    return {
        "trial": t.number,
        "epoch": epoch,
        "value": value if value is None or math.isfinite(value) else None,
        "note": note,
    }


def is_user_model(t: TrialView) -> bool:
    """A trial of a user's build(hp) (its configuration holds the build's own values)."""
    return bool(t.config.get("model"))


def has_dense_layers(t: TrialView) -> bool:
    return not is_user_model(t) and bool(t.params.get("layers"))


def has_convolutions(t: TrialView) -> bool:
    return not is_user_model(t) and bool(t.params.get("conv_layers"))


# A user's build's own keys that set its capacity, where it names them so
OWN_CAPACITY = ("units", "filters", "width", "channels", "hidden", "layers", "depth")


def capacity_knobs(trials: list[TrialView]) -> list[str]:
    """dltune's keys that set how much `trials`' networks can fit: units and layers where they
    have Dense layers, filters and conv_layers where they have convolutions."""
    knobs = []
    if any(has_dense_layers(t) for t in trials):
        knobs += ["units", "layers"]
    if any(has_convolutions(t) for t in trials):
        knobs += ["filters", "conv_layers"]
    return knobs


def own_capacity_knobs(trials: list[TrialView]) -> list[str]:
    """A user build's own keys among OWN_CAPACITY, as `trials` named them."""
    named = {k for t in trials if is_user_model(t) for k in t.config["model"]}
    return [k for k in OWN_CAPACITY if k in named]
