"""A release's recipe defaults per platform: NVIDIA publishes a container's numbers from one
performance recipe per model, chip and precision, so a run given only its plan takes what the
recipe for its chip does (Megatron-Bridge v0.5.0 scripts/performance/configs, 26.06)."""

import json

import pytest

from moebench.inputs.stack import load_stack_spec


@pytest.mark.parametrize(("chip", "precision", "moe", "expected"), [
    # MXFP8 MoE recipes on GB200/GB300: HybridEP, full-iteration graphs, EP overlap, paged
    # stash (no host sync).
    ("gb200", "fp8", True, ("hybridep", "full", True, True)),
    ("gb300", "fp8", True, ("hybridep", "full", True, True)),
    # BF16 MoE recipes there: HybridEP and TE graphs of attention and router.
    ("gb200", "bf16", True, ("hybridep", "partial", False, False)),
    # H100 and B200 MoE recipes agree on HybridEP only.
    ("h100", "fp8", True, ("hybridep", "none", False, False)),
    # Chips no recipe covers, and dense models, keep the release's own defaults.
    ("a100", "bf16", True, ("alltoall", "none", False, False)),
    ("gb200", "fp8", False, ("alltoall", "none", False, False)),
])
def test_a_run_takes_its_platforms_recipe_defaults(chip, precision, moe, expected):
    release = load_stack_spec("megatron-core-nvidia@26.06").for_platform(
        chip, precision, "mixtral-8x7b" if moe else "llama-3-70b", moe).release
    got = tuple(release.defaults[k] for k in ("dispatcher", "graphs", "ep_overlap",
                                              "sync_free"))
    assert got == expected
    # The dense run of llama-3-70b takes only its BF16 gradients from the recipes.
    assert ("dispatcher" in release.platform_settings) == (expected[0] == "hybridep")
    if "dispatcher" in release.platform_settings:
        assert "v0.5.0" in release.sources["defaults.dispatcher"]
    assert release.defaults["main_grads"] == ("fp32" if chip == "a100" else "bf16")


@pytest.mark.parametrize("release", ["25.11", "26.02", "26.04"])
def test_earlier_releases_run_hybridep_and_te_graphs_on_gb200(release):
    """v0.2.0 to v0.4.1 (25.11 to 26.04): every DeepSeek-V3 and Qwen3 config on GB200/GB300
    runs HybridEP with TE graphs and no EP overlap, at every precision (an MoE model without
    its own entry takes that), and H100 keeps the release's alltoall."""
    spec = load_stack_spec(f"megatron-core-nvidia@{release}")
    for precision in ("bf16", "fp8"):
        r = spec.for_platform("gb300", precision, "mixtral-8x7b", True).release
        assert (r.defaults["dispatcher"], r.defaults["graphs"], r.defaults["ep_overlap"]) == (
            "hybridep", "partial", False)
    h100 = spec.for_platform("h100", "fp8", "mixtral-8x7b", True).release
    assert h100.defaults["dispatcher"] == "alltoall"


def test_a_later_release_that_states_platforms_replaces_them():
    """26.08's recipes (v0.6.0 perf_recipes) name Qwen3-235B-A22B on H100 and B200 and MoE
    models on GB200/GB300 only: another MoE model's H100 run takes the release's alltoall
    again (26.06 gave it HybridEP), while Qwen3-235B-A22B on H100 keeps its 1F1B overlap."""
    spec = load_stack_spec("megatron-core-nvidia@26.08")
    h100 = spec.for_platform("h100", "fp8", "mixtral-8x7b", True).release
    assert h100.defaults["dispatcher"] == "alltoall"
    gb300 = spec.for_platform("gb300", "fp8", "mixtral-8x7b", True).release
    assert gb300.defaults["graphs"] == "full"
    qwen = spec.for_platform("h100", "fp8", "qwen3-235b-a22b", True).release
    assert (qwen.defaults["dispatcher"], qwen.defaults["ep_overlap"]) == ("alltoall", True)


def test_a_platform_setting_the_release_lacks_is_refused(cli, tmp_path):
    from moebench.inputs.catalog import resolve

    text = resolve("stacks", "megatron-core-nvidia", "--stack").read_text(encoding="utf-8")
    path = tmp_path / "mcore.yaml"
    # 24.07 implements no graph capture: a platform there cannot default to full graphs.
    first = "    platforms:\n      - chips: [h100]\n        models: [llama-2-7b, llama-2-13b,"
    assert text.count(first) == 1
    path.write_text(text.replace(first, "    platforms:\n      - chips: [h100]\n        source:"
                                        " \"test\"\n        graphs: full\n" + first[15:]),
                    encoding="utf-8")
    result = cli("stacks", "show", str(path))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "'24.07'" in result.output and "graphs 'full'" in result.output


def test_the_assumptions_name_the_recipe(cli):
    """Qwen3-30B-A3B on 8 GB200s at FP8 with 26.06, given only its plan: the four recipe
    settings are listed as the recipe's, each with what its alternative would change."""
    out = json.loads(cli(
        "estimate", "--model", "qwen3-30b-a3b", "--chip", "gb200", "--num-chips", "8",
        "--stack", "megatron-core-nvidia@26.06", "--tp", "1", "--pp", "1", "--ep", "8",
        "--micro-batch", "4", "--recompute", "none", "--precision", "fp8",
        "--global-batch", "512", "--seq-len", "4096", "--format", "json").output)
    recipe = {a["setting"]: a for a in out["assumed"] if "recipe on gb200 fp8" in a["how"]}
    assert set(recipe) == {"dispatcher", "graphs", "ep_overlap", "sync_free"}
    assert recipe["graphs"]["value"] == "full" and recipe["graphs"]["change"] > 0
    # Given, a setting is the run's, not the recipe's.
    given = json.loads(cli(
        "estimate", "--model", "qwen3-30b-a3b", "--chip", "gb200", "--num-chips", "8",
        "--stack", "megatron-core-nvidia@26.06", "--tp", "1", "--pp", "1", "--ep", "8",
        "--micro-batch", "4", "--recompute", "none", "--precision", "fp8",
        "--global-batch", "512", "--seq-len", "4096", "--graphs", "none",
        "--format", "json").output)
    assert given["step_time_s"] > out["step_time_s"]
    assert "graphs" not in {a["setting"] for a in given["assumed"]}


def test_a_graph_scope_needs_no_graphs_flag_where_the_recipe_runs_partial_graphs(cli):
    """On GB200 at 25.11 the MoE recipes run TE graphs, so --graph-scope router alone is
    accepted (and captures less than the attention and router the recipes of models without
    their own entry capture: a slower step); on H100, whose default is no graphs, the same flag
    asks for --graphs partial."""
    args = ("estimate", "--model", "mixtral-8x7b", "--num-chips", "8", "--stack",
            "megatron-core-nvidia@25.11", "--tp", "1", "--pp", "1", "--ep", "8",
            "--micro-batch", "1", "--recompute", "none", "--precision", "fp8",
            "--global-batch", "512", "--seq-len", "4096")
    wide = json.loads(cli(*args, "--chip", "gb200", "--format", "json").output)
    narrow = json.loads(cli(*args, "--chip", "gb200", "--graph-scope", "router",
                            "--format", "json").output)
    assert narrow["step_time_s"] > wide["step_time_s"]
    refused = cli(*args, "--chip", "h100", "--graph-scope", "router")
    assert refused.exit_code == 2 and "give --graphs partial" in refused.output


@pytest.mark.parametrize(("release", "chip", "precision", "model", "expected"), [
    # 25.09 (Megatron-Bridge r0.1.0 perf_matrix): per-layer graphs for Qwen3 on GB200, none
    # for DeepSeek-V3 there; DeepSeek-V3 on H100 runs DeepEP with the 1F1B overlap.
    ("25.09", "gb200", "fp8", "qwen3-235b-a22b", ("alltoall", "full", False, None)),
    ("25.09", "gb200", "fp8", "deepseek-v3", ("alltoall", "none", False, None)),
    ("25.09", "b200", "fp8", "qwen3-30b-a3b", ("alltoall", "full", False, None)),
    ("25.09", "b200", "fp8", "qwen3-235b-a22b", ("alltoall", "none", False, None)),
    ("25.09", "h100", "fp8", "deepseek-v3", ("deepep", "none", True, None)),
    # 25.11 (v0.2.0): Qwen3-30B-A3B's MXFP8 recipe on GB200 captures the router only, ahead
    # of the MoE entry's attention and router.
    ("25.11", "gb200", "fp8", "qwen3-30b-a3b", ("hybridep", "partial", False, ("router",))),
    ("25.11", "gb200", "fp8", "qwen3-235b-a22b", ("hybridep", "partial", False, None)),
    ("25.11", "h100", "fp8", "qwen3-235b-a22b", ("alltoall", "none", True, None)),
    # 26.02 (v0.3.0) and 26.04 (v0.4.1) differ on Qwen3-30B-A3B on H100: DeepEP with the
    # overlap, then HybridEP without it.
    ("26.02", "h100", "fp8", "qwen3-30b-a3b", ("deepep", "none", True, None)),
    ("26.04", "h100", "fp8", "qwen3-30b-a3b", ("hybridep", "none", False, None)),
    # The 26.04.01 patch container (v0.4.2) moved DeepSeek-V3 on B200 at MXFP8 to DeepEP with
    # TE graphs of attention and router and the overlap; 26.04 (v0.4.1) ran HybridEP alone.
    ("26.04", "b200", "fp8", "deepseek-v3", ("hybridep", "none", False, None)),
    ("26.04.01", "b200", "fp8", "deepseek-v3", ("deepep", "partial", True,
                                                ("attention", "router"))),
    # 26.06 (v0.5.0): Qwen3-235B-A22B on H100 stays on alltoall with the overlap, while the
    # H100 MoE entry gives DeepSeek-V3 HybridEP.
    ("26.06", "h100", "fp8", "qwen3-235b-a22b", ("alltoall", "none", True, None)),
    ("26.06", "h100", "fp8", "deepseek-v3", ("hybridep", "none", False, None)),
])
def test_recipes_are_per_model(release, chip, precision, model, expected):
    """Megatron-Bridge's performance configs are per model, chip and precision: an entry that
    names the model comes first."""
    r = load_stack_spec(f"megatron-core-nvidia@{release}").for_platform(
        chip, precision, model, True).release
    got = tuple(r.defaults[k] for k in ("dispatcher", "graphs", "ep_overlap"))
    assert got == expected[:3]
    assert r.defaults.get("graph_scope") == expected[3]


def test_a_platform_naming_an_unknown_model_is_refused(cli, tmp_path):
    from moebench.inputs.catalog import resolve

    text = resolve("stacks", "megatron-core-nvidia", "--stack").read_text(encoding="utf-8")
    one = "models: [qwen3-235b-a22b, qwen3-30b-a3b]"
    assert one in text
    path = tmp_path / "mcore.yaml"
    path.write_text(text.replace(one, "models: [qwen3-235b-a22b, qwen-3-30b]", 1),
                    encoding="utf-8")
    result = cli("stacks", "show", str(path))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "'qwen-3-30b' is neither a model kind" in result.output


def test_a_model_recipe_is_named_in_the_assumptions(cli):
    """Qwen3-235B-A22B on 256 H100s at 26.04 given only its plan: the 1F1B overlap is the
    recipe's for that model (v0.4.1 QWEN3_235B_A22B_H100_FP8_CS_V2), and the step without
    it is slower."""
    out = json.loads(cli(
        "estimate", "--model", "qwen3-235b-a22b", "--chip", "h100", "--num-chips", "256",
        "--stack", "megatron-core-nvidia@26.04", "--tp", "2", "--pp", "8", "--vpp", "4",
        "--ep", "32", "--micro-batch", "1", "--recompute", "none", "--precision", "fp8",
        "--global-batch", "2048", "--seq-len", "4096", "--format", "json").output)
    overlap = {a["setting"]: a for a in out["assumed"]}["ep_overlap"]
    assert overlap["value"] is True
    assert "recipe for qwen3-235b-a22b on h100 fp8" in overlap["how"]
    assert overlap["change"] > 0


def test_a_platform_scope_without_partial_graphs_is_refused(cli, tmp_path):
    """A recipe's graph scope applies to partial graphs: an entry that sets a scope where the
    release (and the entry) run no graphs is refused at load, naming the release."""
    from moebench.inputs.catalog import resolve

    text = resolve("stacks", "megatron-core-nvidia", "--stack").read_text(encoding="utf-8")
    # 25.11's Qwen3-30B-A3B recipe on H100 at FP8 runs no graphs (QWEN3_30B_A3B_H100_FP8_CS).
    lines = text.split("\n")
    at = [i for i, line in enumerate(lines)
          if "QWEN3_30B_A3B_H100_FP8_CS: moe_a2a_overlap True, no CUDA graphs" in line]
    assert len(at) == 1
    lines.insert(at[0] + 1, "        graph_scope: [router]")
    path = tmp_path / "mcore.yaml"
    path.write_text("\n".join(lines), encoding="utf-8")
    result = cli("stacks", "show", str(path))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "sets a graph scope but runs graphs none" in result.output


@pytest.mark.parametrize(("release", "model", "expected"), [
    # NeMo-Framework-Launcher's H100 Llama scripts of the 24.07 table: BF16 gradient sync into
    # a contiguous BF16 grad buffer, the loss fused (fee1762f).
    ("24.07", "llama-3.1-8b", ("bf16", "fused")),
    ("24.07", "llama-2-70b", ("bf16", "fused")),
    # A model the launcher scripts here do not name keeps the release's own defaults.
    ("24.07", "mixtral-8x7b", ("fp32", "unfused")),
    # NeMo 2.0 (25.04) replaced the launcher's recipes: its own performance scripts turn FP32
    # gradient reduction off for FP8 runs (v2.3.0 scripts/performance/utils.py:351); a bare
    # Megatron-LM run of the same container keeps FP32 and the unfused loss.
    ("25.04", "llama-3.1-8b", ("bf16", "fused")),
    ("core_v0.12.0", "llama-3.1-8b", ("fp32", "unfused")),
])
def test_the_24_07_launcher_recipes(release, model, expected):
    r = load_stack_spec(f"megatron-core-nvidia@{release}").for_platform(
        "h100", "fp8", model, model.startswith("mixtral")).release
    assert (r.defaults["main_grads"], r.defaults["cross_entropy"]) == expected


def test_nemo_24_07_llama3_8b_fits_with_its_bf16_gradients(cli):
    """The NeMo 24.07 table's Llama 3 8B on 8 H100s (TP1 PP1 CP2, GBS 128, FP8) ran: with the
    launcher's BF16 grad buffer its gradients take 2 bytes x 8.03B parameters (model card) =
    14.96 GiB, not the 29.9 GiB of an FP32 buffer (bare Megatron-LM's), and the plan fits in
    80 GB."""
    args = ["estimate", "--model", "llama-3.1-8b", "--chip", "h100", "--num-chips", "8",
            "--precision", "fp8", "--tp", "1", "--pp", "1", "--cp", "2", "--vpp", "1",
            "--micro-batch", "1", "--seq-len", "8192", "--global-batch", "128", "--zero", "1",
            "-f", "json"]
    got = {}
    for release in ("24.07", "core_v0.12.0"):
        result = cli(*args, "--stack", f"megatron-core-nvidia@{release}", "--allow-oom")
        assert result.exit_code == 0, result.output
        got[release] = json.loads(result.output)
    assert got["24.07"]["memory_gib"]["gradients"] == pytest.approx(2 * 8.03e9 / 2**30, rel=5e-3)
    assert got["core_v0.12.0"]["memory_gib"]["gradients"] == pytest.approx(4 * 8.03e9 / 2**30,
                                                                          rel=5e-3)
    assert got["24.07"]["fits_memory"]


@pytest.mark.parametrize(("release", "chip", "precision", "model", "main_grads"), [
    # NeMo 2.0's performance scripts: 25.02 (v2.2.0 pretrain_*.py) and 25.04 (v2.3.0
    # utils.py:351) turn FP32 gradient reduction off under FP8 only, 25.07 (v2.4.0
    # helpers.py:224) at every precision.
    ("25.02", "b200", "fp8", "mixtral-8x7b", "bf16"),
    ("25.02", "b200", "bf16", "mixtral-8x7b", "fp32"),
    ("25.04", "gb200", "fp8", "deepseek-v3", "bf16"),
    ("25.04", "gb200", "bf16", "deepseek-v3", "fp32"),
    ("25.07", "gb200", "bf16", "qwen3-235b-a22b", "bf16"),
    # A model the scripts do not name keeps the recipes' FP32.
    ("25.07", "gb200", "bf16", "moonlight-16b-a3b", "fp32"),
])
def test_nemo_2_performance_scripts_reduce_gradients_in_bf16(release, chip, precision, model,
                                                             main_grads):
    r = load_stack_spec(f"megatron-core-nvidia@{release}").for_platform(
        chip, precision, model, True).release
    assert r.defaults["main_grads"] == main_grads


def test_nemo_2_releases_as_their_megatron_core_commits_implement_them():
    """25.02 pins Megatron-Core 0.11.0rc1 (791b70e0): whole-layer CUDA graphs, no attention
    scope, no DeepEP; 25.07 pins 0.13.0rc1 (03f77931): both scopes, the probabilities in the
    expert activation (!2668), still no 1F1B all-to-all overlap (core_v0.14.0). NeMo 2.0's FP8
    plugins gather FP8 parameters; a bare Megatron-LM run of the same container does not."""
    releases = load_stack_spec("megatron-core-nvidia").releases_resolved
    r2502, r2507 = releases["25.02"], releases["25.07"]
    assert tuple(r2502.caps.graphs) == ("none", "full")
    assert "deepep" not in r2502.caps.dispatchers and not r2502.defaults["probs_in_activation"]
    assert tuple(r2507.caps.graphs) == ("none", "partial", "full")
    assert r2507.defaults["probs_in_activation"] and not r2507.caps.ep_overlap
    assert not r2502.defaults["fp8_weight_cache"] and not releases["25.04"].defaults[
        "fp8_weight_cache"]
    assert releases["core_v0.12.0"].defaults["fp8_weight_cache"]
