"""Hugging Face config.json import for the supported model types."""

import json

import pytest

from moebench.inputs.model import load_model

DSV3 = {
    "model_type": "deepseek_v3", "_name_or_path": "deepseek-ai/DeepSeek-V3",
    "num_hidden_layers": 61, "hidden_size": 7168, "vocab_size": 129280,
    "num_attention_heads": 128, "q_lora_rank": 1536, "kv_lora_rank": 512,
    "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
    "intermediate_size": 18432, "moe_intermediate_size": 2048, "n_routed_experts": 256,
    "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 3,
    "n_group": 8, "topk_group": 4, "num_nextn_predict_layers": 1, "tie_word_embeddings": False,
}
CONFIGS = {
    "deepseek_v2": dict(DSV3, model_type="deepseek_v2"),
    "kimi_k2": dict(DSV3, model_type="kimi_k2", n_routed_experts=384),
    "qwen2_moe": {"model_type": "qwen2_moe", "num_hidden_layers": 24, "hidden_size": 2048,
                  "vocab_size": 151936, "num_attention_heads": 16, "num_key_value_heads": 16,
                  "intermediate_size": 5632, "moe_intermediate_size": 1408,
                  "shared_expert_intermediate_size": 5632, "num_experts": 60,
                  "num_experts_per_tok": 4},
    "qwen3_moe": {"model_type": "qwen3_moe", "num_hidden_layers": 94, "hidden_size": 4096,
                  "vocab_size": 151936, "num_attention_heads": 64, "num_key_value_heads": 4,
                  "head_dim": 128, "moe_intermediate_size": 1536, "num_experts": 128,
                  "num_experts_per_tok": 8, "intermediate_size": 12288},
    "mixtral": {"model_type": "mixtral", "num_hidden_layers": 32, "hidden_size": 4096,
                "vocab_size": 32000, "num_attention_heads": 32, "num_key_value_heads": 8,
                "intermediate_size": 14336, "num_local_experts": 8, "num_experts_per_tok": 2},
    "bailing_moe": {"model_type": "bailing_moe", "num_hidden_layers": 28, "hidden_size": 2048,
                    "vocab_size": 126464, "num_attention_heads": 16, "num_key_value_heads": 4,
                    "intermediate_size": 5632, "moe_intermediate_size": 1408,
                    "num_experts": 64, "num_shared_experts": 2, "num_experts_per_tok": 6,
                    "first_k_dense_replace": 0},
    "llama": {"model_type": "llama", "num_hidden_layers": 80, "hidden_size": 8192,
              "vocab_size": 128256, "num_attention_heads": 64, "num_key_value_heads": 8,
              "intermediate_size": 28672},
    "gpt_oss": {"model_type": "gpt_oss", "num_hidden_layers": 36, "hidden_size": 2880,
                "vocab_size": 201088, "num_attention_heads": 64, "num_key_value_heads": 8,
                "head_dim": 64, "intermediate_size": 2880, "num_local_experts": 128,
                "num_experts_per_tok": 4, "sliding_window": 128},
}


def _write(tmp_path, data, name="config.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_deepseek_v3_config_counts_like_the_profile(tmp_path):
    from_hf = load_model(_write(tmp_path, DSV3)).params
    assert from_hf.total == load_model("deepseek-v3").params.total
    assert from_hf.active == load_model("deepseek-v3").params.active
    assert from_hf.mtp == load_model("deepseek-v3").params.mtp


def test_deepseek_v3_2_imports_as_v3(tmp_path):
    # deepseek-ai/DeepSeek-V3.2-Exp config.json (as transformers' deepseek_v32 folder keeps it):
    # V3's shapes plus the indexer keys, which are not modelled (dense attention, indexer
    # weights left out): the same counts as the V3 profile.
    v32 = dict(DSV3, model_type="deepseek_v32", index_head_dim=128, index_n_heads=64,
               index_topk=2048)
    from_hf = load_model(_write(tmp_path, v32)).params
    assert (from_hf.total, from_hf.mtp) == (load_model("deepseek-v3").params.total,
                                            load_model("deepseek-v3").params.mtp)


@pytest.mark.parametrize("model_type", sorted(CONFIGS))
def test_every_supported_type_loads(tmp_path, model_type):
    arch = load_model(_write(tmp_path, CONFIGS[model_type]))
    assert arch.params.total > arch.params.active > 0 or model_type == "llama"


def test_hf_counts_match_the_yaml_profiles(tmp_path):
    assert load_model(_write(tmp_path, CONFIGS["mixtral"])).params.total == \
        load_model("mixtral-8x7b").params.total
    assert load_model(_write(tmp_path, CONFIGS["llama"])).params.total == \
        load_model("llama-3-70b").params.total
    assert load_model(_write(tmp_path, CONFIGS["bailing_moe"])).params.total == \
        load_model("ling-lite").params.total


def test_gpt_oss_120b_count(tmp_path):
    # OpenAI gpt-oss model card: 117B total, 5.1B active parameters.
    p = load_model(_write(tmp_path, CONFIGS["gpt_oss"])).params
    assert p.total == pytest.approx(117e9, rel=0.02)


def test_gpt_oss_sliding_window_layers(tmp_path):
    # Without layer_types, transformers' GptOssConfig alternates from a sliding layer: 18 of 36.
    att = load_model(_write(tmp_path, CONFIGS["gpt_oss"])).spec.attention
    assert (att.sliding_window, att.sliding_window_layers) == (128, 18)
    # layer_types, when given, says which: here the first 30 of 36.
    kinds = ["sliding_attention"] * 30 + ["full_attention"] * 6
    data = {**CONFIGS["gpt_oss"], "layer_types": kinds}
    assert load_model(_write(tmp_path, data)).spec.attention.sliding_window_layers == 30
    # Every layer full: no window at all.
    data = {**CONFIGS["gpt_oss"], "layer_types": ["full_attention"] * 36}
    assert load_model(_write(tmp_path, data)).spec.attention.sliding_window is None


def test_gpt_oss_bad_layer_types_and_missing_window_are_named(tmp_path, cli):
    data = {**CONFIGS["gpt_oss"], "layer_types": ["sliding_attention", "chunked"] * 18}
    result = cli("models", "show", _write(tmp_path, data))
    assert result.exit_code == 2
    assert "layer_types" in result.output and "chunked" in result.output
    data = {k: v for k, v in CONFIGS["gpt_oss"].items() if k != "sliding_window"}
    result = cli("models", "show", _write(tmp_path, data))
    assert result.exit_code == 2 and "sliding_window" in result.output


def test_unsupported_type_names_the_supported_ones(tmp_path, cli):
    path = _write(tmp_path, {"model_type": "bert", "hidden_size": 768})
    result = cli("models", "show", path)
    assert result.exit_code == 2
    assert "unsupported model type 'bert'" in result.output
    assert "deepseek_v3" in result.output and "mixtral" in result.output


def test_missing_config_key_is_named(tmp_path, cli):
    data = dict(CONFIGS["mixtral"])
    del data["num_local_experts"]
    result = cli("models", "show", _write(tmp_path, data))
    assert result.exit_code == 2
    assert "num_local_experts" in result.output
