"""Several processes on one study, on this machine: each worker runs the same study loop against
the shared storage (SQLite in WAL mode takes concurrent writers), so that small networks, which
leave a core's arithmetic mostly idle when trained with several threads, use every core.

Only plain data crosses the process boundary: the study's settings (TuneSettings, with the
space, the dataset's arrays and the storage URL resolved), and the worker's summary back. Each
worker asks its own configurations (its sampler seeded apart), keeps its own paused trials, and
reads the others' rung results from storage.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .settings import TuneSettings


@dataclass
class WorkerSummary:
    """What a worker process reports when it ends."""

    worker: int
    trials: int = 0
    epochs: float = 0.0
    overhead: float = 0.0
    interrupted: bool = False
    error: str | None = None
    traceback: str | None = None


# The body of a worker: runs its part of the study; the settings, the worker's index.
WorkerTarget = Callable[[TuneSettings, int], WorkerSummary]


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def share(total: float | None, workers: int, index: int) -> Any:
    """Worker `index`'s part of a budget of `total` (trials or epochs), or None for no limit."""
    if total is None:
        return None
    if isinstance(total, int):
        return total // workers + (1 if index < total % workers else 0)
    return total / workers


class LocalWorkers:
    """Workers 1..n-1 in child processes (the caller's process is worker 0), each running
    `target` (a module-level function, which "spawn" pickles by name)."""

    def __init__(self, settings: TuneSettings, target: WorkerTarget) -> None:
        context = multiprocessing.get_context("spawn")  # fork and torch's threads do not mix
        self.results = context.Queue()
        self.summaries: list[WorkerSummary] = []
        self.processes = [
            context.Process(
                target=_worker_main,
                args=(target, settings, index, self.results),
                name=f"dltune-worker-{index}",
                daemon=True,
            )
            for index in range(1, settings.workers)
        ]

    def start(self) -> None:
        for process in self.processes:
            process.start()

    def join(self) -> list[WorkerSummary]:
        """Wait for the workers; their summaries (trials run, epochs, overhead, error). A worker
        that died without one (killed; or, started from a script without an
        `if __name__ == "__main__":` guard, which "spawn" needs) is reported as failed."""
        summaries: dict[int, WorkerSummary] = {}
        while len(summaries) < len(self.processes):
            try:
                summary = self.results.get(timeout=1.0)
                summaries[summary.worker] = summary
            except queue.Empty:
                self._collect_dead(summaries)
        for process in self.processes:
            process.join(timeout=60)
        self.summaries = [summaries[i] for i in sorted(summaries)]
        return self.summaries

    def _collect_dead(self, summaries: dict[int, WorkerSummary]) -> None:
        for index, process in enumerate(self.processes, start=1):
            if index in summaries or process.is_alive():
                continue
            # A last look: it may have reported just before it ended.
            with contextlib.suppress(queue.Empty):
                while True:
                    late = self.results.get(timeout=0.5)
                    summaries[late.worker] = late
            if index not in summaries:
                summaries[index] = WorkerSummary(
                    index,
                    error=f"the process ended (exit code {process.exitcode}) without a result; "
                    "when starting dltune from a script, put the call under "
                    '`if __name__ == "__main__":`',
                )


def _worker_main(target: WorkerTarget, settings: TuneSettings, index: int, results: Any) -> None:
    import torch

    torch.set_num_threads(threads_per_worker(settings.workers))
    try:
        summary = target(settings, index)
    except KeyboardInterrupt:
        summary = WorkerSummary(index, interrupted=True)
    except Exception as exc:  # reported by the parent, which has the user's attention
        summary = WorkerSummary(
            index, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
        )
    results.put(summary)
