"""Opening an Optuna storage from a URL, with errors that say what to fix.

Which storage for what (docs/storage.md):

- SQLite (``sqlite:///FILE.db``, the default): one process, or several workers on one machine
  (write-ahead log on a local file system).
- PostgreSQL (``postgresql://USER:PASSWORD@HOST:PORT/DB``, extra ``dltune[postgres]``): many
  processes on many machines.
- A journal file (``journal:///FILE.log``): Optuna's JournalStorage on a shared file system
  (NFS) when there is no database server; appends under a lock file, modest write rates.

Every network wait has a limit: connecting (CONNECT_TIMEOUT), and a connection whose server
stopped answering is given up by TCP keepalives and tcp_user_timeout instead of hanging.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StudyError, param
from .heartbeats import grace_period, heartbeat_seconds
from .urls import DEFAULT_STORAGE, display_url, journal_path, misread_password, normalize_url

if TYPE_CHECKING:
    import optuna

CONNECT_TIMEOUT = 10  # seconds to reach a database server (DLTUNE_CONNECT_TIMEOUT overrides)
POSTGRES_EXTRA = "pip install 'dltune[postgres]'"


def connect_timeout() -> int:
    """Seconds to wait for a database server: DLTUNE_CONNECT_TIMEOUT, else CONNECT_TIMEOUT."""
    text = os.environ.get("DLTUNE_CONNECT_TIMEOUT", "").strip()
    if not text:
        return CONNECT_TIMEOUT
    try:
        seconds = int(float(text))
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise StudyError(
            f"DLTUNE_CONNECT_TIMEOUT={text!r} is not a number of seconds (1 or more); "
            f"unset it for the default, {CONNECT_TIMEOUT}"
        )
    return seconds


def _postgres_connect_args() -> dict[str, int]:
    """libpq's limits: connecting, and noticing a server that stopped answering mid-query."""
    return {
        "connect_timeout": connect_timeout(),
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "tcp_user_timeout": 60_000,  # ms: data unacknowledged this long ends the connection
    }


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage for `url`, or a StudyError naming the URL and the fix."""
    url = given = normalize_url(url)
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "journal":
        return _open_journal(url)
    if scheme.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            parent = Path(path).expanduser().parent
            if not parent.is_dir():
                raise StudyError(
                    f"storage {display_url(url)!r}: the folder {display_url(str(parent))!r} "
                    "does not exist; create it or choose another path"
                )
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 30}}
    elif scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        if scheme in ("postgresql", "postgres"):
            # No driver named: psycopg2 (the extra), as SQLAlchemy before 2.1 chose; 2.1 would
            # choose psycopg 3, used here only where it is installed and psycopg2 is not.
            url = f"postgresql+{_postgres_driver()}" + url[len(scheme) :]
        engine_kwargs = {"connect_args": _postgres_connect_args(), "pool_pre_ping": True}
    elif scheme.startswith("mysql"):
        engine_kwargs = {
            "connect_args": {"connect_timeout": connect_timeout()},
            "pool_pre_ping": True,
        }
    else:
        raise StudyError(
            f"storage {display_url(url)!r} is not a storage URL dltune can open; use "
            f"{DEFAULT_STORAGE} (one process or {param('workers')} on one machine), "
            "postgresql://USER:PASSWORD@HOST:PORT/DB (many processes or machines) or "
            "journal:///FILE.log (a shared file system)"
        )
    if misread_password(url):
        raise StudyError(
            f"storage {display_url(given)!r}: its password holds an @, where a URL's password "
            "ends; write each @ in the password (or the database's name) as %40"
        )
    return _open_rdb(url, given, engine_kwargs)


def _postgres_driver() -> str:
    import importlib.util

    def installed(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # e.g. blocked in sys.modules
            return False

    return "psycopg" if not installed("psycopg2") and installed("psycopg") else "psycopg2"


def _open_rdb(url: str, given: str, engine_kwargs: dict[str, Any]) -> optuna.storages.RDBStorage:
    """Optuna's RDBStorage at `url` (`given`: the URL as the user wrote it, for messages)."""
    import optuna
    import sqlalchemy.exc

    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    # Read now, when a study starts, not at import (DLTUNE_HEARTBEAT_SECONDS).
                    heartbeat_interval=heartbeat_seconds(),
                    grace_period=grace_period(),
                )
            if url.startswith("sqlite") and ":memory:" not in url:
                _use_write_ahead_log(storage)
            return storage
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
            # Two processes creating Optuna's tables in a new database at once: one of them
            # finds the other's half made. The tables are there a moment later.
            if attempt < 2 and _lost_creation_race(exc):
                time.sleep(0.5 + attempt)
                continue
            _release(exc)
            raise StudyError(_explain(given, url, exc)) from exc
        except (
            sqlalchemy.exc.SQLAlchemyError,
            optuna.exceptions.StorageInternalError,  # Optuna's wrapping of a failed query
            ImportError,
            ValueError,
        ) as exc:
            _release(exc)
            raise StudyError(_explain(given, url, exc)) from exc
    raise AssertionError("unreachable")


def _release(exc: BaseException) -> None:
    """Close the connections of a storage that failed to open: its half-made engine lives on
    in the traceback's frames (and would hold a session on the server until collected)."""
    import gc
    import traceback

    seen: BaseException | None = exc
    while seen is not None:
        tb = seen.__traceback__
        while tb is not None:
            engine = getattr(tb.tb_frame.f_locals.get("self"), "engine", None)
            if engine is not None and hasattr(engine, "dispose"):
                with contextlib.suppress(Exception):
                    engine.dispose()
            tb = tb.tb_next
        if seen.__traceback__ is not None:
            traceback.clear_frames(seen.__traceback__)
        seen = seen.__cause__ or seen.__context__
    gc.collect()


def storage_lost(url: str, exc: BaseException) -> StudyError | None:
    """The error to show when the storage failed during a run (server gone, connection cut,
    journal file unwritable), or None when `exc` is not about the storage."""
    import optuna
    import sqlalchemy.exc

    if not isinstance(
        exc,
        (
            sqlalchemy.exc.OperationalError,
            sqlalchemy.exc.InterfaceError,
            optuna.exceptions.StorageInternalError,
        ),
    ):
        return None
    text = _explain(url, url, exc).split(" cannot be opened: ", 1)[-1]
    return StudyError(
        f"storage {display_url(url)!r} failed during the run: {text}. Finished trials are "
        "kept; run the same command again to continue"
    )


def _lost_creation_race(exc: Exception) -> bool:
    text = str(exc).lower()
    return "already exists" in text or "duplicate key" in text


def _explain(given: str, url: str, exc: BaseException) -> str:
    """One line: the storage (password masked), what went wrong, and the fix."""
    shown = display_url(given)
    if exc.__cause__ is not None and type(exc).__name__ == "StorageInternalError":
        exc = exc.__cause__  # what the database said, not Optuna's general words
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0].strip() if text else type(exc).__name__
    low = text.lower()
    if isinstance(exc, ImportError) or "no module named" in low:
        driver = url.split("://", 1)[0].partition("+")[2]
        if url.startswith("postgresql"):
            return (
                f"storage {shown!r} needs a PostgreSQL driver ({driver or 'psycopg2'}), which "
                f"is not installed; install it with {POSTGRES_EXTRA}"
            )
        return f"storage {shown!r} needs a database driver that is not installed: {first}"
    if "password authentication failed" in low or "authentication failed" in low:
        fix = "check the user name and password in the URL (or PGPASSWORD, ~/.pgpass)"
    elif "does not exist" in low and "database" in low:
        fix = "create the database (e.g. createdb NAME) or fix its name in the URL"
    elif "does not exist" in low and "role" in low:
        fix = "create the role (CREATE ROLE ... LOGIN PASSWORD ...) or fix the user in the URL"
    elif "permission denied" in low or "insufficientprivilege" in low or "must be owner" in low:
        fix = (
            "the role may connect but not create or use Optuna's tables; grant it rights, "
            "e.g. GRANT ALL ON SCHEMA public TO ROLE (or make it the database's owner)"
        )
    elif "timeout expired" in low or "timed out" in low:
        fix = (
            f"no answer within {connect_timeout()} s; check the host and port, and that a "
            "firewall lets the connection through (DLTUNE_CONNECT_TIMEOUT: seconds to wait)"
        )
    elif "connection refused" in low:
        fix = "nothing listens there; check that the server runs and the host and port are right"
    elif "could not translate host name" in low or "name or service not known" in low:
        fix = "the host name is not known; check it"
    elif "no pg_hba.conf entry" in low:
        fix = "the server does not accept this client; add it to the server's pg_hba.conf"
    elif isinstance(exc, ValueError) or "could not parse" in low or "invalid" in low:
        fix = "check the URL's form: postgresql://USER:PASSWORD@HOST:PORT/DB"
    else:
        fix = "check the URL and that the database server runs"
    for secret in (url, given):
        first = first.replace(secret, shown)
    # The driver's own words may quote the URL in another spelling, or a connection string.
    return f"storage {shown!r} cannot be opened: {display_url(first)}; {fix}"


def _open_journal(url: str) -> optuna.storages.BaseStorage:
    """Optuna's JournalStorage on a file: a shared file system without a database server."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    path = Path(journal_path(url)).expanduser()
    if not path.name or path.is_dir():
        raise StudyError(
            f"storage {display_url(url)!r} names no file; use e.g. journal:///study.log "
            "(relative) or journal:////shared/study.log (absolute)"
        )
    if not path.parent.is_dir():
        raise StudyError(
            f"storage {display_url(url)!r}: the folder {display_url(str(path.parent))!r} does "
            "not exist; create it or choose another path"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except (OSError, ValueError) as exc:
        raise StudyError(
            f"storage {display_url(url)!r} cannot be opened: {display_url(str(exc))}"
        ) from exc


def _use_write_ahead_log(storage: optuna.storages.RDBStorage) -> None:
    """SQLite in write-ahead-log mode, synchronous=NORMAL: a write (an epoch's report, a rung)
    costs about 2 ms instead of 6 (measured here), and readers do not block the writer.

    Still safe for dltune's promise: a committed trial survives a crash or kill of the process;
    only a power cut may lose the last transactions. (WAL needs a local file system, as SQLite
    itself does for safe locking.)
    """
    import sqlalchemy

    def pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    sqlalchemy.event.listen(storage.engine, "connect", pragmas)
    storage.engine.dispose()  # connections opened while creating the storage lack the pragmas
