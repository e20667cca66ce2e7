"""DualPipeV beside 1F1B, ZB1P and DualPipe, and recompute chosen per module: hand-computed
bubbles, parameter copies, activations in flight, per-module memory and time, the search
against brute force, and bad input."""

import json

import numpy as np
import pytest

from moebench.engine.context import build_context
from moebench.engine.memory import stage_params
from moebench.engine.plan import PlanRequest, candidate_plans
from moebench.engine.step import evaluate
from moebench.engine.terms import pipeline
from moebench.inputs.hardware import load_chip
from moebench.inputs.model import load_model
from moebench.inputs.run import WEIGHT_BYTES, RunConfig
from tests.conftest import stack_of

RUN = RunConfig(seq_len=4096, global_batch=512)
FIXED = dict(tp=1, vpp=1, ep=8, etp=1, cp=1, micro_batch=1, recompute="none",
             sharding="zero-1")


def _ctx(arch, chip, n, run=RUN, **fixed):
    plans, _ = candidate_plans(arch, chip, run, n, PlanRequest(**{**FIXED, **fixed}))
    assert len(plans) == 1
    return build_context(arch, chip, stack_of(chip), run, plans)


def _mixtral():
    return load_model("mixtral-8x7b"), load_chip("h100")


# --- DualPipeV -------------------------------------------------------------------------------


def test_dualpipev_bubble_is_p_minus_1_thirds():
    """DualPipe README: (PP/2 - 1)(F&B + B - 3W) for PP stages on PP/2 devices. On pp = 8
    ranks, PP = 16 stages of half a rank's layers: F = 1/6, B = 1/3, W = 1/6, F&B = F + B of a
    micro-batch time t, so (8 - 1)(1/2 + 1/3 - 1/2) t = 7/3 t. DualPipe on 8 ranks:
    (4 - 1) x 2/3 = 2 t; 1F1B 7 t; ZB1P 7/3 t."""
    arch, chip = _mixtral()
    ctx = {s: _ctx(arch, chip, 64, pp=8, schedule=s) for s in ("1f1b", "zb1p", "dualpipe",
                                                                "dualpipev")}
    got = {s: float(pipeline.bubble(c, 1.0)[0]) for s, c in ctx.items()}
    assert got == pytest.approx({"1f1b": 7.0, "zb1p": 7.0 / 3, "dualpipe": 2.0,
                                 "dualpipev": 7.0 / 3})
    # pp = 2: one rank pair, DualPipe's bubble vanishes, DualPipeV's is 1/3 of a micro-batch.
    two = {s: float(pipeline.bubble(_ctx(arch, chip, 64, pp=2, schedule=s), 1.0)[0])
           for s in ("dualpipe", "dualpipev")}
    assert two == pytest.approx({"dualpipe": 0.0, "dualpipev": 1.0 / 3})


def test_dualpipev_holds_one_copy_of_the_weights_and_dualpipe_two():
    """Mixtral 8x7B, 32 layers on pp = 4 ranks, tp 1, ep 8: 1F1B and DualPipeV both hold 8
    layers per rank (DualPipeV: chunks of 4); DualPipe holds two copies of its 8. DualPipeV's
    rank 0 also holds the embedding and the LM head (the V ends where it starts)."""
    arch, chip = _mixtral()
    p = arch.params
    w = {s: evaluate(arch, chip, stack_of(chip), RUN,
                     _ctx(arch, chip, 64, pp=4, schedule=s).plans).memory
         for s in ("1f1b", "dualpipe", "dualpipev")}
    layer_dense = p.dense - p.embedding - p.lm_head
    expert = p.expert * 8 / 32 / 8
    one_f1b = (layer_dense * 8 / 32 + max(p.embedding, p.lm_head)) + expert
    vee = (layer_dense * 8 / 32 + p.embedding + p.lm_head) + expert
    assert float(w["1f1b"].weights[0]) == pytest.approx(WEIGHT_BYTES * one_f1b)
    assert float(w["dualpipe"].weights[0]) == pytest.approx(2 * WEIGHT_BYTES * one_f1b)
    assert float(w["dualpipev"].weights[0]) == pytest.approx(WEIGHT_BYTES * vee)
    ctx = _ctx(arch, chip, 64, pp=4, schedule="dualpipev")
    assert float(ctx.layers_per_stage[0]) == 8 and float(ctx.chunks[0]) == 2
    dense, _ = stage_params(ctx)
    assert float(dense[0]) == pytest.approx(layer_dense / 4 + p.embedding + p.lm_head)


def test_dualpipev_activations_in_flight():
    """2 pp + 1 chunks in flight on every rank (dualpipev.py: 2(n - r - 1) + 2(r + 1) forward
    chunks before the first backward, then F0 B1 F1 B0 peaks one higher): pp + 1/2 of a rank's
    layers, against pp under 1F1B and pp + 1 under DualPipe; the logits sit on rank 0 with
    them."""
    arch, chip = _mixtral()
    mem = {s: evaluate(arch, chip, stack_of(chip), RUN,
                       _ctx(arch, chip, 64, pp=4, schedule=s).plans).memory
           for s in ("1f1b", "dualpipe", "dualpipev")}
    base = float(mem["1f1b"].activations[0]) / 4  # 8 layers x one micro-batch
    assert float(mem["dualpipev"].activations[0]) == pytest.approx(4.5 * base)
    assert float(mem["dualpipe"].activations[0]) == pytest.approx(5 * base)
    assert float(mem["1f1b"].logits[0]) == 0.0 < float(mem["dualpipev"].logits[0])


def test_dualpipev_micro_batch_rules_and_odd_ranks():
    """At least 2 pp micro-batches (dualpipev.py asserts num_chunks >= num_ranks * 2), no
    parity rule; any number of ranks >= 2 (DualPipe needs an even number)."""
    arch, chip = _mixtral()
    fixed = {**FIXED, "schedule": "dualpipev", "pp": 4}
    ok, _ = candidate_plans(arch, chip, RunConfig(seq_len=4096, global_batch=64), 64,
                            PlanRequest(**fixed))  # dp 16, m = 4 < 8
    assert len(ok) == 0
    ok, _ = candidate_plans(arch, chip, RunConfig(seq_len=4096, global_batch=128), 64,
                            PlanRequest(**fixed))  # m = 8
    assert len(ok) == 1
    run = RunConfig(seq_len=4096, global_batch=48)
    odd = {s: len(candidate_plans(arch, chip, run, 24, PlanRequest(
        **{**FIXED, "schedule": s, "pp": 3}))[0]) for s in ("dualpipe", "dualpipev")}
    assert odd == {"dualpipe": 0, "dualpipev": 1}
    full, _ = candidate_plans(arch, chip, RUN, 64, PlanRequest())
    v = full.schedule == 3
    assert v.any() and np.all(full.vpp[v] == 1) and np.all(full.pp[v] >= 2)
    assert np.all(RUN.global_batch // (full.dp[v] * full.mb[v]) >= 2 * full.pp[v])


def test_dualpipev_overlaps_all_to_all_as_dualpipe_does():
    """Same layers per rank, same micro-batches: the exposed all-to-all of DualPipeV equals
    DualPipe's (the same F&B windows) and is below plain 1F1B's."""
    arch, chip = _mixtral()
    st = {s: evaluate(arch, chip, stack_of(chip), RUN,
                      _ctx(arch, chip, 64, pp=4, schedule=s).plans)
          for s in ("1f1b", "dualpipe", "dualpipev")}

    def ep(s):
        return float(st[s].comm_exposed["ep_scale_up"][0] + st[s].comm_exposed["ep_scale_out"][0])

    assert ep("dualpipev") == pytest.approx(ep("dualpipe"))
    assert ep("dualpipev") < ep("1f1b")


def test_dualpipev_from_the_cli_and_the_measured_runs_file(cli, tmp_path):
    out = json.loads(cli(
        "estimate", "--model", "mixtral-8x7b", "--chip", "h100", "--num-chips", "64",
        "--tp", "1", "--pp", "4", "--ep", "8", "--schedule", "dualpipev", "--global-batch", "512",
        "--format", "json").output)
    assert out["plan"]["schedule"] == "dualpipev" and out["plan"]["pp"] == 4
    from moebench.commands.measured_runs import load_runs, shipped_runs_path

    header = shipped_runs_path().read_text().splitlines()[0]
    row = ("mine,qwen3-30b-a3b,b200,8,fp8,1,2,1,4,1,1,1,none,dualpipev,false,4096,512,"
           "tokens_per_s_per_chip,9299,false,,alltoall,partial,,,,1.0,my log,")
    path = tmp_path / "runs.csv"
    path.write_text(f"{header}\n{row}\n")
    assert load_runs(path)[0].plan.schedule == "dualpipev"


@pytest.mark.parametrize(("args", "needle"), [
    (["--pp", "4", "--global-batch", "64"], "dualpipev needs"),
    (["--pp", "4", "--vpp", "2"], "dualpipev needs"),
    (["--pp", "1"], "dualpipev needs"),
])
def test_bad_dualpipev_plans_are_one_line_errors(cli, args, needle):
    result = cli("estimate", "--model", "mixtral-8x7b", "--chip", "h100", "--num-chips", "64",
                 "--schedule", "dualpipev", "--tp", "1", "--ep", "8", "--cp", "1",
                 "--micro-batch", "1", *args)
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], result.output
