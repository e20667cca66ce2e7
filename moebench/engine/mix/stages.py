"""Per-layer time and memory of one chip type's pipeline stages, measured with the engine.

For every plan the engine accepts on the type's own chips (its count, the global batch, one
virtual stage, no context parallelism, 1F1B), the plan fixes a stage layout (tp, ep, etp,
recompute, micro-batch) and the data-parallel degree D; the engine's step gives one
micro-batch's wall time on the slowest stage, ``t_mb = (step - bubble - exposed DP -
optimizer) / m``, and the seconds per layer are what remains of it once the LM head's share and
the exposed pipeline sends are taken out, over the layers on that stage. Memory per chip is
rebuilt from the engine's own pieces (:mod:`moebench.engine.memory`): training state per layer
and for the embedding and the LM head, activations per layer and micro-batch in flight, the
working set of a recomputed layer, the logits and the stack's reserve, so that a stage with any
number of layers, anywhere in a longer pipeline, can be checked against the chip's memory.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from moebench.engine.context import build_context
from moebench.engine.memory import activation_bytes_per_layer, high_hold
from moebench.engine.memory_ranks import logits_held
from moebench.engine.mix.shares import MixType
from moebench.engine.plan import PlanArrays, PlanRequest
from moebench.engine.plan_space import candidate_plans
from moebench.engine.step import evaluate
from moebench.engine.terms import compute
from moebench.errors import InputError
from moebench.inputs.model import ModelArch
from moebench.inputs.run import GRAD_BYTES, OPTIMIZER_BYTES, WEIGHT_BYTES


@dataclass(frozen=True)
class StageTable:
    """Stage layouts of one chip type as arrays (one entry per engine plan)."""

    plans: PlanArrays
    micro_batches: np.ndarray
    """m = G / (D x mb): micro-batches per pipeline per step."""
    layer_s: np.ndarray
    """Seconds per layer and micro-batch (forward, backward, recompute, exposed TP/EP, host)."""
    head_s: np.ndarray
    """LM head (and MTP) seconds per micro-batch, forward and backward, on this type."""
    state_per_layer: np.ndarray
    """Training-state bytes per chip per layer (weights, gradients, optimizer shard)."""
    act_per_layer: np.ndarray
    """Activation bytes per chip per layer and micro-batch in flight."""
    working: np.ndarray
    embed_state: np.ndarray
    head_state: np.ndarray
    logits: np.ndarray
    reserve: float
    tail_per_layer: np.ndarray
    """Exposed DP traffic and optimizer step, seconds per step per layer on the stage."""
    ckpt_per_layer: np.ndarray
    """Checkpoint bytes per chip per layer (weights and optimizer shard)."""
    hbm: float
    fragmentation: float
    """The stack's allocator hold beyond live tensors, a fraction of them."""
    fragmentation_high: float
    """The same at the top of its measured range: the headroom the search prefers."""
    seq_len: int

    @property
    def usable(self) -> float:
        """Bytes live tensors may take: the device less the reserve, over the allocator's
        hold (:class:`moebench.engine.memory.MemoryBreakdown`)."""
        return (self.hbm - self.reserve) / (1.0 + self.fragmentation)

    def device_bytes(self, allocated: Any) -> Any:
        """What live tensors of ``allocated`` bytes take of the device, as the engine counts."""
        return allocated * (1.0 + self.fragmentation) + self.reserve

    def keeps_headroom(self, allocated: Any) -> Any:
        """Whether live tensors of ``allocated`` bytes still fit at the allocator's high hold
        (:meth:`moebench.engine.memory.MemoryBreakdown.keeps_headroom`)."""
        return high_hold(allocated, self.reserve, self.device_bytes(allocated),
                         self.fragmentation_high) <= self.hbm


def _state(dense: np.ndarray, expert: np.ndarray, dense_dp: np.ndarray,
           expert_dp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(training state, checkpoint) bytes per chip of ``dense`` replicated and ``expert``
    expert-sharded parameters per chip: weights and gradients whole, optimizer sharded over
    the data-parallel groups (as :func:`moebench.engine.memory_ranks.memory_per_chip`)."""
    optimizer = OPTIMIZER_BYTES * (dense / dense_dp + expert / expert_dp)
    weights = WEIGHT_BYTES * (dense + expert)
    return weights + GRAD_BYTES * (dense + expert) + optimizer, weights + optimizer


def stage_table(arch: ModelArch, t: MixType, request: PlanRequest) -> StageTable | None:
    """Every stage layout of type ``t`` (None when the engine accepts no plan)."""
    # The state memory below is ZeRO-1's (optimizer sharded, on the device), so stages are
    # searched with it.
    req = replace(request, vpp=1, cp=1, schedule="1f1b", sharding="zero-1", shard_group=None,
                  optimizer_offload=0.0, offload_modules=(), pipeline_layout=None)
    try:
        plans, _ = candidate_plans(arch, t.chip, t.run, t.count, req, t.stack.release)
    except InputError:
        return None
    if len(plans) == 0:
        return None
    steps = evaluate(arch, t.chip, t.stack, t.run, plans)
    ctx = build_context(arch, t.chip, t.stack, t.run, plans)
    f = compute.layer_forward(ctx)
    spec, p, sh = arch.spec, arch.params, ctx.shapes
    m = steps.num_micro
    t_mb = (steps.step_time - steps.bubble - steps.comm_exposed["dp"] - steps.optimizer) / m
    layers = plans.layers_per_stage(spec.num_layers)
    in_layers = t_mb - (steps.compute["lm_head_mtp"] + steps.comm_exposed["pp"]) / m
    stored, working = activation_bytes_per_layer(ctx)
    tp, ep = ctx.tp, ctx.ep * ctx.etp
    dense_dp, expert_dp = ctx.dp * ctx.cp, ctx.expert_dp
    zero = np.zeros_like(tp)
    per_layer_dense = (p.dense - p.embedding - p.lm_head) / spec.num_layers / tp
    state, ckpt = _state(per_layer_dense, p.expert / spec.num_layers / ep, dense_dp, expert_dp)
    mtp_expert = spec.mtp_depth * sh.num_experts * sh.expert_params
    embed, _ = _state(p.embedding / tp, zero, dense_dp, expert_dp)
    head, _ = _state((p.lm_head + p.mtp - mtp_expert) / tp, mtp_expert / ep + zero, dense_dp,
                     expert_dp)
    return StageTable(
        plans=plans, micro_batches=m, layer_s=in_layers / layers,
        head_s=f.head_train + f.mtp_train + zero,
        state_per_layer=state, act_per_layer=stored, working=working, embed_state=embed,
        head_state=head,
        logits=logits_held(ctx),
        reserve=float(t.stack.reserve_bytes),
        tail_per_layer=(steps.comm_exposed["dp"] + steps.optimizer) / layers,
        ckpt_per_layer=ckpt, seq_len=t.run.seq_len, hbm=float(t.chip.hbm_bytes),
        fragmentation=float(t.stack.fragmentation),
        fragmentation_high=float(t.stack.fragmentation_high),
    )
