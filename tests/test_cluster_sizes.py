"""Cluster sizes tried by ``--deadline-days`` and pipeline depths at every scale."""

from __future__ import annotations

import pytest

from moebench.commands.compare.deadline import (
    SizedRun,
    bracket_sizes,
    node_size,
    octave_sizes,
    search_deadline,
)
from moebench.engine.plan import PlanRequest
from moebench.engine.plan_space import candidate_plans
from moebench.inputs import catalog
from moebench.inputs.hardware import chip_from_spec, load_spec
from moebench.inputs.model import load_model
from moebench.inputs.run import RunConfig


def test_brackets_try_powers_of_two_between_domain_doublings():
    """A 384-chip supernode: whole domains 384, 768, 1,536, 3,072, 6,144 and the powers of two
    between them; an 8-GPU server: powers of two only."""
    assert bracket_sizes(384, 7000) == [384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144]
    assert bracket_sizes(8, 100) == [8, 16, 32, 64]


def test_refinement_steps_in_whole_nodes():
    """Nodes are the largest power of two dividing the domain: 128 for 384 (3 x 128), 8 for a
    72-GPU rack. 2,048 x 2^(1/4) = 2,435.5 rounds to 19 x 128 = 2,432."""
    assert node_size(384) == 128 and node_size(72) == 8 and node_size(8) == 8
    sizes = octave_sizes(384, 2048, 4096)
    assert sizes == [2048, 2432, 2944, 3456, 4096]
    assert all(n % 128 == 0 for n in sizes)


def test_deadline_met_between_domain_doublings():
    """Days 100,000 / n with a 30-day deadline need n >= 3,334 chips: the domain doublings give
    6,144 (3,072 misses), the refinement finds 3,456 (27 nodes of 128), the cheapest that
    meets it when cost grows with size."""
    def size_run(n: int) -> SizedRun:
        return SizedRun(n, None, 100_000 / n, float(n))  # type: ignore[arg-type]

    best, met = search_deadline(384, 30, size_run)
    assert met and best.num_chips == 3456


def test_pipeline_depth_is_any_divisor_at_every_scale():
    """6,144 chips (2^11 x 3) may take PP24 for a 94-layer model. With TP1 CP1, dp = 6,144 / pp
    must divide the batch 8,960 (2^8 x 35), so dp is a power of two up to 256 and pp is
    24, 48 or 96 (= layers + 2; 192 would be beyond it). Before, above 4,096 chips only powers
    of two were tried, and none of these is one."""
    arch = load_model("qwen3-235b-a22b")
    chip = chip_from_spec(load_spec(catalog.resolve("hardware", "ascend-910c", "--chips")))
    run = RunConfig(seq_len=4096, global_batch=8960, precision="bf16")
    plans, _ = candidate_plans(arch, chip, run, 6144, PlanRequest(tp=1, ep=64, cp=1, vpp=1))
    pps = set(plans.pp.tolist())
    assert pps == {24, 48, 96}


@pytest.mark.slow
def test_deadline_finds_a_910c_cluster_between_supernode_doublings(cli):
    """Qwen3-235B on 10T tokens in 30 days: whole 384-chip supernodes doubling give 3,072
    chips (too slow) then 6,144; the search also tries the sizes between, and the 910C meets
    the deadline there, marked ok, with a size that is whole 128-chip nodes."""
    import json

    out = json.loads(cli("compare", "--model", "qwen3-235b-a22b", "--tokens", "10T",
                         "--deadline-days", "30", "--price-basis", "ownership",
                         "--chips", "h800,ascend-910c", "-f", "json").output)
    c = next(r for r in out["rows"] if r["chip"] == "ascend-910c")
    assert c["status"] == "ok" and c["days"] <= 30
    assert c["num_chips"] % 128 == 0 and c["num_chips"] not in (3072, 6144)


def test_a_missed_deadline_is_marked_in_every_format(cli):
    args = ("compare", "--chips", "h800,t-head-ppu", "--deadline-days", "2")
    md = cli(*args, "-f", "markdown").output
    header = next(line for line in md.splitlines() if line.startswith("| chip"))
    assert header.rstrip(" |").endswith("status")
    assert "| deadline missed: the fastest cluster" in md
    table = cli(*args).output
    assert "deadline missed" in table.split("└")[0]  # in the grid, not only the footer
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(cli(*args, "-f", "csv").output)))
    assert [r["status"].startswith("deadline missed") for r in rows] == [False, True]
