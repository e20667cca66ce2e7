"""``moebench validate`` and ``moebench calibrate``: the model against measured runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from moebench.cli.app import app
from moebench.cli.common import FormatOpt, OutputOpt, cli_errors, show
from moebench.errors import InputError

DataOpt = Annotated[Path | None, typer.Option(
    "--data", help="Measured-runs CSV (default: the shipped profiles/validation file). "
                   "Leave-one-out refits each stack on the file's other runs and the shipped "
                   "ones.")]


@app.command()
@cli_errors
def validate(
    data: DataOpt = None,
    max_error: Annotated[float | None, typer.Option(
        "--max-error", help="Exit 1 if the leave-one-source-out mean absolute speed error over all "
                            "runs exceeds this many percent.")] = None,
    max_run_error: Annotated[float | None, typer.Option(
        "--max-run-error", help="Exit 1 if any run's leave-one-source-out speed error exceeds this "
                                "many percent.")] = None,
    max_memory_error: Annotated[float | None, typer.Option(
        "--max-memory-error", help="Exit 1 if the mean absolute memory error over the runs "
                                   "that publish their peak memory exceeds this many percent, "
                                   "or a measured run is predicted not to fit.")] = None,
    stack: Annotated[str | None, typer.Option(
        "--stack", help="Predict every run with this stack (catalog name or YAML), e.g. one "
                        "moebench calibrate wrote, instead of the stack each run names; runs on "
                        "another vendor's chips are refused.")] = None,
    fmt: FormatOpt = None, output: OutputOpt = None,
) -> None:
    """Predict measured training runs three ways (physics only, calibrated, leave-one-out)
    and report the error per run, per vendor and per dense/MoE group, and the memory error
    of the runs that publish their peak memory.

    Exit codes: 0 ok, 1 an error bound was exceeded, 2 bad input.

    Example: moebench validate --data my-runs.csv --max-error 25;
    moebench validate --data my-runs.csv --stack my-stack.yaml
    """
    from moebench.api import validate as predict_runs
    from moebench.commands.validation.report import validation_report
    from moebench.commands.validation.summaries import mean_abs, memory_summary

    for name, bound in (("--max-error", max_error), ("--max-run-error", max_run_error),
                        ("--max-memory-error", max_memory_error)):
        if bound is not None and not bound > 0:
            raise InputError(name, None, f"must be a positive percentage, got {bound}")
    comparisons = predict_runs(data, stack=stack).runs
    show(validation_report(comparisons, data, stack), fmt, output)
    failed = []
    overall = mean_abs([c.loso_error for c in comparisons])
    if max_error is not None and 100 * overall > max_error:
        failed.append(f"leave-one-source-out mean absolute error {100 * overall:.1f}% > "
                      f"{max_error}%")
    if max_run_error is not None:
        failed += [f"{c.id}: leave-one-source-out error {100 * c.loso_error:+.1f}% beyond "
                   f"{max_run_error}%" for c in comparisons
                   if 100 * abs(c.loso_error) > max_run_error]
    if max_memory_error is not None:
        memory = memory_summary(comparisons)
        if memory.get("mae", 0.0) * 100 > max_memory_error:
            failed.append(f"memory mean absolute error {100 * memory['mae']:.1f}% > "
                          f"{max_memory_error}%")
        failed += [f"{run}: a measured run predicted not to fit"
                   for run in memory["not_fitting"]]
    for line in failed:
        typer.echo(f"bound exceeded: {line}", err=True)
    if failed:
        raise typer.Exit(1)


@app.command()
@cli_errors
def calibrate(
    runs: Annotated[Path, typer.Argument(help="Measured-runs CSV (validation format).")],
    stack: Annotated[str, typer.Option(help="Stack to start from: catalog name or YAML.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Stack YAML to write.",
                                         dir_okay=False)],
    fit_names: Annotated[str, typer.Option(
        "--fit", help="Parameters to fit, comma-separated: gemm_fraction, gemm_half_rows, "
                      "attention_fraction, host_op_us, collective_fraction, "
                      "overlap_sm_share.")]
    = "gemm_fraction,host_op_us",
    exact_loo: Annotated[bool, typer.Option(
        "--exact-loo", help="Refit every leave-one-out fold from scratch (slow). Without it, "
                            "folds are refitted only when a fitted parameter sits on its bound; "
                            "otherwise one Gauss-Newton step from the full fit stands in.")]
    = False,
    fmt: FormatOpt = None,
) -> None:
    """Fit named, bounded stack parameters to measured runs and write the fitted stack.

    Prints each fitted value with its 90% interval and every run's error in sample and
    leave-one-out; writes a stack YAML whose fitted figures have kind calibrated, sourced to
    the runs file and the date. Needs three runs per fitted parameter, all on the stack's
    vendor's chips.

    Example: moebench calibrate my-runs.csv --stack megatron-core-nvidia --output my-stack.yaml
    """
    from moebench.api import calibrate as fit_stack
    from moebench.commands.validation.calibrate_report import calibration_report, write_stack

    fitted = fit_stack(runs, stack=stack, fit=fit_names, exact_loo=exact_loo)
    write_stack(fitted.spec, fitted.result, runs, output)
    show(calibration_report(fitted.result, runs, output), fmt, None)
