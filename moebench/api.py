"""moebench as a library: the function behind each command, its keyword arguments named as the
command's options (``--num-chips`` is ``num_chips``, ``--set`` is ``set``), returning the typed
result records, each with ``.to_frame()`` for pandas. The CLI parses its options, calls one of
these and renders what it returns; nothing here prints.

    >>> import moebench
    >>> est = moebench.estimate(model="ling-plus", chip="h800", num_chips=1024)
    >>> est.to_frame()[["chip", "step_time_s", "mfu"]]

Bad input raises :class:`moebench.errors.InputError`: ``.where`` is the option or file, and
``str(error)`` the one-line message the CLI prints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moebench import api_args as args
from moebench.api_args import Overrides, Settings
from moebench.commands.shared.options import (
    chip_entries,
    graph_scope_choice,
    mix_options,
    modules_choice,
    offload_modules_choice,
    search_choice,
    settings_choice,
    sharding_choice,
)
from moebench.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from moebench.commands.compare.records import Comparison
    from moebench.commands.estimate.estimate import Estimate
    from moebench.commands.shared.setup import JobInputs
    from moebench.commands.validation.calibrate import Calibration
    from moebench.commands.validation.run_comparison import RunComparison
    from moebench.inputs.stack import StackSpec


def job(
    model: str | None = None, chip: str | None = None, num_chips: int | None = None, *,
    scenario: str | None = None, stack: str | None = None,
    tp: int | None = None, pp: int | None = None, vpp: int | None = None, ep: int | None = None,
    etp: int | None = None, cp: int | None = None, cp_kind: str | None = None,
    micro_batch: int | None = None, recompute: str | None = None,
    recompute_modules: str | Sequence[str] | None = None, schedule: str | None = None,
    seq_len: int | None = None, global_batch: int | None = None, precision: str | None = None,
    ep_overlap: bool | None = None, expert_imbalance: float | None = None,
    dispatcher: str | None = None, graphs: str | None = None,
    graph_scope: str | Sequence[str] | None = None, capacity_factor: float | None = None,
    zero: int | None = None, fsdp: bool = False,
    shard_group: int | None = None, optimizer_states: str | None = None,
    optimizer_offload: float | None = None, pipeline_layout: str | None = None,
    offload_modules: str | Sequence[str] | None = None, search: str | Sequence[str] | None = None,
    settings: Settings = None, set: Overrides = None,  # noqa: A002 - the option is --set
) -> tuple[JobInputs, int]:
    """The job ``estimate`` and ``explain`` run (model, chip, stacks, run, plan request) and its
    cluster size, from their options: what is given, else ``scenario``'s, else the defaults;
    plan fields not given are searched inside the stack release's capabilities."""
    from moebench.commands.shared.options import check_option_types, chip_with_stack
    from moebench.commands.shared.setup import job_from_options
    from moebench.inputs.overrides import parse_overrides

    check_option_types(locals())
    if chip is None:
        raise InputError("--chip", None, "give a chip (or a mixed cluster with --mix)")
    chip, stack = chip_with_stack(chip, stack)
    return job_from_options(
        scenario, model=model, chip=chip, num_chips=num_chips, stack=stack,
        overrides=parse_overrides(args.pairs(set)), seq_len=seq_len, global_batch=global_batch,
        precision=precision, ep_overlap=ep_overlap, expert_imbalance=expert_imbalance,
        dispatcher=dispatcher, graphs=graphs, capacity_factor=capacity_factor,
        graph_scope=graph_scope_choice(args.text(graph_scope, "--graph-scope")),
        tp=tp, pp=pp, vpp=vpp, ep=ep, etp=etp, cp=cp, cp_kind=cp_kind, micro_batch=micro_batch,
        recompute=recompute, schedule=schedule,
        sharding=sharding_choice(zero, fsdp, shard_group), shard_group=shard_group,
        recompute_modules=modules_choice(args.text(recompute_modules, "--recompute-modules")),
        optimizer_offload=optimizer_offload, pipeline_layout=pipeline_layout,
        offload_modules=offload_modules_choice(args.text(offload_modules, "--offload-modules")),
        optimizer_states=optimizer_states, search=search_choice(args.text(search, "--search")),
        settings=settings_choice(settings))


def estimate(model: str | None = None, chip: str | None = None, num_chips: int | None = None,
             *, allow_oom: bool = False, **options: Any) -> Estimate:
    """``moebench estimate`` for one chip type: the best plan (or the plan given) of ``model``
    on ``num_chips`` x ``chip``, its speed, memory and what it assumed. ``options`` are
    :func:`job`'s keyword arguments, the command's options (``tp``, ``scenario``, ``set``...)."""
    from moebench.commands.estimate.estimate import estimate_job

    inputs, n = job(model, chip, num_chips, **options)
    est, _ = estimate_job(inputs, n, allow_oom=allow_oom)
    return est


def compare(
    *, scenario: str = "ling-plus-1t", model: str | Sequence[str] | None = None,
    chips: str | Sequence[str] | None = None, baseline: str | None = None,
    tokens: str | float | None = None, num_chips: int | None = None,
    seq_len: int | None = None, global_batch: int | None = None, precision: str | None = None,
    price_basis: str | None = None, market: str | None = None, include_unavailable: bool = False,
    currency: str | None = None, fx_rate: float | None = None,
    deadline_days: float | None = None, uncertainty: int = 0, seed: int = 0,
    set: Overrides = None,  # noqa: A002 - the option is --set
    mix: str | Sequence[str] | None = None, fabric: str | None = None, placement: str | None = None,
    sync_every: int | None = None, strategy: str | None = None, choose: str | None = None,
    stack: str | None = None, search: str | Sequence[str] | None = None,
    settings: Settings = None,
) -> Comparison:
    """``moebench compare``: every chip (and mix) of the scenario on its own best plan, priced
    on one basis against the baseline, with break-even prices and, with ``uncertainty``
    samples, intervals."""
    from moebench.commands.compare.comparison import run_comparison
    from moebench.commands.shared.options import (
        apply_options,
        check_compare_options,
        check_option_types,
        parse_tokens,
    )
    from moebench.commands.shared.setup import per_chip_overrides
    from moebench.inputs.mix import parse_mix
    from moebench.inputs.scenario import load_scenario

    check_option_types({k: v for k, v in locals().items()
                        if k not in ("model", "chips", "mix")})  # text or lists: args.text
    check_compare_options(uncertainty=uncertainty, num_chips=num_chips, seq_len=seq_len,
                          global_batch=global_batch, deadline_days=deadline_days,
                          currency=currency, price_basis=price_basis, market=market,
                          precision=precision, fx_rate=fx_rate)
    chip_list, baseline = chip_entries(args.text(chips, "--chips"), baseline, stack, scenario)
    per_chip, run_changes = per_chip_overrides(args.pairs(set))
    models = args.text(model, "--model")
    searched = args.searched(search)
    sc = apply_options(
        load_scenario(scenario),
        models=None if models is None else [m.strip() for m in models.split(",") if m.strip()],
        chips=chip_list,
        tokens=None if tokens is None else parse_tokens(str(tokens)),
        num_chips=num_chips, seq_len=seq_len, global_batch=global_batch, precision=precision,
        baseline=baseline or (chip_list[0] if chip_list else None),
        currency=None if currency is None else currency.upper(), cny_per_usd=fx_rate,
        basis=None if market else price_basis, market=market, run_changes=run_changes,
        mixes=[parse_mix(m, "--mix").label for m in args.items(mix, "--mix")] if mix else None,
        mix_options=mix_options(fabric, placement, sync_every, strategy, choose),
        search=searched, settings=settings_choice(settings),
    )
    return run_comparison(sc, deadline_days=deadline_days, samples=uncertainty, seed=seed,
                          overrides=per_chip, include_unavailable=include_unavailable)


@dataclass(frozen=True)
class Validation:
    """``moebench validate``: every measured run predicted four ways (physics, calibrated,
    leave-one-out, leave-one-source-out), and the memory of those that publish it."""

    runs: list[RunComparison]
    data: Path | None
    stack: str | None

    def to_frame(self) -> pd.DataFrame:
        """One row per run: its figures and its error each way (predicted / measured - 1)."""
        import pandas as pd

        return pd.DataFrame([{**c.__dict__, "memory_error": c.memory_error} for c in self.runs])

    def summary(self) -> pd.DataFrame:
        """Mean absolute errors per group (all, vendor, dense/MoE), as the CLI's footer."""
        import pandas as pd

        from moebench.commands.validation.summaries import summary

        return pd.DataFrame(summary(self.runs))


def validate(data: str | Path | None = None, *, stack: str | None = None,
             progress: Callable[[int, int], None] | None = None) -> Validation:
    """``moebench validate``: the runs of ``data`` (default: the shipped measured runs)
    predicted every way; ``stack`` replaces the stack each run names."""
    from moebench.commands.validation.validation import validate as predict_runs
    from moebench.inputs.stack import load_stack_spec

    if stack is not None:
        load_stack_spec(stack)  # a bad --stack is named as such, not as a runs-file line
    path = None if data is None else Path(data)
    return Validation(predict_runs(path, progress=progress, stack=stack), path, stack)


@dataclass(frozen=True)
class Sweep:
    """``moebench sweep``: the best plan at every grid point, one row per point."""

    frame: pd.DataFrame
    scenario: str
    varied: dict[str, list[Any]]
    title: str
    currency: str

    def to_frame(self) -> pd.DataFrame:
        return self.frame


def sweep(
    vary: Sequence[str] | Mapping[str, Sequence[Any]], *, scenario: str = "ling-plus-1t",
    model: str | Sequence[str] | None = None, chips: str | Sequence[str] | None = None,
    price_basis: str | None = None, workers: int = 1, dask_scheduler: str | None = None,
    stack: str | None = None, search: str | Sequence[str] | None = None,
    settings: Settings = None, progress: Callable[[int, int], None] | None = None,
) -> Sweep:
    """``moebench sweep``: ``vary`` as "FIELD=v1,v2" strings or a mapping FIELD -> values."""
    from moebench.commands.shared.options import apply_options, check_option_types
    from moebench.commands.shared.pricing import BASES
    from moebench.commands.sweep.sweep import parse_vary, run_sweep, typed_grid
    from moebench.inputs.scenario import load_scenario

    check_option_types({"scenario": scenario, "price_basis": price_basis, "workers": workers,
                        "stack": stack})
    if price_basis is not None and price_basis not in BASES:
        raise InputError("--price-basis", None,
                         f"expected one of {', '.join(BASES)}, got {price_basis!r}")
    if workers < 1 or workers > 256:
        raise InputError("--workers", None, f"must be 1..256, got {workers}")
    grid = parse_vary(args.pairs(args.vary_text(vary) if isinstance(vary, Mapping) else vary,
                             "--vary"))
    # The baseline is the first entry given (with --stack, the first entry on that stack).
    chip_list, _ = chip_entries(args.text(chips, "--chips"), None, stack, scenario)
    models = args.text(model, "--model")
    sc = apply_options(
        load_scenario(scenario), chips=chip_list,
        baseline=chip_list[0] if chip_list else None,
        models=None if models is None else [m.strip() for m in models.split(",") if m.strip()],
        basis=price_basis, settings=settings_choice(settings), search=args.searched(search))
    df = run_sweep(sc, grid, workers=workers, dask_address=dask_scheduler, progress=progress)
    df.attrs["varied"] = list(grid)
    title = (f"{sc.name}: {', '.join(sc.models)}; varying {', '.join(grid)}; "
             f"{sc.pricing.basis} prices in {sc.pricing.currency}")
    return Sweep(df, sc.name, typed_grid(grid), title, sc.pricing.currency)


@dataclass(frozen=True)
class Fitted:
    """``moebench calibrate``: the fitted stack and the fit (values, intervals, errors)."""

    spec: StackSpec
    result: Calibration

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        r = self.result
        return pd.DataFrame({"run": r.run_ids, "in_sample_error": r.fit.errors,
                             "loo_error": r.loo_errors})


def calibrate(runs: str | Path, *, stack: str,
              fit: str | Sequence[str] = "gemm_fraction,host_op_us",
              exact_loo: bool = False) -> Fitted:
    """``moebench calibrate`` without writing: fit the named parameters of ``stack`` to the
    measured runs in ``runs``; write the stack with ``write_stack`` of
    :mod:`moebench.commands.validation.calibrate_report` (the CLI's ``--output``)."""
    from moebench.commands.validation.calibrate import calibrate as fit_stack
    from moebench.commands.validation.measured_runs import load_runs

    names = tuple(n.strip() for n in (args.text(fit, "--fit") or "").split(",") if n.strip())
    spec, result = fit_stack(load_runs(Path(runs)), stack, names, str(runs), exact_loo or None)
    return Fitted(spec, result)
