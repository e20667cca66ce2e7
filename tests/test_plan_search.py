"""Plan enumeration rules, fixed plans honoured, and the search against brute force."""

import numpy as np
import pytest

from moebench.engine.plan import PlanRequest
from moebench.engine.plan_space import candidate_plans
from moebench.engine.search import search
from moebench.engine.step import evaluate
from moebench.errors import InputError
from moebench.inputs.hardware import load_chip
from moebench.inputs.model import load_model
from moebench.inputs.run import RunConfig
from tests.conftest import assert_search_equals_brute_force, stack_of

RUN = RunConfig(seq_len=4096, global_batch=256)


def test_every_candidate_satisfies_the_framework_rules():
    arch, chip = load_model("deepseek-v2-lite"), load_chip("h100")
    plans, removed = candidate_plans(arch, chip, RUN, 64, PlanRequest())
    assert len(plans) > 1000
    assert np.all(plans.tp * plans.pp * plans.cp * plans.dp == 64)
    assert np.all(plans.tp <= chip.up_domain)
    assert np.all(64 % plans.ep == 0)  # V2-Lite has 64 experts
    assert np.all((plans.tp * plans.cp * plans.dp) % plans.ep == 0)
    assert np.all(RUN.global_batch % (plans.dp * plans.mb) == 0)
    assert np.all(16 % plans.tp == 0)  # 16 heads
    dual = plans.schedule == 1
    assert np.all(plans.pp[dual] % 2 == 0) and np.all(plans.vpp[dual] == 1)
    assert removed["tp beyond the scale-up domain"] > 0


def test_fixed_plan_is_honoured_exactly(cli):
    import json

    out = json.loads(cli(
        "estimate", "--model", "mixtral-8x7b", "--chip", "h100", "--num-chips", "64",
        "--tp", "2", "--pp", "4", "--vpp", "2", "--ep", "8", "--etp", "1", "--cp", "1",
        "--micro-batch", "2",
        "--recompute", "selective", "--schedule", "1f1b", "--global-batch", "512", "--zero", "1",
        "--optimizer-offload", "0", "--offload-modules", "none",
        "--format", "json").output)
    plan = out["plan"]
    assert (plan["tp"], plan["pp"], plan["vpp"], plan["ep"], plan["etp"], plan["cp"],
            plan["dp"]) == (2, 4, 2, 8, 1, 1, 8)
    assert (plan["micro_batch"], plan["recompute"], plan["schedule"]) == (2, "selective", "1f1b")
    assert plan["sharding"] == "zero-1"
    assert out["plans_evaluated"] == 1


def test_invalid_fixed_plan_names_the_rule():
    arch, chip = load_model("mixtral-8x7b"), load_chip("h100")
    with pytest.raises(InputError, match="ep must divide the experts"):
        search(arch, chip, stack_of(chip), RUN, 64, PlanRequest(tp=1, pp=1, ep=16))
    with pytest.raises(InputError, match="not divisible by tp"):
        search(arch, chip, stack_of(chip), RUN, 64, PlanRequest(tp=1, pp=3))


@pytest.mark.parametrize(("model", "chip", "n"), [("ling-lite", "h800", 16),
                                                   ("mixtral-8x7b", "a100", 32),
                                                   ("deepseek-v2-lite", "ascend-910b", 8)])
def test_search_best_is_never_beaten_by_brute_force(model, chip, n):
    # Brute force: every candidate, pruned ones included, evaluated (one plan at a time equals
    # the vectorised evaluation: test_vectorised_evaluation_equals_one_plan_at_a_time).
    assert_search_equals_brute_force(load_model(model), load_chip(chip), RUN, n)


def test_ties_go_to_the_conventional_plan():
    """Two plans 0.5% apart: the faster uses CP at a 4K context, the other does not."""
    from moebench.engine.plan import PlanArrays
    from moebench.engine.search import choose_plan

    plans = PlanArrays(**{f: np.array(v) for f, v in dict(
        tp=[1, 1, 1], pp=[4, 8, 8], vpp=[1, 1, 1], ep=[8, 8, 8], etp=[1, 1, 1], cp=[2, 1, 1],
        dp=[4, 4, 4], mb=[1, 1, 1], recompute=[0, 0, 0], rc_modules=[0, 0, 0],
        schedule=[0, 0, 0], sharding=[1, 1, 1], shard=[4, 4, 4], cp_kind=[0, 0, 0],
        optimizer_offload=[0.0, 0.0, 0.0]).items()})
    step = np.array([10.0, 10.05, 11.0])
    assert choose_plan(plans, step, np.arange(3)) == 1
    # Outside the band, speed wins.
    assert choose_plan(plans, np.array([10.0, 10.2, 11.0]), np.arange(3)) == 0


def test_no_plan_fits_is_reported_not_hidden(cli):
    result = cli("estimate", "--model", "deepseek-v3", "--chip", "a100", "--num-chips", "8")
    assert result.exit_code == 2
    assert "no plan fits in memory" in result.output and "--allow-oom" in result.output
    shown = cli("estimate", "--model", "deepseek-v3", "--chip", "a100", "--num-chips", "8",
                "--allow-oom", "--format", "json")
    assert shown.exit_code == 0
    import json

    assert json.loads(shown.output)["fits_memory"] is False


def test_recompute_never_shortens_a_step():
    """What makes pruning recompute exact: for plans equal but for recompute, none <= selective
    <= full in step time."""
    arch, hw = load_model("qwen3-30b-a3b"), load_chip("h800")
    run = RunConfig(seq_len=4096, global_batch=1024)
    times = {}
    for rc in ("none", "selective", "full"):
        plans, _ = candidate_plans(arch, hw, run, 64, PlanRequest(recompute=rc))
        times[rc] = evaluate(arch, hw, stack_of(hw, ep_overlap=True), run, plans).step_time
    assert np.all(times["none"] <= times["selective"] * (1 + 1e-12))
    assert np.all(times["selective"] <= times["full"] * (1 + 1e-12))
