"""A model folder: what train-best writes and `dltune.load` reads.

    model.safetensors    the network's weights (safetensors: tensors only, nothing executable);
                         an ensemble's members' weights all in it, member i's named "members.i."
    config.json          the configuration and the network's shape; an ensemble's members
                         (configuration, weight, trial, fold) under "ensemble"
    preprocessing.json   input scaling, label encoding, target scaling, feature names
    model_card.json      where it came from and how good it is (data, split, metrics, versions)
    model_card.md        the same, for people

Reading runs no code from the folder: JSON and safetensors only, no pickle. A folder of a
user's build(hp) names the Python file that builds its network (config.json's "model_source");
`load` imports it only when the caller says so (`trust_source=True`, `--trust-source`), and then
only the bytes whose sha256 the record holds (usermodel.source). A folder of dltune's own
networks imports nothing, trusted or not.

Format versions: 1, a single network; 2 adds the ensemble. A single network is still written as
version 1, unchanged, so that an older dltune reads it; an ensemble is version 2, which an older
dltune refuses with "upgrade dltune" rather than reading one member as the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import DLTuneError, ModelError, param
from ..nets import NetworkFactory
from ..version import __version__
from .card import card_markdown
from .ensemble_net import EnsembleMember, member_states
from .loaded import TunedModel, user_networks
from .preprocessing import Preprocessing

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
PREPROCESSING = "preprocessing.json"
CARD_JSON = "model_card.json"
CARD_MD = "model_card.md"
MODEL_SOURCE = "model_source"  # in config.json: a user model's build record (usermodel.source)
FORMAT = "dltune-model"
FORMAT_VERSION = 2  # the newest this dltune reads and writes
SINGLE_FORMAT_VERSION = 1  # what a single network is written as (nothing of it changed)
ENSEMBLE = "ensemble"  # in config.json: {"members": [{config, weight, trial, fold}, ...]}

SAFETENSORS_MISSING = (
    "safetensors is not installed; it comes with dltune: pip install safetensors "
    "(or reinstall dltune)"
)


def write_bundle(directory: str | Path, model: TunedModel, card: dict[str, Any]) -> Path:
    """Write `model` and its `card` as the folder `directory`, whole or not at all: the files
    go into a new folder beside it, flushed to disk, which then takes its place (dltune.atomic:
    a crash at any point leaves the previous folder or the new one, never a mix, and nothing
    is written through a link the old folder holds). An existing folder is replaced only when
    it holds nothing but a model's files (the exports of that model go with it)."""
    try:
        from safetensors.torch import save_file
    except ImportError:
        raise ModelError(SAFETENSORS_MISSING) from None
    from ..atomic import write_folder

    path = Path(directory)
    _check_target(path)
    config = _config_record(model)

    def fill(folder: Path) -> None:
        save_file(model.state_dict(), str(folder / WEIGHTS), metadata={"format": FORMAT})
        _write_json(folder / CONFIG, config)
        _write_json(folder / PREPROCESSING, model.preprocessing.to_dict())
        _write_json(folder / CARD_JSON, card)
        (folder / CARD_MD).write_text(card_markdown(card), encoding="utf-8")

    write_folder(path, fill)
    return path


def _check_target(path: Path) -> None:
    """Refuse a `directory` that write_bundle must not replace: a file or a link, a folder
    that does not exist yet, the current folder (or one holding it), or a folder that holds
    anything but a model's files (they would go with it)."""
    from .formats import FILES

    where = param("directory", str(path))
    if path.is_symlink():
        raise ModelError(
            f"{where} is a symbolic link, and dltune does not write through links; name the "
            f"folder itself ({str(path.resolve())!r}) or another"
        )
    if path.exists() and not path.is_dir():
        raise ModelError(f"{where} is a file; name a folder (it is created if needed)")
    if not path.parent.is_dir():
        raise ModelError(
            f"{where}: the folder {str(path.parent)!r} does not exist; create it first"
        )
    if not path.exists():
        return
    if Path.cwd().resolve().is_relative_to(path.resolve()):
        raise ModelError(
            f"{where} is the current folder or holds it; name a folder for the model (it is "
            "created if needed, and replaced whole when written again)"
        )
    ours = {WEIGHTS, CONFIG, PREPROCESSING, CARD_JSON, CARD_MD, *FILES.values()}
    others = sorted(p.name for p in path.iterdir() if p.name not in ours)
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise ModelError(
            f"{where} holds {shown}, besides a model's files; a model folder is replaced whole, "
            "so they would be removed: move them out, or name another folder"
        )


def _config_record(model: TunedModel) -> dict[str, Any]:
    """config.json's content: the format, the configuration, the network's shape; an
    ensemble's members; a user model's build record."""
    prep = model.preprocessing
    config: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION if model.is_ensemble else SINGLE_FORMAT_VERSION,
        "dltune_version": __version__,
        "config": model.config.to_dict(),  # an ensemble: its heaviest trial's
        "n_features": prep.n_features,
        "n_outputs": prep.n_outputs,
    }
    if model.is_ensemble:
        config[ENSEMBLE] = {
            "members": [
                {"config": m.config.to_dict(), "weight": m.weight, "trial": m.trial, "fold": m.fold}
                for m in model.members
            ]
        }
    if model.source is not None:  # a user model: where its build(hp) came from
        config[MODEL_SOURCE] = model.source
    return config


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """One JSON file in the new folder that write_bundle fills (a name nothing else holds)."""
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def read_bundle(directory: str | Path, *, trust_source: bool = False) -> TunedModel:
    """The model in `directory`, as train-best wrote it; its card is `model.card`.
    `trust_source`: import the build(hp) config.json names, if it names one (see `load`)."""
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise ModelError(SAFETENSORS_MISSING) from None
    path = Path(directory)
    if not path.is_dir():
        raise ModelError(
            f"{str(path)!r} is not a model folder (not a folder at all); write one with "
            f"`dltune train-best -o {path}`"
        )
    for name in (WEIGHTS, CONFIG, PREPROCESSING):
        if not (path / name).is_file():
            raise ModelError(
                f"{path}: {name} is missing, so this is not a complete model folder; write it "
                f"again with `dltune train-best -o {path}`"
            )
    config_data = _read_json(path / CONFIG)
    if config_data.get("format") != FORMAT:
        raise ModelError(f"{path / CONFIG}: 'format' is not {FORMAT!r}; not a dltune model folder")
    if int(config_data.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelError(
            f"{path / CONFIG}: format_version {config_data.get('format_version')} is newer than "
            f"this dltune ({__version__}) reads ({FORMAT_VERSION}); upgrade dltune"
        )
    try:
        config = Config.from_dict(config_data["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{path / CONFIG}: 'config' cannot be read ({e})") from None
    prep = Preprocessing.from_dict(_read_json(path / PREPROCESSING), str(path / PREPROCESSING))
    try:
        state = load_file(str(path / WEIGHTS))
    except (SafetensorError, OSError) as e:
        raise ModelError(f"{path / WEIGHTS}: cannot be read as safetensors ({e})") from None
    source = config_data.get(MODEL_SOURCE)
    try:
        where = f"{path / CONFIG} ({MODEL_SOURCE!r})"
        network = user_networks(source, prep, trust=trust_source, where=where)
    except DLTuneError as e:  # not allowed; cannot be imported; its file changed
        what = "this model's network is a user's build(hp)"
        raise ModelError(f"{path}: {what}; {e.template}") from None
    try:
        if ENSEMBLE in config_data:
            model = _ensemble(path, config_data[ENSEMBLE], prep, state, network, source)
        else:
            model = TunedModel(config, prep, state, network, source)
    except RuntimeError as e:  # load_state_dict: names or shapes do not fit the configuration
        first = str(e).strip().splitlines()[0]
        raise ModelError(
            f"{path / WEIGHTS}: the weights do not fit {CONFIG} and {PREPROCESSING} ({first})"
        ) from None
    if (path / CARD_JSON).is_file():
        model.card = _read_json(path / CARD_JSON)
    return model


def _ensemble(
    path: Path,
    listed: Any,
    prep: Preprocessing,
    state: dict[str, Any],
    network: NetworkFactory | None,
    source: dict[str, Any] | None,
) -> TunedModel:
    """The ensemble that config.json's "ensemble" lists, its members' tensors from `state`."""
    where = f"{path / CONFIG}: '{ENSEMBLE}'"
    entries = listed.get("members") if isinstance(listed, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ModelError(f"{where} must hold a list of 'members'; write the folder again")
    states = member_states(state, len(entries), str(path / WEIGHTS))
    members = []
    for i, (entry, member_state) in enumerate(zip(entries, states, strict=True)):
        try:
            members.append(
                EnsembleMember(
                    config=Config.from_dict(entry["config"]),
                    state=member_state,
                    weight=float(entry["weight"]),
                    trial=None if entry.get("trial") is None else int(entry["trial"]),
                    fold=None if entry.get("fold") is None else int(entry["fold"]),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ModelError(f"{where}: member {i} cannot be read ({e!r})") from None
    try:
        return TunedModel.ensemble(members, prep, network, source)
    except ModelError as e:
        raise ModelError(f"{where}: {e.template}") from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: cannot be read as JSON ({e})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def load(directory: str | Path, *, trust_source: bool = False) -> TunedModel:
    """A model folder written by `dltune train-best` (or `dltune.train_best(...).save(DIR)`),
    ready to `predict`, `predict_proba`, or to use as a torch module (`.module`, `.network`).

    A folder of dltune's own networks is JSON and safetensors: nothing in it runs. A folder of
    a user's build(hp) names the Python file that builds the network; that file is someone's
    code, so it is imported only with `trust_source=True` (as Hugging Face's
    `trust_remote_code`): then its sha256 must match the folder's record before it runs.
    Without it, a ModelError names the file and how to allow it."""
    return read_bundle(directory, trust_source=trust_source)
