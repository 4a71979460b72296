"""How a study is laid out on this machine: how many worker processes, which engine each runs,
how many torch threads each uses and on which device. `workers="auto"` and `engine="auto"` (the
defaults) are resolved here, once, from plain facts; an explicit number or engine is obeyed.

Why these rules (measured on the 2-core development machine; commands in benchmarks/):

- CPU: one single-threaded worker per core, each with its own engine, on one study through
  storage. The small networks of a study leave a core's arithmetic mostly idle when one process
  trains them with several threads (issue 16: 851 epochs in 120 s with one worker against 2972
  with ``--workers 2``).
- The engine each CPU worker runs: ENGINE_ON_CPU, the sequential one. Measured with two
  single-threaded workers on the default space, ``--epoch-budget 200 --seed 0``
  (``python benchmarks/arrangement.py --data digits mnist --arrangements w2-sequential
  w2-population --seeds 0 --epoch-budget 200``; the 2-core machine loaded 3-6x by other jobs,
  so the times are rough): on digits, sequential 146 s (best val 0.9926, 47 trials) against
  population 396 s (0.9889, 93 trials, populations filled by shape). On mnist-10k the
  sequential pair took 3290 s for the 200 epochs (best val 0.9853, 45 trials) with the cores
  loaded about 6x; the population pair was not finished in the time there was: to be
  measured on an idle machine (the same command). On the default space
  (mostly convolutional trials, few sharing a shape) a CPU population pays its stacking
  overhead without the arithmetic to hide it in; revisit when populations fill better.
- Small jobs stay in one process: a worker costs its start-up (spawn, import torch, open the
  study: WORKER_START_SECONDS, measured by timing a spawned child's imports and study opening)
  before it trains anything, and the parent waits for it at the end. Below PARALLEL_SECONDS of
  estimated training the second process cannot win back its start; the estimate (the job's
  epochs times the seconds per epoch of its data, per trial overhead beside) is rough on
  purpose: it only has to tell a test's few trials on blobs from a real study.
- GPU: one process per device (cuda:0..n-1), each training a population: a GPU is fed by
  stacking trials, not by more processes on it.
- Fallbacks, each with a note that says the fix, never an error: an in-memory storage (children
  cannot open it), a user model another process cannot import, Ray (it places its own actors),
  and a script run as __main__ without an ``if __name__ == "__main__":`` guard ("spawn" would
  run the script again in every child).

This module imports neither torch nor optuna: `facts` asks torch only for the CUDA devices.
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

AUTO = "auto"

# What each CPU worker runs when the engine is "auto" (measured: see above).
ENGINE_ON_CPU = "sequential"

# spawn + import torch and dltune + open a SQLite study (python benchmarks/arrangement.py
# --startup): 2.5 s on the idle 2-core machine (17-21 s with its cores loaded about 6x).
WORKER_START_SECONDS = 2.5
# Estimated training below which one process wins. Measured on digits, 1 seed, the machine
# idle (python benchmarks/arrangement.py --data digits --seeds 0 --epoch-budget E): E=60
# (about 15 s estimated) 20.2 s with two workers against 17.8 s in one process (x0.88); E=150
# (about 36 s) 28.0 s against 29.5 s (x1.05). The start, the parent's wait for the slower
# worker and the work done once at the end (the choice, the test) are paid either way.
PARALLEL_SECONDS = 30.0
# Seconds per example-epoch per input feature on one core for the default space (dense and
# convolutional trials mixed; measured on digits, 30 epochs in one single-threaded process:
# 1.5e-5 with the cores loaded about 5x), and what every trial costs beside its epochs.
SECONDS_PER_EXAMPLE_FEATURE = 3e-6
TRIAL_OVERHEAD_SECONDS = 0.1
EPOCHS_PER_TRIAL = 3  # about what a trial trains under successive halving (rung 1, some on)


@dataclass(frozen=True)
class Facts:
    """What the arrangement is chosen from, gathered by `facts` (or given by a test)."""

    cpus: int  # cores this process may run on (os.sched_getaffinity)
    cuda_devices: int = 0  # CUDA devices torch sees (0 without CUDA or on a CPU run)
    device: str = "cpu"  # as asked: auto, cpu, cuda or cuda:N
    trials: int | None = None  # the trials the run starts (plan.trial_count: its default applied)
    timeout: float | None = None
    epoch_budget: float | None = None
    examples: int = 0  # training examples
    features: int = 1  # inputs per example
    max_epochs: int = EPOCHS_PER_TRIAL  # the space's epochs per trial
    storage_url: bool = True  # every process can open the storage (a URL, not in memory)
    model_problem: str | None = None  # why another process cannot import the user's build
    ray: bool = False
    main_problem: str | None = None  # why "spawn" would re-run the caller's script


@dataclass(frozen=True)
class Arrangement:
    """The resolved layout: `workers` processes (this one and workers - 1 children), each with
    `engine` and `threads` torch threads; worker i trains on devices[i % len(devices)]."""

    workers: int
    engine: str
    threads: int
    devices: tuple[str, ...] = ("cpu",)
    notes: list[str] = field(default_factory=list)

    def device_of(self, worker: int) -> str:
        return self.devices[worker % len(self.devices)]

    @property
    def parallel(self) -> bool:
        """Trials run side by side (a population, or several workers): samplers must know."""
        return self.engine == "population" or self.workers > 1


def estimated_seconds(facts: Facts) -> float:
    """A rough guess of the job's training time in one single-threaded process."""
    per_epoch = max(facts.examples, 1) * max(facts.features, 1) * SECONDS_PER_EXAMPLE_FEATURE
    per_trial = min(facts.max_epochs, EPOCHS_PER_TRIAL) * per_epoch + TRIAL_OVERHEAD_SECONDS
    guesses = []
    if facts.epoch_budget is not None:
        guesses.append(facts.epoch_budget * per_epoch)
    if facts.trials is not None:
        guesses.append(facts.trials * per_trial)
    if facts.timeout:
        guesses.append(facts.timeout)
    return min(guesses, default=math.inf)  # no bound at all: as large as a job gets


def arrange(workers: int | str, engine: str, facts: Facts) -> Arrangement:
    """The arrangement for `workers` (a number or "auto") and `engine` ("sequential",
    "population" or "auto"), given `facts`."""
    if facts.ray and workers == AUTO:
        # One driver; the cluster's nodes, not this machine's facts, decide the actors
        # (distributed/placement.py): auto trains a population on each.
        chosen = "population" if engine == AUTO else engine
        note = f"1 local process: Ray places the workers (its actors), {chosen} engine on each"
        return Arrangement(1, chosen, facts.cpus, (_cpu(facts),), [note])
    gpus = _gpus(facts)
    if gpus:
        return _on_gpus(workers, engine, facts, gpus)
    if facts.device.startswith("cuda") and workers == AUTO:  # asked for, absent: one process
        return Arrangement(
            1, "population" if engine == AUTO else engine, facts.cpus, (facts.device,)
        )  # resolve_device then says why, once
    chosen = ENGINE_ON_CPU if engine == AUTO else engine
    if workers != AUTO:
        count = int(workers)
        threads = max(1, facts.cpus // count) if count > 1 else facts.cpus
        return Arrangement(count, chosen, threads, (_cpu(facts),))
    wanted = min(facts.cpus, facts.trials or facts.cpus)
    if wanted <= 1:
        why = "one core" if facts.cpus <= 1 else "one trial"
        return Arrangement(1, chosen, facts.cpus, (_cpu(facts),), [f"1 worker: {why}"])
    small = _small(facts)
    if small:
        return Arrangement(1, chosen, facts.cpus, (_cpu(facts),), [small])
    blocked = _blocked(facts, wanted)
    if blocked:
        return Arrangement(1, chosen, facts.cpus, (_cpu(facts),), [blocked])
    note = f"{wanted} workers x 1 thread, {chosen} engine each: one per core"
    return Arrangement(wanted, chosen, 1, (_cpu(facts),), [note])


def _on_gpus(workers: int | str, engine: str, facts: Facts, gpus: tuple[str, ...]) -> Arrangement:
    chosen = "population" if engine == AUTO else engine
    if workers != AUTO:
        count = int(workers)
        threads = max(1, facts.cpus // count)
        return Arrangement(count, chosen, threads, gpus)
    wanted = len(gpus)
    if wanted > 1:
        small = _small(facts)
        blocked = small or _blocked(facts, wanted)
        if blocked:
            return Arrangement(1, chosen, facts.cpus, gpus[:1], [blocked])
    threads = max(1, facts.cpus // wanted)
    where = gpus[0] if wanted == 1 else f"one per GPU ({', '.join(gpus)})"
    note = f"{wanted} worker{'s' if wanted > 1 else ''}, {chosen} engine on {where}"
    return Arrangement(wanted, chosen, threads, gpus, [note])


def _gpus(facts: Facts) -> tuple[str, ...]:
    """The CUDA devices the run's workers spread over: none on a CPU run; the one named by
    cuda:N; all of them for cuda or auto."""
    if facts.device == "cpu" or facts.cuda_devices == 0:
        return ()
    if facts.device.startswith("cuda:"):
        return (facts.device,)
    return tuple(f"cuda:{i}" for i in range(facts.cuda_devices))


def _cpu(facts: Facts) -> str:
    return "cpu" if facts.device in ("auto", "cpu") else facts.device


def _small(facts: Facts) -> str | None:
    seconds = estimated_seconds(facts)
    if seconds >= PARALLEL_SECONDS:
        return None
    return (
        f"1 worker: a small job (about {seconds:.0f} s of training, less than another "
        f"process's start-up pays back); give --workers N to use more processes"
    )


def _blocked(facts: Facts, wanted: int) -> str | None:
    """Why `wanted` workers cannot run here, with the fix; None if they can."""
    if facts.ray:
        return "1 local process: Ray places the workers (its actors)"
    if not facts.storage_url:
        return (
            f"1 worker, not {wanted}: the storage is in memory, which other processes cannot "
            "open; give a storage URL (e.g. sqlite:///dltune.db) to use every core"
        )
    if facts.model_problem:
        return f"1 worker, not {wanted}: {facts.model_problem}"
    if facts.main_problem:
        return f"1 worker, not {wanted}: {facts.main_problem}"
    return None


# ---- the facts of this machine and this call -------------------------------------------------


def cpu_count() -> int:
    """Cores this process may run on (its affinity, which a container or taskset narrows)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def cuda_count(device: str) -> int:
    """CUDA devices torch sees, asked only when the device may be one."""
    if device == "cpu":
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


_GUARD = re.compile(r"""^if\s+__name__\s*==\s*['"]__main__['"]\s*:""", re.MULTILINE)


def main_problem() -> str | None:
    """Why a spawned child would run the caller's script again: a script run as __main__ with
    no `if __name__ == "__main__":` guard (a text check of the file). None for an interactive
    session or a notebook (no file), a guarded script, or a file that cannot be read."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name.rpartition(".")[2] == "__main__":
        return None  # `python -m package`: spawn does not run a package's __main__ again
    path = getattr(main, "__file__", None)
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if _GUARD.search(text):
        return None
    return (
        f'{Path(path).name} has no `if __name__ == "__main__":` guard, and each worker process '
        "would run it again; put the call to tune() under one to use every core"
    )
