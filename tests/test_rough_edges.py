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
