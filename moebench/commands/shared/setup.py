"""From names and options to the four input records one job needs: model, chip, stack, run.

Shared by estimate, explain, validate and calibrate, so that a measured run, a what-if and a
command line resolve the same way. ``--set`` overrides go to the hardware profile
(``section.field``), the stack profile (``stack.section.field``) or the run (``run.field``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from moebench.engine.plan import PlanRequest
from moebench.errors import InputError
from moebench.inputs import catalog
from moebench.inputs.hardware import Chip, chip_from_spec, load_spec
from moebench.inputs.model import ModelArch, load_model
from moebench.inputs.release import Release
from moebench.inputs.run import RUN_SET_FIELDS, RunConfig, resolve_precision
from moebench.inputs.settings import option_variants, parse_search
from moebench.inputs.stack import (
    Stack,
    StackOptions,
    StackSpec,
    check_vendor,
    load_stack_spec,
    stack_from_spec,
)


@dataclass(frozen=True)
class Overrides:
    """``--set`` overrides split by the input they change."""

    hardware: dict[str, str] = field(default_factory=dict)
    stack: dict[str, str] = field(default_factory=dict)
    run: dict[str, float | str] = field(default_factory=dict)

    @property
    def shown(self) -> dict[str, str]:
        """Every override as the user wrote it, for the output."""
        return {**self.hardware, **{f"stack.{k}": v for k, v in self.stack.items()},
                **{f"run.{k}": str(v) for k, v in self.run.items()}}


def split_overrides(overrides: dict[str, str]) -> Overrides:
    """Route ``FIELD=VALUE`` overrides to hardware, stack (``stack.``) or run (``run.``)."""
    hardware: dict[str, str] = {}
    stack: dict[str, str] = {}
    run: dict[str, float | str] = {}
    for key, raw in overrides.items():
        if key.startswith("stack."):
            stack[key.removeprefix("stack.")] = raw
        elif key.startswith("run."):
            name = key.removeprefix("run.")
            if name not in RUN_SET_FIELDS:
                raise InputError("--set", key, "unknown run field; one of "
                                 + ", ".join(sorted(RUN_SET_FIELDS)))
            try:
                run[name] = RUN_SET_FIELDS[name](raw)
            except ValueError:
                raise InputError("--set", key, f"expected a number, got {raw!r}") from None
        else:
            hardware[key] = raw
    return Overrides(hardware, stack, run)


def per_chip_overrides(pairs: list[str]
                       ) -> tuple[dict[str, dict[str, str]], dict[str, float | str]]:
    """``--set`` over several chip types (compare, mixes): CHIP:FIELD=VALUE for one chip,
    hardware and stack fields without a chip for every chip (key "*"), the run fields
    (run.FIELD) apart."""
    from moebench.inputs.overrides import split_chip_overrides

    per_chip = split_chip_overrides(pairs)
    everywhere = split_overrides(per_chip.pop("*", {}))
    shared = {**everywhere.hardware, **{f"stack.{k}": v for k, v in everywhere.stack.items()}}
    if shared:
        per_chip["*"] = shared
    return per_chip, everywhere.run


@dataclass(frozen=True)
class JobInputs:
    """Everything one estimate needs, resolved and validated."""

    arch: ModelArch
    chip: Chip
    stack: Stack
    """The stack with the settings given and the release's defaults for the rest."""
    run: RunConfig
    request: PlanRequest
    """The plan fields given, and the release's default schedule and layout unless searched."""
    chip_ref: str
    stack_ref: str | None
    options: StackOptions
    overrides: Overrides
    spec: StackSpec
    """The stack family, its release selected."""
    given: PlanRequest
    """The plan fields as given (before the release's defaults)."""
    search: frozenset[str] = frozenset()
    """Settings searched (``--search``) instead of taking the release's default."""
    variants: tuple[Stack, ...] = ()
    """The stacks the search compares (the searched settings' options); () means ``stack``."""

    @property
    def stacks(self) -> tuple[Stack, ...]:
        return self.variants or (self.stack,)


def load_chip(chip_ref: str, overrides: Overrides) -> Chip:
    """A chip with its hardware overrides (``--set``)."""
    return chip_from_spec(load_spec(catalog.resolve("hardware", chip_ref, "--chip"),
                                    overrides.hardware))


def resolve_request(release: Release, given: PlanRequest, search: frozenset[str]
                    ) -> PlanRequest:
    """The plan request with the release's default schedule and pipeline layout where the
    run gives none and they are not searched."""
    return given.with_defaults(release, search)


def job_inputs(
    model: str, chip: str, *, stack: str | None = None,
    options: StackOptions | None = None, overrides: dict[str, str] | None = None,
    seq_len: int, global_batch: int, precision: str = "bf16",
    expert_imbalance: float = 1.0, capacity_factor: float | None = None,
    routing: str = "random", pipeline_flushes: int = 1,
    optimizer_states: str | None = None, plan: dict[str, Any] | PlanRequest | None = None,
    search: frozenset[str] = frozenset(),
) -> JobInputs:
    """Load and validate model, chip and stack, and build the run and the plan request: what
    the run does not give takes its stack release's default, unless named in ``search``."""
    split = split_overrides(overrides or {})
    options = options or StackOptions()
    arch = load_model(model)
    hw = load_chip(chip, split)
    resolved = resolve_precision(precision, hw)
    spec = load_stack_spec(stack or hw.default_stack, split.stack)
    check_vendor(spec, hw.vendor, hw.name)
    # The release as a run on this chip at this precision takes it (its recipe's defaults).
    spec = spec.for_platform(hw.name, resolved, arch.name, arch.is_moe)
    st = stack_from_spec(spec, options)
    settings: dict[str, Any] = {"seq_len": seq_len, "global_batch": global_batch,
                                "expert_imbalance": expert_imbalance, "routing": routing,
                                "pipeline_flushes": pipeline_flushes, **split.run}
    run = RunConfig(
        seq_len=int(settings["seq_len"]), global_batch=int(settings["global_batch"]),
        precision=resolved,
        expert_imbalance=float(settings["expert_imbalance"]),
        routing=str(settings["routing"]),
        pipeline_flushes=int(settings["pipeline_flushes"]),
        capacity_factor=capacity_factor,
        optimizer_states=optimizer_states or spec.release.defaults["optimizer_states"],
    )
    given = plan if isinstance(plan, PlanRequest) else PlanRequest(**(plan or {}))
    variants = tuple(stack_from_spec(spec, o)
                     for o in option_variants(spec.release, options, search))
    return JobInputs(arch=arch, chip=hw, stack=st, run=run,
                     request=resolve_request(spec.release, given, search), chip_ref=chip,
                     stack_ref=stack, options=options, overrides=split, spec=spec, given=given,
                     search=search, variants=variants if len(variants) > 1 else ())


JOB_DEFAULTS: dict[str, Any] = {"seq_len": 4096, "global_batch": 4096, "precision": "bf16",
                                "expert_imbalance": 1.0,
                                "optimizer_states": None}
PLAN_FIELDS = ("tp", "pp", "vpp", "ep", "etp", "cp", "micro_batch", "recompute", "schedule",
               "sharding", "shard_group", "cp_kind", "recompute_modules", "optimizer_offload",
               "pipeline_layout", "offload_modules")


def job_from_options(scenario: str | None, *, model: str | None, chip: str,
                     num_chips: int | None, stack: str | None,
                     overrides: dict[str, str], **given: Any) -> tuple[JobInputs, int]:
    """A job from command-line options: what was given, else the scenario's (so that one
    command reproduces a compare row), else the defaults. Returns it and the cluster size."""
    from moebench.inputs.scenario import load_scenario

    base: dict[str, Any] = dict(JOB_DEFAULTS)
    plan: dict[str, Any] = {}
    options: dict[str, Any] = {}
    if scenario is not None:
        sc = load_scenario(scenario)
        model = model or sc.models[0]
        num_chips = num_chips or sc.num_chips
        base.update(seq_len=sc.seq_len, global_batch=sc.global_batch, precision=sc.precision,
                    expert_imbalance=sc.expert_imbalance.value)
        plan = {k: v for k, v in sc.plan.model_dump().items() if v is not None}
        options = sc.settings().as_dict()
    if model is None:
        raise InputError("--model", None, "give a model (or a --scenario that names one)")
    if num_chips is None:
        raise InputError("--num-chips", None, "give the cluster size (or a --scenario)")
    from moebench.commands.shared.options import check_num_chips

    check_num_chips(num_chips)
    run = {k: given[k] if given.get(k) is not None else v for k, v in base.items()}
    plan.update({k: given[k] for k in PLAN_FIELDS if given.get(k) is not None})
    from moebench.inputs.settings import merge_settings

    flags = {k: given.get(k) for k in ("dispatcher", "graphs", "ep_overlap", "graph_scope")}
    options.update(merge_settings(flags, given.get("settings") or {}))
    search = given.get("search")
    if search is None:
        search = parse_search(",".join(sc.search), "search") if scenario else frozenset()
    job = job_inputs(model, chip, stack=stack, options=StackOptions(**options),
                     overrides=overrides, capacity_factor=given.get("capacity_factor"),
                     plan=plan, search=search, **run)
    return job, num_chips
