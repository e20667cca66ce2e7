"""``moebench validate``: predictions against published measured runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from moebench.cli.app import app
from moebench.cli.common import FormatOpt, OutputOpt, cli_errors, show
from moebench.commands.report import OutputFormat


@app.command()
@cli_errors
def validate(
    data: Annotated[Path | None, typer.Option(
        help="Measured-runs CSV (default: the shipped profiles/validation file).")] = None,
    fmt: FormatOpt = OutputFormat.table, output: OutputOpt = None,
) -> None:
    """Compare predictions with published measured training runs and report the error.

    Example: moebench validate --format markdown
    """
    from moebench.commands.validation import compare_runs, load_runs, validation_report

    show(validation_report(compare_runs(load_runs(data))), fmt, output)

