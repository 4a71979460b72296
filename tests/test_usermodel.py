"""Your own model: build(hp) with Keras Tuner's hp API, where a build comes from, the checks
that make a bad build a failed trial, and a user-model study end to end (storage, resume,
workers, train-best, load, predict, ONNX, the command line)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from torch import nn

import dltune
from dltune.storage import schema
from dltune.usermodel import (
    BuildError,
    HyperParameterError,
    HyperParameters,
    SourceError,
    UserNetworks,
    resolve_model,
)
from dltune.usermodel.source import ModelSource, importable

from .helpers import dltune as dltune_cli
from .helpers import make_config

REPO = Path(__file__).resolve().parents[1]
# The training knobs only, fixed, so that the model's own hyperparameters are all that vary.
SPACE = {
    "name": "mine",
    "loss": "categorical_crossentropy",
    "optimizer": "adam",
    "learning_rate": 0.03,
    "batch_size": 32,
    "epochs": 3,
}

# ---- builds the tests tune (module level: importable again by a worker) --------------------


def mlp(hp):
    """A small MLP for the 8-feature blobs, with a conditional hidden layer."""
    width = hp.Int("width", 4, 16, step=4, default=8)
    layers: list[nn.Module] = [nn.Linear(8, width), nn.ReLU()]
    if hp.Boolean("deeper"):
        layers += [nn.Linear(width, hp.Choice("width_2", [4, 8])), nn.ReLU()]
        width = hp.values["width_2"]
    layers.append(nn.Linear(width, 3))
    return nn.Sequential(*layers)


def raises(hp):
    hp.Int("width", 4, 16)
    raise ValueError("no such layer")


def returns_a_number(hp):
    hp.Int("width", 4, 16)
    return 42


def wrong_shape(hp):
    return nn.Linear(8, hp.Int("outputs", 5, 7))  # 3 classes wanted


def fails_mostly(hp):
    """Wrong output shape unless k is 0 (its default: the baseline trial passes)."""
    k = hp.Int("k", 0, 9)
    return nn.Linear(8, 3 if k == 0 else 4)


MLP_FILE = """\
from torch import nn


def build(hp):
    width = hp.Int("width", 4, 16, step=4, default=8)
    return nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 3))
"""


@pytest.fixture
def build_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.py"  # a stem that must not shadow anything in sys.modules
    path.write_text(MLP_FILE)
    return path


# ---- the hp API ----------------------------------------------------------------------------


def test_hp_without_a_trial_gives_each_default():
    hp = HyperParameters()
    assert hp.Int("a", 2, 9) == 2
    assert hp.Int("b", 2, 9, default=5) == 5
    assert hp.Float("c", 0.1, 0.5) == 0.1
    assert hp.Float("d", 1e-4, 1e-1, sampling="log", default=1e-3) == 1e-3
    assert hp.Choice("e", ["relu", "tanh"]) == "relu"
    assert hp.Choice("f", [1, 2, 3], default=3) == 3
    assert hp.Boolean("g") is False
    assert hp.Boolean("h", default=True) is True
    assert hp.Fixed("i", 7) == 7
    assert list(hp.values) == ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
    assert hp.get("b") == 5


def test_hp_on_a_trial_suggests_through_optuna():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    hp = HyperParameters.from_trial(trial)
    width = hp.Int("width", 8, 64, step=8)
    rate = hp.Float("rate", 1e-4, 1e-1, sampling="log")
    units = hp.Int("units", 16, 128, step=2, sampling="log")  # Keras Tuner's factor
    kind = hp.Choice("kind", ["a", "b"])
    pool = hp.Boolean("pool")
    fixed = hp.Fixed("classes", 3)
    d = trial.distributions
    assert d["width"] == optuna.distributions.IntDistribution(8, 64, step=8)
    assert d["rate"] == optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    assert d["units"] == optuna.distributions.CategoricalDistribution([16, 32, 64, 128])
    assert d["kind"] == optuna.distributions.CategoricalDistribution(["a", "b"])
    assert d["pool"] == optuna.distributions.CategoricalDistribution([False, True])
    assert "classes" not in trial.params  # fixed: not a parameter of the study
    assert hp.values == {
        "width": width, "rate": rate, "units": units, "kind": kind, "pool": pool, "classes": 3
    }  # fmt: skip
    assert width % 8 == 0 and 1e-4 <= rate <= 1e-1 and fixed == 3


def test_stored_values_replay_the_build_and_conditionals_exist_only_when_asked():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(12):
        hp = HyperParameters.from_trial(study.ask())
        mlp(hp)
        seen.add("width_2" in hp.values)
        assert ("width_2" in hp.values) == hp.values["deeper"]
        again = HyperParameters.from_values(tuple(hp.values.items()))
        mlp(again)
        assert again.values == hp.values
    assert seen == {True, False}


def test_a_name_asked_twice_differently_names_both_definitions():
    hp = HyperParameters()
    assert hp.Int("width", 4, 16) == hp.Int("width", 4, 16)  # the same again: the same value
    with pytest.raises(HyperParameterError) as error:
        hp.Int("width", 4, 32)
    message = str(error.value)
    assert "'width' twice" in message
    assert "hp.Int(min_value=4, max_value=16" in message
    assert "hp.Int(min_value=4, max_value=32" in message
    with pytest.raises(HyperParameterError, match=r"first hp\.Int.*then hp\.Boolean"):
        hp.Boolean("width")


@pytest.mark.parametrize(
    ("ask", "words"),
    [
        (lambda hp: hp.Int("a", 9, 2), "min_value is above max_value"),
        (lambda hp: hp.Float("a", 0.0, 1.0, sampling="log"), "needs min_value > 0"),
        (lambda hp: hp.Float("a", 0.1, 1.0, sampling="reverse_log"), "'reverse_log' is not"),
        (lambda hp: hp.Int("a", 1.5, 3), "min_value must be a whole number"),
        (lambda hp: hp.Int("a", 2, 64, step=1, sampling="log"), "step is a factor"),
        (lambda hp: hp.Choice("a", []), "at least one value"),
        (lambda hp: hp.Choice("a", [nn.ReLU]), "must be numbers, strings or booleans"),
        (lambda hp: hp.Choice("a", [1, 2], default=3), "default 3 is not a value"),
        (lambda hp: hp.get("nothing"), "no hyperparameter of that name"),
    ],
)
def test_hp_mistakes_say_what_to_fix(ask, words):
    with pytest.raises(HyperParameterError, match=words.replace("(", r"\(").replace(".", r"\.")):
        ask(HyperParameters())


@pytest.mark.parametrize(
    ("ask", "words"),
    [
        (lambda hp: hp.Float("learning_rate", 1e-4, 1e-1), "a training knob the space tunes"),
        (lambda hp: hp.Int("batch_size", 8, 64), "rename it, e.g. 'model_batch_size'"),
    ],
)
def test_a_training_knobs_name_is_refused_where_the_space_tunes_that_knob(ask, words):
    import optuna

    trial = optuna.create_study().ask()
    trial.suggest_float("learning_rate", 1e-3, 1.0, log=True)  # the space's, first
    trial.suggest_categorical("batch_size", [16, 32])
    with pytest.raises(HyperParameterError, match=words.replace("(", r"\(").replace(".", r"\.")):
        ask(HyperParameters.from_trial(trial))
    # where the space fixes it (not an Optuna parameter), the name is the build's
    free = optuna.create_study().ask()
    assert 1e-4 <= ask(HyperParameters.from_trial(free)) <= 64
    assert ask(HyperParameters()) in (1e-4, 8)  # a dry build: its default


def test_the_dense_network_keys_are_free_for_a_user_model():
    hp = HyperParameters()
    assert hp.Int("units", 16, 64) == 16 and hp.Float("dropout", 0.0, 0.5) == 0.0


# ---- where a build comes from --------------------------------------------------------------


def test_a_file_build_is_recorded_as_json_and_imported_again_under_a_private_name(build_file):
    before = set(sys.modules)
    source = resolve_model(f"{build_file}:build")
    record = json.loads(json.dumps(source.to_dict()))
    assert record["kind"] == "file" and record["attr"] == "build"
    assert record["path"] == str(build_file.resolve()) and len(record["sha256"]) == 64
    added = set(sys.modules) - before
    assert "model" not in added and all(name.startswith("_dltune_model_") for name in added)
    again = ModelSource.from_dict(record)
    module = again.build(HyperParameters())
    assert isinstance(module, nn.Sequential) and module[0].out_features == 8


def test_a_module_build_and_a_function_given_directly(build_file, monkeypatch):
    monkeypatch.syspath_prepend(str(build_file.parent))
    monkeypatch.delitem(sys.modules, "model", raising=False)
    source = resolve_model("model:build")
    assert source.kind == "module" and source.module == "model" and source.sha256
    direct = resolve_model(mlp)
    assert direct.kind == "module" and direct.module == __name__ and direct.attr == "mlp"
    assert direct.path == str(Path(__file__).resolve()) and direct.sha256
    assert ModelSource.from_dict(direct.to_dict()).build is mlp
    assert importable(direct) is None


def test_a_function_defined_inside_a_function_cannot_go_to_another_process():
    def local(hp):
        return nn.Linear(8, 3)

    problem = importable(resolve_model(local))
    assert problem is not None and "inside a function" in problem


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("{dir}/nowhere.py:build", "does not exist"),
        ("{dir}/model.py", "name the build function after a colon"),
        ("{dir}/model.py:biuld", "has no 'biuld'.*did you mean 'build'"),
        ("{dir}/broken.py:build", "cannot be imported: SyntaxError"),
        ("no_such_package_xyz.models:build", "module 'no_such_package_xyz.models' cannot be"),
        ("{dir}/model.py:WIDTH", "'WIDTH' is a int, not a function"),
    ],
)
def test_a_build_that_cannot_be_found_says_where_and_how_to_fix(build_file, spec, words):
    build_file.write_text(MLP_FILE + "\nWIDTH = 3\n")
    (build_file.parent / "broken.py").write_text("def build(hp):\n    return (\n")
    with pytest.raises(SourceError, match=words):
        resolve_model(spec.format(dir=build_file.parent))


def test_a_changed_file_is_noticed_before_it_is_trusted(build_file):
    record = resolve_model(f"{build_file}:build").to_dict()
    build_file.write_text(MLP_FILE.replace("default=8", "default=12"))
    with pytest.raises(SourceError, match=r"changed since it was recorded.*restore the file"):
        ModelSource.from_dict(record).load()
    build_file.unlink()
    with pytest.raises(SourceError, match="does not exist any more"):
        ModelSource.from_dict(record).load()


def sha256_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_module_is_hashed_as_the_file_python_would_import(tmp_path, monkeypatch):
    """The record's module is found as Python would import it (find_spec), and that file is
    hashed, not the recorded path: a module of the same name elsewhere, first on the path, is
    refused before it runs; the recorded one runs from the very bytes checked."""
    import importlib

    good, other = tmp_path / "good", tmp_path / "other"
    good.mkdir()
    other.mkdir()
    marker = tmp_path / "marker"
    (good / "dltune_test_mod.py").write_text(MLP_FILE)
    (other / "dltune_test_mod.py").write_text(f"open({str(marker)!r}, 'w').close()\n{MLP_FILE}")
    record = {
        "kind": "module", "module": "dltune_test_mod", "attr": "build",
        "path": str(good / "dltune_test_mod.py"), "sha256": sha256_of(good / "dltune_test_mod.py"),
    }  # fmt: skip
    monkeypatch.delitem(sys.modules, "dltune_test_mod", raising=False)
    monkeypatch.syspath_prepend(str(other))
    importlib.invalidate_caches()
    with pytest.raises(SourceError, match=r"would be imported from .*other.*not the recorded"):
        ModelSource.from_dict(record).load()
    assert not marker.exists() and "dltune_test_mod" not in sys.modules
    monkeypatch.syspath_prepend(str(good))  # now the recorded file is the one found
    importlib.invalidate_caches()
    build = ModelSource.from_dict(record).load()
    assert isinstance(build(HyperParameters()), nn.Sequential)
    assert sys.modules["dltune_test_mod"].__file__ == str(good / "dltune_test_mod.py")
    monkeypatch.delitem(sys.modules, "dltune_test_mod")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"sha256": None}, "has no sha256 in its record"),
        ({"sha256": "A" * 64}, "malformed sha256"),
        ({"path": "model.py"}, r"relative path; dltune does not resolve it .*that would be"),
        ({"path": None}, "names no file"),
        ({"module": 7}, "not one dltune wrote"),
    ],
)
def test_a_record_that_cannot_be_checked_is_never_imported(build_file, monkeypatch, change, words):
    marker = build_file.parent / "marker"
    build_file.write_text(f"open({str(marker)!r}, 'w').close()\n{MLP_FILE}")
    record = {**resolve_model(f"{build_file}:build").to_dict(), **change}
    marker.unlink()  # written when resolve_model imported the caller's own file
    monkeypatch.chdir(build_file.parent)  # where a relative path would find the file
    for name in [n for n in sys.modules if n.startswith("_dltune_model_")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(SourceError, match=words):
        ModelSource.from_dict(record).load()
    assert not marker.exists()


# ---- the factory and its checks ------------------------------------------------------------


def user_config(**model):
    return make_config(model=tuple(model.items()))


def test_the_seed_decides_the_initial_weights_and_the_global_generator_is_left_alone():
    networks = UserNetworks(mlp, (8,))
    config = user_config(width=8, deeper=False)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = networks(config, 3, seed=5, device="cpu")
    assert torch.equal(torch.rand(3), expected_next)  # forked and restored
    b = networks(config, 3, seed=5, device="cpu")
    c = networks(config, 3, seed=6, device="cpu")
    weights = [m.state_dict()["model.0.weight"] for m in (a, b, c)]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])


def test_the_module_receives_examples_in_the_datas_shape():
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape))
            return x.flatten(1)[:, :3]

    network = UserNetworks(lambda hp: Probe(), (2, 4))(user_config(), 3, seed=0, device="cpu")
    assert network(torch.zeros(5, 8)).shape == (5, 3)  # the trainers hold flat rows
    assert seen[-1] == (5, 2, 4)


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (raises, r"build\(hp\) raised ValueError: no such layer \(with width=4\)"),
        (returns_a_number, r"returned int 42 \(with width=4\); it must return a torch.nn.Module"),
        (
            wrong_shape,
            r"\(with outputs=5\) maps a batch of shape \(2, 8\) to shape \(2, 5\); "
            r"expected shape \(2, 3\)",
        ),
    ],
)
def test_a_failing_build_says_what_it_got_and_with_which_values(build, words):
    with pytest.raises(BuildError, match=words):
        UserNetworks(build, (8,))(make_config(), 3, seed=0, device="cpu")


# ---- studies -------------------------------------------------------------------------------


def memory():
    return optuna.storages.InMemoryStorage()


def test_a_user_model_study_end_to_end(blobs):
    space = {**SPACE, "units": [32, 64]}  # a network key: ignored, and said so
    result = dltune.tune(
        mlp, data=blobs, space=space, storage=memory(), trials=4, seed=0, schedule="none"
    )
    trials = result.study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert any("units is ignored: build(hp) defines the model" in n for n in result.notes)
    for trial in trials:
        assert {"width", "deeper"} <= set(trial.params) and "units" not in trial.params
        config = trial.user_attrs["config"]
        assert config["layers"] == 0 and config["model"]["width"] == trial.params["width"]
    assert trials[0].params["width"] == 8 and trials[0].params["deeper"] is False  # defaults
    record = schema.read_model_source(result.study)
    assert record is not None and record["module"] == __name__ and record["attr"] == "mlp"
    assert result.best is not None and result.best["value"] > 0.8
    assert result.best["test"] is not None  # tested once, rebuilt through build(hp)


def test_trials_whose_build_fails_fail_and_the_study_goes_on(blobs):
    result = dltune.tune(fails_mostly, data=blobs, space=SPACE, storage=memory(), trials=6, seed=0)
    states = [t.state for t in result.study.trials]
    assert states[0] == optuna.trial.TrialState.COMPLETE  # the baseline: k's default, 0
    failed = [t for t in result.study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed and len(states) == 6
    for trial in failed:
        assert "expected shape (2, 3)" in trial.user_attrs["error"]
        assert f"k={trial.params['k']}" in trial.user_attrs["error"]


@pytest.mark.parametrize(
    ("build", "words"),
    [(raises, "raised ValueError: no such layer"), (returns_a_number, "returned int 42")],
)
def test_a_study_whose_first_trials_all_fail_alike_stops(blobs, build, words):
    storage = memory()
    with pytest.raises(BuildError, match=f"the first 3 trials all failed the same way.*{words}"):
        dltune.tune(build, data=blobs, space=SPACE, storage=storage, trials=20, seed=0)
    study = optuna.load_study(study_name="mine-blobs", storage=storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 3


def test_a_user_model_study_resumes_with_its_own_build(blobs, build_file, storage_url):
    spec = f"{build_file}:build"
    first = dltune.tune(model=spec, data=blobs, space=SPACE, storage=storage_url, trials=2, seed=0)
    # continued without naming the build: the study's record is imported again, when trusted
    with pytest.raises(SourceError, match=f"would import and run.*{build_file}.*trust_source="):
        dltune.tune(SPACE, blobs, storage=storage_url, trials=2, seed=0)
    again = dltune.tune(SPACE, blobs, storage=storage_url, trials=2, seed=0, trust_source=True)
    assert again.study.study_name == first.study.study_name and len(again.study.trials) == 4
    assert all("width" in t.params for t in again.study.trials)
    with pytest.raises(dltune.DLTuneError, match="was run with the build"):
        dltune.tune(mlp, data=blobs, space=SPACE, storage=storage_url, trials=1)
    build_file.write_text(MLP_FILE + "\n# edited\n")
    with pytest.raises(SourceError, match="changed since it was recorded"):
        dltune.tune(SPACE, blobs, storage=storage_url, trials=1, trust_source=True)
    with pytest.raises(dltune.DLTuneError, match="run on dltune's own networks"):
        dltune.tune(SPACE, blobs, storage=storage_url, study_name="dense", trials=1, seed=0)
        dltune.tune(mlp, data=blobs, space=SPACE, storage=storage_url, study_name="dense")


MARKING_BUILD = """\
from pathlib import Path

Path({marker!r}).write_text("ran")


def build(hp):
    from torch import nn

    return nn.Linear(64, 10)
"""


def test_a_stored_studys_build_runs_only_when_trusted(trained_copy):
    """A study (downloaded, say) whose record names a build: continuing it, train-best and a
    sweep from it refuse, naming the file and the way to allow it; nothing of it runs."""
    folder = trained_copy
    url = f"sqlite:///{folder / 'dltune.db'}"
    marker, code = folder / "marker", folder / "evil.py"
    code.write_text(MARKING_BUILD.format(marker=str(marker)))
    record = {"kind": "file", "path": str(code), "module": None, "attr": "build"}
    study = optuna.load_study(study_name="small-digits", storage=url)
    schema.write_model_source(study, {**record, "sha256": sha256_of(code)})
    words = f"study 'small-digits' in .*would import and run Python code .*the file {code}"

    with pytest.raises(SourceError, match=f"{words}.*trust_source=True.*model=FILE.py:build"):
        dltune.tune(folder / "small.yaml", "digits", storage=url, trials=1)
    with pytest.raises(SourceError, match=f"{words}.*trust_source=True"):
        dltune.train_best(url, "small-digits")
    ran = {
        "run": dltune_cli("run", "small.yaml", "--trials", "1", cwd=folder),
        "train-best": dltune_cli("train-best", "-o", "model", cwd=folder),
    }
    for command, result in ran.items():
        assert result.returncode == 2, (command, result.stdout)
        assert str(code) in result.stderr and "allow it with --trust-source" in result.stderr
    assert "--model FILE.py:build" in ran["run"].stderr
    swept = dltune_cli("sweep", "dropout", "--from-study", "small-digits", cwd=folder)
    assert swept.returncode == 2 and "a sweep trains dltune's own networks only" in swept.stderr
    assert not marker.exists() and not (folder / "model").exists()
    # trusted, it runs (and this one's network does not fit digits' trials: refused after)
    with pytest.raises(dltune.DLTuneError):
        dltune.train_best(url, "small-digits", trust_source=True)
    assert marker.read_text() == "ran"


def test_local_workers_import_the_build_again(blobs, build_file, storage_url):
    result = dltune.tune(
        model=f"{build_file}:build", data=blobs, space=SPACE, storage=storage_url, trials=4,
        seed=0, workers=2, schedule="none",
    )  # fmt: skip
    trials = result.study.trials
    assert len(trials) == 4 and {t.user_attrs.get("worker") for t in trials} == {0, 1}
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)


def test_workers_refuse_a_build_they_cannot_import(blobs, storage_url):
    def local(hp):
        return nn.Linear(8, 3)

    with pytest.raises(dltune.DLTuneError, match="inside a function"):
        dltune.tune(local, data=blobs, space=SPACE, storage=storage_url, workers=2)


class _Scalar(nn.Module):
    """A module torch.func cannot stack: .item() in its forward."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * (1.0 + 0.0 * x.sum().item())


def unstackable(hp):
    return _Scalar(hp.Int("width", 4, 8))


def test_the_population_engine_stacks_a_user_model_as_its_runs_alone(blobs):
    runs = {
        engine: dltune.tune(
            mlp,
            data=blobs,
            space=SPACE,
            storage=memory(),
            trials=4,
            seed=0,
            schedule="none",
            engine=engine,
        )
        for engine in ("sequential", "population")
    }
    from dltune.storage import read_trials

    alone, stacked = (
        {t.number: t for t in read_trials(runs[e].study)} for e in ("sequential", "population")
    )
    assert sorted(alone) == sorted(stacked) == [0, 1, 2, 3]
    for number, trial in alone.items():
        assert stacked[number].config == trial.config and len(trial.curve) == 3
        np.testing.assert_allclose(stacked[number].curve, trial.curve, rtol=1e-4)
    # stacked, not handed to one-at-a-time training (which would say so in a note)
    assert not any("cannot be trained stacked" in n for n in runs["population"].notes)
    assert not any("sequential engine" in n for n in runs["population"].notes)


def test_a_user_model_the_population_cannot_stack_trains_alone_and_says_why(blobs):
    result = dltune.tune(
        unstackable,
        data=blobs,
        space=SPACE,
        storage=memory(),
        trials=2,
        seed=0,
        schedule="none",
        engine="population",
    )
    assert any("cannot be trained stacked" in n for n in result.notes)
    assert [t.state for t in result.study.trials] == [optuna.trial.TrialState.COMPLETE] * 2


# ---- downstream: train-best, load, predict, export -----------------------------------------


def test_train_best_load_predict_and_onnx(blobs, build_file, tmp_path):
    pytest.importorskip("onnxruntime")
    storage = memory()
    spec = f"{build_file}:build"
    result = dltune.tune(
        model=spec, data=blobs, space=SPACE, storage=storage, trials=2, seed=0, schedule="none"
    )
    trained = dltune.train_best(storage, result.study.study_name, data=blobs, trust_source=True)
    folder = trained.save(tmp_path / "model")
    stored = json.loads((folder / "config.json").read_text())
    assert stored["model_source"]["path"] == str(build_file.resolve())
    loaded = dltune.load(folder, trust_source=True)
    expected = trained.model.predict_proba(blobs.x_test)
    assert np.array_equal(loaded.predict_proba(blobs.x_test), expected)
    assert trained.test > 0.8  # the test split, once, through the user's module

    from dltune.export.formats import export

    exported = export(loaded, "onnx", tmp_path / "model.onnx")
    assert exported.max_difference < 1e-4

    build_file.write_text(MLP_FILE + "\n# edited\n")
    with pytest.raises(dltune.DLTuneError, match=r"model: this model's network is a .*changed"):
        dltune.load(folder, trust_source=True)


# ---- the example and the command line ------------------------------------------------------


def test_the_example_runs_from_the_command_line(tmp_path):
    for name in ("my_model.py", "my_model.yaml"):
        shutil.copy(REPO / "examples" / name, tmp_path / name)
    ran = dltune_cli(
        "run", "my_model.yaml", "--model", "my_model.py:build", "--epoch-budget", "2",
        "--trials", "2", "--seed", "0", cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "Best configuration" in ran.stdout
    best = json.loads(
        dltune_cli("best", "--json", "--study", "my_model-digits", cwd=tmp_path).stdout
    )
    assert {"filters", "pool", "units", "dropout"} <= set(best["params"]["model"])
    table = dltune_cli("best", "--study", "my_model-digits", cwd=tmp_path).stdout
    assert "filters" in table and "pool" in table and "layers" not in table  # the build's own


def test_the_command_line_names_a_missing_build(tmp_path):
    ran = dltune_cli("run", "--model", "nowhere.py:build", "--trials", "1", cwd=tmp_path)
    assert ran.returncode == 2 and "nowhere.py does not exist" in ran.stderr
    assert not (tmp_path / "dltune.db").exists()  # refused before storage was opened


def test_the_analysis_reads_a_user_models_own_hyperparameters(blobs):
    from dltune.analysis import analyze

    result = dltune.tune(
        mlp,
        data=blobs,
        space={**SPACE, "epochs": 1},
        storage=memory(),
        trials=16,
        seed=0,
        schedule="none",
    )
    analysis = analyze(result.study)
    assert {"width", "deeper"} <= set(analysis.effects)  # the build's names, as it asked them
    assert not {"layers", "units", "activation"} & set(analysis.effects)  # fixed placeholders
    deeper = analysis.effects["deeper"]
    assert deeper["kind"] == "categorical"
    assert {group["value"] for group in deeper["groups"]} == {False, True}
    assert set(analysis.importance["values"]) >= {"width", "deeper"}


class ExitsWhenTraining(nn.Module):
    """A module that calls sys.exit() in its forward once it trains (not in the probe dltune
    runs at build time, in evaluation mode)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            sys.exit(3)
        return self.layer(x)


def exits_sometimes(hp):
    if hp.Boolean("leave", default=False):
        return ExitsWhenTraining()
    width = hp.Int("width", 4, 16)
    return nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 3))


def batch_normed(hp):
    width = hp.Int("width", 8, 16, default=8)
    return nn.Sequential(nn.Linear(8, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, 3))


@pytest.mark.parametrize("cv", ["holdout", 3])
def test_a_model_that_exits_or_raises_while_training_fails_its_trial_and_the_study_goes_on(
    blobs, cv
):
    result = dltune.tune(
        exits_sometimes, data=blobs, space=SPACE, storage=memory(), trials=8, seed=1,
        schedule="none", cv=cv, workers=1,
    )  # fmt: skip
    trials = result.study.trials
    assert len(trials) == 8
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert failed and complete  # some left with sys.exit(), the others trained
    for trial in failed:
        assert trial.params["leave"] is True
        assert "training raised SystemExit: 3 (with leave=True" in trial.user_attrs["error"]
    assert all(t.params["leave"] is False for t in complete)
    assert result.best is not None


def test_a_last_batch_of_one_example_joins_the_one_before_it(blobs):
    """420 training rows in batches of 419: the rest of one row would be a batch batch
    normalization cannot take; it trains with the batch before it, in both engines alike."""
    space = {**SPACE, "batch_size": 419, "epochs": 2}
    options = dict(space=space, trials=2, seed=0, schedule="none", cv="holdout", workers=1)
    runs = {
        engine: dltune.tune(batch_normed, data=blobs, storage=memory(), engine=engine, **options)
        for engine in ("sequential", "population")
    }
    assert len(blobs.y_train) % 419 == 1
    for result in runs.values():
        states = [t.state for t in result.study.trials]
        assert states == [optuna.trial.TrialState.COMPLETE] * 2
    curves = [
        [t.intermediate_values[e] for t in runs[engine].study.trials for e in (1, 2)]
        for engine in ("sequential", "population")
    ]
    np.testing.assert_allclose(curves[0], curves[1], atol=1e-5)
