"""``moebench sweep``: the best plan at every point of a grid."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from moebench.cli.app import app
from moebench.cli.common import (
    EveryChipStackOpt,
    FormatOpt,
    OutputOpt,
    chip_entries,
    cli_errors,
    show,
)
from moebench.errors import InputError


@app.command()
@cli_errors
def sweep(
    vary: Annotated[list[str], typer.Option(
        "--vary", help="FIELD=v1,v2,... (repeatable): num_chips, seq_len, global_batch, tokens, "
                       "precision, expert_imbalance, a plan field (tp, pp, vpp, ep, etp, cp, "
                       "cp_kind, micro_batch, recompute, schedule, sharding, shard_group), "
                       "or a hardware section.field.")],
    scenario: Annotated[str, typer.Option(help="Scenario for everything not varied.")]
    = "ling-plus-1t",
    model: Annotated[str | None, typer.Option("--model", "-m", help="Models, comma-separated.")]
    = None,
    chips: Annotated[str | None, typer.Option(help="Chips, comma-separated.")] = None,
    price_basis: Annotated[str | None, typer.Option(
        "--price-basis", help="ling, rental or ownership (default: the scenario's).")] = None,
    workers: Annotated[int, typer.Option(help="Local worker processes.")] = 1,
    dask_scheduler: Annotated[str | None, typer.Option(
        help="Run the points on an existing Dask cluster (moebench\\[dask]).")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a plot: FILE.png or FILE.svg.")]
    = None,
    plot_metric: Annotated[str, typer.Option(
        help="cost_per_1e12_tokens, mfu, tokens_per_s_per_chip or days.")]
    = "cost_per_1e12_tokens",
    stack: EveryChipStackOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
) -> None:
    """Best plan at every point of a grid, over chips and models.

    Example: moebench sweep --chips h800,ascend-910b --vary num_chips=256,512,1024,2048
    --vary seq_len=4096,8192 --output sweep.parquet --plot sweep.png
    """
    from moebench.commands.options import apply_options
    from moebench.commands.pricing import BASES
    from moebench.commands.report import Report, records
    from moebench.commands.sweep import parse_vary, run_sweep, typed_grid
    from moebench.inputs.scenario import load_scenario

    if price_basis is not None and price_basis not in BASES:
        raise InputError("--price-basis", None,
                         f"expected one of {', '.join(BASES)}, got {price_basis!r}")
    if workers < 1 or workers > 256:
        raise InputError("--workers", None, f"must be 1..256, got {workers}")
    if plot_metric not in ("cost_per_1e12_tokens", "mfu", "tokens_per_s_per_chip", "days"):
        raise InputError("--plot-metric", None, f"unknown metric {plot_metric!r}")
    grid = parse_vary(vary)
    # The baseline is the first entry given (with --stack, the first entry on that stack).
    chip_list, _ = chip_entries(chips, None, stack, scenario)
    sc = apply_options(
        load_scenario(scenario), chips=chip_list,
        baseline=chip_list[0] if chip_list else None,
        models=None if model is None else [m.strip() for m in model.split(",") if m.strip()],
        basis=price_basis)
    total = len(sc.models) * len(sc.chips)
    for values in grid.values():
        total *= len(values)
    progress_cb = None
    progress = None
    if total >= 20 and sys.stderr.isatty():
        from rich.progress import Progress

        progress = Progress(console=Console(stderr=True), transient=True)
        task = progress.add_task("sweep", total=total)
        progress.start()

        def progress_cb(done: int, total: int) -> None:
            progress.update(task, completed=done)

    try:
        df = run_sweep(sc, grid, workers=workers, dask_address=dask_scheduler,
                       progress=progress_cb)
    finally:
        if progress is not None:
            progress.stop()
    df.attrs["varied"] = list(grid)
    title = (f"{sc.name}: {', '.join(sc.models)}; varying {', '.join(grid)}; "
             f"{sc.pricing.basis} prices in {sc.pricing.currency}")
    if plot is not None:
        from moebench.commands.plots import plot_sweep

        plot_sweep(df, next(iter(grid)), plot_metric, title, plot)
    report = Report(f"Sweep: {title}", df, {"scenario": sc.name, "varied": typed_grid(grid),
                                           "rows": records(df)},
                    [f"{len(df)} points; best plan per point; costs in {sc.pricing.currency}"],
                    hidden=("currency",) + (("model",) if df["model"].nunique() == 1 else ()),
                    labels={"num_chips": "chips", "cost_per_1e12_tokens": "cost/1e12 tok",
                            "tokens_per_s_per_chip": "tok/s/chip", "step_time_s": "step s",
                            "memory_gib_per_chip": "GiB", "chip_hours": "chip-hours"},
                    optional=("fits_memory", "goodput", "memory_gib_per_chip", "step_time_s",
                              "chip_hours", "tokens_per_s_per_chip", "status", "cost", "mfu"))
    show(report, fmt, output)


