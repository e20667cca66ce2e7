"""NeMo AutoModel, NVIDIA's PyTorch-native stack family: what its release implements and does
by default (read from its code at the commit of its performance summary), and a search that
stays inside it."""

import json

import pytest

from moebench.inputs.stack import load_stack_spec


def _one_line(result, *needles):
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_the_release_says_what_its_code_does():
    """2025.10: DeepEP by default, pure-BF16 state, whole-block checkpointing only, no TP or CP
    for MoE models, FSDP2 (zero-3, and zero-1's traffic under pipelining), no EP overlap; its
    fitted figures are megatron-core-nvidia's (the same Transformer Engine kernels)."""
    spec, mc = load_stack_spec("nemo-automodel"), load_stack_spec("megatron-core-nvidia")
    rel = spec.release
    assert rel.name == "2025.10"
    assert rel.caps.recompute == ("none", "full") and rel.caps.moe_tp_cp is False
    assert set(rel.caps.sharding) == {"zero-1", "zero-3", "hsdp"}
    assert rel.caps.ep_overlap is False and rel.caps.graphs == ("none",)
    assert rel.defaults["dispatcher"] == "deepep"
    assert rel.defaults["optimizer_states"] == "pure-bf16"
    assert spec.moe.dispatchers["deepep"].per_rank
    for name in ("gemm_fraction", "attention_fraction"):
        assert getattr(spec.kernels, name).value == pytest.approx(
            getattr(mc.kernels, name).value, abs=1e-4)


def test_its_search_returns_only_what_it_implements(cli):
    """DeepSeek-V3 on 256 H100s, nothing but the batch given: TP 1, CP 1, whole-layer or no
    recompute, a sharding it has. Asked for CP, TP or selective recompute of an MoE model, it
    refuses in one line naming the release; a dense model may take CP."""
    args = ("estimate", "--model", "deepseek-v3-no-mtp", "--chip", "h100:nemo-automodel",
            "--num-chips", "256", "--global-batch", "512")
    plan = json.loads(cli(*args, "--format", "json").stdout)["plan"]
    assert plan["tp"] == 1 and plan["cp"] == 1
    assert plan["recompute"] in ("none", "full")
    assert plan["sharding"] in ("zero-1", "zero-3", "hsdp")
    _one_line(cli(*args, "--cp", "2"), "--cp", "nemo-automodel@2025.10",
              "CP for MoE models")
    _one_line(cli(*args, "--tp", "2"), "--tp", "TP for MoE models")
    _one_line(cli(*args, "--recompute", "selective"), "--recompute", "none, full")
    dense = json.loads(cli("estimate", "--model", "llama-3-70b", "--chip",
                           "h100:nemo-automodel", "--num-chips", "64", "--global-batch", "128",
                           "--seq-len", "8192", "--cp", "2", "--format", "json").stdout)
    assert dense["plan"]["cp"] == 2
