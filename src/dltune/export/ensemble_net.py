"""Several trained networks as one: the ensemble that greedy selection chose (study/ensemble.py),
as a torch module that predicts, saves and exports like a single network.

A member is one trained network with its configuration and weight. A k-fold study's member is a
trial's configuration bagged: its K fold models appear as K members of weight w/K each (the
trial and fold recorded with each). The weights sum to 1.

The module (`EnsembleNetwork`) takes standardized features, as every network does, and gives:

- classification: the log of the weighted average of the members' class probabilities, each
  member's probabilities read from its outputs by its own loss (`probabilities`): softmax of it
  gives back the mixture, and its largest entry is the mixture's most probable class. So the
  head reads an ensemble's outputs as a softmax network's, whatever the members' losses were
  (an ensemble's Preprocessing says categorical_crossentropy);
- regression: the weighted average of the members' outputs (standardized targets, all members
  sharing the model's target scaling).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from ..config import Config
from ..errors import ModelError, param
from ..nets import NetworkFactory
from ..nets.dense import probabilities

# How the head reads an ensemble classifier's outputs (log-probabilities: softmax gives them back)
ENSEMBLE_LOSS = "categorical_crossentropy"
PREFIX = "members"  # member i's tensors are "members.i.<name>" in the ensemble's state
WEIGHT_SUM_TOLERANCE = 1e-6
# The floor of the mixture before its log: float32's smallest normal number, so that a class no
# member gives any probability reads as a very negative, finite output rather than -inf.
TINY = torch.finfo(torch.float32).tiny


@dataclass(frozen=True)
class EnsembleMember:
    """One trained network of an ensemble: its configuration, weights (a state dict as the
    network factory's module takes it), its weight in the average, and where it came from."""

    config: Config
    state: dict[str, torch.Tensor]
    weight: float
    trial: int | None = None
    fold: int | None = None  # a k-fold study's fold model; None: trained on all of its rows


class Member(NamedTuple):
    """What `TunedModel.members` lists for each network: (trial, fold, weight, config)."""

    trial: int | None
    fold: int | None
    weight: float
    config: Config


class EnsembleNetwork(nn.Module):
    """The members' networks, one weighted average: standardized features (N, F) in;
    log-probabilities (N, K) or standardized values (N, 1) out."""

    weights: torch.Tensor  # (M,) float32, not part of the state: config.json holds them

    def __init__(
        self,
        networks: Sequence[nn.Module],
        weights: Sequence[float],
        losses: Sequence[str],
        task: str,
    ) -> None:
        super().__init__()
        self.members = nn.ModuleList(networks)
        self.register_buffer(
            "weights", torch.tensor(list(weights), dtype=torch.float32), persistent=False
        )
        self.losses = tuple(losses)
        self.task = task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total: torch.Tensor | None = None
        for i, (network, loss) in enumerate(zip(self.members, self.losses, strict=True)):
            outputs = network(x)  # (N, K) raw
            if self.task == "classification":
                outputs = probabilities(outputs, loss)
            term = outputs * self.weights[i]
            total = term if total is None else total + term
        if total is None:  # pragma: no cover - checked_members refuses an empty ensemble
            raise ModelError("an ensemble needs at least one member")
        if self.task == "classification":
            return torch.log(total.clamp_min(TINY))
        return total


def checked_members(members: Sequence[EnsembleMember]) -> list[EnsembleMember]:
    """The members as given, or a ModelError: at least one, each an EnsembleMember with a
    positive finite weight, the weights summing to 1."""
    members = list(members)
    if not members:
        raise ModelError(f"{param('members')} is empty: an ensemble needs at least one member")
    for i, member in enumerate(members):
        if not isinstance(member, EnsembleMember):
            raise ModelError(
                f"{param('members')}[{i}] is a {type(member).__name__}; give EnsembleMember("
                "config, state, weight, trial, fold)"
            )
        weight = member.weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ModelError(f"{param('members')}[{i}].weight is {weight!r}; give a number")
        if not (math.isfinite(weight) and weight > 0):
            raise ModelError(
                f"{param('members')}[{i}].weight is {weight!r}; a weight must be above 0 "
                "(leave out a member of weight 0)"
            )
    total = math.fsum(m.weight for m in members)
    if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise ModelError(
            f"the weights of {param('members')} sum to {total!r}, not 1; divide each by their sum"
        )
    return members


def ensemble_network(
    members: Sequence[EnsembleMember], task: str, n_outputs: int, build: NetworkFactory
) -> EnsembleNetwork:
    """Each member's network built by `build` from its own configuration, its state loaded
    (a RuntimeError naming the member when the state does not fit), in evaluation mode."""
    networks = []
    for i, member in enumerate(members):
        network = build(member.config, n_outputs, seed=0, device="cpu")
        try:
            network.load_state_dict(member.state)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise RuntimeError(f"member {i} ({describe(member)}): {first}") from None
        networks.append(network.eval())
    weights = [float(m.weight) for m in members]
    losses = [m.config.loss for m in members]
    return EnsembleNetwork(networks, weights, losses, task).eval()


def describe(member: EnsembleMember | Member) -> str:
    """'trial 7, fold 2' (or what of it is known)."""
    parts = [f"trial {member.trial}" if member.trial is not None else "no trial"]
    if member.fold is not None:
        parts.append(f"fold {member.fold}")
    return ", ".join(parts)


def heaviest(members: Sequence[EnsembleMember]) -> Config:
    """The configuration of the trial with the largest total weight (a trial's folds summed;
    a member without a trial counts alone); ties: the first given."""
    totals: dict[object, float] = {}
    first: dict[object, Config] = {}
    for i, member in enumerate(members):
        key: object = member.trial if member.trial is not None else ("member", i)
        totals[key] = totals.get(key, 0.0) + member.weight
        first.setdefault(key, member.config)
    best = max(totals, key=lambda k: totals[k])  # max keeps the first of equals
    return first[best]


def member_states(
    state: dict[str, torch.Tensor], count: int, where: str
) -> list[dict[str, torch.Tensor]]:
    """An ensemble's flat state ("members.i.<name>") split into its `count` members' states;
    a ModelError naming `where` when a tensor belongs to no member or a member has none."""
    states: list[dict[str, torch.Tensor]] = [{} for _ in range(count)]
    for key, tensor in state.items():
        head, _, rest = key.partition(".")
        index, _, name = rest.partition(".")
        if head != PREFIX or not index.isdigit() or int(index) >= count or not name:
            raise ModelError(
                f"{where}: the tensor {key!r} belongs to none of the {count} members "
                f"(their names start with '{PREFIX}.0.' to '{PREFIX}.{count - 1}.'); write the "
                "folder again"
            )
        states[int(index)][name] = tensor
    empty = [i for i, s in enumerate(states) if not s]
    if empty:
        raise ModelError(f"{where}: member(s) {empty} have no tensors; write the folder again")
    return states
