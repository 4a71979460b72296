"""How a result shows itself in a notebook, drawn by a layer above the one that made it.

A TuneResult (dltune.study) and a SweepResult (dltune.sweep) display themselves in Jupyter
(`_repr_html_`) and show their full report (`report()`), yet drawing them takes the analysis
and the report, layers above theirs that they must not import. So they ask here for a view by
name, and the front door (dltune/__init__.py, which may import anything) names the module that
provides the views, dltune.notebook, imported on the first display: no layer below names one
above it.
"""

from __future__ import annotations

import importlib
from typing import Any

_provider: str | None = None  # the module that provides the views, once named


def provide(module: str) -> None:
    """Name the module whose functions draw the views (the front door does, at import)."""
    global _provider
    _provider = module


def view(name: str) -> Any:
    """The function `name` of the module that provides the views, imported on first use."""
    if _provider is None:
        raise RuntimeError("no module provides dltune's views: `import dltune` names it")
    return getattr(importlib.import_module(_provider), name)
