"""The command line. ``app`` is the console entry point (``moebench``)."""

from moebench.cli import compare, estimate, probe, profiles, sweep, validate  # noqa: F401 - registers
from moebench.cli.app import app

__all__ = ["app"]
