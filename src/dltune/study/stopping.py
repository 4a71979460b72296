"""Stopping a study cleanly on request: SIGTERM (a scheduler or container stopping the job) or
the death of the process that started this worker.

A request does not cut training short where it is: the study loop notices it after the
segment in flight (at most one epoch of the running trials, or the part of one up to a rung),
checkpoints every running trial there, ends them as interrupted and returns, so the same
command resumes each from that point. Bounded: if the loop has not stopped within
STOP_GRACE_S of the request, the main thread is interrupted as by Ctrl-C (the trials resume
from their previous checkpoint). A second SIGTERM, or Ctrl-C, stops at once the same way.
Nothing finished is lost in any case: a trial's end is stored when it ends.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

STOP_GRACE_S = 30.0  # after a request, how long the loop has to reach a checkpoint and stop


class Preempted(Exception):
    """Raised by the study loop once it has checkpointed its running trials on request."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StopRequest:
    """Whether (and why) this process was asked to stop at the next checkpoint."""

    def __init__(self, grace: float = STOP_GRACE_S) -> None:
        self.grace = grace
        self.reason: str | None = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._done = False

    def request(self, reason: str) -> None:
        """Ask the loop to stop; after `grace` seconds without that, interrupt at once."""
        with self._lock:
            if self.reason is not None or self._done:
                return
            self.reason = reason
            self._timer = threading.Timer(self.grace, self._overdue)
            self._timer.daemon = True
            self._timer.start()

    def _overdue(self) -> None:
        with self._lock:
            if not self._done:
                _thread.interrupt_main()

    def close(self) -> None:
        """The loop has ended (stopped or not): no later interrupt."""
        with self._lock:
            self._done = True
            if self._timer is not None:
                self._timer.cancel()


@contextlib.contextmanager
def on_sigterm(stop: StopRequest, forward: Any = None, *, escalate: bool = True) -> Iterator[None]:
    """While the block runs in the main thread: the first SIGTERM requests a stop (and calls
    `forward()`, which passes it on to worker processes), a second one stops at once (as
    Ctrl-C does) where `escalate`. A worker process does not escalate: a SIGTERM to the whole
    process group reaches it twice (directly, and forwarded by its parent), and its parent
    decides when to stop it at once. Elsewhere (a thread), signals are not this code's to
    take: nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.reason is not None:
            if escalate:
                raise KeyboardInterrupt
            return
        stop.request("stopped by SIGTERM")
        if forward is not None:
            forward()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
