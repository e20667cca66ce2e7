"""Bare Megatron-LM releases (megatron-core-nvidia@core_r0.8.0, core_v0.12.0, core_v0.14.0):
the containers' code with Megatron-LM's own defaults, as pretrain_gpt.py runs without a NeMo or
Megatron-Bridge recipe."""

import json

import pytest

from moebench.inputs.stack import load_stack_spec

BARE = {"core_r0.8.0": "24.07", "core_v0.12.0": "25.04", "core_v0.14.0": "25.09"}


@pytest.mark.parametrize("bare, container", BARE.items())
def test_a_bare_release_is_its_containers_code_with_megatron_lms_defaults(bare, container):
    """megatron/training/arguments.py at each tag: --moe-token-dispatcher-type defaults to
    allgather; --tp-comm-overlap, --overlap-grad-reduce/--overlap-param-gather,
    --cross-entropy-loss-fusion, --sequence-parallel and --moe-grouped-gemm are store_true;
    --no-overlap-p2p-communication is store_false (pipeline sends overlapped)."""
    releases = load_stack_spec("megatron-core-nvidia").releases_resolved
    b, c = releases[bare], releases[container]
    assert b.caps == c.caps and b.date == c.date
    assert b.platforms == () and c.defaults["tp_overlap"] is True
    assert {k: b.defaults[k] for k in ("dispatcher", "tp_overlap", "dp_overlap", "pp_overlap",
                                       "cross_entropy", "sequence_parallel", "grouped_gemm",
                                       "pipeline_layout", "graphs", "ep_overlap")} == {
        "dispatcher": "allgather", "tp_overlap": False, "dp_overlap": False,
        "pp_overlap": True, "cross_entropy": "unfused", "sequence_parallel": False,
        "grouped_gemm": False, "pipeline_layout": "even", "graphs": "none",
        "ep_overlap": False}
    # Megatron-Bridge's FP8 recipes keep parameters in FP8; bare Megatron-LM does not.
    assert b.defaults["fp8_weight_cache"] is True


def test_the_bare_name_is_still_the_newest_container():
    spec = load_stack_spec("megatron-core-nvidia")
    assert spec.release.name == "26.08"


def _estimate(cli, *args: str) -> dict:
    result = cli("estimate", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


LLAMA = ("--model", "llama-3.1-8b", "--chip", "h100", "--num-chips", "8", "--tp", "2",
         "--pp", "1", "--vpp", "1", "--cp", "1", "--micro-batch", "1", "--recompute", "none",
         "--zero", "1", "--global-batch", "64", "--seq-len", "4096",
         "--offload-modules", "none", "--optimizer-offload", "0")


def test_tp_overlap_needs_sequence_parallelism(cli):
    """Megatron-LM asserts sequence parallelism under --tp-comm-overlap (arguments.py): given
    both, the run is refused in one line; a recipe's default overlap is dropped when the run
    turns sequence parallelism off (NeMo's comm-overlap callback drops it)."""
    bare = ("--stack", "megatron-core-nvidia@core_r0.8.0")
    refused = cli("estimate", *LLAMA, *bare, "--settings", "tp_overlap=on")
    assert refused.exit_code == 2
    assert "TP overlap needs sequence parallelism" in refused.output
    ok = _estimate(cli, *LLAMA, *bare, "--settings", "tp_overlap=on,sequence_parallel=on")
    container = ("--stack", "megatron-core-nvidia@24.07")
    dropped = _estimate(cli, *LLAMA, *container, "--settings", "sequence_parallel=off")
    both_off = _estimate(cli, *LLAMA, *container,
                         "--settings", "sequence_parallel=off,tp_overlap=off")
    assert dropped["step_time_s"] == pytest.approx(both_off["step_time_s"], rel=1e-12)
    assert ok["step_time_s"] < both_off["step_time_s"]


def test_the_sequence_parallel_alternative_drops_the_overlap_with_it(cli):
    """The assumed list's alternative to a default of sequence parallelism on is the step with
    it off, and so with TP overlap off too (the same rule as a run that says so)."""
    container = ("--stack", "megatron-core-nvidia@24.07")
    base = _estimate(cli, *LLAMA, *container)
    sp = next(a for a in base["assumed"] if a["setting"] == "sequence_parallel")
    assert sp["value"] is True and sp["alternative"] is False
    off = _estimate(cli, *LLAMA, *container, "--settings", "sequence_parallel=off")
    assert 1 + sp["change"] == pytest.approx(off["step_time_s"] / base["step_time_s"],
                                             rel=1e-9)


def test_bare_moe_runs_loop_over_experts_unless_told(cli):
    """Without --moe-grouped-gemm Megatron-LM runs each local expert's MLP in turn
    (SequentialMLP): the host issues every expert's GEMMs. The assumption names it, and
    --settings grouped_gemm=on is the alternative it reports."""
    args = ("--model", "qwen3-30b-a3b", "--chip", "h100", "--num-chips", "8", "--tp", "1",
            "--pp", "1", "--ep", "8", "--micro-batch", "1", "--recompute", "none",
            "--global-batch", "64", "--seq-len", "4096", "--stack",
            "megatron-core-nvidia@core_v0.14.0")
    loop = _estimate(cli, *args)
    assumed = {a["setting"]: a for a in loop["assumed"]}
    assert assumed["grouped_gemm"]["value"] is False
    assert assumed["grouped_gemm"]["alternative"] is True
    assert assumed["dispatcher"]["value"] == "allgather"
    grouped = _estimate(cli, *args, "--settings", "grouped_gemm=on")
    change = assumed["grouped_gemm"]["change"]
    assert change < 0
    assert grouped["step_time_s"] == pytest.approx(loop["step_time_s"] * (1 + change),
                                                   rel=1e-9)
