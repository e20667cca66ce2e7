"""moebench calibrate: it recovers known parameters, its leave-one-out is honest, and it refuses
what it cannot fit."""

import numpy as np
import pytest
import yaml

from moebench.commands.validation.calibrate import calibrate, leave_one_out
from moebench.commands.validation.fitting import Prepared, fit, prepare
from moebench.commands.validation.measured_runs import load_runs
from moebench.inputs.stack import load_stack_spec, stack_from_spec
from tests.conftest import shipped_rows, write_runs

SYNTHETIC_IDS = ("mbridge2509-qwen3-30b-b200-8-fp8cs", "mbridge260401-qwen3-30b-b200-8-mxfp8",
                 "mbridge-qwen3-30b-b200-8-mxfp8", "mbridge260401-dsv3-gb300-256-mxfp8",
                 "mbridge-llama31-405b-gb200-256-fp8", "mbridge-qwen3-235b-gb300-256-bf16",
                 "mbridge260401-qwen3-30b-h100-16-fp8cs")


def test_calibration_recovers_known_parameters(tmp_path):
    """Runs whose 'measured' speeds are the model's own with gemm_fraction 0.8 and 40 us per
    host operation: the fit finds both."""
    from dataclasses import replace

    rows = shipped_rows(SYNTHETIC_IDS)
    truth = {}
    spec = load_stack_spec("megatron-core-nvidia")
    for run in load_runs(write_runs(tmp_path, rows)):
        p: Prepared = prepare(run, "synthetic")
        stack = replace(stack_from_spec(spec, run.options), gemm_fraction=0.8, host_op_s=40e-6)
        truth[run.id] = float(np.exp(p.speed_error(stack))[0]) * run.measured
    for r in rows:
        # speed_error is log(predicted / measured speed); step-time metrics invert.
        factor = truth[r["id"]] / float(r["measured"])
        slower = r["metric"] in ("step_time_s", "chip_hours_per_1e12_tokens")
        r["measured"] = repr(float(r["measured"]) / factor if slower else truth[r["id"]])
    path = write_runs(tmp_path, rows)
    _, result = calibrate(load_runs(path), "megatron-core-nvidia",
                          ("gemm_fraction", "host_op_us"), str(path))
    assert result.fit.values["gemm_fraction"] == pytest.approx(0.8, rel=1e-3)
    assert result.fit.values["host_op_us"] == pytest.approx(40.0, rel=1e-3)
    assert np.all(np.abs(result.fit.errors) < 1e-3)


def test_calibration_recovers_the_share_overlapped_collectives_take(tmp_path):
    """Runs 'measured' with the model's own speeds at overlap_sm_share 0.2: fitted from the
    shipped 0.12, the share comes back; a stack whose share is zero starts from its bound."""
    from dataclasses import replace

    rows = shipped_rows(SYNTHETIC_IDS)
    for run, r in zip(load_runs(write_runs(tmp_path, rows)), rows, strict=True):
        prepared = prepare(run, "synthetic")  # the run's stack, its platform's defaults applied
        stack = replace(prepared.stack(), overlap_sm_share=0.2)
        factor = float(np.exp(prepared.speed_error(stack))[0])
        slower = r["metric"] in ("step_time_s", "chip_hours_per_1e12_tokens")
        r["measured"] = repr(float(r["measured"]) / factor if slower
                             else float(r["measured"]) * factor)
    path = write_runs(tmp_path, rows)
    _, result = calibrate(load_runs(path), "megatron-core-nvidia", ("overlap_sm_share",),
                          str(path))
    assert result.fit.values["overlap_sm_share"] == pytest.approx(0.2, rel=1e-3)
    zero = fit([prepare(r, "x", "hardware-limit") for r in load_runs(path)],
               ("overlap_sm_share",))
    assert 0.01 <= zero.values["overlap_sm_share"] <= 0.5


@pytest.mark.slow
def test_one_step_leave_one_out_tracks_exact_refits():
    """The approximate leave-one-out (one Gauss-Newton step without the run) against refitting
    each fold from scratch, on the AMD runs: within 5 points per run (the largest gap is the
    one dense run, the most influential one; most agree within a fraction of a point)."""
    runs = [r for r in load_runs() if r.chip.startswith("mi")]
    prepared = [prepare(r, "shipped") for r in runs]
    names = ("attention_fraction", "host_op_us")
    full = fit(prepared, names)
    prior = {n: full.values[n] for n in names}
    approx = leave_one_out(prepared, full, prior)
    exact = leave_one_out(prepared, full, prior, exact=True)
    gaps = np.abs(approx - exact)
    assert np.max(gaps) < 0.05 and np.median(gaps) < 0.005


def test_calibrate_writes_a_calibrated_stack(cli, tmp_path):
    runs = write_runs(tmp_path, shipped_rows(SYNTHETIC_IDS))
    out = tmp_path / "fitted.yaml"
    result = cli("calibrate", str(runs), "--stack", "megatron-core-nvidia", "--output", str(out),
                 "--fit", "gemm_fraction,host_op_us", "--format", "json")
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(out.read_text())
    fig = data["kernels"]["gemm_fraction"]
    assert fig["kind"] == "calibrated" and fig["low"] <= fig["value"] <= fig["high"]
    assert "runs.csv" in fig["source"] and "7 runs" in fig["source"]
    assert data["host"]["op_us"]["kind"] == "calibrated"
    # The written stack loads and runs.
    shown = cli("estimate", "--model", "qwen3-30b-a3b", "--chip", "b200", "--num-chips", "8",
                "--stack", str(out), "--global-batch", "512", "--format", "json")
    assert shown.exit_code == 0, shown.output


def test_calibrate_is_deterministic(cli, tmp_path):
    runs = write_runs(tmp_path, shipped_rows(SYNTHETIC_IDS))
    texts = []
    for i in range(2):
        out = tmp_path / f"s{i}.yaml"
        assert cli("calibrate", str(runs), "--stack", "megatron-core-nvidia", "--output",
                   str(out)).exit_code == 0
        texts.append(out.read_text())
    assert texts[0] == texts[1]


@pytest.mark.parametrize(("ids", "fit_names", "needles"), [
    (SYNTHETIC_IDS[:5], "gemm_fraction,host_op_us", ["5 run(s) for 2 parameter(s)", "at least 3"]),
    (SYNTHETIC_IDS, "gemm_fraction,bogus", ["unknown parameter", "bogus"]),
    (SYNTHETIC_IDS[:2] + ("modellink-llama2-7b-910b-8",), "gemm_fraction",
     ["line 4 (modellink-llama2-7b-910b-8)", "for NVIDIA chips", "Huawei"]),
])
def test_calibrate_refuses_with_one_line(cli, tmp_path, ids, fit_names, needles):
    runs = write_runs(tmp_path, shipped_rows(ids))
    result = cli("calibrate", str(runs), "--stack", "megatron-core-nvidia", "--output",
                 str(tmp_path / "x.yaml"), "--fit", fit_names)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1
    for needle in needles:
        assert needle in lines[0]
    assert not (tmp_path / "x.yaml").exists()


@pytest.mark.slow
def test_leave_one_out_refits_folds_when_a_parameter_sits_on_its_bound():
    """The AMD family's runs put attention_fraction on its lower bound, where one Gauss-Newton
    step is not a valid stand-in for the constrained refit: the default then refits each fold,
    so it equals exact=True, and the one-step result differs from it."""
    runs = [r for r in load_runs() if r.stack.startswith("primus-amd@")]
    prepared = [prepare(r, "shipped") for r in runs]
    names = ("attention_fraction", "host_op_us")
    full = fit(prepared, names)
    assert full.values["attention_fraction"] == pytest.approx(0.2)
    prior = {n: full.values[n] for n in names}
    default = leave_one_out(prepared, full, prior)
    exact = leave_one_out(prepared, full, prior, exact=True)
    one_step = leave_one_out(prepared, full, prior, exact=False)
    assert np.array_equal(default, exact)
    assert np.max(np.abs(one_step - exact)) > 0.005


def test_a_release_refit_is_written_into_its_release_and_read_back_for_its_runs(tmp_path):
    """calibrate_stacks writes a release's own figure under that release's ``refit``; the
    family's figure of the same name (above the releases) is untouched, runs of the release
    read the refit and runs of other releases the family's; clearing removes it."""
    from moebench.commands.validation.calibrate_report import (
        clear_release_refits,
        replace_figure,
        set_release_refit,
    )
    from moebench.inputs.catalog import catalog_dir

    text = (catalog_dir("stacks") / "primus-amd.yaml").read_text(encoding="utf-8")
    line = "{value: 0.5, kind: calibrated, low: 0.4, high: 0.6, source: \"test\"}"
    refitted = set_release_refit(text, "0.6.0", "attention_fraction", line)
    again = set_release_refit(refitted, "0.6.0", "attention_fraction",
                              line.replace("0.5,", "0.45,"))
    assert again.count("      attention_fraction:") == 1
    family = replace_figure(again, "attention_fraction",
                            "{value: 0.3, kind: calibrated, low: 0.2, high: 0.4, source: \"fam\"}")
    path = tmp_path / "primus-amd.yaml"
    path.write_text(family, encoding="utf-8")
    assert load_stack_spec(f"{path}@0.6.0").figure("attention_fraction").value == 0.45
    assert load_stack_spec(f"{path}@0.5.0").figure("attention_fraction").value == 0.3
    assert clear_release_refits(family).count("refit:") == 0
    assert yaml.safe_load(clear_release_refits(family)) is not None


def test_robust_weights_hand_computed():
    """Soft-L1 weights 1 / sqrt(1 + (r / 0.15)^2): 1 at no error, 1/sqrt(2) at the scale,
    1/sqrt(10) at three times it."""
    from moebench.commands.validation.fitting import ROBUST_SCALE, robust_weights

    assert ROBUST_SCALE == 0.15
    w = robust_weights(np.array([0.0, 0.15, -0.45]))
    assert w == pytest.approx([1.0, 2 ** -0.5, 10 ** -0.5])


def test_one_unexplained_run_does_not_set_the_shared_figures(tmp_path, monkeypatch):
    """Runs 'measured' at the model's own speeds with gemm_fraction 0.8 and 40 us per host
    operation, one of them measured half as fast as that (a cause the model lacks): the
    robust fit keeps gemm_fraction nearer 0.8 than plain least squares (a scale so large the
    loss is quadratic everywhere) does, and leaves the odd run predicted about twice as fast."""
    from dataclasses import replace

    import moebench.commands.validation.fitting as fitting

    rows = shipped_rows(SYNTHETIC_IDS)
    spec = load_stack_spec("megatron-core-nvidia")
    for run, r in zip(load_runs(write_runs(tmp_path, rows)), rows, strict=True):
        p = prepare(run, "synthetic")
        stack = replace(stack_from_spec(spec, run.options), gemm_fraction=0.8, host_op_s=40e-6)
        factor = float(np.exp(p.speed_error(stack))[0])
        if r["id"] == SYNTHETIC_IDS[0]:
            factor /= 2.0  # measured half as fast as the model with the true figures
        slower = r["metric"] in ("step_time_s", "chip_hours_per_1e12_tokens")
        r["measured"] = repr(float(r["measured"]) / factor if slower
                             else float(r["measured"]) * factor)
    prepared = [prepare(run, "synthetic") for run in load_runs(write_runs(tmp_path, rows))]
    names = ("gemm_fraction", "host_op_us")
    robust = fit(prepared, names)
    monkeypatch.setattr(fitting, "ROBUST_SCALE", 1e6)
    plain = fit(prepared, names)
    miss = {k: abs(r.values["gemm_fraction"] / 0.8 - 1) for k, r in
            (("robust", robust), ("plain", plain))}
    assert miss["robust"] < 0.05 and miss["robust"] < miss["plain"], miss  # 2.5% and 10.8%
    odd = [i for i, p in enumerate(prepared) if p.run.id == SYNTHETIC_IDS[0]][0]
    assert robust.errors[odd] == pytest.approx(1.0, abs=0.15)  # predicted twice as fast
