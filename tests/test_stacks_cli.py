"""``moebench stacks list`` and ``moebench stacks show``: what each software stack assumes."""

import io
import json

import pandas as pd

from moebench.inputs.stack import load_stack_spec


def test_stacks_list_names_every_release_with_its_chips_and_error(cli):
    result = cli("stacks", "list", "--format", "csv")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.output)).set_index("name")
    families = {"generic", "hai-llm", "hardware-limit", "megatron-core-nvidia",
                "megatron-deepspeed", "meta-llama3", "mindspeed-llm", "nemo-automodel",
                "primus-amd", "torchtitan"}
    assert set(df["family"]) == families
    # One row per release, named family@release, dated.
    for family in families:
        spec = load_stack_spec(family)
        for release in spec.releases_resolved.values():
            row = df.loc[release.label]
            assert row["date"] == release.date.isoformat()
            assert row["dispatcher"] == release.defaults["dispatcher"]
    nvidia = load_stack_spec("megatron-core-nvidia")
    assert "h800" in df.loc[nvidia.label, "default_for"].split(", ")
    assert df.loc[nvidia.label, "runs"] == nvidia.validation.runs
    assert df.loc[nvidia.label, "loo_error"] == nvidia.validation.loo_mean_abs_error
    assert "gemm_fraction" in df.loc[nvidia.label, "fitted"]
    ascend = load_stack_spec("mindspeed-llm@1.0.rc3")
    assert df.loc[ascend.label, "cross_entropy"] == "unfused"
    assert pd.isna(df.loc[load_stack_spec("hardware-limit").label, "fitted"])
    # Where a release's recipes set other defaults: 26.06 names three models on H100 and B200,
    # covers MoE models on all four chips, and keeps BF16 gradients for every model its
    # performance configs name, on H200 too.
    assert df.loc["megatron-core-nvidia@26.06", "recipes_on"] == (
        "h100+b200+gb200+gb300+h200: qwen3-235b-a22b, deepseek-v3, deepseek-v3-no-mtp, "
        "qwen3-30b-a3b, moe, llama-3.1-8b, llama-3-70b, llama-3-405b, gpt-oss-120b, kimi-k2")
    # 24.07's launcher configs name six Llama models, Grok-1, GPT-3 and Nemotron-4 340B on H100
    # (the last four from dgxc-benchmarking's copies of them); 25.04's NeMo 2.0 performance
    # scripts the models they name on three chips; a bare Megatron-LM release none.
    assert df.loc["megatron-core-nvidia@24.07", "recipes_on"] == (
        "h100: llama-2-7b, llama-2-13b, llama-2-70b, llama-3.1-8b, llama-3-70b, llama-3-405b, "
        "grok-1, gpt3-175b, nemotron-4-340b")
    assert df.loc["megatron-core-nvidia@25.04", "recipes_on"].startswith(
        "h100+b200+gb200: llama-3.1-8b, llama-3-70b, llama-3-405b, mixtral-8x7b")
    assert pd.isna(df.loc["megatron-core-nvidia@core_v0.12.0", "recipes_on"])


def test_stacks_show_gives_every_figure_and_the_release_with_its_source(cli):
    result = cli("stacks", "show", "megatron-core-nvidia", "--format", "csv")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.output)).set_index("field")
    spec = load_stack_spec("megatron-core-nvidia")
    gemm = df.loc["kernels.gemm_fraction"]
    assert gemm["kind"] == "calibrated" and float(gemm["value"]) == spec.kernels.gemm_fraction.value
    assert float(gemm["low"]) == spec.kernels.gemm_fraction.low
    rel = spec.release
    assert df.loc["release", "value"].startswith(rel.name)
    ce = df.loc["defaults.cross_entropy"]
    assert ce["value"] == rel.defaults["cross_entropy"]
    assert ce["source"] == rel.sources["defaults.cross_entropy"]
    assert df.loc["moe.dispatchers.deepep.comm_sm_share", "kind"] == "measured"
    assert df.loc["implements.dispatchers", "value"] == ", ".join(rel.caps.dispatchers)
    assert df.loc["defaults.graphs", "value"] == rel.defaults["graphs"]
    payload = json.loads(cli("stacks", "show", "megatron-core-nvidia", "--format",
                             "json").output)
    assert payload == {**spec.model_dump(mode="json"), "release": rel.name}


def test_a_release_is_picked_with_at_and_an_unknown_one_is_named(cli):
    spec = load_stack_spec("megatron-core-nvidia")
    first = next(iter(spec.releases_resolved.values()))
    out = cli("stacks", "show", f"megatron-core-nvidia@{first.name}", "--format", "json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["release"] == first.name
    bad = cli("stacks", "show", "megatron-core-nvidia@no-such")
    lines = [ln for ln in bad.output.splitlines() if ln.strip()]
    assert bad.exit_code == 2 and len(lines) == 1
    assert "no-such" in lines[0] and first.name in lines[0]


def test_unknown_stack_gets_one_line_naming_the_known_ones(cli):
    result = cli("stacks", "show", "no-such-stack")
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no-such-stack" in lines[0] and "primus-amd" in lines[0]


def test_a_stack_file_missing_a_release_default_says_what_to_add(cli, tmp_path):
    """A stack whose first release leaves out a default: one line naming the file, the item
    and that the first release states every item, exit 2."""
    from moebench.inputs.catalog import resolve

    text = resolve("stacks", "megatron-core-nvidia", "--stack").read_text(encoding="utf-8")
    lines = text.splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("      cross_entropy:")
                 and "defaults" in "".join(lines[max(0, i - 12):i]))
    path = tmp_path / "old-stack.yaml"
    path.write_text("\n".join(lines[:first] + lines[first + 1:]) + "\n", encoding="utf-8")
    result = cli("stacks", "show", str(path))
    assert result.exit_code == 2
    out = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(out) == 1 and "Traceback" not in result.output
    for needle in ("old-stack.yaml", "releases", "defaults.cross_entropy", "first release"):
        assert needle in out[0], out[0]


def test_a_release_that_adds_a_choice_must_say_its_default(cli, tmp_path):
    """Primus v0.5.0 adds the 1F1B all-to-all overlap (patch_moe_overlap) that v0.4.0 lacked,
    so v0.4.0's forced default ('not implemented') no longer explains what v0.5.0 runs do:
    without its own defaults.ep_overlap (patch_moe_overlap false) the file is refused."""
    from moebench.inputs.catalog import resolve

    text = resolve("stacks", "primus-amd", "--stack").read_text(encoding="utf-8")
    claim = next(ln for ln in text.splitlines()
                 if ln.startswith("      ep_overlap: {value: false") and "module.yaml" in ln)
    path = tmp_path / "primus.yaml"
    path.write_text(text.replace("    defaults:\n" + claim + "\n", ""), encoding="utf-8")
    result = cli("stacks", "show", str(path))
    assert result.exit_code == 2 and "Traceback" not in result.output
    out = [ln for ln in result.output.splitlines() if ln.strip()]
    for needle in ("primus.yaml", "'0.5.0' implements more ep_overlap options",
                   "defaults.ep_overlap"):
        assert needle in out[0], out[0]


def test_an_unknown_release_suggests_the_newest_not_newer(cli):
    """A run on a container newer than moebench knows (NeMo 26.10) is told which release to
    name, as one line; a name that is not a version number is told the list only."""
    result = cli("estimate", "--model", "ling-lite", "--chip", "h800", "--num-chips", "64",
                 "--stack", "megatron-core-nvidia@26.10")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "the newest not newer than 26.10 is 26.08: megatron-core-nvidia@26.08" in \
        result.output
    from moebench.inputs.stack_spec import nearest_release

    assert nearest_release("2.2.5", ["1.0.rc3", "2.1.0", "2.2.0", "26.1.0"]) == "2.2.0"
    assert nearest_release("0.9", ["1.0.0", "2.1.0"]) is None
    assert nearest_release("next", ["26.08"]) is None
