"""Pipeline layouts: written layouts read and laid on ranks, the head's place in the step time
and memory, checked by hand; the search equal to brute force with a layout fixed."""

from __future__ import annotations

import numpy as np
import pytest

from moebench.engine.layout import layout_syntax_error, parse_layout
from moebench.engine.plan import PlanRequest
from moebench.engine.plan_space import candidate_plans
from moebench.engine.step import evaluate
from moebench.errors import InputError
from moebench.inputs.hardware import load_chip
from moebench.inputs.model import load_model
from moebench.inputs.run import RunConfig
from tests.conftest import assert_search_equals_brute_force, stack_of

RUN = RunConfig(seq_len=1024, global_batch=64)
PLAN = dict(tp=1, pp=2, vpp=1, ep=1, etp=1, cp=1, micro_batch=1, recompute="none",
            schedule="1f1b", sharding="zero-1", optimizer_offload=0.0, cp_kind="ring")


def test_megatron_layout_string_laid_on_ranks_by_hand():
    """DeepSeek-V3's 'Et*3|(tt|)*29m|L' on pp 8: 32 virtual stages, stage i on rank i mod 8.
    Rank 0 holds stages 0, 8, 16, 24: 3 + 2 + 2 + 2 = 9 layers; ranks 6 and 7 hold stage 30
    (MTP, no layer) and 31 (the loss) beside three 2-layer stages: 6 each; the rest 8."""
    w = parse_layout("Et*3|(tt|)*29m|L", 61, 1)
    assert len(w.stages) == 32 and w.fits(8, 4) and w.fits(16, 2) and not w.fits(8, 2)
    layers, head, mtp = w.ranks(8, 4)
    assert layers == (9, 8, 8, 8, 8, 8, 6, 6) and (head, mtp) == (7, 6)


def test_first_last_and_layers_per_rank_by_hand():
    w = parse_layout("first=3,last=2", 61, 1)
    assert w.fits(16, 1) and w.ranks(16, 1)[0] == (3,) + (4,) * 14 + (2,)
    assert not w.fits(8, 1)  # 56 layers over 6 middle ranks: not even
    assert not w.fits(16, 2)
    per_rank = parse_layout("4,8,8,6", 26, 0)
    assert per_rank.fits(4, 1) and not per_rank.fits(2, 1)
    assert per_rank.ranks(4, 1) == ((4, 8, 8, 6), 3, 3)
    # DualPipeV's V ends where it starts: the loss and MTP sit on rank 0.
    assert per_rank.fits(4, 1, dualpipev=True) and per_rank.ranks(4, 1, True)[1:] == (0, 0)


def test_account_for_embedding_and_loss_by_hand():
    """Qwen3-235B's 94 layers with the embedding and the loss each taking a slot: 96 slots.
    pp 8 x vpp 4: 3 per virtual stage, 12 per rank, rank 0 and rank 7 one fewer. pp 32 x vpp 3
    (one slot per virtual stage): 2 layers on ranks 0 and 31, 3 elsewhere."""
    w = parse_layout("account=embedding+loss", 94, 0)
    assert w.fits(8, 4) and w.fits(8, 3) and not w.fits(8, 5) and not w.fits(8, 4, dualpipev=True)
    assert w.ranks(8, 4) == ((11,) + (12,) * 6 + (11,), 7, 7)
    assert w.ranks(32, 3)[0] == (2,) + (3,) * 30 + (2,)
    loss_only = parse_layout("account=loss", 63, 0)
    assert loss_only.fits(8, 1) and loss_only.ranks(8, 1)[0] == (8,) * 7 + (7,)


@pytest.mark.parametrize(("text", "words"), [
    ("Et*60|L", "places 60 layers"),  # one layer short
    ("t*61m|EL", "must start with E"),
    ("4,8,8", "add up to"),
    ("first=40,last=30", "exceed"),
    ("E(t*", "cannot read layout"),
])
def test_bad_layouts_name_the_fix(text, words):
    with pytest.raises(InputError) as err:
        parse_layout(text, 61, 1)
    assert err.value.where == "--pipeline-layout" and words in err.value.message


def test_layout_syntax_before_the_model_is_known():
    assert layout_syntax_error("even") is None and layout_syntax_error("Et|(tt|)*2|L") is None
    assert layout_syntax_error("3,4") is None and layout_syntax_error("first=1,last=2") is None
    assert "cannot read layout" in layout_syntax_error("evenly")


def _one(arch, chip, layout, **plan):
    req = PlanRequest(**{**PLAN, **plan}, pipeline_layout=layout)
    plans, _ = candidate_plans(arch, chip, RUN, plan.get("pp", 2), req)
    assert len(plans) == 1
    return evaluate(arch, chip, stack_of(chip), RUN, plans)


def test_even_puts_the_whole_head_on_the_last_rank_balanced_half(tiny):
    """Tiny (4 layers, no MTP) on pp 2. even: the last rank runs its 2 layers and the head H.
    balanced: the slowest rank does max(2 t, (4 t + H) / 2) = 2 t + H / 2 (H > 0): exactly
    half the head beyond its layers."""
    chip = load_chip("h100")
    even = _one(tiny, chip, "even").compute["lm_head_mtp"][0]
    balanced = _one(tiny, chip, "balanced").compute["lm_head_mtp"][0]
    assert even > 0 and balanced == pytest.approx(even / 2, rel=1e-12)


def test_a_written_layout_moves_the_head_onto_fewer_layers(tiny):
    """'3,1': the loss's rank holds 1 layer, the fullest 3. Beyond the fullest rank's 3 t the
    loss's rank adds max(0, (1 - 3) t + H); t from the even split, where the stage's layers
    cost 2 t."""
    chip = load_chip("h100")
    even = _one(tiny, chip, "even")
    head = even.compute["lm_head_mtp"][0]
    layers = sum(v[0] for k, v in even.compute.items()
                 if k not in ("lm_head_mtp", "kernel_overhead"))
    t = layers / 2
    written = _one(tiny, chip, "3,1")
    assert written.compute["lm_head_mtp"][0] == pytest.approx(max(0.0, head - 2 * t),
                                                              rel=1e-9, abs=1e-15)
    other = {k: v[0] for k, v in written.compute.items()
             if k not in ("lm_head_mtp", "kernel_overhead")}
    assert sum(other.values()) == pytest.approx(3 * t, rel=1e-9)


def test_written_layout_memory_by_hand(tiny):
    """'3,1', tp = ep = 1, zero-1 on 2 chips (dp 1): weights 2 bytes x the heavier rank's
    parameters. Rank 0: 3/4 of the layers' weights and the embedding; rank 1: 1/4 and the LM
    head."""
    chip = load_chip("h100")
    p = tiny.params
    layer_dense = p.dense - p.embedding - p.lm_head
    rank0 = layer_dense * 3 / 4 + p.embedding + p.expert * 3 / 4
    rank1 = layer_dense / 4 + p.lm_head + p.expert / 4
    mem = _one(tiny, chip, "3,1").memory
    assert float(mem.weights[0]) == pytest.approx(2 * max(rank0, rank1), rel=1e-12)
    even = _one(tiny, chip, "even").memory
    assert float(even.weights[0]) == pytest.approx(
        2 * (layer_dense / 2 + max(p.embedding, p.lm_head) + p.expert / 2), rel=1e-12)


def test_written_layouts_refuse_plans_they_cannot_be_laid_on(tiny):
    chip = load_chip("h100")
    plans, removed = candidate_plans(tiny, chip, RUN, 2, PlanRequest(
        **{**PLAN, "schedule": "dualpipe"}, pipeline_layout="3,1"))
    assert len(plans) == 0 and "does not apply to dualpipe" in removed["_last"]
    v, _ = candidate_plans(tiny, chip, RUN, 2, PlanRequest(
        **{**PLAN, "schedule": "dualpipev"}, pipeline_layout="3,1"))
    assert len(v) == 1 and v.stage_counts(4).head[0] == 3  # the loss on rank 0, with 3 layers
    plans, removed = candidate_plans(tiny, chip, RUN, 4, PlanRequest(pipeline_layout="3,1"))
    assert set(plans.pp) == {2} and set(plans.vpp) == {1}
    assert any("needs pp = its 2 ranks" in k for k, v in removed.items() if v)
    even, _ = candidate_plans(tiny, chip, RUN, 8, PlanRequest(pipeline_layout="even"))
    assert set(even.pp) <= {1, 2, 4} and np.all(4 % (even.pp * even.vpp) == 0)


@pytest.mark.parametrize("layout", ["even", "3,1", "first=1,last=1"])
def test_search_equals_brute_force_with_a_layout(tiny, layout):
    assert_search_equals_brute_force(tiny, load_chip("h100"), RUN, 8,
                                     PlanRequest(pipeline_layout=layout))


def test_the_search_never_gains_from_an_even_layout():
    """balanced is never slower than even for the same plan (its bound is the lower one) and
    needs the same memory: the search offers it alone."""
    arch, chip = load_model("mixtral-8x7b"), load_chip("h100")
    run = RunConfig(seq_len=4096, global_batch=256)
    even, _ = candidate_plans(arch, chip, run, 64, PlanRequest(pipeline_layout="even"))
    balanced = even.take(np.arange(len(even)))
    balanced = type(balanced)(**{**balanced.columns(), "layout": np.zeros(len(even), int)})
    te = evaluate(arch, chip, stack_of(chip), run, even)
    tb = evaluate(arch, chip, stack_of(chip), run, balanced)
    assert np.all(tb.step_time <= te.step_time * (1 + 1e-12))
    assert np.any(tb.step_time < te.step_time * 0.999)
    np.testing.assert_allclose(tb.memory.total, te.memory.total)


def test_cli_layout_flag_json_plan_and_one_line_errors(cli):
    import json

    args = ("estimate", "--model", "deepseek-v3", "--chip", "h800", "--num-chips", "2048",
            "--global-batch", "16384", "--pp", "16", "--schedule", "1f1b")
    res = cli(*args, "--pipeline-layout", "first=3,last=2", "--format", "json")
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output)["plan"]
    assert plan["pipeline_layout"] == "first=3,last=2"
    assert plan["stage_layers"] == {"first": 3, "last": 2, "fullest": 4}
    bad = cli(*args, "--pipeline-layout", "Et*60|L")
    assert bad.exit_code == 2 and bad.output.count("\n") == 1
    assert "--pipeline-layout" in bad.output and "61 layers" in bad.output
    uneven = cli(*args, "--pipeline-layout", "even")
    assert uneven.exit_code == 2 and "divisible by pp x vpp" in uneven.output


def test_measured_runs_csv_checks_the_layout_column(tmp_path):
    import csv
    import io

    from moebench.commands.validation.measured_runs import load_runs, shipped_runs_path

    rows = list(csv.reader(io.StringIO(shipped_runs_path().read_text())))
    header, row = rows[0], rows[1]
    row[header.index("pipeline_layout")] = "evenly"
    path = tmp_path / "runs.csv"
    buf = io.StringIO()
    csv.writer(buf).writerows([header, row])
    path.write_text(buf.getvalue())
    with pytest.raises(InputError) as err:
        load_runs(path)
    assert "pipeline_layout" in str(err.value.field) and "cannot read" in err.value.message


def test_the_loss_rank_gives_up_whole_layers_with_their_communication():
    """Qwen3-30B-A3B (48 layers) on pp 3 with expert parallelism over 2, written '15,17,16':
    the loss's rank holds one layer fewer than the fullest, and that layer is worth its whole
    device time, the exposed all-to-all included, not its compute alone: lm_head_mtp =
    max(0, H - t), t the fullest rank's device time per layer, H the head's (the even layout's
    lm_head_mtp, where the loss's rank holds as many layers as any)."""
    arch, chip = load_model("qwen3-30b-a3b"), load_chip("h100")

    def one(layout: str):
        req = PlanRequest(**{**PLAN, "pp": 3, "ep": 2}, pipeline_layout=layout)
        plans, _ = candidate_plans(arch, chip, RUN, 6, req)
        assert len(plans) == 1
        return evaluate(arch, chip, stack_of(chip), RUN, plans)

    even, written = one("even"), one("15,17,16")
    head = even.compute["lm_head_mtp"][0]
    per_step = sum(v[0] for k, v in written.compute.items()
                   if k not in ("lm_head_mtp", "grad_accumulation"))
    exposed = sum(written.comm_exposed[k][0] for k in ("tp_scale_up", "tp_scale_out",
                                                       "ep_scale_up", "ep_scale_out", "cp"))
    t = (per_step + exposed) / 17  # the fullest rank's 17 layers
    compute_only = (per_step - written.compute["kernel_overhead"][0]) / 17
    assert written.comm_exposed["ep_scale_up"][0] > 0.05 * per_step  # the all-to-all matters
    assert head - t > 0 and t > compute_only  # not the compute-only answer, and not zero
    assert written.compute["lm_head_mtp"][0] == pytest.approx(head - t, rel=1e-6)
