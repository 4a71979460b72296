"""OwnTrialsCache: Optuna's cache of a database's trials, which also keeps this process's running
trials in memory. With dltune.storage.internals, the one corner of dltune that touches Optuna's
private internals (a test allows them in these two modules only): this one is the cache, which
subclasses Optuna's private `_CachedStorage` and writes through RDBStorage's private helpers.
internals.py imports it lazily, on a database study's first use, so that importing
dltune.storage imports no Optuna.

Optuna's _CachedStorage keeps finished trials, but re-reads every unfinished one from the
database on each read of the study, which TPE with constant_liar does several times per ask
(once per group of parameters, uncached): with 40 paused trials, most of a trial's overhead
(measured: benchmarks/overhead.py). A trial this process created and still runs changes only
through this process (its writes), so OwnTrialsCache keeps it in memory, up to date with every
write, and reads from the database only the trials other processes run or finished.

Its writes to such a trial (parameters, attributes, intermediate values) are gathered and
written together, in one transaction, at flush() (the study loop calls it through
internals.flush_trial_writes before each segment trains, so a finished epoch is in storage
before the next one starts), and before any other write or any change of a trial's state
(tell), so storage sees them in order.

Optuna's private names used here (written against Optuna 4.x and 5.0): `_CachedStorage` and its
`_backend`, `_studies` (`_StudyInfo`: trials, unfinished_trial_ids, last_finished_trial_id,
param_distribution), `_trial_id_to_study_id_and_number`, `_add_trials_to_cache`, `_lock`, and
`_read_trials_from_remote_storage` (overridden); `FrozenTrial._trial_id`; the RDB models and
`_create_scoped_session` of `optuna.storages._rdb`; of RDBStorage, `scoped_session`, `engine`,
`_set_trial_param_without_commit`, `_set_trial_intermediate_value_without_commit`,
`_set_trial_attr_without_commit` and `_build_frozen_trial_from_trial_model`.
"""

from __future__ import annotations

import copy
import json
import sqlite3
import threading
from typing import Any

import optuna
import sqlalchemy
from optuna.storages._cached_storage import _CachedStorage, _StudyInfo
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import TrialState

# A gathered write: (kind, trial id, key) -> value, where kind is "param" (key: the parameter's
# name, value: (internal value, distribution)), "step" (key: the step, value: the intermediate
# value), "user" or "system" (key: the attribute's name, value: its value).
Pending = dict[tuple[str, int, Any], Any]


class OwnTrialsCache(_CachedStorage):
    def __init__(self, backend: optuna.storages.RDBStorage) -> None:
        super().__init__(backend)
        self._own: set[int] = set()  # ids of running trials this process created
        self._settled: set[int] = set()  # own trials finished since, already cached
        self._pending: Pending = {}  # writes not yet in the database, in order
        self._flushing = threading.RLock()

    # -- owning --
    def create_new_trial(self, study_id: int, template_trial: Any = None) -> int:
        trial_id = super().create_new_trial(study_id, template_trial)
        with self._lock:
            if self._cached(trial_id).state == TrialState.RUNNING:
                self._own.add(trial_id)
        return trial_id

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
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
                self._check_distribution(trial_id, key, distribution)
                trial.params[key] = distribution.to_external_repr(internal)
                trial.distributions[key] = distribution
            elif kind == "step":
                trial.intermediate_values[key] = value
            else:
                attrs = trial.user_attrs if kind == "user" else trial.system_attrs
                attrs[key] = json.loads(json.dumps(value))  # as the database returns it
            self._pending[(kind, trial_id, key)] = value
        return True

    def _check_distribution(self, trial_id: int, name: str, distribution: Any) -> None:
        """Raise, as Optuna does at once, if parameter `name` had another distribution in the
        study; remember this one otherwise."""
        study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
        known = self._studies[study_id].param_distribution.get(name)
        if known is not None:
            optuna.distributions.check_distribution_compatibility(known, distribution)
            return
        # the first time here: against the study's earlier trials
        known = _stored_distribution(self._backend, study_id, name)
        if known is not None:
            optuna.distributions.check_distribution_compatibility(known, distribution)
        self._studies[study_id].param_distribution[name] = distribution

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
            try:
                with _create_scoped_session(self._backend.scoped_session) as session:
                    _write_all(self._backend, session, pending)
            except Exception:
                self._write_one_by_one(pending)

    def _write_one_by_one(self, pending: Pending) -> None:
        """Each write in a transaction of its own; the trial of a write that fails is read
        from the database again, the others are still written, and the first error raised."""
        failure: Exception | None = None
        for (kind, trial_id, key), value in pending.items():
            try:
                with _create_scoped_session(self._backend.scoped_session, True) as session:
                    _write(self._backend, session, kind, trial_id, key, value)
            except Exception as error:
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
                study.last_finished_trial_id = max(study.last_finished_trial_id, trial._trial_id)
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


# ---- writing gathered writes ---------------------------------------------------------------


def _write(backend: Any, session: Any, kind: str, trial_id: int, key: Any, value: Any) -> None:
    """One gathered write, through RDBStorage's own helper for it."""
    if kind == "param":
        internal, distribution = value
        backend._set_trial_param_without_commit(session, trial_id, key, internal, distribution)
    elif kind == "step":
        backend._set_trial_intermediate_value_without_commit(session, trial_id, key, value)
    else:
        model = (
            models.TrialUserAttributeModel if kind == "user" else models.TrialSystemAttributeModel
        )
        backend._set_trial_attr_without_commit(session, model, trial_id, key, value)


def _write_all(backend: Any, session: Any, pending: Pending) -> None:
    """The gathered writes as a few statements (one per table), after one check that
    their trials still run; the dialects without an upsert write them one by one."""
    dialect = backend.engine.name
    if dialect not in ("sqlite", "postgresql") or sqlite3_too_old(dialect):
        for (kind, trial_id, key), value in pending.items():
            _write(backend, session, kind, trial_id, key, value)
        return
    _check_trials_updatable(backend, session, {trial_id for _kind, trial_id, _key in pending})
    rows = _rows(pending)
    if rows["param"]:
        session.execute(sqlalchemy.insert(models.TrialParamModel), rows["param"])
    _upsert(session, dialect, rows)


def _check_trials_updatable(backend: Any, session: Any, ids: set[int]) -> None:
    """Raise as RDBStorage would if a trial is missing or finished (one query for all)."""
    trial = models.TrialModel
    states = dict(
        session.execute(
            sqlalchemy.select(trial.trial_id, trial.state).where(trial.trial_id.in_(ids))
        ).all()
    )
    for trial_id in sorted(ids):
        if trial_id not in states:
            raise KeyError(f"No trial with trial_id {trial_id} exists.")
        backend.check_trial_is_updatable(trial_id, states[trial_id])


def _rows(pending: Pending) -> dict[str, list[dict[str, Any]]]:
    """The gathered writes as the rows of their tables, by kind."""
    rows: dict[str, list[dict[str, Any]]] = {"param": [], "step": [], "user": [], "system": []}
    for (kind, trial_id, key), value in pending.items():
        if kind == "param":
            internal, distribution = value
            as_json = optuna.distributions.distribution_to_json(distribution)
            rows[kind].append(
                {
                    "trial_id": trial_id,
                    "param_name": key,
                    "param_value": internal,
                    "distribution_json": as_json,
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
            rows[kind].append({"trial_id": trial_id, "key": key, "value_json": json.dumps(value)})
    return rows


# The tables written by upsert (a step or an attribute may be written again): kind, model, the
# column that, with the trial, names a row, and the columns a later write replaces.
_UPSERTED = (
    (
        "step",
        models.TrialIntermediateValueModel,
        "step",
        ("intermediate_value", "intermediate_value_type"),
    ),
    ("user", models.TrialUserAttributeModel, "key", ("value_json",)),
    ("system", models.TrialSystemAttributeModel, "key", ("value_json",)),
)


def _upsert(session: Any, dialect: str, rows: dict[str, list[dict[str, Any]]]) -> None:
    """The rows of steps and attributes, one statement per table, each replacing the row
    already there for its trial and key."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert: Any = sqlite.insert if dialect == "sqlite" else postgresql.insert
    for kind, model, key_column, columns in _UPSERTED:
        if not rows[kind]:
            continue
        statement = insert(model)
        statement = statement.on_conflict_do_update(
            index_elements=[model.trial_id, getattr(model, key_column)],
            set_={c: getattr(statement.excluded, c) for c in columns},
        )
        session.execute(statement, rows[kind])


def sqlite3_too_old(dialect: str) -> bool:
    """Whether the database is SQLite older than 3.24, which has no upsert."""
    return dialect == "sqlite" and sqlite3.sqlite_version_info < (3, 24, 0)


# ---- reading ---------------------------------------------------------------------------------


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
            query = query.filter(sqlalchemy.or_(models.TrialModel.trial_id.in_(included), after))
        elif greater_than > -1:
            query = query.filter(after)
        if excluded:
            query = query.filter(models.TrialModel.trial_id.not_in(excluded))
        rows = query.order_by(models.TrialModel.trial_id).all()
        return [backend._build_frozen_trial_from_trial_model(row) for row in rows]
