"""Linear-attention (Gated DeltaNet) layers of hybrid models, against hand-computed counts.

The tiny hybrid: the tiny MoE of conftest (h 64, 4 layers, vocab 1000) whose full-attention
layer is gated (Qwen3-Next style) and whose other 3 layers are Gated DeltaNet with 2 key heads
and 4 value heads, d_k 8, d_v 16, conv kernel 4: key_dim 16, value_dim 64, conv_dim 96.
"""

import numpy as np
import pytest
from pydantic import ValidationError

from moebench.engine.attention_core import attention_core_flops
from moebench.engine.context import build_context
from moebench.engine.linear_attention import (
    delta_rule_flops,
    linear_attention_activations,
    linear_attention_core_flops,
    recurrent_state_elements,
)
from moebench.engine.memory import activation_bytes_per_layer
from moebench.engine.model_flops import model_flops_per_token
from moebench.engine.plan import PlanRequest
from moebench.engine.plan_space import candidate_plans
from moebench.engine.workload import layer_shapes
from moebench.inputs.hardware import load_chip
from moebench.inputs.linear_attention import LinearAttention, gated_deltanet_params
from moebench.inputs.model import arch_from_spec, load_model
from moebench.inputs.run import RunConfig
from tests.conftest import stack_of, tiny_spec

LIN = {"kind": "gated_deltanet", "count": 3, "num_key_heads": 2, "num_value_heads": 4,
       "key_head_dim": 8, "value_head_dim": 16, "conv_kernel_size": 4}
GATED = {"kind": "gqa", "num_heads": 8, "num_kv_heads": 2, "head_dim": 8, "qk_norm": True,
         "output_gate": True}


@pytest.fixture
def hybrid():
    return arch_from_spec(tiny_spec(attention=GATED, linear_attention=LIN))


def test_gated_deltanet_weights_by_hand():
    lin = LinearAttention.model_validate(LIN)
    # in_proj_qkvz 64 x (2*16 + 2*64) = 10,240; in_proj_ba 64 x 8 = 512; out_proj 64 x 64 =
    # 4,096; conv 96 x 4 = 384; dt_bias and A_log 2 x 4; gated norm 16.
    assert gated_deltanet_params(lin, 64) == 10_240 + 512 + 4_096 + 384 + 8 + 16


def test_hybrid_counts_by_hand(hybrid):
    p = hybrid.params
    # Gated attention: Wq doubled for the gate 64 x (64 + 64), Wk, Wv 64 x 16 each, Wo 64 x 64,
    # q and k norms 8 each: 14,352, in the one full-attention layer.
    assert p.attention == 64 * (128 + 32) + 64 * 64 + 16
    assert p.linear_attention == 3 * 15_256
    plain = arch_from_spec(tiny_spec()).params
    assert p.total == plain.total - plain.attention + 14_352 + 3 * 15_256


def test_delta_rule_flops_by_hand():
    lin = LinearAttention.model_validate(LIN)
    # n_v (6 d_k d_v + 2 C (3 d_k + 2 d_v)) = 4 (768 + 128 x 56) = 31,744 at C = 64; the conv
    # adds 2 x 96 x 4 = 768. Nothing depends on the sequence length.
    assert delta_rule_flops(lin) == 31_744
    assert linear_attention_core_flops(lin) == 32_512
    assert delta_rule_flops(lin, chunk=16) == 4 * (768 + 32 * 56)
    assert recurrent_state_elements(lin) == 4 * 8 * 16 / 64


def test_hybrid_model_flops_by_hand(hybrid):
    # forward at s = 128: full attention 2 x 14,352 + causal 2 x 8 x 16 x 64 = 16,384;
    # 3 linear layers x (2 x 14,848 projections + 32,512 core); dense 2 x 49,152;
    # MoE 3 x 2 x 18,944; head 2 x 64,000.
    f = model_flops_per_token(hybrid, 128)
    assert f.linear_attention == 3 * 3 * (2 * 14_848 + 32_512)
    assert f.attention_core == 3 * 16_384
    forward = 28_704 + 16_384 + 186_624 + 98_304 + 113_664 + 128_000
    assert f.total == 3 * forward
    # Doubling s doubles only the full-attention layer's causal term.
    assert model_flops_per_token(hybrid, 256).total - f.total == 3 * 16_384


def test_average_layer_shapes_by_hand(hybrid):
    sh = layer_shapes(hybrid)
    assert sh.attn_proj_params == (14_352 + 3 * 14_848) / 4
    assert attention_core_flops(hybrid, 128) == (16_384 + 3 * 32_512) / 4
    assert sh.kv_width == 2 * 16 / 4  # only the full-attention layer passes K and V
    # Activation elements per token: gated attention (128, 64 + 64 + 32 + 2 x 64, 64), Gated
    # DeltaNet (64 + 64, 64 + 96 + 4 x (16 + 16 + 2 + 64) + 8 + 128, 64).
    assert linear_attention_activations(LinearAttention.model_validate(LIN), 64) == (128, 688, 64)
    assert (sh.attn_act_gemm_in, sh.attn_act_other, sh.attn_act_recomputable) == (
        128, (288 + 3 * 688) / 4, 64)
    assert sh.recurrent_state == 8
    assert sh.attn_proj_depth == 64  # every projection here reduces over 64


def test_a_model_without_linear_attention_is_unchanged(tiny):
    sh = layer_shapes(tiny)
    assert sh.attn_proj_params == 10_240 and sh.recurrent_state == 0
    assert model_flops_per_token(tiny, 128).linear_attention == 0


def _context(arch, recompute):
    chip, run = load_chip("h100"), RunConfig(seq_len=128, global_batch=8)
    plans, _ = candidate_plans(arch, chip, run, 1, PlanRequest(
        tp=1, pp=1, vpp=1, ep=1, etp=1, cp=1, micro_batch=1, recompute=recompute,
        schedule="1f1b"))
    return build_context(arch, chip, stack_of(chip), run, plans)


def test_chunk_states_are_working_memory(hybrid):
    # 128 tokens x 8 state elements x 2 copies (states and their gradients) x 2 bytes.
    for recompute in ("none", "selective"):
        _, working = activation_bytes_per_layer(_context(hybrid, recompute))
        assert float(np.asarray(working)[0]) == 128 * 8 * 2 * 2
    stored, working = activation_bytes_per_layer(_context(hybrid, "full"))
    assert float(np.asarray(stored)[0]) == 2 * 64 * 128  # only the layer input


def test_plans_split_linear_heads_and_skip_context_parallelism(hybrid):
    chip, run = load_chip("h100"), RunConfig(seq_len=128, global_batch=8)
    plans, removed = candidate_plans(hybrid, chip, run, 8, PlanRequest())
    assert set(plans.tp) <= {1, 2}  # 2 key heads
    assert set(plans.cp) == {1}
    assert removed["cp of linear-attention layers is not modelled"] > 0


def test_bad_linear_attention_records_are_refused():
    with pytest.raises(ValidationError, match="multiple of num_key_heads"):
        LinearAttention.model_validate(dict(LIN, num_value_heads=3))
    with pytest.raises(ValidationError, match="exceeds num_layers"):
        tiny_spec(linear_attention=dict(LIN, count=5))
    with pytest.raises(ValidationError, match="Extra inputs"):
        LinearAttention.model_validate(dict(LIN, chunk=64))


def test_qwen3_next_linear_layers_do_not_grow_with_s():
    """The shipped hybrid's linear layers outweigh its full-attention core at 4k, but only the
    full-attention core grows with the sequence."""
    arch = load_model("qwen3-next-80b-a3b")
    f4, f32 = model_flops_per_token(arch, 4096), model_flops_per_token(arch, 32768)
    assert f4.linear_attention > f4.attention_core
    assert f32.linear_attention == f4.linear_attention
    assert f32.attention_core == 8 * f4.attention_core
