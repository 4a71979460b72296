"""The documentation says what the code does: every command's every option is on the command
line's page and nothing else is, every public name has its entry on the API page, and the
README's commands exist. (Links, anchors, snippets and the API names' targets are checked by
`mkdocs build --strict`, which `make test` runs.)"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

import dltune
from dltune.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FLAG = re.compile(r"(?<![\w-])(--?[a-z][a-z0-9-]*)")


def _sections(page: Path) -> dict[str, str]:
    """The page's `## \\`dltune COMMAND\\`` sections, by command."""
    parts = re.split(r"^## `dltune ([a-z-]+)`\s*$", page.read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _table_flags(section: str) -> set[str]:
    """The flags named in the first column of the section's tables."""
    flags: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `-"):
            flags |= set(FLAG.findall(line.split(" | ")[0]))
    return flags


def _command_flags(command: click.Command) -> set[str]:
    return {
        flag
        for param in command.params
        if isinstance(param, click.Option)
        for flag in (*param.opts, *param.secondary_opts)
        if flag not in ("--help", "-h")
    }


def test_the_command_line_page_has_every_command_and_every_option_and_no_other():
    sections = _sections(DOCS / "cli.md")
    assert set(sections) == set(main.commands), "docs/cli.md: one section per command"
    for name, command in main.commands.items():
        documented, real = _table_flags(sections[name]), _command_flags(command)
        assert real - documented == set(), f"dltune {name}: options missing from docs/cli.md"
        assert documented - real == set(), f"dltune {name}: docs/cli.md names unknown options"


def test_the_api_page_has_every_public_name():
    entries = set(re.findall(r"^::: dltune\.(\w+)\s*$", (DOCS / "api.md").read_text(), re.M))
    public = set(dltune.__all__) - {"__version__"}
    assert public - entries == set(), "public names missing from docs/api.md"
    assert entries - public == set(), "docs/api.md documents names dltune does not export"


def _commands_shown(text: str) -> set[str]:
    """The `dltune COMMAND` of every command line shown: in code blocks and inline code."""
    blocks = "\n".join(re.findall(r"^```.*?\n(.*?)^```", text, re.M | re.S))
    shown = set(re.findall(r"^\s*dltune ([a-z][a-z-]*)", blocks, re.M))
    return shown | set(re.findall(r"`dltune ([a-z][a-z-]*)", text))


@pytest.mark.parametrize(
    "page", ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in DOCS.glob("*.md"))]
)
def test_every_command_a_page_shows_exists(page):
    shown = _commands_shown((ROOT / page).read_text())
    assert shown - set(main.commands) == set(), f"{page} shows commands dltune does not have"


def test_the_readme_keeps_its_two_commands_for_a_fresh_machine():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert f"make {target}" in readme
        assert re.search(rf"^{target}:", makefile, re.M), f"the Makefile has no {target} target"
    assert re.search(r"^test:.*\bdocs\b", makefile, re.M), "make test builds the docs"


def test_the_readmes_links_reach_files_of_the_checkout():
    # (mkdocs checks the links inside docs/; the README lies outside it)
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text())
    local = [t for t in targets if "://" not in t]
    assert local, "the README links to its documentation"
    assert [t for t in local if not (ROOT / t).exists()] == []
