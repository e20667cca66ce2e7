"""Hugging Face config.json import of the types added last: dense Qwen2/Qwen2.5, Qwen3 and
Mistral, and the MoE models MiniMax-M2, dots.llm1 and Ling 2.0.

Each config carries the released checkpoint's architecture keys (source named per config), and
each count is checked against the figure its publisher gives, within 1% (or, where the
published figure is rounded more coarsely, that moebench's count rounds to it).
"""

import json

import pytest

from moebench.inputs.model import load_model

# Qwen/Qwen3-8B config.json (keys as in transformers' Qwen3Config).
QWEN3_8B = {
    "model_type": "qwen3", "_name_or_path": "Qwen/Qwen3-8B", "hidden_size": 4096,
    "intermediate_size": 12288, "num_hidden_layers": 36, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
    "tie_word_embeddings": False, "use_sliding_window": False, "sliding_window": None,
    "max_window_layers": 36, "attention_bias": False,
}
# Qwen/Qwen2.5-7B and Qwen/Qwen2.5-72B config.json (transformers' Qwen2Config).
QWEN25_7B = {
    "model_type": "qwen2", "_name_or_path": "Qwen/Qwen2.5-7B", "hidden_size": 3584,
    "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
    "num_key_value_heads": 4, "vocab_size": 152064, "tie_word_embeddings": False,
    "use_sliding_window": False, "sliding_window": 131072, "max_window_layers": 28,
}
QWEN25_72B = dict(QWEN25_7B, _name_or_path="Qwen/Qwen2.5-72B", hidden_size=8192,
                  intermediate_size=29568, num_hidden_layers=80, num_attention_heads=64,
                  num_key_value_heads=8, max_window_layers=80)
# mistralai/Mistral-7B-v0.1 config.json: a 4096-key window in every layer.
MISTRAL_7B = {
    "model_type": "mistral", "_name_or_path": "mistralai/Mistral-7B-v0.1", "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "vocab_size": 32000, "sliding_window": 4096,
    "tie_word_embeddings": False,
}
# MiniMaxAI/MiniMax-M2 config.json, as parsers of the released checkpoint reproduce it
# (e.g. a Go MLX loader's fixture and a vLLM hook test's config, both with qk_norm_type
# per_layer and MTP keys that transformers' MiniMaxM2Config does not have).
MINIMAX_M2 = {
    "model_type": "minimax_m2", "_name_or_path": "MiniMaxAI/MiniMax-M2", "vocab_size": 200064,
    "hidden_size": 3072, "intermediate_size": 1536, "num_hidden_layers": 62,
    "num_attention_heads": 48, "num_key_value_heads": 8, "head_dim": 128,
    "num_local_experts": 256, "num_experts_per_tok": 8, "scoring_func": "sigmoid",
    "use_routing_bias": True, "use_mtp": True, "num_mtp_modules": 3,
    "mtp_transformer_layers": 1, "use_qk_norm": True, "qk_norm_type": "per_layer",
    "rotary_dim": 64, "tie_word_embeddings": False,
}
# rednote-hilab/dots.llm1 config.json, as an MLX loader's test of the released checkpoint
# reproduces it (head_dim absent: hidden_size / num_attention_heads).
DOTS1 = {
    "model_type": "dots1", "_name_or_path": "rednote-hilab/dots.llm1.base", "hidden_size": 4096,
    "num_hidden_layers": 62, "intermediate_size": 10944, "num_attention_heads": 32,
    "num_key_value_heads": 32, "vocab_size": 152064, "first_k_dense_replace": 1,
    "moe_intermediate_size": 1408, "n_routed_experts": 128, "n_shared_experts": 2,
    "num_experts_per_tok": 6, "norm_topk_prob": True, "routed_scaling_factor": 2.5,
    "scoring_func": "sigmoid", "attention_bias": False, "tie_word_embeddings": False,
}
# inclusionAI/Ling-mini-2.0: the defaults of Megatron-Bridge's BailingMoeV2Config
# (src/megatron/bridge/models/bailing/configuration_bailing_moe_v2.py), which its Ling 2.0 page
# lists as this model's architecture (256 experts top-8, QK norm, sigmoid group routing).
LING_MINI_2 = {
    "model_type": "bailing_moe_v2", "_name_or_path": "inclusionAI/Ling-mini-2.0",
    "vocab_size": 157184, "hidden_size": 2048, "intermediate_size": 5120,
    "num_hidden_layers": 20, "num_attention_heads": 16, "num_key_value_heads": 4,
    "head_dim": 128, "use_qkv_bias": False, "use_bias": False, "tie_word_embeddings": False,
    "num_experts": 256, "num_shared_experts": 1, "num_experts_per_tok": 8, "n_group": 8,
    "topk_group": 4, "moe_intermediate_size": 512, "first_k_dense_replace": 1,
    "use_qk_norm": True, "num_nextn_predict_layers": 0,
}
LATEST = {"qwen3": QWEN3_8B, "qwen2": QWEN25_7B, "mistral": MISTRAL_7B,
          "minimax_m2": MINIMAX_M2, "dots1": DOTS1, "bailing_moe_v2": LING_MINI_2}


def _load(tmp_path, data):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return load_model(str(path))


def test_qwen3_8b(tmp_path):
    # Qwen3-8B model card: 8.2B parameters, 6.95B non-embedding; the shipped qwen3-8b profile
    # counts the same 8,190,735,360.
    arch = _load(tmp_path, QWEN3_8B)
    p = arch.params
    assert p.total == load_model("qwen3-8b").params.total == 8_190_735_360
    assert p.total - p.embedding - p.lm_head == pytest.approx(6.95e9, rel=0.01)
    att = arch.spec.attention
    assert (att.qk_norm, att.qkv_bias, att.sliding_window) == (True, False, None)


def test_qwen3_head_dim_defaults_to_128(tmp_path):
    # Qwen3Config: head_dim 128 when absent, not hidden_size / num_attention_heads (5120 / 40).
    no_key = {k: v for k, v in QWEN3_8B.items() if k != "head_dim"}
    assert _load(tmp_path, dict(no_key, hidden_size=5120, num_attention_heads=40)
                 ).spec.attention.head_dim == 128


def test_qwen2_5_7b_and_72b(tmp_path):
    # Qwen2.5 model cards: 7.61B (6.53B non-embedding) and 72.7B (70.0B non-embedding). q, k, v
    # biases: 28 layers x (3584 + 2 x 512).
    small = _load(tmp_path, QWEN25_7B).params
    assert small.total == pytest.approx(7.61e9, rel=0.01)
    assert small.total - small.embedding - small.lm_head == pytest.approx(6.53e9, rel=0.01)
    big = _load(tmp_path, QWEN25_72B).params
    assert big.total == pytest.approx(72.7e9, rel=0.01)
    assert big.total - big.embedding - big.lm_head == pytest.approx(70.0e9, rel=0.01)
    no_bias = _load(tmp_path, dict(QWEN25_7B, model_type="llama")).params
    assert small.total - no_bias.total == 28 * (3584 + 2 * 512)


def test_qwen2_sliding_window_from_max_window_layers(tmp_path):
    # Qwen2Config: the window only under use_sliding_window, in layers max_window_layers on.
    att = _load(tmp_path, dict(QWEN25_7B, use_sliding_window=True, sliding_window=4096,
                               max_window_layers=21)).spec.attention
    assert (att.sliding_window, att.sliding_window_layers) == (4096, 7)


def test_mistral_7b(tmp_path):
    # Mistral AI, "Mistral 7B" (2023): 7.3B parameters; moebench 7.24B (-0.8%). The 4096-key
    # window is in all 32 layers; 4096 when the key is absent, none when it is null.
    arch = _load(tmp_path, MISTRAL_7B)
    assert arch.params.total == pytest.approx(7.3e9, rel=0.01)
    assert (arch.spec.attention.sliding_window, arch.spec.attention.sliding_window_layers) == \
        (4096, 32)
    absent = {k: v for k, v in MISTRAL_7B.items() if k != "sliding_window"}
    assert _load(tmp_path, absent).spec.attention.sliding_window == 4096
    assert _load(tmp_path, dict(MISTRAL_7B, sliding_window=None)).spec.attention \
        .sliding_window is None
    # Mistral NeMo's head_dim 128 differs from 5120 / 32; null is hidden_size / heads.
    assert _load(tmp_path, dict(MISTRAL_7B, head_dim=None)).spec.attention.head_dim == 128


def test_minimax_m2(tmp_path):
    # MiniMax-M2 model card: 230B total, 10B active. moebench: 228.69B (-0.6%); 9.80B active
    # without the embeddings (11.03B with both). QK norm over all 48 x 128 query and 8 x 128
    # key channels per layer; the MTP keys are not read.
    arch = _load(tmp_path, MINIMAX_M2)
    p = arch.params
    assert p.total == pytest.approx(230e9, rel=0.01)
    assert round((p.active - p.embedding - p.lm_head) / 1e9) == 10
    assert p.mtp == 0 and arch.spec.mtp_depth == 0
    heads = 62 * (3072 * 6144 * 2 + 3072 * 1024 * 2)
    assert p.attention == heads + 62 * (6144 + 1024)


def test_dots1_dots_llm1(tmp_path):
    # dots.llm1 (arXiv 2506.05767, model card): 142B total, 14B activated. moebench: 142.77B
    # (+0.5%), 14.02B active with the embeddings (+0.1%). The first layer is dense.
    arch = _load(tmp_path, DOTS1)
    p = arch.params
    assert p.total == pytest.approx(142e9, rel=0.01)
    assert p.active == pytest.approx(14e9, rel=0.01)
    assert arch.spec.dense_layers.count == 1 and arch.spec.moe.num_shared_experts == 2
    assert arch.spec.attention.head_dim == 128


def test_bailing_moe_v2_ling_mini_2(tmp_path):
    # inclusionAI's model card (as LobeHub's model list quotes it): Ling-mini-2.0 has 16B
    # total, 1.4B active, 789M non-embedding. moebench: 16.26B (rounds to 16B), 1.43B active,
    # 0.79B active without the embeddings (+0.1%). Routing limited to 4 of 8 groups.
    arch = _load(tmp_path, LING_MINI_2)
    p = arch.params
    assert round(p.total / 1e9) == 16
    assert round(p.active / 1e8) == 14
    assert p.active - p.embedding - p.lm_head == pytest.approx(789e6, rel=0.01)
    assert arch.spec.moe.max_nodes_per_token == 4 and arch.spec.dense_layers.count == 1


@pytest.mark.parametrize("model_type", sorted(LATEST))
def test_each_estimates(tmp_path, cli, model_type):
    """Each imported model runs through estimate on 64 H800s with a plan that fits."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LATEST[model_type]))
    out = json.loads(cli("estimate", "--model", str(path), "--chip", "h800", "--num-chips", "64",
                         "--global-batch", "512", "-f", "json").output)
    assert out["step_time_s"] > 0 and out["fits_memory"]
