"""Reading a space file: YAML that refuses a key given twice; errors name the file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dltune.errors import SpaceError


class _Loader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice (PyYAML would quietly keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` merges may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                continue  # an unhashable key: the base class says so, with its line
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _read_yaml(path: Path, source: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpaceError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise SpaceError(f"{source}: is a directory, not a space file") from None
    except UnicodeDecodeError:
        raise SpaceError(f"{source}: not UTF-8 text; save the space file as UTF-8") from None
    except OSError as exc:
        raise SpaceError(f"{source}: cannot be read ({exc.strerror})") from None
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or ""
        if exc.context:  # "while parsing a flow sequence": says which bracket is unclosed
            problem = f"{problem} ({exc.context})" if problem else exc.context
        raise SpaceError(f"{source}: not valid YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise SpaceError(f"{source}: not valid YAML: {exc}") from None
