"""Every public parameter of ``tune()`` and ``dltune run``, declared once: its kind, its choices
or bounds, whether None is allowed, and a line of help (scikit-learn's
``_parameter_constraints`` is the model).

:meth:`TuneSettings.validate` checks each setting against its entry (PARAMETERS, in order);
the command line takes its click types, metavars and help from the same entries
(cli/options.py); the factories (make_sampler, make_scheduler) take what was checked. So a
choice list or a bound is written here and nowhere else.

A mistake raises :class:`~dltune.errors.InvalidParameterError` (a ValueError: a wrong value)
or :class:`~dltune.errors.ParameterTypeError` (also a TypeError: a wrong type), both
DLTuneErrors, whose message names the parameter, the value and the rule. Help lines may name
other parameters with :func:`~dltune.errors.param`: the command line shows them as its flags.

Imports neither torch, optuna nor click: the command line reads this before it needs them.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..data.folds import DEFAULT_FOLDS, MAX_FOLDS
from ..devices import check_device
from ..engine.memory import parse_memory
from ..errors import DLTuneError, InvalidParameterError, ParameterTypeError, param
from ..schedule import SCHEDULES, StoppingRule
from ..vocabulary import TASKS
from .choice import rule_for
from .validation import AUTO_KFOLD_BELOW, CV_CHOICES, parse_cv

ENGINES = ("sequential", "population", "auto")  # auto: see arrangement.py
SAMPLERS = ("tpe", "random", "grid", "gp")


@dataclass(frozen=True, kw_only=True)
class Parameter:
    """One parameter: its name (tune's keyword, TuneSettings' field), a line of help, and
    whether None is allowed (the default then decides). Checks nothing by itself: a value
    whose form is checked where it is read (a path, a URL, a dataset) is declared so."""

    name: str
    help: str
    none: bool = False
    metavar: str | None = None  # how the command line shows its value

    def check(self, value: Any) -> None:
        """Nothing, or an InvalidParameterError (ParameterTypeError) that names the rule."""
        if value is None and self.none:
            return
        self._check(value)

    def _check(self, value: Any) -> None:
        return None


@dataclass(frozen=True, kw_only=True)
class Choice(Parameter):
    """One of `choices`; or, where `accepts` is given, an object it accepts (an Optuna sampler,
    a stopping rule), which `accepted` names in the message."""

    choices: tuple[str, ...]
    accepts: Callable[[Any], bool] | None = None
    accepted: str = ""

    def _check(self, value: Any) -> None:
        if isinstance(value, str) and value in self.choices:
            return
        if not isinstance(value, str) and self.accepts is not None and self.accepts(value):
            return
        error = InvalidParameterError if isinstance(value, str) else ParameterTypeError
        also = f", or give {self.accepted}" if self.accepted else ""
        raise error(f"{param(self.name, value)} is not known; choose from {self.rule}{also}")

    @property
    def rule(self) -> str:
        return ", ".join(self.choices)


@dataclass(frozen=True, kw_only=True)
class WholeNumber(Parameter):
    """A whole number of at least `low` (None: any), or one of `words` ("auto")."""

    low: int | None = None
    words: tuple[str, ...] = ()

    def _check(self, value: Any) -> None:
        if isinstance(value, str) and value in self.words:
            return
        if isinstance(value, str) and self.words:
            raise ParameterTypeError(
                f"{param(self.name, value)}: give a whole number or {' or '.join(self.words)}"
            )
        # int itself (not numpy's): the settings' users test isinstance(workers, int)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterTypeError(f"{param(self.name, value)} is not a whole number")
        if self.low is not None and value < self.low:
            raise InvalidParameterError(
                f"{param(self.name)} must be at least {self.low}; got {value}"
            )


@dataclass(frozen=True, kw_only=True)
class Number(Parameter):
    """A number of at least `low` (more than `low` when `open`), in `unit`s."""

    low: float = 0
    open: bool = False
    unit: str = ""
    note: str = ""  # what a bound means, said after the rule: "0: after every segment"

    def _check(self, value: Any) -> None:
        real = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if real and (value > self.low if self.open else value >= self.low):
            return  # NaN fails both comparisons
        error = InvalidParameterError if real else ParameterTypeError
        raise error(f"{param(self.name, value)}: give {self.rule}")

    @property
    def rule(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        bound = f"more than {self.low:g}{unit}" if self.open else f"{self.low:g} or more{unit}"
        return bound + (f" ({self.note})" if self.note else "")


@dataclass(frozen=True, kw_only=True)
class Switch(Parameter):
    """True or False (not 1, not "yes")."""

    def _check(self, value: Any) -> None:
        if not isinstance(value, bool):
            raise ParameterTypeError(f"{param(self.name, value)}: give True or False")


@dataclass(frozen=True, kw_only=True)
class Form(Parameter):
    """A value of one of `types` that `parse` reads (a size, a shape, an address): its own
    error names the forms it takes; `forms` says them for a value of another type."""

    parse: Callable[[Any], object]
    forms: str
    types: tuple[type, ...] = (str,)

    def _check(self, value: Any) -> None:
        if not isinstance(value, self.types):
            raise ParameterTypeError(f"{param(self.name, value)}: give {self.forms}")
        try:
            self.parse(value)
        except DLTuneError as error:
            if isinstance(error, ValueError):
                raise
            # the parser's message, as a parameter error (ValueError) for the caller
            raise InvalidParameterError(error.template) from error


def _optuna_sampler(value: Any) -> bool:
    """An Optuna sampler object (without importing Optuna: whoever made one imported it)."""
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(value, optuna.samplers.BaseSampler)


def _stopping_rule(value: Any) -> bool:
    return isinstance(value, StoppingRule)


def _memory(value: str | int) -> None:
    if isinstance(value, str) and value.strip().lower() != "auto":
        parse_memory(value)
    elif isinstance(value, bool) or (isinstance(value, int) and value < 1):
        raise InvalidParameterError(f"{param('memory', value)} is not a size; give bytes >= 1")


def _shape(value: Any) -> None:
    from ..data.shapes import parse_shape

    parse_shape(value)  # its form; its size is checked against the data


def _ray(value: str) -> None:
    from ..distributed.ray_engine import check_address

    check_address(value)


CV_HELP = (
    f"How trials are validated: kfold ({DEFAULT_FOLDS} folds) or K folds (2-{MAX_FOLDS}) "
    "cross-validate every example outside the test split (a trial is its configuration "
    "trained K times, each on the other folds; its value their mean); holdout: the validation "
    f"split; auto: k-fold below {AUTO_KFOLD_BELOW} examples outside the test split, else "
    "holdout. A continued study keeps its own (give auto, or the same)."
)

# In tune()'s order. The command line's flag is --name (study_name: --study).
PARAMETERS: tuple[Parameter, ...] = (
    Parameter(name="space", help="A YAML search space [default: the built-in one].", none=True),
    # the command line ends this line with its own default
    Parameter(
        name="data", help="digits, mnist, a folder of IDX files, or a .csv/.parquet/.npz file"
    ),
    Parameter(
        name="storage",
        help="Optuna storage URL: sqlite:///FILE.db (one machine), "
        "postgresql://USER:PASSWORD@HOST/DB (many machines), journal:///FILE.log (a shared "
        "file system).",
    ),
    Parameter(
        name="study_name", help="Study name [default: SPACE's name and the data's].", none=True
    ),
    WholeNumber(name="trials", low=1, none=True, help="Run N more trials [default: 50]."),
    Number(
        name="timeout",
        unit="seconds",
        none=True,
        help="Stop after S seconds (running trials end at their next checkpoint).",
    ),
    WholeNumber(
        name="seed", low=0, none=True, help="Seed of the sampler and of the trials' weights."
    ),
    Choice(
        name="sampler",
        choices=SAMPLERS,
        accepts=_optuna_sampler,
        accepted="an optuna.samplers.BaseSampler",
        help="How configurations are proposed: TPE, random, the space's grid, or a Gaussian "
        "process.",
    ),
    Choice(
        name="schedule",
        choices=SCHEDULES,
        accepts=_stopping_rule,
        accepted="a dltune.StoppingRule (an object with should_stop(trial, others))",
        help="Successive halving over epochs (rungs: the space's min_epochs, reduction), "
        "in Hyperband brackets, or none.",
    ),
    Number(
        name="epoch_budget",
        open=True,
        none=True,
        help="Stop after training this many epochs in all trials together.",
    ),
    Switch(name="cost_aware", help="Promote the cheapest of the trials that earned a rung first."),
    Switch(
        name="baseline",
        help="Start a new study with the textbook configuration (Dense 128 relu, Adam 1e-3).",
    ),
    Choice(
        name="engine",
        choices=ENGINES,
        help="Train trials one at a time, or many at once, stacked; auto: the population engine "
        "on a GPU, on a CPU the faster one per worker as measured (see the run's note).",
    ),
    WholeNumber(name="population", low=1, help="Trials trained at once by the population engine."),
    WholeNumber(
        name="workers",
        low=1,
        words=("auto",),
        help="Processes on this machine working on the study together; auto: one per core on "
        "a CPU (one per GPU), or 1 for a job too small to pay for another process's start-up.",
    ),
    Form(
        name="memory",
        parse=_memory,
        types=(str, int),
        forms="a size (e.g. 4GB), a number of bytes, or auto",
        none=True,
        help="Memory the population may use (e.g. 4GB; auto: a quarter of RAM, <= 8GB).",
    ),
    Form(
        name="device",
        parse=check_device,
        forms="auto, cpu, cuda or cuda:N",
        help="auto, cpu or cuda.",
    ),
    Parameter(name="target", help="The target column of a .csv or .parquet file.", none=True),
    Choice(name="task", choices=TASKS, none=True, help="Override the task told from the target."),
    Parameter(
        name="data_dir",
        none=True,
        help="Where local copies of downloadable data live (or DLTUNE_DATA_DIR).",
    ),
    Form(
        name="ray",
        parse=_ray,
        forms="HOST:PORT of the head node, or auto",
        none=True,
        metavar="ADDRESS",
        help="Train on a Ray cluster: HOST:PORT of its head, or auto (extra: dltune[ray]).",
    ),
    Form(
        name="shape",
        parse=_shape,
        types=(str, tuple, list),
        forms="the shape of one example: C,L or C,H,W",
        none=True,
        metavar="C,L|C,H,W",
        help="The shape of one example: C,L (a signal of C channels) or C,H,W (an image), its "
        "product the number of features; reshapes flat rows (.csv, .parquet, a 2-D .npz x) or "
        "any data [default: the data's own: digits 1,8,8, IDX images 1,H,W, a .npz x's axes "
        "past the first; a continued study's own].",
    ),
    Parameter(
        name="model",
        none=True,
        metavar="FILE.py:build|MODULE:build",
        help="Tune your own model: a build(hp) function returning a torch.nn.Module or a "
        "Keras 3 model "
        "(hp.Int, hp.Float, hp.Choice, hp.Boolean, hp.Fixed as in Keras Tuner); SPACE then "
        "gives the training knobs [default: a continued study's own build, with "
        f"{param('trust_source')}].",
    ),
    Form(
        name="choose",
        parse=lambda value: rule_for(value, 0),  # its form; "auto" is resolved on the data
        forms="auto, max or top<k>x<m>",
        metavar="auto|max|topKxM",
        help="How the best trial is chosen before its test: topKxM retrains the top K with M "
        "other seeds and takes the best mean (in a quarter of "
        f"{param('timeout')}/{param('epoch_budget')}); max: the best single run; auto: top3x2 "
        "when the validation split has under 1000 examples, else max.",
    ),
    Parameter(
        name="checkpoints",
        none=True,
        metavar="DIR|s3://BUCKET|gs://BUCKET|off",
        help="Where each unfinished trial's latest checkpoint is kept, so that the same command "
        "resumes it after a crash, kill -9, SIGTERM or Ctrl-C [default: beside the SQLite or "
        "journal file; off for a database server unless given].",
    ),
    Number(
        name="checkpoint_every",
        unit="seconds",
        note="0: after every segment",
        metavar="SECONDS",
        help="Checkpoint a running trial at least this often (besides at every rung).",
    ),
    Form(
        name="cv",
        parse=parse_cv,
        types=(str, int),
        forms="auto, holdout, kfold or a number of folds",
        metavar="|".join(CV_CHOICES) + "|K",
        help=CV_HELP,
    ),
    Switch(
        name="ensemble",
        help="on: the study delivers an ensemble of its best configurations, chosen by greedy "
        "selection on their out-of-fold (or validation) predictions and tested once; off: its "
        "best trial alone (in k-fold its bag, the K fold models).",
    ),
    Switch(
        name="trust_source",
        help="Import and run the Python build(hp) that a continued study (run without "
        f"{param('model')}) names, to rebuild its network (its file's sha256 checked first). "
        "Only for a source you trust: it is code. Without it, such a build is refused; "
        "dltune's own networks never import anything.",
    ),
)

BY_NAME: dict[str, Parameter] = {p.name: p for p in PARAMETERS}


def parameter(name: str) -> Parameter:
    """The entry of the parameter `name` (a KeyError for a name not declared: a bug)."""
    return BY_NAME[name]
