"""A user's build(hp) in a study: what the space still gives, how a trial samples the model's
own hyperparameters, and what happens when the build fails.

- The space gives the training knobs only (loss, optimizer, learning_rate, weight_decay,
  batch_size, epochs, patience, min_epochs, reduction). Its keys that describe dltune's own
  network (layers, units, dropout, activation and the convolutional keys) are *ignored*: they
  are fixed in the stored space (so not sampled, not Optuna parameters) and a note says which
  ones a space set. A user's build may therefore use those names itself (``hp.Int("units",
  ...)``) without a clash; the training knobs' names are refused by HyperParameters.
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
from ..space.rules import NETWORK_KEYS
from ..storage import schema
from ..usermodel.hp import HyperParameterError, HyperParameters
from ..usermodel.network import BuildError, UserNetworks, check_output, seeded_build
from ..usermodel.source import ModelSource, importable, stored

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


def training_space(space: SearchSpace) -> tuple[SearchSpace, list[str]]:
    """`space` with its network keys fixed (the build defines the model), and a note naming
    the ones it set to something other than the default."""
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

    def suggest(self, trial: optuna.trial.BaseTrial) -> Config:
        config = self.space.suggest(trial)
        hp = HyperParameters.from_trial(trial)
        try:
            module = seeded_build(self.build, hp, seed=0)  # its weights are thrown away
        except HyperParameterError as exc:
            raise BuildError(exc.template, kind="hyperparameters") from exc
        check_output(module, hp.values, self.input_shape, self.n_outputs)
        return dataclasses.replace(
            config, layers=0, units=(), dropout=0.0, model=tuple(hp.values.items())
        )

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
