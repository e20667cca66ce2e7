"""The moebench command line: thin commands that parse, load, make one library call, render.

Each command group lives in its own module, which registers its commands on the apps here.
"""

from __future__ import annotations

from typing import Annotated

import typer

from moebench import __version__

app = typer.Typer(
    help="What does it cost, and how long does it take, to train this MoE model on these chips?",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
profiles_app = typer.Typer(help="Hardware profiles: list, show and check them. "
                                "Example: moebench profiles show h800",
                           no_args_is_help=True)
models_app = typer.Typer(help="Model profiles: list them and show their counts. "
                              "Example: moebench models show deepseek-v3",
                         no_args_is_help=True)
app.add_typer(profiles_app, name="profiles")
app.add_typer(models_app, name="models")


def _version(value: bool) -> None:
    if value:
        print(f"moebench {__version__}")
        raise typer.Exit(0)


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """moebench: analytic cost and speed of Mixture-of-Experts training, chip by chip.

    Example: moebench compare
    """
