"""Measured-runs files: a user's own runs get errors naming their file, line and column."""

import pytest

from moebench.commands.measured_runs import load_runs, shipped_runs_path

HEADER = shipped_runs_path().read_text().splitlines()[0]
GOOD = ("mine,qwen3-30b-a3b,b200,8,fp8,1,1,1,8,1,1,1,none,1f1b,false,4096,512,"
        "tokens_per_s_per_chip,9299,false,,alltoall,partial,,,,1.0,my log,")


def _csv(tmp_path, text):
    path = tmp_path / "my-runs.csv"
    path.write_text(text)
    return str(path)


def test_the_shipped_file_loads():
    runs = load_runs()
    assert len(runs) >= 45 and len({r.id for r in runs}) == len(runs)


def test_a_good_user_file_validates(cli, tmp_path):
    result = cli("validate", "--data", _csv(tmp_path, f"{HEADER}\n{GOOD}\n"), "--format", "json")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("text", "needles"), [
    ("", ["my-runs.csv", "empty"]),
    (HEADER + "\n", ["my-runs.csv", "no runs"]),
    ("id,model\nx,y\n", ["my-runs.csv", "header", "missing column"]),
    (HEADER + ",colour\n" + GOOD + ",red\n", ["unknown column", "colour"]),
    (f"{HEADER}\n{GOOD.replace(',9299,', ',fast,')}\n",
     ["my-runs.csv", "line 2", "column measured", "expected a number"]),
    (f"{HEADER}\n{GOOD.replace(',4096,', ',4096.5,')}\n", ["line 2", "column seq_len"]),
    (f"{HEADER}\n{GOOD.replace(',fp8,', ',fp4,')}\n", ["column precision", "fp4"]),
    (f"{HEADER}\n{GOOD.replace('mine,qwen3-30b-a3b', 'mine,no-such-model')}\n",
     ["my-runs.csv", "line 2 (mine)", "no-such-model"]),
    (f"{HEADER}\n{GOOD}\n{GOOD}\n", ["line 3", "duplicate id"]),
])
def test_bad_runs_files_get_one_line_naming_file_line_and_column(cli, tmp_path, text, needles):
    result = cli("validate", "--data", _csv(tmp_path, text))
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
