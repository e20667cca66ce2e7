"""``python -m moebench``: the same as the ``moebench`` command."""

from moebench.cli import app

app()
