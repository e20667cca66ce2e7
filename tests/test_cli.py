"""Every command through the CLI: help, formats, options, exit codes, atomic output."""

import csv
import io
import json

import pytest

from moebench.inputs.stack import load_stack_spec

COMMANDS = [["profiles", "list"], ["profiles", "show"], ["profiles", "check"],
            ["models", "list"], ["models", "show"], ["estimate"], ["validate"], ["compare"],
            ["explain"], ["sweep"]]

ESTIMATE_KEYS = {"model", "chip", "num_chips", "plan", "step_time_s", "tokens_per_s",
                 "tokens_per_s_per_chip", "model_flops_per_token", "model_tflops_per_chip",
                 "mfu", "memory_gib_per_chip", "fits_memory", "chip_hours_per_1e12_tokens",
                 "breakdown_s", "plans_evaluated", "search_seconds"}
ROW_KEYS = {"model", "chip", "num_chips", "plan", "step_time_s", "tokens_per_s_per_chip", "mfu",
            "memory_gib_per_chip", "days", "chip_hours", "cost", "currency", "cost_ratio",
            "energy_mwh", "fits_memory"}


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(cli, command):
    result = cli(*command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output


def test_version(cli):
    assert cli("--version").output.strip() == "moebench 0.1.0"


def test_estimate_json_shape(cli):
    result = cli("estimate", "--model", "deepseek-v3", "--chip", "h800", "--num-chips", "2048",
                 "--tp", "1", "--pp", "16", "--ep", "64", "--precision", "fp8",
                 "--global-batch", "15360", "--schedule", "dualpipe", "--stack", "hai-llm",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert set(out) >= ESTIMATE_KEYS
    assert set(out["plan"]) >= {"tp", "pp", "vpp", "ep", "cp", "dp", "micro_batch", "recompute"}
    assert out["tokens_per_s"] == pytest.approx(out["tokens_per_s_per_chip"] * 2048)
    assert out["step_time_s"] == pytest.approx(15360 * 4096 / out["tokens_per_s"])
    # MFU against the peak of the precision used (FP8 here), and against BF16 apart.
    assert out["mfu"] == pytest.approx(out["model_tflops_per_chip"] / 1978.9)
    assert out["mfu_bf16"] == pytest.approx(out["model_tflops_per_chip"] / 989.4)
    assert out["chip_hours_per_1e12_tokens"] == pytest.approx(
        1e12 / out["tokens_per_s_per_chip"] / 3600)
    assert sum(out["breakdown_s"].values()) == pytest.approx(out["step_time_s"], rel=0.05)


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "markdown"])
def test_compare_default_in_every_format(cli, fmt):
    result = cli("compare", "--format", fmt)
    assert result.exit_code == 0, result.output
    text = result.output
    if fmt == "json":
        out = json.loads(text)
        assert out["scenario"] == "ling-plus-1t"
        assert {"currency", "cny_per_usd", "pue"} <= set(out["assumptions"])
        rows = out["rows"]
        assert [r["chip"] for r in rows] == ["h800", "ascend-910b", "mi300x", "t-head-ppu",
                                             "h20", "a100"]
        assert all(set(r) >= ROW_KEYS for r in rows)
        assert rows[0]["cost_ratio"] == 1.0
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 6 and "cost_ratio" in rows[0]
    elif fmt == "markdown":
        assert text.count("\n| ") >= 7 and "|---|" in text
    else:
        assert "h800" in text and "t-head-ppu" in text and "PUE" in text


def test_compare_tokens_scale_cost_linearly(cli):
    one = json.loads(cli("compare", "--chips", "h800,h20", "--format", "json").output)["rows"]
    two = json.loads(cli("compare", "--chips", "h800,h20", "--tokens", "2T",
                         "--format", "json").output)["rows"]
    for a, b in zip(one, two, strict=True):
        assert b["cost"] == pytest.approx(2 * a["cost"], rel=1e-9)
        assert b["plan"] == a["plan"]


@pytest.mark.parametrize(("text", "value"), [("1T", 1e12), ("500B", 5e11), ("1.5e12", 1.5e12),
                                             ("800m", 8e8)])
def test_token_counts(text, value):
    from moebench.commands.shared.options import parse_tokens

    assert parse_tokens(text) == value


def test_compare_options(cli):
    out = json.loads(cli("compare", "--chips", "a100,h800", "--currency", "USD", "--fx-rate",
                         "7.0", "--price-basis", "ownership", "--num-chips", "512",
                         "--format", "json").output)
    assert out["assumptions"]["currency"] == "USD"
    assert out["assumptions"]["price_basis"] == "ownership"
    assert out["rows"][0]["chip"] == "a100" and out["rows"][0]["cost_ratio"] == 1.0
    assert {r["num_chips"] for r in out["rows"]} == {512}
    assert all(r["currency"] == "USD" for r in out["rows"])



def test_compare_takes_estimates_short_options(cli):
    """-c and -n mean in compare what they mean in estimate: the chips and the cluster size."""
    short = json.loads(cli("compare", "-c", "a100,h800", "-n", "512", "-f", "json").output)
    long_ = json.loads(cli("compare", "--chips", "a100,h800", "--num-chips", "512",
                           "-f", "json").output)
    assert [r["chip"] for r in short["rows"]] == ["a100", "h800"]
    assert {r["num_chips"] for r in short["rows"]} == {512}
    assert short["rows"] == long_["rows"]

def test_compare_deadline_mode(cli):
    out = json.loads(cli("compare", "--chips", "h800,h20", "--deadline-days", "30",
                         "--format", "json").output)
    for row in out["rows"]:
        assert row["days"] <= 30
    h800, h20 = out["rows"]
    assert h20["num_chips"] > h800["num_chips"]


def test_compare_moe_against_dense(cli):
    out = json.loads(cli("compare", "--model", "deepseek-v2,deepseek-llm-67b", "--chips",
                         "h800", "--num-chips", "1024", "--global-batch", "4608",
                         "--format", "json").output)
    hours = {r["model"]: r["chip_hours"] for r in out["rows"]}
    assert hours["deepseek-v2"] < hours["deepseek-llm-67b"]


def test_guards_exit_codes(cli):
    ok = cli("compare", "--chips", "h800,h20", "--fail-if", "h20.cost_ratio > 5")
    assert ok.exit_code == 0
    tripped = cli("compare", "--chips", "h800,h20", "--fail-if", "h20.cost_ratio < 5")
    assert tripped.exit_code == 1
    assert "guard tripped" in tripped.output
    for bad in ("h20.cost_ratio >> 1", "h99.cost_ratio > 1", "h20.colour > 1"):
        result = cli("compare", "--chips", "h800,h20", "--fail-if", bad)
        assert result.exit_code == 2, bad


@pytest.mark.parametrize("args", [
    ["--chips", "h800,nope"], ["--tokens", "lots"], ["--num-chips", "0"],
    ["--baseline", "b200"], ["--currency", "EUR"], ["--price-basis", "lease"],
    ["--deadline-days", "-1"], ["--precision", "fp4"], ["--scenario", "nope"],
    ["--num-chips", "8", "--deadline-days", "3"], ["--uncertainty", "-5"],
])
def test_bad_compare_options_exit_2_with_one_line(cli, args):
    result = cli("compare", *args)
    assert result.exit_code == 2, result.output
    assert len([ln for ln in result.output.splitlines() if ln.strip()]) == 1
    assert result.output.startswith("error: ")


def test_output_file_is_written_whole_or_not_at_all(cli, tmp_path):
    target = tmp_path / "table.json"
    assert cli("compare", "--chips", "h800", "--format", "json", "-o", str(target)).exit_code == 0
    first = target.read_text()
    assert json.loads(first)["rows"][0]["chip"] == "h800"
    # A failing run leaves the existing file alone and no temporary files behind.
    assert cli("compare", "--chips", "nope", "--format", "json", "-o", str(target)).exit_code == 2
    assert target.read_text() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.json"]


def test_uncertainty_is_seeded_and_reproducible(cli):
    args = ("compare", "--chips", "h800,ascend-910b", "--uncertainty", "64", "--format", "json")
    a, b = cli(*args).output, cli(*args).output
    assert a == b
    row = json.loads(a)["rows"][1]
    lo, hi = row["intervals"]["cost_ratio"]
    assert lo < hi
    other = json.loads(cli(*args, "--seed", "7").output)["rows"][1]["intervals"]["cost_ratio"]
    assert other != [lo, hi]


def test_set_override_is_applied_and_reported(cli):
    base = json.loads(cli("compare", "--chips", "h800", "--format", "json").output)
    faster = json.loads(cli("compare", "--chips", "h800", "--format", "json", "--set",
                            "h800:scale_out.bandwidth_gb_per_s=100", "--set",
                            "compute.bf16_dense_tflops=1500").output)
    assert faster["rows"][0]["step_time_s"] < base["rows"][0]["step_time_s"]
    assert "h800:scale_out.bandwidth_gb_per_s" in faster["assumptions"]["overrides"]
    bad = cli("compare", "--chips", "h800", "--set", "compute.warp_speed=2")
    assert bad.exit_code == 2 and "no such hardware field" in bad.output


def test_no_fitting_plan_keeps_its_row(cli):
    out = json.loads(cli("compare", "--model", "deepseek-v3", "--chips", "h800,ascend-910b",
                         "--num-chips", "16", "--format", "json").output)
    assert len(out["rows"]) == 2
    for row in out["rows"]:
        assert row["fits_memory"] is False and row["cost"] is None
        assert "no plan fits" in row["status"]



def test_compare_precision_and_sequence_length(cli):
    bf16 = json.loads(cli("compare", "--chips", "h800", "--precision", "bf16", "-f",
                          "json").output)["rows"][0]
    fp8 = json.loads(cli("compare", "--chips", "h800", "--precision", "fp8", "-f",
                         "json").output)["rows"][0]
    auto = json.loads(cli("compare", "--chips", "h800,a100", "--precision", "auto", "-f",
                          "json").output)["rows"]
    assert fp8["precision"] == "fp8" and fp8["step_time_s"] < bf16["step_time_s"]
    assert [r["precision"] for r in auto] == ["fp8", "bf16"]
    long = json.loads(cli("compare", "--chips", "h800", "--seq-len", "8192", "--global-batch",
                          "4480", "-f", "json").output)["rows"][0]
    assert long["tokens_per_s_per_chip"] < bf16["tokens_per_s_per_chip"]


def test_compare_run_overrides(cli):
    base = json.loads(cli("compare", "--chips", "h800", "-f", "json").output)
    worse = json.loads(cli("compare", "--chips", "h800", "-f", "json",
                           "--set", "run.expert_imbalance=1.5").output)
    assert worse["assumptions"]["expert_imbalance"] == 1.5
    assert worse["rows"][0]["cost"] > base["rows"][0]["cost"]


@pytest.mark.parametrize("group", ["profiles", "models"])
def test_groups_have_help_with_an_example(cli, group):
    assert "Example" in cli(group, "--help").output


def test_a_chip_without_a_valid_plan_keeps_its_row(cli):
    # 997 chips (a prime) cannot split 8,960 sequences or 88 layers on any valid plan.
    out = json.loads(cli("compare", "--chips", "h800,h20", "--num-chips", "997",
                         "--global-batch", "8960", "-f", "json").output)
    assert [r["chip"] for r in out["rows"]] == ["h800", "h20"]
    for row in out["rows"]:
        assert row["cost"] is None and row["status"].startswith(("no valid plan", "no plan"))


def test_compare_and_sweep_run_every_chip_on_the_stack_given(cli):
    """--stack puts every chip that names no stack of its own on that stack, the baseline
    with it; the rows equal the CHIP:STACK form's, and a chip's own CHIP:STACK is kept."""
    def rows(*args):
        out = json.loads(cli("compare", "--model", "qwen3-30b-a3b", "--num-chips", "64",
                             *args, "-f", "json").output)
        return {r["entry"]: r for r in out["rows"]}

    given = rows("--chips", "h800,a100:generic", "--stack", "hardware-limit")
    written = rows("--chips", "h800:hardware-limit,a100:generic")
    assert set(given) == {"h800:hardware-limit", "a100:generic"}
    assert given["h800:hardware-limit"]["stack"] == load_stack_spec("hardware-limit").label
    assert given["h800:hardware-limit"]["cost_ratio"] == pytest.approx(1.0)
    for entry in given:
        assert given[entry]["step_time_s"] == pytest.approx(written[entry]["step_time_s"])
    sweep = cli("sweep", "--model", "qwen3-30b-a3b", "--chips", "h800", "--stack",
                "hardware-limit", "--vary", "num_chips=64", "-f", "csv").output
    row = next(csv.DictReader(io.StringIO(sweep)))
    assert row["chip"] == "h800:hardware-limit"
    assert float(row["step_time_s"]) == pytest.approx(written["h800:hardware-limit"]
                                                       ["step_time_s"])
    refused = cli("compare", "--chips", "h800,ascend-910b", "--stack", "megatron-core-nvidia")
    assert refused.exit_code == 2 and "is for NVIDIA chips" in refused.output
