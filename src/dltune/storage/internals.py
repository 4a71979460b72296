"""dltune's uses of Optuna's private API, each behind a function whose name says what it does.
Optuna's private internals are touched in one corner of the package, this module and the cache
class it imports lazily (own_trials_cache.py); a test greps the rest of the package for Optuna's
private names, and tests/test_storage_internals.py has a test per function, so an Optuna
upgrade that changes these internals fails there, by name, rather than somewhere in a study.

Written against Optuna 4.x and 5.0: `Study._storage` (the storage, under Optuna's cache for
databases), `optuna.storages._cached_storage._CachedStorage` and its `_backend`,
`Trial._trial_id` / `FrozenTrial._trial_id`, `Study._study_id`,
`optuna.storages._heartbeat.is_heartbeat_enabled`, and the RDB models and session helper of
`optuna.storages._rdb`. The private names OwnTrialsCache uses are listed in its module.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from .own_trials_cache import OwnTrialsCache


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage the study reads and writes through (a database's is wrapped in a cache)."""
    return study._storage


def backend_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage itself, under Optuna's cache: an RDBStorage, a JournalStorage, ... (only
    the cache is unwrapped: a JournalStorage has a `_backend` of its own, its file)."""
    from optuna.storages._cached_storage import _CachedStorage

    storage = storage_of(study)
    return storage._backend if isinstance(storage, _CachedStorage) else storage


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The trial's id in storage (not its number, which counts within the study)."""
    return int(trial._trial_id)


def database_url(study: optuna.Study) -> str | None:
    """The URL of the study's database, or None for a journal or memory."""
    url = getattr(backend_of(study), "url", None)
    return str(url) if url else None


def read_trial(study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> FrozenTrial:
    """The trial as storage holds it now, read alone (not the whole study)."""
    return storage_of(study).get_trial(trial_id(trial))


def set_trial_system_attr(
    study: optuna.Study, trial: optuna.Trial | FrozenTrial, key: str, value: Any
) -> None:
    """A system attribute of a trial (Optuna's public Trial has no setter for them)."""
    storage_of(study).set_trial_system_attr(trial_id(trial), key, value)


def fail_trial(study: optuna.Study, trial_id: int) -> None:
    """Mark a running trial failed; nothing if another process finished it meanwhile."""
    import optuna

    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        storage_of(study).set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)


def heartbeats_enabled(study: optuna.Study) -> bool:
    """Whether the study's storage records Optuna's heartbeats (the databases do)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage_of(study))


def record_optuna_heartbeat(study: optuna.Study, trial: optuna.Trial) -> None:
    """Optuna's heartbeat of a running trial, in a storage where heartbeats_enabled."""
    storage_of(study).record_heartbeat(trial_id(trial))  # type: ignore[attr-defined]


def running_trials_never_beaten(
    study: optuna.Study, *, started_before: datetime.datetime
) -> list[int]:
    """Ids of the study's RUNNING trials in a database that have no heartbeat at all and
    started before `started_before` (Optuna's fail_stale_trials skips such trials)."""
    import optuna
    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    backend = backend_of(study)
    if not isinstance(backend, optuna.storages.RDBStorage):
        return []
    with _create_scoped_session(backend.scoped_session) as session:
        running = (
            session.query(models.TrialModel)
            .options(sqlalchemy.orm.selectinload(models.TrialModel.heartbeats))
            .filter(models.TrialModel.state == optuna.trial.TrialState.RUNNING)
            .filter(models.TrialModel.study_id == study._study_id)
            .all()
        )
        return [
            int(t.trial_id)
            for t in running
            if not t.heartbeats
            and t.datetime_start is not None
            and t.datetime_start < started_before
        ]


# ---- a cache that keeps this process's running trials (own_trials_cache.py) ------------------
#
# OwnTrialsCache keeps in memory the trials this process runs and gathers their writes into one
# transaction per flush. Its module imports Optuna's private storage modules at its top, so it is
# imported here, lazily, where a study is put under it: importing dltune.storage imports no Optuna.

PLAIN_ENV = "DLTUNE_STORAGE_PLAIN"  # "1": Optuna's own cache and a transaction per write


def _as_own_trials_cache(storage: optuna.storages.BaseStorage) -> OwnTrialsCache | None:
    """The storage if it is an OwnTrialsCache, else None; without importing the cache's module
    where no study was put under one (then no storage is one)."""
    module = sys.modules.get(f"{__package__}.own_trials_cache")
    if module is not None and isinstance(storage, module.OwnTrialsCache):
        return cast("OwnTrialsCache", storage)
    return None


def use_own_trials_cache(study: optuna.Study) -> bool:
    """Put the study of a database under OwnTrialsCache instead of Optuna's cache; False, and
    nothing changed, for a journal, a memory or DLTUNE_STORAGE_PLAIN=1. Before the study's
    first ask: trials asked earlier are read from the database as before."""
    from optuna.storages._cached_storage import _CachedStorage

    if os.environ.get(PLAIN_ENV, "").strip() == "1":
        return False
    storage = storage_of(study)
    if _as_own_trials_cache(storage) is not None:
        return True
    if type(storage) is not _CachedStorage:
        return False
    from .own_trials_cache import OwnTrialsCache

    study._storage = OwnTrialsCache(storage._backend)
    return True


def flush_trial_writes(study: optuna.Study) -> None:
    """Write what OwnTrialsCache gathered of this process's trials (one transaction); nothing
    for another storage, whose writes are already in it."""
    cache = _as_own_trials_cache(storage_of(study))
    if cache is not None:
        cache.flush()


def record_optuna_heartbeats(study: optuna.Study, trials: list[optuna.Trial]) -> None:
    """Optuna's heartbeats of several running trials, one transaction under OwnTrialsCache."""
    cache = _as_own_trials_cache(storage_of(study))
    if cache is not None:
        cache.record_heartbeats([trial_id(t) for t in trials])
        return
    for trial in trials:
        record_optuna_heartbeat(study, trial)
