"""Which Ray actors a study starts, and where: plain data from the cluster's node list.

Population actors (the default): one per node that has no GPU, holding every CPU of the node
(its torch threads) and a population of `population` trials; on a node with GPUs, one per GPU
(device cuda, that GPU alone), the node's CPUs shared among them. One process per device: the
population engine stacks the trials, so more processes would only split its batches.

Sequential actors (the old arrangement, for what a population cannot train or to compare): one
per CPU, one torch thread, one trial at a time.

Each actor is pinned to its node (Ray's node affinity), so that the plan is what runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import StudyError, param

KINDS = ("population", "sequential")


@dataclass(frozen=True)
class ActorPlan:
    """One actor: its node, what it reserves there, and how it trains.

    `memory`: the population's memory budget as given (None or "auto": the actor resolves
    it on its device, see engine/memory.py); `share`: how many actors split a given budget
    (the node's GPUs: the budget is the node's).
    """

    node: str  # Ray's node id
    kind: str  # "population" or "sequential"
    device: str  # "cpu" or "cuda" (the GPU Ray gives the actor)
    cpus: float  # CPUs reserved from Ray
    gpus: int  # 0 or 1
    threads: int  # torch threads
    slots: int  # trials trained at once
    memory: int | str | None = None
    share: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """E.g. "a population of 16, cpu, 4 threads"."""
        threads = f"{self.threads} thread{'s' if self.threads != 1 else ''}"
        trials = f"a population of {self.slots}" if self.kind == "population" else "one trial"
        return f"{trials}, {self.device}, {threads}"


def plan_actors(
    nodes: list[dict[str, Any]],
    *,
    kind: str = "population",
    device: str = "auto",
    population: int = 16,
    memory: int | str | None = None,
) -> list[ActorPlan]:
    """The actors for the cluster's `nodes` (ray.nodes(): NodeID, Alive, Resources).

    `device`: "cpu" ignores GPUs; "auto" uses them where a node has them (CPU actors
    elsewhere); "cuda" (or "cuda:N") trains on GPUs only, a StudyError if the cluster has
    none. Dead nodes and nodes with neither CPU nor GPU get no actor.
    """
    if kind not in KINDS:
        raise StudyError(
            f"{param('engine', kind)} is not a Ray actor's engine; choose from {', '.join(KINDS)}"
        )
    gpu_only = device.startswith("cuda")
    plans: list[ActorPlan] = []
    for node in nodes:
        if not node.get("Alive", False):
            continue
        resources = node.get("Resources", {})
        cpus = float(resources.get("CPU", 0))
        gpus = int(resources.get("GPU", 0)) if device != "cpu" else 0
        node_id = str(node["NodeID"])
        if kind == "sequential":
            if gpu_only:
                plans += [_gpu_actor(node_id, "sequential", cpus, gpus, 1, memory)] * gpus
            else:
                plans += [ActorPlan(node_id, "sequential", "cpu", 1, 0, 1, 1)] * int(cpus)
        elif gpus > 0:
            plans += [_gpu_actor(node_id, kind, cpus, gpus, population, memory)] * gpus
        elif cpus >= 1 and not gpu_only:
            threads = int(cpus)
            plans.append(ActorPlan(node_id, kind, "cpu", cpus, 0, threads, population, memory))
    if gpu_only and not plans:
        raise StudyError(
            f"{param('device', device)}: no node of the Ray cluster has a GPU; use "
            f"{param('device', shown='auto')} or {param('device', shown='cpu')}"
        )
    return plans


def _gpu_actor(
    node: str, kind: str, cpus: float, gpus: int, slots: int, memory: int | str | None
) -> ActorPlan:
    """One of a node's `gpus` GPU actors: its GPU, an equal part of the node's CPUs."""
    share = cpus / gpus
    explicit = memory is not None and not (isinstance(memory, str) and memory.lower() == "auto")
    return ActorPlan(
        node, kind, "cuda", share, 1, max(1, int(share)), slots, memory, gpus if explicit else 1
    )
