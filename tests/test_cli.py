"""The command line as a user runs it: in this process (click's runner), but for one start-up
smoke test in a real process. Killed processes are tests/test_faults.py's."""

from __future__ import annotations

import json

import pytest

from .helpers import dltune, dltune_process

# Under pytest-xdist, on one worker: the session's trained study is then trained once.
pytestmark = pytest.mark.xdist_group("trained")


def test_run_prints_one_line_per_trial_the_best_and_what_the_study_shows(trained):
    _, run = trained
    assert "Best configuration" in run.stdout
    assert "test accuracy" in run.stdout
    assert "sqlite:///dltune.db" in run.stdout  # the default storage, in the working folder
    assert "'small-digits'" in run.stdout  # the study's name: the space's and the data's
    # output that is not a terminal gets one plain line per trial
    lines = [line for line in run.stdout.splitlines() if line.startswith("trial ")]
    assert len(lines) == 4 and "best" in lines[-1]
    # the summary ends with the most important diagnostics: 4 trials are too few to conclude
    assert "What the study shows" in run.stdout
    assert "Only 4 finished trials" in run.stdout.split("What the study shows")[1]
    # how the study validated (--cv holdout: the validation split) and what it delivers
    text = " ".join(run.stdout.replace("│", " ").split())
    assert "validation holdout: 270 validation examples" in text
    assert "delivers its ensemble" in text or "delivers trial #" in text
    assert "optimism" in text


def test_best_trials_studies_and_report_read_the_stored_study(trained_copy):
    folder = trained_copy
    best = dltune("best", "--json", cwd=folder)
    assert best.returncode == 0, best.stderr
    record = json.loads(best.stdout)
    assert {"study", "trial", "value", "metric", "params", "best_epoch", "test"} <= set(record)
    assert record["study"] == "small-digits"
    assert record["metric"] == "accuracy"
    assert 0.5 < record["value"] <= 1 and 0.5 < record["test"] <= 1
    assert record["validation"] == {"kind": "holdout"}
    delivered = record["ensemble"] or {"score": record["value"], "test": record["test"]}
    assert record["optimism"] == pytest.approx(delivered["score"] - delivered["test"])

    rows = json.loads(dltune("trials", "--json", cwd=folder).stdout)
    assert len(rows) == 4
    for row in rows:
        assert {"trial", "state", "value", "epochs", "params", "seconds"} <= set(row)
        assert row["state"] in {"complete", "pruned"}
    best_value = max(r["value"] for r in rows if r["state"] == "complete")
    if record["choice"] is None:  # the best single run
        assert record["value"] == best_value
    else:  # chosen among the top candidates re-evaluated with other seeds (study/choice.py)
        assert record["trial"] in record["choice"]["candidates"]
        assert record["chosen_by"].startswith("chosen among the top")

    studies = dltune("studies", "--json", cwd=folder)
    assert [s["study"] for s in json.loads(studies.stdout)] == ["small-digits"]

    table = dltune("trials", cwd=folder)
    assert table.returncode == 0 and "small-digits" in table.stdout
    assert "Best of study 'small-digits'" in dltune("best", cwd=folder).stdout
    assert "Studies in sqlite:///dltune.db" in dltune("studies", cwd=folder).stdout

    report = dltune("report", "-o", "report.html", cwd=folder)
    assert report.returncode == 0, report.stderr
    page = (folder / "report.html").read_text()
    assert "small-digits" in page and "Diagnostics" in page
    as_json = dltune("report", "-o", "analysis.json", cwd=folder)
    assert as_json.returncode == 0, as_json.stderr
    analysis = json.loads((folder / "analysis.json").read_text())
    assert analysis["best"]["trial"] == record["trial"]
    assert analysis["best"]["test"] == record["test"]


def test_running_again_continues_the_study_and_says_how_many_it_holds(trained_copy):
    again = dltune("run", "small.yaml", "--trials", "1", "--seed", "0", cwd=trained_copy)
    assert again.returncode == 0, again.stderr
    assert "4 trials so far" in again.stdout and "now holds 5" in again.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["space", "--show", "bad.yaml"], ["bad.yaml", "rleu", "did you mean 'relu'"]),
        (["run", "bad.yaml", "--trials", "1"], ["bad.yaml", "rleu"]),
        (["run", "--data", "missing.csv", "--trials", "1"], ["missing.csv"]),
        (["best", "--storage", "nosuch://x"], ["nosuch://x", "sqlite:///"]),
        (["best"], ["holds no study", "dltune run"]),
        # the library's errors name its parameters; the command line shows its own flags
        (["run", "--memory", "lots"], ["--memory 'lots' is not a size"]),
        (["run", "--device", "tpu"], ["--device 'tpu' is not known"]),
        (["best", "--storage", "nosuch://x"], ["--workers on one machine"]),
        (["train-best", "-o", "m", "--on", "train", "--epochs", "1"], ["holds no study"]),
        (["run", "--cv", "0"], ["--cv '0' is not a validation", "number of folds from 2"]),
        (["run", "--ensemble", "yes"], ["'yes' is neither on nor off"]),
    ],
)
def test_user_errors_exit_2_with_a_message_and_no_traceback(tmp_path, args, words):
    (tmp_path / "bad.yaml").write_text("activation: rleu\n")
    result = dltune(*args, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr


def test_an_error_about_the_study_names_its_flag(trained_copy):
    """Another space on a stored study is refused; the fix names --study, not study_name=."""
    (trained_copy / "other.yaml").write_text("layers: [1]\nunits: [8]\nepochs: 1\n")
    args = ["run", "other.yaml", "--study", "small-digits", "--trials", "1"]
    refused = dltune(*args, cwd=trained_copy)
    assert refused.returncode == 2, refused.stdout
    assert "another search space" in refused.stderr and "--study NEW_NAME" in refused.stderr
    assert "study_name" not in refused.stderr


def test_space_show_prints_the_parsed_space(tmp_path, space_file):
    result = dltune("space", "--show", str(space_file), cwd=tmp_path)
    assert result.returncode == 0
    for key in ("layers", "units", "learning_rate", "batch_size", "epochs"):
        assert key in result.stdout


def test_space_shows_the_convolutional_keys_only_for_a_shape(tmp_path):
    flat = dltune("space", cwd=tmp_path)
    assert flat.returncode == 0 and "conv_layers" not in flat.stdout
    images = dltune("space", "--shape", "1,28,28", cwd=tmp_path)
    assert images.returncode == 0
    for key in ("conv_layers", "filters", "kernel_size", "pool", "batch_norm", "global_pool"):
        assert key in images.stdout
    refused = dltune("space", "--shape", "0,3", cwd=tmp_path)
    assert refused.returncode == 2 and "--shape" in refused.stderr


def test_the_installed_command_starts_answers_and_fails_cleanly(tmp_path):
    """The one start-up smoke test: a real interpreter runs `python -m dltune.cli`."""
    shown = dltune_process("space", "--show", "bad.yaml", cwd=tmp_path)
    assert shown.returncode == 2 and "bad.yaml" in shown.stderr and "Traceback" not in shown.stderr
    helped = dltune_process("--help", cwd=tmp_path)
    assert helped.returncode == 0
    for command in ("run", "best", "trials", "studies", "report", "sweep", "train-best"):
        assert command in helped.stdout
