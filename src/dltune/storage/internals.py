"""Every use of Optuna's private API in dltune, each behind a function whose name says what it
does. Nothing else in the package names a private attribute of Optuna (a test greps for it),
and tests/test_storage_internals.py has a test per function, so an Optuna upgrade that changes
these internals fails there, by name, rather than somewhere in a study.

Written against Optuna 4.x and 5.0: `Study._storage` (the storage, under Optuna's cache for
databases), `optuna.storages._cached_storage._CachedStorage` and its `_backend`,
`Trial._trial_id` / `FrozenTrial._trial_id`, `Study._study_id`,
`optuna.storages._heartbeat.is_heartbeat_enabled`, and the RDB models and session helper of
`optuna.storages._rdb`.
"""

from __future__ import annotations

import contextlib
import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


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
