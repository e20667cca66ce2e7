"""The step model's named terms, each against a hand-computed case."""

from dataclasses import replace

import numpy as np
import pytest

from moebench.engine.collectives import Links, alltoall_time, gather_time, p2p_time
from moebench.engine.context import build_context
from moebench.engine.plan import PlanRequest
from moebench.engine.plan_space import candidate_plans
from moebench.engine.step import evaluate
from moebench.engine.terms import compute, host, overlap
from moebench.engine.terms.comm import EpPhases
from moebench.inputs.hardware import load_chip
from moebench.inputs.model import arch_from_spec, load_model
from moebench.inputs.run import RunConfig
from tests.conftest import stack_of, tiny_spec


def _v(x):
    """The one value of a one-plan array (or a scalar)."""
    return float(np.asarray(x).ravel()[0])


def _plan(arch, chip, run, n, **fixed):
    full = dict(tp=1, pp=1, vpp=1, ep=1, etp=1, cp=1, micro_batch=1, recompute="none",
                schedule="1f1b", sharding="zero-1", optimizer_offload=0.0)
    full.update(fixed)
    plans, _ = candidate_plans(arch, chip, run, n, PlanRequest(**full))
    assert len(plans) == 1
    return plans


def test_rows_and_depth_factors():
    assert compute.rows_factor(130.0, 130.0) == pytest.approx(0.5)
    assert compute.rows_factor(1024.0, 130.0) == pytest.approx(1024 / 1154)
    assert compute.rows_factor(0.0, 130.0) == 1.0  # an empty GEMM costs nothing anyway
    assert compute.depth_factor(768, 490) == pytest.approx(768 / 1258)


def test_tile_and_wave_quantization_by_hand():
    """A100, 256 x 128 tiles, 108 SMs (NVIDIA Matrix Multiplication Background sec. 3.2).
    BLOOM's QKV at TP8, one 2048-token micro-batch: 3 x 14336 / 8 = 5376 columns, 8 x 42 =
    336 tiles, 4 waves of 108: 336 / 432. Four micro-batches: 1344 tiles in 13 waves."""
    a100 = (108, 256, 128)
    assert _v(compute.wave_efficiency(2048, 5376, 1, a100)) == pytest.approx(336 / 432)
    assert _v(compute.wave_efficiency(8192, 5376, 1, a100)) == pytest.approx(1344 / 1404)
    # A partial tile costs a whole one: 100 x 100 fills 10000 / 32768 of one tile, one wave.
    assert _v(compute.wave_efficiency(100, 100, 1, a100)) == pytest.approx(
        100 * 100 / (256 * 128) / 108)
    # Eight experts' 300-row GEMMs launched as one group: 8 x 2 x 4 = 64 tiles, one wave.
    assert _v(compute.wave_efficiency(300, 512, 8, a100)) == pytest.approx(
        8 * 300 * 512 / (256 * 128) / 108)


def test_quantization_only_where_the_chip_states_a_tile(tiny):
    """The rate share averages forward, input-gradient and weight-gradient shapes; a chip
    whose profile states no tile (H100: its libraries pick tiles per shape) keeps 1."""
    run = RunConfig(seq_len=2048, global_batch=8, precision="bf16")
    a100 = load_chip("a100")
    ctx = build_context(tiny, a100, stack_of(a100), run, _plan(tiny, a100, run, 8))
    tile = (108, 256, 128)
    expected = (compute.wave_efficiency(2048, 5376, 1, tile)
                + compute.wave_efficiency(2048, 14336, 1, tile)
                + compute.wave_efficiency(14336, 5376, 1, tile)) / 3
    assert _v(compute.quantization(ctx, 2048, 5376, 14336, 1)) == pytest.approx(_v(expected))
    h100 = load_chip("h100")
    ctx = build_context(tiny, h100, stack_of(h100), run, _plan(tiny, h100, run, 8))
    assert compute.quantization(ctx, 2048, 5376, 14336, 1) == 1.0


def test_wave_quantization_makes_one_sequence_micro_batches_dearer_on_a100():
    """BLOOM 0221 (TP8 PP12): per sample, MBS 1 now costs more GEMM time than MBS 4, as the
    chronicles measured (143 s against 124 s a step)."""
    arch = load_model("bloom-prequel-181b")
    chip = load_chip("a100")
    times = {}
    for mb in (1, 4):
        run = RunConfig(seq_len=2048, global_batch=2048, precision="bf16")
        ctx = build_context(arch, chip, stack_of(chip, "megatron-deepspeed"), run,
                            _plan(arch, chip, run, 384, tp=8, pp=12, micro_batch=mb,
                                  recompute="full"))
        times[mb] = _v(compute.layer_forward(ctx).attn_proj) / mb
    assert times[1] > 1.05 * times[4]


def test_full_mesh_gives_small_groups_a_share_of_the_links():
    """910B: 7 HCCS links; a pair of NPUs gets one link, eight get all seven."""
    links = Links(up_bw=196e9, up_lat=0.0, out_bw=25e9, out_lat=0.0, domain=8, mesh_links=7)
    assert float(links.up_group_bw(2)) == pytest.approx(28e9)
    assert float(links.up_group_bw(8)) == pytest.approx(196e9)
    assert float(p2p_time(28e6, False, links)) == pytest.approx(1e-3)
    # All-gather of 56 MB over 2 ranks in one domain: half of it over one 28 GB/s link.
    assert float(gather_time(56e6, 2, 2, links)) == pytest.approx(1e-3)
    switched = replace(links, mesh_links=None)
    assert float(switched.up_group_bw(2)) == pytest.approx(196e9)


def test_alltoall_with_and_without_deduplication():
    """EP 16 over two domains of 8, top-8, 1000 tokens of 1 kB: without deduplication
    8 x 8/16 copies per token leave the domain; with it, one per remote domain used."""
    links = Links(up_bw=100e9, up_lat=0.0, out_bw=10e9, out_lat=0.0, domain=8)
    plain = float(alltoall_time(1e3, 1000, 8, 16, 8, None, links, deduplicate=False))
    assert plain == pytest.approx(max(1000 * 8 * 7 / 16 * 1e3 / 100e9,
                                      1000 * 8 * 8 / 16 * 1e3 / 10e9))
    dedup = float(alltoall_time(1e3, 1000, 8, 16, 8, None, links, deduplicate=True))
    remote = 2 * (1 - 0.5**8) * 0.5
    assert dedup == pytest.approx(max(1000 * 8 * 15 / 16 * 1e3 / 100e9,
                                      1000 * remote * 1e3 / 10e9))


def _tiny_moe_context(modules: tuple[str, ...] = (), **stack_changes):
    arch = arch_from_spec(tiny_spec())
    chip = load_chip("h100")
    stack = replace(stack_of(chip), **stack_changes)
    run = RunConfig(seq_len=128, global_batch=8)
    rc = dict(recompute="selective", recompute_modules=modules) if modules else {}
    plans = _plan(arch, chip, run, 2, ep=2, **rc)
    return build_context(arch, chip, stack, run, plans)


def test_host_time_counts_operations_by_block():
    """Tiny model: 4 layers (1 dense), GQA, 8 experts over EP 2 (4 local), one shared expert;
    no graphs: every operation is the host's. A Python loop over experts (no grouped GEMM)
    dispatches each local expert's 3 operations; a grouped call dispatches them once and pays
    its per-expert GEMM launches, while the device still runs all 4 experts' kernels."""
    ctx = _tiny_moe_context(graphs="none", ops_attention=10.0, ops_mlp=5.0, ops_router=31.0,
                            ops_per_expert=3.0, dispatch_ops=20.0, host_op_s=30e-6,
                            bwd_ops_ratio=2.0, grouped_gemm=False)
    ops = host.block_ops(ctx, captured=True)
    assert _v(ops.attention) == 10 and _v(ops.dense) == 5 and _v(ops.router) == 31
    assert _v(ops.moe_post) == 5 + 20 + 3 * 4  # shared expert, dispatcher, 4 local experts
    # Grouped: one call of 3 operations, plus each of the 4 experts' 2 GEMMs issued at 15 us:
    # 120 us on the host beside the operations, whatever an operation costs (none at all too).
    grouped = replace(ctx, stack=replace(ctx.stack, grouped_gemm=True, expert_gemm_s=15e-6))
    g_ops = host.block_ops(grouped, captured=True)
    assert _v(g_ops.moe_post) == 5 + 20 + 3 and _v(g_ops.moe_post_s) == pytest.approx(120e-6)
    assert _v(host.block_ops(grouped, captured=False).moe_post) == 5 + 20 + 3 * 4
    for op_s in (30e-6, 0.0):
        free = replace(grouped, stack=replace(grouped.stack, host_op_s=op_s))
        g_ht = host.host_time(free, host.block_ops(free, captured=True),
                              host.recompute_ops(free, captured=True))
        assert _v(g_ht.moe_post) == pytest.approx((5 + 20 + 3) * op_s + 120e-6)
        assert _v(g_ht.forward) == pytest.approx((15 + 3 * (10 + 31 + 28)) * op_s + 3 * 120e-6)
    ht = host.host_time(ctx, host.block_ops(ctx, captured=True),
                        host.recompute_ops(ctx, captured=True))
    forward_ops = 1 * (10 + 5) + 3 * (10 + 31 + 37)
    assert _v(ht.forward) == pytest.approx(forward_ops * 30e-6)
    assert _v(ht.backward) == pytest.approx(2 * forward_ops * 30e-6)
    assert _v(ht.syncs) == 3  # one per MoE layer (dropless dispatcher)


def test_selective_recompute_dispatches_its_modules_again():
    """core_attn, layernorm and moe_act on the tiny model (4 layers, 1 dense, one shared
    expert), checkpoint worth 8 operations: per layer the attention block reruns the fused
    attention (1) and its norm (1), each with a checkpoint (8): 18; a MoE block its norm and the
    routed and shared activations (1 + 2) with two checkpoints: 19; the dense block its norm and
    activation with two: 18. The host pays 4 x 18 + 3 x 19 + 18 = 147 more operations in
    backward; the device runs the 2, 3 and 2 kernels again, without the checkpoints. Adding the
    moe module reruns the whole MoE block instead of checkpointing its activations apart."""
    ops = dict(graphs="none", ops_checkpoint=8.0, host_op_s=30e-6, bwd_ops_ratio=2.0)
    ctx = _tiny_moe_context(("core_attn", "layernorm", "moe_act"), **ops)
    rc = host.recompute_ops(ctx, captured=True)
    assert (_v(rc.attention), _v(rc.moe_post), _v(rc.dense)) == (18, 19, 18)
    kernels = host.recompute_ops(ctx, captured=False)
    assert (_v(kernels.attention), _v(kernels.moe_post), _v(kernels.dense)) == (2, 3, 2)
    plain = _tiny_moe_context(**ops)
    blocks = host.block_ops(ctx, captured=True)
    extra = (_v(host.host_time(ctx, blocks, rc).backward)
             - _v(host.host_time(plain, blocks, host.recompute_ops(plain, True)).backward))
    assert extra == pytest.approx(147 * 30e-6)
    whole = _tiny_moe_context(("core_attn", "layernorm", "moe_act", "moe"), **ops)
    assert _v(host.recompute_ops(whole, captured=True).moe_post) == 9  # its norm alone
    # The mlp module reruns the dense layer's FFN whole: its 5 operations and one checkpoint
    # on the host (host_time), its kernels once (the step's mlp rerun), not again here.
    mlp = _tiny_moe_context(("mlp",), ops_mlp=5.0, **ops)
    assert _v(host.recompute_ops(mlp, captured=False).dense) == 0
    mlp_extra = (_v(host.host_time(mlp, blocks, host.recompute_ops(mlp, True)).backward)
                 - _v(host.host_time(plain, blocks, host.recompute_ops(plain, True)).backward))
    assert mlp_extra == pytest.approx(1 * (5 + 8) * 30e-6)


def test_graphs_remove_host_operations_but_not_the_dropless_experts():
    partial = host.block_ops(_tiny_moe_context(graphs="partial"), captured=True)
    assert _v(partial.attention) == 0 and _v(partial.router) == 0
    full = _tiny_moe_context(graphs="full")
    ops = host.block_ops(full, captured=True)
    assert _v(ops.moe_post) > 0  # routed experts wait for the host's token counts
    padded = replace(full, dropless_sync=False)
    assert _v(host.block_ops(padded, captured=True).moe_post) == 0
    # The device runs every kernel whatever is captured.
    assert _v(host.block_ops(full, captured=False).moe_post) == _v(
        host.block_ops(_tiny_moe_context(graphs="none"), captured=False).moe_post)


def test_a_run_graph_scope_captures_only_what_its_recipe_names():
    """Megatron-Bridge 25.11 captures attention and the router in its DeepSeek recipes, but
    its Qwen3-30B-A3B recipes name cuda_graph_scope moe_router, moe_preprocess only
    (scripts/performance/configs/qwen3/workload_base_configs.py at v0.2.0): given that scope,
    the host dispatches the attention block's 10 operations again, never the router's 31."""
    b200 = load_chip("b200")
    release_wide = stack_of(b200, "megatron-core-nvidia@25.11", graphs="partial")
    assert release_wide.graph_scope == {"attention", "router"}
    narrow = stack_of(b200, "megatron-core-nvidia@25.11", graphs="partial",
                      graph_scope=("router",))
    assert narrow.graph_scope == {"router"}
    ctx = _tiny_moe_context(graphs="partial", graph_scope=narrow.graph_scope,
                            ops_attention=10.0, ops_router=31.0)
    ops = host.block_ops(ctx, captured=True)
    assert (_v(ops.attention), _v(ops.router)) == (10, 0)
    wide = _tiny_moe_context(graphs="partial", graph_scope=release_wide.graph_scope,
                             ops_attention=10.0, ops_router=31.0)
    assert _v(host.block_ops(wide, captured=True).attention) == 0


@pytest.mark.parametrize(("options", "needles"), [
    (dict(graphs="partial", graph_scope=("mlp",)),
     ["--graph-scope", "25.11 does not implement graph_scope mlp", "attention, router"]),
    (dict(graph_scope=("router",)), ["--graph-scope", "graphs none by default",
                                     "--graphs partial"]),
])
def test_a_graph_scope_the_release_cannot_capture_is_refused(options, needles):
    from moebench.errors import InputError
    from moebench.inputs.stack import StackOptions, load_stack_spec, stack_from_spec

    spec = load_stack_spec("megatron-core-nvidia@25.11")
    with pytest.raises(InputError) as err:
        stack_from_spec(spec, StackOptions(**options))
    for needle in needles:
        assert needle in str(err.value), str(err.value)


def test_kernel_overhead_is_kernels_times_the_minimum_kernel_time():
    ctx = _tiny_moe_context(ops_attention=10.0, ops_fp8_cast=1.0)
    kern = host.kernel_overhead(ctx, host.block_ops(ctx, captured=False))
    assert _v(kern.attention) == pytest.approx(10 * ctx.chip.min_kernel)


def test_a_sync_keeps_host_excess_from_hiding_behind_device_time():
    """Two stretches per MoE layer: attention (device 3, host 1) and experts (device 1, host
    3). Free-running they overlap to max(4, 4) = 4 per layer; with a sync between them each
    costs its own maximum: 3 + 3 = 6."""
    ctx = _tiny_moe_context()
    ht = host.HostTime(forward=3 * 4.0, backward=0.0, moe_pre=1.0, moe_post=3.0, dense=0.0,
                       syncs=3.0)
    moe_layers = _v(ctx.moe_layers_per_stage[0])
    assert moe_layers == 3 and _v(ctx.layers_per_stage[0]) == 4
    synced = host.forward_wall(ctx, ht, 3.0, 1.0, -3.0, 0.0)  # dense layer: 3 + (-3) = 0
    assert _v(synced) == pytest.approx(3 * (3 + 3))
    free = host.forward_wall(replace(ctx, dropless_sync=False), ht, 3.0, 1.0, -3.0, 0.0)
    assert _v(free) == pytest.approx(3 * 4)


def test_capacity_factor_bounds_the_busiest_rank_and_removes_the_sync():
    arch, chip = load_model("mixtral-8x7b"), load_chip("h100")
    stack = stack_of(chip)
    base = RunConfig(seq_len=4096, global_batch=64, expert_imbalance=1.3)
    padded = replace(base, capacity_factor=1.1)
    plans = _plan(arch, chip, base, 8, ep=8)
    a, b = build_context(arch, chip, stack, base, plans), build_context(
        arch, chip, stack, padded, plans)
    assert float(a.received[0]) == pytest.approx(4096 * 2 * 1.3)
    assert float(b.received[0]) == pytest.approx(4096 * 2 * 1.1)
    assert a.dropless_sync and not b.dropless_sync


def test_expert_imbalance_needs_more_than_one_expert_rank():
    """Dropless imbalance loads the busiest of several expert ranks; with ep = 1 one rank holds
    every expert and receives exactly k copies of each of its tokens (capacity padding still
    applies at any ep)."""
    arch, chip = load_model("mixtral-8x7b"), load_chip("h100")
    stack = stack_of(chip)
    run = RunConfig(seq_len=4096, global_batch=64, expert_imbalance=1.3)
    alone = build_context(arch, chip, stack, run, _plan(arch, chip, run, 8, tp=8, ep=1))
    spread = build_context(arch, chip, stack, run, _plan(arch, chip, run, 8, tp=1, ep=8))
    padded = build_context(arch, chip, stack, replace(run, capacity_factor=1.1),
                           _plan(arch, chip, run, 8, tp=8, ep=1))
    assert float(alone.received[0]) == pytest.approx(4096 / 8 * 2)
    assert float(spread.received[0]) == pytest.approx(4096 * 2 * 1.3)
    assert float(padded.received[0]) == pytest.approx(4096 / 8 * 2 * 1.1)


def test_1f1b_warm_up_micro_batches():
    """Megatron's interleaved warm-up on the first rank: (pp-1) x 2 + (vpp-1) x pp chunks."""
    arch, chip = load_model("qwen3-235b-a22b"), load_chip("h100")
    run = RunConfig(seq_len=4096, global_batch=2048)
    ctx = build_context(arch, chip, stack_of(chip, ep_overlap=True), run,
                        _plan(arch, chip, run, 256, tp=2, pp=8, vpp=4, ep=32))
    assert float(overlap.warmup_micro_batches(ctx)[0]) == pytest.approx((7 * 2 + 3 * 8) / 4)


def test_paired_phases_expose_only_what_communication_exceeds():
    """One MoE layer pair with communication 2, 2, 2, 2 against compute phases: the forward
    dispatch hides behind the backward MLP, the backward combine behind the forward attention,
    and so on; only what a phase's communication exceeds its partner's compute is exposed."""
    arch, chip = load_model("qwen3-235b-a22b"), load_chip("h100")
    run = RunConfig(seq_len=4096, global_batch=2048)
    ctx = build_context(arch, chip, stack_of(chip, ep_overlap=True), run,
                        _plan(arch, chip, run, 256, tp=2, pp=8, vpp=4, ep=32))
    windows = overlap.PhaseWindows(fwd_attention=np.array([0.5]), fwd_mlp=np.array([1.5]),
                                   bwd_attention=np.array([1.0]), bwd_mlp=np.array([3.0]))
    two = np.array([2.0])
    x = overlap.ep_exposed(ctx, EpPhases(two, two, two, two), windows)
    paired = _v(x.paired)
    assert 0.9 < paired < 1.0  # 512 micro-batches, 9.5 of them warm-up
    # Pairs: (bwd combine 2 vs fwd attention 0.5), (fwd dispatch 2 vs bwd MLP 3),
    # (bwd dispatch 2 vs fwd MLP 1.5), (fwd combine 2 vs bwd attention 1): 1.5+0+0.5+1 = 3.
    assert _v(x.paired_forward + x.paired_backward) == pytest.approx(3.0)
    assert _v(x.alone_forward + x.alone_backward) == pytest.approx(8.0)
    assert _v(x.per_micro_batch) == pytest.approx(paired * 3.0 + (1 - paired) * 8.0)


@pytest.mark.slow
def test_better_stack_figures_never_make_a_plan_slower():
    arch, chip = load_model("qwen3-30b-a3b"), load_chip("h800")
    run = RunConfig(seq_len=4096, global_batch=1024)
    plans, _ = candidate_plans(arch, chip, run, 64, PlanRequest())
    stack = stack_of(chip, ep_overlap=True)
    old = evaluate(arch, chip, stack, run, plans).step_time
    for change in (dict(gemm_fraction=stack.gemm_fraction * 1.1),
                   dict(attention_fraction=stack.attention_fraction * 1.2),
                   dict(host_op_s=stack.host_op_s * 0.5), dict(sync_s=stack.sync_s * 0.5),
                   dict(collective_fraction=stack.collective_fraction * 1.2),
                   dict(gemm_half_rows=stack.gemm_half_rows * 0.5),
                   dict(gemm_half_depth=stack.gemm_half_depth * 0.5),
                   dict(overlap_sm_share=stack.overlap_sm_share * 0.5)):
        new = evaluate(arch, chip, replace(stack, **change), run, plans).step_time
        assert np.all(new <= old * (1 + 1e-12)), change
        assert np.any(new < old * (1 - 1e-6)), change


def test_hardware_limit_is_never_slower_than_a_real_stack():
    arch, chip = load_model("deepseek-v3"), load_chip("h800")
    run = RunConfig(seq_len=4096, global_batch=4096, precision="fp8")
    plans, _ = candidate_plans(arch, chip, run, 256, PlanRequest(tp=1, ep=32))
    real = evaluate(arch, chip, stack_of(chip), run, plans).step_time
    ideal = evaluate(arch, chip, stack_of(chip, "hardware-limit"), run, plans).step_time
    assert np.all(ideal <= real)


def test_a_vendor_stack_refuses_another_vendors_chip(cli):
    result = cli("estimate", "--model", "ling-lite", "--chip", "ascend-910b", "--num-chips", "8",
                 "--stack", "megatron-core-nvidia")
    assert result.exit_code == 2
    assert "for NVIDIA chips" in result.output and "Huawei" in result.output


def test_dp_traffic_without_overlap_is_exposed_whole():
    """Step gather G = 2 s, reduce R = 3 s, micro-batch forward 1 s and backward 2 s, no
    per-micro-batch traffic, 4 micro-batches. Overlapped: G hides 1 s behind the first forward
    and R 2 s behind the last backward, 1 + 1 = 2 s exposed. Without overlap (a script without
    --overlap-grad-reduce/--overlap-param-gather): G + R = 5 s."""
    from moebench.engine.terms.data_parallel import DpTraffic, dp_exposed

    t = DpTraffic(reduce_step=3.0, gather_step=2.0, reduce_micro=0.0, gather_micro=0.0)
    assert dp_exposed(t, 4, 1.0, 2.0) == pytest.approx(2.0)
    assert dp_exposed(t, 4, 1.0, 2.0, overlap=False) == pytest.approx(5.0)


def test_a_run_without_dp_overlap_is_slower_by_its_exposed_traffic():
    from moebench.inputs.stack import StackOptions

    arch, chip = load_model("mixtral-8x7b"), load_chip("h100")
    run = RunConfig(seq_len=4096, global_batch=64)
    plans, _ = candidate_plans(arch, chip, run, 16, PlanRequest(
        tp=2, pp=1, vpp=1, ep=8, etp=1, cp=1, micro_batch=1, recompute="selective",
        schedule="1f1b", sharding="zero-1", optimizer_offload=0.0))
    on = evaluate(arch, chip, stack_of(chip), run, plans)
    off = evaluate(arch, chip, stack_of(chip, **StackOptions(dp_overlap=False).as_dict()),
                   run, plans)
    assert float(off.comm_exposed["dp"][0]) == pytest.approx(float(off.comm_total["dp"][0]))
    assert float(off.step_time[0] - on.step_time[0]) == pytest.approx(
        float(off.comm_exposed["dp"][0] - on.comm_exposed["dp"][0]))
    assert float(off.comm_exposed["dp"][0]) > float(on.comm_exposed["dp"][0])


def test_hidden_collectives_slow_the_compute_beside_them_by_their_share():
    """Llama 3 70B, TP8 and DP2 on 16 H100s, 8 micro-batches of 4, no pipeline: with a share s
    of the SMs held by the collectives, every second of TP traffic hidden behind the GEMMs and
    of DP traffic hidden behind the first forward and last backward costs s seconds of compute
    (the DP traffic stays hidden either way, so nothing else moves). s = 0.12 is Transformer
    Engine's 16 of 132 SMs."""
    arch, chip = load_model("llama-3-70b"), load_chip("h100")
    run = RunConfig(seq_len=4096, global_batch=64)
    plans = _plan(arch, chip, run, 16, tp=8, micro_batch=4, recompute="full")
    base = stack_of(chip)
    free = evaluate(arch, chip, replace(base, overlap_sm_share=0.0), run, plans)
    held = evaluate(arch, chip, replace(base, overlap_sm_share=0.12), run, plans)
    tp_hidden = _v(free.comm_total["tp"]) - _v(free.comm_exposed["tp_scale_up"])
    dp_hidden = _v(free.comm_total["dp"]) - _v(free.comm_exposed["dp"])
    assert tp_hidden > 0 and dp_hidden > 0 and _v(free.comm_exposed["dp"]) == 0.0
    assert _v(held.comm_exposed["overlap"]) == pytest.approx(0.12 * tp_hidden)
    assert _v(held.comm_exposed["dp"]) == pytest.approx(0.12 * dp_hidden)
    assert _v(held.step_time) - _v(free.step_time) == pytest.approx(
        0.12 * (tp_hidden + dp_hidden))
    # Exposed plus contention is s x total + (1 - s) x exposed: 2 s of 5 s exposed, s = 0.1.
    assert 2.0 + overlap.contention(5.0 - 2.0, 0.1) == pytest.approx(0.1 * 5.0 + 0.9 * 2.0)


def test_attention_core_adds_the_softmax_exponentials_at_the_sfu_rate():
    """Llama 3.1 8B (32 heads of 128) at 8K tokens on one H100: per token and layer the
    forward runs 2 x 32 x 256 x 8192 / 2 FLOPs of attention matmuls and 32 x 8192 / 2
    exponentials; the core takes F T / R + E T / 3.9e12 and its backward 2.5x the matmuls'
    FLOPs at 0.83 of the forward's rate (DeepSeek's H800 trace: 550 TFLOPS forward, 455
    backward) and 1x the exponentials'. A chip with no SFU figure has no exp term."""
    arch = load_model("llama-3.1-8b")
    chip = load_chip("h100")
    run = RunConfig(seq_len=8192, global_batch=8, precision="bf16")
    ctx = build_context(arch, chip, stack_of(chip), run, _plan(arch, chip, run, 8))
    tokens = 8192
    tc = 2 * 32 * 256 * 8192 / 2 * tokens / _v(ctx.attn_rate)
    sfu = 32 * 8192 / 2 * tokens / 3.9e12
    fwd, bwd = compute.attention_core_time(ctx)
    assert _v(fwd) == pytest.approx(tc + sfu)
    assert _v(bwd) == pytest.approx((2.5 / 0.83 * tc + sfu) / (tc + sfu))
    assert 0.15 < sfu / (tc + sfu) < 0.45  # a fifth to a third of the core on Hopper
    no_sfu = replace(ctx, exp_rate=np.inf)
    fwd0, bwd0 = compute.attention_core_time(no_sfu)
    assert _v(fwd0) == pytest.approx(tc) and _v(bwd0) == pytest.approx(2.5 / 0.83)


def test_blackwell_ultra_attention_forward_gains_about_a_third_over_blackwell():
    """NVIDIA's Blackwell Ultra softmax blog: ~35% faster FP8 attention forward on DeepSeek-V3
    (GB300 over GB200, the exp units doubled). An MLA model's BF16 attention core (DeepSeek-V2
    Lite: the same head shapes) on GB300 against GB200 at one plan: between 1.15x and 1.5x."""
    arch = load_model("deepseek-v2-lite")
    run = RunConfig(seq_len=4096, global_batch=8, precision="bf16")
    times = {}
    for name in ("gb200", "gb300"):
        chip = load_chip(name)
        ctx = build_context(arch, chip, stack_of(chip), run, _plan(arch, chip, run, 8, ep=8))
        times[name] = _v(compute.attention_core_time(ctx)[0])
    assert 1.15 < times["gb200"] / times["gb300"] < 1.5


@pytest.mark.parametrize("implementation, bytes_per_logit", [
    ("unfused", 52.0), ("fused", 28.0), ("te", 10.0)])
def test_cross_entropy_reads_and_writes_the_logits_by_implementation(implementation,
                                                                    bytes_per_logit):
    """Llama 3.1 8B (vocabulary 128,256) at 8K tokens on one H100 under TP 1: the loss moves
    B bytes per logit over 8192 x 128,256 logits at the achievable HBM bandwidth (3.35 TB/s x
    the profile's efficiency), B = 52 / 28 / 10 as counted from Megatron-Core's eager and
    jit-fused losses and Transformer Engine's Triton kernels."""
    arch = load_model("llama-3.1-8b")
    chip = load_chip("h100")
    run = RunConfig(seq_len=8192, global_batch=8, precision="bf16")
    stack = replace(stack_of(chip), cross_entropy=implementation)
    ctx = build_context(arch, chip, stack, run, _plan(arch, chip, run, 8))
    by_hand = bytes_per_logit * 8192 * 128256 / (chip.hbm_bw * chip.hbm_eff)
    assert _v(compute.loss_time(ctx)) == pytest.approx(by_hand)
    f = compute.layer_forward(ctx)
    assert _v(f.head_train) == pytest.approx(_v(compute.train(f.head)) + by_hand)


def test_loss_fusion_gains_what_amd_measured_on_deepseek_v2_lite():
    """AMD's DeepSeek-V2-Lite chart on 8 MI355X (Primus README, Fig. 6): turning loss fusion
    on at MBS 12 gained 2.1%. The step model, same plan, unfused against Transformer Engine's
    kernels: between 1% and 3.5% faster."""
    from moebench.commands.validation.fitting import prepare
    from moebench.commands.validation.measured_runs import load_runs
    from moebench.inputs.stack import load_stack_spec, stack_from_spec

    run = next(r for r in load_runs() if r.id == "primus-dsv2lite-mi355x-8-mbs12-baseline")
    assert run.options.cross_entropy == "unfused"
    p = prepare(run, "measured-runs.csv")
    spec = load_stack_spec("primus-amd")
    steps = {ce: _v(evaluate(p.arch, p.chip, stack_from_spec(
        spec, replace(run.options, cross_entropy=ce)), p.config, p.plan).step_time)
        for ce in ("unfused", "te")}
    assert 1.01 < steps["unfused"] / steps["te"] < 1.035


def test_expert_tp_traffic_stays_exposed_under_tp_overlap():
    """Mixtral 8x7B (32 MoE layers, no shared expert) at TP8 = expert TP8 on 8 H100s, no
    recompute: per layer and micro-batch the attention block's TP moves 1 forward and 1.5
    backward, the routed pairs' gather and scatter 1 and 1 (the dispatcher's collectives have
    no weight-gradient re-gather). The fused TP overlap (Transformer Engine's, MindSpeed's MC2)
    covers the attention linear layers only, so all of the routed traffic stays exposed."""
    from moebench.engine.terms import comm

    arch, chip = load_model("mixtral-8x7b"), load_chip("h100")
    run = RunConfig(seq_len=4096, global_batch=8)
    plans = _plan(arch, chip, run, 8, tp=8, etp=8)
    assert overlap.routed_tp_exposed(2.0, 1.0) == (2.0, 4.0)  # a full recompute: 2 forwards
    for on in (False, True):
        stack = stack_of(chip, tp_overlap=on)
        r = evaluate(arch, chip, stack, run, plans)
        tp = comm.tp_layer(build_context(arch, chip, stack, run, plans))
        m, routed, block = _v(r.num_micro), _v(tp.routed), _v(tp.attention)
        assert m == 8 and _v(tp.moe) == 0.0 and routed > 0
        assert _v(r.comm_total["tp"]) == pytest.approx(m * 32 * (2.5 * block + 2 * routed))
        exposed = _v(r.comm_exposed["tp_scale_up"])
        assert m * 32 * 2 * routed <= exposed <= m * 32 * (2.5 * block + 2 * routed) + 1e-12


def test_without_sequence_parallelism_tp_is_all_reduced_and_exposed():
    """Megatron-LM before sequence parallelism (BigScience's Megatron-DeepSpeed, 2022): per
    block one all-reduce forward and one backward (1 + 1 forwards' worth, not 1 + 1.5), both
    waited on, and every TP rank normalises all its tokens (elementwise x tp)."""
    arch, chip = load_model("llama-3-70b"), load_chip("a100")
    run = RunConfig(seq_len=2048, global_batch=16)
    plans = _plan(arch, chip, run, 8, tp=4, pp=2, micro_batch=1)
    no_sp = stack_of(chip, "megatron-deepspeed")
    assert not no_sp.sequence_parallel and not no_sp.tp_comm_overlap
    sp = replace(no_sp, sequence_parallel=True)
    a, b = evaluate(arch, chip, no_sp, run, plans), evaluate(arch, chip, sp, run, plans)
    assert _v(a.compute["elementwise"]) == pytest.approx(4 * _v(b.compute["elementwise"]))
    assert _v(a.comm_total["tp"]) == pytest.approx(_v(b.comm_total["tp"]) * 2 / 2.5)
    assert _v(a.comm_exposed["tp_scale_up"]) == pytest.approx(_v(a.comm_total["tp"]))
    assert _v(b.comm_exposed["tp_scale_up"]) < _v(b.comm_total["tp"])


def test_gradients_added_up_outside_the_gemms_cost_a_pass_per_micro_batch():
    """DeepSpeed's pipeline engine accumulates autograd's half-precision param.grad: each
    micro-batch after the first reads both gradients and writes the sum, 6 B per parameter
    on the rank (10 B into the BF16 optimizer's FP32 buffer); Megatron's main_grad takes the
    sum inside the weight-gradient GEMM, so nothing."""
    from moebench.engine.state import heaviest, rank_params

    arch, chip = load_model("llama-3-70b"), load_chip("a100")
    run = RunConfig(seq_len=2048, global_batch=16)
    plans = _plan(arch, chip, run, 8, tp=4, pp=2, micro_batch=1)
    stack = stack_of(chip, "megatron-deepspeed")
    ctx = build_context(arch, chip, stack, run, plans)
    m = _v(ctx.num_micro)
    params = sum(_v(p) for p in heaviest(rank_params(ctx)))
    assert m == 16 and params > 8e9  # 70B over tp 4 x pp 2, the embedding's stage
    for grads, per_param in (("half", 6.0), ("half+fp32", 10.0), ("fp32", 0.0), ("bf16", 0.0)):
        r = evaluate(arch, chip, replace(stack, main_grads=grads), run, plans)
        assert _v(r.compute["grad_accumulation"]) == pytest.approx(
            15 * per_param * params / _v(ctx.mem_bw))


def test_pipeline_sends_overlap_only_where_the_schedule_leaves_room():
    """Megatron overlaps point-to-point only in the interleaved schedule; plain 1F1B exposes
    all of it even when the stack turns the overlap on (DualPipe overlaps by design)."""
    arch, chip = load_model("llama-3-70b"), load_chip("h100")
    run = RunConfig(seq_len=4096, global_batch=64)
    stack = stack_of(chip, pp_overlap=True)
    plain = evaluate(arch, chip, stack, run, _plan(arch, chip, run, 16, tp=8, pp=2))
    interleaved = evaluate(arch, chip, stack, run, _plan(arch, chip, run, 16, tp=8, pp=2, vpp=2))
    assert _v(plain.comm_total["pp"]) > 0
    assert _v(plain.comm_exposed["pp"]) == pytest.approx(_v(plain.comm_total["pp"]))
    assert _v(interleaved.comm_exposed["pp"]) < 0.5 * _v(interleaved.comm_total["pp"])


def test_mla_head_dims_padded_for_the_attention_kernel_cost_matmul_time_not_model_flops():
    """DeepSeek-V2-Lite's MLA (qk 128 + 64 = 192, v 128): the value padded to 192 makes the
    attention matmuls (192 + 192) / (192 + 128) = 1.2 times the model's; all three padded to
    256, as ModelLink 1.0.RC3 does under its default SBH layout, 512 / 320 = 1.6. A model
    without MLA pays nothing, and the model's FLOPs (MFU) never change."""
    from moebench.engine.attention_core import attention_core_flops, mla_pad_factor
    from moebench.inputs.model import load_model

    lite = load_model("deepseek-v2-lite")
    assert mla_pad_factor(lite.spec.attention, "none") == 1.0
    assert mla_pad_factor(lite.spec.attention, "v") == pytest.approx(1.2)
    assert mla_pad_factor(lite.spec.attention, "256") == pytest.approx(1.6)
    llama = load_model("llama-2-7b")
    assert mla_pad_factor(llama.spec.attention, "256") == 1.0
    assert attention_core_flops(lite, 8192, "256") == pytest.approx(
        1.6 * attention_core_flops(lite, 8192))


def test_a_release_that_pads_mla_pays_in_the_attention_core_only(cli):
    """DeepSeek-V2-Lite on 8 910Bs, the same plan on ModelLink 1.0.RC3 (pads to 256) and
    MindSpeed-LLM 2.0.0 (does not; its DeepSeek-V3 scripts pass --mla-fa-without-pad): the
    attention core grows by the matmul share of 1.6 (the exponentials do not grow), the
    model's FLOPs per token stay."""
    import json

    def run(release):
        out = cli("estimate", "--model", "deepseek-v2-lite", "--chip", "ascend-910b",
                  "--num-chips", "8", "--stack", f"mindspeed-llm@{release}", "--tp", "1",
                  "--pp", "1", "--ep", "8", "--micro-batch", "1", "--recompute", "full",
                  "--seq-len", "8192", "--global-batch", "8", "--dispatcher", "allgather",
                  "--format", "json")
        d = json.loads(out.output)
        return d["breakdown_s"]["compute_attention_core"], d["model_flops_per_token"]

    (padded, f1), (plain, f2) = run("1.0.rc3"), run("2.0.0")
    assert f1 == f2
    assert 1.3 < padded / plain <= 1.6 + 1e-9


def test_modellink_pads_as_each_models_script_says():
    """ModelLink 1.0.RC3: its DeepSeek-V2-Lite script runs the default SBH layout (query, key
    and value padded to 256); its DeepSeek-V2 60B script, the 16-layer cut of its README
    table, passes --shape-order BNSD (the value alone padded to 192), a recipe for that
    model; MindSpeed-LLM 2.0.0's DeepSeek-V3 scripts pass --mla-fa-without-pad."""
    from moebench.inputs.stack import load_stack_spec

    rc3 = load_stack_spec("mindspeed-llm@1.0.rc3")

    def pad(spec, model):
        return spec.for_platform("ascend-910b", "bf16", model, True).release.defaults[
            "mla_attention_pad"]

    assert pad(rc3, "deepseek-v2-lite") == "256"
    assert pad(rc3, "deepseek-v2-16l-mindspeed") == "v"
    assert pad(load_stack_spec("mindspeed-llm@2.0.0"), "deepseek-v3") == "none"
    assert pad(load_stack_spec("megatron-core-nvidia"), "deepseek-v3") == "none"
