"""``moebench compare``: cost and speed per chip against a baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from moebench.cli.app import app
from moebench.cli.common import (
    ChooseOpt,
    EveryChipStackOpt,
    FabricOpt,
    FormatOpt,
    OutputOpt,
    PlacementOpt,
    SearchOpt,
    SettingsOpt,
    StrategyOpt,
    SyncEveryOpt,
    cli_errors,
    show,
)


@app.command()
@cli_errors
def compare(
    scenario: Annotated[str, typer.Option(
        help="Scenario name or YAML path.")] = "ling-plus-1t",
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Model(s), comma-separated: one table answers MoE vs dense.")]
    = None,
    chips: Annotated[str | None, typer.Option(
        "--chips", "--chip", "-c", help="Chips, comma-separated.")] = None,
    tokens: Annotated[str | None, typer.Option(help="Tokens to train: 1T, 500B, 1.5e12.")]
    = None,
    num_chips: Annotated[int | None, typer.Option(
        "--num-chips", "-n", help="Chips of each type.")] = None,
    deadline_days: Annotated[float | None, typer.Option(
        help="Instead of --num-chips: the fewest chips of each type that finish in time.")]
    = None,
    seq_len: Annotated[int | None, typer.Option(help="Tokens per sequence.")] = None,
    global_batch: Annotated[int | None, typer.Option(help="Sequences per step.")] = None,
    precision: Annotated[str | None, typer.Option(help="bf16, fp8 or auto.")] = None,
    baseline: Annotated[str | None, typer.Option(help="Chip the cost ratio divides by.")]
    = None,
    currency: Annotated[str | None, typer.Option(help="CNY or USD.")] = None,
    fx_rate: Annotated[float | None, typer.Option(help="CNY per USD.")] = None,
    price_basis: Annotated[str | None, typer.Option(
        help="One price basis for every chip: ling (the Ling report's fair cost, devices A-E), "
             "rental or ownership (default: the scenario's); --market sets market.")] = None,
    market: Annotated[str | None, typer.Option(
        help="One buyer's market, cn or us: its rental prices (with sources), its currency, "
             "and the chips not sold there marked (and not sized by --deadline-days).")] = None,
    include_unavailable: Annotated[bool, typer.Option(
        "--include-unavailable", help="With --market and --deadline-days: size chips not "
                                      "sold in the market too.")] = False,
    uncertainty: Annotated[int, typer.Option(
        help="Monte Carlo samples over estimated figures' ranges (0 = off).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed for --uncertainty.")] = 0,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a hardware figure: [CHIP:]section.field=VALUE.")] = None,
    fail_if: Annotated[list[str] | None, typer.Option(
        "--fail-if", help="CI guard, e.g. 't-head-ppu.cost_ratio > 1.0'; exit 1 if it trips.")]
    = None,
    plot: Annotated[Path | None, typer.Option(
        help="Write cost and days per chip as bars: FILE.png or FILE.svg.")] = None,
    mix: Annotated[list[str] | None, typer.Option(
        "--mix", help="Add a mixed cluster row, CHIP:COUNT+CHIP:COUNT (repeatable), e.g. "
                      "h800:512+ascend-910b:1024.")] = None,
    fabric: FabricOpt = None, placement: PlacementOpt = None, sync_every: SyncEveryOpt = None,
    strategy: StrategyOpt = None, choose: ChooseOpt = None,
    stack: EveryChipStackOpt = None, search: SearchOpt = None, settings: SettingsOpt = None,
    fmt: FormatOpt = None, output: OutputOpt = None,
) -> None:
    """Cost and speed of training on each chip, each on its own best plan.

    With no options, runs the embedded Ling-Plus scenario (1T tokens, H800 against Ascend 910B,
    MI300X, T-Head PPU, H20 and A100). Exit codes: 0 ok, 1 a --fail-if guard tripped, 2 bad
    input.

    Every chip is priced on one basis (--price-basis); a chip entry CHIP:STACK shows a chip
    under another software stack (e.g. ascend-910b:hardware-limit). --mix adds a mixed
    cluster: its chosen strategy in the row, every strategy, each type alone and the types
    apart in the JSON and the notes.

    Example: moebench compare --chips h800,ascend-910b --tokens 500B --fail-if
    "ascend-910b.cost_ratio > 1.0"; moebench compare --mix h800:512+ascend-910b:1024
    """
    from moebench.api import compare as run_compare
    from moebench.commands.compare.guards import check_guards
    from moebench.commands.compare.report import comparison_report

    result = run_compare(
        scenario=scenario, model=model, chips=chips, baseline=baseline, tokens=tokens,
        num_chips=num_chips, seq_len=seq_len, global_batch=global_batch, precision=precision,
        price_basis=price_basis, market=market, include_unavailable=include_unavailable,
        currency=currency, fx_rate=fx_rate,
        deadline_days=deadline_days, uncertainty=uncertainty, seed=seed, set=set_, mix=mix,
        fabric=fabric, placement=placement, sync_every=sync_every, strategy=strategy,
        choose=choose, stack=stack, search=search, settings=settings)
    sc = result.scenario
    tripped = check_guards(result, fail_if or [])
    report = comparison_report(result, uncertainty > 0)
    if plot is not None:
        from moebench.commands.shared.plots import plot_comparison

        plot_comparison(report.payload["rows"], sc.baseline, sc.pricing.currency,
                        report.title, plot)
    show(report, fmt, output)
    for line in tripped:
        typer.echo(f"guard tripped: {line}", err=True)
    if tripped:
        raise typer.Exit(1)

