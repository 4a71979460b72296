"""Reading a space file: YAML that refuses a key given twice; errors name the file and line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from dltune.errors import SpaceError


class _Loader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice (PyYAML would quietly keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):  # `!!set .`: the base class says what it is
            return super().construct_mapping(node, deep)
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


_Construct = Callable[[yaml.SafeLoader, yaml.Node], Any]


def _checked(construct: _Construct) -> _Construct:
    """PyYAML's constructor of a scalar type, whose mistakes become YAML errors with their line.

    PyYAML lets these escape as plain Python errors: ValueError for `0x_`, `!!int abc`,
    `2020-13-45` or an integer of more than 4300 digits; IndexError for `!!int ""`; KeyError for
    `!!bool maybe`; AttributeError for `!!timestamp soon` (its pattern does not match).
    """

    def checked(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, LookupError, AttributeError) as exc:
            kind = str(node.tag).rsplit(":", 1)[-1]
            text = str(node.value)
            shown = repr(text if len(text) <= 40 else f"{text[:20]}...{text[-10:]}")
            why = f" ({exc})" if isinstance(exc, ValueError) else ""
            raise yaml.constructor.ConstructorError(
                None, None, f"{shown} is not a valid {kind}{why}", node.start_mark
            ) from None

    return checked


for _kind in ("int", "float", "bool", "timestamp"):
    _tag = f"tag:yaml.org,2002:{_kind}"
    _Loader.add_constructor(_tag, _checked(yaml.SafeLoader.yaml_constructors[_tag]))


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
    except RecursionError:  # PyYAML composes nested brackets and blocks recursively
        raise SpaceError(
            f"{source}: nested too deeply for a space file (brackets or indentation hundreds of "
            "levels deep); a space needs a few levels at most."
        ) from None
