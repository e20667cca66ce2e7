"""``moebench probe``: measure the local accelerator into a hardware profile, or check one."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from moebench.cli.app import app
from moebench.cli.common import FormatOpt, cli_errors, show
from moebench.commands.shared.report import Report
from moebench.errors import InputError


class BackendChoice(StrEnum):
    auto = "auto"
    torch = "torch"
    numpy = "numpy"


@app.command()
@cli_errors
def probe(
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", dir_okay=False,
        help="Hardware profile YAML to write; its stack profile goes beside it as "
             "NAME.stack.yaml. Both are written whole or not at all.")] = None,
    base: Annotated[str | None, typer.Option(
        "--base", help="Catalog profile (or YAML) for what cannot be measured (price, power, "
                       "scale-out, reliability, datasheet peaks) and to compare with "
                       "(default: matched to the device name, else h800).")] = None,
    backend: Annotated[BackendChoice, typer.Option(
        "--backend", case_sensitive=False,
        help="torch (CUDA, ROCm, Ascend through torch_npu; pip install 'moebench\\[probe]'), "
             "numpy (the host CPU) or auto: torch when it sees an accelerator.")
    ] = BackendChoice.auto,
    budget_s: Annotated[float, typer.Option(
        "--budget-s", help="Wall-clock budget in seconds; repetitions adapt to it.")] = 600.0,
    devices: Annotated[int, typer.Option(
        "--devices", help="Devices to use; 2 or more also measure collectives "
                          "(torch.distributed, one process per device).")] = 1,
    check: Annotated[Path | None, typer.Option(
        "--check", dir_okay=False,
        help="Compare a measured profile with the catalog's (--base, else the one it names) "
             "instead of probing.")] = None,
    fmt: FormatOpt = None,
) -> None:
    """Run microbenchmarks on the local accelerator and write a measured hardware profile:
    GEMM rates by shape (BF16, FP8), grouped GEMM, memory copy, host cost per op, attention
    and, with --devices, collectives; the step model's curves fitted to them, printed against
    the --base profile.

    Example: moebench probe --backend torch --base h200 --budget-s 150 --output h200-mine.yaml

    Example: moebench probe --check h200-mine.yaml
    """
    if check is not None:
        if output is not None:
            raise InputError("--output", None, "--check reads a profile and writes none; give "
                                               "either --check or --output")
        from moebench.probe.check import check_profile

        show(check_profile(check, base), fmt)
        return
    if output is None:
        raise InputError("--output", None, "give the hardware profile to write "
                                           "(--output my-chip.yaml), or --check FILE")
    from moebench.probe.command import check_output, plan_for, start_backend
    from moebench.probe.command import probe as run
    from moebench.probe.runner import step_count

    check_output(output)  # before the device starts: a bad path costs nothing
    chosen = start_backend(backend.value, budget_s, devices)  # type: ignore[arg-type]
    steps = step_count(chosen, plan_for(chosen), devices)
    show(_with_progress(steps, lambda tell: run(output, chosen, base, budget_s, devices, tell)),
         fmt)


def _with_progress(steps: int, job: Callable[[Callable[[str], None]], Report]) -> Report:
    """Run ``job(tell)`` with a progress bar on stderr (on a terminal only: logs stay clean)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(TextColumn("probe"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("starting", total=steps)

        def tell(label: str) -> None:
            bar.update(task, advance=1, description=label)

        return job(tell)
