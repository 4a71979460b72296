"""Several processes on one study, on this machine: each worker runs the same study loop against
the shared storage (SQLite in WAL mode takes concurrent writers), so that small networks, which
leave a core's arithmetic mostly idle when trained with several threads, use every core.

Only plain data crosses the process boundary: the run's plan (plan.py: its settings with the
space, the dataset's arrays and the storage URL resolved, its budgets and deadline) going out;
coming back, on one queue and in order, each worker's progress events (trial started, epoch
done, trial finished: the parent's live display shows every worker) and, last, its summary
(with the weights of its best trial, so that the parent tests the study's best once without
retraining it). Each worker asks
its own configurations (its sampler seeded apart), keeps its own paused trials, and reads the
others' rung results from storage.

Stopping: Ctrl-C reaches the whole process group; each child ends its running trials as
interrupted and reports (a second Ctrl-C does not cut that short), and the parent waits for
every summary. SIGTERM to the parent is passed on to each child: each stops at its next
checkpoint (stopping.py). A parent killed outright (SIGKILL, the OOM killer) is noticed within
half a second by a thread in each child that watches the parent's sentinel: the child stops as
on SIGTERM (its running trials checkpointed and ended as interrupted) and exits.
"""

from __future__ import annotations

import contextlib
import io
import math
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..storage.urls import display_url
from .progress import ProgressListener
from .settings import check_objects_travel
from .stopping import StopRequest

STOP_GRACE_S = 30.0  # after Ctrl-C, how long a worker may take to end its trials and report
EXIT_GRACE_S = 10.0  # once every worker has reported, how long they may take to exit

if TYPE_CHECKING:
    from ..config import Config
    from ..engine import EpochReport
    from ..storage import TrialRecord
    from .plan import Plan
    from .start import StudyStart


@dataclass
class WorkerSummary:
    """What a worker process reports when it ends."""

    worker: int
    trials: int = 0
    epochs: float = 0.0
    overhead: float = 0.0
    checkpoints: tuple[int, int, float] = (0, 0, 0.0)  # written, bytes, seconds taking them
    interrupted: bool = False
    error: str | None = None
    traceback: str | None = None
    # The worker's best trial's number and its weights (torch.save bytes), for the one test.
    best_state: tuple[int, bytes] | None = None
    # the best trials' weights it kept, for the ensemble: (trial, one packed state per member)
    kept: list[tuple[int, list[bytes]]] = field(default_factory=list)


# The body of a worker: runs its part of the study; the run's plan, the worker's index, the
# listener that forwards its progress to the parent, and its stop request.
WorkerTarget = Callable[["Plan", int, ProgressListener, StopRequest], WorkerSummary]


def pack_state(state: dict[str, Any]) -> bytes:
    """A state dict as bytes that cross a process boundary whatever torch's sharing strategy."""
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def unpack_state(data: bytes) -> dict[str, Any]:
    import torch

    loaded: dict[str, Any] = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return loaded


class GuardedListener(ProgressListener):
    """`inner`'s hooks, one call at a time: this process's loop and the thread that relays
    the other workers' events both call them."""

    def __init__(self, inner: ProgressListener) -> None:
        self.inner = inner
        self.lock = threading.Lock()

    def study_started(self, start: StudyStart) -> None:
        with self.lock:
            self.inner.study_started(start)

    def trial_started(self, number: int, config: Config) -> None:
        with self.lock:
            self.inner.trial_started(number, config)

    def epoch_done(self, number: int, report: EpochReport) -> None:
        with self.lock:
            self.inner.epoch_done(number, report)

    def trial_finished(self, record: TrialRecord, best: dict[str, Any] | None) -> None:
        with self.lock:
            self.inner.trial_finished(record, best)

    def study_finished(self) -> None:
        with self.lock:
            self.inner.study_finished()

    def worker_event(self, worker: int, event: str, args: tuple[Any, ...]) -> None:
        with self.lock:
            self.inner.worker_event(worker, event, args)


class ForwardingListener(ProgressListener):
    """A child's listener: its trials' events, put on the queue the parent reads."""

    FORWARDED = ("trial_started", "epoch_done", "trial_finished")

    def __init__(self, worker: int, results: Any) -> None:
        self.worker, self.results = worker, results

    def _put(self, event: str, *args: Any) -> None:
        self.results.put(("event", self.worker, event, args))

    def trial_started(self, number: int, config: Config) -> None:
        self._put("trial_started", number, config)

    def epoch_done(self, number: int, report: EpochReport) -> None:
        self._put("epoch_done", number, report)

    def trial_finished(self, record: TrialRecord, best: dict[str, Any] | None) -> None:
        self._put("trial_finished", record, best)


class LocalWorkers:
    """Workers 1..n-1 in child processes (the caller's process is worker 0), each running
    `target` (a module-level function, which "spawn" pickles by name); their progress relayed
    to `progress` (a GuardedListener: the relay is a thread)."""

    def __init__(self, plan: Plan, target: WorkerTarget, progress: ProgressListener) -> None:
        check_objects_travel(plan.settings, plan.workers)  # where "auto" chose several
        context = multiprocessing.get_context("spawn")  # fork and torch's threads do not mix
        self.results = context.Queue()
        self.progress = progress
        self.summaries: list[WorkerSummary] = []
        self._received: dict[int, WorkerSummary] = {}
        self._changed = threading.Condition()
        self._relay = threading.Thread(target=self._read, name="dltune-relay", daemon=True)
        self._stopping = False
        # Ctrl-C reached this process while it waited for the workers (its own loop had
        # ended): the run is interrupted though its own loop was not
        self.interrupted = False
        self.processes = [
            context.Process(
                target=_worker_main,
                args=(target, plan, index, self.results),
                name=f"dltune-worker-{index}",
                daemon=True,
            )
            for index in range(1, plan.workers)
        ]

    def start(self) -> None:
        for process in self.processes:
            process.start()
        self._relay.start()

    def _read(self) -> None:
        """The relay: events to the listener, summaries kept, until told to stop."""
        while not self._stopping:
            try:
                item = self.results.get(timeout=0.2)
            except queue.Empty:
                continue
            except (EOFError, OSError):  # the queue was closed under us
                return
            if isinstance(item, WorkerSummary):
                with self._changed:
                    self._received[item.worker] = item
                    self._changed.notify_all()
                continue
            _, worker, event, args = item
            with contextlib.suppress(Exception):  # a display's failure stops no study
                self.progress.worker_event(worker, event, args)

    def join(self, interrupted: bool = False) -> list[WorkerSummary]:
        """Wait for the workers; their summaries (trials run, epochs, overhead, error). A worker
        that died without one (killed; or, started from a script without an
        `if __name__ == "__main__":` guard, which "spawn" needs) is reported as failed.
        `interrupted` (Ctrl-C): a worker gets STOP_GRACE_S to end its trials and report, then
        is terminated, so that one stuck child cannot hold the command (its finished trials
        are stored already; its running ones are failed by the next run's stale check)."""
        deadline = time.monotonic() + STOP_GRACE_S if interrupted else math.inf
        with self._changed:
            while len(self._received) < len(self.processes):
                try:
                    self._changed.wait(timeout=1.0)
                except KeyboardInterrupt:
                    # Ctrl-C while this process waits (its own trials done): the workers
                    # have it too, or get it now; they have their grace, then are stopped
                    self.interrupted = True
                    self.forward_stop(signal.SIGINT)
                    deadline = min(deadline, time.monotonic() + STOP_GRACE_S)
                    continue
                self._collect_dead()
                if time.monotonic() > deadline:
                    self._terminate_stragglers()
        self._end_processes()
        self._stopping = True
        self._relay.join(timeout=5)
        self.results.close()  # its semaphores and pipe, released now rather than at exit
        self.results.join_thread()
        self.summaries = [self._received[i] for i in sorted(self._received)]
        return self.summaries

    def _end_processes(self) -> None:
        """Every worker has reported: each has EXIT_GRACE_S, all together, to exit (its
        queue flushed); one still there after it is stopped, so that no child outlives the
        command (whatever holds it: nothing it has is left to lose)."""
        ends = time.monotonic() + EXIT_GRACE_S
        for process in self.processes:
            process.join(timeout=max(0.1, ends - time.monotonic()))
        for process in self.processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)

    def forward_stop(self, signum: int = signal.SIGTERM) -> None:
        """Pass a stop request on (SIGTERM, or `signum`, to each child that still runs)."""
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)

    def _terminate_stragglers(self) -> None:
        for index, process in enumerate(self.processes, start=1):
            if index not in self._received and process.is_alive():
                process.terminate()
                process.join(timeout=5)
                if process.is_alive():
                    process.kill()
                    process.join(timeout=5)
                self._received[index] = WorkerSummary(index, interrupted=True)

    def _collect_dead(self) -> None:
        for index, process in enumerate(self.processes, start=1):
            if index in self._received or process.is_alive():
                continue
            # A last look: the relay may still be reading what it put just before it ended.
            deadline = time.monotonic() + 2.0
            while index not in self._received and time.monotonic() < deadline:
                self._changed.wait(timeout=0.2)
            if index not in self._received:
                self._received[index] = WorkerSummary(
                    index,
                    error=f"the process ended (exit code {process.exitcode}) without a result; "
                    "when starting dltune from a script, put the call under "
                    '`if __name__ == "__main__":`',
                )


def _first_interrupt_only(signum: int, frame: Any) -> None:
    """Ctrl-C in a child: one KeyboardInterrupt (the loop ends its trials as interrupted);
    later ones, from an impatient user or the parent's stop, do not cut that cleanup short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _watch_parent(stopped: threading.Event, stop: StopRequest) -> None:
    """When the parent process dies (SIGKILL leaves no other trace), ask the loop to stop at
    its next checkpoint (stopping.py: interrupted as by Ctrl-C if that takes too long)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    while not stopped.is_set():
        if multiprocessing.connection.wait([parent.sentinel], timeout=0.5):
            stopped.set()
            stop.request("the process that started this worker died")
            return


def _worker_main(target: WorkerTarget, plan: Plan, index: int, results: Any) -> None:
    signal.signal(signal.SIGINT, _first_interrupt_only)
    orphaned = threading.Event()
    stop = StopRequest()
    threading.Thread(target=_watch_parent, args=(orphaned, stop), daemon=True).start()
    try:
        import optuna
        import torch

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the parent speaks for the study
        if plan.threads is not None:
            torch.set_num_threads(plan.threads)
        summary = target(plan, index, ForwardingListener(index, results), stop)
    except KeyboardInterrupt:
        summary = WorkerSummary(index, interrupted=True)
    except Exception as exc:  # reported by the parent, which has the user's attention
        summary = WorkerSummary(  # shown by the parent: a URL in them, masked
            index,
            error=display_url(f"{type(exc).__name__}: {exc}"),
            traceback=display_url(traceback.format_exc()),
        )
    if orphaned.is_set():  # nobody reads the queue: do not wait on it at exit
        results.cancel_join_thread()
        return
    orphaned.set()  # the watcher's work is done
    results.put(summary)
