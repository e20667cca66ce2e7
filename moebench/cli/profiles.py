"""``moebench profiles``, ``models`` and ``stacks``: inspect and check profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from moebench.cli.app import models_app, profiles_app, stacks_app
from moebench.cli.common import FormatOpt, OutputOpt, SeqLenOpt, cli_errors, show
from moebench.errors import InputError


@profiles_app.command("list")
@cli_errors
def profiles_list(fmt: FormatOpt = None, output: OutputOpt = None) -> None:
    """List the shipped hardware profiles.

    Example: moebench profiles list --format csv
    """
    from moebench.commands.inspect.profiles import hardware_list

    show(hardware_list(), fmt, output)


@profiles_app.command("show")
@cli_errors
def profiles_show(
    name: Annotated[str, typer.Argument(help="Catalog name (h800) or hardware YAML path.")],
    fmt: FormatOpt = None, output: OutputOpt = None,
) -> None:
    """Show every figure of one hardware profile with its kind and source.

    Example: moebench profiles show ascend-910b
    """
    from moebench.commands.inspect.profiles import hardware_show

    show(hardware_show(name), fmt, output)


@profiles_app.command("check")
@cli_errors
def profiles_check(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Profile files (hardware, model or scenario YAML, or config.json); "
             "all shipped profiles when none given.")] = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Fail (exit 2) on warnings too, for CI.")] = False,
) -> None:
    """Validate profile files: exit 0 when all are valid, 2 otherwise (one line per problem).
    Warns on figures outside their plausible range (a unit slip) and on a Ling price a copied
    profile would inherit.

    Example: moebench profiles check my-chip.yaml --strict
    """
    from moebench.commands.inspect.profiles import check_files, shipped_profile_files

    files = list(paths) if paths else shipped_profile_files()
    problems, warnings = check_files(files)
    for line in problems:
        typer.echo(f"error: {line}", err=True)
    for line in warnings:
        typer.echo(f"warning: {line}", err=True)
    if problems or (strict and warnings):
        raise typer.Exit(2)
    note = f", {len(warnings)} warning(s)" if warnings else ""
    print(f"ok: {len(files)} profile file(s) valid{note}")



@models_app.command("list")
@cli_errors
def models_list(fmt: FormatOpt = None, output: OutputOpt = None) -> None:
    """List the shipped model profiles with their parameter counts.

    Example: moebench models list
    """
    from moebench.commands.inspect.profiles import models_list as build
    from moebench.inputs.catalog import catalog_names
    from moebench.inputs.model import load_model

    show(build([load_model(n) for n in catalog_names("models")]), fmt, output)




@models_app.command("show")
@cli_errors
def models_show(
    model: Annotated[str, typer.Argument(
        help="Catalog name, model YAML path, or Hugging Face config.json path.")],
    seq_len: SeqLenOpt = 4096,
    fmt: FormatOpt = None, output: OutputOpt = None,
) -> None:
    """Parameter counts and forward FLOPs per token by component.

    Example: moebench models show deepseek-v3 --seq-len 4096 --format json
    """
    from moebench.commands.inspect.profiles import model_show
    from moebench.inputs.model import load_model

    if seq_len <= 0:
        raise InputError("--seq-len", None, f"must be a positive whole number, got {seq_len}")
    show(model_show(load_model(model), seq_len), fmt, output)



@stacks_app.command("list")
@cli_errors
def stacks_list(fmt: FormatOpt = None, output: OutputOpt = None) -> None:
    """List the shipped software stacks: vendor, the chips they are the default of, what was
    fitted and its leave-one-out error.

    Example: moebench stacks list
    """
    from moebench.commands.inspect.stacks import stacks_list as build

    show(build(), fmt, output)


@stacks_app.command("show")
@cli_errors
def stacks_show(
    name: Annotated[str, typer.Argument(help="Catalog name (primus-amd) or stack YAML path.")],
    fmt: FormatOpt = None, output: OutputOpt = None,
) -> None:
    """Show every figure and setting of one software stack with its kind and source.

    Example: moebench stacks show mindspeed-llm@1.0.rc3
    """
    from moebench.commands.inspect.stacks import stack_show

    show(stack_show(name), fmt, output)
