"""DualPipeV beside 1F1B, ZB1P and DualPipe, and recompute chosen per module: hand-computed
bubbles, parameter copies, activations in flight, per-module memory and time, the search
against brute force, and bad input."""

import json

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
from moebench.inputs.run import WEIGHT_BYTES, RunConfig
from tests.conftest import assert_search_equals_brute_force, stack_of

RUN = RunConfig(seq_len=4096, global_batch=512)
FIXED = dict(tp=1, vpp=1, ep=8, etp=1, cp=1, micro_batch=1, recompute="none",
             sharding="zero-1", optimizer_offload=0)


def _ctx(arch, chip, n, run=RUN, **fixed):
    plans, _ = candidate_plans(arch, chip, run, n, PlanRequest(**{**FIXED, **fixed}))
    assert len(plans) == 1
    return build_context(arch, chip, stack_of(chip), run, plans)


def _mixtral():
    return load_model("mixtral-8x7b"), load_chip("h100")


# --- DualPipeV -------------------------------------------------------------------------------


def test_dualpipev_bubble_is_p_minus_1_thirds():
    """DualPipe README: (PP/2 - 1)(F&B + B - 3W) for PP stages on PP/2 devices. On pp = 8
    ranks, PP = 16 stages of half a rank's layers: F = 1/6, B = 1/3, W = 1/6, F&B = F + B of a
    micro-batch time t, so (8 - 1)(1/2 + 1/3 - 1/2) t = 7/3 t. DualPipe on 8 ranks:
    (4 - 1) x 2/3 = 2 t; 1F1B 7 t; ZB1P 7/3 t."""
    arch, chip = _mixtral()
    ctx = {s: _ctx(arch, chip, 64, pp=8, schedule=s) for s in ("1f1b", "zb1p", "dualpipe",
                                                                "dualpipev")}
    got = {s: float(pipeline.bubble(c, 1.0)[0]) for s, c in ctx.items()}
    assert got == pytest.approx({"1f1b": 7.0, "zb1p": 7.0 / 3, "dualpipe": 2.0,
                                 "dualpipev": 7.0 / 3})
    # pp = 2: one rank pair, DualPipe's bubble vanishes, DualPipeV's is 1/3 of a micro-batch.
    two = {s: float(pipeline.bubble(_ctx(arch, chip, 64, pp=2, schedule=s), 1.0)[0])
           for s in ("dualpipe", "dualpipev")}
    assert two == pytest.approx({"dualpipe": 0.0, "dualpipev": 1.0 / 3})


def test_dualpipev_holds_one_copy_of_the_weights_and_dualpipe_two():
    """Mixtral 8x7B, 32 layers on pp = 4 ranks, tp 1, ep 8: 1F1B and DualPipeV both hold 8
    layers per rank (DualPipeV: chunks of 4); DualPipe holds two copies of its 8. DualPipeV's
    rank 0 also holds the embedding and the LM head (the V ends where it starts)."""
    arch, chip = _mixtral()
    p = arch.params
    w = {s: evaluate(arch, chip, stack_of(chip), RUN,
                     _ctx(arch, chip, 64, pp=4, schedule=s).plans).memory
         for s in ("1f1b", "dualpipe", "dualpipev")}
    layer_dense = p.dense - p.embedding - p.lm_head
    expert = p.expert * 8 / 32 / 8
    one_f1b = (layer_dense * 8 / 32 + max(p.embedding, p.lm_head)) + expert
    vee = (layer_dense * 8 / 32 + p.embedding + p.lm_head) + expert
    assert float(w["1f1b"].weights[0]) == pytest.approx(WEIGHT_BYTES * one_f1b)
    assert float(w["dualpipe"].weights[0]) == pytest.approx(2 * WEIGHT_BYTES * one_f1b)
    assert float(w["dualpipev"].weights[0]) == pytest.approx(WEIGHT_BYTES * vee)
    ctx = _ctx(arch, chip, 64, pp=4, schedule="dualpipev")
    assert float(ctx.layers_per_stage[0]) == 8 and float(ctx.chunks[0]) == 2
    dense, _ = stage_params(ctx)
    assert float(dense[0]) == pytest.approx(layer_dense / 4 + p.embedding + p.lm_head)


def test_dualpipev_activations_in_flight():
    """2 pp + 1 chunks in flight on every rank (dualpipev.py: 2(n - r - 1) + 2(r + 1) forward
    chunks before the first backward, then F0 B1 F1 B0 peaks one higher): pp + 1/2 of a rank's
    layers, against pp under 1F1B and pp + 1 under DualPipe; the logits sit on rank 0 with
    them."""
    arch, chip = _mixtral()
    mem = {s: evaluate(arch, chip, stack_of(chip), RUN,
                       _ctx(arch, chip, 64, pp=4, schedule=s).plans).memory
           for s in ("1f1b", "dualpipe", "dualpipev")}
    base = float(mem["1f1b"].activations[0]) / 4  # 8 layers x one micro-batch
    assert float(mem["dualpipev"].activations[0]) == pytest.approx(4.5 * base)
    assert float(mem["dualpipe"].activations[0]) == pytest.approx(5 * base)
    assert float(mem["1f1b"].logits[0]) == 0.0 < float(mem["dualpipev"].logits[0])


def test_dualpipev_micro_batch_rules_and_odd_ranks():
    """At least 2 pp micro-batches (dualpipev.py asserts num_chunks >= num_ranks * 2), no
    parity rule; any number of ranks >= 2 (DualPipe needs an even number)."""
    arch, chip = _mixtral()
    fixed = {**FIXED, "schedule": "dualpipev", "pp": 4}
    ok, _ = candidate_plans(arch, chip, RunConfig(seq_len=4096, global_batch=64), 64,
                            PlanRequest(**fixed))  # dp 16, m = 4 < 8
    assert len(ok) == 0
    ok, _ = candidate_plans(arch, chip, RunConfig(seq_len=4096, global_batch=128), 64,
                            PlanRequest(**fixed))  # m = 8
    assert len(ok) == 1
    run = RunConfig(seq_len=4096, global_batch=48)
    odd = {s: len(candidate_plans(arch, chip, run, 24, PlanRequest(
        **{**FIXED, "schedule": s, "pp": 3}))[0]) for s in ("dualpipe", "dualpipev")}
    assert odd == {"dualpipe": 0, "dualpipev": 1}
    full, _ = candidate_plans(arch, chip, RUN, 64, PlanRequest())
    v = full.schedule == 3
    assert v.any() and np.all(full.vpp[v] == 1) and np.all(full.pp[v] >= 2)
    assert np.all(RUN.global_batch // (full.dp[v] * full.mb[v]) >= 2 * full.pp[v])


def test_dualpipev_overlaps_all_to_all_as_dualpipe_does():
    """Same layers per rank, same micro-batches: the exposed all-to-all of DualPipeV equals
    DualPipe's (the same F&B windows) and is below plain 1F1B's."""
    arch, chip = _mixtral()
    st = {s: evaluate(arch, chip, stack_of(chip), RUN,
                      _ctx(arch, chip, 64, pp=4, schedule=s).plans)
          for s in ("1f1b", "dualpipe", "dualpipev")}

    def ep(s):
        return float(st[s].comm_exposed["ep_scale_up"][0] + st[s].comm_exposed["ep_scale_out"][0])

    assert ep("dualpipev") == pytest.approx(ep("dualpipe"))
    assert ep("dualpipev") < ep("1f1b")


def test_dualpipev_from_the_cli_and_the_measured_runs_file(cli, tmp_path):
    out = json.loads(cli(
        "estimate", "--model", "mixtral-8x7b", "--chip", "h100", "--num-chips", "64",
        "--tp", "1", "--pp", "4", "--ep", "8", "--schedule", "dualpipev", "--global-batch", "512",
        "--stack", "hardware-limit", "--format", "json").output)
    assert out["plan"]["schedule"] == "dualpipev" and out["plan"]["pp"] == 4
    # Megatron-Core implements no DualPipeV: given, it is refused in one line naming the release.
    refused = cli("estimate", "--model", "mixtral-8x7b", "--chip", "h100", "--num-chips", "64",
                  "--schedule", "dualpipev", "--global-batch", "512")
    assert refused.exit_code == 2 and "does not implement dualpipev" in refused.output
    from moebench.commands.validation.measured_runs import load_runs, shipped_runs_path

    header = shipped_runs_path().read_text().splitlines()[0]
    row = ("mine,qwen3-30b-a3b,b200,8,fp8,1,2,1,4,1,1,1,none,dualpipev,false,4096,512,"
           "tokens_per_s_per_chip,9299,false,,alltoall,partial,,,,1.0,my log,")
    path = tmp_path / "runs.csv"
    path.write_text(f"{header}\n{row}\n")
    assert load_runs(path)[0].plan.schedule == "dualpipev"


@pytest.mark.parametrize(("args", "needle"), [
    (["--pp", "4", "--global-batch", "64"], "dualpipev needs"),
    (["--pp", "4", "--vpp", "2"], "dualpipev needs"),
    (["--pp", "1"], "dualpipev needs"),
])
def test_bad_dualpipev_plans_are_one_line_errors(cli, args, needle):
    result = cli("estimate", "--model", "mixtral-8x7b", "--chip", "h100", "--num-chips", "64",
                 "--schedule", "dualpipev", "--tp", "1", "--ep", "8", "--cp", "1",
                 "--micro-batch", "1", "--stack", "hardware-limit", *args)
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], result.output


# --- Recompute per module --------------------------------------------------------------------


def _tiny():
    from moebench.inputs.model import arch_from_spec
    from tests.conftest import tiny_spec

    return arch_from_spec(tiny_spec()), load_chip("h100")


def _v(x):
    return float(np.asarray(x).ravel()[0])


def _rc_ctx(arch, chip, recompute=None, modules=None):
    req = dict(tp=1, pp=1, vpp=1, ep=1, etp=1, cp=1, micro_batch=1, schedule="1f1b",
               sharding="zero-1", recompute=recompute, recompute_modules=modules,
               optimizer_offload=0)
    plans, _ = candidate_plans(arch, chip, RUN, 8, PlanRequest(**req))
    assert len(plans) == 1
    return build_context(arch, chip, stack_of(chip), RUN, plans)


# Bytes stored per token and average layer, BF16, of the tiny MoE (h 64, GQA q 64 kv 16, one
# dense layer of width 256, three MoE layers of 8 experts top-2 width 32 and a shared expert
# of 32; SwiGLU). Attention: GEMM inputs h + q = 128, other h + q + 2 kv = 160: 576 B.
# Dense FFN: (h + w) + (2w + h) = 896 elements, 1792 B. MoE per token (router and shared
# expert): (h + h + 32) + (h + 2E + 64) = 304 elements, 608 B; per routed pair (h + 32) + 64
# = 160, 320 B, two pairs per token (the probabilities multiply the activation, Megatron-Core
# 0.13 on: no expert output kept). None: 576 + (3 x (608 + 640) + 1792) / 4 = 1960.
STORED_PER_TOKEN = {
    None: 1960.0,
    # norm outputs: 64 x 2 B in attention, dense and MoE: 448 + (3 x 1120 + 1664) / 4
    ("layernorm",): 1704.0,
    # activation outputs: w = 256 dense, 32 shared, 32 per pair: 576 + (3 x 1056 + 1280) / 4
    ("moe_act",): 1688.0,
    # selective = layernorm + moe_act (+ mla_up_proj, nothing under GQA)
    ("layernorm", "moe_act", "mla_up_proj"): 1432.0,
    # shared experts drop all of theirs, (h + 32) + 2 x 32 elements: 576 + (3 x 928 + 1792) / 4
    ("shared_experts",): 1720.0,
    # mlp keeps the dense FFN's input and residual, 2 h = 256 B: 576 + (3 x 1248 + 256) / 4
    ("mlp",): 1576.0,
    # moe keeps the MoE layer's input and residual, 256 B, no pairs: 576 + (3 x 256 + 1792) / 4
    ("moe",): 1216.0,
    # core_attn: FlashAttention stores no scores; nothing this model counts goes
    ("core_attn",): 1960.0,
}


def test_a_release_that_scales_expert_outputs_keeps_them():
    """Before Megatron-Core 0.13 (!2668) unpermute multiplied each expert's output by its
    probability, so autograd kept the output, h = 64 BF16 per routed pair: two pairs per token
    in three of four layers add 2 x 128 x 3 / 4 = 192 B to the 1960 above."""
    from dataclasses import replace

    from moebench.engine.memory import activation_bytes_per_layer

    arch, chip = _tiny()
    ctx = _rc_ctx(arch, chip, recompute="none")
    ctx = replace(ctx, stack=replace(ctx.stack, probs_in_activation=False))
    stored, _ = activation_bytes_per_layer(ctx)
    assert float(stored[0]) / 4096 == pytest.approx(2152.0)


def test_fp8_keeps_gemm_inputs_and_the_release_s_swiglu_input_in_fp8():
    """Under FP8 the GEMM inputs take one byte: attention 128 + 160 x 2 = 448 B; dense
    (h + w) + (2w + h) x 2 = 320 + 1152 = 1472 B; MoE per token 160 + (h + 2E + 64) x 2 = 448 B
    and per pair 96 + 64 x 2 = 224 B: 448 + (3 x (448 + 448) + 1472) / 4 = 1488. A release that
    keeps the SwiGLU input in FP8 (DeepSeek-V3 report sec. 3.3.4) saves a byte on each of
    2w: dense 512, shared 64, pairs 2 x 64: 1488 - (3 x 192 + 512) / 4 = 1216."""
    from dataclasses import replace

    from moebench.engine.memory import activation_bytes_per_layer

    arch, chip = _tiny()
    ctx = _rc_ctx(arch, chip, recompute="none")
    ctx = replace(ctx, fp8=True)
    stored, _ = activation_bytes_per_layer(ctx)
    assert float(stored[0]) / 4096 == pytest.approx(1488.0)
    ctx = replace(ctx, stack=replace(ctx.stack, swiglu_fp8_store=True))
    stored, _ = activation_bytes_per_layer(ctx)
    assert float(stored[0]) / 4096 == pytest.approx(1216.0)


@pytest.mark.parametrize("modules", list(STORED_PER_TOKEN))
def test_each_module_stops_storing_its_tensors(modules):
    from moebench.engine.memory import activation_bytes_per_layer

    arch, chip = _tiny()
    ctx = _rc_ctx(arch, chip, recompute="none" if modules is None else None, modules=modules)
    stored, _ = activation_bytes_per_layer(ctx)
    assert float(stored[0]) / 4096 == pytest.approx(STORED_PER_TOKEN[modules])


def test_selective_is_its_module_set_and_unchanged():
    arch, chip = _tiny()
    sel = _rc_ctx(arch, chip, recompute="selective")
    mods = _rc_ctx(arch, chip, modules=("layernorm", "moe_act", "mla_up_proj"))
    a, b = (evaluate(arch, chip, stack_of(chip), RUN, c.plans) for c in (sel, mods))
    assert float(a.step_time[0]) == float(b.step_time[0])
    assert float(a.memory.total[0]) == float(b.memory.total[0])
    assert sel.plans.describe(0, 1)["recompute_modules"] == ["moe_act", "layernorm",
                                                             "mla_up_proj"]


def test_each_module_adds_its_forward_to_the_backward():
    """Added backward seconds per layer against no recompute: layernorm 0.4 of the layer's
    elementwise pass (two norms read and write 4 h of its 10 h), moe_act the other 0.6 (so
    selective costs the one pass it always has), mla_up_proj the up-projection GEMMs,
    core_attn the attention kernel, mlp the dense FFN, shared_experts the shared expert, moe
    router, permutation, experts and shared expert."""
    from moebench.engine.terms import compute, passes

    arch, chip = _tiny()
    base = _rc_ctx(arch, chip, recompute="none")
    f = compute.layer_forward(base)
    lp0 = passes.layer_pass(base, f)
    e = _v(f.elementwise) / 2
    expect = {
        "layernorm": (0.4 * e, 0.4 * e, 0.4 * e),
        "moe_act": (0.6 * e, 0.6 * e, 0.6 * e),
        "core_attn": (_v(f.attn_core), 0.0, 0.0),
        "mlp": (0.0, 0.0, _v(f.dense_ffn)),
        "shared_experts": (0.0, _v(f.shared), 0.0),
        "moe": (0.0, _v(f.experts + f.shared + f.router_permute), 0.0),
    }
    for module, (att, moe, dense) in expect.items():
        lp = passes.layer_pass(_rc_ctx(arch, chip, modules=(module,)), f)
        got = (_v(lp.attention_bwd - lp0.attention_bwd), _v(lp.moe_bwd - lp0.moe_bwd),
               _v(lp.dense_bwd - lp0.dense_bwd))
        assert got == pytest.approx((att, moe, dense), rel=1e-9, abs=1e-15), module


def test_mla_up_proj_drops_q_k_v_and_reruns_the_up_projections():
    """DeepSeek-V2-Lite (MLA, 16 heads of 192 + 128): mla_up_proj stops storing Q, K and V,
    16 x (192 + 192 + 128) = 8192 elements per token, 16 KiB in BF16, and reruns the
    up-projection GEMMs."""
    from moebench.engine.memory import activation_bytes_per_layer
    from moebench.engine.terms import compute, passes

    arch, chip = load_model("deepseek-v2-lite"), load_chip("h100")
    none = _rc_ctx(arch, chip, recompute="none")
    up = _rc_ctx(arch, chip, modules=("mla_up_proj",))
    s0, s1 = (float(activation_bytes_per_layer(c)[0][0]) for c in (none, up))
    assert (s0 - s1) / 4096 == pytest.approx(16 * (192 + 192 + 128) * 2)
    f = compute.layer_forward(none)
    added = passes.layer_pass(up, f).attention_bwd - passes.layer_pass(none, f).attention_bwd
    assert _v(added) == pytest.approx(_v(f.up_proj))


def test_the_searched_chain_saves_memory_and_costs_time_in_order():
    """none, selective, selective + mlp + moe, full: each a superset of the one before, so
    never faster and never holding more (what exact pruning relies on)."""
    arch, chip = load_model("qwen3-30b-a3b"), load_chip("h800")
    run = RunConfig(seq_len=4096, global_batch=1024)
    plans, _ = candidate_plans(arch, chip, run, 64, PlanRequest(schedule="1f1b"))
    assert len(np.unique(plans.recompute_level)) == 4
    st = evaluate(arch, chip, stack_of(chip, ep_overlap=True), run, plans)
    t = st.step_time.reshape(-1, 4)
    m = st.memory.activations.reshape(-1, 4)
    assert np.all(np.diff(t, axis=1) >= -1e-12 * t[:, 1:])
    assert np.all(np.diff(m, axis=1) <= 1e-6)


@pytest.mark.parametrize(("model", "chip", "n"), [("ling-lite", "h800", 16),
                                                   ("deepseek-v2-lite", "h100", 16)])
def test_search_with_dualpipev_and_module_sets_equals_brute_force(model, chip, n):
    _, every = assert_search_equals_brute_force(
        load_model(model), load_chip(chip),
        RunConfig(seq_len=4096, global_batch=256), n, stack="hardware-limit")
    assert (every.schedule == 3).any() and len(np.unique(every.recompute_level)) == 4


def test_recompute_modules_from_the_cli(cli):
    out = json.loads(cli(
        "estimate", "--model", "mixtral-8x7b", "--chip", "h100", "--num-chips", "64",
        "--tp", "1", "--pp", "4", "--ep", "8", "--recompute-modules", "moe_act,core_attn",
        "--global-batch", "512", "--format", "json").output)
    assert out["plan"]["recompute"] == "selective"
    assert out["plan"]["recompute_modules"] == ["core_attn", "moe_act"]


@pytest.mark.parametrize(("args", "needle"), [
    (["--recompute-modules", "core_attn,attention"], "unknown recompute module 'attention'"),
    (["--recompute-modules", "moe", "--recompute", "full"], "not with --recompute full"),
    (["--recompute-modules", "moe", "--recompute", "none"], "not with --recompute none"),
])
def test_bad_recompute_modules_are_one_line_errors(cli, args, needle):
    result = cli("estimate", "--model", "mixtral-8x7b", "--chip", "h100", "--num-chips", "64",
                 *args)
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], result.output


def test_measured_runs_take_a_recompute_modules_column(tmp_path):
    from moebench.commands.validation.measured_runs import load_runs, shipped_runs_path
    from moebench.errors import InputError

    header = shipped_runs_path().read_text().splitlines()[0]
    assert header.endswith(",recompute_modules,pipeline_layout,offload_modules,dp_overlap,"
                           "cross_entropy,source_id,published,sweep,memory_gib,memory_kind,"
                           "hardware_set,graph_scope,sequence_parallel,grouped_gemm,routing,"
                           "pipeline_flushes")
    row = ("mine,qwen3-30b-a3b,b200,8,fp8,1,1,1,8,1,1,1,selective,1f1b,false,4096,512,"
           "tokens_per_s_per_chip,9299,false,,alltoall,partial,,,,1.0,my log,")
    path = tmp_path / "runs.csv"
    path.write_text(f'{header}\n{row},,,,,"moe_act,layernorm",,,,,,,,,,,,,\n')
    assert load_runs(path)[0].plan.recompute_modules == ("moe_act", "layernorm")
    path.write_text(f"{header}\n{row},,,,,attention,,,,,,,,,,,\n")
    with pytest.raises(InputError, match="column recompute_modules"):
        load_runs(path)
