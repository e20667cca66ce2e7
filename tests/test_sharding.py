"""Sharding of training state (ZeRO 0-3, FSDP, HSDP) and BF16 optimizer states: memory and
data-parallel traffic against hand-computed cases, and the plan flags."""

import json

import numpy as np
import pytest

from moebench.engine.context import build_context
from moebench.engine.plan import PlanRequest
from moebench.engine.plan_space import candidate_plans
from moebench.engine.state import layer_params
from moebench.engine.step import evaluate
from moebench.engine.terms.data_parallel import (
    DpTraffic,
    dp_exposed,
    dp_traffic,
    optimizer_step_bytes,
)
from moebench.inputs.hardware import load_chip
from moebench.inputs.run import RunConfig
from tests.conftest import stack_of

RUN = RunConfig(seq_len=128, global_batch=64)
ONE_PLAN = dict(tp=1, pp=1, vpp=1, ep=1, etp=1, cp=1, micro_batch=1, recompute="none",
                schedule="1f1b", optimizer_offload=0.0)


def _one(arch, chip, n, run=RUN, **fixed):
    plans, _ = candidate_plans(arch, chip, run, n, PlanRequest(**{**ONE_PLAN, **fixed}))
    assert len(plans) == 1
    return plans


def _memory(tiny, n, run=RUN, **fixed):
    chip = load_chip("h100")
    plans = _one(tiny, chip, n, run, **fixed)
    return evaluate(tiny, chip, stack_of(chip), run, plans).memory, plans


def test_one_layer_holds_its_attention_and_experts(tiny):
    chip = load_chip("h100")
    ctx = build_context(tiny, chip, stack_of(chip), RUN, _one(tiny, chip, 8, sharding="zero-1"))
    p = tiny.params
    # Tiny: 4 layers, one of them dense; 3 MoE layers share the routed experts.
    by_hand = (p.dense - p.embedding - p.lm_head) / 4 + p.routed_experts / 3
    assert float(layer_params(ctx)[0]) == pytest.approx(by_hand)


@pytest.mark.parametrize("sharding", ["zero-0", "zero-1", "zero-2", "zero-3"])
def test_state_memory_by_zero_level(tiny, sharding):
    """8-way data parallel, everything else 1: P parameters, L one layer's."""
    mem, plans = _memory(tiny, 8, sharding=sharding)
    chip = load_chip("h100")
    big_l = float(layer_params(build_context(tiny, chip, stack_of(chip), RUN, plans))[0])
    p = float(tiny.params.total)
    owned = p / 8
    weights = {"zero-3": 2 * (owned + 2 * big_l)}.get(sharding, 2 * p)
    grads = 4 * (owned + big_l) if sharding in ("zero-2", "zero-3") else 4 * p
    optimizer = 12 * p if sharding == "zero-0" else 12 * owned
    assert float(mem.weights[0]) == pytest.approx(weights)
    assert float(mem.gradients[0]) == pytest.approx(grads)
    assert float(mem.optimizer[0]) == pytest.approx(optimizer)


def test_zero3_is_parameters_over_dp_plus_gathered_layers(tiny):
    """The issue's check: ZeRO-3 weights per chip = parameter bytes / DP + the gathered layers
    (the computing one and the prefetched one)."""
    mem1, _ = _memory(tiny, 1, sharding="zero-1", run=RunConfig(seq_len=128, global_batch=8))
    mem16, plans = _memory(tiny, 16, sharding="zero-3")
    chip = load_chip("h100")
    big_l = float(layer_params(build_context(tiny, chip, stack_of(chip), RUN, plans))[0])
    assert float(mem16.weights[0]) == pytest.approx(float(mem1.weights[0]) / 16 + 2 * 2 * big_l)


def test_hsdp_shards_within_its_group(tiny):
    mem, plans = _memory(tiny, 16, sharding="hsdp", shard_group=4)
    assert int(plans.shard[0]) == 4 and float(plans.expert_shard[0]) == 4
    chip = load_chip("h100")
    big_l = float(layer_params(build_context(tiny, chip, stack_of(chip), RUN, plans))[0])
    p = float(tiny.params.total)
    assert float(mem.optimizer[0]) == pytest.approx(12 * p / 4)
    assert float(mem.weights[0]) == pytest.approx(2 * (p / 4 + 2 * big_l))


def test_bf16_optimizer_states_take_eight_bytes(tiny):
    run = RunConfig(seq_len=128, global_batch=64, optimizer_states="bf16")
    mem, _ = _memory(tiny, 8, run=run, sharding="zero-1")
    assert float(mem.optimizer[0]) == pytest.approx(8 * float(tiny.params.total) / 8)
    assert optimizer_step_bytes(12.0) == 30 and optimizer_step_bytes(8.0) == 22


@pytest.mark.parametrize("sharding", ["zero-1", "zero-3"])
def test_pure_bf16_keeps_no_fp32_master_and_bf16_gradients(tiny, sharding):
    """A model built in BF16 and stepped in place (NeMo AutoModel's MoE models): weights 2P
    as ever, gradients 2P (zero-1) or 2 (O + one layer) (zero-3), Adam m and v 4 bytes per
    owned parameter; the Adam step reads and writes weight, m and v and reads the gradient,
    2 x 4 + 2 + 2 = 12 bytes."""
    run = RunConfig(seq_len=128, global_batch=64, optimizer_states="pure-bf16")
    mem, plans = _memory(tiny, 8, run=run, sharding=sharding)
    chip = load_chip("h100")
    big_l = float(layer_params(build_context(tiny, chip, stack_of(chip), run, plans))[0])
    p = float(tiny.params.total)
    grads = 2 * p if sharding == "zero-1" else 2 * (p / 8 + big_l)
    assert float(mem.gradients[0]) == pytest.approx(grads)
    assert float(mem.optimizer[0]) == pytest.approx(4 * p / 8)
    assert optimizer_step_bytes(4.0, 2.0) == 12


def test_exposed_data_parallel_time_by_hand():
    t = DpTraffic(reduce_step=1.0, gather_step=2.0, reduce_micro=0.5, gather_micro=0.3)
    # Per micro-batch: 0.3 - 0.2 before the forward and 0.3 + 0.5 - 0.6 in the backward = 0.3,
    # times 4. Once a step, behind what the first forward and last backward leave: the first
    # forward now carries 0.3 + 2 against 0.2 (2.1 exposed, 2.0 more than its own 0.1), the last
    # backward 0.8 + 1 against 0.6 (1.2 exposed, 1.0 more than its own 0.2).
    assert float(dp_exposed(t, 4, 0.2, 0.6)) == pytest.approx(4 * 0.3 + 2.0 + 1.0)
    # Zero-1 alone (no per-micro-batch traffic): 1 - 0.6 and 2 - 0.2.
    z1 = DpTraffic(reduce_step=1.0, gather_step=2.0, reduce_micro=0.0, gather_micro=0.0)
    assert float(dp_exposed(z1, 4, 0.2, 0.6)) == pytest.approx(0.4 + 1.8)
    assert float(t.total(4)) == pytest.approx(3.0 + 4 * (0.5 + 0.6))


def test_zero_levels_move_the_same_buffers_at_different_times(tiny):
    chip = load_chip("h100")
    stack = stack_of(chip)

    def traffic(sharding):
        plans = _one(tiny, chip, 64, sharding=sharding)
        ctx = build_context(tiny, chip, stack, RUN, plans)
        from moebench.engine.state import stage_params

        return dp_traffic(ctx, stage_params(ctx))

    z1, z2, z3 = traffic("zero-1"), traffic("zero-2"), traffic("zero-3")
    assert float(z1.reduce_micro[0]) == 0 and float(z1.gather_micro[0]) == 0
    assert float(z2.reduce_micro[0]) == pytest.approx(float(z1.reduce_step[0]))
    assert float(z2.gather_step[0]) == pytest.approx(float(z1.gather_step[0]))
    assert float(z3.gather_micro[0]) == pytest.approx(float(z1.gather_step[0]))
    assert float(z3.reduce_step[0]) == 0 and float(z3.gather_step[0]) == 0


def test_more_sharding_is_never_faster_and_never_heavier():
    from moebench.inputs.model import load_model

    arch, chip = load_model("mixtral-8x7b"), load_chip("h100")
    run = RunConfig(seq_len=4096, global_batch=256)
    fixed = dict(ONE_PLAN, tp=2, ep=8, micro_batch=1)
    steps, mems = [], []
    for s in ("zero-1", "zero-2", "zero-3"):
        plans, _ = candidate_plans(arch, chip, run, 64, PlanRequest(**fixed, sharding=s))
        st = evaluate(arch, chip, stack_of(chip), run, plans)
        steps.append(float(st.step_time[0]))
        mems.append(float(st.memory.total[0]))
    assert steps == sorted(steps) and mems == sorted(mems, reverse=True)
    assert mems[2] < mems[0]


def test_search_keeps_only_variants_that_can_win(tiny):
    """Pruning is exact: the best of the pruned search equals the best of every variant."""
    from moebench.engine.search import search

    chip = load_chip("h100")
    run = RunConfig(seq_len=128, global_batch=64)
    stack = stack_of(chip, "hardware-limit")  # every sharding mode
    res = search(tiny, chip, stack, run, 16)
    every, _ = candidate_plans(tiny, chip, run, 16, PlanRequest(), stack.release)
    st = evaluate(tiny, chip, stack, run, every)
    assert set(np.unique(every.sharding)) == {1, 2, 3, 4}
    assert len(res.plans) < len(every)
    fastest = float(st.step_time[st.fits].min())
    assert float(res.steps.step_time[res.best]) <= fastest * 1.01 + 1e-12


@pytest.mark.parametrize("args", [("--zero", "2", "--fsdp"), ("--zero", "5"),
                                  ("--zero", "1", "--shard-group", "4"),
                                  ("--fsdp", "--shard-group", "3", "--tp", "1", "--pp", "1",
                                   "--cp", "1"),
                                  ("--optimizer-states", "fp16")])
def test_bad_sharding_flags_exit_2_on_one_line(cli, args):
    result = cli("estimate", "-m", "llama-3-70b", "-c", "h100", "-n", "64", *args)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_sharding_flags_reach_the_plan(cli):
    out = json.loads(cli("estimate", "-m", "llama-3-70b", "-c", "h100", "-n", "64",
                         "--fsdp", "--shard-group", "16", "--stack", "hardware-limit",
                         "-f", "json").output)
    assert out["plan"]["sharding"] == "hsdp" and out["plan"]["shard_group"] == 16
    # Megatron-FSDP shards within the data-parallel group only: no hybrid sharding.
    refused = cli("estimate", "-m", "llama-3-70b", "-c", "h100", "-n", "64", "--fsdp",
                  "--shard-group", "16")
    assert refused.exit_code == 2 and "does not implement hsdp" in refused.output
    out = json.loads(cli("estimate", "-m", "llama-3-70b", "-c", "h100", "-n", "64",
                         "--zero", "2", "-f", "json").output)
    assert out["plan"]["sharding"] == "zero-2"
