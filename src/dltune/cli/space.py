"""`dltune space`: a search space as dltune reads it."""

from __future__ import annotations

import click

from .common import console, user_errors


@click.command()
@click.option(
    "--show",
    "show",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Print the parsed space of FILE.",
)
@click.option("--yaml", "as_yaml", is_flag=True, help="Print the canonical YAML.")
@click.option(
    "--shape",
    metavar="C,L|C,H,W",
    help="The space fitted to examples of this shape (signals, images): with the "
    "convolutional keys. Without it, flat rows: the dense network alone.",
)
@user_errors
def space(show: str | None, as_yaml: bool, shape: str | None) -> None:
    """Show a search space as dltune reads it [default: the built-in space]."""
    from rich.table import Table

    from ..data.shapes import parse_shape
    from ..space import SearchSpace

    parsed = SearchSpace.from_file(show) if show else SearchSpace.default()
    if shape is not None:
        parsed, notes = parsed.for_input(parse_shape(shape) or ())
        for note in notes:
            console().print(f"note: {note}")
    if as_yaml:
        click.echo(parsed.to_yaml(), nl=False)
        return
    table = Table(title=f"Search space {parsed.name!r} ({parsed.source})", title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("values")
    for key, description in parsed.describe():
        table.add_row(key, description)
    console().print(table)
