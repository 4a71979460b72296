"""`dltune report` and `dltune dashboard`: a study's report, and optuna-dashboard on a storage."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import open_storage, quiet_optuna, storage_option, study_option, user_errors


@click.command()
@storage_option
@study_option
@click.option(
    "-o",
    "--output",
    default="report.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The HTML file to write (or .json: the analysis as data; .png: a sweep's figures).",
)
@user_errors
def report(storage: str, study_name: str | None, output: str) -> None:
    """Write a study's report: best configuration, diagnostics, importance, effects, curves
    (for a sweep's study: the sweep's page)."""
    from ..errors import StudyError

    quiet_optuna()
    study = open_storage(storage).load_study(study_name)
    target = Path(output)
    if not target.parent.is_dir():
        raise StudyError(
            f"-o {output!r}: the folder {str(target.parent)!r} does not exist; create it first"
        )
    if target.suffix == ".json":
        from ..analysis import analyze
        from ..analysis.sweeps import analyze_sweep, is_sweep
        from ..atomic import write_text

        analysis = analyze_sweep(study) if is_sweep(study) else analyze(study)
        # whole or absent: a previous report stays until the new one is complete
        write_text(target, json.dumps(analysis.to_dict(), indent=1, allow_nan=False))
    else:
        from ..report import write_report

        write_report(study, target)
    click.echo(f"Wrote the report of study {study.study_name!r} to {target}")


@click.command()
@storage_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@user_errors
def dashboard(storage: str, host: str, port: int) -> None:
    """Open optuna-dashboard on the storage (extra: pip install 'dltune[dashboard]')."""
    from ..errors import StudyError

    try:
        import optuna_dashboard
    except ImportError:
        raise StudyError(
            "`dltune dashboard` needs optuna-dashboard, which is not installed; "
            "install the extra: pip install 'dltune[dashboard]'"
        ) from None
    backend = open_storage(storage).backend
    click.echo(f"optuna-dashboard on http://{host}:{port}/ (Ctrl-C to stop)")
    optuna_dashboard.run_server(backend, host=host, port=port)
