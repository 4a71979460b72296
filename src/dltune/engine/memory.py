"""How much memory a population may use, and what one member costs.

The population engine admits a member only while the members' estimated footprint stays under
the budget (--memory), so a large population never exhausts the machine.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from ..config import Config
from ..errors import DLTuneError, param

if TYPE_CHECKING:
    import torch

GIB = 2**30
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "m": 2**20, "mb": 2**20, "g": GIB, "gb": GIB}
# Per parameter: the weight, its gradient, two moment buffers and two temporaries of the update.
_FLOATS_PER_PARAMETER = 6
# Per activation: pre- and post-activation, the mask products, dropout scales and gradients.
_FLOATS_PER_ACTIVATION = 8


def parse_memory(text: str) -> int:
    """'2GB', '512m', '1.5 GiB' -> bytes; a DLTuneError naming the value otherwise."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmg]?)(i?b?)\s*", text.lower())
    if not match:
        raise DLTuneError(f"{param('memory', text)} is not a size; write e.g. 4GB, 512MB or auto")
    number, unit, _ = match.groups()
    return int(float(number) * _UNITS[unit])


def total_ram() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def resolve_memory(memory: int | str | None, device: torch.device) -> int:
    """The budget in bytes: given, or a quarter of RAM (at most 8 GiB) / half the free GPU."""
    if isinstance(memory, int):
        return memory
    if memory is not None and memory.strip().lower() != "auto":
        return parse_memory(memory)
    if device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    return min(total_ram() // 4, 8 * GIB)


def member_bytes(config: Config, n_features: int, n_outputs: int, widths: tuple[int, ...]) -> int:
    """An estimate of one member's footprint in a bucket of the given (padded) widths."""
    dims = (n_features, *widths, n_outputs)
    parameters = sum(dims[i] * dims[i + 1] + dims[i + 1] for i in range(len(dims) - 1))
    activations = config.batch_size * (n_features + _FLOATS_PER_ACTIVATION * sum(dims[1:]))
    return 4 * (_FLOATS_PER_PARAMETER * parameters + activations)
