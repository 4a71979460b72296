"""Opening an Optuna storage from a URL, with errors that say what to fix.

Which storage for what (README, "Storage: which one"):

- SQLite (``sqlite:///FILE.db``, the default): one process, or ``--workers N`` on one machine
  (write-ahead log on a local file system).
- PostgreSQL (``postgresql://USER:PASSWORD@HOST:PORT/DB``, extra ``dltune[postgres]``): many
  processes on many machines.
- A journal file (``journal:///FILE.log``): Optuna's JournalStorage on a shared file system
  (NFS) when there is no database server; appends under a lock file, modest write rates.

Heartbeats let a later run tell a trial whose process was killed (no heartbeat for GRACE_PERIOD
seconds) from one that is still running elsewhere: Optuna's own for the databases, a trial
attribute (HEARTBEAT_ATTR) for the journal, whose storage has none.

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

from .errors import StudyError

if TYPE_CHECKING:
    import optuna


def _heartbeat_seconds(default: int = 10) -> int:
    """Seconds between heartbeats of a running trial: DLTUNE_HEARTBEAT_SECONDS (a whole number
    >= 1), else `default`. Shorter: a dead process's trials are found sooner, at the cost of a
    database write per running trial that often."""
    text = os.environ.get("DLTUNE_HEARTBEAT_SECONDS", "").strip()
    if not text:
        return default
    try:
        seconds = int(text)
    except ValueError:
        seconds = 0
    if seconds < 1:
        warnings.warn(
            f"DLTUNE_HEARTBEAT_SECONDS={text!r} is not a whole number of seconds >= 1; "
            f"using {default}",
            RuntimeWarning,
            stacklevel=2,
        )
        return default
    return seconds


HEARTBEAT_INTERVAL = _heartbeat_seconds()  # seconds between heartbeats of a running trial
GRACE_PERIOD = 3 * HEARTBEAT_INTERVAL  # a running trial silent this long: a dead process's
CONNECT_TIMEOUT = 10  # seconds to reach a database server (DLTUNE_CONNECT_TIMEOUT overrides)
HEARTBEAT_ATTR = "dltune:heartbeat"  # journal storage: the trial's last heartbeat (epoch seconds)

DEFAULT_STORAGE = "sqlite:///dltune.db"
_DB_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_JOURNAL_SUFFIXES = (".log", ".journal")
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


def normalize_url(url: str) -> str:
    """Accept a bare SQLite file name ('studies.db') or journal file name ('study.log') as well
    as a URL."""
    if "://" not in url and url.endswith(_DB_SUFFIXES):
        return f"sqlite:///{url}"
    if "://" not in url and url.endswith(_JOURNAL_SUFFIXES):
        return f"journal:///{url}"
    return url


def display_url(url: str) -> str:
    """`url` as it may be printed: its password, if any, masked."""
    if "://" not in url or "@" not in url:
        return url
    try:
        import sqlalchemy

        return str(sqlalchemy.engine.make_url(url).render_as_string(hide_password=True))
    except Exception:  # not parseable: mask between the user's colon and the @ by hand
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


def journal_path(url: str) -> str:
    """The file of a journal URL: `journal:///study.log` (relative, as SQLite's URLs are) or
    `journal:////shared/study.log` (absolute)."""
    return url.split(":///", 1)[1] if ":///" in url else url.split("://", 1)[1]


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
                    f"storage {url!r}: the folder {str(parent)!r} does not exist; "
                    "create it or choose another path"
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
            f"{DEFAULT_STORAGE} (one process or --workers on one machine), "
            "postgresql://USER:PASSWORD@HOST:PORT/DB (many processes or machines) or "
            "journal:///FILE.log (a shared file system)"
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
                    heartbeat_interval=HEARTBEAT_INTERVAL,
                    grace_period=GRACE_PERIOD,
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
    return f"storage {shown!r} cannot be opened: {first}; {fix}"


def _open_journal(url: str) -> optuna.storages.BaseStorage:
    """Optuna's JournalStorage on a file: a shared file system without a database server."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    path = Path(journal_path(url)).expanduser()
    if not path.name or path.is_dir():
        raise StudyError(
            f"storage {url!r} names no file; use e.g. journal:///study.log (relative) or "
            "journal:////shared/study.log (absolute)"
        )
    if not path.parent.is_dir():
        raise StudyError(
            f"storage {url!r}: the folder {str(path.parent)!r} does not exist; "
            "create it or choose another path"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except (OSError, ValueError) as exc:
        raise StudyError(f"storage {url!r} cannot be opened: {exc}") from exc


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


def _optuna_heartbeats(storage: Any) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage)  # a database's storage, not the journal


def record_heartbeat(storage: Any, trial_id: int) -> None:
    """Note that the trial's process is alive: Optuna's heartbeat where the storage has one
    (the databases), else a trial attribute (the journal)."""
    if _optuna_heartbeats(storage):
        storage.record_heartbeat(trial_id)
    else:
        storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())


def _fail_never_beaten(study: optuna.Study) -> None:
    """Fail the RUNNING trials of a database that never recorded a heartbeat and started more
    than GRACE_PERIOD ago: their process was killed between creating the trial and its first
    beat (milliseconds apart). Optuna's fail_stale_trials skips a trial without heartbeats, so
    such a trial would stay 'running' for ever (a SIGKILL test caught one)."""
    import datetime

    import optuna
    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    backend = getattr(study._storage, "_backend", study._storage)  # the cache wraps it
    if not isinstance(backend, optuna.storages.RDBStorage):
        return
    # datetime_start is the creating process's local time (Optuna's datetime.now()).
    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=GRACE_PERIOD)
    with _create_scoped_session(backend.scoped_session) as session:
        running = (
            session.query(models.TrialModel)
            .options(sqlalchemy.orm.selectinload(models.TrialModel.heartbeats))
            .filter(models.TrialModel.state == optuna.trial.TrialState.RUNNING)
            .filter(models.TrialModel.study_id == study._study_id)
            .all()
        )
        silent = [
            int(t.trial_id)
            for t in running
            if not t.heartbeats and t.datetime_start is not None and t.datetime_start < cutoff
        ]
    for trial_id in silent:
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            study._storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)


def fail_stale_trials(study: optuna.Study) -> None:
    """Mark trials whose process died (no heartbeat within GRACE_PERIOD) as failed."""
    import optuna

    storage = study._storage
    if _optuna_heartbeats(storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        _fail_never_beaten(study)
        return
    if not isinstance(storage, optuna.storages.JournalStorage):
        return  # in memory: no other process to have died
    # The journal: the last heartbeat attribute, compared with this machine's clock (machines
    # sharing a file system should agree on the time within a few seconds).
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        beat = trial.system_attrs.get(HEARTBEAT_ATTR)
        if beat is None and trial.datetime_start is not None:
            beat = trial.datetime_start.timestamp()
        if isinstance(beat, (int, float)) and now - beat > GRACE_PERIOD:
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)


def load_study(storage: str, study_name: str | None = None) -> optuna.Study:
    """A study from storage; without a name, the only one or the most recently used (the
    CLI's commands, train-best). Errors name the storage, its password masked."""
    import optuna

    from .errors import did_you_mean

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = normalize_url(storage)
    backend = open_storage(url)
    summaries = optuna.get_all_study_summaries(backend, include_best_trial=False)
    names = [s.study_name for s in summaries]
    if not names:
        raise StudyError(f"storage {display_url(url)} holds no study yet; run `dltune run` first")
    if study_name is None:
        latest = max(summaries, key=lambda s: (s.datetime_start is not None, s.datetime_start))
        study_name = latest.study_name
    elif study_name not in names:
        raise StudyError(
            f"study {study_name!r} is not in {display_url(url)};{did_you_mean(study_name, names)} "
            f"It holds: {', '.join(names)}"
        )
    return optuna.load_study(study_name=study_name, storage=backend)
