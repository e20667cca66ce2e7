"""Predictions against published measured runs, with bounds that fail if the model drifts.

The bounds are the leave-one-out errors the model has today plus a margin, not targets it was
tuned to: see README "How accurate is it?". Tightening them is welcome; loosening them needs a
reason. The issue's targets (15% overall, 20% per vendor, no run beyond 40%) are met; dense runs
are worse than the issue allows: the bound records them as they are.
"""

import json

import pytest

from moebench.commands.compare import run_comparison
from moebench.commands.validation import (
    BASELINE_DENSE_MAE,
    BASELINE_RUNS,
    groups,
    mean_abs,
    validate,
)
from moebench.inputs.scenario import load_scenario
from tests.conftest import shipped_rows, write_runs

MAX_LOO_ALL = 0.13  # 10.0% on 2026-11-29 (130 runs); the target is 15%
MAX_LOO_NVIDIA = 0.11  # 8.6% on 2026-11-29 (106 runs)
# 14.5% on 2026-11-29, since the MI300-series FP8 GEMM rates are AMD's measured ones
MAX_LOO_AMD = 0.18
MAX_LOO_HUAWEI = 0.19  # below the 20% since the published pipeline layouts
# All 39 dense runs read 8.1%, most of them added since the baseline; the issue's "no worse than
# today" is tested on the seven dense runs of its baseline (test_the_baseline_runs_...).
MAX_LOO_DENSE = 0.11
# The target. Met since folds whose fit has a parameter on its bound are refitted
# exactly (the one-step approximation put the Ascend Qwen2-57B run at +41%; refitted, +33%).
MAX_LOO_ANY_RUN = 0.40


@pytest.fixture(scope="module")
def comparisons():
    return validate()


def test_the_validation_set_is_large_and_spread(comparisons):
    g = groups(comparisons)
    assert len(comparisons) >= 45
    assert len(g["vendor Huawei"]) >= 8 and len(g["vendor AMD"]) >= 6
    assert len(g["dense"]) >= 6 and len(g["MoE"]) >= 30


def test_leave_one_out_error_within_the_stated_bounds(comparisons):
    g = groups(comparisons)
    assert mean_abs([c.loo_error for c in comparisons]) <= MAX_LOO_ALL
    assert mean_abs([c.loo_error for c in g["vendor NVIDIA"]]) <= MAX_LOO_NVIDIA
    assert mean_abs([c.loo_error for c in g["vendor AMD"]]) <= MAX_LOO_AMD
    assert mean_abs([c.loo_error for c in g["vendor Huawei"]]) <= MAX_LOO_HUAWEI
    assert mean_abs([c.loo_error for c in g["dense"]]) <= MAX_LOO_DENSE
    for c in comparisons:
        assert abs(c.loo_error) <= MAX_LOO_ANY_RUN, c.id


def test_the_baseline_runs_read_no_worse_than_they_did(comparisons):
    """The 27 runs of the set before the fidelity work (commit 3743958): 39.3% then, in sample;
    their seven dense runs 7.0%, the issue's bound for dense runs. Leave-one-out now: the README's
    gen:baseline-now (8.2% and 4.0% when this was written)."""
    base = [c for c in comparisons if c.id in BASELINE_RUNS]
    assert len(base) == len(BASELINE_RUNS) == 27
    dense = [c.loo_error for c in base if not c.moe]
    assert len(dense) == 7
    assert mean_abs(dense) <= BASELINE_DENSE_MAE
    assert mean_abs([c.loo_error for c in base]) <= 0.12


def test_physics_alone_is_optimistic_and_calibration_closes_most_of_the_gap(comparisons):
    """The hardware-limit stack is an upper bound on speed: every run but a few runs faster
    than measured under it, and the calibrated stacks cut the mean error by more than half."""
    faster = [c for c in comparisons if c.physics_error > 0]
    assert len(faster) >= 0.9 * len(comparisons)
    physics = mean_abs([c.physics_error for c in comparisons])
    assert mean_abs([c.calibrated_error for c in comparisons]) < physics / 2


def test_deepseek_v3_pre_training_gpu_hours():
    """DeepSeek-V3 Table 1: 2,664K H800-hours for 14.8T tokens of pre-training."""
    row = run_comparison(load_scenario("deepseek-v3-14.8t")).rows[0]
    assert row.chip_hours == pytest.approx(2.664e6, rel=0.25)


def test_validate_command_prints_three_predictions_and_groups(cli):
    result = cli("validate", "--format", "json")
    assert result.exit_code == 0
    out = json.loads(result.output)
    assert len(out["runs"]) >= 45
    assert {"physics_error", "calibrated_error", "loo_error"} <= set(out["runs"][0])
    assert {s["group"] for s in out["summary"]} >= {"all", "vendor NVIDIA", "vendor AMD",
                                                   "vendor Huawei", "dense", "MoE"}


def test_validate_bounds_fail_the_command(cli):
    result = cli("validate", "--max-run-error", "5")
    assert result.exit_code == 1
    assert "bound exceeded" in result.output


def test_a_users_file_is_refitted_with_the_shipped_runs(tmp_path, comparisons):
    """Leave-one-out on a user's file: two Ascend runs alone cannot refit three figures (the fit
    would pass through both and report 0% error); the shipped runs of the stack help refit it,
    and the shipped file's own runs give the same figures either way."""
    path = write_runs(tmp_path, shipped_rows({"mixtral8x7b-ascend-64",
                                              "modellink-grok1-12l-910b-32"}), "mine.csv")
    users = {c.id: c for c in validate(path)}
    shipped = {c.id: c for c in comparisons}
    for rid in users:
        assert abs(users[rid].loo_error) > 0.05
        assert users[rid].loo_error == pytest.approx(shipped[rid].loo_error, rel=1e-6)
        assert users[rid].calibrated_error == pytest.approx(shipped[rid].calibrated_error)


def test_validate_with_a_stack_predicts_every_run_with_it(cli, tmp_path, comparisons):
    """--stack replaces each run's stack: with hardware-limit the calibrated column is the
    physics column; a stack of another vendor is refused in one line, exit 2."""
    nvidia = shipped_rows(lambda r: r["chip"] in ("h100", "b200"))[:4]
    path = write_runs(tmp_path, nvidia, "nv.csv")
    out = json.loads(cli("validate", "--data", str(path), "--stack", "hardware-limit",
                         "-f", "json").output)
    physics = {c.id: c.physics_error for c in comparisons}
    assert out["stack"] == "hardware-limit" and len(out["runs"]) == 4
    for run in out["runs"]:
        assert run["stack"] == "hardware-limit"
        assert run["calibrated_error"] == pytest.approx(run["physics_error"])
        assert run["physics_error"] == pytest.approx(physics[run["id"]])
    refused = cli("validate", "--data", str(path), "--stack", "modellink-ascend")
    assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1
    assert "is for Huawei chips" in refused.output
