"""The moebench command line: thin commands that parse, load, make one library call, render.

Each command group lives in its own module, which registers its commands on the apps here.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from moebench import __version__

# Click's usage error, whichever click typer bundles (found through a public subclass).
UsageError: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class OneLineErrors(TyperGroup):
    """Usage errors (a bad option value, an unknown option) on one line, exit code 2, like
    every other moebench error; help and normal exits as usual."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        standalone_mode = kwargs.pop("standalone_mode", True)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[misc]
        except UsageError as exc:
            click_exc: Any = exc
            if exc.__class__.__name__ == "NoArgsIsHelpError":
                click_exc.show()
                code = click_exc.exit_code
            else:
                ctx = click_exc.ctx
                where = f"{ctx.command_path}: " if ctx is not None else ""
                message = " ".join(click_exc.format_message().split())
                typer.echo(f"error: {where}{message}", err=True)
                code = 2
            if standalone_mode:
                sys.exit(code)
            raise
        except typer.Abort:
            if standalone_mode:
                typer.echo("error: aborted", err=True)
                sys.exit(1)
            raise
        if standalone_mode:
            sys.exit(rv if isinstance(rv, int) else 0)
        return rv


app = typer.Typer(
    help="What does it cost, and how long does it take, to train this MoE model on these chips?",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    cls=OneLineErrors,
)
profiles_app = typer.Typer(help="Hardware profiles: list, show and check them. "
                                "Example: moebench profiles show h800",
                           no_args_is_help=True)
models_app = typer.Typer(help="Model profiles: list them and show their counts. "
                              "Example: moebench models show deepseek-v3",
                         no_args_is_help=True)
stacks_app = typer.Typer(help="Software stacks: list them and show every figure with its kind and "
                              "source. Example: moebench stacks show megatron-core-nvidia",
                         no_args_is_help=True)
app.add_typer(profiles_app, name="profiles")
app.add_typer(models_app, name="models")
app.add_typer(stacks_app, name="stacks")


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
    from moebench.cli.alloc import keep_freed_memory

    keep_freed_memory()
