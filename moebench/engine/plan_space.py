"""The plan space: every candidate plan as flat numpy arrays, and the rules that prune it.

ETP, the tensor parallelism inside experts, is any power of two within a scale-up domain (1
keeps experts whole, the choice for fine-grained MoE; Megatron-Core defaults to TP). The search
builds every combination of the candidate values as flat numpy arrays and keeps those that
real frameworks accept (Megatron-Core's rules, noted per mask), in one pass with no Python
loop per plan.
"""

from __future__ import annotations

import numpy as np

from moebench.engine.plan import PlanArrays, PlanRequest
from moebench.engine.plan_grid import (
    _activation_offload,
    _choices,
    _divisors,
    _Grid,
    _layout,
    _named,
    _offload,
    _recompute_options,
    _sharding,
)
from moebench.errors import InputError
from moebench.inputs.hardware import Chip
from moebench.inputs.model import MlaAttention, ModelArch
from moebench.inputs.release import Release
from moebench.inputs.release_everything import EVERYTHING
from moebench.inputs.run import (
    CP_KINDS,
    DUALPIPEV,
    SCHEDULES,
    RunConfig,
)
from moebench.inputs.stack_catalog import releases_with_schedule

POW2 = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
MICRO_BATCHES = (1, 2, 4, 8)
# Published plans use up to 24 virtual stages (e.g. 12 and 24 in Megatron-Bridge recipes) and
# context parallelism up to 32 for 128K-token training. The search grid offers CP beyond 8
# from 32K-token sequences on (below, a rank would hold under 2K tokens); any CP may be given.
VPP_CHOICES = (1, 2, 3, 4, 6, 8, 12, 16, 24)
CP_CHOICES = (1, 2, 4, 8)
CP_LONG_CHOICES = (16, 32)
LONG_SEQUENCE = 32768
def candidate_plans(
    arch: ModelArch, chip: Chip, run: RunConfig, num_chips: int, req: PlanRequest,
    release: Release = EVERYTHING,
) -> tuple[PlanArrays, dict[str, int]]:
    """Every valid plan for this cluster that ``release`` implements, and how many
    combinations each rule removed. A fixed field the release does not implement is an
    InputError naming what it offers. The search passes its stack's release; the default,
    :data:`~moebench.inputs.release_everything.EVERYTHING`, is the plan space itself (tests of
    it)."""
    if num_chips <= 0:
        raise InputError("--num-chips", None, f"must be a positive whole number, got {num_chips}")
    caps = release.caps
    _check_given(req, release, chip.vendor, arch.is_moe)
    spec = arch.spec
    experts = spec.moe.num_experts if spec.moe else 1
    att = spec.attention
    kv_heads = att.num_heads if isinstance(att, MlaAttention) else att.num_kv_heads
    g = _Grid()
    # A release without TP and CP for MoE models (NeMo AutoModel) searches neither for them.
    no_tp_cp = arch.is_moe and not caps.moe_tp_cp
    g.expand("tp", _choices(req.tp, (1,) if no_tp_cp else POW2, "--tp"))
    lin = spec.linear_attention
    heads = [att.num_heads, kv_heads]
    if lin:  # Gated DeltaNet splits its key and value heads over tp too
        heads += [lin.num_key_heads, lin.num_value_heads]
    g.rule("tp must divide the attention heads and the KV heads, or be a multiple of the KV "
           "heads (each then replicated)",
           np.all([n % g["tp"] == 0 for n in heads], axis=0)
           | ((att.num_heads % g["tp"] == 0) & (g["tp"] % kv_heads == 0) & (lin is None)))
    g.rule("tp beyond the scale-up domain", (g["tp"] <= chip.up_domain) | run.tp_across_domains)
    cp_grid = CP_CHOICES + (CP_LONG_CHOICES if run.seq_len >= LONG_SEQUENCE else ())
    g.expand("cp", _choices(req.cp, cp_grid if caps.cp_kinds and not no_tp_cp else (1,), "--cp"))
    g.rule("cp needs seq_len divisible by 2*cp",
           (g["cp"] == 1) | (run.seq_len % (2 * g["cp"]) == 0))
    # Ulysses is searched at long context, like CP beyond 8; it may always be given.
    kinds = tuple(CP_KINDS.index(k) for k in caps.cp_kinds
                  if k == "ring" or run.seq_len >= LONG_SEQUENCE) or (0,)
    g.expand("cp_kind", np.array(kinds) if req.cp_kind is None
             else _named(req.cp_kind, CP_KINDS, "--cp-kind"))
    g.rule("ulysses needs cp > 1", (g["cp_kind"] == 0) | (g["cp"] > 1))
    g.rule("ulysses splits heads over tp*cp: they must divide the attention heads",
           (g["cp_kind"] == 0) | ((att.num_heads % (g["tp"] * g["cp"]) == 0) & (lin is None)))
    # Linear attention would pass its recurrent state along the sequence, not K/V chunks.
    g.rule("cp of linear-attention layers is not modelled", (g["cp"] == 1) | (lin is None))
    # Any divisor of the chips up to layers + 2 (a stage per layer, embedding and loss), at every
    # scale: 6,144 chips take PP24 as readily as 4,096 take PP16.
    g.expand("pp", _choices(req.pp, _divisors(num_chips, spec.num_layers + 2), "--pp"))
    model_par = g["tp"] * g["pp"] * g["cp"]
    g.rule("chips not divisible by tp*pp*cp", num_chips % model_par == 0)
    g.cols["dp"] = num_chips // (g["tp"] * g["pp"] * g["cp"])
    g.expand("mb", _choices(req.micro_batch, MICRO_BATCHES, "--micro-batch"))
    g.rule("global batch not divisible by dp*micro_batch",
           run.global_batch % (g["dp"] * g["mb"]) == 0)
    g.cols["m"] = run.global_batch // (g["dp"] * g["mb"])
    g.expand("vpp", _choices(req.vpp, VPP_CHOICES if caps.virtual_pipeline else (1,), "--vpp"))
    # Megatron can give the embedding and the loss a virtual stage each
    # (--account-for-embedding/loss-in-pipeline-split), so chunks may exceed layers by two.
    g.rule("more pipeline stages than layers (+2 for embedding and loss)",
           g["pp"] * g["vpp"] <= spec.num_layers + 2)
    g.rule("vpp needs pp > 1 and micro-batches divisible by pp",
           (g["vpp"] == 1) | ((g["pp"] > 1) & (g["m"] % g["pp"] == 0)))
    g.expand("ep", _choices(req.ep, POW2 if spec.moe else (1,), "--ep"))
    g.rule("ep must divide the experts", experts % g["ep"] == 0)
    # Expert TP is independent of attention TP in Megatron-Core (--expert-tensor-parallel-size):
    # any power of two inside a scale-up domain may be given; the search grid keeps it within
    # the attention TP group (1 to tp), where the tokens are already shared.
    etp_values = tuple(v for v in POW2 if v <= chip.up_domain) if spec.moe else (1,)
    g.expand("etp", _choices(req.etp, etp_values, "--etp"))
    g.rule("etp beyond the scale-up domain", g["etp"] <= chip.up_domain)
    if req.etp is None:
        g.rule("searched etp stays within tp", g["etp"] <= g["tp"])
    if spec.moe and not caps.expert_tp:
        g.rule(f"{release.label} shards experts over the attention TP group (no separate "
               "expert TP): etp = tp", g["etp"] == g["tp"])
    g.rule("ep*etp must divide tp*cp*dp (ranks per stage)",
           (g["tp"] * g["cp"] * g["dp"]) % (g["ep"] * g["etp"]) == 0)
    g.expand("schedule", _named(req.schedule, SCHEDULES, "--schedule") if req.schedule
             else np.array([SCHEDULES.index(s) for s in caps.schedules]))
    pp, m = g["pp"], g["m"]
    g.rule("dualpipe needs even pp >= 2, vpp 1, even micro-batches >= pp",
           (g["schedule"] != 1)
           | ((pp >= 2) & (pp % 2 == 0) & (g["vpp"] == 1) & (m >= pp) & (m % 2 == 0)))
    g.rule("zb1p needs pp >= 2 and vpp 1 (it is a 1F1B variant without virtual stages)",
           (g["schedule"] != 2) | ((g["pp"] >= 2) & (g["vpp"] == 1)))
    # DualPipeV (deepseek-ai/DualPipe, dualpipev.py: assert num_chunks >= num_ranks * 2): any
    # number of ranks (its 2 pp stages are always even), two chunks per rank of its own, not
    # Megatron's virtual stages, and at least 2 pp micro-batches; one rank is no pipeline.
    pp, m = g["pp"], g["m"]
    g.rule("dualpipev needs pp >= 2, vpp 1, micro-batches >= 2*pp and 2*pp <= layers + 2",
           (g["schedule"] != DUALPIPEV)
           | ((pp >= 2) & (g["vpp"] == 1) & (m >= 2 * pp) & (2 * pp <= spec.num_layers + 2)))
    g.drop("_", "m")
    written = _layout(g, req, spec.num_layers, spec.mtp_depth)
    _activation_offload(g, req, chip)
    _sharding(g, req, chip, caps.sharding)
    _offload(g, req, chip, caps.optimizer_offload)
    # Recompute last, and no rule after it: a plan's recompute variants are adjacent rows,
    # which the search's exact pruning relies on.
    options = _recompute_options(req, caps.recompute)
    g.expand("_rc", np.arange(len(options)))
    g.cols["recompute"] = options[g["_rc"], 0]
    g.cols["rc_modules"] = options[g["_rc"], 1]
    plans = PlanArrays(
        tp=g["tp"], pp=g["pp"], vpp=g["vpp"], ep=g["ep"], etp=g["etp"], cp=g["cp"],
        dp=g["dp"], mb=g["mb"], recompute=g["recompute"], rc_modules=g["rc_modules"],
        schedule=g["schedule"],
        sharding=g["sharding"], shard=g["shard"], cp_kind=g["cp_kind"],
        optimizer_offload=g["optimizer_offload"],
        layout=g.cols.get("layout"), written=written, act_offload=g.cols.get("act_offload"),
    )
    return plans, g.removed


def _check_given(req: PlanRequest, release: Release, vendor: str, moe: bool) -> None:
    """A fixed plan field the release does not implement: one line naming what it offers
    and, for a schedule, the shipped stacks that implement it."""
    caps = release.caps

    def refuse(option: str, what: str, offers: str, elsewhere: str = "") -> None:
        raise InputError(option, None, f"{release.label} does not implement {what} (it offers "
                         f"{offers}); pick another release (moebench stacks show "
                         f"{release.family}){elsewhere}")

    if req.schedule is not None and req.schedule not in caps.schedules:
        others = [r for r in releases_with_schedule(req.schedule, vendor)
                  if not r.startswith(f"{release.family}@")]
        refuse("--schedule", req.schedule, ", ".join(caps.schedules),
               f" or a stack that does: --stack {' or '.join(others)}" if others else "")
    if req.vpp is not None and req.vpp > 1 and not caps.virtual_pipeline:
        refuse("--vpp", "virtual pipeline stages", "vpp 1")
    if req.cp is not None and req.cp > 1 and not caps.cp_kinds:
        refuse("--cp", "context parallelism", "cp 1")
    if req.cp_kind is not None and req.cp_kind not in caps.cp_kinds:
        refuse("--cp-kind", req.cp_kind, ", ".join(caps.cp_kinds) or "no context parallelism")
    if req.recompute is not None and req.recompute not in caps.recompute:
        refuse("--recompute", f"{req.recompute} recompute", ", ".join(caps.recompute))
    if req.recompute_modules is not None and "selective" not in caps.recompute:
        refuse("--recompute-modules", "selective recompute", ", ".join(caps.recompute))
    for option, size in (("--tp", req.tp), ("--cp", req.cp)):
        if moe and size is not None and size > 1 and not caps.moe_tp_cp:
            refuse(option, f"{option[2:].upper()} for MoE models", f"{option[2:]} 1")
    if req.sharding is not None and req.sharding not in caps.sharding:
        refuse("--zero/--fsdp", req.sharding, ", ".join(caps.sharding))
    if req.optimizer_offload and not caps.optimizer_offload:
        refuse("--optimizer-offload", "optimizer offload", "no offload")
    extra = [m for m in req.offload_modules or () if m not in caps.activation_offload]
    if extra:
        refuse("--offload-modules", f"activation offload of {', '.join(extra)}",
               ", ".join(caps.activation_offload) or "no activation offload")
    if (req.etp is not None and req.tp is not None and req.etp != req.tp
            and not caps.expert_tp):
        refuse("--etp", "expert TP apart from TP", f"etp = tp ({req.tp})")


def first_violation(removed: dict[str, int]) -> str:
    """The rule that removed the last candidates, for a one-line error."""
    return str(removed.get("_last", "no plan satisfies the constraints"))
