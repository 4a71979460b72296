"""`python -m dltune.cli ...`, as the `dltune` command."""

from . import main

main()
