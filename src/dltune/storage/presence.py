"""Whether any other process is using a SQLite storage now: locks beside its file.

Every dltune run takes its turn on the storage once, after its data are loaded and before it
asks its first trial (`Presence.turn`): one process at a time (an exclusive lock on
`<file>.turn.dltune-lock`, held for a few database queries), it tries for `<file>.dltune-lock`
exclusively, without waiting. When it gets it, no other process uses the storage, so every
trial still marked running belongs to a process that is gone, whatever it left behind (a trial
killed between its creation and its first record of its owner has nothing else to tell it by).
Then, and until it ends, it holds that lock shared.

Why at the turn and not when the run starts: a run that judged itself alone before loading
its data (seconds, minutes for a large set) would, by the time it acted on it, fail the trials
of a run that had started meanwhile. Judged at the turn, "alone" is still true when it is used:
another process that has asked trials holds the shared lock (it took its turn before asking),
and one that has not yet taken its turn has asked none. Turns are one at a time, so the
exclusive lock is never tried while another process is between its exclusive and shared locks
(flock converts by dropping one and taking the other), and what a turn does (failing stale
trials, enqueueing the continuations of interrupted ones, sweeping checkpoint files) is never
done by two processes at once: a continuation is enqueued once.

The locks are keyed by the database file itself, its real path (symlinks resolved, relative
to the working folder as SQLite takes it): `sqlite:///x.db`, `sqlite:///x.db?timeout=30`,
`sqlite:////abs/x.db`, `./x.db` and a symlink to it share one lock. (A second hard link to the
file is a second name the locks do not see.) The kernel releases a dead process's locks,
kill -9 included, so nothing stale can remain.

Only SQLite: a SQLite file serves one machine (its own documentation warns against network
file systems), where flock is reliable. A journal file may be shared by machines over NFS,
whose locks are not always seen across them, and a database server has no file here: those
are left to the owner check and the heartbeats (heartbeats.py), and a continuation enqueued
twice there is dropped when asked (study.lifecycle).
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from collections.abc import Iterator

SUFFIX = ".dltune-lock"
TURN_SUFFIX = ".turn" + SUFFIX


def database_file(url: str | None) -> str | None:
    """The real path of a SQLite storage's file (symlinks resolved; a relative path taken
    from the working folder, as SQLite does), None for any other storage and for memory."""
    if url is None or not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    path = parsed.database or ""
    if path.startswith("file:"):  # a SQLite URI; without uri=true, left unlocked (never alone)
        if parsed.query.get("uri") != "true":
            return None
        uri = urllib.parse.urlsplit(path)
        if "mode=memory" in uri.query or parsed.query.get("mode") == "memory":
            return None
        path = urllib.parse.unquote(uri.path)
    if path in ("", ":memory:"):
        return None
    return os.path.realpath(path)


def lock_path(url: str | None) -> str | None:
    """The presence lock of a SQLite storage (beside its real file), None for any other."""
    file = database_file(url)
    return None if file is None else file + SUFFIX


class Presence:
    """This process on a storage (see the module's note); on anything but a SQLite file, or
    where the lock cannot be made (a read-only folder), never alone and nothing locked."""

    def __init__(self, path: str | None) -> None:
        self._fd: int | None = None
        self._turn_fd: int | None = None
        if path is None:
            return
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            turn = path[: -len(SUFFIX)] + TURN_SUFFIX
            self._turn_fd = os.open(turn, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:  # a read-only folder: the storage itself will say so
            self.close()

    @contextlib.contextmanager
    def turn(self) -> Iterator[bool]:
        """This process's turn on the storage (one at a time): yields whether it is alone on it
        now (every running trial there is a dead process's). Take it before asking any trial:
        from its end until close() this process holds the shared lock that tells another
        process it is not alone."""
        if self._fd is None or self._turn_fd is None:
            yield False
            return
        import fcntl

        fcntl.flock(self._turn_fd, fcntl.LOCK_EX)  # another's turn: a few queries
        try:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                alone = True
            except BlockingIOError:  # (a shared lock of ours from an earlier turn is dropped)
                alone = False
            try:
                yield alone
            finally:
                # Only a turn takes it exclusively, and this one is ours: at once.
                fcntl.flock(self._fd, fcntl.LOCK_SH)
        finally:
            fcntl.flock(self._turn_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Release the locks (closing their files does)."""
        for fd in (self._fd, self._turn_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._turn_fd = None


@contextlib.contextmanager
def presence(url: str | None) -> Iterator[Presence]:
    """This process on the storage at `url` for the block: take its turn (Presence.turn)
    before asking any trial; the locks are released when the block ends."""
    held = Presence(lock_path(url))
    try:
        yield held
    finally:
        held.close()
