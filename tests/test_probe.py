"""moebench probe: fits with known answers, timing, the numpy backend end to end, a simulated
accelerator through the whole pipeline, --check, and every refusal as a one-line error."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from moebench.inputs.catalog import catalog_dir
from moebench.inputs.hardware import HardwareSpec, load_spec
from moebench.probe import command as probe_command
from moebench.probe.backends import DeviceInfo, NumpyBackend, reference_attention
from moebench.probe.collectives import CollectivePoint
from moebench.probe.fit import (
    attention_flops,
    bus_bytes,
    fit_alpha_beta,
    fit_gemm_curve,
    gemm_flops,
    gemm_rate,
    link_efficiency,
    per_step_latency_s,
)
from moebench.probe.runner import NUMPY_PLAN, run_probe
from moebench.probe.timing import MAX_INNER, Budget, Repeats, calls_per_run, measure, summarize

PEAK = 989.4e12

# -- fitting: synthetic timings with known answers ------------------------------------------


def grid() -> tuple[np.ndarray, np.ndarray]:
    rows = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
    depths = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
    shapes = [(m, 16384) for m in rows] + [(16384, k) for k in depths]
    shapes += [(x, x) for x in rows if x in depths]
    return np.array([s[0] for s in shapes], float), np.array([s[1] for s in shapes], float)


def test_gemm_fit_recovers_known_curve_from_noisy_timings():
    m, k = grid()
    n = 8192
    rng = np.random.default_rng(7)
    seconds = gemm_flops(m, k, n) / gemm_rate(m, k, 0.8 * PEAK, 130, 490)
    seconds *= np.exp(rng.normal(0.0, 0.03, len(seconds)))  # 3% timing noise
    curve = fit_gemm_curve(m, k, gemm_flops(m, k, n) / seconds)
    assert curve.rate_max.value / PEAK == pytest.approx(0.8, rel=0.03)
    assert curve.m_half.value == pytest.approx(130, rel=0.05)
    assert curve.k_half.value == pytest.approx(490, rel=0.05)
    assert curve.m_half.low < 130 < curve.m_half.high
    assert curve.k_half.low < 490 < curve.k_half.high
    assert 0.01 < curve.rms_rel_error < 0.05


def test_gemm_fit_is_exact_without_noise_and_refuses_too_few_points():
    m, k = grid()
    curve = fit_gemm_curve(m, k, gemm_rate(m, k, 0.7 * PEAK, 40, 900))
    assert curve.rate_max.value == pytest.approx(0.7 * PEAK, rel=1e-6)
    assert curve.m_half.value == pytest.approx(40, rel=1e-5)
    assert curve.k_half.value == pytest.approx(900, rel=1e-5)
    with pytest.raises(ValueError, match="at least 4"):
        fit_gemm_curve(m[:3], k[:3], np.ones(3))


def test_alpha_beta_fit_recovers_latency_and_bandwidth():
    rng = np.random.default_rng(3)
    sizes = np.array([2.0 ** p for p in range(20, 31, 2)])
    seconds = (6e-6 + sizes / 360e9) * np.exp(rng.normal(0.0, 0.02, len(sizes)))
    link = fit_alpha_beta(sizes, seconds)
    assert link.alpha_s == pytest.approx(6e-6, rel=0.1)
    assert link.bus_bw == pytest.approx(360e9, rel=0.03)
    assert link.peak_bus_bw == pytest.approx(float(np.max(sizes / seconds)))


def test_collective_arithmetic_follows_nccl_tests_and_the_step_model():
    assert bus_bytes("all_reduce", 1000, 8) == pytest.approx(1000 * 2 * 7 / 8)
    assert bus_bytes("all_gather", 1000, 8) == pytest.approx(1000 * 7 / 8)
    assert bus_bytes("all_to_all", 1000, 2) == pytest.approx(500)
    # A ring all-reduce over 8 ranks runs 2 x 7 steps.
    assert per_step_latency_s("all_reduce", 28e-6, 8) == pytest.approx(2e-6)
    assert per_step_latency_s("all_gather", 28e-6, 8) == pytest.approx(4e-6)
    assert link_efficiency(360e9, 450e9, 8, None) == pytest.approx(0.8)
    # A full mesh of 7 links: 4 ranks use 3 of them.
    assert link_efficiency(150e9, 392e9, 4, 7) == pytest.approx(150 / (392 * 3 / 7))


def test_attention_flops_match_the_step_model_count():
    from moebench.engine.workload import ATTENTION_BWD_FACTOR

    # Per token forward 2 h (d + d) s / 2, times s tokens, times (1 + backward factor).
    expected = 2.0 * 16 * (2 * 128) * 4096 / 2.0 * 4096 * (1 + ATTENTION_BWD_FACTOR)
    assert attention_flops(16, 4096, 128) == pytest.approx(expected)


# -- timing ---------------------------------------------------------------------------------


def test_summarize_gives_median_and_relative_iqr():
    t = summarize([1.0, 2.0, 3.0, 4.0, 100.0], inner=4)
    assert t.median_s == 3.0
    assert t.spread == pytest.approx((4.0 - 2.0) / 3.0)
    assert (t.runs, t.inner) == (5, 4)
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError, match="cannot resolve"):
        summarize([0.0, 0.0])


def test_measure_warms_up_runs_short_ops_back_to_back_and_stops_at_its_share():
    calls: list[int] = []

    def kernel(inner: int) -> float:
        calls.append(inner)
        return inner * 10e-6  # 10 us per call

    clock = iter(np.arange(0.0, 100.0, 1.0))  # one "second" per clock reading
    t = measure(kernel, share_s=2.5, repeats=Repeats(warmup=2, min_runs=3, max_runs=9,
                                                     min_run_s=1e-3),
                clock=lambda: float(next(clock)))
    assert calls[:3] == [1, 1, 1]  # two warm-ups, one call to size the runs
    assert all(c == 100 for c in calls[3:])  # 1 ms / 10 us back to back
    # The clock is read once the minimum runs are done: 1, 2, then 3 s >= 2.5 s: five runs.
    assert t.runs == 5 and t.inner == 100
    assert t.median_s == pytest.approx(10e-6)
    assert measure(kernel, share_s=0.0, repeats=Repeats(min_runs=3)).runs == 3
    t = measure(kernel, share_s=1e9, repeats=Repeats(max_runs=9))
    assert t.runs == 9


def test_calls_per_run_bounds():
    assert calls_per_run(1e-3, 1e-3) == 1
    assert calls_per_run(1e-6, 1e-3) == 1000
    assert calls_per_run(1e-9, 1e-3) == MAX_INNER
    assert calls_per_run(0.0, 1e-3) == MAX_INNER


def test_budget_shares_remaining_time_by_weight():
    now = [0.0]
    budget = Budget(100.0, [1.0, 1.0, 2.0], clock=lambda: now[0])
    assert budget.next_share_s() == pytest.approx(25.0)
    now[0] = 10.0  # the first step finished early: the others get its time
    assert budget.next_share_s() == pytest.approx(90.0 / 3)
    now[0] = 120.0  # overran
    assert budget.next_share_s() == 0.0
    with pytest.raises(IndexError):
        budget.next_share_s()
    with pytest.raises(ValueError):
        Budget(0.0, [1.0])


def test_reference_attention_forward_and_gradients():
    rng = np.random.default_rng(0)
    q, k, v, d_out = (rng.standard_normal((2, 5, 3)) for _ in range(4))
    out, dq, dk, dv = reference_attention(q, k, v, d_out)

    def forward(q, k, v):
        s = q @ k.transpose(0, 2, 1) / math.sqrt(3)
        s = np.where(np.triu(np.ones((5, 5), bool), 1), -np.inf, s)
        p = np.exp(s - s.max(-1, keepdims=True))
        return (p / p.sum(-1, keepdims=True)) @ v

    assert np.allclose(out, forward(q, k, v))
    assert np.allclose(out[:, 0], v[:, 0])  # causal: the first query sees the first key only
    eps, plain = 1e-6, forward(q, k, v)
    for grad, which in ((dq, 0), (dk, 1), (dv, 2)):  # against finite differences
        for index in np.ndindex(q.shape):
            args = [q, k, v]
            bumped = args[which].copy()
            bumped[index] += eps
            args[which] = bumped
            numeric = ((forward(*args) - plain) * d_out).sum() / eps
            assert grad[index] == pytest.approx(numeric, rel=1e-4, abs=1e-5)


# -- a simulated accelerator through runner, fit and profile --------------------------------


class FakeAccelerator:
    """Kernels whose times follow a known curve: the whole pipeline must recover it."""

    name = "fake"
    precision = "bf16"
    fp8 = True
    device_count = 8

    def __init__(self, f=0.82, m_half=130.0, k_half=490.0, copy_bw=4.1e12):
        self.curve = (f * PEAK, m_half, k_half)
        self.copy_bw = copy_bw
        self.info = DeviceInfo(device="NVIDIA H200", vendor="NVIDIA", driver="550.00",
                               runtime="fake 1.0", memory_bytes=150.0e9,
                               memory_source="simulated")

    def _kernel(self, seconds):
        return lambda inner: inner * seconds

    def gemm(self, m, k, n, fp8=False):
        rate = float(gemm_rate(m, k, *self.curve)) * (1.75 if fp8 else 1.0)
        return self._kernel(gemm_flops(m, k, n) / rate)

    def grouped_gemm(self, groups, m, k, n):
        return self._kernel(gemm_flops(m, k, n, groups) / float(gemm_rate(m, k, *self.curve)))

    def copy(self, nbytes):
        return self._kernel(2 * nbytes / self.copy_bw), 2 * nbytes

    def attention(self, heads, seq, head_dim):
        return self._kernel(attention_flops(heads, seq, head_dim) / (0.5 * self.curve[0]))

    def tiny_op(self):
        return self._kernel(2.2e-6)

    def host_loop(self, ops):
        return ops * 6e-6


FAST = replace(NUMPY_PLAN, dense_n=8192,
               dense_rows=(16, 64, 256, 1024, 4096, 16384), dense_depths=(64, 256, 1024, 4096,
                                                                          16384),
               grouped_rows=(8, 32, 128, 512, 2048), grouped_k=4096, grouped_n=2048,
               fp8_shapes=((8192, 8192, 8192),), clock_warmup_s=0.0)


def simulated_links(ranks=8, alpha=30e-6, bw=370e9):
    sizes = [2 ** p for p in range(20, 31, 2)]
    return [CollectivePoint("all_reduce", s, ranks,
                            summarize([alpha + bus_bytes("all_reduce", s, ranks) / bw]))
            for s in sizes]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A probe of the simulated H200 with 8-device all-reduce points, written to disk."""
    from moebench.inputs.stack import load_stack_spec
    from moebench.probe.profile import build_hardware, build_stack, write_profiles
    from moebench.probe.results import fit_measurements

    backend = FakeAccelerator()
    meas = replace(run_probe(backend, FAST, budget_s=1.0), devices=8,
                   collectives=simulated_links())
    fit = fit_measurements(meas)
    base = load_spec(catalog_dir("hardware") / "h200.yaml")
    hw = build_hardware(base, meas, fit, "h200-sim", "2026-01-01")
    stack = build_stack(load_stack_spec(hw["default_stack"]), meas, fit, "h200-sim-stack",
                        "2026-01-01", "h200")
    out = tmp_path_factory.mktemp("sim") / "h200-sim.yaml"
    write_profiles(out, hw, stack)
    return out, hw, stack, fit


def test_simulated_accelerator_profile_carries_the_measured_figures(simulated):
    out, hw, stack, fit = simulated
    c = hw["compute"]
    best = gemm_rate(16384, 16384, 0.82 * PEAK, 130, 490)  # the grid's best shape
    assert c["bf16_gemm_efficiency"]["value"] == pytest.approx(best / PEAK, rel=1e-3)
    assert c["bf16_gemm_efficiency"]["kind"] == "measured"
    assert c["fp8_gemm_efficiency"]["value"] == pytest.approx(
        1.75 * float(gemm_rate(8192, 8192, 0.82 * PEAK, 130, 490)) / 1978.9e12, rel=1e-3)
    assert c["bf16_dense_tflops"]["kind"] == "datasheet"  # the peak is the base's
    assert c["bf16_dense_tflops"]["source"].startswith("from --base h200, not measured")
    assert c["min_kernel_us"]["value"] == pytest.approx(2.2)
    assert hw["memory"]["hbm_efficiency"]["value"] == pytest.approx(4.1 / 4.8, rel=1e-3)
    assert hw["memory"]["hbm_capacity_gb"]["value"] == pytest.approx(150.0)
    up = hw["scale_up"]
    assert up["efficiency"]["value"] == pytest.approx(370 / 450, rel=0.01)
    assert up["latency_us"]["value"] == pytest.approx(30 / 14, rel=0.05)
    # No all-to-all was timed: the base's all-to-all figure is carried, and says so.
    assert up["alltoall_efficiency"]["value"] == pytest.approx(0.71)
    assert up["alltoall_efficiency"]["kind"] == "estimate"
    assert up["alltoall_efficiency"]["source"].startswith("from --base h200, not measured")
    assert hw["price"]["rental_per_chip_hour"]["value"] == 3.5
    assert hw["default_stack"] == "megatron-core-nvidia"
    assert "ling_device" not in hw
    k = stack["kernels"]
    assert k["gemm_half_rows"]["value"] == pytest.approx(130, rel=1e-3)
    assert k["gemm_half_depth"]["value"] == pytest.approx(490, rel=1e-3)
    assert k["attention_fraction"]["value"] == pytest.approx(0.5 * 0.82 * PEAK / best, rel=1e-3)
    assert stack["host"]["op_us"]["value"] == pytest.approx(6.0)
    assert k["gemm_fraction"]["source"].startswith("from stack megatron-core-nvidia")
    assert "validation" not in stack
    assert fit.curve.rate_max.value == pytest.approx(0.82 * PEAK, rel=1e-3)
    # Every figure moebench probe wrote is of kind measured and names the run.
    text = out.read_text()
    for line in text.splitlines():
        if "source: 'moebench probe" in line or 'source: "moebench probe' in line:
            assert "kind: measured" in line
            assert "NVIDIA H200 (driver 550.00; fake 1.0)" in line and "2026-01-01" in line


def test_a_timed_all_to_all_gives_its_own_efficiency(simulated):
    """All-to-all points (8 devices, 30 us, 320 GB/s of bus bandwidth as NCCL-tests measure
    on H100s) beside the all-reduce's 370: the profile's all-to-all efficiency is 320/450,
    measured, and the scale-up efficiency stays the all-reduce's 370/450."""
    from moebench.probe.profile import build_hardware
    from moebench.probe.results import fit_measurements

    backend = FakeAccelerator()
    sizes = [2 ** p for p in range(20, 31, 2)]
    a2a = [CollectivePoint("all_to_all", s, 8,
                           summarize([30e-6 + bus_bytes("all_to_all", s, 8) / 320e9]))
           for s in sizes]
    meas = replace(run_probe(backend, FAST, budget_s=1.0), devices=8,
                   collectives=simulated_links() + a2a)
    base = load_spec(catalog_dir("hardware") / "h200.yaml")
    hw = build_hardware(base, meas, fit_measurements(meas), "h200-sim", "2026-01-01")
    up = hw["scale_up"]
    assert up["alltoall_efficiency"]["value"] == pytest.approx(320 / 450, rel=0.01)
    assert up["alltoall_efficiency"]["kind"] == "measured"
    assert up["efficiency"]["value"] == pytest.approx(370 / 450, rel=0.01)


def test_check_compares_a_measured_profile_with_the_catalog(cli, simulated):
    out = simulated[0]
    result = cli("probe", "--check", str(out), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["catalog"] == "h200"  # named in the profile's notes
    rows = {r["figure"]: r for r in data["rows"]}
    eff = rows["BF16 GEMM efficiency"]
    assert eff["catalog"] == 0.838
    assert eff["ratio"] == pytest.approx(eff["measured"] / 0.838)
    rate = rows["max-achievable BF16 GEMM, TFLOPS"]
    assert rate["catalog"] == pytest.approx(989.4 * 0.838)
    assert rows["scale-up efficiency"]["measured"] == pytest.approx(370 / 450, rel=0.01)
    assert rows["GEMM rows half-point m_half"]["catalog"] == 130
    assert "BF16 peak, TFLOPS" not in rows  # taken from the base, not measured: no row
    table = cli("probe", "--check", str(out), "--base", "h100")
    assert table.exit_code == 0 and "h100" in table.output


# -- the numpy backend end to end through the CLI ------------------------------------------


@pytest.fixture(scope="module")
def cpu_probe(tmp_path_factory):
    from typer.testing import CliRunner

    from moebench.cli import app

    out = tmp_path_factory.mktemp("probe") / "my-chip.yaml"
    result = CliRunner().invoke(app, ["probe", "--backend", "numpy", "--budget-s", "5",
                                      "--output", str(out), "--format", "json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, json.loads(result.output)


def test_numpy_probe_writes_a_valid_sourced_profile(cli, cpu_probe):
    out, report = cpu_probe
    stack_file = out.with_name("my-chip.stack.yaml")
    assert cli("profiles", "check", str(out), str(stack_file)).exit_code == 0
    data = yaml.safe_load(out.read_text())
    HardwareSpec.model_validate(data)
    assert data["name"] == "my-chip" and data["vendor"] == "host CPU"
    c = data["compute"]
    best = max(report["measurements"]["dense"],
               key=lambda p: gemm_flops(p["m"], p["k"], p["n"]) / p["timing"]["median_s"])
    rate = gemm_flops(best["m"], best["k"], best["n"]) / best["timing"]["median_s"]
    assert c["bf16_dense_tflops"]["value"] == pytest.approx(rate / 1e12, rel=1e-3)
    assert c["bf16_dense_tflops"]["kind"] == "measured"
    assert "a host CPU has no datasheet" in c["bf16_dense_tflops"]["source"]
    assert c["bf16_gemm_efficiency"]["value"] == 1.0
    assert c["fp8_dense_tflops"] is None and c["fp8_gemm_efficiency"] is None
    h800 = load_spec(catalog_dir("hardware") / "h800.yaml")
    assert data["price"]["rental_per_chip_hour"]["value"] == h800.price.rental_per_chip_hour.value
    assert data["price"]["rental_per_chip_hour"]["kind"] == "estimate"
    assert data["reliability"]["mtbf_hours"]["source"].startswith("from --base h800")
    assert data["default_stack"] == "generic"  # an NVIDIA stack does not run a CPU
    for section in ("compute", "memory"):
        for name, fig in data[section].items():
            if fig is not None:
                assert fig["kind"] == "measured", name
                assert fig["source"].startswith("moebench probe 0.1.0"), name
                assert "numpy" in fig["source"]
    assert len(report["measurements"]["dense"]) == len(NUMPY_PLAN.dense_shapes())
    assert all(p["timing"]["runs"] >= 3 for p in report["measurements"]["dense"])


def test_estimate_runs_on_the_probed_profile(cli, cpu_probe):
    out, _ = cpu_probe
    stack_file = out.with_name("my-chip.stack.yaml")
    result = cli("estimate", "--chip", str(out), "--stack", str(stack_file), "--model",
                 "deepseek-v2-lite", "--num-chips", "64", "--global-batch", "64",
                 "--allow-oom", "--format", "json")
    assert result.exit_code == 0, result.output
    est = json.loads(result.output)
    peak = yaml.safe_load(out.read_text())["compute"]["bf16_dense_tflops"]["value"]
    assert est["chip"] == "my-chip" and est["stack"].split("@")[0] == "my-chip-stack"
    assert est["mfu_bf16"] == pytest.approx(est["model_tflops_per_chip"] / peak)
    assert est["step_time_s"] > 0


def test_check_of_the_numpy_profile(cli, cpu_probe):
    out, _ = cpu_probe
    result = cli("probe", "--check", str(out), "--format", "csv")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "figure,profile,catalog,measured,ratio"
    assert any(line.startswith("GEMM rows half-point m_half,stack vs generic,130") for line in
               lines)


# -- refusals: one line, exit 2, nothing written -------------------------------------------


def one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("budget", ["0", "-5", "nan", "inf", "1e9", "0.5"])
def test_bad_budgets(cli, tmp_path, budget):
    out = tmp_path / "x.yaml"
    one_line_error(cli("probe", "--backend", "numpy", "--budget-s", budget, "--output",
                       str(out)), "--budget-s")
    assert not out.exists()


def test_missing_torch_names_the_extra(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    one_line_error(cli("probe", "--backend", "torch", "--output", str(tmp_path / "x.yaml")),
                   "--backend", "pip install 'moebench[probe]'")


def test_auto_backend_without_torch_is_numpy(monkeypatch):
    from moebench.probe.backends import select_backend

    monkeypatch.setitem(sys.modules, "torch", None)
    assert select_backend("auto").name == "numpy"


@pytest.mark.parametrize("target,needle", [
    ("missing-folder/x.yaml", "does not exist"),
    ("x.json", ".yaml"),
    ("folder.yaml", "is a directory"),
])
def test_unwritable_outputs(cli, tmp_path, target, needle):
    (tmp_path / "folder.yaml").mkdir()
    one_line_error(cli("probe", "--backend", "numpy", "--output", str(tmp_path / target)),
                   "--output", needle)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_output_in_a_folder_nobody_can_write(cli):
    one_line_error(cli("probe", "--backend", "numpy", "--output", "/proc/moebench-probe.yaml"),
                   "--output", "cannot write in /proc")


@pytest.mark.parametrize("args,needle", [
    (["--devices", "2"], "numpy backend times one device"),
    (["--devices", "0"], "1 or more"),
    (["--base", "no-such-chip"], "unknown hardware profile"),
])
def test_bad_options(cli, tmp_path, args, needle):
    out = tmp_path / "x.yaml"
    one_line_error(cli("probe", "--backend", "numpy", "--budget-s", "2", "--output", str(out),
                       *args), needle)
    assert not out.exists()


def test_check_refusals(cli, tmp_path):
    one_line_error(cli("probe"), "--output")
    one_line_error(cli("probe", "--check", "a.yaml", "--output", "b.yaml"), "either")
    one_line_error(cli("probe", "--check", str(tmp_path / "none.yaml")), "not a file")
    catalog_h800 = str(catalog_dir("hardware") / "h800.yaml")
    one_line_error(cli("probe", "--check", catalog_h800), "nothing to check")


def test_interrupt_or_failure_leaves_no_file(tmp_path, monkeypatch):
    class Interrupted(NumpyBackend):
        def copy(self, nbytes):
            raise KeyboardInterrupt

    tiny = replace(NUMPY_PLAN, dense_rows=(8, 16, 32), dense_depths=(8, 16, 32),
                   grouped_rows=(8, 16), attention_seqs=(16,), clock_warmup_s=0.0)
    out = tmp_path / "chip.yaml"
    with pytest.raises(KeyboardInterrupt):
        probe_command.probe(out, Interrupted(), None, 5.0, plan=tiny)
    assert list(tmp_path.iterdir()) == []

    # A failure while the second file is written: neither file is left, nor a temporary.
    from moebench.probe import profile

    real = profile.to_yaml
    calls = []

    def failing(data, title):
        calls.append(title)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(data, title)

    monkeypatch.setattr(profile, "to_yaml", failing)
    with pytest.raises(OSError):
        probe_command.probe(out, NumpyBackend(), None, 5.0, plan=tiny)
    assert list(tmp_path.iterdir()) == []


# -- names and imports ---------------------------------------------------------------------


@pytest.mark.parametrize("device,base", [
    ("NVIDIA H200", "h200"), ("NVIDIA H20", "h20"), ("NVIDIA H100 80GB HBM3", "h100"),
    ("NVIDIA GB200", "gb200"), ("AMD Instinct MI300X", "mi300x"), ("Ascend910B2", "ascend-910b"),
    ("Intel Xeon Platinum", None),
])
def test_guess_base_from_device_name(device, base):
    assert probe_command.guess_base(device) == base


def test_profile_names_from_file_names():
    assert probe_command.profile_name(Path("out/H200 node 7.yaml")) == "h200-node-7"
    assert probe_command.profile_name(Path("h200-2026-03-01.yaml")) == "h200-2026-03-01"
    assert probe_command.profile_name(Path("__.yaml")) == "probed"


def test_probe_help_has_an_example(cli):
    result = cli("probe", "--help")
    assert result.exit_code == 0 and "Example" in result.output


def test_nothing_the_base_cli_loads_imports_torch():
    """torch is an optional extra: importing every probe module and running the CLI's help
    must not import it (a finder that refuses torch proves it, installed or not)."""
    code = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch imported at module import time")
sys.meta_path.insert(0, NoTorch())
import moebench.cli, moebench.probe.backends, moebench.probe.torch_backend
import moebench.probe.collectives, moebench.probe.command, moebench.probe.check
from typer.testing import CliRunner
assert CliRunner().invoke(moebench.cli.app, ["probe", "--help"]).exit_code == 0
assert "torch" not in sys.modules
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_torch_cpu_smoke(tmp_path):
    """Optional: the torch backend on the CPU, where torch happens to be installed."""
    pytest.importorskip("torch")
    from moebench.probe.torch_backend import TorchBackend

    backend = TorchBackend()
    if backend.kind != "cpu":
        pytest.skip("an accelerator is present: covered by the device check script")
    plan = replace(NUMPY_PLAN, dense_rows=(16, 32, 64), dense_depths=(16, 32, 64),
                   grouped_rows=(8, 16), attention_seqs=(32,), copy_bytes=1 << 20,
                   clock_warmup_s=0.0)
    report = probe_command.probe(tmp_path / "t.yaml", backend, None, 20.0, plan=plan)
    assert (tmp_path / "t.yaml").is_file()
    assert report.payload["measurements"]["backend"] == "torch"
