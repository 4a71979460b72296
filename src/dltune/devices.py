"""Choosing the torch device: auto, cpu or cuda (cuda:N for one of several)."""

from __future__ import annotations

import re

from .errors import DLTuneError, param

DEVICES = ("auto", "cpu", "cuda")
DEFAULT_DEVICE = "cpu"  # a study on a GPU is asked for (auto prefers one)


def check_device(name: str) -> str:
    """`name`, lower-cased, if it names a device (without asking torch); an error otherwise."""
    lowered = name.lower()
    if lowered not in DEVICES and not re.fullmatch(r"cuda:\d+", lowered):
        raise DLTuneError(f"{param('device', name)} is not known; choose from {', '.join(DEVICES)}")
    return lowered


def resolve_device(name: str) -> str:
    """'cuda' when asked and present ('auto' prefers it), else 'cpu'; a clear error otherwise."""
    import torch

    name = check_device(name)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DLTuneError(
            f"{param('device', name)} was asked for but torch sees no CUDA device "
            f"(torch {torch.__version__}); use {param('device', shown='cpu')} or install a CUDA "
            "build of torch"
        )
    return name
