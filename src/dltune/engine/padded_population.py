"""The padded part of a population: the built-in dense networks, in buckets of padded widths.

Members are grouped into buckets (bucket.py) by batch size and depth, with each hidden layer's
width rounded up to a point of a ladder (four points per octave: 16, 20, 24, 28, 32, 40, ...),
so that similar shapes share a bucket and padding wastes at most a quarter of a layer's width.
Padding with masks beats exact-shape buckets here because the default space's widths are so
diverse that exact buckets would hold one member each; see benchmarks/RESULTS.md.
"""

from __future__ import annotations

import itertools
from typing import Any

from ..config import Config
from .bucket import Bucket
from .bucket_base import Member
from .device_data import DeviceData
from .memory import member_bytes
from .stacked_optim import UpdateKernel
from .stacked_population import StackedPopulation, Tally


def ladder_width(width: int) -> int:
    """The smallest point of the width ladder at or above `width` (4 points per octave)."""
    if width <= 4:
        return width
    octave = 1 << (width.bit_length() - 1)  # the power of two at or below width
    for quarter in (4, 5, 6, 7, 8):
        point = octave * quarter // 4
        if point >= width:
            return point
    return 2 * octave  # pragma: no cover - 8 quarters of an octave reach the next octave


class PaddedPopulation(StackedPopulation[Bucket]):
    """Dense members of the built-in family, padded into shared buckets (see the module)."""

    kind = "member"

    def __init__(
        self,
        tensors: DeviceData,
        kernel: UpdateKernel,
        tally: Tally,
        *,
        shuffle_seed: int,
        segments: int,
        track_train: bool,
        pad_widths: bool,
        max_padding: float,
    ) -> None:
        super().__init__(
            tensors,
            kernel,
            tally,
            shuffle_seed=shuffle_seed,
            segments=segments,
            track_train=track_train,
        )
        self.pad_widths = pad_widths
        # How many times its own arithmetic a member may cost once padded into a wider bucket
        # (1: only the width ladder's rounding). See _plan.
        self.max_padding = max_padding

    def takes(self, member: Any) -> bool:
        return type(member) is Member  # not a ModuleMember: that one is the module part's

    def member_bytes(self, config: Config) -> int:
        return member_bytes(
            config, self.tensors.n_features, self.tensors.n_outputs, self._own_widths(config)
        )

    def admit(self) -> None:
        """Place the waiting members: into an open bucket of their batch size, depth and
        segment whose widths hold theirs at a bounded padding cost, or into new buckets."""
        rest = []
        for member in self.pending:
            bucket = self._bucket_for(member)
            if bucket is not None:
                bucket.add([member])
            else:
                rest.append(member)
        for widths, members in self._plan(rest):
            bucket = Bucket(self.tensors, members[0].config.batch_size, widths, self.kernel)
            bucket.add(members)
            self.buckets.append(bucket)
        self.pending = []

    def _own_widths(self, config: Config) -> tuple[int, ...]:
        return tuple(ladder_width(u) for u in config.units) if self.pad_widths else config.units

    def _cost(self, widths: tuple[int, ...]) -> int:
        """Multiply-adds per row of a network of these widths (the padding's measure)."""
        dims = (self.tensors.n_features, *widths, self.tensors.n_outputs)
        return sum(a * b for a, b in itertools.pairwise(dims))

    def _fits(self, config: Config, widths: tuple[int, ...]) -> bool:
        own = self._own_widths(config)
        return (
            len(own) == len(widths)
            and all(a <= b for a, b in zip(own, widths, strict=True))
            and self._cost(widths) <= self.max_padding * self._cost(own)
        )

    def _bucket_for(self, member: Member) -> Bucket | None:
        candidates = [
            b
            for b in self.buckets
            if b.batch_size == member.config.batch_size
            and b.segment == member.segment
            and self._fits(member.config, b.widths)
        ]
        return min(candidates, key=lambda b: self._cost(b.widths), default=None)

    def _plan(self, members: list[Member]) -> list[tuple[tuple[int, ...], list[Member]]]:
        """Group members of one batch size, depth and segment into buckets, widest first: a
        bucket takes every member whose cost padded to its widths is at most max_padding
        times its own.

        Padding wastes arithmetic but shares the per-step overhead, which is what small
        networks spend their time on; max_padding bounds the waste.
        """
        groups: dict[tuple[int, int, int], list[Member]] = {}
        for member in members:
            config = member.config
            groups.setdefault((config.batch_size, config.layers, member.segment), []).append(member)
        plan = []
        for group in groups.values():
            left = sorted(group, key=lambda m: -self._cost(self._own_widths(m.config)))
            while left:
                widths = self._own_widths(left[0].config)
                taken = [m for m in left if self._fits(m.config, widths)]
                plan.append((widths, taken))
                left = [m for m in left if m not in taken]
        return plan
