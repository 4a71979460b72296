"""Where a user's build function comes from, as plain JSON, and how to import it again.

A study stores this record (dltune.storage.schema), and a model folder keeps it, so that a
worker process, a resumed study, train-best and `dltune.load` import the same build: a file by
its path ("path/to/file.py:build"), or a module of an installed package
("package.module:build"), with the sha256 of the file so that an edited file is noticed before
its parameters or weights are trusted.

A file is imported under a private module name (``_dltune_model_<hash>_<stem>``), never its own
stem, so that a user's ``model.py`` does not shadow or replace a module of that name.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DLTuneError, did_you_mean

Build = Callable[..., Any]
KINDS = ("file", "module")


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
    def from_dict(cls, record: Mapping[str, Any], where: str = "the record") -> ModelSource:
        kind, attr = record.get("kind"), record.get("attr")
        if kind not in KINDS or not isinstance(attr, str):
            raise SourceError(
                f"{where}: the build's source record {dict(record)!r} is not one dltune wrote "
                f"(kind must be one of {', '.join(KINDS)}, attr a name)"
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

    def load(self, *, allow_changed: bool = False) -> Build:
        """Import the build again; a SourceError when it cannot be, or when its file changed
        since this record was made (unless `allow_changed`)."""
        if self.path is not None and self.sha256 is not None and not allow_changed:
            self.check_unchanged()
        if self.kind == "file":
            if self.path is None:
                raise SourceError(f"{self.describe()}: the record names no file")
            namespace = import_file(Path(self.path), self.sha256)
            where = self.path
        else:
            namespace = import_module(str(self.module))
            where = f"module {self.module!r}"
        return _attribute(namespace, self.attr, where)

    def check_unchanged(self) -> None:
        path = Path(str(self.path))
        if not path.is_file():
            raise SourceError(
                f"the build {self.describe()} cannot be imported: {path} does not exist any "
                "more; put the file back there (the study and its models need it)"
            )
        now = file_hash(path)
        if now != self.sha256:
            raise SourceError(
                f"{path} changed since it was recorded with the study (sha256 "
                f"{str(self.sha256)[:12]}... then, {now[:12]}... now): its hyperparameters and "
                "layers may no longer fit the stored trials and weights; restore the file as it "
                "was, or tune the changed build in a new study"
            )


def resolve_model(spec: str | Build | ModelSource | Mapping[str, Any]) -> ModelSource:
    """A ModelSource from what a user gives: "file.py:build", "package.module:build", the
    function itself, a ModelSource, or its record (a dict)."""
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
        digest = file_hash(path)
        build = _attribute(import_file(path, digest), attr, str(path))
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


def import_file(path: Path, digest: str | None = None) -> Any:
    """The module of a Python file, under a private name: imported once per file content."""
    digest = digest or file_hash(path)
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    name = f"_dltune_model_{digest[:16]}_{stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SourceError(f"{path}: not a Python file dltune can import (give a .py file)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look a module up here
    folder = str(path.parent)
    sys.path.insert(0, folder)  # so that the file may import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise SourceError(
            f"{path} cannot be imported: {type(exc).__name__}: {exc}; fix the file (run "
            f"`python {path}` to see the traceback)"
        ) from exc
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
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
