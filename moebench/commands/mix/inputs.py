"""From a mix as written to the engine's chip types: each chip with its overrides, its own
default stack and the mix's run settings, and the fabric between them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from moebench.commands.shared.setup import split_overrides
from moebench.engine.mix.shares import MixType
from moebench.errors import InputError
from moebench.inputs import catalog
from moebench.inputs.fabric import Fabric, FabricSpec, fabric_from_spec, load_fabric_spec
from moebench.inputs.hardware import HardwareSpec, chip_from_spec, load_spec
from moebench.inputs.mix import MixSpec, parse_mix
from moebench.inputs.run import Precision, RunConfig
from moebench.inputs.scenario import DEFAULT_SCENARIO, ScenarioSpec, load_scenario
from moebench.inputs.stack import StackSpec, check_vendor, load_stack_spec, stack_from_spec


@dataclass(frozen=True)
class LoadedMix:
    """A mix ready for the engine, with the specs the cost layer reads."""

    label: str
    types: list[MixType]
    hardware: list[HardwareSpec]
    stacks: list[StackSpec]
    fabric: Fabric
    fabric_spec: FabricSpec
    precision: Precision


def mix_precision(requested: str, chips: list[tuple[str, bool]], option: str) -> Precision:
    """One precision for the whole mix: FP8 only where every chip type has an FP8 path
    (``auto`` falls back to BF16; an explicit ``fp8`` is an error naming the chips without)."""
    lacking = [name for name, fp8 in chips if not fp8]
    if requested == "auto":
        return "bf16" if lacking else "fp8"
    if requested == "fp8" and lacking:
        raise InputError(option, None, f"fp8 needs every chip type of the mix to have an FP8 "
                                       f"path; {', '.join(lacking)} has none (use bf16 or auto)")
    if requested not in ("bf16", "fp8"):
        raise InputError(option, None, f"expected bf16, fp8 or auto, got {requested!r}")
    return requested  # type: ignore[return-value]


def load_mix(mix: str | MixSpec, sc: ScenarioSpec, fabric: str,
             overrides: dict[str, dict[str, str]] | None = None, option: str = "--mix",
             moe: bool = True, model: str = "") -> LoadedMix:
    """Every chip type of ``mix`` loaded (``overrides`` by chip name, ``*`` for all), on its
    profile's default stack with the scenario's stack options, and the scenario's run."""
    spec = parse_mix(mix, option) if isinstance(mix, str) else mix
    overrides = overrides or {}
    unknown = set(overrides) - {"*"} - {p.chip for p in spec.parts}
    if unknown:
        raise InputError("--set", sorted(unknown)[0],
                         f"chip is not in the mix ({spec.label})")
    loaded: dict[str, tuple[HardwareSpec, StackSpec, int]] = {}
    for part in spec.parts:
        split = split_overrides({**overrides.get("*", {}), **overrides.get(part.chip, {})})
        hw = load_spec(catalog.resolve("hardware", part.chip, option), split.hardware)
        if hw.name in loaded:  # the same profile written twice (a name and a path)
            h, s, n = loaded[hw.name]
            loaded[hw.name] = (h, s, n + part.count)
            continue
        stack_spec = load_stack_spec(hw.default_stack, split.stack)
        check_vendor(stack_spec, hw.vendor, hw.name)
        loaded[hw.name] = (hw, stack_spec, part.count)
    chips = [chip_from_spec(hw) for hw, _, _ in loaded.values()]
    precision = mix_precision(sc.precision, [(c.name, c.supports_fp8) for c in chips],
                              "--precision")
    run = RunConfig(seq_len=sc.seq_len, global_batch=sc.global_batch, precision=precision,
                    expert_imbalance=sc.expert_imbalance.value)
    options = sc.settings()
    name = model or "the model"  # as the refusal of an MoE model on a dense-only stack says
    # Each type keeps its stack release's optimizer-state precision (FP32 or BF16 moments).
    types = [MixType(chip=c, stack=stack_from_spec(s.for_platform(c.name, precision, name, moe,
                                                                option), options),
                     count=n,
                     run=replace(run, optimizer_states=s.release.defaults["optimizer_states"]))
             for c, (_, s, n) in zip(chips, loaded.values(), strict=True)]
    fabric_spec = load_fabric_spec(fabric)
    label = "+".join(f"{name}:{n}" for name, (_, _, n) in loaded.items())
    return LoadedMix(label=label, types=types, hardware=[h for h, _, _ in loaded.values()],
                     stacks=[s for _, s, _ in loaded.values()],
                     fabric=fabric_from_spec(fabric_spec), fabric_spec=fabric_spec,
                     precision=precision)


def mix_scenario(scenario: str | None, *, model: str | None, tokens: str | None,
                 price_basis: str | None, run: dict[str, Any], plan: dict[str, Any],
                 mix_options: dict[str, Any], run_changes: dict[str, float | str]) -> ScenarioSpec:
    """The scenario a mix estimate runs in: ``scenario`` with the command line's model, run,
    plan, price basis and mix options applied, so that ``estimate --scenario S --mix M`` shows
    a mixed ``compare`` row in full. Without one, each type alone runs what ``estimate --chip``
    runs (the job defaults), priced on compare's scenario."""
    from moebench.commands.shared.options import apply_options, parse_tokens
    from moebench.commands.shared.setup import JOB_DEFAULTS

    changes = dict(run_changes)
    imbalance = run.pop("expert_imbalance", None)
    if imbalance is not None:
        changes["expert_imbalance"] = imbalance
    base = load_scenario(scenario or DEFAULT_SCENARIO)
    if scenario is None:
        # Without a scenario a mix runs what `estimate --chip` runs for each type alone: the
        # job defaults (sequence, batch, precision, balanced experts) and no plan pinned; only
        # the tokens, prices and goodput come from compare's scenario.
        base = base.model_copy(update={"plan": type(base.plan)()})
        changes.setdefault("expert_imbalance", JOB_DEFAULTS["expert_imbalance"])
        run = {**{k: JOB_DEFAULTS[k] for k in ("seq_len", "global_batch", "precision")}, **run}
    return apply_options(
        base, models=[model] if model else None,
        tokens=None if tokens is None else parse_tokens(tokens), basis=price_basis,
        run_changes=changes, plan=plan, mix_options=mix_options, **run)
