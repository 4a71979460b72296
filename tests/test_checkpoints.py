"""Trial checkpoints in a study: where they go and what a bad place says, that an interrupted
study resumes each trial from its last checkpoint with an unbroken curve, that nothing is left
on disk once trials end, and that a dead process's trials are recognised at once."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import warnings
from pathlib import Path

import optuna
import pytest

from dltune.errors import StudyError
from dltune.storage import Storage, fail_stale_trials, schema
from dltune.storage.checkpoints import CheckpointStore, open_checkpoints
from dltune.study import tune
from dltune.study.progress import ProgressListener

from .helpers import SMALL_SPACE, assert_curves_unbroken, dltune


def space_file(folder: Path) -> Path:
    path = folder / "small.yaml"
    path.write_text(SMALL_SPACE)
    return path


def checkpoint_files(folder: Path) -> list[Path]:
    return sorted((folder / "dltune.db.checkpoints").glob("ckpt-*"))


class StopAfter(ProgressListener):
    """Ctrl-C after `epochs` epochs have been reported (in the middle of a segment). On
    digits with seed 0, after 13 several trials are paused at their first rung and one that
    went on is stopped after its second epoch: it trains its third from its checkpoint."""

    def __init__(self, epochs: int) -> None:
        self.left = epochs

    def epoch_done(self, number, report) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


class EpochsTrained(ProgressListener):
    """The epochs each trial trained in this run."""

    def __init__(self) -> None:
        self.epochs: dict[int, list[int]] = {}

    def epoch_done(self, number, report) -> None:
        self.epochs.setdefault(number, []).append(report.epoch)


def test_an_interrupted_study_resumes_each_trial_from_its_checkpoint(tmp_path):
    space, db = space_file(tmp_path), f"sqlite:///{tmp_path / 'dltune.db'}"
    options = dict(data="digits", storage=db, seed=0, workers=1, checkpoint_every=0, cv="holdout")
    first = tune(space, trials=40, progress=StopAfter(13), **options)
    assert first.interrupted
    study = first.study
    left = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.FAIL]
    kept = {t.number: schema.read_checkpoint(t) for t in left}
    # paused trials left their checkpoint; one stopped in its first segment has none yet and
    # starts again from its seed
    saved = [n for n, checkpoint in kept.items() if checkpoint]
    assert saved, kept
    assert len(checkpoint_files(tmp_path)) == len(saved)

    # `dltune studies` counts what the unfinished trials hold: all the disk in use
    (listed,) = json.loads(dltune("studies", "--json", cwd=tmp_path).stdout)
    files = checkpoint_files(tmp_path)
    assert listed["checkpoints"] == {
        "count": len(files),
        "bytes": sum(f.stat().st_size for f in files),
    }

    trained = EpochsTrained()
    again = tune(space, trials=2, progress=trained, **options)
    assert any("resuming" in note for note in again.notes), again.notes
    study = again.study
    continued = {
        schema.read_resumes(t): t for t in study.get_trials() if schema.read_resumes(t) is not None
    }
    assert set(continued) == set(kept)  # every interrupted trial continued, none lost
    assert any(trained.epochs.get(continued[n].number) for n in saved)  # some went on training
    for old, trial in continued.items():
        assert trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        record = schema.read_checkpoint(trial)  # its last, whose file went when it ended
        assert record is None or not (tmp_path / "dltune.db.checkpoints" / record["id"]).exists()
        # the epochs before the checkpoint were not trained again: training (if its rung
        # promoted it) went on from the next one, and the curve's first points are the
        # interrupted trial's own
        epochs = int(kept[old]["epochs"]) if kept[old] else 0
        assert trained.epochs.get(trial.number, [epochs + 1])[0] == epochs + 1
        before = study.trials[old].intermediate_values
        assert all(trial.intermediate_values[e] == before[e] for e in range(1, epochs + 1))
    assert not [t for t in study.get_trials() if t.state == optuna.trial.TrialState.RUNNING]
    assert checkpoint_files(tmp_path) == []  # nothing left once every trial has ended
    assert_curves_unbroken(study)


def test_a_study_run_to_its_end_leaves_no_checkpoint_behind(tmp_path):
    # what a crash between two steps may leave: a file no trial names, half a file
    folder = tmp_path / "dltune.db.checkpoints"
    folder.mkdir()
    (folder / "ckpt-0123456789abcdef").write_bytes(b"stray")
    (folder / ".ckpt-feed.partial").write_bytes(b"half")
    (folder / "notes.txt").write_text("the user's")
    result = tune(
        space_file(tmp_path),
        data="digits",
        storage=f"sqlite:///{tmp_path / 'dltune.db'}",
        trials=6,
        seed=1,
        workers=1,
        checkpoint_every=0,
    )
    assert any(n.startswith("checkpoints: ") and "written" in n for n in result.notes)
    assert checkpoint_files(tmp_path) == []
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]  # swept: only dltune's
    named = [schema.read_checkpoint(t) for t in result.study.trials]
    assert any(named)  # each trial's attribute names its last checkpoint, whose file is gone
    assert not any((folder / r["id"]).exists() for r in named if r)
    (listed,) = json.loads(dltune("studies", "--json", cwd=tmp_path).stdout)
    assert listed["checkpoints"] == {"count": 0, "bytes": 0}
    assert "none" in dltune("studies", cwd=tmp_path).stdout


# ---- where checkpoints go --------------------------------------------------------------------


def test_the_default_place_is_beside_the_storage_file_and_none_for_memory(tmp_path):
    storage = Storage.open(f"sqlite:///{tmp_path / 'a.db'}")
    store, note = open_checkpoints(None, storage)
    assert store is not None and (tmp_path / "a.db.checkpoints").is_dir()
    assert str(tmp_path / "a.db.checkpoints") in note
    assert open_checkpoints(None, Storage(optuna.storages.InMemoryStorage()))[0] is None
    assert open_checkpoints("off", storage) == (None, "checkpoints: off")
    server = Storage(optuna.storages.InMemoryStorage(), "postgresql://u@db/x")
    store, note = open_checkpoints(None, server)
    assert store is None and "shared folder" in note


def test_a_bad_place_is_an_error_naming_it_and_the_fix_before_training(tmp_path):
    storage = Storage.open(f"sqlite:///{tmp_path / 'a.db'}")
    missing = tmp_path / "nowhere"
    with pytest.raises(StudyError, match=f"{missing} does not exist.*mkdir -p"):
        open_checkpoints(str(missing), storage)
    with pytest.raises(StudyError, match="give a bucket alone"):
        open_checkpoints("s3://bucket/and/a/path", storage)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(StudyError, match="cannot be written"):
                open_checkpoints(str(locked), storage)
        finally:
            locked.chmod(0o700)
    # through tune(), the error names the parameter, and the storage holds no study yet
    with pytest.raises(StudyError, match="checkpoints="):
        tune(
            space_file(tmp_path), data="digits", storage=storage, trials=1,
            checkpoints=str(missing),
        )  # fmt: skip
    assert storage.summaries() == []


def test_a_full_disk_mid_run_stops_checkpoints_with_one_warning():
    class Full:
        def write(self, artifact_id, body):
            raise OSError(28, "No space left on device")

    store = CheckpointStore(Full(), "/full")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert store.save(b"state") is None
        assert store.save(b"state") is None
    assert len(caught) == 1 and "No space left" in str(caught[0].message)


def test_a_checkpoint_is_written_whole_or_not_at_all(tmp_path):
    from dltune.storage.checkpoints import AtomicFileStore

    store = AtomicFileStore(tmp_path)

    class Broken(io.BytesIO):
        def read(self, *args):
            raise OSError("cut")

    with pytest.raises(OSError):
        store.write("ckpt-x", Broken())
    assert not (tmp_path / "ckpt-x").exists()  # no half file under the name a reader opens


# ---- a dead process's trials -----------------------------------------------------------------


def test_a_running_trial_whose_process_here_is_gone_is_failed_at_once(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'z.db'}")
    ended = subprocess.Popen(["true"])
    ended.wait()
    here = socket.gethostname()
    owners = {
        "dead": {"host": here, "pid": ended.pid, "started": None},
        "alive": {"host": here, "pid": os.getpid(), "started": None},
        "elsewhere": {"host": here + "-other", "pid": ended.pid, "started": None},
    }
    trials = {}
    for name, owner in owners.items():
        trials[name] = study.ask()
        schema.write_owner(trials[name], owner)
    fail_stale_trials(study)  # long before any heartbeat grace
    states = {name: study.trials[t.number].state for name, t in trials.items()}
    assert states == {
        "dead": optuna.trial.TrialState.FAIL,
        "alive": optuna.trial.TrialState.RUNNING,
        "elsewhere": optuna.trial.TrialState.RUNNING,
    }


# ---- stray checkpoints in a place other storages may share ------------------------------------


def test_stray_checkpoints_in_a_given_folder_are_swept_but_only_this_storages(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    url = f"sqlite:///{tmp_path / 'dltune.db'}"
    options = dict(data="digits", storage=url, seed=1, workers=1, checkpoint_every=0)
    first = tune(space_file(tmp_path), trials=2, checkpoints=str(shared), **options)
    store, _ = open_checkpoints(str(shared), Storage.open(url))
    assert store is not None and not store.own_folder
    namespace = store.namespace(schema.read_checkpoint_token(first.study))
    assert namespace is not None
    named = [r["id"] for r in map(schema.read_checkpoint, first.study.trials) if r]
    assert named and all(i.startswith(f"ckpt-{namespace}-") for i in named)
    # what a crash of this storage's run leaves, beside what others keep in the same folder
    ours = [f"ckpt-{namespace}-{'a' * 32}", f".ckpt-{namespace}-{'b' * 32}.partial"]
    theirs = [
        f"ckpt-{'0' * 16}-{'c' * 32}",  # another storage's study
        f"ckpt-{'d' * 32}",  # a study from before namespaces: whose, nothing tells
        "notes.txt",
    ]
    for name in ours + theirs:
        (shared / name).write_bytes(b"stray")
    tune(space_file(tmp_path), trials=1, checkpoints=str(shared), **options)
    assert sorted(p.name for p in shared.iterdir()) == sorted(theirs)


def test_a_copy_of_the_storage_file_has_namespaces_of_its_own(tmp_path):
    a = CheckpointStore(None, "x", scope=str(tmp_path / "a.db"))
    b = CheckpointStore(None, "x", scope=str(tmp_path / "b.db"))
    assert a.namespace("0123456789abcdef") != b.namespace("0123456789abcdef")
    assert a.namespace(None) is None
    assert a.namespace("0123456789abcdef") == a.namespace("0123456789abcdef")


class FakeS3:
    """The two calls of boto3's S3 client a sweep makes, on a dict of keys (pages of 2)."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = set(keys)

    def get_paginator(self, operation: str):
        assert operation == "list_objects_v2"
        return self

    def paginate(self, Bucket: str, Prefix: str):  # boto3's argument names
        found = sorted(k for k in self.keys if k.startswith(Prefix))
        for i in range(0, len(found), 2):
            yield {"Contents": [{"Key": k} for k in found[i : i + 2]]}
        if not found:
            yield {}  # S3 gives no "Contents" for an empty listing

    def delete_object(self, Bucket: str, Key: str) -> None:
        self.keys.discard(Key)


class FakeGCSBucket:
    def __init__(self, names: list[str]) -> None:
        self.names = set(names)

    def list_blobs(self, prefix: str):
        return [type("Blob", (), {"name": n}) for n in sorted(self.names) if n.startswith(prefix)]

    def delete_blob(self, name: str) -> None:
        self.names.discard(name)


@pytest.mark.parametrize("kind", ["s3", "gs"])
def test_a_bucket_sweep_removes_only_this_storages_unheld_checkpoints(kind):
    from types import SimpleNamespace

    from dltune.storage.checkpoints import BucketStore, _gcs_names, _s3_names

    ns, other = "1" * 16, "2" * 16
    held, stray = f"ckpt-{ns}-{'a' * 32}", [f"ckpt-{ns}-{'b' * 32}", f"ckpt-{ns}-{'c' * 32}"]
    stray.append(f"ckpt-{ns}-{'e' * 32}")  # a second page of the listing
    kept = [f"ckpt-{other}-{'d' * 32}", f"ckpt-{'f' * 32}", f"ckpt-{ns}-not-an-id", "data.csv"]
    keys = [held, *stray, *kept]
    if kind == "s3":
        client = FakeS3(keys)
        optuna_store = SimpleNamespace(
            client=client, bucket="b", remove=lambda k: client.delete_object(Bucket="b", Key=k)
        )
        bucket = BucketStore(optuna_store, _s3_names(optuna_store))
        left = lambda: client.keys  # noqa: E731
    else:
        blobs = FakeGCSBucket(keys)
        optuna_store = SimpleNamespace(bucket_obj=blobs, remove=blobs.delete_blob)
        bucket = BucketStore(optuna_store, _gcs_names(optuna_store))
        left = lambda: blobs.names  # noqa: E731
    store = CheckpointStore(bucket, f"{kind}://b")
    assert store.sweep({held}, namespaces={ns, None}) == 3
    assert left() == {held, *kept}
    assert store.sweep(set(), namespaces=set()) == 0  # no namespace known: nothing removed
    assert left() == {held, *kept}


def test_a_failing_bucket_stops_the_sweep_with_a_warning_not_the_run():
    from dltune.storage.checkpoints import BucketStore

    def names(prefix: str):
        raise ConnectionError("the bucket is unreachable")

    store = CheckpointStore(BucketStore(object(), names), "s3://b")
    with pytest.warns(RuntimeWarning, match="could not be swept.*unreachable"):
        assert store.sweep(set(), namespaces={"1" * 16}) == 0
