"""``moebench sweep``: the best plan at every point of a grid."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from moebench.cli.app import app
from moebench.cli.common import (
    EveryChipStackOpt,
    FormatOpt,
    OutputOpt,
    SearchOpt,
    SettingsOpt,
    cli_errors,
    show,
)
from moebench.errors import InputError

if TYPE_CHECKING:
    import pandas as pd


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
    chips: Annotated[str | None, typer.Option(
        "--chips", "--chip", "-c", help="Chips, comma-separated.")] = None,
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
    search: SearchOpt = None,
    settings: SettingsOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
) -> None:
    """Best plan at every point of a grid, over chips and models.

    Example: moebench sweep --chips h800,ascend-910b --vary num_chips=256,512,1024,2048
    --vary seq_len=4096,8192 --output sweep.parquet --plot sweep.png
    """
    from moebench.api import sweep as run_sweep
    from moebench.commands.shared.report import Report, records

    if plot_metric not in ("cost_per_1e12_tokens", "mfu", "tokens_per_s_per_chip", "days"):
        raise InputError("--plot-metric", None, f"unknown metric {plot_metric!r}")
    progress_cb = None
    progress = None
    if sys.stderr.isatty():
        from rich.progress import Progress

        progress = Progress(console=Console(stderr=True), transient=True)
        task = progress.add_task("sweep", total=None)
        progress.start()

        def progress_cb(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

    try:
        result = run_sweep(vary, scenario=scenario, model=model, chips=chips,
                           price_basis=price_basis, workers=workers,
                           dask_scheduler=dask_scheduler, stack=stack, search=search,
                           settings=settings, progress=progress_cb)
    finally:
        if progress is not None:
            progress.stop()
    df, title = result.frame, result.title
    if plot is not None:
        from moebench.commands.shared.plots import plot_sweep

        plot_sweep(df, next(iter(result.varied)), plot_metric, title, plot)
    report = Report(f"Sweep: {title}", df, {"scenario": result.scenario,
                                           "varied": result.varied, "rows": records(df)},
                    [f"{len(df)} points; best plan per point; costs in {result.currency}",
                     *_tight_line(df)],
                    hidden=("currency",) + (("model",) if df["model"].nunique() == 1 else ()),
                    labels={"num_chips": "chips", "cost_per_1e12_tokens": "cost/1e12 tok",
                            "tokens_per_s_per_chip": "tok/s/chip", "step_time_s": "step s",
                            "memory_gib_per_chip": "GiB", "chip_hours": "chip-hours"},
                    optional=("fits_memory", "keeps_headroom", "headroom_slower_by",
                              "tight_faster_by", "goodput",
                              "memory_gib_per_chip",
                              "step_time_s",
                              "chip_hours", "tokens_per_s_per_chip", "status", "cost", "mfu"))
    show(report, fmt, output)


def _tight_line(df: pd.DataFrame) -> list[str]:
    """The footer lines counting the points whose plan is tight (fits only at the caching
    allocator's typical hold, not at the top of its measured range), and those whose plan
    keeps the headroom though a tight one is faster (by more than the tie band)."""
    from moebench.engine.search import TIE_BAND

    tight = int((df["keeps_headroom"] == False).sum())  # noqa: E712 - None where nothing fits
    costs = df["headroom_slower_by"].dropna()
    cost = (f"; a plan keeping it is {_span(costs)}% slower (headroom_slower_by)"
            if len(costs) else "")
    lines = [f"{tight} of them tight: the plan fits at the caching allocator's typical hold, "
             f"not at the top of its measured range (keeps_headroom){cost}"] if tight else []
    gains = df["tight_faster_by"].dropna()
    gains = gains[gains > TIE_BAND]
    if len(gains):
        lines.append(f"{len(gains)} of them keep the headroom at a cost: a plan that fits only "
                     f"at the typical hold is {_span(gains)}% faster (tight_faster_by)")
    return lines


def _span(values: pd.Series) -> str:
    """Percentages as one figure, or their range."""
    lo, hi = 100 * values.min(), 100 * values.max()
    return f"{lo:.1f}" if f"{lo:.1f}" == f"{hi:.1f}" else f"{lo:.1f}-{hi:.1f}"
