"""Rough edges a new user hit (issue 23, section 6), each with its test."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_a_closed_pipe_exits_quietly():
    """`moebench compare -o /dev/stdout -f json | head -c 10`: the reader goes away after ten
    bytes; moebench exits 0 without a traceback or an internal-error line."""
    proc = subprocess.Popen([sys.executable, "-m", "moebench", "compare", "-f", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert head.startswith(b"{") and "Traceback" not in err and "internal error" not in err


def test_an_unknown_output_extension_is_refused(cli, tmp_path):
    target = tmp_path / "out.xlsx"
    _one_line_error(cli("compare", "-o", str(target)), "--output", "'.xlsx'", ".txt")
    assert not target.exists()


def test_a_text_file_gets_the_whole_table_whatever_the_terminal(tmp_path):
    """Written to .txt the table keeps every column at full width, even on an 80-column
    terminal (no 'left out for width' footnote)."""
    target = tmp_path / "out.txt"
    env = {**os.environ, "COLUMNS": "80"}
    subprocess.run([sys.executable, "-m", "moebench", "compare", "-o", str(target)], env=env,
                   check=True, capture_output=True, timeout=120)
    text = target.read_text()
    assert max(len(line) for line in text.splitlines()) > 150
    assert "left out for width" not in text
    for column in ("MWh", "goodput", "tok/s/chip", "CNY/h", "step s"):
        assert column in text


@pytest.mark.parametrize(("args", "needles"), [
    (("compare", "--tokens", "1e30"), ("--tokens", "beyond any training run", "1000T")),
    (("compare", "--num-chips", "100000000"), ("--num-chips", "1 to 1,048,576")),
    (("estimate", "--model", "ling-plus", "--chip", "h800", "--num-chips", "100000000"),
     ("--num-chips", "1 to 1,048,576")),
])
def test_absurd_scales_get_a_one_line_range_error(cli, args, needles):
    _one_line_error(cli(*args), *needles)


@pytest.mark.parametrize(("command", "extra"), [("probe", "moebench[probe]"),
                                                ("sweep", "moebench[dask]")])
def test_help_shows_literal_brackets(command, extra):
    env = {**os.environ, "COLUMNS": "250"}
    out = subprocess.run([sys.executable, "-m", "moebench", command, "--help"], env=env,
                         check=True, capture_output=True, text=True, timeout=60).stdout
    assert extra in out


def test_the_readme_exit_code_list_has_its_heading():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    heading = text.index("### Exit codes and guarantees")
    assert text.index("- `0` success", heading) - heading < 100


def test_a_checkpoint_folder_with_a_config_json_is_a_model(cli, tmp_path):
    import json

    from tests.test_hf_newer_types import LLAMA4_MAVERICK

    folder = tmp_path / "Llama-4-Maverick"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LLAMA4_MAVERICK))
    result = cli("models", "show", str(folder))
    assert result.exit_code == 0, result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(cli("models", "show", str(empty)), "--model", "without a config.json")


@pytest.mark.slow
def test_validate_keeps_units_when_the_metric_column_is_dropped(cli, tmp_path):
    """The measured value and its interval carry their unit in every table, so a narrow
    terminal that drops the metric column still says what they count."""
    from moebench.commands.validation.measured_runs import shipped_runs_path

    lines = shipped_runs_path().read_text().splitlines()
    mine = tmp_path / "runs.csv"
    mine.write_text("\n".join([lines[0], *[ln for ln in lines if ln.startswith(
        ("mbridge-qwen3-30b-h100-16-fp8,", "dsv3-h800-prod,"))]]) + "\n")
    md = cli("validate", "--data", str(mine), "-f", "markdown").output
    assert "5,275 tok/s/chip" in md
    row = next(line for line in md.splitlines() if line.startswith("| dsv3-h800-prod"))
    assert "| 180,000 chip-h/1e12 tok |" in row  # DeepSeek-V3's 180K H800-hours per 1T


@pytest.mark.slow
def test_validate_with_a_stack_that_fits_nothing_says_loo_is_not_out_of_sample(cli, tmp_path):
    from moebench.commands.validation.measured_runs import shipped_runs_path

    lines = shipped_runs_path().read_text().splitlines()
    mine = tmp_path / "runs.csv"
    mine.write_text("\n".join([lines[0], *[ln for ln in lines if ln.startswith(
        "mbridge-qwen3-30b-h100-16-fp8,")]]) + "\n")
    plain = cli("validate", "--data", str(mine), "-f", "markdown").output
    assert "no calibrated figure to refit" not in plain
    fixed = cli("validate", "--data", str(mine), "--stack", "hardware-limit",
                "-f", "markdown").output
    assert ("hardware-limit: no calibrated figure to refit, so its leave-one-out, "
            "leave-one-source-out and split columns are its calibrated predictions") in fixed


def test_a_scenario_files_problems_come_in_one_line(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmodels: [ling-plus]\nchips: [h800]\ntokens: -5\nseq_len: 0\n")
    result = cli("compare", "--scenario", str(bad))
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1
    assert "tokens: Input should be greater than 0" in lines[0]
    assert "seq_len: Input should be greater than 0" in lines[0]
    assert "baseline: required field is missing" in lines[0]


def test_mfu_against_the_bf16_peak_is_labelled_where_fp8_can_exceed_it(cli):
    fp8 = cli("estimate", "--model", "qwen3-30b-a3b", "--chip", "h800", "--num-chips", "16",
              "--precision", "fp8", "-f", "markdown").output
    assert "MFU (vs BF16 dense peak; above 1 possible under FP8)" in fp8
    bf16 = cli("estimate", "--model", "qwen3-30b-a3b", "--chip", "h800", "--num-chips", "16",
               "-f", "markdown").output
    assert "vs BF16 dense peak; above 1" not in bf16


def test_mix_tables_print_chip_counts_as_integers(cli):
    md = cli("estimate", "--model", "ling-plus", "--mix", "h800:512+ascend-910b:1024",
             "-f", "markdown").output
    assert "| h800 alone | 512 |" in md and "| ascend-910b alone | 1,024 |" in md
    assert "| apart | 1,536 |" in md and ".0 |" not in md.split("| apart |")[1].split("|")[1]


def test_estimate_takes_a_chip_on_a_named_stack_as_compare_does(cli):
    """``--chip CHIP:STACK`` is compare's ``--chips`` form: the plan and step of ``--chip CHIP
    --stack STACK``, where it was read as a mix and refused ``--num-chips``. A count after the
    colon is still a mix; a stack named both ways is refused in one line."""
    import json

    from moebench.inputs.mix import looks_like_mix

    args = ("estimate", "-m", "llama-3.1-8b", "-n", "8", "--tp", "1", "--pp", "2", "--cp", "1",
            "--micro-batch", "1", "--seq-len", "8192", "--global-batch", "512",
            "--precision", "bf16")
    named = cli(*args, "-c", "a800:megatron-core-nvidia@core_r0.8.0", "-f", "json")
    apart = cli(*args, "-c", "a800", "--stack", "megatron-core-nvidia@core_r0.8.0", "-f", "json")
    assert named.exit_code == apart.exit_code == 0, named.output
    a, b = json.loads(named.stdout), json.loads(apart.stdout)
    assert a["chip"] == b["chip"] == "a800"
    assert a["stack"] == b["stack"] == "megatron-core-nvidia@core_r0.8.0"
    assert a["plan"] == b["plan"] and a["step_time_s"] == b["step_time_s"]
    _one_line_error(cli(*args, "-c", "a800:megatron-core-nvidia@core_r0.8.0",
                        "--stack", "megatron-core-nvidia@25.04"), "--stack", "give the stack once")
    _one_line_error(cli(*args, "-c", "a800:"), "--chip", "CHIP:STACK")
    assert looks_like_mix("h800:512") and looks_like_mix("h800:512+ascend-910b:1024")
    assert not looks_like_mix("ascend-910b:mindspeed-llm@2.1.0") and not looks_like_mix("h800")


def test_a_benchmarks_fake_gate_and_accumulation_loop_are_set_as_run_fields(cli):
    """``--set run.routing=contiguous`` (a fake balanced gate's consecutive experts) sends each
    token to fewer ranks, so a per-rank dispatcher moves less and the step is shorter;
    ``--set run.pipeline_flushes=N`` runs the schedule N times a step, adding bubbles.
    Unknown values, and either on compare (whose scenarios run trained routers), are refused
    in one line."""
    import json

    args = ("estimate", "-m", "qwen3-30b-a3b", "-c", "h100:nemo-automodel", "-n", "16",
            "--tp", "1", "--pp", "2", "--vpp", "1", "--ep", "8", "--cp", "1",
            "--micro-batch", "1", "--recompute", "full", "--global-batch", "512",
            "-f", "json")
    base = json.loads(cli(*args).stdout)
    fake = json.loads(cli(*args, "--set", "run.routing=contiguous").stdout)
    flushed = json.loads(cli(*args, "--set", "run.pipeline_flushes=4").stdout)
    assert fake["step_time_s"] < base["step_time_s"] < flushed["step_time_s"]
    _one_line_error(cli(*args, "--set", "run.routing=diagonal"), "run.routing",
                    "random or contiguous")
    _one_line_error(cli(*args, "--set", "run.pipeline_flushes=0"), "run.pipeline_flushes",
                    "at least 1")
    _one_line_error(cli("compare", "--set", "run.routing=contiguous"), "run.routing",
                    "estimate and explain")
