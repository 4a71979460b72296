"""Several processes on one study, on this machine: each worker runs the same study loop against
the shared storage (SQLite in WAL mode takes concurrent writers), so that small networks, which
leave a core's arithmetic mostly idle when trained with several threads, use every core.

Only plain data crosses the process boundary: the space, the dataset's arrays, the storage URL,
the budget's share. Each worker asks its own configurations (its sampler seeded apart), keeps
its own paused trials, and reads the others' rung results from storage.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import traceback
from typing import Any

# A worker's sampler seed is the study's seed moved by this much per worker, so that workers
# do not propose the same configurations.
SEED_STRIDE = 7919


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
    """Workers 1..n-1 in child processes (the caller's process is worker 0)."""

    def __init__(self, workers: int, tune_kwargs: dict[str, Any]) -> None:
        context = multiprocessing.get_context("spawn")  # fork and torch's threads do not mix
        self.results = context.Queue()
        self.processes = [
            context.Process(
                target=_worker_main,
                args=(index, workers, tune_kwargs, self.results),
                name=f"dltune-worker-{index}",
                daemon=True,
            )
            for index in range(1, workers)
        ]

    def start(self) -> None:
        for process in self.processes:
            process.start()

    def join(self) -> list[dict[str, Any]]:
        """Wait for the workers; their summaries (trials run, epochs, overhead, error). A worker
        that died without one (killed; or, started from a script without an
        `if __name__ == "__main__":` guard, which "spawn" needs) is reported as failed."""
        import queue

        summaries: dict[int, dict[str, Any]] = {}
        while len(summaries) < len(self.processes):
            try:
                summary = self.results.get(timeout=1.0)
                summaries[summary["worker"]] = summary
            except queue.Empty:
                for index, process in enumerate(self.processes, start=1):
                    if index not in summaries and not process.is_alive():
                        # A last look: it may have reported just before it ended.
                        with contextlib.suppress(queue.Empty):
                            while True:
                                late = self.results.get(timeout=0.5)
                                summaries[late["worker"]] = late
                        if index not in summaries:
                            summaries[index] = {
                                "worker": index,
                                "error": f"the process ended (exit code {process.exitcode}) "
                                "without a result; when starting dltune from a script, put "
                                'the call under `if __name__ == "__main__":`',
                            }
        for process in self.processes:
            process.join(timeout=60)
        return [summaries[i] for i in sorted(summaries)]


def _worker_main(index: int, workers: int, kwargs: dict[str, Any], results: Any) -> None:
    import torch

    from .tuner import tune

    torch.set_num_threads(threads_per_worker(workers))
    summary: dict[str, Any] = {"worker": index}
    try:
        mine = {
            **kwargs,
            "trials": share(kwargs.get("trials"), workers, index),
            "epoch_budget": share(kwargs.get("epoch_budget"), workers, index),
        }
        result = tune(**mine, workers=1, worker_index=index, baseline=False)
        summary.update(
            trials=result.trials_run,
            epochs=result.epochs_trained,
            overhead=result.overhead_seconds,
            interrupted=result.interrupted,
        )
    except KeyboardInterrupt:
        summary["interrupted"] = True
    except Exception as exc:  # reported by the parent, which has the user's attention
        summary["error"] = f"{type(exc).__name__}: {exc}"
        summary["traceback"] = traceback.format_exc()
    results.put(summary)
