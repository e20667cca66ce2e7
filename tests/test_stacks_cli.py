"""``moebench stacks list`` and ``moebench stacks show``: what each software stack assumes."""

import io
import json

import pandas as pd

from moebench.inputs.stack import load_stack_spec


def test_stacks_list_names_every_stack_with_its_chips_and_error(cli):
    result = cli("stacks", "list", "--format", "csv")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.output)).set_index("name")
    assert set(df.index) == {"generic", "hardware-limit", "megatron-core-nvidia",
                             "mindspeed-ascend", "modellink-ascend", "primus-amd"}
    assert "h800" in df.loc["megatron-core-nvidia", "default_for"].split(", ")
    assert df.loc["modellink-ascend", "default_for"] == "ascend-910b"
    nvidia = load_stack_spec("megatron-core-nvidia")
    assert df.loc["megatron-core-nvidia", "runs"] == nvidia.validation.runs
    assert df.loc["megatron-core-nvidia", "loo_error"] == nvidia.validation.loo_mean_abs_error
    assert "gemm_fraction" in df.loc["megatron-core-nvidia", "fitted"]
    assert df.loc["modellink-ascend", "cross_entropy"] == "unfused"
    assert pd.isna(df.loc["hardware-limit", "fitted"])


def test_stacks_show_gives_every_figure_and_choice_with_its_source(cli):
    result = cli("stacks", "show", "megatron-core-nvidia", "--format", "csv")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.output)).set_index("field")
    spec = load_stack_spec("megatron-core-nvidia")
    gemm = df.loc["kernels.gemm_fraction"]
    assert gemm["kind"] == "calibrated" and float(gemm["value"]) == spec.kernels.gemm_fraction.value
    assert float(gemm["low"]) == spec.kernels.gemm_fraction.low
    ce = df.loc["kernels.cross_entropy"]
    assert ce["value"] == "fused" and ce["kind"] == "documented"
    assert "Megatron-Bridge" in ce["source"]
    assert df.loc["moe.dispatchers.deepep.comm_sm_share", "kind"] == "measured"
    assert df.loc["overlap.activation_offload", "value"] == "core_attn, attn_proj, expert_fc1"
    assert df.loc["host.graphs", "value"] == "partial"
    payload = json.loads(cli("stacks", "show", "megatron-core-nvidia", "--format",
                             "json").output)
    assert payload == spec.model_dump(mode="json")


def test_unknown_stack_gets_one_line_naming_the_known_ones(cli):
    result = cli("stacks", "show", "no-such-stack")
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no-such-stack" in lines[0] and "primus-amd" in lines[0]


def test_a_stack_file_missing_a_field_says_what_to_add(cli, tmp_path):
    """A stack written before the loss implementation existed: one line naming the file, the
    field and what to add, exit 2."""
    from moebench.inputs.catalog import resolve

    text = resolve("stacks", "megatron-core-nvidia", "--stack").read_text(encoding="utf-8")
    old = "\n".join(ln for ln in text.splitlines() if not ln.startswith("  cross_entropy:"))
    path = tmp_path / "old-stack.yaml"
    path.write_text(old + "\n", encoding="utf-8")
    result = cli("stacks", "show", str(path))
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output
    for needle in ("old-stack.yaml", "kernels.cross_entropy", "required field is missing",
                   "add it", "unfused, fused or te"):
        assert needle in lines[0], lines[0]
