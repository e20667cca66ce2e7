"""Heterogeneous pipeline parallelism: the stages of every pipeline on two chip types.

An analytic approximation built from per-layer times measured with the engine on each chip
(:mod:`.stages`). Every pipeline replica puts p1 stages on the first type and p2 on the second;
the data-parallel degree D and the micro-batch size are common (a micro-batch flows through
both), each type keeps its own tensor/expert parallelism and recompute inside its stages. L1
layers go to the first type and L - L1 to the second (whole layers; a stage of type k holds
ceil(L_k / p_k) of them), the input embedding sits on the first stage and the LM head on the
last: the order of the two types is searched both ways, so the embedding, and the head with
its logits, go where they fit best. A type's stage count and layers are bounded by its memory:
training state per layer, activations per layer of the micro-batches in flight, embedding or
head and logits where they sit. As in the engine's memory model, every stage is checked with
the micro-batches the first stage keeps in flight, min(p1 + p2, m). Later 1F1B stages hold
fewer (FlagScale's heterogeneous pipeline puts the larger-memory devices first for that
reason), but crediting that to mixes alone would favour them over their single-chip baselines,
which the engine checks the same conservative way.

Step time of a 1F1B pipeline with uneven stages (t_s: one micro-batch's forward and backward on
stage s; the boundary between types is a stage of its own, the activations forward and their
gradients back over the common fabric, pipelined with compute):

    step = sum_s t_s + (m - 1) max_s t_s + exposed DP and optimizer of the slowest tail

which for equal stages is the engine's (m + p - 1) t_mb. The second type's stage with the head
takes max(ceil(L2/p2) tau2, (L2 tau2 + head)/p2), as the engine balances its head. Cross-type
traffic per micro-batch: mb x s x h BF16 values each way per replica, sent by min(tp1, tp2)
chip pairs in parallel. Tied embeddings add a cross-type all-reduce of the embedding gradient.
The fastest pipeline whose stages would still fit at the top of each stack's measured
allocator hold is taken where one does, as the engine's search takes such a plan where it
chooses the layout; a part without it is reported tight. Not modelled: virtual stages,
context parallelism, DualPipe, and layers split unevenly inside one type.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moebench.engine.context import BF16
from moebench.engine.mix.links import CrossLink, group_allreduce_time, transfer_time
from moebench.engine.mix.result import PIPELINE, PartPlan, StrategyResult, unavailable
from moebench.engine.mix.shares import MixType
from moebench.engine.mix.stages import StageTable, stage_table
from moebench.engine.plan import PlanRequest
from moebench.inputs.model import ModelArch

MB_KEY = 64  # larger than any micro-batch size: dp x MB_KEY + mb identifies (dp, mb)
PAIR_CHUNK = 32_768  # pairs of stage layouts evaluated at once (memory, not speed)


def _pairs(key_a: np.ndarray, key_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) with key_a[i] == key_b[j], as two index arrays."""
    order = np.argsort(key_b, kind="stable")
    sorted_b = key_b[order]
    lo = np.searchsorted(sorted_b, key_a, "left")
    count = np.searchsorted(sorted_b, key_a, "right") - lo
    ia = np.repeat(np.arange(len(key_a)), count)
    offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    return ia, order[np.repeat(lo, count) + offset]


def _max_layers(room: Any, per_layer: Any) -> Any:
    """Whole layers per stage that fit in ``room`` bytes at ``per_layer`` bytes each."""
    return np.floor(np.maximum(room, 0.0) / per_layer)


Found = dict[str, Any]
"""One pipeline: the layouts (i, j), the layers on the first type, its step and stages."""


def _faster(found: Found | None, best: Found | None) -> Found | None:
    return found if found is not None and (best is None or found["step"] < best["step"]) \
        else best


def _evaluate_order(arch: ModelArch, a: StageTable, b: StageTable, link: CrossLink,
                    grad_bytes: float) -> tuple[Found | None, Found | None]:
    """The fastest pipeline with type ``a`` first and ``b`` last, over every pair of stage
    layouts with the same (D, micro-batch) and a few layer splits around the balance point,
    and the fastest whose stages keep the allocator's measured headroom; pairs are evaluated in
    chunks so that memory stays bounded on large clusters."""
    ia, ib = _pairs(a.plans.dp * MB_KEY + a.plans.mb, b.plans.dp * MB_KEY + b.plans.mb)
    fast: Found | None = None
    roomy: Found | None = None
    for lo in range(0, len(ia), PAIR_CHUNK):
        f, r = _best_of_pairs(arch, a, b, ia[lo:lo + PAIR_CHUNK], ib[lo:lo + PAIR_CHUNK], link,
                              grad_bytes)
        fast, roomy = _faster(f, fast), _faster(r, roomy)
    return fast, roomy


def _best_of_pairs(arch: ModelArch, a: StageTable, b: StageTable, ia: np.ndarray,
                   ib: np.ndarray, link: CrossLink, grad_bytes: float
                   ) -> tuple[Found | None, Found | None]:
    """The fastest of the pipelines pairing layout ``ia[k]`` of ``a`` with ``ib[k]`` of ``b``,
    and the fastest of those whose stages keep the headroom (:meth:`StageTable.keeps_headroom`;
    None where none does)."""
    num_layers = arch.spec.num_layers
    p1, p2 = a.plans.pp[ia].astype(float), b.plans.pp[ib].astype(float)
    m = a.micro_batches[ia]
    # Every stage is checked with the first stage's micro-batches in flight, min(P, m), as the
    # engine checks a homogeneous pipeline: later 1F1B stages hold fewer, but crediting that
    # only here would favour mixes over the single-chip plans they are compared with.
    in_flight_1 = in_flight_2 = np.minimum(p1 + p2, m)
    l1max = _max_layers(a.usable - a.working[ia] - a.embed_state[ia],
                        a.state_per_layer[ia] + in_flight_1 * a.act_per_layer[ia])
    head = b.head_state[ib] + b.logits[ib]
    l2max = np.minimum(
        _max_layers(b.usable - b.working[ib] - np.where(p2 == 1, head, 0.0),
                    b.state_per_layer[ib] + in_flight_2 * b.act_per_layer[ib]),
        _max_layers(b.usable - b.working[ib] - head,
                    b.state_per_layer[ib] + b.act_per_layer[ib]))
    lo = np.maximum(p1, num_layers - p2 * l2max)
    hi = np.minimum(p1 * l1max, num_layers - p2)
    tau1, tau2, h2 = a.layer_s[ia], b.layer_s[ib], b.head_s[ib]
    star = p1 * (num_layers * tau2 + h2) / (p2 * tau1 + p1 * tau2)
    rest = num_layers - star
    cands = np.stack([np.floor(star), np.ceil(star), p1 * np.floor(star / p1),
                      p1 * np.ceil(star / p1), num_layers - p2 * np.ceil(rest / p2),
                      num_layers - p2 * np.floor(rest / p2), lo, hi], axis=1)
    l1 = np.clip(cands, lo[:, None], hi[:, None])
    l2 = num_layers - l1
    p1c, p2c = p1[:, None], p2[:, None]
    t1 = np.ceil(l1 / p1c) * tau1[:, None]
    t2 = np.maximum(np.ceil(l2 / p2c) * tau2[:, None], (l2 * tau2[:, None] + h2[:, None]) / p2c)
    replicas = a.plans.dp[ia].astype(float)
    msg = a.plans.mb[ia] * a.seq_len * arch.spec.hidden_size * BF16  # one micro-batch, one way
    flows = replicas * np.minimum(a.plans.tp[ia], b.plans.tp[ib])
    t_link = (2 * transfer_time(replicas * msg, flows, link))[:, None]
    slowest = np.maximum(np.maximum(t1, t2), t_link)
    fill = l1 * tau1[:, None] + l2 * tau2[:, None] + h2[:, None] + t_link
    tail = np.maximum(np.ceil(l1 / p1c) * a.tail_per_layer[ia][:, None],
                      np.ceil(l2 / p2c) * b.tail_per_layer[ib][:, None])
    tied = 0.0
    if arch.spec.tied_embeddings:
        tied = group_allreduce_time(arch.params.embedding * grad_bytes,
                                    [int(a.plans.tp.max()), int(b.plans.tp.max())], link)
    step = fill + (m[:, None] - 1) * slowest + tail + tied
    step = np.where((lo <= hi)[:, None], step, np.inf)
    live1 = _stage_live(a, ia, np.ceil(l1 / p1c), in_flight_1, True)
    live2 = _stage_live(b, ib, np.ceil(l2 / p2c), in_flight_2, False, p2c)
    keeps = a.keeps_headroom(live1) & b.keeps_headroom(live2)
    picks = (int(np.argmin(step)), int(np.argmin(np.where(keeps, step, np.inf))))
    rows = {"i": ia, "j": ib, "link": t_link[:, 0], "micro_batches": m,
            "cross_bytes": m * replicas * msg, "in_flight_1": in_flight_1,
            "in_flight_2": in_flight_2}
    cells = {"l1": l1, "step": step, "t1": t1, "t2": t2}
    fast, roomy = (None if not np.isfinite(step.flat[k]) else
                   _found(k // step.shape[1], k % step.shape[1], rows, cells, tied)
                   for k in picks)
    return fast, roomy


def _stage_live(t: StageTable, idx: np.ndarray, per_stage: np.ndarray, in_flight: np.ndarray,
                first: bool, stages: Any = None) -> np.ndarray:
    """Live bytes per chip on a type's most loaded stage, for layouts ``idx`` and
    ``per_stage`` layers each (one column per candidate split), ``stages`` per pipeline on the
    last type (whose single stage holds the head beside its in-flight layers)."""
    def col(x: np.ndarray) -> np.ndarray:
        return x[idx][:, None]

    body = per_stage * (col(t.state_per_layer) + in_flight[:, None] * col(t.act_per_layer)) \
        + col(t.working)
    if first:
        return body + col(t.embed_state)
    head = col(t.head_state) + col(t.logits)
    last = per_stage * (col(t.state_per_layer) + col(t.act_per_layer)) + col(t.working) + head
    return np.maximum(body + np.where(stages == 1, head, 0.0), last)


def _found(row: int, col: int, rows: dict[str, np.ndarray], cells: dict[str, np.ndarray],
           tied: float) -> Found:
    """The pipeline at layout pair ``row`` and split ``col``."""
    r = {k: float(v[row]) for k, v in rows.items()}
    c = {k: float(v[row, col]) for k, v in cells.items()}
    return {"i": int(r["i"]), "j": int(r["j"]), "l1": int(c["l1"]), "step": c["step"],
            "t1": c["t1"], "t2": c["t2"], "link": r["link"],
            "micro_batches": r["micro_batches"],
            "exposed_cross": r["link"] + (r["micro_batches"] - 1) * max(
                0.0, r["link"] - max(c["t1"], c["t2"])) + tied,
            "cross_bytes": r["cross_bytes"], "in_flight": (r["in_flight_1"], r["in_flight_2"])}


def _part(t: MixType, table: StageTable, i: int, layers: int, stage_s: float, m: float,
          in_flight: float, first: bool, global_batch: int) -> PartPlan:
    stages = int(table.plans.pp[i])
    per_stage = -(-layers // stages)
    live = float(_stage_live(table, np.array([i]), np.array([[per_stage]]),
                             np.array([in_flight]), first, np.array([[stages]]))[0, 0])
    memory = table.device_bytes(live)
    plan = table.plans.describe(i, int(round(m)))
    plan.update(layers=layers, layers_per_stage=per_stage)
    return PartPlan(chip=t.chip.name, stack=t.stack.name, count=t.count, plan=plan,
                    sequences=global_batch, layers=layers, step_time_s=stage_s,
                    memory_bytes=float(memory),
                    checkpoint_bytes=float(per_stage * table.ckpt_per_layer[i]),
                    keeps_headroom=bool(table.keeps_headroom(live)))


def hetero_pipeline(arch: ModelArch, types: list[MixType], request: PlanRequest,
                    link: CrossLink) -> StrategyResult:
    """Strategy 2 on a mix of two chip types (see the module docstring)."""
    if len(types) != 2:
        return unavailable(PIPELINE, "modelled for mixes of exactly two chip types")
    if request.schedule in ("dualpipe", "zb1p", "dualpipev") or request.vpp not in (None, 1) or \
            request.cp not in (None, 1) or request.sharding not in (None, "zero-1") or \
            request.optimizer_offload not in (None, 0.0) or request.offload_modules or \
            request.pipeline_layout not in (None, "balanced"):
        return unavailable(PIPELINE, "modelled for 1F1B with one virtual stage, no context "
                                     "parallelism, ZeRO-1, no offload and its own layout; the "
                                     "plan request asks for another")
    tables = [stage_table(arch, t, request) for t in types]
    missing = [t.chip.name for t, tab in zip(types, tables, strict=True) if tab is None]
    if missing:
        return unavailable(PIPELINE, f"no pipeline stage layout on {', '.join(missing)}")
    grad_bytes = max(t.stack.grad_reduce_bytes for t in types)
    fast: Found | None = None
    roomy: Found | None = None
    for first in (0, 1):
        a, b = tables[first], tables[1 - first]
        assert a is not None and b is not None
        f, r = _evaluate_order(arch, a, b, link, grad_bytes)
        fast = _faster(None if f is None else {**f, "first": first}, fast)
        roomy = _faster(None if r is None else {**r, "first": first}, roomy)
    if fast is None:
        return unavailable(PIPELINE, "no split of the layers fits both types' memory")
    # As the engine's search where it chooses the layout (a mix's split is always chosen,
    # :func:`moebench.engine.search.requires_headroom`): the fastest pipeline whose stages keep
    # the allocator's measured headroom, where one does.
    r = roomy if roomy is not None else fast
    first = r["first"]
    g = types[0].run.global_batch
    ta, tb = tables[first], tables[1 - first]
    assert ta is not None and tb is not None
    parts = [
        _part(types[first], ta, r["i"], r["l1"], r["t1"], r["micro_batches"], r["in_flight"][0],
              True, g),
        _part(types[1 - first], tb, r["j"], arch.spec.num_layers - r["l1"], r["t2"],
              r["micro_batches"], r["in_flight"][1], False, g),
    ]
    if first == 1:
        parts.reverse()  # parts in the mix's order; ``first_stage`` says which leads
    return StrategyResult(
        strategy=PIPELINE, step_time_s=r["step"], parts=tuple(parts),
        cross_s=r["exposed_cross"], cross_bytes=r["cross_bytes"], network=link.network,
        details={"first_stage": types[first].chip.name, "last_stage": types[1 - first].chip.name,
                 "pipeline_stages": int(ta.plans.pp[r["i"]] + tb.plans.pp[r["j"]]),
                 "micro_batches": int(round(r["micro_batches"])),
                 "boundary_s_per_micro_batch": r["link"]})
