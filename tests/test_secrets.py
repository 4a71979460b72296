"""No secret in any output (issue 28): a password in a storage URL, in whatever form it is
written, never reaches a repr, an error, a printed line, a model card or a stored failure.

The masking itself (display_url, every form of URL and connection string) is tested in
tests/test_fuzz.py; here, every place that shows a URL. A PostgreSQL server is never needed:
errors come from a port on 127.0.0.1 where nothing listens, and the places that show a working
storage's URL are given a password URL in place of the real (in-memory or SQLite) one.
"""

from __future__ import annotations

import dataclasses
import io
import socket
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from dltune.errors import StudyError
from dltune.storage import Storage, open_storage, storage_lost

from .helpers import dltune, require_or_skip

SECRET = "Sup3rSecret"
URL = f"postgresql://me:{SECRET}@db.example:5432/studies"
SHOWN = "postgresql://me:***@db.example:5432/studies"
PIECES = ("Sup3r", "Secret")  # no part of the password either


def assert_no_secret(text: str) -> None:
    for piece in PIECES:
        assert piece not in text, text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need_driver() -> None:
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        require_or_skip(
            "psycopg2 is not installed (pip install 'dltune[postgres]')",
            "DLTUNE_REQUIRE_POSTGRES",
        )


# ---- what a notebook shows: the repr of every object that holds a URL ----


def test_a_storage_repr_hides_its_password():
    storage = Storage(optuna.storages.InMemoryStorage(), URL)
    assert SHOWN in repr(storage) and storage.shown == SHOWN
    assert_no_secret(repr(storage))
    assert storage.url == URL  # what opens it is kept whole


def test_settings_repr_hides_every_password():
    from dltune.study.settings import TuneSettings

    settings = TuneSettings(
        storage=URL, ray=f"ray://me:{SECRET}@head:10001", checkpoints=f"s3://key:{SECRET}@bucket"
    )
    assert SHOWN in repr(settings)
    assert_no_secret(repr(settings))
    assert settings.storage == URL
    opened = settings.replace(storage=Storage(optuna.storages.InMemoryStorage(), URL))
    assert_no_secret(repr(opened))


def test_result_reprs_hide_the_password():
    from dltune.study.start import StudyStart
    from dltune.study.tuning import TuneResult
    from dltune.sweep.runner import SweepResult

    storage = Storage(optuna.storages.InMemoryStorage(), URL)
    notes = [f"continued the study in {URL}"]
    tuned = TuneResult(None, storage, None, None, None, 0, 0.0, notes=notes)  # type: ignore[arg-type]
    swept = SweepResult(None, storage, None, None, 0.0, 0, notes=notes)  # type: ignore[arg-type]
    start = StudyStart("s", URL, "digits", "accuracy", 1, None, 0, "sequential", "none")
    for shown in (repr(tuned), repr(swept), repr(start), str(dataclasses.asdict(start))):
        assert SHOWN in shown
        assert_no_secret(shown)


def test_an_estimator_shows_no_password_but_keeps_it_for_clone():
    import sklearn
    from sklearn.base import clone

    from dltune import DLTuneClassifier

    estimator = DLTuneClassifier(storage=URL, trials=3)
    assert SHOWN in repr(estimator)
    assert_no_secret(repr(estimator))
    with sklearn.config_context(display="diagram"):
        bundle = estimator._repr_mimebundle_()
        html = estimator._repr_html_()
    assert set(bundle) == {"text/plain", "text/html"}
    for shown in (*bundle.values(), html):
        assert_no_secret(shown)
    # get_params keeps the parameter as given (scikit-learn's contract): clone still works
    assert estimator.get_params()["storage"] == URL
    copy = clone(estimator)
    assert copy.storage == URL
    assert_no_secret(repr(copy))
    assert repr(DLTuneClassifier(trials=3)) == "DLTuneClassifier(trials=3)"


# ---- errors: a server that cannot be reached, a URL that cannot be read ----

UNREACHABLE_FORMS = [
    "postgresql://me:{s}@127.0.0.1:{port}/x",
    "postgresql://me:Sup%403r:{s}@127.0.0.1:{port}/x",  # @ escaped, a colon
    "postgresql://me@127.0.0.1:{port}/x?password={s}",
    "postgresql+psycopg2://:{s}@127.0.0.1:{port}/x?sslmode=disable",
]


@pytest.mark.parametrize("form", UNREACHABLE_FORMS)
def test_an_unreachable_server_errors_without_the_password(form, monkeypatch):
    need_driver()
    monkeypatch.setenv("DLTUNE_CONNECT_TIMEOUT", "2")
    with pytest.raises(StudyError) as error:
        open_storage(form.format(s=SECRET, port=free_port()))
    message = str(error.value)
    assert "cannot be opened" in message and "127.0.0.1" in message
    assert_no_secret(message)


def test_a_raw_at_sign_in_a_password_is_refused_before_any_connection():
    """SQLAlchemy ends a password at its first @: the rest would become the host, and the
    driver's "could not translate host name" would print it."""
    with pytest.raises(StudyError) as error:
        open_storage(f"postgresql://me:Sup3r@Secret@127.0.0.1:{free_port()}/x")
    message = str(error.value)
    assert "%40" in message and "postgresql://me:***@127.0.0.1" in message
    assert_no_secret(message)
    # Azure's user@server is a user, not a password: not refused for that
    with pytest.raises(StudyError) as other:
        open_storage(f"mysql+nosuchdriver://me@srv:{SECRET}@127.0.0.1:{free_port()}/x")
    assert "%40" not in str(other.value)
    assert_no_secret(str(other.value))


@pytest.mark.parametrize(
    "given",
    [
        f"host=127.0.0.1 user=me password={SECRET} dbname=x",  # a libpq string, not a URL
        f"host=127.0.0.1 password='{SECRET} x' dbname=x",
        f"redis://me:{SECRET}@127.0.0.1/0",
    ],
)
def test_a_storage_dltune_cannot_open_is_named_without_its_password(given):
    with pytest.raises(StudyError, match="not a storage URL") as error:
        open_storage(given)
    assert_no_secret(str(error.value))


def test_a_lost_storage_masks_the_url_the_driver_quotes():
    import sqlalchemy.exc

    said = Exception(
        f"connection to postgresql+psycopg2://me:{SECRET}@db.example:5432/studies lost "
        f"(dsn: host=db.example password={SECRET})"
    )
    error = storage_lost(URL, sqlalchemy.exc.OperationalError("SELECT 1", {}, said))
    assert error is not None
    assert SHOWN in str(error) and "lost" in str(error)
    assert_no_secret(str(error))


def test_a_bucket_for_checkpoints_is_named_without_its_password():
    from dltune.storage.checkpoints import open_checkpoints

    storage = Storage(optuna.storages.InMemoryStorage(), URL)
    with pytest.raises(StudyError) as error:
        open_checkpoints(f"s3://key:{SECRET}@bucket/folder", storage)
    assert "give a bucket alone" in str(error.value)
    assert_no_secret(str(error.value))


# ---- the command line ----


@pytest.mark.parametrize(
    "command",
    [
        ("studies",),
        ("studies", "--json"),
        ("best",),
        ("trials", "--json"),
        ("report", "-o", "report.html"),
        ("train-best", "-o", "model"),
        ("dashboard",),
    ],
)
def test_commands_on_an_unreachable_server_print_no_password(command, tmp_path, monkeypatch):
    need_driver()
    if command[0] == "dashboard":
        pytest.importorskip("optuna_dashboard")
    monkeypatch.setenv("DLTUNE_CONNECT_TIMEOUT", "2")
    url = f"postgresql://me:{SECRET}@127.0.0.1:{free_port()}/x?sslpassword={SECRET}"
    ran = dltune(*command, "--storage", url, cwd=tmp_path)
    assert ran.returncode == 2, ran.stderr
    assert "postgresql://me:***@127.0.0.1" in ran.stderr and "Traceback" not in ran.stderr
    assert_no_secret(ran.stdout + ran.stderr)


def test_the_command_line_masks_a_password_any_error_quotes():
    """The last line of defence: whatever dltune error reaches the command line (a Ray address,
    a driver's words) is printed masked."""
    import click
    from click.testing import CliRunner

    from dltune.cli.common import user_errors

    @click.command()
    @user_errors
    def failing() -> None:
        raise StudyError(f"cannot join {URL}: the server said password={SECRET}")

    ran = CliRunner().invoke(failing, [])
    assert ran.exit_code == 2
    assert SHOWN in ran.stderr and "password=***" in ran.stderr
    assert_no_secret(ran.stdout + ran.stderr)


def test_the_progress_lines_mask_the_storage_a_listener_is_given():
    from rich.console import Console

    from dltune.cli.display import LiveProgress, PlainProgress
    from dltune.study.start import StudyStart

    start = StudyStart("s", URL, "digits", "accuracy", 2, None, 0, "sequential", "none")
    object.__setattr__(start, "storage", URL)  # as a listener might be handed it by another caller
    out = io.StringIO()
    PlainProgress(Console(file=out, width=200)).study_started(start)
    live = LiveProgress(Console(file=out, width=200))
    live.start = start
    Console(file=out, width=200).print(live._render())
    assert SHOWN in out.getvalue()
    assert_no_secret(out.getvalue())


# ---- a real study shown with a password URL: the summary, the result, the model card ----


@pytest.fixture(scope="module")
def tuned():
    from dltune import tune

    space = {
        "layers": [1],
        "units": [16],
        "activation": ["relu"],
        "optimizer": ["adam"],
        "learning_rate": 0.01,
        "batch_size": [64],
        "epochs": 1,
    }
    result = tune(
        space,
        "digits",
        storage=optuna.storages.InMemoryStorage(),
        trials=1,
        seed=0,
        schedule="none",
        cv="holdout",
        ensemble=False,
        engine="sequential",
        baseline=False,
    )
    # The storage as if opened from a server's URL with a password
    return dataclasses.replace(result, storage=Storage(result.storage.backend, URL))


def test_a_tuned_result_and_its_summary_show_no_password(tuned):
    from rich.console import Console

    from dltune.cli.run import _summary

    assert_no_secret(repr(tuned))
    out = io.StringIO()
    _summary(Console(file=out, width=200), tuned)
    assert f"Stored in {SHOWN}" in out.getvalue()
    assert_no_secret(out.getvalue())


def test_the_model_card_shows_no_password(tuned, tmp_path, monkeypatch):
    from dltune.export import train_best
    from dltune.export.card import card_markdown
    from dltune.storage import internals

    # The study's database URL, as Optuna's RDBStorage would give it
    monkeypatch.setattr(internals, "database_url", lambda study: URL)
    result = train_best(study=tuned.study)
    assert result.card["study"]["storage"] == SHOWN
    folder = result.save(tmp_path / "model")
    for name in ("model_card.json", "model_card.md"):
        assert_no_secret((Path(folder) / name).read_text())
    # A card read back from a folder may say anything: its Markdown is masked again
    markdown = card_markdown({**result.card, "study": {**result.card["study"], "storage": URL}})
    assert SHOWN in markdown
    assert_no_secret(markdown)


def test_a_failed_run_stores_its_error_masked():
    """A run's error is kept as its trials' failure reason (shown by `dltune trials`)."""
    from dltune.study.run import run_study
    from dltune.study.start import StudyStart

    reasons: list[str] = []
    seen: list[dict] = []

    def fail() -> None:
        raise RuntimeError(f"driver said: cannot use {URL}")

    lifecycle = SimpleNamespace(
        fail_running=lambda state, error: reasons.append(error), close=lambda: None
    )
    loop = SimpleNamespace(stop=None, lifecycle=lifecycle, run=fail)
    listener = SimpleNamespace(study_started=seen.append, study_finished=lambda: None)
    start = StudyStart("s", URL, "digits", "accuracy", 1, None, 0, "sequential", "none")
    storage = Storage(optuna.storages.InMemoryStorage(), URL)
    with pytest.raises(RuntimeError):
        run_study(loop, start, storage, listener)  # type: ignore[arg-type]
    assert reasons and SHOWN in reasons[0] and seen[0].storage == SHOWN
    assert_no_secret(reasons[0] + str(seen))
