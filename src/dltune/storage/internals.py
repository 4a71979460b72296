"""Every use of Optuna's private API in dltune, each behind a function whose name says what it
does. Nothing else in the package names a private attribute of Optuna (a test greps for it),
and tests/test_storage_internals.py has a test per function, so an Optuna upgrade that changes
these internals fails there, by name, rather than somewhere in a study.

Written against Optuna 4.x and 5.0: `Study._storage` (the storage, under Optuna's cache for
databases), `optuna.storages._cached_storage._CachedStorage` and its `_backend`,
`Trial._trial_id` / `FrozenTrial._trial_id`, `Study._study_id`,
`optuna.storages._heartbeat.is_heartbeat_enabled`, and the RDB models and session helper of
`optuna.storages._rdb`. OwnTrialsCache (below) subclasses `_CachedStorage` and uses its
`_studies` (`_StudyInfo`: trials, unfinished_trial_ids, last_finished_trial_id,
param_distribution), `_trial_id_to_study_id_and_number`, `_add_trials_to_cache`, `_lock`, and
overrides `_read_trials_from_remote_storage`; of RDBStorage it uses `scoped_session`, `engine`,
`_set_trial_param_without_commit`, `_set_trial_intermediate_value_without_commit`,
`_set_trial_attr_without_commit` and `_build_frozen_trial_from_trial_model`.
"""

from __future__ import annotations

import contextlib
import datetime
from typing import TYPE_CHECKING, Any, cast

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


# ---- a cache that keeps this process's running trials -----------------------------------------
#
# Optuna's _CachedStorage keeps finished trials, but re-reads every unfinished one from the
# database on each read of the study, which TPE with constant_liar does several times per ask
# (once per group of parameters, uncached): with 40 paused trials, most of a trial's overhead
# (measured: benchmarks/overhead.py). A trial this process created and still runs changes only
# through this process (its writes), so OwnTrialsCache keeps it in memory, up to date with every
# write, and reads from the database only the trials other processes run or finished.
#
# Its writes to such a trial (parameters, attributes, intermediate values) are gathered and
# written together, in one transaction, at flush_trial_writes() (the study loop calls it before
# each segment trains, so a finished epoch is in storage before the next one starts), and before
# any other write or any change of a trial's state (tell), so storage sees them in order.

PLAIN_ENV = "DLTUNE_STORAGE_PLAIN"  # "1": Optuna's own cache and a transaction per write


def _own_trials_cache_class() -> type:
    """The class, made on first use: Optuna is imported only when a study is."""
    # long: the class and its helpers, defined where Optuna's private modules are imported
    # (dltune.storage imports no Optuna at import time); each method is short.
    global _OWN_TRIALS_CACHE
    if _OWN_TRIALS_CACHE is not None:
        return _OWN_TRIALS_CACHE
    import copy
    import json
    import threading

    import optuna
    import sqlalchemy
    from optuna.storages._cached_storage import _CachedStorage, _StudyInfo
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from optuna.trial import TrialState

    class OwnTrialsCache(_CachedStorage):
        def __init__(self, backend: optuna.storages.RDBStorage) -> None:
            super().__init__(backend)
            self._own: set[int] = set()  # ids of running trials this process created
            self._settled: set[int] = set()  # own trials finished since, already cached
            # (kind, trial id, key) -> value: writes not yet in the database, in order.
            self._pending: dict[tuple[str, int, Any], Any] = {}
            self._flushing = threading.RLock()

        # -- owning --
        def create_new_trial(self, study_id: int, template_trial: Any = None) -> int:
            trial_id = super().create_new_trial(study_id, template_trial)
            with self._lock:
                if self._cached(trial_id).state == TrialState.RUNNING:
                    self._own.add(trial_id)
            return trial_id

        def set_trial_state_values(
            self, trial_id: int, state: TrialState, values: Any = None
        ) -> bool:
            self.flush()
            try:
                changed = self._backend.set_trial_state_values(trial_id, state, values)
            except Exception:
                self._disown(trial_id)
                raise
            if state == TrialState.RUNNING and changed:  # a waiting (enqueued) trial, now ours
                trial = self._backend.get_trial(trial_id)
                with self._lock:
                    known = self._trial_id_to_study_id_and_number.get(trial_id)
                    if known is not None:  # read while looking for waiting trials: it is
                        self._add_trials_to_cache(known[0], [trial])
                        self._own.add(trial_id)
            elif state.is_finished() and trial_id in self._own:
                self._settle(trial_id)
            return bool(changed)

        def _settle(self, trial_id: int) -> None:
            """An own trial just finished: read once, kept as Optuna's cache keeps finished
            trials, and left out of the reads of trials after the last finished one."""
            trial = self._backend.get_trial(trial_id)
            with self._lock:
                self._own.discard(trial_id)
                study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
                self._add_trials_to_cache(study_id, [trial])
                if trial_id > self._studies[study_id].last_finished_trial_id:
                    self._settled.add(trial_id)

        def _disown(self, trial_id: int) -> None:
            """Read the trial from the database again from now on (finished, or changed by
            another process)."""
            with self._lock:
                if trial_id in self._own:
                    self._own.discard(trial_id)
                    study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
                    self._studies[study_id].unfinished_trial_ids.add(trial_id)

        def _cached(self, trial_id: int) -> Any:
            study_id, number = self._trial_id_to_study_id_and_number[trial_id]
            return self._studies[study_id].trials[number]

        # -- writes to an own trial: in the cache now, in the database at the flush --
        def _defer(self, kind: str, trial_id: int, key: Any, value: Any) -> bool:
            with self._lock:
                if trial_id not in self._own:
                    return False
                trial = self._cached(trial_id)
                if kind == "param":
                    internal, distribution = value
                    study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
                    known = self._studies[study_id].param_distribution.get(key)
                    if known is not None:  # as Optuna checks it, at once
                        optuna.distributions.check_distribution_compatibility(known, distribution)
                    else:  # the first time here: against the study's earlier trials
                        known = _stored_distribution(self._backend, study_id, key)
                        if known is not None:
                            optuna.distributions.check_distribution_compatibility(
                                known, distribution
                            )
                        self._studies[study_id].param_distribution[key] = distribution
                    trial.params[key] = distribution.to_external_repr(internal)
                    trial.distributions[key] = distribution
                elif kind == "step":
                    trial.intermediate_values[key] = value
                else:
                    attrs = trial.user_attrs if kind == "user" else trial.system_attrs
                    attrs[key] = json.loads(json.dumps(value))  # as the database returns it
                self._pending[(kind, trial_id, key)] = value
            return True

        def set_trial_param(
            self, trial_id: int, param_name: str, param_value_internal: float, distribution: Any
        ) -> None:
            if not self._defer("param", trial_id, param_name, (param_value_internal, distribution)):
                self.flush()
                super().set_trial_param(trial_id, param_name, param_value_internal, distribution)

        def set_trial_intermediate_value(
            self, trial_id: int, step: int, intermediate_value: float
        ) -> None:
            if not self._defer("step", trial_id, step, intermediate_value):
                self.flush()
                super().set_trial_intermediate_value(trial_id, step, intermediate_value)

        def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
            if not self._defer("user", trial_id, key, value):
                self.flush()
                super().set_trial_user_attr(trial_id, key, value)

        def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
            if not self._defer("system", trial_id, key, value):
                self.flush()
                super().set_trial_system_attr(trial_id, key, value)

        def flush(self) -> None:
            """Write the gathered writes in one transaction; if it fails, one by one, as
            without the cache (so that one trial finished elsewhere costs only its own)."""
            with self._flushing:
                with self._lock:
                    pending, self._pending = self._pending, {}
                if not pending:
                    return
                backend = self._backend
                try:
                    with _create_scoped_session(backend.scoped_session) as session:
                        _write_all(backend, session, pending)
                except Exception:
                    failure: Exception | None = None
                    for (kind, trial_id, key), value in pending.items():
                        try:
                            with _create_scoped_session(backend.scoped_session, True) as session:
                                _write(backend, session, kind, trial_id, key, value)
                        except Exception as error:  # the others are still written
                            self._disown(trial_id)
                            failure = failure or error
                    if failure is not None:
                        raise failure from None

        # -- reads --
        def get_trial(self, trial_id: int) -> Any:
            with self._lock:
                if trial_id in self._own:
                    return copy.deepcopy(self._cached(trial_id))
            return super().get_trial(trial_id)

        def _read_trials_from_remote_storage(self, study_id: int) -> None:
            with self._lock:
                if study_id not in self._studies:
                    self._studies[study_id] = _StudyInfo()
                study = self._studies[study_id]
                self._settled = {i for i in self._settled if i > study.last_finished_trial_id}
                trials = _read_trials(
                    self._backend,
                    study_id,
                    included=study.unfinished_trial_ids - self._own,
                    greater_than=study.last_finished_trial_id,
                    excluded=self._own | self._settled,
                )
                if not trials:
                    return
                self._add_trials_to_cache(study_id, trials)
                for trial in trials:
                    if not trial.state.is_finished():
                        study.unfinished_trial_ids.add(trial._trial_id)
                        continue
                    study.last_finished_trial_id = max(
                        study.last_finished_trial_id, trial._trial_id
                    )
                    study.unfinished_trial_ids.discard(trial._trial_id)

        def record_heartbeats(self, trial_ids: list[int]) -> None:
            """Optuna's heartbeat of each trial, in one transaction."""
            with _create_scoped_session(self._backend.scoped_session, True) as session:
                now = session.execute(sqlalchemy.func.now()).scalar_one()
                for trial_id in trial_ids:
                    beat = models.TrialHeartbeatModel.where_trial_id(trial_id, session, True)
                    if beat is None:
                        session.add(models.TrialHeartbeatModel(trial_id=trial_id))
                    else:
                        beat.heartbeat = now

    def _write(backend: Any, session: Any, kind: str, trial_id: int, key: Any, value: Any) -> None:
        if kind == "param":
            internal, distribution = value
            backend._set_trial_param_without_commit(session, trial_id, key, internal, distribution)
        elif kind == "step":
            backend._set_trial_intermediate_value_without_commit(session, trial_id, key, value)
        else:
            model = (
                models.TrialUserAttributeModel
                if kind == "user"
                else models.TrialSystemAttributeModel
            )
            backend._set_trial_attr_without_commit(session, model, trial_id, key, value)

    def _write_all(backend: Any, session: Any, pending: dict[tuple[str, int, Any], Any]) -> None:
        """The gathered writes as a few statements (one per table), after one check that
        their trials still run; the dialects without an upsert write them one by one."""
        dialect = backend.engine.name
        if dialect not in ("sqlite", "postgresql") or sqlite3_too_old(dialect):
            for (kind, trial_id, key), value in pending.items():
                _write(backend, session, kind, trial_id, key, value)
            return
        trial = models.TrialModel
        ids = {trial_id for _kind, trial_id, _key in pending}
        states = dict(
            session.execute(
                sqlalchemy.select(trial.trial_id, trial.state).where(trial.trial_id.in_(ids))
            ).all()
        )
        for trial_id in sorted(ids):
            if trial_id not in states:
                raise KeyError(f"No trial with trial_id {trial_id} exists.")
            backend.check_trial_is_updatable(trial_id, states[trial_id])
        rows: dict[str, list[dict[str, Any]]] = {"param": [], "step": [], "user": [], "system": []}
        for (kind, trial_id, key), value in pending.items():
            if kind == "param":
                internal, distribution = value
                rows[kind].append(
                    {
                        "trial_id": trial_id,
                        "param_name": key,
                        "param_value": internal,
                        "distribution_json": optuna.distributions.distribution_to_json(
                            distribution
                        ),
                    }
                )
            elif kind == "step":
                stored, value_type = (
                    models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
                )
                rows[kind].append(
                    {
                        "trial_id": trial_id,
                        "step": key,
                        "intermediate_value": stored,
                        "intermediate_value_type": value_type,
                    }
                )
            else:
                rows[kind].append(
                    {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                )
        from sqlalchemy.dialects import postgresql, sqlite

        insert: Any = sqlite.insert if dialect == "sqlite" else postgresql.insert
        if rows["param"]:
            session.execute(sqlalchemy.insert(models.TrialParamModel), rows["param"])
        tables = (
            (
                "step",
                models.TrialIntermediateValueModel,
                "step",
                ("intermediate_value", "intermediate_value_type"),
            ),
            ("user", models.TrialUserAttributeModel, "key", ("value_json",)),
            ("system", models.TrialSystemAttributeModel, "key", ("value_json",)),
        )
        for kind, model, key_column, columns in tables:
            if not rows[kind]:
                continue
            statement = insert(model)
            statement = statement.on_conflict_do_update(
                index_elements=[model.trial_id, getattr(model, key_column)],
                set_={c: getattr(statement.excluded, c) for c in columns},
            )
            session.execute(statement, rows[kind])

    def sqlite3_too_old(dialect: str) -> bool:
        import sqlite3

        return dialect == "sqlite" and sqlite3.sqlite_version_info < (3, 24, 0)

    def _stored_distribution(backend: Any, study_id: int, name: str) -> Any:
        """The distribution of parameter `name` in the study's stored trials, or None."""
        with _create_scoped_session(backend.scoped_session) as session:
            record = (
                session.query(models.TrialParamModel)
                .join(models.TrialModel)
                .filter(models.TrialModel.study_id == study_id)
                .filter(models.TrialParamModel.param_name == name)
                .first()
            )
            if record is None:
                return None
            return optuna.distributions.json_to_distribution(str(record.distribution_json))

    def _read_trials(
        backend: Any, study_id: int, included: set[int], greater_than: int, excluded: set[int]
    ) -> list[Any]:
        """Optuna's RDBStorage._get_trials (those of `included` and those after
        `greater_than`), leaving out `excluded` (this process's running trials)."""
        included = {i for i in included if i <= greater_than}
        orm = sqlalchemy.orm
        with _create_scoped_session(backend.scoped_session) as session:
            models.StudyModel.find_or_raise_by_id(study_id, session)
            query = (
                session.query(models.TrialModel)
                .options(orm.selectinload(models.TrialModel.params))
                .options(orm.selectinload(models.TrialModel.values))
                .options(orm.selectinload(models.TrialModel.user_attributes))
                .options(orm.selectinload(models.TrialModel.system_attributes))
                .options(orm.selectinload(models.TrialModel.intermediate_values))
                .filter(models.TrialModel.study_id == study_id)
            )
            after = models.TrialModel.trial_id > greater_than
            if included:
                query = query.filter(
                    sqlalchemy.or_(models.TrialModel.trial_id.in_(included), after)
                )
            elif greater_than > -1:
                query = query.filter(after)
            if excluded:
                query = query.filter(models.TrialModel.trial_id.not_in(excluded))
            rows = query.order_by(models.TrialModel.trial_id).all()
            return [backend._build_frozen_trial_from_trial_model(row) for row in rows]

    _OWN_TRIALS_CACHE = OwnTrialsCache
    return OwnTrialsCache


_OWN_TRIALS_CACHE: type | None = None


def use_own_trials_cache(study: optuna.Study) -> bool:
    """Put the study of a database under OwnTrialsCache (above) instead of Optuna's cache;
    False, and nothing changed, for a journal, a memory or DLTUNE_STORAGE_PLAIN=1. Before the
    study's first ask: trials asked earlier are read from the database as before."""
    import os

    from optuna.storages._cached_storage import _CachedStorage

    if os.environ.get(PLAIN_ENV, "").strip() == "1":
        return False
    storage = storage_of(study)
    cache = _own_trials_cache_class()
    if isinstance(storage, cache):
        return True
    if type(storage) is not _CachedStorage:
        return False
    # setattr, not an assignment: the architecture test counts assigned names as dltune's own
    setattr(study, "_storage", cache(storage._backend))  # noqa: B010
    return True


def flush_trial_writes(study: optuna.Study) -> None:
    """Write what OwnTrialsCache gathered of this process's trials (one transaction); nothing
    for another storage, whose writes are already in it."""
    storage = storage_of(study)
    if _OWN_TRIALS_CACHE is not None and isinstance(storage, _OWN_TRIALS_CACHE):
        cast(Any, storage).flush()


def record_optuna_heartbeats(study: optuna.Study, trials: list[optuna.Trial]) -> None:
    """Optuna's heartbeats of several running trials, one transaction under OwnTrialsCache."""
    storage = storage_of(study)
    if _OWN_TRIALS_CACHE is not None and isinstance(storage, _OWN_TRIALS_CACHE):
        cast(Any, storage).record_heartbeats([trial_id(t) for t in trials])
        return
    for trial in trials:
        record_optuna_heartbeat(study, trial)
