"""Settings a run gives by name (--settings NAME=VALUE,...): every stack setting, including
sequence parallelism, can be stated as the run used it instead of taking the release's
default."""

import json

import pytest

import moebench
from moebench.errors import InputError
from moebench.inputs.settings import parse_settings

# Llama 3.1 8B on 8 H100s, TP2, nothing left to the search but the settings under test.
PLAN = ("--model", "llama-3.1-8b", "--chip", "h100", "--num-chips", "8", "--tp", "2",
        "--pp", "1", "--vpp", "1", "--cp", "1", "--micro-batch", "1", "--recompute", "none",
        "--zero", "1", "--global-batch", "64", "--seq-len", "4096", "--offload-modules", "none",
        "--optimizer-offload", "0", "--format", "json")


def _estimate(cli, *extra: str) -> dict:
    result = cli("estimate", *PLAN, *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_settings_parse_names_and_on_off_values():
    assert parse_settings("tp_overlap=off, cross-entropy=te,sequence_parallel=ON") == {
        "tp_overlap": False, "cross_entropy": "te", "sequence_parallel": True}
    assert parse_settings(None) == {} and parse_settings(" , ") == {}


@pytest.mark.parametrize("text, needle", [
    ("foo=on", "unknown setting 'foo'"),
    ("tp_overlap=maybe", "tp_overlap=maybe: expected on or off"),
    ("tp_overlap", "give NAME=VALUE"),
    ("graphs=some", "expected one of none, partial, full"),
    ("tp_overlap=on,tp_overlap=off", "tp_overlap is given twice"),
    ("schedule=1f1b", "unknown setting 'schedule'"),  # a plan field: --schedule
])
def test_bad_settings_are_one_line_errors(cli, text, needle):
    result = cli("estimate", *PLAN, "--settings", text)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--settings" in lines[0] and needle in lines[0], result.output


def test_a_setting_given_twice_must_agree_and_within_the_release(cli):
    twice = cli("estimate", *PLAN, "--dispatcher", "deepep", "--settings", "dispatcher=alltoall")
    assert twice.exit_code == 2 and "dispatcher is given twice" in twice.output
    # BLOOM's Megatron-DeepSpeed (February 2022) predates sequence parallelism.
    old = cli("estimate", "--model", "llama-3.1-8b", "--chip", "a100", "--num-chips", "8",
              "--stack", "megatron-deepspeed", "--settings", "sequence_parallel=on")
    assert old.exit_code == 2
    assert "does not implement sequence_parallel on (it offers off)" in old.output


def test_sequence_parallel_off_keeps_the_norms_and_residuals_whole(cli):
    """Korthikanti et al. (arXiv 2205.05198) eq. 2 against eq. 4: without sequence parallelism
    each TP rank keeps both sublayers' norm output and residual (2 + 2 bytes of h per token,
    twice a layer) for all s tokens, not s / tp: (tp - 1) x 2 x 4 h s / tp bytes more a layer,
    32 x 8 x 4096 x 2048 B = 2 GiB over Llama 3.1 8B's 32 layers at s = 4096, tp = 2."""
    on, off = _estimate(cli), _estimate(cli, "--settings", "sequence_parallel=off")
    extra = 32 * 8 * 4096 * 2048 / 2**30
    assert off["memory_gib"]["activations"] - on["memory_gib"]["activations"] == \
        pytest.approx(extra, rel=1e-6)
    assert off["step_time_s"] > on["step_time_s"]  # every rank normalises all s tokens
    given = {a["setting"] for a in off["assumed"]}
    assumed = {a["setting"]: a for a in on["assumed"]}
    assert "sequence_parallel" not in given
    assert assumed["sequence_parallel"]["value"] is True
    assert "default" in assumed["sequence_parallel"]["how"]


def test_a_given_setting_is_the_alternative_the_assumption_named(cli):
    """The default run says what tp_overlap off would change; giving it off is that step."""
    on = _estimate(cli)
    alt = {a["setting"]: a for a in on["assumed"]}["tp_overlap"]
    off = _estimate(cli, "--settings", "tp_overlap=off")
    assert alt["alternative"] is False and alt["change"] > 0
    assert off["step_time_s"] == pytest.approx(on["step_time_s"] * (1 + alt["change"]),
                                               rel=1e-9)
    assert "tp_overlap" not in {a["setting"] for a in off["assumed"]}


def test_the_library_takes_settings_as_text_or_a_mapping():
    kw = dict(model="llama-3.1-8b", chip="h100", num_chips=8, tp=2, pp=1, micro_batch=1,
              recompute="none", global_batch=64, seq_len=4096)
    text = moebench.estimate(**kw, settings="tp_overlap=off,cross_entropy=unfused")
    mapping = moebench.estimate(**kw, settings={"tp_overlap": False,
                                                "cross_entropy": "unfused"})
    assert text.to_frame()["step_time_s"].iloc[0] == mapping.to_frame()["step_time_s"].iloc[0]
    with pytest.raises(InputError, match="expected on or off"):
        moebench.estimate(**kw, settings={"tp_overlap": "sometimes"})


def test_compare_applies_settings_to_every_chip(cli):
    args = ("compare", "--chips", "h800,h100", "--num-chips", "64", "--tokens", "1B",
            "--model", "llama-3.1-8b", "--format", "json")
    base = json.loads(cli(*args).output)["rows"]
    off = json.loads(cli(*args, "--settings", "dp_overlap=off,tp_overlap=off").output)["rows"]
    assert len(base) == len(off) == 2
    for b, o in zip(base, off, strict=True):
        assert o["step_time_s"] >= b["step_time_s"]


def test_sweep_takes_settings_and_search_like_compare(cli):
    """Without TP overlap or sequence parallelism, TP costs more: at 512 H800s the sweep's
    best Llama 3.1 8B plan is no faster than with the release's defaults."""
    import csv
    import io

    args = ("sweep", "--chips", "h800", "--model", "llama-3.1-8b", "--vary",
            "num_chips=256,512", "--format", "csv")
    base = list(csv.DictReader(io.StringIO(cli(*args).output)))
    off = list(csv.DictReader(io.StringIO(
        cli(*args, "--settings", "tp_overlap=off,sequence_parallel=off").output)))
    assert len(base) == len(off) == 2
    for b, o in zip(base, off, strict=True):
        assert float(o["step_time_s"]) >= float(b["step_time_s"]) * (1 - 1e-12)
    bad = cli(*args, "--settings", "bogus=1")
    assert bad.exit_code == 2 and "unknown setting 'bogus'" in bad.output


def test_modellink_rc3_groups_experts_where_its_scripts_say_so():
    """ModelLink 1.0.RC3 takes Megatron's --moe-grouped-gemm (store_true): its Mixtral script
    does not pass it, its DeepSeek-V2 60B (16-layer) and MiniCPM-MoE scripts do; from
    MindSpeed-LLM 1.0.0 its recipes pass it."""
    from moebench.inputs.stack import load_stack_spec

    spec = load_stack_spec("mindspeed-llm")
    rc3 = spec.releases_resolved["1.0.rc3"]
    assert rc3.caps.grouped_gemm and rc3.defaults["grouped_gemm"] is False
    assert rc3.on("ascend-910b", "bf16", "mixtral-8x7b", True).defaults["grouped_gemm"] is False
    for model in ("deepseek-v2-16l-mindspeed", "minicpm-moe-8x2b"):
        assert rc3.on("ascend-910b", "bf16", model, True).defaults["grouped_gemm"] is True
    assert not spec.releases_resolved["1.0.rc1"].caps.grouped_gemm
    assert spec.releases_resolved["1.0.0"].defaults["grouped_gemm"] is True
