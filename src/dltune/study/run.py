"""Running one study loop to its end, the same way for a tuning run and a sweep: the "study
started" record, the loop, and what happens when it is interrupted or fails.

Ctrl-C ends the running trials as interrupted and returns normally (finished trials are kept;
the same command continues the study, each interrupted trial from its last checkpoint). A stop
request (SIGTERM: stopping.py) does the same once the loop has checkpointed them all. An
error ends them as failed and is raised again; a
storage that went away mid-run becomes one StudyError that says so, not a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..storage.urls import display_url
from .start import StudyStart
from .stopping import Preempted

if TYPE_CHECKING:
    from ..storage import Storage
    from .loop import StudyLoop
    from .progress import ProgressListener


def run_study(
    loop: StudyLoop,
    start: StudyStart,
    storage: Storage,
    progress: ProgressListener,
    *,
    cleanup: Callable[[bool], object] | None = None,
) -> bool:
    """Run `loop` until its budget is spent; True when the user interrupted it (Ctrl-C).

    `cleanup(interrupted)` runs once the loop has ended, however it ended, before the
    listener hears that the study finished (e.g. waiting for the other worker processes).
    """
    lifecycle = loop.lifecycle
    progress.study_started(start)
    interrupted = False
    try:
        loop.run()
    except KeyboardInterrupt:
        interrupted = True
        why = loop.stop.reason if loop.stop is not None and loop.stop.reason else None
        lifecycle.fail_running("interrupted", why or "stopped by the user (Ctrl-C)")
    except Preempted as stop:
        interrupted = True
        lifecycle.fail_running("interrupted", stop.reason)
    except Exception as exc:
        lost = storage.lost(exc)  # the database went away: a message, not a traceback
        # Its trials did nothing wrong: interrupted (resumed by the next run), not failed.
        state = "interrupted" if lost is not None else "failed"
        # kept in storage and shown by `dltune trials`: a URL in the error, masked
        lifecycle.fail_running(state, display_url(f"{type(exc).__name__}: {exc}"))
        if lost is not None:
            raise lost from exc
        raise
    finally:
        if loop.stop is not None:
            loop.stop.close()
        lifecycle.close()
        if cleanup is not None:
            cleanup(interrupted)
        progress.study_finished()
    return interrupted
