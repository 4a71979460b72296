"""The package's structure, checked from its source: no import cycles, Optuna's internals
touched only by dltune.storage.internals and its cache module, Optuna's attributes only by
dltune.storage, functions small enough to read, packages that say what they own."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "dltune"
# Lines a function may have, its docstring not counted: documentation (a public function's
# Args: section) is not code to read through. No exception, whatever a comment says.
LONGEST = 80


def _modules() -> dict[str, Path]:
    """dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The package's modules that `name` imports, anywhere in it (lazy imports inside
    functions included: each is a dependency; not the imports only type checkers run)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # drop `if TYPE_CHECKING:` blocks
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                # `from . import schema` imports a submodule; `from .x import f`, module x.
                child = f"{base}.{alias.name}"
                found.add(child if child in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_no_module_imports_a_module_that_imports_it_back():
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    # a package imports its own modules, and they take names from it: not a cycle to break
    for name in graph:
        graph[name] = {m for m in graph[name] if not (name.startswith(m + ".") and m != "dltune")}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def _optuna_private_names() -> set[str]:
    """Private attributes of the Optuna objects dltune handles: studies, trials, storages."""
    import optuna

    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    trial = study.ask()
    study.tell(trial, 1.0)
    objects = [study, trial, study.trials[0], optuna.storages.InMemoryStorage()]
    names = set()
    for obj in objects:
        names |= set(vars(obj)) | set(dir(type(obj)))
    names |= {"_backend", "_heartbeat", "_rdb", "_create_scoped_session"}
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


# The one corner of the package that may name Optuna's private internals.
OPTUNA_INTERNALS = {"dltune.storage.internals", "dltune.storage.own_trials_cache"}


def _own_private_names() -> set[str]:
    """Private names dltune defines itself (methods, functions, attributes set on self or
    cls; not an attribute set on another object, such as Optuna's Study._storage)."""
    names = set()
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("self", "cls")
            ):
                names.add(node.attr)
    return {n for n in names if n.startswith("_")}


def test_only_the_internals_modules_name_optuna_private_attributes():
    # Optuna's private names that dltune does not also use for its own things (_config, ...).
    private = _optuna_private_names() - _own_private_names()
    assert {"_storage", "_trial_id", "_study_id", "_backend"} <= private
    assert OPTUNA_INTERNALS.issubset(MODULES)  # not renamed away, leaving the rule out of date
    pattern = re.compile(r"\.(" + "|".join(sorted(map(re.escape, private))) + r")\b")
    offenders = []
    for name, path in MODULES.items():
        if name in OPTUNA_INTERNALS:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if pattern.search(code) or re.search(r"optuna(\.\w+)*\._(?!_)", code):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert offenders == []


def test_only_the_storage_package_reads_or_writes_optuna_attributes():
    words = re.compile(r"\b(user_attrs|system_attrs|set_user_attr|set_system_attr|enqueue_trial)\b")
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for name, path in MODULES.items()
        if not name.startswith("dltune.storage")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if words.search(line.split("#", 1)[0])
    ]
    assert offenders == []


def _lines_of_code(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """A function's lines, its signature included and its docstring not."""
    size = (node.end_lineno or node.lineno) - node.lineno + 1
    first = node.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        size -= (first.end_lineno or first.lineno) - first.lineno + 1
    return size


def test_no_function_is_long():
    long = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = _lines_of_code(node)
                if size > LONGEST:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({size})")
    assert long == []


def test_a_docstring_is_not_counted_as_code():
    documented = ast.parse('def f():\n    """One.\n\n    Two.\n    """\n    return 1\n')
    bare = ast.parse("def f():\n    return 1\n")
    assert _lines_of_code(documented.body[0]) == _lines_of_code(bare.body[0]) == 2  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "package",
    sorted(n for n, p in MODULES.items() if p.name == "__init__.py" and n != "dltune"),
)
def test_each_package_says_what_it_owns(package):
    docstring = ast.get_docstring(ast.parse(MODULES[package].read_text())) or ""
    assert docstring, f"{package} has no docstring"


# Who may import whom: a package (or top-level module) imports only ranks below its own (and
# itself). docs/layout.md and each package's docstring say the same in words.
RANKS = {
    "dltune.errors": 0,
    "dltune.vocabulary": 0,
    "dltune.config": 0,
    "dltune.version": 0,
    "dltune.lazy": 0,
    "dltune.atomic": 0,  # whole-or-absent writes: any layer may write a file through it
    "dltune.views": 0,  # a result's notebook views, provided from above (see its docstring)
    "dltune.data": 1,
    "dltune.space": 1,
    "dltune.schedule": 1,
    "dltune.nets": 1,
    "dltune.devices": 1,
    "dltune.storage": 1,
    "dltune.usermodel": 1,
    "dltune.engine": 2,
    "dltune.distributed": 3,
    "dltune.study": 4,
    "dltune.export": 5,
    "dltune.sweep": 6,
    "dltune.keras_tuner": 6,  # Keras Tuner's API on tune(), train-best's retraining
    "dltune.analysis": 7,
    "dltune.report": 8,
    "dltune.cli": 9,
    "dltune.notebook": 9,  # a face, like the command line: results shown in a notebook
    "dltune": 10,  # the front door: offers everything, lazily
}
# Third-party packages a layer must not import, even lazily.
KEPT_OUT = {
    "dltune.engine": ("optuna", "sqlalchemy", "click", "rich"),
    "dltune.schedule": ("optuna", "torch", "numpy"),
    "dltune.storage": ("torch", "click", "rich"),
    "dltune.data": ("optuna", "torch"),
    "dltune.analysis": ("torch", "click", "rich", "matplotlib"),
}


def _layer(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_every_module_has_a_layer():
    assert {_layer(m) for m in MODULES} <= set(RANKS)


def test_nothing_imports_a_layer_above_its_own():
    upward = sorted(
        f"{name} -> {target}"
        for name, path in MODULES.items()
        for target in _imports(name, path)
        if RANKS[_layer(target)] > RANKS[_layer(name)]
    )
    assert upward == []


def _third_party(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("layer", sorted(KEPT_OUT))
def test_a_layer_keeps_out_the_libraries_it_has_no_business_with(layer):
    used = {
        f"{name}: {package}"
        for name, path in MODULES.items()
        if _layer(name) == layer
        for package in _third_party(path) & set(KEPT_OUT[layer])
    }
    assert used == set()
