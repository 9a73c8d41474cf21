"""``python -m fnhost_worker [SCRIPT] [launch arguments]``: the same as the
``fnhost-python-worker`` command."""

from ._cli import main

main()
