"""Where trial checkpoints live: an Optuna artifact store, chosen once at the edge and checked
before training starts.

The default is a folder beside the SQLite or journal file (`dltune.db` -> `dltune.db.checkpoints/`).
A database server's workers may run on other machines, so for PostgreSQL (and Ray clusters)
the user names a place every worker reaches: a shared directory, `s3://bucket` or `gs://bucket`
(Optuna's Boto3ArtifactStore and GCSArtifactStore). In memory, nothing outlives the process, so
there are no checkpoints either.

Every checkpoint is a new artifact id, written in full before any trial attribute names it
(and, on a file system, written to a temporary name and renamed), so a crash mid-write leaves
the trial pointing at its previous, complete checkpoint. A trial keeps only its latest: the
previous one is removed once the new one is stored, and the last when the trial ends
(complete, pruned, diverged, failed). Disk use is therefore bounded by one checkpoint per
unfinished trial: the running ones, those paused at a rung (at most the study loop's
max_paused per process) and those interrupted awaiting their resume. What a crash leaves
between two of those steps (a file written but not yet named, or named by a trial that has
just ended) is swept away by the next run that finds itself alone on a storage file
(presence.py) in the default folder beside it, which no other storage shares.

An id read back from storage (a trial attribute) becomes a file name or an object key, and a
storage may come from anyone: only the form this store writes (`ckpt-` and 32 hexadecimal
digits: no `/`, no `..`, nothing absolute) is ever opened or removed (`id_problem`).
"""

from __future__ import annotations

import io
import os
import re
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import StudyError, param
from .urls import display_url, journal_path

if TYPE_CHECKING:
    from .handle import Storage

OFF = "off"
SUFFIX = ".checkpoints"
PREFIX = "ckpt-"  # every checkpoint's artifact id starts so (a folder may hold other files)
ID_FORM = re.compile(rf"{PREFIX}[0-9a-f]{{32}}")  # the only ids opened or removed: save()'s


def id_problem(artifact_id: object) -> str | None:
    """Why an id read from storage is not one of this store's (a path, `..`, another form),
    or None: such an id never becomes a path or a key."""
    if isinstance(artifact_id, str) and ID_FORM.fullmatch(artifact_id):
        return None
    return (
        f"checkpoint id {artifact_id!r} is not one dltune writes ({PREFIX} and 32 hexadecimal "
        "digits), so it is not opened or removed: the storage was edited by something else"
    )


class AtomicFileStore:
    """Optuna's FileSystemArtifactStore, but a write goes to a temporary file that is renamed
    into place when complete, so no reader ever sees half a checkpoint."""

    def __init__(self, folder: Path) -> None:
        from optuna.artifacts import FileSystemArtifactStore

        self.folder = folder
        self._store = FileSystemArtifactStore(folder)

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self._store.open_reader(artifact_id)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        final = self.folder / artifact_id
        partial = final.with_name(f".{artifact_id}.partial")
        with open(partial, "wb") as out:
            out.write(content_body.read())
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, final)

    def remove(self, artifact_id: str) -> None:
        self._store.remove(artifact_id)

    def sweep(self, keep: set[str]) -> int:
        """Remove the checkpoint files not in `keep`, and half-written ones; how many went.
        Only for a folder no other process writes to now (a crash between writing a file and
        recording its id, or between a trial's end and the file's removal, leaves one)."""
        gone = 0
        for path in self.folder.iterdir():
            stray = path.name.startswith(PREFIX) and path.name not in keep
            partial = path.name.startswith(f".{PREFIX}") and path.name.endswith(".partial")
            if (stray or partial) and path.is_file():
                path.unlink(missing_ok=True)
                gone += 1
        return gone

    def usage(self) -> tuple[int, int]:
        """(checkpoint files, bytes) in the folder."""
        files = [p for p in self.folder.glob(f"{PREFIX}*") if p.is_file()]
        return len(files), sum(p.stat().st_size for p in files)


@dataclass
class CheckpointStore:
    """Checkpoints written to, read from and removed from one artifact store."""

    store: Any  # an Optuna artifact store (open_reader, write, remove)
    location: str  # as messages name it
    failed: str | None = field(default=None)  # why writing stopped mid-run (one warning)
    own_folder: bool = False  # the default beside a storage file: no other storage's files

    def save(self, data: bytes) -> str | None:
        """Store one checkpoint; its new id, or None when the store stopped taking them (a
        full disk, a lost bucket: one warning, and the study goes on without)."""
        if self.failed is not None:
            return None
        artifact_id = f"{PREFIX}{uuid.uuid4().hex}"
        try:
            self.store.write(artifact_id, io.BytesIO(data))
        except Exception as exc:  # OSError, a cloud client's errors: none may stop training
            self.failed = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"dltune: checkpoints stopped: writing to {self.location} failed "
                f"({self.failed}); the study goes on without them (free space there, or name "
                "another place for checkpoints, and run the same command again)",
                RuntimeWarning,
                stacklevel=2,
            )
            return None
        return artifact_id

    def load(self, artifact_id: str) -> bytes | None:
        """A checkpoint's bytes, or None when it is gone (removed, another location); a
        StudyError for an id not of this store's form (`id_problem`), before it is a path."""
        from optuna.artifacts.exceptions import ArtifactNotFound

        problem = id_problem(artifact_id)
        if problem is not None:
            raise StudyError(f"{problem}; in {self.location}")
        try:
            with self.store.open_reader(artifact_id) as reader:
                return reader.read()
        except (ArtifactNotFound, FileNotFoundError):
            return None

    def remove(self, artifact_id: str) -> None:
        """Remove a checkpoint; one already gone is no error (a crash between a trial's end
        and this, then a second attempt). An id not of this store's form is left alone, with
        a warning: the run goes on."""
        from optuna.artifacts.exceptions import ArtifactNotFound

        problem = id_problem(artifact_id)
        if problem is not None:
            warnings.warn(f"dltune: {problem}; in {self.location}", RuntimeWarning, stacklevel=2)
            return
        try:
            self.store.remove(artifact_id)
        except (ArtifactNotFound, FileNotFoundError):
            pass
        except Exception as exc:  # the store is failing: the file stays, training goes on
            warnings.warn(
                f"dltune: could not remove checkpoint {artifact_id} from {self.location}: "
                f"{type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )

    def sweep(self, keep: set[str]) -> int:
        """Remove what no trial refers to, where the store is a folder (AtomicFileStore.sweep)."""
        return self.store.sweep(keep) if isinstance(self.store, AtomicFileStore) else 0

    def usage(self) -> tuple[int, int] | None:
        """(files, bytes) held, where the store can count them (a folder)."""
        return self.store.usage() if isinstance(self.store, AtomicFileStore) else None


def default_location(url: str | None) -> str | None:
    """Where a storage's checkpoints go unless told: beside its file; None for a database
    server (its workers may be on other machines) or memory."""
    if url is None:
        return None
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        return None if path in ("", ":memory:") else path + SUFFIX
    if url.startswith("journal://"):
        return journal_path(url) + SUFFIX
    return None


def open_checkpoints(given: str | None, storage: Storage) -> tuple[CheckpointStore | None, str]:
    """The checkpoint store for a study in `storage` (`given`: a folder, s3://bucket,
    gs://bucket, "off", or None for the default) and a note that says where checkpoints go.
    A place that cannot take them is a StudyError naming it and the fix, before training."""
    if given is not None and given.strip().lower() == OFF:
        return None, "checkpoints: off"
    if given is None:
        location = default_location(storage.url)
        if location is None:
            if storage.url is None:
                return None, "checkpoints: none (an in-memory storage keeps nothing after the run)"
            return None, (
                "checkpoints: off; a database server's workers may run anywhere, so name a place "
                "for checkpoints that they all reach (a shared folder, s3://bucket, gs://bucket)"
            )
        folder = Path(location)
        folder.mkdir(exist_ok=True)  # beside the storage's file, whose folder exists
        store = _folder_store(folder, given=False)
        store.own_folder = True
        return store, f"checkpoints: {folder}"
    if given.startswith(("s3://", "gs://")):
        return _bucket_store(given), f"checkpoints: {display_url(given)}"
    return _folder_store(Path(given), given=True), f"checkpoints: {given}"


def _folder_store(folder: Path, *, given: bool) -> CheckpointStore:
    source = param("checkpoints", str(folder)) if given else "the default beside the storage file"
    off = param("checkpoints", OFF)
    if not folder.is_dir():
        raise StudyError(
            f"checkpoint folder {folder} does not exist (from {source}); create it (mkdir -p "
            f"{folder}), give another, or {off}"
        )
    probe = folder / f".dltune-probe-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"dltune")
        probe.unlink()
    except OSError as exc:
        raise StudyError(
            f"checkpoint folder {folder} cannot be written ({exc.strerror or exc}; from {source}); "
            f"give a folder you can write to, {param('checkpoints', shown='DIR')}, or {off}"
        ) from exc
    return CheckpointStore(AtomicFileStore(folder), str(folder))


def _bucket_store(url: str) -> CheckpointStore:
    scheme, _, bucket = url.partition("://")
    bucket = bucket.strip("/")
    if not bucket or "/" in bucket:
        raise StudyError(
            f"{param('checkpoints', display_url(url))}: give a bucket alone "
            f"({scheme}://my-bucket); Optuna's artifact stores keep their files at the bucket's "
            "top level"
        )
    try:
        if scheme == "s3":
            from optuna.artifacts import Boto3ArtifactStore

            store: Any = Boto3ArtifactStore(bucket)
        else:
            from optuna.artifacts import GCSArtifactStore

            store = GCSArtifactStore(bucket)
    except ImportError as exc:
        package = "boto3" if scheme == "s3" else "google-cloud-storage"
        raise StudyError(
            f"{param('checkpoints', display_url(url))} needs {package}: pip install {package}"
        ) from exc
    return CheckpointStore(store, display_url(url))  # location: as messages name it
