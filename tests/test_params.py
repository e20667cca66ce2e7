"""Parameter and FLOP counts: hand-computed cases and published figures."""

from pathlib import Path

import pytest

from moebench.engine.attention_core import attention_core_flops
from moebench.engine.model_flops import model_flops_per_token
from moebench.inputs.model import load_model

# (model, published total, published active, which embeddings the published active count
# includes: "both", "head" (not the input embedding) or "neither") -- sources in each profile's
# `published` block.
PUBLISHED = [
    ("deepseek-v3", 671e9, 36.6e9, "head"),  # README_WEIGHTS.md: 36.6B without input embedding
    ("deepseek-v2", 236e9, 21e9, "head"),
    ("ling-plus", 290e9, 28.8e9, "both"),
    ("ling-lite", 16.8e9, 2.75e9, "both"),
    ("mixtral-8x7b", 46.7e9, 12.9e9, "both"),
    ("qwen3-235b-a22b", 235e9, 22e9, "both"),
    ("mixtral-8x22b", 141e9, 39e9, "both"),
    ("llama-3-70b", 70.6e9, 70.6e9, "both"),
    ("llama-3.1-8b", 8.03e9, 8.03e9, "both"),
    ("llama-2-7b", 6.74e9, 6.74e9, "both"),
    ("llama-2-70b", 69.0e9, 69.0e9, "both"),
    ("qwen3-8b", 8.2e9, 8.2e9, "both"),
    ("glm-4.5", 355e9, 32e9, "neither"),  # total without MTP; see the profile's source
    ("qwen3-next-80b-a3b", 80e9, 3.9e9, "both"),
    ("gpt-oss-120b", 116.83e9, 5.13e9, "head"),  # model card Table 1: unembedding counted
    ("gpt-oss-20b", 20.91e9, 3.61e9, "head"),
    ("gpt3-175b", 175.0e9, 175.0e9, "both"),  # Brown et al. Table 2.1; tied embeddings
    ("nemotron-4-340b", 341.0e9, 341.0e9, "both"),  # arXiv 2406.11704: 9.4B + 331.6B
    ("nemotron-4-15b", 15.7e9, 15.7e9, "both"),  # arXiv 2402.16819: 3.2B + 12.5B
]


def test_grok_1_total_matches_published():
    # xai-org/grok-1: 314B; moebench 316.49B (+0.8%, untied as NVIDIA's NeMo runs train it).
    # xAI's only active figure, "25% of the weights", is a rounded share: not compared.
    p = load_model("grok-1").params
    assert p.total == pytest.approx(314e9, rel=0.01)
    # Per layer: 8 experts of 3 x 6144 x 32768, the router, GQA 48/8 heads of 128, two
    # norms; then the final norm.
    assert p.total - p.embedding - p.lm_head == 64 * (
        8 * 3 * 6144 * 32768 + 6144 * 8 + 2 * 6144 * 6144 + 2 * 6144 * 1024 + 2 * 6144) + 6144


@pytest.mark.parametrize(("name", "total", "active", "embeddings"), PUBLISHED)
def test_counts_match_published_within_one_percent(name, total, active, embeddings):
    p = load_model(name).params
    left_out = {"both": 0, "head": p.embedding, "neither": p.embedding + p.lm_head}[embeddings]
    ours_active = p.active - left_out
    assert p.total == pytest.approx(total, rel=0.01)
    assert ours_active == pytest.approx(active, rel=0.01)


def test_sliding_window_keys_by_hand():
    from moebench.engine.attention_core import causal_keys

    # Query i of 8 sees min(i, 4) keys: 1+2+3+4+4+4+4+4 = 26 exactly; the continuous count
    # w - w^2 / (2 s) gives 4 - 16/16 = 3 (as s/2 = 4 stands for the exact 4.5).
    assert causal_keys(8, 4) == 3.0
    assert causal_keys(4096, 128) == 128 - 128 * 128 / 8192  # 126
    assert causal_keys(4096) == causal_keys(4096, 4096) == causal_keys(4096, 10_000) == 2048


def test_gpt_oss_attention_flops_by_hand():
    # 18 full layers at s/2 = 2,048 keys, 18 sliding layers at 126, per token and layer
    # forward 2 x 64 heads x (64 + 64) x keys, averaged over the 36 layers.
    arch = load_model("gpt-oss-120b")
    per_key = 2 * 64 * (64 + 64)
    assert attention_core_flops(arch, 4096) == per_key * (2048 + 126) / 2
    # Model FLOPs: 3 x 36 layers of it, the sliding half 16x cheaper than causal attention.
    assert model_flops_per_token(arch, 4096).attention_core == 3 * 36 * per_key * 1087


def test_deepseek_v3_headline_and_mtp():
    p = load_model("deepseek-v3").params
    # The abstract's "37B activated" is 36.6B rounded: within 1.1% counting the LM head only.
    assert p.active - p.embedding == pytest.approx(37e9, rel=0.011)
    # README_WEIGHTS.md: the MTP module adds 11.5B unique parameters (14B with embedding+head).
    assert p.mtp == pytest.approx(11.5e9, rel=0.015)


def test_tiny_model_counts_by_hand(tiny):
    p = tiny.params
    assert p.attention == 4 * (64 * (64 + 2 * 16) + 64 * 64)  # 4 x 10,240
    assert p.norms == 4 * 2 * 64 + 64
    assert p.dense_ffn == 3 * 64 * 256
    assert p.router == 3 * 64 * 8
    assert p.routed_experts == 3 * 8 * 3 * 64 * 32
    assert p.routed_experts_active == 3 * 2 * 3 * 64 * 32
    assert p.shared_experts == 3 * 3 * 64 * 32
    assert p.total == 386_112
    assert p.active == 275_520


def test_tiny_model_flops_by_hand(tiny):
    # forward: 2 x (attention 40,960 + dense 49,152 + MoE 3 x 18,944 + head 64,000)
    #          + causal attention 4 x 2 x 8 x (8 + 8) x 128 / 2
    assert attention_core_flops(tiny, 128) == 16_384
    assert model_flops_per_token(tiny, 128).total == 3 * (2 * 210_944 + 4 * 16_384)


def test_deepseek_v3_flops_per_token_match_megatron_counting():
    arch = load_model("deepseek-v3")
    # ../reference: ~2.49e11 FLOP/token without MTP, ~2.60e11 with, at seq 4096.
    assert model_flops_per_token(arch, 4096, include_mtp=False).total == pytest.approx(
        2.49e11, rel=0.01)
    assert model_flops_per_token(arch, 4096).total == pytest.approx(2.60e11, rel=0.01)


def test_dense_model_is_six_n_plus_attention():
    arch = load_model("llama-3-70b")
    p = arch.params
    non_embedding = p.total - p.embedding
    attn = 3 * 80 * 2 * 64 * 256 * 4096 / 2
    assert model_flops_per_token(arch, 4096).total == pytest.approx(
        6 * non_embedding + attn, rel=1e-3)


def test_models_show_json(cli):
    import json

    out = json.loads(cli("models", "show", "deepseek-v3", "--format", "json").output)
    assert out["total_params"] == load_model("deepseek-v3").params.total
    assert out["active_params"] > out["active_params_without_input_embedding"]
    assert "exclude MTP" in out["counting"]
    listing = json.loads(cli("models", "list", "--format", "json").output)["models"]
    names = {m["name"] for m in listing}
    assert {"deepseek-v3", "deepseek-v2", "deepseek-v2-lite", "ling-plus", "ling-lite",
            "mixtral-8x7b", "mixtral-8x22b", "qwen3-235b-a22b", "qwen3-30b-a3b",
            "llama-3-70b", "deepseek-llm-67b", "glm-4.5", "qwen3-next-80b-a3b"} <= names


@pytest.mark.parametrize(("change", "named"), [
    ({"sliding_window_layers": 0}, "sliding_window and sliding_window_layers go together"),
    ({"sliding_window_layers": 37}, "sliding_window_layers 37 exceeds the 36 attention layers"),
])
def test_sliding_window_fields_checked_at_load(tmp_path, cli, change, named):
    import yaml

    data = yaml.safe_load(Path("profiles/models/gpt-oss-120b.yaml").read_text())
    data["attention"].update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    result = cli("models", "show", str(path))
    assert result.exit_code == 2
    assert named in result.output and "Traceback" not in result.output


def test_squared_relu_counts_as_a_two_matrix_ffn(tmp_path):
    # Nemotron-4's relu(x)^2 FFN: up and down projections only, as GELU's (not SwiGLU's three).
    from moebench.inputs.catalog import resolve

    text = resolve("models", "gpt3-175b", "--model").read_text(encoding="utf-8")
    path = tmp_path / "relu2.yaml"
    path.write_text(text.replace("name: gpt3-175b", "name: relu2").replace(
        "ffn_activation: gelu", "ffn_activation: squared_relu"), encoding="utf-8")
    relu2, gelu = load_model(str(path)), load_model("gpt3-175b")
    assert not relu2.gated and relu2.params.total == gelu.params.total
    assert relu2.params.dense_ffn == 96 * 2 * 12288 * 49152
