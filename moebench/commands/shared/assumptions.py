"""What a prediction assumed: every setting the run did not give, where it came from, and what
the main alternative would change.

A setting not given takes its stack release's default (or, named in ``--search``, the best of
what the release implements); a plan dimension not given is searched within the release. For the
settings, the chosen plan is evaluated again with each other option the release implements, and
the one that moves the step most is reported: "dispatcher alltoall (release default); deepep
would be -29%". That tells a reader which unstated choice the answer hangs on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from moebench.engine.plan import PlanRequest
from moebench.engine.search import SearchResult, search
from moebench.engine.step import evaluate
from moebench.errors import InputError
from moebench.inputs.release import SETTINGS, without_tp_overlap_conflict
from moebench.inputs.settings import PLAN_SETTINGS
from moebench.inputs.stack import Stack, StackOptions, StackSpec, stack_from_spec

# Settings that only matter for MoE models.
MOE_ONLY = ("dispatcher", "ep_overlap", "dispatch_fp8", "sync_free", "grouped_gemm")
# Plan dimensions a search fills when the run does not give them.
PLAN_DIMENSIONS = ("tp", "pp", "vpp", "ep", "etp", "cp", "micro_batch", "recompute",
                   "sharding", "optimizer_offload", "offload_modules")


@dataclass(frozen=True)
class Assumption:
    setting: str
    value: Any
    how: str
    """given, release default, searched (a setting) or searched within the release (a plan
    dimension)."""
    source: str
    alternative: Any = None
    change: float | None = None
    """Step-time change with the alternative (-0.29: 29% faster); None: not evaluated."""

    def text(self) -> str:
        value = _words(self.setting, self.value)
        out = f"{self.setting} {value} ({self.how})"
        if self.alternative is not None and self.change is not None:
            out += (f"; {_words(self.setting, self.alternative)} would be "
                    f"{100 * self.change:+.0f}%")
        return out


def _words(setting: str, value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "none"
    return str(value)


def stack_settings(stack: Stack) -> dict[str, Any]:
    """The settings a stack was built with, by setting name."""
    return {"dispatcher": stack.dispatcher, "ep_overlap": stack.ep_1f1b_overlap,
            "tp_overlap": stack.tp_comm_overlap, "dp_overlap": stack.dp_overlap,
            "pp_overlap": stack.pp_overlap, "graphs": stack.graphs,
            "cross_entropy": stack.cross_entropy, "dispatch_fp8": stack.dispatch_fp8,
            "sync_free": not stack.host_sync, "sequence_parallel": stack.sequence_parallel,
            "grouped_gemm": stack.grouped_gemm,
            "graph_scope": tuple(sorted(stack.graph_scope))}


def assumptions(result: SearchResult, spec: StackSpec, options: StackOptions,
                given: PlanRequest, search_set: frozenset[str]) -> list[Assumption]:
    """Every setting and plan dimension of the chosen plan the run did not give, with where it
    came from and, for settings, the alternative that changes the step most; the largest
    changes first."""
    if result.best is None:
        return []
    release = result.stack.release
    i = result.best
    plan = result.plans.describe(i, 0)
    base = float(result.steps.step_time[i])
    chosen = stack_settings(result.stack)
    given_opts = options.as_dict()
    out = []
    for name in SETTINGS:
        if (name in MOE_ONLY and not result.arch.is_moe) or name in given_opts:
            continue
        if name in PLAN_SETTINGS:
            if getattr(given, name) is not None:
                continue
            value = plan["schedule"] if name == "schedule" else _layout_value(given, release)
        else:
            value = chosen[name]
        how = "searched" if name in search_set else (
            f"{release.label} recipe {release.platform}" if name in release.platform_settings
            else f"{release.label} default")
        alt, change = _alternative(result, spec, chosen, name, value, base)
        out.append(Assumption(setting=name, value=value, how=how,
                              source=release.sources[f"defaults.{name}"],
                              alternative=alt, change=change))
    out += _unfused_attention(result, base)
    out.sort(key=lambda a: -abs(a.change or 0.0))
    if chosen["graphs"] == "partial" and "graph_scope" not in given_opts:
        # What partial graphs capture is the release's whole scope; a recipe may name less.
        out.append(Assumption(setting="graph_scope", value=chosen["graph_scope"],
                              how=f"{release.label} default",
                              source=release.sources["implements.partial_graph_scope"]))
    for dim in PLAN_DIMENSIONS:
        if getattr(given, dim, None) is None:
            out.append(Assumption(setting=dim, value=plan[dim],
                                  how=f"searched within {release.label}",
                                  source=f"{release.label} implements "
                                         f"{_capability(release, dim)}"))
    return out


def _unfused_attention(result: SearchResult, base: float) -> list[Assumption]:
    """Where the release's fused attention does not take the model's head dims on this chip,
    that the attention runs unfused, and what a fused kernel would change."""
    from dataclasses import replace

    from moebench.engine.attention_core import fused_attention

    stack, arch, best = result.stack, result.arch, result.best
    if best is None or not stack.flash_attention or \
            fused_attention(arch, stack.flash_attention, stack.attention_head_dim_limit):
        return []
    fused = evaluate(arch, result.chip, replace(stack, attention_head_dim_limit=None),
                     result.run, result.plans.take(best)).step_time
    release = stack.release
    return [Assumption(setting="attention", value="unfused",
                       how=f"{release.label} on {result.chip.name}: fused up to head dim "
                           f"{stack.attention_head_dim_limit}",
                       source=release.sources["defaults.fused_attention_head_dim"],
                       alternative="fused", change=float(fused[0]) / base - 1.0)]


def _layout_value(given: PlanRequest, release: Any) -> str:
    return given.pipeline_layout or release.defaults["pipeline_layout"]


def _capability(release: Any, dim: str) -> str:
    caps = release.caps
    return {"sharding": ", ".join(caps.sharding),
            "optimizer_offload": "optimizer offload" if caps.optimizer_offload
            else "no optimizer offload",
            "offload_modules": ", ".join(caps.activation_offload) or "no activation offload",
            "vpp": "virtual stages" if caps.virtual_pipeline else "no virtual stages",
            "cp": ", ".join(caps.cp_kinds) or "no context parallelism",
            "etp": "expert TP apart from TP" if caps.expert_tp else "expert TP = TP",
            }.get(dim, "it")


def _alternative(result: SearchResult, spec: StackSpec, chosen: dict[str, Any], name: str,
                 value: Any, base: float) -> tuple[Any, float | None]:
    """The other option of a setting that changes the chosen plan's step most (the fastest
    one if any is faster), and the change; (None, None) when no other option applies."""
    release = result.stack.release
    changes = {}
    for option in release.options(name):
        if option == value:
            continue
        step = _step_with(result, spec, chosen, name, option)
        if step is not None:
            changes[option] = step / base - 1.0
    if not changes:
        return None, None
    faster = {k: v for k, v in changes.items() if v < 0}
    pick = min(faster, key=faster.__getitem__) if faster else max(
        changes, key=lambda k: abs(changes[k]))
    return (pick, changes[pick]) if abs(changes[pick]) > 1e-4 else (None, None)


def _step_with(result: SearchResult, spec: StackSpec, chosen: dict[str, Any], name: str,
               option: Any) -> float | None:
    """The chosen plan's step time with one setting changed (None: the plan cannot run so)."""
    i = result.best
    assert i is not None
    if name in PLAN_SETTINGS:
        plan: dict[str, Any] = result.plans.describe(i, 0)
        fixed = {k: plan[k] for k in ("tp", "pp", "vpp", "ep", "etp", "cp", "cp_kind",
                                      "schedule", "sharding", "optimizer_offload",
                                      "micro_batch", "recompute")}
        fixed[name] = option
        modules = tuple(plan["recompute_modules"]) or None
        try:
            res = search(result.arch, result.chip, result.stack, result.run, result.num_chips,
                         PlanRequest(**fixed, recompute_modules=modules,
                                     offload_modules=tuple(plan["offload_modules"])))
        except InputError:
            return None
        return float(res.steps.step_time[res.shown]) if res.fits else None
    settings = without_tp_overlap_conflict({**chosen, name: option})
    options = StackOptions(**{k: v for k, v in settings.items() if k != "sync_free"},
                           sync_free=settings["sync_free"])
    try:
        stack = stack_from_spec(spec.select(result.stack.release.name), options)
    except InputError:  # e.g. TP overlap without sequence parallelism
        return None
    steps = evaluate(result.arch, result.chip, stack, result.run, result.plans.take(i))
    return float(steps.step_time[0])


def assumed_payload(items: list[Assumption]) -> list[dict[str, Any]]:
    return [asdict(a) for a in items]


def assumed_lines(items: list[Assumption], limit: int = 4) -> list[str]:
    """The footer: the settings that move the answer most, then what the search filled."""
    settings = [a for a in items if not a.how.startswith("searched within")]
    searched = [a for a in items if a.how.startswith("searched within")]
    lines = []
    if settings:
        lines.append("assumed (not given): " + "; ".join(a.text() for a in settings[:limit])
                     + (f"; {len(settings) - limit} more in --format json"
                        if len(settings) > limit else ""))
    if searched:
        lines.append(f"searched within {searched[0].how.rpartition(' ')[2]}: "
                     + ", ".join(f"{a.setting} {_words(a.setting, a.value)}" for a in searched))
    return lines

