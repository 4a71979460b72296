"""Errors name the library's parameters to a Python caller and the flags to a CLI user."""

from __future__ import annotations

import pickle

import pytest

from dltune.errors import DLTuneError, StudyError, param, render


def flags(name: str) -> str:
    return {"study_name": "--study", "output": "-o"}.get(name, "--" + name.replace("_", "-"))


def test_a_parameter_is_named_as_a_keyword_in_python_and_as_a_flag_on_the_command_line():
    error = DLTuneError(
        f"{param('engine', 'x')} is not known; {param('workers')} must be at least 1; "
        f"use {param('study_name', shown='NEW_NAME')} or {param('output', 'a.csv')}"
    )
    assert str(error) == (
        "engine='x' is not known; workers must be at least 1; use study_name=NEW_NAME or "
        "output='a.csv'"
    )
    assert error.render(flags) == (
        "--engine 'x' is not known; --workers must be at least 1; use --study NEW_NAME or "
        "-o 'a.csv'"
    )


def test_a_marked_message_embedded_in_another_keeps_its_marks():
    inner = StudyError(f"{param('data_dir')} is empty")
    outer = StudyError(f"cannot load: {inner.template}")
    assert str(outer) == "cannot load: data_dir is empty"
    assert outer.render(flags) == "cannot load: --data-dir is empty"


def test_an_error_crosses_a_process_boundary_with_its_marks():
    error = pickle.loads(pickle.dumps(StudyError(f"{param('ray', 'x:1')} is not an address")))
    assert type(error) is StudyError and error.render(flags) == "--ray 'x:1' is not an address"


def test_text_without_marks_is_left_alone():
    assert render("plain: --not-a-mark 'x'", flags) == "plain: --not-a-mark 'x'"


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"engine": "x"}, "engine='x' is not known; choose from sequential, population"),
        ({"sampler": "tpf"}, "sampler='tpf' is not known"),
        ({"schedule": "sha"}, "schedule='sha' is not known"),
        ({"workers": 0}, "workers must be at least 1; got 0"),
        ({"trials": 0}, "trials must be at least 1; got 0"),
        ({"population": 2.5}, "population=2.5 is not a whole number"),
        ({"timeout": -1}, "timeout=-1: give 0 or more seconds"),
        ({"epoch_budget": 0}, "epoch_budget=0: give more than 0"),
        ({"memory": "lots"}, "memory='lots' is not a size"),
        ({"device": "tpu"}, "device='tpu' is not known"),
        ({"task": "ranking"}, "task='ranking' is not known"),
        ({"ray": "auto", "workers": 2}, "ray and workers do not mix"),
    ],
)
def test_tune_checks_its_settings_once_before_opening_anything(tmp_path, options, said):
    from dltune import tune

    storage = f"sqlite:///{tmp_path / 'never.db'}"
    with pytest.raises(DLTuneError) as caught:
        tune(data="no-such-data.csv", storage=storage, **options)
    assert said in str(caught.value) and "--" not in str(caught.value)
    assert not (tmp_path / "never.db").exists()  # refused before the storage or data
