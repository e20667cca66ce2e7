"""torchtitan, the PyTorch-native stack family, and the Grand Teton H100 its benchmarks ran on."""

import json

import pytest

from moebench.inputs.hardware import load_chip
from moebench.inputs.stack import load_stack_spec


def test_the_grand_teton_h100_is_an_h100_with_hbm2e_at_500_w():
    """pytorch/torchtitan benchmarks: 96 GB HBM2e at 2.4 TB/s, 500 W; the peak lies between
    the H100 NVL's 835 and the SXM5's 989.4 TFLOPS, taken at the midpoint. The 96 GB are
    binary, as every part's whose device total is published (six 16 GiB stacks)."""
    chip, sxm = load_chip("h100-hbm2e"), load_chip("h100")
    assert chip.hbm_bw == pytest.approx(2.4e12)
    assert chip.hbm_bytes == pytest.approx(96 * 2**30, rel=1e-4) and chip.tdp_w == 500
    assert chip.bf16_flops == pytest.approx(912e12)
    assert chip.bf16_flops < sxm.bf16_flops and chip.hbm_bw < sxm.hbm_bw


def test_torchtitan_attention_is_flashattention_2_not_megatrons_cudnn():
    """0.35 of the H100's peak (FlashAttention-3 paper on FlashAttention-2) over its 0.803
    matmul share: 0.436 of the matmul rate, against the 0.72 megatron-core-nvidia fits; the
    GEMMs keep the fit torchtitan inherits."""
    tt, mc = load_stack_spec("torchtitan"), load_stack_spec("megatron-core-nvidia")
    assert tt.kernels.attention_fraction.value == pytest.approx(0.35 / 0.803, abs=0.001)
    assert tt.kernels.gemm_fraction.value == pytest.approx(mc.kernels.gemm_fraction.value,
                                                           abs=1e-4)


def test_a_torchtitan_run_on_its_chip(cli):
    """Llama 3.1 70B on 256 Grand Teton H100s, FSDP 32 x TP 8, local batch 16, full
    checkpointing, Float8 (torchtitan's Table 4): the chip's default stack is torchtitan, FSDP
    shards over the 32 data-parallel ranks, and async TP (tp_overlap) makes the step shorter,
    as measured (829 -> 876 tokens/s per GPU)."""
    args = ("estimate", "--model", "llama-3-70b", "--chip", "h100-hbm2e", "--num-chips", "256",
            "--tp", "8", "--pp", "1", "--micro-batch", "16", "--recompute", "full", "--fsdp",
            "--precision", "fp8", "--seq-len", "8192", "--global-batch", "512",
            "--format", "json")
    vanilla = json.loads(cli(*args).output)
    assert vanilla["stack"].startswith("torchtitan@")
    assert vanilla["plan"]["sharding"] == "zero-3" and vanilla["plan"]["dp"] == 32
    overlap = {a["setting"]: a for a in vanilla["assumed"]}["tp_overlap"]
    assert overlap["value"] is False and overlap["change"] < 0


def test_a_dense_only_release_refuses_an_moe_model(cli):
    """torchtitan 2024.12 trains dense Llama models only; its 2025.06 release has MoE with
    expert parallelism (experiments/llama4): Mixtral 8x7B is refused on the first in one line
    that names the release, and estimated on the second."""
    args = ("estimate", "--model", "mixtral-8x7b", "--chip", "h100-hbm2e", "--num-chips", "16")
    refused = cli(*args, "--stack", "torchtitan@2024.12")
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "torchtitan@2024.12 trains dense models only" in refused.output
    assert len([ln for ln in refused.output.splitlines() if ln.strip()]) == 1
    ok = json.loads(cli(*args, "--stack", "torchtitan@2025.06", "--format", "json").output)
    assert ok["plan"]["ep"] > 1
