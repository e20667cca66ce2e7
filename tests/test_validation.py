"""Predictions against published measured runs, with bounds that fail if the model drifts.

The bounds are the errors the model has today plus a margin, not targets it was tuned to:
see README "How accurate is it?". Tightening them is welcome; loosening them needs a reason.
"""

import json

import pytest

from moebench.commands.compare import run_comparison
from moebench.commands.validation import compare_runs, load_runs, mean_abs_error
from moebench.inputs.model import load_model
from moebench.inputs.scenario import load_scenario

# Stated bounds on |predicted speed / measured speed - 1| over the 27 runs shipped (11 from
# papers and model zoos, 16 from the Megatron-Bridge 25.11 performance summary). With the first
# 11 runs the NVIDIA bound was 30%; the 16 Megatron-Bridge runs showed MoE on B200 and small
# MoE models at one sequence per micro-batch far slower than predicted, so the bounds are now
# per group: dense models tight, MoE on NVIDIA looser.
MAX_MEAN_ABS_ERROR_ALL = 0.45
MAX_MEAN_ABS_ERROR_DENSE = 0.10
MAX_ABS_ERROR_DENSE_RUN = 0.15
MAX_MEAN_ABS_ERROR_NVIDIA_MOE = 0.50
MAX_ABS_ERROR_ANY_RUN = 2.5


@pytest.fixture(scope="module")
def comparisons():
    return compare_runs(load_runs())


def test_mean_error_over_all_runs_within_bound(comparisons):
    assert len(comparisons) >= 27
    assert mean_abs_error(comparisons) <= MAX_MEAN_ABS_ERROR_ALL


def _is_moe(c):
    return load_model(c.model).is_moe


def test_dense_runs_within_bound(comparisons):
    dense = [c for c in comparisons if not _is_moe(c)]
    assert len(dense) >= 6
    assert mean_abs_error(dense) <= MAX_MEAN_ABS_ERROR_DENSE
    for c in dense:
        assert abs(c.speed_error) <= MAX_ABS_ERROR_DENSE_RUN, c.id


def test_moe_runs_on_nvidia_within_bound(comparisons):
    moe = [c for c in comparisons if _is_moe(c) and not c.chip.startswith("ascend")]
    assert len(moe) >= 15
    assert mean_abs_error(moe) <= MAX_MEAN_ABS_ERROR_NVIDIA_MOE


def test_no_run_is_off_by_more_than_the_bound(comparisons):
    for c in comparisons:
        assert abs(c.speed_error) <= MAX_ABS_ERROR_ANY_RUN, c.id


def test_deepseek_v3_pre_training_gpu_hours():
    """DeepSeek-V3 Table 1: 2,664K H800-hours for 14.8T tokens of pre-training."""
    row = run_comparison(load_scenario("deepseek-v3-14.8t")).rows[0]
    assert row.chip_hours == pytest.approx(2.664e6, rel=0.25)
    assert row.cost == pytest.approx(row.chip_hours * 2.0)


def test_validate_command_prints_the_error(cli):
    result = cli("validate", "--format", "json")
    assert result.exit_code == 0
    out = json.loads(result.output)
    assert len(out["runs"]) >= 27 and 0 < out["mean_abs_speed_error"] < 1
    table = cli("validate").output
    assert "mean absolute speed error" in table
