"""dltune's version, in a module of its own so that any module may name it without importing
the package's front door (which lazily offers everything)."""

__version__ = "0.1.0"  # as pyproject.toml's version
