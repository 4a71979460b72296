"""The one owner of what storage holds: opening a storage, the schema of every attribute dltune
writes (schema.py), the typed reader of a stored trial (records.py), heartbeats, and the only
code that touches Optuna's internals (internals.py, and own_trials_cache.py, the cache it
imports lazily).

Imports nothing of dltune but errors and vocabulary (and the engine's result types, for
typing); optuna and sqlalchemy are imported inside the functions that need them (or at the top
of own_trials_cache.py, which only a function imports).
"""

from .handle import IN_MEMORY, Storage, resolve_storage
from .heartbeats import fail_stale_trials, grace_period, heartbeat_seconds
from .opening import connect_timeout, open_storage, storage_lost
from .records import (
    TrialRecord,
    best_record,
    best_trial,
    directions,
    maximizes,
    objective_names,
    read_trial,
    read_trials,
    state_counts,
    study_meta,
    study_summary_meta,
    test_result,
    trial_records,
    trial_state,
)
from .urls import DEFAULT_STORAGE, display_url, journal_path, masked_repr, normalize_url

__all__ = [
    "DEFAULT_STORAGE",
    "IN_MEMORY",
    "Storage",
    "TrialRecord",
    "best_record",
    "best_trial",
    "connect_timeout",
    "directions",
    "display_url",
    "fail_stale_trials",
    "grace_period",
    "heartbeat_seconds",
    "journal_path",
    "masked_repr",
    "maximizes",
    "normalize_url",
    "objective_names",
    "open_storage",
    "read_trial",
    "read_trials",
    "resolve_storage",
    "state_counts",
    "storage_lost",
    "study_meta",
    "study_summary_meta",
    "test_result",
    "trial_records",
    "trial_state",
]
