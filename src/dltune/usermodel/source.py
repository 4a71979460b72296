"""Where a user's build function comes from, as plain JSON, and how to import it again.

A study stores this record (dltune.storage.schema), and a model folder keeps it, so that a
worker process, a resumed study, train-best and `dltune.load` import the same build: a file by
its absolute path ("path/to/file.py:build"), or a module of an installed package
("package.module:build"), with the sha256 of the file.

A record read from a model folder or a stored study is someone else's say-so: importing it runs
their code. So it is imported only when the caller says so (`stored`: `trust_source=True`,
`--trust-source`), in the manner of Hugging Face's `trust_remote_code`; a build the caller gives
(the function, "file.py:build") is the caller's own. Allowed, the record is checked before
anything runs (`ModelSource.load`): its sha256 must be there and well formed, a file's path
absolute (never resolved against the current folder), and the bytes that run are the very bytes
hashed: a file's, or the file Python finds for a module (importlib.util.find_spec), read once,
hashed, and executed from that copy (no second read, no cached bytecode).

Before a build is imported, Keras is set to run on PyTorch where it is not imported yet
(keras_model.prefer_torch_backend): a build file's `import keras` then gives a Keras whose models
dltune trains.

A file is imported under a private module name (``_dltune_model_<hash>_<stem>``), never its own
stem, so that a user's ``model.py`` does not shadow or replace a module of that name.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DLTuneError, did_you_mean, switch
from .keras_model import prefer_torch_backend

Build = Callable[..., Any]
KINDS = ("file", "module")
SHA256 = re.compile(r"[0-9a-f]{64}")  # a file's hash as the record holds it
TRUST = "trust_source"  # the parameter (and flag) that allows a recorded build to run
_TEXTS = ("path", "module", "sha256")  # the record's keys that are text or null


class SourceError(DLTuneError):
    """A build function that cannot be found, imported, or whose file changed."""


@dataclass
class ModelSource:
    """A build function's origin (plain data) and, once imported, the function itself.

    Pickled as its record alone, so that a worker process imports the build itself.
    """

    kind: str  # "file" or "module"
    attr: str  # the function's (qualified) name in it
    path: str | None = None  # the file, absolute (kind "file"; also a module's file)
    module: str | None = None  # kind "module"
    sha256: str | None = None  # of the file, when there is one
    build_function: Build | None = field(default=None, repr=False, compare=False)

    # ---- plain data ----

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "module": self.module,
            "attr": self.attr,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, record: Any, where: str = "the record") -> ModelSource:
        if not isinstance(record, Mapping):
            raise SourceError(
                f"{where}: the build's source record {record!r} is not one dltune wrote (a "
                "JSON object with kind, attr, path, module and sha256)"
            )
        kind, attr = record.get("kind"), record.get("attr")
        texts = all(record.get(k) is None or isinstance(record.get(k), str) for k in _TEXTS)
        if kind not in KINDS or not isinstance(attr, str) or not texts:
            raise SourceError(
                f"{where}: the build's source record {dict(record)!r} is not one dltune wrote "
                f"(kind must be one of {', '.join(KINDS)}, attr a name, "
                f"{', '.join(_TEXTS)} text or null)"
            )
        return cls(
            kind=str(kind),
            attr=attr,
            path=record.get("path"),
            module=record.get("module"),
            sha256=record.get("sha256"),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (ModelSource.from_dict, (self.to_dict(),))

    def describe(self) -> str:
        """As the user would write it: 'path/to/file.py:build' or 'package.module:build'."""
        where = self.path if self.kind == "file" else self.module
        return f"{where}:{self.attr}"

    def same_build(self, other: ModelSource) -> bool:
        """The same function of the same file content."""
        return self.to_dict() == other.to_dict()

    # ---- the function ----

    @property
    def build(self) -> Build:
        """The build function, imported on first use (its file's hash checked)."""
        if self.build_function is None:
            self.build_function = self.load()
        return self.build_function

    def load(self) -> Build:
        """Import the build again from the bytes its record's sha256 names: a SourceError when
        the record has no well-formed hash, a file's path is not absolute, the file is gone or
        changed, or a module is found in a file other than the one recorded."""
        digest = self.recorded_hash()
        prefer_torch_backend()  # before the build's file imports keras
        if self.kind == "file":
            path = self.recorded_file()
            namespace = import_file(path, self._checked_bytes(path, digest))
            where = str(path)
        else:
            namespace = self._checked_module(digest)
            where = f"module {self.module!r}"
        return _attribute(namespace, self.attr, where)

    def recorded_hash(self) -> str:
        """The record's sha256, or a SourceError: without one, nothing can be checked, and an
        unchecked build is never imported."""
        if isinstance(self.sha256, str) and SHA256.fullmatch(self.sha256):
            return self.sha256
        what = "no sha256" if self.sha256 is None else f"a malformed sha256 {self.sha256!r}"
        raise SourceError(
            f"the build {self.describe()} has {what} in its record (64 hexadecimal digits), "
            f"so the file it would import ({self.would_import()}) cannot be checked, and dltune "
            "imports no unchecked build; tune the build again (a new study records it), or "
            "write the model folder again with train-best"
        )

    def recorded_file(self) -> Path:
        """A file build's path, as recorded: absolute, or a SourceError (never resolved against
        the current folder)."""
        if self.path is None:
            raise SourceError(f"the build {self.describe()}: its record names no file")
        path = Path(self.path)
        if not path.is_absolute():
            raise SourceError(
                f"the build's record names the file {self.path!r}, a relative path; dltune "
                f"does not resolve it against the current folder (that would be "
                f"{Path.cwd() / path}), and dltune itself records absolute paths: tune the "
                "build again, or write the model folder again with train-best"
            )
        return path

    def would_import(self) -> str:
        """What importing this record would run, in words, without importing anything."""
        if self.kind == "file":
            if self.path is not None and not Path(self.path).is_absolute():
                return (
                    f"the file {self.path!r}, a relative path that dltune refuses even when "
                    f"trusted (from the current folder it would be {Path.cwd() / self.path})"
                )
            return f"the file {self.path}"
        recorded = f"; recorded as {self.path}" if self.path else ""
        return f"the module {self.module!r} (the file Python finds for it on sys.path{recorded})"

    def _checked_bytes(self, path: Path, digest: str) -> bytes:
        if not path.is_file():
            raise SourceError(
                f"the build {self.describe()} cannot be imported: {path} does not exist any "
                "more; put the file back there (the study and its models need it)"
            )
        data = path.read_bytes()
        now = hashlib.sha256(data).hexdigest()
        if now != digest:
            raise SourceError(
                f"{path} changed since it was recorded with the study (sha256 "
                f"{digest[:12]}... then, {now[:12]}... now): its hyperparameters and "
                "layers may no longer fit the stored trials and weights; restore the file as it "
                "was, or tune the changed build in a new study"
            )
        return data

    def _checked_module(self, digest: str) -> Any:
        """The recorded module, from the file Python finds for it, hashed before it runs."""
        name = str(self.module)
        if not name or not all(part.isidentifier() for part in name.split(".")):
            raise SourceError(f"the build's record names the module {self.module!r}, not a name")
        try:  # a dotted name's parent packages are imported to find it
            spec = importlib.util.find_spec(name)
        except Exception as exc:
            raise SourceError(
                f"module {name!r} cannot be found ({type(exc).__name__}: {exc}); install its "
                "package or add its folder to PYTHONPATH"
            ) from exc
        origin = spec.origin if spec is not None and spec.has_location else None
        if spec is None or origin is None or not Path(origin).is_file():
            found = "is not found" if spec is None else "has no file of its own (built in, frozen)"
            raise SourceError(
                f"module {name!r} {found} (recorded: {self.path}), so the file it would import "
                "cannot be checked against its sha256; install its package or add its folder "
                "to PYTHONPATH"
            )
        path = Path(origin).resolve()
        data = path.read_bytes()
        now = hashlib.sha256(data).hexdigest()
        if now != digest:
            elsewhere = (
                f", not the recorded {self.path}"
                if self.path and Path(self.path).resolve() != path
                else ""
            )
            raise SourceError(
                f"module {name!r} would be imported from {path}{elsewhere}, whose sha256 "
                f"{now[:12]}... is not the recorded {digest[:12]}...: the file Python finds is "
                "not the one recorded with the study or the model; restore it, put the right "
                "one first on PYTHONPATH, or tune the changed build in a new study"
            )
        if path.suffix != ".py" or name in sys.modules:
            # imported already by this process, or compiled (its loader reads the file): it
            # must be the file checked
            module = sys.modules.get(name) or import_module(name)
            if _module_file(module) != path:
                raise SourceError(
                    f"module {name!r} is imported from {_module_file(module)}, not from "
                    f"{path}, the file whose sha256 was checked; start a fresh Python"
                )
            return module
        return _exec_module(name, spec, path, data)


def stored(record: Any, where: str, *, trust: bool, alternative: str = "") -> ModelSource:
    """The build a model folder or a stored study records (`where` says which), allowed to be
    imported only when the caller trusts it; nothing is imported here. Without `trust`, a
    SourceError naming what would run and how to allow it (`alternative`: another way, e.g.
    giving the build yourself)."""
    source = ModelSource.from_dict(record, where)
    if trust:
        return source
    raise SourceError(
        f"{where} would import and run Python code to rebuild its network: "
        f"{source.would_import()}, its function {source.attr!r}. dltune runs no code from a "
        "model folder or a stored study unless you say so: if you trust whoever wrote it, and "
        f"that file, allow it with {switch(TRUST)} (the file's sha256 is then checked against "
        f"the record before anything runs){alternative}"
    )


def resolve_model(spec: str | Build | ModelSource | Mapping[str, Any]) -> ModelSource:
    """A ModelSource from what a user gives: "file.py:build", "package.module:build", the
    function itself, a ModelSource, or its record (a dict)."""
    prefer_torch_backend()  # before the build's file imports keras
    if isinstance(spec, ModelSource):
        return spec
    if isinstance(spec, Mapping):
        return ModelSource.from_dict(spec)
    if isinstance(spec, str):
        return _from_text(spec)
    if callable(spec):
        return _from_callable(spec)
    raise SourceError(
        f"model={spec!r} is a {type(spec).__name__}; give a build function, "
        "'path/to/file.py:build' or 'package.module:build'"
    )


def _from_text(spec: str) -> ModelSource:
    where, colon, attr = spec.rpartition(":")
    if not colon or not where or not attr:
        raise SourceError(
            f"model {spec!r}: name the build function after a colon, e.g. "
            "'path/to/file.py:build' or 'package.module:build'"
        )
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise SourceError(
                f"model {spec!r}: the file {where} does not exist (looked at {path}); check "
                "the path, or write 'package.module:build' for an installed module"
            )
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        build = _attribute(import_file(path, data), attr, str(path))
        return ModelSource("file", attr, path=str(path), sha256=digest, build_function=build)
    module = import_module(where)
    build = _attribute(module, attr, f"module {where!r}")
    found = _module_file(module)
    return ModelSource(
        "module", attr, module=where, path=str(found) if found else None,
        sha256=file_hash(found) if found else None,
        build_function=build,
    )  # fmt: skip


def _from_callable(build: Build) -> ModelSource:
    """A function given directly: recorded by its module and qualified name (and file)."""
    module_name = getattr(build, "__module__", None) or "__main__"
    attr = str(getattr(build, "__qualname__", None) or getattr(build, "__name__", "build"))
    module = sys.modules.get(module_name)
    path = _module_file(module) if module is not None else None
    digest = file_hash(path) if path else None
    by_path = module_name == "__main__" or module_name.startswith("_dltune_model_")
    if by_path and path is not None:
        # A script's function (or one dltune imported by path): importable again by its file.
        return ModelSource("file", attr, path=str(path), sha256=digest, build_function=build)
    return ModelSource(
        "module", attr, module=module_name, path=str(path) if path else None, sha256=digest,
        build_function=build,
    )  # fmt: skip


def importable(source: ModelSource) -> str | None:
    """Why another process could not import this build again, or None if it can."""
    if "<locals>" in source.attr or "<lambda>" in source.attr:
        return (
            f"the build {source.describe()} is defined inside a function (or is a lambda), so "
            "another process cannot import it; define it at the top level of a module or file"
        )
    if source.kind == "module" and source.module == "__main__":
        return (
            f"the build {source.describe()} lives in an interactive session, which another "
            "process cannot import; put it in a file and give 'path/to/file.py:build'"
        )
    return None


# ---- importing ---------------------------------------------------------------------------------


def file_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def import_file(path: Path, data: bytes | None = None) -> Any:
    """The module of a Python file, under a private name: imported once per file content.
    `data`: the file's bytes as already read (and checked); those are what runs, not the file
    read again."""
    data = path.read_bytes() if data is None else data
    digest = hashlib.sha256(data).hexdigest()
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    name = f"_dltune_model_{digest[:16]}_{stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SourceError(f"{path}: not a Python file dltune can import (give a .py file)")
    folder = str(path.parent)
    sys.path.insert(0, folder)  # so that the file may import its neighbours
    try:
        return _exec_module(name, spec, path, data)
    finally:
        if folder in sys.path:
            sys.path.remove(folder)


def _exec_module(name: str, spec: Any, path: Path, data: bytes) -> Any:
    """Run `data` (the checked bytes of `path`) as module `name` of `spec`, registered in
    sys.modules (dataclasses and pickling look a module up there) and on its parent package."""
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        exec(compile(data, str(path), "exec"), module.__dict__)
    except Exception as exc:
        del sys.modules[name]
        raise SourceError(
            f"{path} cannot be imported: {type(exc).__name__}: {exc}; fix the file (run "
            f"`python {path}` to see the traceback)"
        ) from exc
    parent, _, child = name.rpartition(".")
    if parent and parent in sys.modules:
        setattr(sys.modules[parent], child, module)
    return module


def import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise SourceError(
            f"module {name!r} cannot be imported ({type(exc).__name__}: {exc}); install its "
            "package or add its folder to PYTHONPATH, or give the file: 'path/to/file.py:build'"
        ) from exc
    except Exception as exc:
        raise SourceError(
            f"module {name!r} failed while being imported: {type(exc).__name__}: {exc}"
        ) from exc


def _attribute(namespace: Any, qualname: str, where: str) -> Build:
    found: Any = namespace
    for part in qualname.split("."):
        if not hasattr(found, part):
            names = [n for n in dir(namespace) if not n.startswith("_")]
            raise SourceError(
                f"{where} has no {qualname!r} to build the model with;"
                f"{did_you_mean(qualname, names) or ' define it there, or name another'} "
                f"(functions there: {', '.join(n for n in names if _is_function(namespace, n))})"
            )
        found = getattr(found, part)
    if not callable(found):
        raise SourceError(
            f"{where}: {qualname!r} is a {type(found).__name__}, not a function; name the "
            "function build(hp) that returns a torch.nn.Module"
        )
    return found


def _is_function(namespace: Any, name: str) -> bool:
    return inspect.isfunction(getattr(namespace, name, None))


def _module_file(module: Any) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file and Path(file).is_file() else None
