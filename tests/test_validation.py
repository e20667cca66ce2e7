"""Predictions against published measured runs, judged on runs the fit never saw, with bounds
that fail if the model drifts.

The bounds are today's errors plus a margin, not targets the model was tuned to: see README "How
accurate is it?". Tightening them is welcome; loosening them needs a reason. The headline is
leave-one-source-out: every run of a publication or table is predicted by its stack family
fitted without that source.
"""

import json
import math

import numpy as np
import pytest

from moebench.commands.compare.comparison import run_comparison
from moebench.commands.validation.fitting import fit, prepare, run_values
from moebench.commands.validation.measured_runs import load_runs
from moebench.commands.validation.ranking import sweep_ranking, sweep_stats
from moebench.commands.validation.report import (
    SOURCES_BEFORE_FIRST_PREDICTIONS,
    coverage,
    first_predictions,
    intervals,
    load_first_predictions,
    pinned_figures,
)
from moebench.commands.validation.summaries import groups, mean_abs, memory_summary
from moebench.commands.validation.validation import (
    BASELINE_DENSE_MAE,
    BASELINE_RUNS,
    SPLIT_DATE,
    RunComparison,
    calibrated_names,
    validate,
)
from moebench.inputs.scenario import load_scenario
from moebench.inputs.stack import load_stack_spec
from tests.conftest import shipped_rows, write_runs

# Leave-one-source-out, on 2026-12-07 after the attention backward rate and the measured
# all-to-all efficiencies (355 runs from 48 sources): all 12.8%, NVIDIA 11.6%, AMD 14.9%,
# Huawei 18.8% (earlier that day 13.0%, 11.9%, 15.1%, 18.7%; 2026-12-06, 247 runs: 15.5%, 13.5%,
# 16.4%, 24.7%). The bounds keep a point of room; Huawei's is issue 21's 20% per vendor.
MAX_LOSO_ALL = 0.138
MAX_LOSO_NVIDIA = 0.126
MAX_LOSO_AMD = 0.16
MAX_LOSO_HUAWEI = 0.20
# Leave-one-run-out, beside it: 12.1% over all runs on 2026-12-07 (13.8% on 2026-12-06).
MAX_LOO_ALL = 0.131
# Memory, 2026-12-06: 66 runs from 6 sources publish their peak memory; mean absolute error
# 5.0% with 3 runs beyond 20% (12.1% and 2 before the device-level figures carried the
# allocator's cache, each stack's cache_factor measured on the other stacks' runs; the first 53
# read 13.9% as first predicted, before the stage-output term). Issue 22 asks for 10% and none
# beyond 20%; the bounds record where the model stands. With each device's memory as it
# reports it (an 80 GB GPU is 80 GiB, not 80e9 bytes): 5.4% and 4 beyond 20%, the FlagPerf PP4
# run (+30%) and Primus's DeepSeek-V2-Lite DeepEP run (+27%) having read within 20% only because
# the smaller capacity forced a recompute on the first and cut the device figure of the second.
MAX_MEMORY_MAE = 0.06
MAX_MEMORY_BEYOND_20 = 4
# The whole validation set predicted every way (a minute of refits) behind every test here.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def comparisons():
    return validate()


def test_the_validation_set_is_large_and_spread(comparisons):
    g = groups(comparisons)
    assert len(comparisons) >= 130
    assert len({c.source_id for c in comparisons}) >= 25
    assert len(g["vendor Huawei"]) >= 8 and len(g["vendor AMD"]) >= 6
    assert len(g["dense"]) >= 6 and len(g["MoE"]) >= 30
    # Every shipped run names its stack release, its source and when it was published.
    for run in load_runs():
        assert run.stack and "@" in run.stack and run.published is not None, run.id


def test_memory_is_validated_and_every_measured_run_fits(comparisons):
    """Memory error over the runs that publish their peak memory, from NVIDIA, AMD and Ascend;
    and no measured run, with or without a published peak, is predicted not to fit beyond the
    known ones."""
    m = memory_summary(comparisons)
    assert m["runs"] >= 25 and m["sources"] >= 4
    assert set(m["by_vendor"]) == {"NVIDIA", "AMD", "Huawei"}
    assert m["mae"] <= MAX_MEMORY_MAE
    assert m["beyond"] <= MAX_MEMORY_BEYOND_20
    # Issue 22: no measured run is predicted not to fit.
    assert not m["not_fitting"], m["not_fitting"]


def test_out_of_source_error_within_the_stated_bounds(comparisons):
    g = groups(comparisons)
    assert mean_abs([c.loso_error for c in comparisons]) <= MAX_LOSO_ALL
    assert mean_abs([c.loso_error for c in g["vendor NVIDIA"]]) <= MAX_LOSO_NVIDIA
    assert mean_abs([c.loso_error for c in g["vendor AMD"]]) <= MAX_LOSO_AMD
    assert mean_abs([c.loso_error for c in g["vendor Huawei"]]) <= MAX_LOSO_HUAWEI
    assert mean_abs([c.loo_error for c in comparisons]) <= MAX_LOO_ALL


def test_leave_one_source_out_never_sees_the_source():
    """A source's runs are predicted by the family fitted on the other sources only: refitting
    by hand without the source gives the same errors."""
    runs = [r for r in load_runs() if r.stack.startswith("primus-amd@")]
    source = "primus-moe-blog-fig6-dsv2lite"
    out = {c.id: c for c in validate() if c.source_id == source}
    spec = load_stack_spec("primus-amd")
    names = calibrated_names(spec)
    rest = [prepare(r, "x") for r in runs if r.source_id != source]
    values = fit(rest, names).values
    for r in runs:
        if r.source_id == source:
            p = prepare(r, "x")
            vals = run_values(list(values), list(values.values()), p.release)
            err = float(np.expm1(p.speed_error(p.stack(vals)))[0])
            assert out[r.id].loso_error == pytest.approx(err, abs=2e-3), r.id


def test_the_time_split_predicts_only_later_runs(comparisons):
    later = [c for c in comparisons if c.published and c.published >= SPLIT_DATE.isoformat()]
    earlier = [c for c in comparisons if c.published and c.published < SPLIT_DATE.isoformat()]
    assert later and earlier
    assert all(not math.isnan(c.split_error) for c in later)
    assert all(math.isnan(c.split_error) for c in earlier)
    assert mean_abs([c.split_error for c in later]) < 0.25


def test_intervals_hold_their_point_and_about_their_share(comparisons):
    """80% intervals from other sources' out-of-source errors: each holds the prediction
    itself (zero error), and together they hold 70-90% of the runs."""
    bands = intervals(comparisons)
    for lo, hi in bands.values():
        assert lo <= 0.0 <= hi
    assert 0.70 <= coverage(comparisons, bands) <= 0.90


def _swept(run_id: str, step_s: float, batch: int, loso: float) -> RunComparison:
    return RunComparison(
        id=run_id, model="m", chip="c", vendor="V", moe=True, num_chips=8, stack="s@1",
        source_id="src", published=None, sweep="sw", metric="step_time_s", measured=step_s,
        faster_is_larger=False, tokens_per_step=batch * 4096.0, physics_error=0.0,
        calibrated_error=loso, loo_error=loso, loso_error=loso, split_error=math.nan,
        param_sd=0.0, fits_memory=True, production=False, source="")


def test_sweep_ranking_compares_tokens_per_second_and_measures_regret():
    """Step times of plans that train different batches compare as tokens/s: a (32 sequences in
    4 s) is the fastest, c (8 in 2 s) the slowest, although c's step is the shortest. The
    predictions rank b first, then a, then c: Spearman 0.5 (ranks 2,3,1 against 3,2,1: 1 - 6 x 2
    / (3 x 8)); the chosen plan b is 32/4 / (32/5) - 1 = 25% slower than a."""
    runs = [_swept("a", 4.0, 32, 0.0), _swept("b", 5.0, 32, 0.30), _swept("c", 2.0, 8, 0.0)]
    (sweep,) = sweep_ranking(runs)
    assert sweep["measured_best"] == "a" and sweep["predicted_best"] == "b"
    assert sweep["spearman"] == pytest.approx(0.5)
    assert sweep["regret"] == pytest.approx(0.25)
    assert sweep_ranking(runs[:2]) == []  # two plans are no sweep
    other = {**sweep, "sweep": "other", "spearman": 1.0, "regret": 0.0}
    assert sweep_stats([sweep, other]) == {"sweeps": 2, "spearman": pytest.approx(0.75),
                                           "regret": pytest.approx(0.125), "worst": "sw",
                                           "worst_regret": pytest.approx(0.25)}


def test_every_new_source_was_predicted_before_it_joined_the_fit():
    """A source added since first predictions were recorded has one for each of its runs;
    of the sources held before, only runs that joined them later do (``add_source --join``).
    Each recorded run is still in the set, under the source it was recorded for."""
    recorded = load_first_predictions()
    assert recorded["id"].is_unique
    by_id = dict(zip(recorded["id"], recorded["source_id"], strict=True))
    runs = {run.id: run for run in load_runs()}
    for run in runs.values():
        if run.source_id not in SOURCES_BEFORE_FIRST_PREDICTIONS:
            assert by_id.get(run.id) == run.source_id, run.id
    for run_id, source in by_id.items():
        assert runs[run_id].source_id == source, run_id
    assert {s for s in by_id.values() if s not in SOURCES_BEFORE_FIRST_PREDICTIONS}


def test_first_predictions_are_summarised_per_source(tmp_path):
    """Two runs of one source recorded at -10% and +30%: first error 20%; their
    leave-one-source-out errors now, -5% and +5%: 5%."""
    path = tmp_path / "first.csv"
    path.write_text("id,source_id,recorded,commit,stack,predicted_error\n"
                    "a,src,2026-12-05,abc1234,s@1,-0.10\nb,src,2026-12-05,abc1234,s@1,0.30\n")
    (row,) = first_predictions({"a": -0.05, "b": 0.05, "other": 0.9}, path)
    assert row["runs"] == 2 and row["first_mae"] == pytest.approx(0.20)
    assert row["loso_mae"] == pytest.approx(0.05)
    assert row["first_plan_only_mae"] is None  # a file of before 2026-12-06 has none
    # Recorded beside them, given only the plan: -40% and +20%, 30%; one missing: none.
    path.write_text("id,source_id,recorded,commit,stack,predicted_error,plan_only_error\n"
                    "a,src,2026-12-06,abc1234,s@1,-0.10,-0.40\n"
                    "b,src,2026-12-06,abc1234,s@1,0.30,0.20\n"
                    "c,old,2026-12-05,abc1234,s@1,0.30,\n")
    rows = first_predictions({"a": -0.05, "b": 0.05, "c": 0.1}, path)
    assert rows[0]["first_plan_only_mae"] == pytest.approx(0.30)
    assert rows[1]["first_plan_only_mae"] is None


def test_pinned_figures_are_flagged():
    """A fitted figure on a bound is listed by validate and in the stack's summary."""
    flagged = pinned_figures()
    for name in ("megatron-core-nvidia", "mindspeed-llm", "primus-amd"):
        v = load_stack_spec(name).validation
        assert v is not None
        for item in v.pinned:
            assert f"{name}: {item}" in flagged


def test_the_baseline_runs_read_no_worse_than_they_did(comparisons):
    """The 27 runs of the set before the fidelity work (commit 3743958): 39.3% then, in sample;
    their seven dense runs 7.0%, the bound for dense runs (leave-one-out). The bound for all 27
    was 12% from 2026-12-04 (they read 8.6-11.1%). The grouped-GEMM host rule of 2026-12-06
    (one host dispatch per grouped call, not per local expert) took the whole set from 13.6% to
    12.6% out of source and halved the runs beyond 40%, but these 27 from 11.1% to 15.5%
    (14.3% with Transformer Engine's measured 9 us per expert GEMM): Megatron-Bridge 25.11's
    host-bound Qwen3-30B rows (one micro-batch, dropless, experts eager: +60% on B200, +21% on
    H100) and DeepSeek-V3 on B200 with 32 local experts (+22%). Fitting the per-GEMM cost
    instead moved the time split from 16% to 21%: a knob, left out. The bound is 16%.

    The dense runs' bound is their 7.0% of then plus half a point: their leave-one-out moves
    with every source that joins their family's fit, not only with the model. On 2026-12-06
    Megatron-Bridge 26.06's 13 runs (five of them Llama 3.1 405B) joined, the fitted GEMM
    share went 0.806 -> 0.815 and these seven went 6.80% -> 7.02%, Meta's two 405B runs
    +7.2% -> +7.8%; the model did not change."""
    base = [c for c in comparisons if c.id in BASELINE_RUNS]
    assert len(base) == len(BASELINE_RUNS) == 27
    dense = [c.loo_error for c in base if not c.moe]
    assert len(dense) == 7
    assert mean_abs(dense) <= BASELINE_DENSE_MAE + 0.005
    assert mean_abs([c.loo_error for c in base]) <= 0.16


def test_physics_alone_is_optimistic_and_calibration_closes_most_of_the_gap(comparisons):
    """The hardware-limit stack is an upper bound on speed: nearly every run is faster under
    it than measured, and the calibrated stacks cut the mean error by more than half."""
    faster = [c for c in comparisons if c.physics_error > 0]
    assert len(faster) >= 0.9 * len(comparisons)
    physics = mean_abs([c.physics_error for c in comparisons])
    assert mean_abs([c.calibrated_error for c in comparisons]) < physics / 2


def test_deepseek_v3_as_published_without_extra_flags():
    """DeepSeek-V3 (Table 1): 2,664K H800-hours for 14.8T tokens, 180K per trillion. The
    scenario gives the published plan (TP1 PP16 EP64 DualPipe FP8) on DeepSeek's stack, whose
    release supplies the dispatcher; DualPipe implies its all-to-all overlap. The plan is
    DeepSeek's own: it fits the 80 GB without offload (ZeRO-1, selective recompute of the norms,
    MLA up-projections and SwiGLU output, BF16 moments, FP8-cached SwiGLU inputs). Issue 22
    asks for 10%; the steady-state prediction is 12.2% under the production average (which
    also holds the batch ramp-up of the first 469B tokens; 11.5% before the 2026-12-06 refits
    read the NVIDIA family's GEMMs 1.4% faster): the bound says so."""
    row = run_comparison(load_scenario("deepseek-v3-14.8t")).rows[0]
    assert row.plan is not None and row.plan["schedule"] == "dualpipe"
    assert (row.plan["tp"], row.plan["pp"], row.plan["ep"]) == (1, 16, 64)
    assert row.plan["optimizer_offload"] == 0 and row.plan["cp"] == 1
    assert row.plan["sharding"] == "zero-1" and row.fits_memory
    assert row.chip_hours / 14.8 == pytest.approx(180e3, rel=0.13)


def test_validate_command_reports_every_way(cli):
    result = cli("validate", "--format", "json")
    assert result.exit_code == 0
    out = json.loads(result.output)
    assert len(out["runs"]) >= 130
    assert {"physics_error", "calibrated_error", "loo_error", "loso_error", "split_error",
            "interval_log"} <= set(out["runs"][0])
    assert {s["group"] for s in out["summary"]} >= {"all", "vendor NVIDIA", "vendor AMD",
                                                   "vendor Huawei", "dense", "MoE"}
    assert out["split_date"] == SPLIT_DATE.isoformat() and 0 < out["coverage_80"] < 1


def test_validate_bounds_fail_the_command(cli):
    result = cli("validate", "--max-run-error", "5")
    assert result.exit_code == 1
    assert "bound exceeded" in result.output and "leave-one-source-out" in result.output


def test_a_users_file_is_refitted_with_the_shipped_runs(tmp_path, comparisons):
    """Out of sample on a user's file: two Ascend runs alone cannot refit three figures; the
    shipped runs of the family help refit it, and the shipped file's own runs read the same
    calibrated error either way."""
    path = write_runs(tmp_path, shipped_rows({"mixtral8x7b-ascend-64",
                                              "modellink-grok1-12l-910b-32"}), "mine.csv")
    users = {c.id: c for c in validate(path)}
    shipped = {c.id: c for c in comparisons}
    for rid in users:
        # out of source: refitted without the run's publication, so not the calibrated figure
        assert abs(users[rid].loso_error - users[rid].calibrated_error) > 0.01
        assert users[rid].loso_error == pytest.approx(shipped[rid].loso_error, rel=1e-6)
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
        assert run["stack"] == load_stack_spec("hardware-limit").label
        assert run["calibrated_error"] == pytest.approx(run["physics_error"])
        assert run["physics_error"] == pytest.approx(physics[run["id"]])
    refused = cli("validate", "--data", str(path), "--stack", "mindspeed-llm")
    assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1
    assert "is for Huawei chips" in refused.output


def test_given_only_the_plan_is_predicted_out_of_source_too(comparisons):
    """Given only its published plan a run reads as its row does wherever the settings left
    out are the ones its release (or platform) would take anyway: most runs, and Megatron-
    Bridge 26.06's DeepSeek-V3 on GB300, whose HybridEP, full graphs, overlap and sync-free
    are its platform's recipe, and 25.09's Qwen3-235B-A22B on GB200, whose per-layer graphs
    its model's recipe states (r0.1.0 perf_matrix; before recipes named models it read 61%
    slow given only its plan). ModelLink's Llama 2 70B table row was measured with MC2, which
    the released code turns off: given only its plan it reads slower."""
    by = {c.id: c for c in comparisons}
    same = [c for c in comparisons if abs(c.published_error - c.loso_error) < 1e-9]
    assert len(same) >= len(comparisons) // 2
    for run in ("mbridge2606-dsv3-gb300-256-mxfp8", "mbridge2509-qwen3-235b-gb200-64-mxfp8",
                "mbridge2511-qwen3-235b-h100-256-fp8cs"):
        assert by[run].published_error == pytest.approx(by[run].loso_error, abs=1e-9), run
    mc2 = by["modellink-llama2-70b-910b-32"]
    assert mc2.published_error < mc2.loso_error - 0.1
