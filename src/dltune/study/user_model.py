"""A user's build(hp) in a study: what the space still gives, how a trial samples the model's
own hyperparameters, and what happens when the build fails.

- The space gives the training knobs only (loss, optimizer, learning_rate, weight_decay,
  batch_size, epochs, patience, min_epochs, reduction). Its keys that describe dltune's own
  network (layers, units, dropout, activation and the convolutional keys) are *ignored*: they
  are fixed in the stored space (so not sampled, not Optuna parameters) and a note says which
  ones a space set. A user's build may therefore use those names itself (``hp.Int("units",
  ...)``) without a clash; the training knobs' names are refused by HyperParameters.
- A Keras model's compile() (usermodel.compiled: its optimizer, learning rate, weight decay and
  loss) gives the knobs the space leaves at their defaults: those are fixed at compile()'s values
  in the stored space, and each trial takes its own build's compile() values (a build may tune
  its learning rate, ``Adam(hp.Float("lr", ...))``); a knob the space sets wins. A note says
  which came from where, and what dltune does to the model's inputs and outputs.
- A trial samples the training knobs from the space and the model's own hyperparameters by a
  *dry build*, ``build(hp)`` on the same Optuna trial (`UserModelSpace.suggest`); the module
  is checked on a probe batch there and thrown away, and the values go into Config.model, from
  which every engine, worker and train-best rebuilds it.
- A build that fails (raises, returns no Module, gives the wrong output shape) fails that trial
  with its message and the study goes on; when the first `EARLY_FAILURES` trials of a run all
  fail the same way, the study stops with that message (`EarlyFailures`), instead of spending
  its budget on a build that cannot work.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ..config import CONV_KEYS
from ..errors import StudyError, param
from ..space.params import Fixed
from ..space.rules import NETWORK_KEYS
from ..storage import schema
from ..usermodel.compiled import Compiled, compiled
from ..usermodel.hp import HyperParameterError, HyperParameters
from ..usermodel.keras_model import KerasNetwork
from ..usermodel.network import BuildError, UserNetworks, check_output, seeded_build
from ..usermodel.source import ModelSource, importable, stored
from ..vocabulary import loss_applies

if TYPE_CHECKING:
    import optuna

    from ..config import Config
    from ..data import Dataset
    from ..space import SearchSpace
    from ..storage import Storage

# The keys of a space that describe dltune's own network (space.rules.NETWORK_KEYS) are ignored
# for a user model: the dense ones fixed, the convolutional ones dropped.
DENSE_KEYS = tuple(k for k in NETWORK_KEYS if k not in CONV_KEYS)
# The values they are fixed at: not sampled; the trial's Config has no layers of dltune's own.
_FIXED = {"layers": 1, "units": 1, "dropout": 0.0, "activation": "linear", "conv_layers": 0}
EARLY_FAILURES = 3  # the first trials of a run that, all failing alike, stop the study


def training_space(
    space: SearchSpace, build: Any = None, data: Dataset | None = None
) -> tuple[SearchSpace, list[str]]:
    """`space` with its network keys fixed (the build defines the model), and notes: the keys
    it set that are ignored; given the build and the data, what its Keras model's compile()
    gives (see the module's notes) and how dltune feeds the model."""
    built, notes = _network_fixed(space)
    if build is not None and data is not None:
        built, more = _compile_fixed(built, space, build, data)
        notes += more
    return built, notes


def _network_fixed(space: SearchSpace) -> tuple[SearchSpace, list[str]]:
    """`space` with its network keys fixed, and a note naming the ones it set to something
    other than the default."""
    from ..space import SearchSpace

    plain = space.to_dict()
    default = SearchSpace.default().to_dict()
    fixed = {**plain, **_FIXED}
    for key in CONV_KEYS[1:]:  # conv_layers stays, fixed at 0
        fixed.pop(key, None)
    if fixed == plain:
        return space, []
    ignored = [k for k in DENSE_KEYS if plain[k] != default[k] and plain[k] != _FIXED[k]]
    ignored += [k for k in CONV_KEYS if k in plain and plain[k] != _FIXED.get(k)]
    built = SearchSpace.from_dict(fixed, source=space.source)
    if not ignored:
        return built, []
    note = (
        f"the space's {', '.join(ignored)} {'are' if len(ignored) > 1 else 'is'} ignored: "
        "build(hp) defines the model; the space gives the training knobs"
    )
    return built, [note]


def _task_of(n_outputs: int) -> str:
    return "classification" if n_outputs > 1 else "regression"


def _defaults_build(build: Any, input_shape: tuple[int, ...], n_outputs: int) -> Any | None:
    """The build on its defaults (a dry build, seed 0), or None where it fails (its first
    trial says why)."""
    try:
        return seeded_build(build, HyperParameters(), 0, input_shape, n_outputs)
    except (BuildError, HyperParameterError):
        return None


def _compile_fixed(
    space: SearchSpace, given: SearchSpace, build: Any, data: Dataset
) -> tuple[SearchSpace, list[str]]:
    """`space` with the knobs that `given` (the space as the user wrote it) leaves at their
    defaults fixed at compile()'s values, and notes saying which came from where."""
    from ..space import SearchSpace

    n_outputs = data.n_classes or 1
    module = _defaults_build(build, data.input_shape, n_outputs)
    said = []
    if isinstance(module, KerasNetwork) and module.describe():
        said.append(f"the Keras model: {', '.join(module.describe())}")
    found = compiled(module)
    if found is None:
        return space, said
    default, plain = SearchSpace.default().to_dict(), given.to_dict()
    taken = {k: v for k, v in found.values.items() if plain[k] == default[k]}
    if "loss" in taken and not loss_applies(taken["loss"], data.task):
        found.unused.append(
            f"compile()'s loss {found.written['loss']} (not for a {data.task} target)"
        )
        del taken["loss"]
    # a knob the space fixes at compile()'s own value (a worker's, a resumed run's stored
    # space) is neither taken nor overridden
    same = {k for k, v in found.values.items() if k not in taken and plain[k] == v}
    said += _compile_notes(found, taken, same)
    if not taken:
        return space, said
    return SearchSpace.from_dict(space.to_dict() | taken, source=space.source), said


def _compile_notes(found: Compiled, taken: dict[str, Any], same: set[str]) -> list[str]:
    """What compile() gave, what the space overrides, what dltune cannot use: one note."""

    def written(key: str) -> str:
        value = found.values[key]
        as_written = found.written.get(key)
        return f"{key} {value}" + (f" ({as_written})" if as_written not in (None, value) else "")

    parts = []
    if taken:
        parts.append(
            f"{', '.join(written(k) for k in taken)} from compile(), as the space does not set "
            f"{'them' if len(taken) > 1 else 'it'}"
        )
    overridden = [k for k in found.values if k not in taken and k not in same]
    if overridden:
        parts.append(
            f"the space's {', '.join(overridden)} instead of compile()'s "
            f"{', '.join(str(found.values[k]) for k in overridden)}"
        )
    if found.unused:
        parts.append(f"not used: {'; '.join(found.unused)}")
    return [f"build(hp)'s compile(): {'; '.join(parts)}"] if parts else []


class UserModelSpace:
    """The space as a trial's lifecycle asks it (`suggest`): the training knobs from the space,
    the model's hyperparameters from a dry build on the same trial."""

    def __init__(
        self,
        space: SearchSpace,
        build: Any,
        input_shape: tuple[int, ...],
        n_outputs: int,
    ) -> None:
        self.space = space
        self.build = build
        self.input_shape = tuple(input_shape)
        self.n_outputs = n_outputs
        self._from_compile: set[str] | None = None

    def suggest(self, trial: optuna.trial.BaseTrial) -> Config:
        config = self.space.suggest(trial)
        hp = HyperParameters.from_trial(trial)
        try:  # its weights are thrown away
            module = seeded_build(self.build, hp, 0, self.input_shape, self.n_outputs)
        except HyperParameterError as exc:
            raise BuildError(exc.template, kind="hyperparameters") from exc
        check_output(module, hp.values, self.input_shape, self.n_outputs)
        config = dataclasses.replace(
            config, layers=0, units=(), dropout=0.0, model=tuple(hp.values.items())
        )
        taken = self._compiled_knobs(module)
        return dataclasses.replace(config, **taken) if taken else config

    def _compiled_knobs(self, module: Any) -> dict[str, Any]:
        """This trial's compile() values of the knobs the study takes from compile(): those
        the space fixes at the value of the build's defaults (see training_space)."""
        found = compiled(module)
        if found is None:
            return {}
        # Once: which knobs compile() gives in this study. The stored space fixes them at the
        # value of the build's defaults (training_space); a space that fixed a knob at that
        # very value itself reads the same, and then takes the trial's compile() value too.
        if self._from_compile is None:
            defaults = compiled(_defaults_build(self.build, self.input_shape, self.n_outputs))
            fixed = {k: p.value for k, p in self.space.params.items() if isinstance(p, Fixed)}
            self._from_compile = {
                k for k, v in (defaults.values if defaults else {}).items() if fixed.get(k) == v
            }
        taken = {k: v for k, v in found.values.items() if k in self._from_compile}
        if "loss" in taken and not loss_applies(taken["loss"], _task_of(self.n_outputs)):
            del taken["loss"]
        return taken

    def __getattr__(self, name: str) -> Any:  # everything else as the space has it
        return getattr(self.space, name)


def default_params(build: Any) -> dict[str, Any]:
    """The Optuna params of the build's defaults (a dry build on no trial), for the baseline
    trial; {} when the build cannot run on its defaults (its first trial will say why)."""
    hp = HyperParameters()
    try:
        seeded_build(build, hp, seed=0)
    except (BuildError, HyperParameterError):
        return {}
    fixed = {name for name, spec in hp.specs().items() if spec.kind == "Fixed"}
    return {name: value for name, value in hp.values.items() if name not in fixed}


class EarlyFailures:
    """Stops a study whose first trials in this run all fail the same way."""

    def __init__(self, limit: int = EARLY_FAILURES) -> None:
        self.limit = limit
        self.failures: list[BuildError] = []
        self.succeeded = False

    def passed(self) -> None:
        self.succeeded = True

    def failed(self, error: BuildError) -> None:
        """Record a failed trial; a BuildError that stops the study when the first `limit`
        failed alike."""
        if self.succeeded:
            return
        self.failures.append(error)
        if len(self.failures) >= self.limit and len({e.kind for e in self.failures}) == 1:
            raise BuildError(
                f"the first {len(self.failures)} trials all failed the same way, so the study "
                f"stops (fix the build and run again): {error.template}",
                kind=error.kind,
            )


def networks(model: ModelSource | None, data: Dataset) -> UserNetworks | None:
    return None if model is None else UserNetworks(model.build, data.input_shape)


def study_model(
    study: optuna.Study, given: ModelSource | None, storage: Storage, trust: bool = False
) -> ModelSource | None:
    """The user model of this run: the one given, else the one the study was run with. A
    study's record is someone's say-so (a study may be downloaded), so the build it names is
    imported only when the caller trusts it (`trust`; its hash checked first, here, before
    anything else runs); a given build is the caller's own. The given one is recorded with a
    new study, and refused when the study was run with another build (or with none)."""
    stored_record = schema.read_model_source(study)
    where = f"study {study.study_name!r} in {storage.shown}"
    if stored_record is None:
        if given is not None and study.trials:
            raise StudyError(
                f"{where} was run on dltune's own networks, not a build of your own; tune "
                f"{given.describe()} in a new study (give another study name)"
            )
        if given is not None:
            schema.write_model_source(study, given.to_dict())
        return given
    if given is None:
        yours = f"; or give the build yourself, {param('model', shown='FILE.py:build')}"
        recorded = stored(stored_record, where, trust=trust, alternative=yours)
        recorded.build_function = recorded.load()  # now (hash checked): its errors first
        return recorded
    recorded = ModelSource.from_dict(stored_record, where)
    if not recorded.same_build(given):
        raise StudyError(
            f"{where} was run with the build "
            f"{recorded.describe()} (sha256 {str(recorded.sha256)[:12]}...), not "
            f"{given.describe()} (sha256 {str(given.sha256)[:12]}...); continue it with its "
            "own build unchanged, or tune this one in a new study (give another study name)"
        )
    return given


def check_workers(model: ModelSource | None, workers: int) -> None:
    """Several worker processes import the build again: refuse one they cannot import."""
    if model is None or workers <= 1:
        return
    problem = importable(model)
    if problem:
        raise StudyError(f"{problem} (several workers each import it)")
