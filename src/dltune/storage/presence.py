"""Whether any other process is using a SQLite storage now: a lock beside its file.

Every dltune run holds a shared lock (flock) on `<file>.dltune-lock` while it trains. A run
that starts first tries for the lock exclusively: when it gets it, no other process uses the
storage, so every trial still marked running belongs to a process that is gone, whatever it
left behind (a trial killed between its creation and its first record of its owner has
nothing else to tell it by). The kernel releases a dead process's lock, kill -9 included, so
nothing stale can remain.

Only SQLite: a SQLite file serves one machine (its own documentation warns against network
file systems), where flock is reliable. A journal file may be shared by machines over NFS,
whose locks are not always seen across them, and a database server has no file here: those
are left to the owner check and the heartbeats (heartbeats.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

SUFFIX = ".dltune-lock"


def lock_path(url: str | None) -> str | None:
    """The lock file of a SQLite storage, None for any other."""
    if url is None or not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///") :]
    return None if path in ("", ":memory:") or path.startswith("file:") else path + SUFFIX


@contextlib.contextmanager
def presence(url: str | None) -> Iterator[bool]:
    """Hold the storage's shared lock for the block; yields True when this process was alone
    on it as the block began (every running trial there is a dead process's)."""
    path = lock_path(url)
    if path is None:
        yield False
        return
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # a read-only folder: the storage itself will say so
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except BlockingIOError:
            alone = False
        # Shared from here on. flock may drop the exclusive lock before taking the shared one;
        # a process that slips in between finds no trial of ours: we have asked none yet.
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield alone
    finally:
        os.close(fd)  # releases the lock
