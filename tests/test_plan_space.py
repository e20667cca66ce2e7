"""The plan space frameworks run: tensor parallel wider than the KV heads, expert TP of any
power of two, deep virtual pipelines, long-context CP, and the zero-bubble schedule."""

import numpy as np
import pytest

from moebench.engine.context import build_context
from moebench.engine.plan import PlanRequest
from moebench.engine.plan_space import candidate_plans
from moebench.engine.state import stage_params
from moebench.engine.step import evaluate
from moebench.engine.terms import pipeline
from moebench.inputs.hardware import load_chip
from moebench.inputs.model import load_model
from moebench.inputs.run import RunConfig
from tests.conftest import stack_of

RUN = RunConfig(seq_len=4096, global_batch=512)
FIXED = dict(pp=1, vpp=1, ep=1, etp=1, cp=1, micro_batch=1, recompute="none", schedule="1f1b",
             sharding="zero-1", optimizer_offload=0.0)


def _ctx(arch, chip, n, run=RUN, **fixed):
    plans, _ = candidate_plans(arch, chip, run, n, PlanRequest(**{**FIXED, **fixed}))
    assert len(plans) == 1
    return build_context(arch, chip, stack_of(chip), run, plans)


def test_tp_wider_than_kv_heads_replicates_them():
    """Llama 3 70B has 8 KV heads of 128: at TP 16 each rank holds one KV head, 8/16 more than
    its share; K and V projections of 8192 x 128 each per layer are replicated twice."""
    arch, chip = load_model("llama-3-70b"), load_chip("gb200")  # a 72-chip NVLink domain
    ctx8, ctx16 = _ctx(arch, chip, 16, tp=8), _ctx(arch, chip, 16, tp=16)
    assert float(ctx8.kv_copies[0]) == 1 and float(ctx16.kv_copies[0]) == 2
    kv = 8192 * 2 * 8 * 128
    assert float(ctx16.kv_extra[0]) == pytest.approx(kv)
    dense16 = float(stage_params(ctx16)[0][0])
    plain = float(arch.params.dense) / 16
    assert dense16 == pytest.approx(plain + 80 * kv / 16)


def test_tp_beyond_the_attention_heads_is_refused():
    from moebench.engine.search import search
    from moebench.errors import InputError

    arch, chip = load_model("llama-3-70b"), load_chip("gb200")
    plans, _ = candidate_plans(arch, chip, RUN, 16, PlanRequest(tp=16))
    assert len(plans) > 0  # 16 is a multiple of the 8 KV heads and divides the 64 heads
    with pytest.raises(InputError, match="attention heads"):
        search(arch, chip, stack_of(chip), RunConfig(seq_len=4096, global_batch=128,
                                                     tp_across_domains=True), 128,
               PlanRequest(tp=128, **FIXED))


def test_expert_tp_of_any_power_of_two():
    arch, chip = load_model("mixtral-8x7b"), load_chip("h100")
    ctx = _ctx(arch, chip, 8, tp=4, ep=2, etp=2)
    assert float(ctx.etp[0]) == 2 and float(ctx.expert_dp[0]) == 2  # 4*2 ranks / (2*2)
    plans, _ = candidate_plans(arch, chip, RUN, 64, PlanRequest())
    assert {1, 2, 4, 8} <= set(np.unique(plans.etp))
    assert np.all(plans.etp <= plans.tp)  # the searched grid keeps etp within tp


def test_zero_bubble_has_a_third_of_the_1f1b_bubble():
    arch, chip = load_model("mixtral-8x7b"), load_chip("h100")
    one = _ctx(arch, chip, 8, pp=8, schedule="1f1b")
    zb = _ctx(arch, chip, 8, pp=8, schedule="zb1p")
    assert float(pipeline.bubble(one, 1.0)[0]) == pytest.approx(7.0)
    assert float(pipeline.bubble(zb, 1.0)[0]) == pytest.approx(7.0 / 3)
    st1 = evaluate(arch, chip, stack_of(chip), RUN, one.plans)
    stz = evaluate(arch, chip, stack_of(chip), RUN, zb.plans)
    assert float(stz.step_time[0]) < float(st1.step_time[0])
    assert float(stz.memory.total[0]) == pytest.approx(float(st1.memory.total[0]))


def test_long_context_searches_cp_beyond_8_and_deep_virtual_pipelines():
    arch, chip = load_model("llama-3-70b"), load_chip("h100")
    long = RunConfig(seq_len=131072, global_batch=64)
    plans, _ = candidate_plans(arch, chip, long, 1024, PlanRequest())
    assert {16, 32} <= set(np.unique(plans.cp))
    short, _ = candidate_plans(arch, chip, RUN, 1024, PlanRequest())
    assert np.unique(short.cp).max() == 8
    assert {12, 16} <= set(np.unique(short.vpp))  # 80 layers: 8 stages x 12 chunks fit


def test_ulysses_all_to_alls_by_hand():
    """Llama 3 70B at 128K tokens, TP 1, CP 8 inside one 8-GPU domain: each rank holds T/8
    tokens of Q (8192 wide), K and V (1024 each) and the output (8192); the all-to-alls move
    7/8 of them over NVLink, forward once and backward twice, all exposed."""
    from moebench.engine.collectives import gather_time
    from moebench.engine.terms import comm

    arch, chip = load_model("llama-3-70b"), load_chip("h100")
    long = RunConfig(seq_len=131072, global_batch=8)
    ctx = _ctx(arch, chip, 8, run=long, tp=1, cp=8, cp_kind="ulysses")
    rows = 131072 / 8 * 2.0
    by_hand = 3 * (float(gather_time(rows * (8192 + 2048), 8, 8, ctx.links))
                   + float(gather_time(rows * 8192, 8, 8, ctx.links)))
    assert float(comm.cp_time(ctx)[0]) == pytest.approx(by_hand)
    ring = _ctx(arch, chip, 8, run=long, tp=1, cp=8, cp_kind="ring")
    st_u = evaluate(arch, chip, stack_of(chip), long, ctx.plans)
    st_r = evaluate(arch, chip, stack_of(chip), long, ring.plans)
    # The ring hides behind 128K-token attention; Ulysses' all-to-alls are all exposed.
    assert float(st_r.comm_exposed["cp"][0]) < float(st_u.comm_exposed["cp"][0])
    # Exposed per step: 80 layers x 8 micro-batches (8 sequences, DP 1) of it.
    assert float(st_u.comm_exposed["cp"][0]) == pytest.approx(by_hand * 80 * 8, rel=1e-6)


def test_ulysses_needs_heads_divisible_by_tp_times_cp():
    from moebench.engine.search import search
    from moebench.errors import InputError

    arch, chip = load_model("llama-3-70b"), load_chip("h100")
    long = RunConfig(seq_len=131072, global_batch=8, tp_across_domains=True)
    with pytest.raises(InputError, match="ulysses splits heads"):
        search(arch, chip, stack_of(chip), long, 1024,
               PlanRequest(**{**FIXED, "tp": 8, "cp": 16, "cp_kind": "ulysses"}))
