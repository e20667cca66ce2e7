"""Hugging Face config.json import of the MoE types released since the first families.

Each config below carries the released checkpoint's architecture keys (source named per config);
each type is checked against its published total and active parameter counts. moebench's totals
exclude MTP layers (counted apart); which weights a published active count includes differs by
vendor, so each test says which of moebench's counts it compares. Where the only published
figure is rounded more coarsely than 1% (13B, 1.3B, ...), the test says so, gives moebench's
error, and checks that moebench's count rounds to the published figure.
"""

import json

import pytest

from moebench.inputs.hf_config import MAPPERS
from moebench.inputs.model import load_model
from tests.test_hf_config import CONFIGS
from tests.test_hf_latest_types import LATEST

# zai-org/GLM-4.5 config.json, as NVIDIA Megatron-Bridge's GLM 4.5 page and THUDM slime's
# scripts/models/glm4.5-355B-A32B.sh reproduce it; keys as in transformers' Glm4MoeConfig.
GLM45 = {
    "model_type": "glm4_moe", "_name_or_path": "zai-org/GLM-4.5", "num_hidden_layers": 92,
    "hidden_size": 5120, "vocab_size": 151552, "num_attention_heads": 96,
    "num_key_value_heads": 8, "head_dim": 128, "attention_bias": True, "use_qk_norm": True,
    "partial_rotary_factor": 0.5, "intermediate_size": 12288, "moe_intermediate_size": 1536,
    "n_routed_experts": 160, "n_shared_experts": 1, "num_experts_per_tok": 8,
    "first_k_dense_replace": 3, "n_group": 1, "topk_group": 1, "num_nextn_predict_layers": 1,
    "tie_word_embeddings": False,
}
# zai-org/GLM-4.5-Air: 46 layers (first dense), hidden 4096, FFN 10944, 128 experts of 1408,
# no QK norm (Megatron-Bridge GLM 4.5 page).
GLM45_AIR = dict(GLM45, _name_or_path="zai-org/GLM-4.5-Air", num_hidden_layers=46,
                 hidden_size=4096, intermediate_size=10944, moe_intermediate_size=1408,
                 n_routed_experts=128, first_k_dense_replace=1, use_qk_norm=False)
# baidu/ERNIE-4.5-21B-A3B-PT: transformers' Ernie4_5_MoeConfig defaults are this model's; the
# model card: 28 layers, 20 / 4 heads, 64 text experts top-6, 2 shared experts.
ERNIE_21B = {
    "model_type": "ernie4_5_moe", "_name_or_path": "baidu/ERNIE-4.5-21B-A3B-PT",
    "num_hidden_layers": 28, "hidden_size": 2560, "vocab_size": 103424,
    "num_attention_heads": 20, "num_key_value_heads": 4, "intermediate_size": 12288,
    "moe_intermediate_size": 1536, "moe_k": 6, "moe_num_experts": 64,
    "moe_num_shared_experts": 2, "moe_layer_start_index": 1, "moe_layer_end_index": 27,
    "moe_layer_interval": 1, "use_bias": False, "tie_word_embeddings": True,
}
# baidu/ERNIE-4.5-300B-A47B config.json as Ascend MindIE-LLM's ernie_moe router test
# reproduces it: 54 layers (3 dense), hidden 8192, 64 / 8 heads, 64 experts of 3584 top-8.
ERNIE_300B = dict(ERNIE_21B, _name_or_path="baidu/ERNIE-4.5-300B-A47B-PT", num_hidden_layers=54,
                  hidden_size=8192, num_attention_heads=64, num_key_value_heads=8,
                  intermediate_size=28672, moe_intermediate_size=3584, moe_k=8,
                  moe_num_shared_experts=0, moe_layer_start_index=3, moe_layer_end_index=53)
# allenai/OLMoE-1B-7B-0924 config.json (OLMoE paper, arXiv 2409.02060, sec. 2).
OLMOE = {
    "model_type": "olmoe", "_name_or_path": "allenai/OLMoE-1B-7B-0924", "num_hidden_layers": 16,
    "hidden_size": 2048, "vocab_size": 50304, "num_attention_heads": 16,
    "num_key_value_heads": 16, "intermediate_size": 1024, "num_experts": 64,
    "num_experts_per_tok": 8, "tie_word_embeddings": False,
}
# microsoft/Phi-3.5-MoE-instruct config.json (transformers' PhimoeConfig defaults are this
# model's shapes; the release sets attention_bias and lm_head_bias).
PHIMOE = {
    "model_type": "phimoe", "_name_or_path": "microsoft/Phi-3.5-MoE-instruct",
    "num_hidden_layers": 32, "hidden_size": 4096, "vocab_size": 32064,
    "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 6400,
    "num_local_experts": 16, "num_experts_per_tok": 2, "attention_bias": True,
    "lm_head_bias": True, "tie_word_embeddings": False,
}
# databricks/dbrx-base config.json: 40 layers, d_model 6144, 48 heads / 8 KV, 16 experts of
# 10752 top-4, vocab 100352 (Databricks, "Introducing DBRX", 2024).
DBRX = {
    "model_type": "dbrx", "_name_or_path": "databricks/dbrx-base", "d_model": 6144,
    "n_heads": 48, "n_layers": 40, "vocab_size": 100352, "tie_word_embeddings": False,
    "attn_config": {"kv_n_heads": 8, "clip_qkv": 8, "rope_theta": 500000},
    "ffn_config": {"ffn_hidden_size": 10752, "moe_num_experts": 16, "moe_top_k": 4},
}
# tencent/Hunyuan-A13B-Instruct config.json (per-layer lists as released).
HUNYUAN = {
    "model_type": "hunyuan_v1_moe", "_name_or_path": "tencent/Hunyuan-A13B-Instruct",
    "num_hidden_layers": 32, "hidden_size": 4096, "vocab_size": 128167,
    "num_attention_heads": 32, "num_key_value_heads": 8, "attention_head_dim": 128,
    "intermediate_size": 3072, "moe_intermediate_size": [3072] * 32, "moe_topk": [8] * 32,
    "num_experts": 64, "num_shared_expert": [1] * 32, "use_qk_norm": True, "use_cla": False,
    "use_mixed_mlp_moe": True, "tie_word_embeddings": True,
}
# Qwen/Qwen3-Next-80B-A3B-Instruct config.json.
QWEN3_NEXT = {
    "model_type": "qwen3_next", "_name_or_path": "Qwen/Qwen3-Next-80B-A3B-Instruct",
    "num_hidden_layers": 48, "hidden_size": 2048, "vocab_size": 151936,
    "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256,
    "intermediate_size": 5120, "moe_intermediate_size": 512,
    "shared_expert_intermediate_size": 512, "num_experts": 512, "num_experts_per_tok": 10,
    "full_attention_interval": 4, "linear_num_key_heads": 16, "linear_num_value_heads": 32,
    "linear_key_head_dim": 128, "linear_value_head_dim": 128, "linear_conv_kernel_dim": 4,
    "decoder_sparse_step": 1, "mlp_only_layers": [], "partial_rotary_factor": 0.25,
    "tie_word_embeddings": False,
}
NEWER = {"glm4_moe": GLM45, "ernie4_5_moe": ERNIE_21B, "olmoe": OLMOE, "phimoe": PHIMOE,
         "dbrx": DBRX, "hunyuan_v1_moe": HUNYUAN, "qwen3_next": QWEN3_NEXT}


def _load(tmp_path, data, name="config.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return load_model(str(path))


def _params(tmp_path, data):
    return _load(tmp_path, data).params


def test_every_supported_type_has_a_config_under_test():
    # DSV3 and V3.2 have their own; llama4_text is tested below (LLAMA4_MAVERICK); the last added in
    # tests/test_hf_latest_types.py.
    assert set(MAPPERS) == set(CONFIGS) | set(NEWER) | set(LATEST) | {
        "deepseek_v3", "deepseek_v32", "llama4_text"}


def test_glm4_moe_glm_4_5(tmp_path):
    # GLM-4.5 report (arXiv 2508.06471) Table 1 and the zai-org/GLM-4.5 model card: 355B total,
    # 32B activated. moebench: 352.80B without the MTP layer (-0.6%); 32.08B active without
    # either embedding (+0.3%), the count the 32B matches (33.63B with both).
    p = _params(tmp_path, GLM45)
    assert p.total == pytest.approx(355e9, rel=0.01)
    assert p.active - p.embedding - p.lm_head == pytest.approx(32e9, rel=0.01)
    assert p.mtp == pytest.approx(3.99e9, rel=0.01)  # one MoE layer with attention, 2h x h


def test_glm4_moe_glm_4_5_air(tmp_path):
    # Same sources: GLM-4.5-Air 106B total, 12B activated. moebench: 106.85B (+0.8%); 12.18B
    # active without embeddings (+1.5%: 12B is rounded to whole billions).
    p = _params(tmp_path, GLM45_AIR)
    assert p.total == pytest.approx(106e9, rel=0.01)
    assert round((p.active - p.embedding - p.lm_head) / 1e9) == 12


def test_ernie4_5_moe_300b_a47b(tmp_path):
    # ERNIE-4.5-300B-A47B model card: 300B total, 47B activated. moebench: 298.64B (-0.5%),
    # 47.08B active with the (tied) embedding once (+0.2%).
    p = _params(tmp_path, ERNIE_300B)
    assert p.total == pytest.approx(300e9, rel=0.01)
    assert p.active == pytest.approx(47e9, rel=0.01)


def test_ernie4_5_moe_21b_a3b(tmp_path):
    # ERNIE-4.5-21B-A3B model card: "21B total / 3B activated", truncated: the Hugging Face
    # model page (safetensors) counts 21.8B. moebench: 21.83B (+0.1% against 21.8B); active
    # 3.09B without the embedding (+2.9% against the whole-billion 3B; 3.35B with it).
    p = _params(tmp_path, ERNIE_21B)
    assert p.total == pytest.approx(21.8e9, rel=0.01)
    assert round((p.active - p.embedding) / 1e9) == 3


def test_olmoe_1b_7b(tmp_path):
    # OLMoE paper (arXiv 2409.02060): 6.9B total, 1.3B active. moebench: 6.92B (+0.3%);
    # 1.28B active (-1.4%: 1.3B has two significant figures).
    p = _params(tmp_path, OLMOE)
    assert p.total == pytest.approx(6.9e9, rel=0.01)
    assert round(p.active / 1e8) == 13
    # QK norm over all heads: 2048 + 2048 weights per layer, not 2 x 128.
    assert p.attention == 16 * (4 * 2048 * 2048 + 2 * 2048)


def test_phimoe_phi_3_5_moe(tmp_path):
    # microsoft/Phi-3.5-MoE-instruct model card: 41.9B total, 6.6B active. moebench: 41.87B
    # (-0.1%), 6.64B (+0.6%).
    p = _params(tmp_path, PHIMOE)
    assert p.total == pytest.approx(41.9e9, rel=0.01)
    assert p.active == pytest.approx(6.6e9, rel=0.01)


def test_dbrx(tmp_path):
    # Databricks, "Introducing DBRX" (2024): 132B total, 36B active. moebench: 131.60B
    # (-0.3%); 35.85B active without the input embedding (-0.4%; 36.47B with it, +1.3%).
    p = _params(tmp_path, DBRX)
    assert p.total == pytest.approx(132e9, rel=0.01)
    assert p.active - p.embedding == pytest.approx(36e9, rel=0.01)


def test_hunyuan_v1_moe_a13b(tmp_path):
    # tencent/Hunyuan-A13B model card: 80B total, 13B active. moebench: 80.39B (+0.5%);
    # 12.75B active with the (tied) embedding (-1.9%: 13B is rounded to whole billions).
    p = _params(tmp_path, HUNYUAN)
    assert p.total == pytest.approx(80e9, rel=0.01)
    assert round(p.active / 1e9) == 13


def test_qwen3_next_80b_a3b(tmp_path):
    # Qwen/Qwen3-Next-80B-A3B-Instruct model card: 80B total, 79B non-embedding, "3B
    # activated" (the name's rounding); NVIDIA's NIM model card: 3.9B active. moebench: 79.67B
    # (-0.4%), 79.05B non-embedding (+0.1%), 3.87B active (-0.6%; 3.25B without embeddings).
    p = _params(tmp_path, QWEN3_NEXT)
    assert p.total == pytest.approx(80e9, rel=0.01)
    assert p.total - p.embedding - p.lm_head == pytest.approx(79e9, rel=0.01)
    assert p.active == pytest.approx(3.9e9, rel=0.01)
    # Gated DeltaNet in 36 of 48 layers: in_proj_qkvz 2048 x (2 x 2048 + 2 x 4096), in_proj_ba
    # 2048 x 64, out_proj 4096 x 2048, conv 8192 x 4, dt_bias and A_log 2 x 32, norm 128.
    gdn = 2048 * 12288 + 2048 * 64 + 4096 * 2048 + 8192 * 4 + 64 + 128
    assert gdn == 33_718_464
    assert p.linear_attention == 36 * gdn


def test_hunyuan_experts_default_to_intermediate_size(tmp_path):
    # transformers' HunYuanMoEV1 sizes every expert by intermediate_size.
    data = {k: v for k, v in HUNYUAN.items() if k != "moe_intermediate_size"}
    assert _params(tmp_path, data) == _params(tmp_path, HUNYUAN)


def test_configs_match_the_shipped_profiles(tmp_path):
    glm = load_model("glm-4.5").params
    assert _params(tmp_path, GLM45) == glm
    qwen = load_model("qwen3-next-80b-a3b")
    from_hf = _load(tmp_path, QWEN3_NEXT, "qwen.json")
    # The config does not declare the checkpoint's MTP layer; the profile does.
    assert from_hf.params.total == qwen.params.total
    assert from_hf.params.active == qwen.params.active
    assert from_hf.spec.linear_attention == qwen.spec.linear_attention
    assert from_hf.spec.attention == qwen.spec.attention


def test_layer_types_override_the_interval(tmp_path):
    types = ["linear_attention", "full_attention"] * 24
    spec = _load(tmp_path, dict(QWEN3_NEXT, layer_types=types)).spec
    assert spec.linear_attention is not None and spec.linear_attention.count == 24
    only_full = dict(QWEN3_NEXT, layer_types=["full_attention"] * 48)
    assert _load(tmp_path, only_full, "full.json").spec.linear_attention is None


@pytest.mark.parametrize(("config", "change", "key"), [
    (QWEN3_NEXT, {"linear_num_value_heads": None}, "linear_num_value_heads"),
    (QWEN3_NEXT, {"layer_types": ["linear_attention"] * 47}, "layer_types"),
    (QWEN3_NEXT, {"full_attention_interval": 0}, "full_attention_interval"),
    (DBRX, {"ffn_config": {"ffn_hidden_size": 10752, "moe_top_k": 4}},
     "ffn_config.moe_num_experts"),
    (DBRX, {"attn_config": None}, "attn_config"),
    (HUNYUAN, {"moe_topk": [8] * 31 + [4]}, "moe_topk"),
    (HUNYUAN, {"use_cla": True}, "use_cla"),
    (ERNIE_21B, {"use_bias": True}, "use_bias"),
    (ERNIE_21B, {"moe_layer_interval": 2}, "moe_layer_interval"),
    (GLM45, {"n_routed_experts": "160"}, "n_routed_experts"),
])
def test_bad_config_keys_are_named_on_one_line(tmp_path, cli, config, change, key):
    data = dict(config)
    for k, v in change.items():
        if v is None:
            data.pop(k)
        else:
            data[k] = v
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    result = cli("models", "show", str(path))
    assert result.exit_code == 2
    assert f"config.json: {key}: " in result.output
    assert "Traceback" not in result.output


def test_models_show_lists_the_linear_attention_layers(tmp_path, cli):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(QWEN3_NEXT))
    out = json.loads(cli("models", "show", str(path), "--format", "json").output)
    assert out["params_by_component"]["linear_attention"] == 36 * 33_718_464
    assert out["architecture"]["linear_attention"]["count"] == 36
    assert out["forward_flops_per_token"]["linear_attention"] > 0


# meta-llama/Llama-4-Maverick-17B-128E config.json: the text model sits in text_config
# (model_type llama4_text); keys as transformers' Llama4TextConfig. MoE on every second layer
# (interleave_moe_layer_step 2), the others dense with intermediate_size_mlp.
LLAMA4_MAVERICK = {
    "model_type": "llama4", "_name_or_path": "meta-llama/Llama-4-Maverick-17B-128E",
    "text_config": {
        "model_type": "llama4_text", "num_hidden_layers": 48, "hidden_size": 5120,
        "vocab_size": 202048, "num_attention_heads": 40, "num_key_value_heads": 8,
        "head_dim": 128, "intermediate_size": 8192, "intermediate_size_mlp": 16384,
        "num_local_experts": 128, "num_experts_per_tok": 1, "interleave_moe_layer_step": 2,
        "use_qk_norm": False, "attention_chunk_size": 8192, "tie_word_embeddings": False,
    },
}


def test_llama4_maverick_interleaves_dense_and_moe_layers(tmp_path):
    """Meta's model card: 400B total, 17B active. By hand: attention 48 x 62.9M = 3.02B; 24 MoE
    layers of 128 experts + 1 shared of 3 x 5120 x 8192 = 125.8M each, 389.5B with routers; 24
    dense FFNs of 3 x 5120 x 16384 = 251.7M, 6.04B; embedding and head 2.07B: 400.7B. Active:
    one routed and the shared expert per MoE layer, 6.04B + 6.04B + 3.02B + 2.07B = 17.2B."""
    arch = _load(tmp_path, LLAMA4_MAVERICK)
    spec = arch.spec
    assert spec.dense_layers.count == 24 and spec.dense_layers.placement == "interleaved"
    assert spec.dense_layers.ffn_width == 16384 and arch.num_moe_layers == 24
    assert arch.params.total == pytest.approx(400e9, rel=0.01)
    assert arch.params.active == pytest.approx(17e9, rel=0.02)


def test_llama4_style_model_estimates(tmp_path, cli):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA4_MAVERICK))
    result = cli("estimate", "--model", str(path), "--chip", "h100", "--num-chips", "512",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["fits_memory"] and out["tokens_per_s_per_chip"] > 0


def test_qwen_style_sparse_step_and_mlp_only_layers(tmp_path):
    """Qwen2-MoE's decoder_sparse_step 2 makes layers 1, 3, 5, ... sparse; mlp_only_layers
    [1] makes layer 1 dense too: of 24 layers, 11 MoE and 13 dense, interleaved. Without
    either every layer is MoE."""
    base = json.loads(json.dumps(CONFIGS["qwen2_moe"]))
    arch = _load(tmp_path, dict(base, decoder_sparse_step=2, mlp_only_layers=[1]))
    layers = arch.spec.num_layers
    assert arch.num_moe_layers == layers // 2 - 1
    assert arch.spec.dense_layers.placement == "interleaved"
    arch = _load(tmp_path, base, name="plain.json")
    assert arch.num_moe_layers == layers and arch.spec.dense_layers.count == 0
