"""Every command in the README's Examples block runs as written (exit 0), with stand-ins for the
files it names as the user's own (my-runs.csv, my-chip.yaml, path/to/config.json). A release
that stops implementing what an example asks for (DeepSeek-V3's DualPipe is hai-llm's, not
Megatron's) fails here instead of in a user's terminal."""

from __future__ import annotations

import csv
import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from moebench.cli import app
from tests.test_hf_config import DSV3

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "profiles" / "validation" / "measured-runs.csv"
# Needs a running Dask scheduler at the address it names: not reachable from a test.
NEEDS_A_CLUSTER = "--dask-scheduler"
# Six FlagPerf A800 rows: enough for calibrate's three runs per fitted parameter.
USER_RUNS = ("flagperf-llama3-8b-a800x8-pp2tp1", "flagperf-llama3-8b-a800x8-pp4tp1",
             "flagperf-llama3-8b-a800x8-pp2tp2", "flagperf-llama3-8b-a800x8-pp2tp4",
             "flagperf-llama3-8b-a800x8-pp8", "flagperf-llama3-8b-a800x8-tp8")


def readme_examples() -> list[list[str]]:
    """The Examples block's commands, continuation lines joined and comments dropped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"Examples:\s*```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no Examples block"
    commands = []
    for line in block.group(1).replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "moebench", line
            commands.append(words[1:])
    return commands


def write_stand_ins(folder: Path) -> None:
    """The user's files the examples name, made from shipped data."""
    with RUNS.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    picked = [rows[0]] + [r for r in rows[1:] if r and r[0] in USER_RUNS]
    assert len(picked) == len(USER_RUNS) + 1
    with (folder / "my-runs.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(picked)
    (folder / "my-chip.yaml").write_text(
        (ROOT / "profiles" / "hardware" / "h200.yaml").read_text(encoding="utf-8"),
        encoding="utf-8")
    (folder / "path" / "to").mkdir(parents=True)
    (folder / "path" / "to" / "config.json").write_text(json.dumps(DSV3), encoding="utf-8")


EXAMPLES = readme_examples()


def test_the_readme_shows_examples_of_every_command():
    assert len(EXAMPLES) >= 20
    assert {words[0] for words in EXAMPLES} >= {"compare", "estimate", "explain", "validate",
                                                 "calibrate", "sweep", "models", "profiles",
                                                 "stacks"}


@pytest.mark.parametrize("words", [w for w in EXAMPLES if NEEDS_A_CLUSTER not in w],
                         ids=lambda w: " ".join(w)[:70])
def test_readme_example_runs(words, tmp_path, monkeypatch):
    write_stand_ins(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, words, catch_exceptions=False)
    if "--fail-if" in words and result.exit_code == 1:  # a guard may trip: it says which
        assert "guard tripped" in result.output
        return
    assert result.exit_code == 0, result.output[-600:]
    if "--output" in words:  # the command wrote what it was asked to write
        assert (tmp_path / words[words.index("--output") + 1]).stat().st_size > 0
