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
between two of those steps (a file written but not yet named, a trial's previous checkpoint
not yet removed, or one named by a trial that has just ended) is swept away by the next run
that finds itself alone on its storage (presence.py), wherever the checkpoints are: in the
default folder beside a storage file, which no other storage shares, every checkpoint no
unfinished trial holds; in a folder given or a bucket, which other storages may share, only
the checkpoints of this storage's studies, told by the namespace in their ids.

A study's checkpoint ids carry a namespace, `ckpt-NAMESPACE-HEX`: 16 hexadecimal digits of a
hash of the study's random token (schema.CHECKPOINT_TOKEN, drawn when the study is created)
and of its storage file's real path (`scope`), so that neither another storage's study nor a
copy of this storage file shares it. A study made before namespaces writes `ckpt-HEX`: those
files are swept from the default folder only (in a shared place nothing tells whose they are).

An id read back from storage (a trial attribute) becomes a file name or an object key, and a
storage may come from anyone: only the form this store writes (`ckpt-`, perhaps a namespace
and `-`, and 32 hexadecimal digits: no `/`, no `..`, nothing absolute) is ever opened or
removed (`id_problem`).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import uuid
import warnings
from collections.abc import Callable, Iterable
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
NAMESPACE_FORM = re.compile(r"[0-9a-f]{16}")  # a study's, in its ids: CheckpointStore.namespace
# the only ids opened or removed: save()'s, with or without a namespace
ID_FORM = re.compile(rf"{PREFIX}(?:[0-9a-f]{{16}}-)?[0-9a-f]{{32}}")


def id_problem(artifact_id: object) -> str | None:
    """Why an id read from storage is not one of this store's (a path, `..`, another form),
    or None: such an id never becomes a path or a key."""
    if isinstance(artifact_id, str) and ID_FORM.fullmatch(artifact_id):
        return None
    return (
        f"checkpoint id {artifact_id!r} is not one dltune writes ({PREFIX}, perhaps 16 "
        "hexadecimal digits and -, then 32), so it is not opened or removed: the storage was "
        "edited by something else"
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

    def sweep(self, prefixes: list[str], keep: set[str]) -> int:
        """Remove the checkpoint files whose names start with one of `prefixes` and are not in
        `keep`, and the half-written ones of those names; how many went. Only for files no
        process writes now (CheckpointStore.sweep)."""
        gone = 0
        for path in self.folder.iterdir():
            name = path.name
            stray = name.startswith(tuple(prefixes)) and name not in keep
            partial = name.startswith(tuple(f".{p}" for p in prefixes)) and name.endswith(
                ".partial"
            )
            if (stray or partial) and path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)
                gone += 1
        return gone

    def usage(self) -> tuple[int, int]:
        """(checkpoint files, bytes) in the folder."""
        files = [p for p in self.folder.glob(f"{PREFIX}*") if p.is_file()]
        return len(files), sum(p.stat().st_size for p in files)


class BucketStore:
    """Optuna's S3 or GCS artifact store, and the listing a sweep needs (Optuna's artifact
    store API has none): `names(prefix)` gives the keys in the bucket that start so."""

    def __init__(self, store: Any, names: Callable[[str], Iterable[str]]) -> None:
        self.store = store
        self.names = names

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self.store.open_reader(artifact_id)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self.store.write(artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        self.store.remove(artifact_id)

    def sweep(self, prefixes: list[str], keep: set[str]) -> int:
        """Remove the checkpoints (ids of this store's form) whose keys start with one of
        `prefixes` and are not in `keep`; how many went (an upload is whole or absent: no
        half-written object to look for)."""
        gone = 0
        for prefix in prefixes:
            for key in list(self.names(prefix)):
                if key not in keep and ID_FORM.fullmatch(key):
                    self.store.remove(key)
                    gone += 1
        return gone


def _s3_names(store: Any) -> Callable[[str], Iterable[str]]:
    """The keys of Boto3ArtifactStore `store`'s bucket that start with a prefix (paged)."""

    def names(prefix: str) -> Iterable[str]:
        pages = store.client.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=store.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]

    return names


def _gcs_names(store: Any) -> Callable[[str], Iterable[str]]:
    """The names of GCSArtifactStore `store`'s bucket's blobs that start with a prefix."""

    def names(prefix: str) -> Iterable[str]:
        for blob in store.bucket_obj.list_blobs(prefix=prefix):
            yield blob.name

    return names


@dataclass
class CheckpointStore:
    """Checkpoints written to, read from and removed from one artifact store."""

    store: Any  # an Optuna artifact store (open_reader, write, remove)
    location: str  # as messages name it
    failed: str | None = field(default=None)  # why writing stopped mid-run (one warning)
    own_folder: bool = False  # the default beside a storage file: no other storage's files
    scope: str = ""  # the storage's file (real path), in every namespace; "" for a server

    def namespace(self, token: str | None) -> str | None:
        """The namespace of a study's checkpoint ids: from its token (schema.CHECKPOINT_TOKEN)
        and this storage's scope; None for a study without a token (made before them)."""
        if token is None:
            return None
        digest = hashlib.sha256(f"{token}\0{self.scope}".encode()).hexdigest()
        return digest[:16]

    def save(self, data: bytes, namespace: str | None = None) -> str | None:
        """Store one checkpoint (its id in `namespace`, a study's, if given); its new id, or
        None when the store stopped taking them (a full disk, a lost bucket: one warning, and
        the study goes on without)."""
        if self.failed is not None:
            return None
        named = namespace is not None and NAMESPACE_FORM.fullmatch(namespace)
        artifact_id = f"{PREFIX}{namespace}-" if named else PREFIX
        artifact_id += uuid.uuid4().hex
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

    def sweep(self, keep: set[str], namespaces: Iterable[str | None] | None = None) -> int:
        """Remove the checkpoints not in `keep` (the ids unfinished trials hold): every one
        (`namespaces` None: the storage's own folder, which no other storage shares), or
        those in one of `namespaces` (a folder given or a bucket: another storage's are
        never touched, nor ids without a namespace, whose owner nothing tells); how many.
        Only when no other process uses the storage, in this one's turn (presence.py): no
        other writes checkpoints of its studies then. A failing store stops the sweep with a
        warning, never the run."""
        if not isinstance(self.store, AtomicFileStore | BucketStore):
            return 0
        if namespaces is None:
            prefixes = [PREFIX]
        else:
            named = {n for n in namespaces if n is not None and NAMESPACE_FORM.fullmatch(n)}
            prefixes = [f"{PREFIX}{n}-" for n in sorted(named)]
        if not prefixes:
            return 0
        try:
            return self.store.sweep(prefixes, keep)
        except Exception as exc:  # OSError, a cloud client's errors: the study goes on
            warnings.warn(
                f"dltune: stray checkpoints in {self.location} could not be swept: "
                f"{type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
            return 0

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
        note = f"checkpoints: {folder}"
    elif given.startswith(("s3://", "gs://")):
        store, note = _bucket_store(given), f"checkpoints: {display_url(given)}"
    else:
        store, note = _folder_store(Path(given), given=True), f"checkpoints: {given}"
    store.scope = storage_scope(storage.url)
    return store, note


def storage_scope(url: str | None) -> str:
    """What tells a storage's checkpoints from a copy's: its file's real path (SQLite, journal
    file); "" for a database server (whose runs are never alone: presence.py, so nothing of
    theirs is swept)."""
    location = default_location(url)
    return os.path.realpath(location[: -len(SUFFIX)]) if location else ""


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
        names = _s3_names(store) if scheme == "s3" else _gcs_names(store)
    except ImportError as exc:
        package = "boto3" if scheme == "s3" else "google-cloud-storage"
        raise StudyError(
            f"{param('checkpoints', display_url(url))} needs {package}: pip install {package}"
        ) from exc
    # location: as messages name it
    return CheckpointStore(BucketStore(store, names), display_url(url))
