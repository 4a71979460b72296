"""Choosing the torch device: auto, cpu or cuda."""

from __future__ import annotations

from .errors import DLTuneError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> str:
    """'cuda' when asked and present ('auto' prefers it), else 'cpu'; a clear error otherwise."""
    import torch

    name = name.lower()
    if name not in DEVICES and not name.startswith("cuda:"):
        raise DLTuneError(f"--device {name!r} is not known; choose from {', '.join(DEVICES)}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DLTuneError(
            f"--device {name!r} was asked for but torch sees no CUDA device "
            f"(torch {torch.__version__}); use --device cpu or install a CUDA build of torch"
        )
    return name
