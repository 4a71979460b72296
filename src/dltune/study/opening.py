"""Opening a study: created, or loaded to continue, and checked against this run's data, space
and metric before anything is trained. Its metadata (the space, the data's fingerprint, the
metric, the seeds) is written once, when the study is new, so that every later run, worker and
report reads the same."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import StudyError, param
from ..storage import directions, schema
from ..version import __version__
from ..vocabulary import DEFAULT_METRIC, METRICS
from .samplers import make_sampler

if TYPE_CHECKING:
    import optuna

    from ..data import Dataset
    from ..space import SearchSpace
    from ..storage import Storage
    from ..usermodel.source import ModelSource

# A worker's sampler seed is the study's seed moved by this much per worker, so that workers
# do not propose the same configurations.
SEED_STRIDE = 7919


def new_study_hint() -> str:
    return f"use {param('study_name', shown='NEW_NAME')} to start a separate study"


@dataclass
class OpenedStudy:
    """A study ready to run: its stored metadata, the space restricted to the data's task, and
    notes on what that restriction dropped."""

    study: optuna.Study
    meta: dict[str, Any]
    space: SearchSpace
    notes: list[str]
    model: ModelSource | None = None  # a user's build(hp), given or the study's own

    @property
    def metric(self) -> str:
        return str(self.meta["metric"])

    @property
    def base_seed(self) -> int:
        return int(self.meta["seed"])

    @property
    def shuffle_seed(self) -> int:
        return int(self.meta["shuffle_seed"])


def open_study(
    space: SearchSpace,
    data: Dataset,
    storage: Storage,
    *,
    study_name: str | None,
    sampler: str | optuna.samplers.BaseSampler,
    seed: int | None,
    parallel: bool = False,
    worker_index: int = 0,
    target: str | int | None = None,
    model: ModelSource | None = None,
    trust_source: bool = False,
) -> OpenedStudy:
    """Create the study, or load it to continue, checked against this run's data and space.
    With a user model (given, or recorded with the study: imported only with `trust_source`)
    the space gives the training knobs only (study/user_model.py)."""
    import optuna

    from . import user_model

    name = study_name or f"{space.name}-{data.name}"
    study = optuna.create_study(
        storage=storage.backend,
        study_name=name,
        # one objective per name: the metric's, then every cost's (to minimize)
        directions=_directions(space.metric or DEFAULT_METRIC[data.task], space.costs),
        # dltune's scheduler decides at rungs (loop.py); Optuna's pruner is not consulted.
        pruner=optuna.pruners.NopPruner(),
        load_if_exists=True,
    )
    _check_same_data(study, data, storage)
    shape_note = _keep_study_shape(study, data, storage)
    model = user_model.study_model(study, model, storage, trust_source)
    model_notes: list[str] = []
    if model is not None:
        space, model_notes = user_model.training_space(space, model.build, data)
    space, epoch_notes = space.for_examples(len(data.y_train))
    space, notes = space.for_task(data.task)
    notes = [*epoch_notes, *notes]
    notes += shape_note
    space, shape_notes = space.for_input(data.input_shape)
    notes = [*data.notes, *notes, *shape_notes, *model_notes]  # data's: what loading did
    if model is not None:  # the convolutional keys the data's shape brought in, fixed again
        space = user_model.training_space(space)[0]
    metric = space.metric or DEFAULT_METRIC[data.task]
    _check_same_objectives(study, [metric, *space.costs], storage)
    schema.write_metric_names(study, [metric, *space.costs])  # the dashboard's names
    base_seed = seed if seed is not None else random.randrange(2**31 - 1)
    meta = _check_same_space(study, _study_meta(space, data, metric, base_seed, target), storage)
    # A resumed study keeps its seeds; the sampler's seed moves on with the trial count, so
    # that a resumed random search does not propose the first configurations again.
    sampler_seed = None if seed is None else seed + len(study.trials) + SEED_STRIDE * worker_index
    study.sampler = make_sampler(
        sampler, space, sampler_seed, parallel=parallel, worker=worker_index
    )
    return OpenedStudy(study, meta, space, notes, model)


def _study_meta(
    space: SearchSpace, data: Dataset, metric: str, seed: int, target: str | int | None = None
) -> dict[str, Any]:
    return {
        "version": __version__,
        "space": space.to_dict(),
        "metric": metric,
        "seed": seed,
        "shuffle_seed": seed,
        # names the study's checkpoint files, so that a sweep in a place other storages share
        # removes only this storage's (storage.checkpoints)
        schema.CHECKPOINT_TOKEN: schema.new_checkpoint_token(),
        "data": {
            "name": data.name,
            "source": data.source,
            "task": data.task,
            "classes": data.n_classes,  # how many (None: regression), for chance level
            "fingerprint": data.fingerprint(),
            "description": data.describe(),
            # The target column of a table, so that train-best can load the same data again.
            "target": target,
            # One example's shape, so that later runs, train-best and sweeps build the same
            # networks, whatever shape the data would take when loaded again.
            **schema.data_record_shape(data.input_shape),
            # Whether a table went through the encoder (load_data's `encode`), so that
            # train-best loads it the same way; absent in studies from before: not encoded.
            "encoded": data.encoding is not None,
        },
    }


def _check_same_data(study: optuna.Study, data: Dataset, storage: Storage) -> None:
    """Refuse to mix another dataset into a stored study (checked before anything else)."""
    old = schema.read_study_meta(study)
    if not old:
        if study.trials:
            raise StudyError(
                f"study {study.study_name!r} in {storage.shown} was not made by dltune; "
                f"choose another name with {param('study_name')}"
            )
        return
    if old["data"]["fingerprint"] != data.fingerprint():
        raise StudyError(
            f"study {study.study_name!r} in {storage.shown} was run on data "
            f"{old['data']['description']!r}, not {data.describe()!r}; {new_study_hint()}"
        )


def _keep_study_shape(study: optuna.Study, data: Dataset, storage: Storage) -> list[str]:
    """A continued study's examples keep the shape it was run on (flat, if recorded before
    shapes): data loaded without a shape take it (and a note says so); a shape asked for
    that differs is refused. Changes ``data.input_shape`` in place; the arrays stay as they are."""
    old = schema.read_study_meta(study)
    if not old:
        return []
    recorded = schema.read_input_shape(old) or (data.n_features,)
    if recorded == data.input_shape:
        return []
    theirs, mine = _shape_text(recorded), _shape_text(data.input_shape)
    if data.shape_given:
        raise StudyError(
            f"study {study.study_name!r} in {storage.shown} was run on examples of shape "
            f"{theirs}, not {param('shape', mine)}; leave {param('shape')} out to continue it "
            f"with its own shape, or {new_study_hint()}"
        )
    data.set_input_shape(recorded)
    return [f"examples of shape {theirs}, as the study was run on (the data's own: {mine})"]


def _shape_text(shape: tuple[int, ...]) -> str:
    return ",".join(str(n) for n in shape)


def _check_same_space(study: optuna.Study, new: dict[str, Any], storage: Storage) -> dict[str, Any]:
    """The study's stored metadata (written now if new); an error if the space or metric differ."""
    old = schema.read_study_meta(study)
    if not old:
        return schema.write_study_meta(study, new)
    if old["space"] != new["space"] or old["metric"] != new["metric"]:
        raise StudyError(
            f"study {study.study_name!r} in {storage.shown} was run with another search "
            f"space or metric; run it with the same space file, or {new_study_hint()}"
        )
    return old


def _direction(metric: str) -> Literal["minimize", "maximize"]:
    return "maximize" if METRICS[metric][1] == "maximize" else "minimize"


def _directions(metric: str, costs: tuple[str, ...]) -> list[Literal["minimize", "maximize"]]:
    cost: Literal["minimize", "maximize"] = "minimize"  # every cost (vocabulary.COSTS)
    return [_direction(metric)] + [cost for _ in costs]


def _check_same_objectives(study: optuna.Study, names: list[str], storage: Storage) -> None:
    """Refuse a run whose objectives differ from the stored study's (Optuna loads a study
    whatever directions it is asked for): the directions, then the names where stored."""
    stored = directions(study)
    wanted = _directions(names[0], tuple(names[1:]))
    named = schema.read_metric_names(study)
    if stored == wanted and (named is None or named == names):
        return
    theirs = ", ".join(named) if named else " and ".join(f"to {d}" for d in stored)
    raise StudyError(
        f"study {study.study_name!r} in {storage.shown} has the objectives {theirs}, not "
        f"{', '.join(names)} as this run's space asks; give the same metric and objectives, "
        f"or {new_study_hint()}"
    )
