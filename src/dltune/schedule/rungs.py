"""Where the rungs of successive halving sit, in epochs, and which bracket a trial belongs to.

Rung k of the base ladder sits at min_epochs * reduction**k epochs, up to the space's epochs (the
last rung). Rungs under one epoch are fractions of an epoch (a multiple of 1 / segments, so that
the engines can stop there); rungs of an epoch or more are rounded to whole epochs, where the
learning curve is recorded. Hyperband's bracket b is the same ladder started b rungs higher.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Rungs:
    """The rung ladder of a study: min_epochs, reduction factor, max_epochs, brackets."""

    min_epochs: float
    max_epochs: int
    reduction: int = 3
    hyperband: bool = False

    def __post_init__(self) -> None:
        # Plain ValueErrors: the space parser checks user input before it gets here.
        if not 0 < self.min_epochs <= self.max_epochs:
            raise ValueError(f"min_epochs must be in (0, {self.max_epochs}], got {self.min_epochs}")
        if self.reduction < 2:
            raise ValueError(f"reduction must be >= 2, got {self.reduction}")

    @cached_property
    def segments(self) -> int:
        """Into how many equal parts an epoch is cut: 1 unless a rung falls inside an epoch."""
        if self.min_epochs >= 1:
            return 1
        return max(1, round(1 / self.min_epochs))

    @cached_property
    def base(self) -> tuple[float, ...]:
        """The rungs of bracket 0, in epochs, ascending; the last is max_epochs."""
        rungs: list[float] = []
        k = 0
        while True:
            raw = self.min_epochs * self.reduction**k
            if raw >= self.max_epochs * (1 - 1e-9):
                break
            rung = self._snap(raw)
            if not rungs or rung > rungs[-1]:
                rungs.append(rung)
            k += 1
        if not rungs or rungs[-1] < self.max_epochs:
            rungs.append(float(self.max_epochs))
        return tuple(rungs)

    def _snap(self, epochs: float) -> float:
        if epochs >= 1:
            return float(math.floor(epochs + 0.5))
        parts = self.segments
        return max(1, round(epochs * parts)) / parts

    @property
    def n_brackets(self) -> int:
        return len(self.base) if self.hyperband else 1

    def of_bracket(self, bracket: int) -> tuple[float, ...]:
        """Bracket b's rungs: the base ladder without its b lowest rungs."""
        return self.base[bracket:]

    @cached_property
    def _bracket_cycle(self) -> tuple[int, ...]:
        """One cycle of bracket assignments, each bracket as often as Hyperband gives it
        configurations: the bracket that starts s halvings below max_epochs gets
        ceil((s_max + 1) / (s + 1) * reduction**s) of them. Interleaved (smooth weighted
        round robin) so that every bracket starts early in a study."""
        s_max = len(self.base) - 1
        weights = [
            math.ceil((s_max + 1) / (s + 1) * self.reduction**s)
            for s in (s_max - b for b in range(self.n_brackets))
        ]
        credit = [0] * len(weights)
        cycle = []
        for _ in range(sum(weights)):
            credit = [c + w for c, w in zip(credit, weights, strict=True)]
            chosen = max(range(len(weights)), key=lambda b: credit[b])
            credit[chosen] -= sum(weights)
            cycle.append(chosen)
        return tuple(cycle)

    def bracket_of(self, trial_number: int) -> int:
        """A trial's bracket, from its number alone, so a resumed study assigns the same."""
        if not self.hyperband:
            return 0
        cycle = self._bracket_cycle
        return cycle[trial_number % len(cycle)]

    def describe(self) -> str:
        shown = ", ".join(f"{r:g}" for r in self.base)
        kind = f"Hyperband, {self.n_brackets} brackets" if self.hyperband else "ASHA"
        return f"{kind}: rungs at {shown} epochs, the top 1/{self.reduction} promoted"
