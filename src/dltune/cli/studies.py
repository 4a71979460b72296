"""`dltune best`, `trials` and `studies`: what a storage holds, as tables or JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from .common import console, open_storage, quiet_optuna, storage_option, study_option, user_errors

if TYPE_CHECKING:
    import optuna


@click.command()
@storage_option
@study_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def best(storage: str, study_name: str | None, as_json: bool) -> None:
    """The best trial of a study; of several objectives, its Pareto front too."""
    from ..errors import StudyError
    from ..storage import best_record
    from ..study.front import pareto_front
    from .tables import best_table, front_table

    quiet_optuna()
    study = open_storage(storage).load_study(study_name)
    record = best_record(study)
    if record is None:
        raise StudyError(f"study {study.study_name!r} has no complete trial yet")
    front = pareto_front(study) if len(study.directions) > 1 else None
    if front is not None:  # the most accurate stays "best"; the front lists the trade-offs
        record["objectives"] = front.names
        record["front"] = front.to_json()
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    title = f"Best of study {study.study_name!r}"
    console().print(best_table(record, title, _validation_rows(study)))
    if front is not None:
        console().print(front_table(front, study.study_name))
        click.echo(
            'Choose a point: dltune train-best --pick TRIAL (or --pick "smallest within '
            f'0.005 of the best {front.metric}") -o model/'
        )


def _validation_rows(study: optuna.Study) -> int | None:
    """The size of the study's validation split, read from its data's description
    ('1257/270/270 train/val/test'); None where it does not say."""
    import re

    from ..storage import study_meta

    description = str((study_meta(study).get("data") or {}).get("description", ""))
    found = re.search(r"(\d+)/(\d+)/(\d+) train/val/test", description)
    return int(found.group(2)) if found else None


@click.command()
@storage_option
@study_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@user_errors
def trials(storage: str, study_name: str | None, as_json: bool) -> None:
    """One row per trial of a study."""
    from ..storage import read_trials
    from .tables import trials_table

    quiet_optuna()
    study = open_storage(storage).load_study(study_name)
    records = read_trials(study)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in records], indent=2))
    else:
        console().print(trials_table(study.study_name, records))


@click.command()
@storage_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@user_errors
def studies(storage: str, as_json: bool) -> None:
    """The studies in a storage."""
    from .tables import studies_table, study_rows

    quiet_optuna()
    opened = open_storage(storage)
    rows = study_rows(opened.summaries(include_best_trial=True))
    for row in rows:
        row["checkpoints"] = _checkpoints_held(opened.load_study(row["study"]))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo(f"{opened.shown} holds no study yet.")
    else:
        console().print(studies_table(opened.shown, rows))


def _checkpoints_held(study: optuna.Study) -> dict[str, int]:
    """How many checkpoints the study's unfinished trials hold, and their bytes: all the disk
    its checkpoints use (a trial keeps only its latest; an ended trial none)."""
    from ..study.checkpointing import held_checkpoints

    held = held_checkpoints(study)
    return {"count": len(held), "bytes": sum(int(r.get("bytes", 0)) for r in held)}
