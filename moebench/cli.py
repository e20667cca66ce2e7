"""The moebench command line: thin commands that parse, load, make one library call, render."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from moebench import __version__
from moebench.commands.report import OutputFormat, Report, emit
from moebench.errors import InputError

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

F = TypeVar("F", bound=Callable[..., Any])
# A terminal sets its own width; piped output gets room for the widest table.
out = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)

FormatOpt = Annotated[OutputFormat, typer.Option(
    "--format", "-f", help="Output: table, json, csv or markdown.", case_sensitive=False)]
OutputOpt = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Write to this file (whole or not at all) instead of stdout.",
    dir_okay=False)]


def cli_errors(func: F) -> F:
    """Turn library errors into one line on stderr and exit code 2; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            typer.echo(f"error: {exc.one_line()}", err=True)
            raise typer.Exit(2) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence at the edge
            if os.environ.get("MOEBENCH_DEBUG"):
                raise
            typer.echo(f"error: internal error, please report: {type(exc).__name__}: {exc}",
                       err=True)
            raise typer.Exit(3) from None

    return wrapper  # type: ignore[return-value]


def show(report: Report, fmt: OutputFormat, output: Path | None = None) -> None:
    emit(report, fmt, output, out)


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


# --- profiles -------------------------------------------------------------------------------


@profiles_app.command("list")
@cli_errors
def profiles_list(fmt: FormatOpt = OutputFormat.table, output: OutputOpt = None) -> None:
    """List the shipped hardware profiles.

    Example: moebench profiles list --format csv
    """
    from moebench.commands.inspect_profiles import hardware_list

    show(hardware_list(), fmt, output)


@profiles_app.command("show")
@cli_errors
def profiles_show(
    name: Annotated[str, typer.Argument(help="Catalog name (h800) or hardware YAML path.")],
    fmt: FormatOpt = OutputFormat.table, output: OutputOpt = None,
) -> None:
    """Show every figure of one hardware profile with its kind and source.

    Example: moebench profiles show ascend-910b
    """
    from moebench.commands.inspect_profiles import hardware_show

    show(hardware_show(name), fmt, output)


@profiles_app.command("check")
@cli_errors
def profiles_check(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Profile files (hardware, model or scenario YAML, or config.json); "
             "all shipped profiles when none given.")] = None,
) -> None:
    """Validate profile files: exit 0 when all are valid, 2 otherwise (one line per problem).

    Example: moebench profiles check my-chip.yaml
    """
    from moebench.commands.inspect_profiles import check_files, shipped_profile_files

    files = list(paths) if paths else shipped_profile_files()
    problems = check_files(files)
    for line in problems:
        typer.echo(f"error: {line}", err=True)
    if problems:
        raise typer.Exit(2)
    print(f"ok: {len(files)} profile file(s) valid")


# --- models ---------------------------------------------------------------------------------


@models_app.command("list")
@cli_errors
def models_list(fmt: FormatOpt = OutputFormat.table, output: OutputOpt = None) -> None:
    """List the shipped model profiles with their parameter counts.

    Example: moebench models list
    """
    from moebench.commands.inspect_profiles import models_list as build
    from moebench.inputs.catalog import catalog_names
    from moebench.inputs.model import load_model

    show(build([load_model(n) for n in catalog_names("models")]), fmt, output)


SeqLenOpt = Annotated[int, typer.Option("--seq-len", help="Tokens per sequence.")]


@models_app.command("show")
@cli_errors
def models_show(
    model: Annotated[str, typer.Argument(
        help="Catalog name, model YAML path, or Hugging Face config.json path.")],
    seq_len: SeqLenOpt = 4096,
    fmt: FormatOpt = OutputFormat.table, output: OutputOpt = None,
) -> None:
    """Parameter counts and forward FLOPs per token by component.

    Example: moebench models show deepseek-v3 --seq-len 4096 --format json
    """
    from moebench.commands.inspect_profiles import model_show
    from moebench.inputs.model import load_model

    if seq_len <= 0:
        raise InputError("--seq-len", None, f"must be a positive whole number, got {seq_len}")
    show(model_show(load_model(model), seq_len), fmt, output)


# --- estimate -------------------------------------------------------------------------------


ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Catalog name or path.")]
ChipOpt = Annotated[str, typer.Option("--chip", "-c", help="Catalog name or hardware YAML.")]
ChipsOpt = Annotated[int, typer.Option("--num-chips", "-n", help="Chips in the cluster.")]
TpOpt = Annotated[int | None, typer.Option(
    "--tp", help="Tensor parallel size (searched if omitted).")]
PpOpt = Annotated[int | None, typer.Option("--pp", help="Pipeline stages.")]
VppOpt = Annotated[int | None, typer.Option("--vpp", help="Virtual stages per pipeline rank.")]
EpOpt = Annotated[int | None, typer.Option("--ep", help="Expert parallel size.")]
EtpOpt = Annotated[int | None, typer.Option(
    "--etp", help="Tensor parallel size inside experts: 1 or the --tp size.")]
CpOpt = Annotated[int | None, typer.Option("--cp", help="Context parallel size.")]
MbOpt = Annotated[int | None, typer.Option("--micro-batch", help="Sequences per micro-batch.")]
RcOpt = Annotated[str | None, typer.Option("--recompute", help="none, selective or full.")]
SchedOpt = Annotated[str | None, typer.Option("--schedule", help="1f1b or dualpipe.")]
GbOpt = Annotated[int, typer.Option("--global-batch", help="Sequences per optimizer step.")]
PrecOpt = Annotated[str, typer.Option("--precision", help="bf16, fp8 or auto.")]
OverlapOpt = Annotated[bool, typer.Option(
    "--ep-overlap/--no-ep-overlap", help="Overlap MoE all-to-all with compute under 1F1B.")]
ImbOpt = Annotated[float, typer.Option(
    "--expert-imbalance", help="Busiest expert-parallel rank's load over the mean.")]
OomOpt = Annotated[bool, typer.Option("--allow-oom", help="Show a plan even if it does not fit.")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a hardware or run figure: scale_out.bandwidth_gb_per_s=100, "
                  "run.expert_imbalance=1.2.")]


def _inputs(model: str, chip: str, seq_len: int, global_batch: int, precision: str,
            ep_overlap: bool, expert_imbalance: float, set_: list[str] | None,
            **plan: Any) -> tuple:
    """Load model and chip, build the run and the plan request, applying --set overrides
    (hardware and run.*); shared by estimate and explain."""
    from moebench.engine.plan import PlanRequest
    from moebench.inputs.hardware import load_chip, parse_overrides
    from moebench.inputs.model import load_model
    from moebench.inputs.run import RunConfig, resolve_precision, split_run_overrides

    overrides = parse_overrides(set_ or [])
    hw_overrides, run_changes = split_run_overrides(overrides)
    arch, hw = load_model(model), load_chip(chip, hw_overrides)
    settings = {"seq_len": seq_len, "global_batch": global_batch,
                "expert_imbalance": expert_imbalance, **run_changes}
    run = RunConfig(seq_len=int(settings["seq_len"]),
                    global_batch=int(settings["global_batch"]),
                    precision=resolve_precision(precision, hw), ep_overlap=ep_overlap,
                    expert_imbalance=float(settings["expert_imbalance"]))
    return arch, hw, run, PlanRequest(**plan), overrides, hw_overrides


@app.command()
@cli_errors
def estimate(
    model: ModelOpt, chip: ChipOpt, num_chips: ChipsOpt,
    tp: TpOpt = None, pp: PpOpt = None, vpp: VppOpt = None, ep: EpOpt = None,
    etp: EtpOpt = None, cp: CpOpt = None,
    micro_batch: MbOpt = None, recompute: RcOpt = None, schedule: SchedOpt = None,
    seq_len: SeqLenOpt = 4096, global_batch: GbOpt = 4096, precision: PrecOpt = "bf16",
    ep_overlap: OverlapOpt = False, expert_imbalance: ImbOpt = 1.0, allow_oom: OomOpt = False,
    set_: SetOpt = None, fmt: FormatOpt = OutputFormat.table, output: OutputOpt = None,
) -> None:
    """Predict step time, throughput, MFU and memory for one model, chip and cluster.

    Plan flags given are honoured exactly; the rest are searched.

    Example: moebench estimate --model deepseek-v3 --chip h800 --num-chips 2048
    --pp 16 --ep 64 --tp 1 --precision fp8 --global-batch 15360 --schedule dualpipe
    """
    from moebench.commands.estimate import estimate as run_estimate
    from moebench.commands.estimate_report import estimate_report

    arch, hw, run, req, overrides, _ = _inputs(
        model, chip, seq_len, global_batch, precision, ep_overlap, expert_imbalance, set_,
        tp=tp, pp=pp, vpp=vpp, ep=ep, etp=etp, cp=cp, micro_batch=micro_batch,
        recompute=recompute, schedule=schedule)
    est, _ = run_estimate(arch, hw, run, num_chips, req, allow_oom=allow_oom)
    show(estimate_report(est, overrides), fmt, output)


@app.command()
@cli_errors
def explain(
    model: ModelOpt, chip: ChipOpt, num_chips: ChipsOpt,
    tp: TpOpt = None, pp: PpOpt = None, vpp: VppOpt = None, ep: EpOpt = None,
    etp: EtpOpt = None, cp: CpOpt = None,
    micro_batch: MbOpt = None, recompute: RcOpt = None, schedule: SchedOpt = None,
    seq_len: SeqLenOpt = 4096, global_batch: GbOpt = 4096, precision: PrecOpt = "bf16",
    ep_overlap: OverlapOpt = False, expert_imbalance: ImbOpt = 1.0, allow_oom: OomOpt = False,
    set_: SetOpt = None, fmt: FormatOpt = OutputFormat.table, output: OutputOpt = None,
) -> None:
    """Why the chosen plan wins and where its time and memory go, with sensitivities.

    Shows the step time split into compute, exposed communication by kind and link level,
    bubble and overhead; memory against capacity; the runners-up and why they lost; and how
    much a 10% better figure (FLOP/s, HBM, links, capacity) would speed the step up.

    Example: moebench explain --model ling-plus --chip h800 --num-chips 1024
    --set scale_out.bandwidth_gb_per_s=100
    """
    from moebench.commands.estimate import estimate as run_estimate
    from moebench.commands.explain import explain as build
    from moebench.commands.explain_report import explanation_report, rich_view

    arch, hw, run, req, overrides, hw_overrides = _inputs(
        model, chip, seq_len, global_batch, precision, ep_overlap, expert_imbalance, set_,
        tp=tp, pp=pp, vpp=vpp, ep=ep, etp=etp, cp=cp, micro_batch=micro_batch,
        recompute=recompute, schedule=schedule)
    _, result = run_estimate(arch, hw, run, num_chips, req, allow_oom=allow_oom)
    ex = build(result, chip, req, hw_overrides, overrides)
    if fmt is OutputFormat.table and output is None:
        out.print(rich_view(ex))
    else:
        show(explanation_report(ex), fmt, output)


# --- validate -------------------------------------------------------------------------------


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


# --- compare --------------------------------------------------------------------------------


def split_overrides(pairs: list[str]) -> dict[str, dict[str, str]]:
    """``CHIP:FIELD=VALUE`` (one chip) or ``FIELD=VALUE`` (every chip, key '*')."""
    from moebench.inputs.hardware import parse_overrides

    out: dict[str, dict[str, str]] = {}
    for pair in pairs:
        key, _, _ = pair.partition("=")
        chip, sep, _ = key.partition(":")
        target, item = (chip, pair.split(":", 1)[1]) if sep else ("*", pair)
        out.setdefault(target, {}).update(parse_overrides([item]))
    return out


@app.command()
@cli_errors
def compare(
    scenario: Annotated[str, typer.Option(
        help="Scenario name or YAML path.")] = "ling-plus-1t",
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Model(s), comma-separated: one table answers MoE vs dense.")]
    = None,
    chips: Annotated[str | None, typer.Option(help="Chips, comma-separated.")] = None,
    tokens: Annotated[str | None, typer.Option(help="Tokens to train: 1T, 500B, 1.5e12.")]
    = None,
    num_chips: Annotated[int | None, typer.Option(help="Chips of each type.")] = None,
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
    pricing: Annotated[str | None, typer.Option(help="rental or ownership.")] = None,
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
    fmt: FormatOpt = OutputFormat.table, output: OutputOpt = None,
) -> None:
    """Cost and speed of training on each chip, each on its own best plan.

    With no options, runs the embedded Ling-Plus scenario (1T tokens, H800 against Ascend 910B,
    MI300X, T-Head PPU, H20 and A100). Exit codes: 0 ok, 1 a --fail-if guard tripped, 2 bad
    input.

    Example: moebench compare --chips h800,ascend-910b --tokens 500B --fail-if
    "ascend-910b.cost_ratio > 1.0"
    """
    from moebench.commands.compare import run_comparison
    from moebench.commands.compare_report import (
        apply_options,
        check_guards,
        comparison_report,
        parse_tokens,
    )
    from moebench.inputs.scenario import load_scenario

    if uncertainty < 0 or uncertainty > 100_000:
        raise InputError("--uncertainty", None, f"must be 0..100000 samples, got {uncertainty}")
    for name, value in (("--num-chips", num_chips), ("--seq-len", seq_len),
                        ("--global-batch", global_batch)):
        if value is not None and value <= 0:
            raise InputError(name, None, f"must be a positive whole number, got {value}")
    if deadline_days is not None and num_chips is not None:
        raise InputError("--deadline-days", None, "give --num-chips or --deadline-days, not both")
    if currency is not None and currency.upper() not in ("CNY", "USD"):
        raise InputError("--currency", None, f"expected CNY or USD, got {currency!r}")
    if pricing is not None and pricing not in ("rental", "ownership"):
        raise InputError("--pricing", None, f"expected rental or ownership, got {pricing!r}")
    if precision is not None and precision not in ("bf16", "fp8", "auto"):
        raise InputError("--precision", None, f"expected bf16, fp8 or auto, got {precision!r}")
    if fx_rate is not None and not fx_rate > 0:
        raise InputError("--fx-rate", None, f"must be a positive number, got {fx_rate}")
    chip_list = None if chips is None else [c.strip() for c in chips.split(",") if c.strip()]
    if chip_list is not None and not chip_list:
        raise InputError("--chips", None, "give at least one chip")
    from moebench.inputs.run import split_run_overrides

    per_chip = split_overrides(set_ or [])
    everywhere, run_changes = split_run_overrides(per_chip.pop("*", {}))
    if everywhere:
        per_chip["*"] = everywhere
    sc = apply_options(
        load_scenario(scenario),
        models=None if model is None else [m.strip() for m in model.split(",") if m.strip()],
        chips=chip_list, tokens=None if tokens is None else parse_tokens(tokens),
        num_chips=num_chips, seq_len=seq_len, global_batch=global_batch, precision=precision,
        baseline=baseline or (chip_list[0] if chip_list else None),
        currency=None if currency is None else currency.upper(), cny_per_usd=fx_rate,
        mode=pricing, run_changes=run_changes,
    )
    result = run_comparison(sc, deadline_days=deadline_days, samples=uncertainty, seed=seed,
                            overrides=per_chip)
    tripped = check_guards(result, fail_if or [])
    report = comparison_report(result, uncertainty > 0)
    if plot is not None:
        from moebench.commands.plots import plot_comparison

        plot_comparison(report.payload["rows"], sc.baseline, sc.pricing.currency,
                        report.title, plot)
    show(report, fmt, output)
    for line in tripped:
        typer.echo(f"guard tripped: {line}", err=True)
    if tripped:
        raise typer.Exit(1)


# --- sweep ----------------------------------------------------------------------------------


@app.command()
@cli_errors
def sweep(
    vary: Annotated[list[str], typer.Option(
        "--vary", help="FIELD=v1,v2,... (repeatable): num_chips, seq_len, global_batch, tokens, "
                       "precision, expert_imbalance, or a hardware section.field.")],
    scenario: Annotated[str, typer.Option(help="Scenario for everything not varied.")]
    = "ling-plus-1t",
    model: Annotated[str | None, typer.Option("--model", "-m", help="Models, comma-separated.")]
    = None,
    chips: Annotated[str | None, typer.Option(help="Chips, comma-separated.")] = None,
    workers: Annotated[int, typer.Option(help="Local worker processes.")] = 1,
    dask_scheduler: Annotated[str | None, typer.Option(
        help="Run the points on an existing Dask cluster (moebench[dask]).")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a plot: FILE.png or FILE.svg.")]
    = None,
    plot_metric: Annotated[str, typer.Option(
        help="cost_per_1e12_tokens, mfu, tokens_per_s_per_chip or days.")]
    = "cost_per_1e12_tokens",
    fmt: FormatOpt = OutputFormat.table,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the results: .csv or .parquet as data, else --format.",
        dir_okay=False)] = None,
) -> None:
    """Best plan at every point of a grid, over chips and models.

    Example: moebench sweep --chips h800,ascend-910b --vary num_chips=256,512,1024,2048
    --vary seq_len=4096,8192 --output sweep.parquet --plot sweep.png
    """
    from moebench.commands.compare_report import apply_options
    from moebench.commands.report import Report
    from moebench.commands.sweep import parse_vary, run_sweep
    from moebench.inputs.scenario import load_scenario

    if workers < 1 or workers > 256:
        raise InputError("--workers", None, f"must be 1..256, got {workers}")
    if plot_metric not in ("cost_per_1e12_tokens", "mfu", "tokens_per_s_per_chip", "days"):
        raise InputError("--plot-metric", None, f"unknown metric {plot_metric!r}")
    grid = parse_vary(vary)
    chip_list = None if chips is None else [c.strip() for c in chips.split(",") if c.strip()]
    sc = apply_options(
        load_scenario(scenario), chips=chip_list,
        baseline=chip_list[0] if chip_list else None,
        models=None if model is None else [m.strip() for m in model.split(",") if m.strip()])
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
    title = f"{sc.name}: {', '.join(sc.models)}; varying {', '.join(grid)}"
    if plot is not None:
        from moebench.commands.plots import plot_sweep

        plot_sweep(df, next(iter(grid)), plot_metric, title, plot)
    report = Report(f"Sweep: {title}", df, {"scenario": sc.name, "varied": grid,
                                           "rows": df.to_dict("records")},
                    [f"{len(df)} points; best plan per point; costs in {sc.pricing.currency}"])
    if output is not None and output.suffix.lower() in (".csv", ".parquet"):
        from moebench.commands.report import write_dataframe

        write_dataframe(df, output)
        show(report, fmt, None)
    else:
        show(report, fmt, output)


def run() -> None:  # pragma: no cover - console entry for `python -m moebench`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())

