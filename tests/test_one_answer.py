"""One question, one answer: every command that predicts a chip's run gives the figures
``estimate`` gives for the same inputs (issue 24)."""

from __future__ import annotations

import json

import pytest


def _json(cli, *args):
    result = cli(*args, "-f", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_one_type_mix_is_the_homogeneous_estimate(cli):
    """`estimate --chips h800:512` (a mix of one type) and `estimate --chip h800 --num-chips
    512`: the same plan and step, alone and as the mixed strategy."""
    est = _json(cli, "estimate", "--model", "ling-plus", "--chip", "h800", "--num-chips", "512")
    mix = _json(cli, "estimate", "--model", "ling-plus", "--chips", "h800:512")
    alone = mix["alone"][0]
    assert alone["step_time_s"] == pytest.approx(est["step_time_s"], rel=1e-12)
    part = alone["parts"][0]["plan"]
    assert {k: part[k] for k in ("tp", "pp", "ep", "dp", "micro_batch")} == {
        k: est["plan"][k] for k in ("tp", "pp", "ep", "dp", "micro_batch")}
    dp = next(s for s in mix["strategies"] if s["configuration"] == "hetero-dp")
    assert dp["step_time_s"] == pytest.approx(est["step_time_s"], rel=1e-12)


def test_a_mix_in_a_scenario_is_estimate_in_that_scenario(cli):
    est = _json(cli, "estimate", "--scenario", "ling-plus-1t", "--chip", "ascend-910b",
                "--num-chips", "1024")
    mix = _json(cli, "estimate", "--scenario", "ling-plus-1t", "--mix",
                "h800:512+ascend-910b:1024")
    alone = next(a for a in mix["alone"] if a["configuration"] == "ascend-910b alone")
    assert alone["step_time_s"] == pytest.approx(est["step_time_s"], rel=1e-12)


def test_a_compare_row_is_estimate_with_the_scenario(cli):
    table = _json(cli, "compare", "--chips", "h800,ascend-910b,mi300x")
    for row in table["rows"]:
        est = _json(cli, "estimate", "--scenario", "ling-plus-1t", "--chip", row["chip"])
        assert row["step_time_s"] == pytest.approx(est["step_time_s"], rel=1e-12), row["chip"]
        assert row["plan"]["pp"] == est["plan"]["pp"] and row["plan"]["ep"] == est["plan"]["ep"]


def test_a_sweep_point_is_estimate_with_the_same_values(cli):
    sweep = _json(cli, "sweep", "--chips", "h800", "--vary", "num_chips=512,2048")
    for row in sweep["rows"]:
        est = _json(cli, "estimate", "--scenario", "ling-plus-1t", "--chip", "h800",
                    "--num-chips", str(row["num_chips"]))
        assert row["step_time_s"] == pytest.approx(est["step_time_s"], rel=1e-12)


def test_a_deadline_size_is_estimate_at_that_size(cli):
    table = _json(cli, "compare", "--chips", "h800", "--deadline-days", "10")
    row = table["rows"][0]
    est = _json(cli, "estimate", "--scenario", "ling-plus-1t", "--chip", "h800",
                "--num-chips", str(row["num_chips"]))
    assert row["step_time_s"] == pytest.approx(est["step_time_s"], rel=1e-12)
