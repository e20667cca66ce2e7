"""Measured-runs files: a user's own runs get errors naming their file, line and column."""

import pytest

from moebench.commands.validation.measured_runs import load_runs, shipped_runs_path
from moebench.inputs.model import load_model

HEADER = shipped_runs_path().read_text().splitlines()[0]
GOOD = ("mine,qwen3-30b-a3b,b200,8,fp8,1,1,1,8,1,1,1,none,1f1b,false,4096,512,"
        "tokens_per_s_per_chip,9299,false,,alltoall,partial,,,,1.0,my log,")


def _csv(tmp_path, text):
    path = tmp_path / "my-runs.csv"
    path.write_text(text)
    return str(path)


def test_the_shipped_file_loads():
    runs = load_runs()
    assert len(runs) >= 45 and len({r.id for r in runs}) == len(runs)


@pytest.mark.slow
def test_a_good_user_file_validates(cli, tmp_path):
    result = cli("validate", "--data", _csv(tmp_path, f"{HEADER}\n{GOOD}\n"), "--format", "json")
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_a_run_with_its_peak_memory_is_compared_in_kind(cli, tmp_path):
    """A run that publishes 40 GiB allocated gets the model's live-tensor figure beside it, its
    error and the breakdown; --max-memory-error trips on it."""
    import json

    text = f"{HEADER}\n{GOOD}{',' * 13}40,allocated\n"
    result = cli("validate", "--data", _csv(tmp_path, text), "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    run = out["runs"][0]
    assert run["memory_kind"] == "allocated" and run["memory_measured_gib"] == 40.0
    terms = run["memory_terms_gib"]
    live = sum(terms[k] for k in ("weights", "gradients", "optimizer", "activations", "logits"))
    assert run["memory_predicted_gib"] == pytest.approx(live)
    assert run["memory_error"] == pytest.approx(live / 40.0 - 1.0)
    assert out["memory"]["runs"] == 1
    err = abs(run["memory_error"]) * 100
    tripped = cli("validate", "--data", _csv(tmp_path, text), "--max-memory-error",
                  f"{err / 2:.3f}")
    assert tripped.exit_code == 1 and "memory mean absolute error" in tripped.output


@pytest.mark.parametrize(("text", "needles"), [
    ("", ["my-runs.csv", "empty"]),
    (HEADER + "\n", ["my-runs.csv", "no runs"]),
    ("id,model\nx,y\n", ["my-runs.csv", "header", "missing column"]),
    (HEADER + ",colour\n" + GOOD + ",red\n", ["unknown column", "colour"]),
    (f"{HEADER}\n{GOOD}{',' * 9}liger\n",
     ["line 2", "column cross_entropy", "unfused, fused, te", "'liger'"]),
    (f"{HEADER}\n{GOOD.replace(',9299,', ',fast,')}\n",
     ["my-runs.csv", "line 2", "column measured", "expected a number"]),
    (f"{HEADER}\n{GOOD.replace(',4096,', ',4096.5,')}\n", ["line 2", "column seq_len"]),
    (f"{HEADER}\n{GOOD.replace(',fp8,', ',fp4,')}\n", ["column precision", "fp4"]),
    (f"{HEADER}\n{GOOD.replace('mine,qwen3-30b-a3b', 'mine,no-such-model')}\n",
     ["my-runs.csv", "line 2 (mine)", "no-such-model"]),
    (f"{HEADER}\n{GOOD}\n{GOOD}\n", ["line 3", "duplicate id"]),
    (f"{HEADER}\n{GOOD}{',' * 13}40\n", ["line 2", "column memory_kind", "together"]),
    (f"{HEADER}\n{GOOD}{',' * 13}40,rss\n",
     ["line 2", "column memory_kind", "allocated, reserved, device", "'rss'"]),
    (f"{HEADER}\n{GOOD}{',' * 13}-3,device\n", ["line 2", "column memory_gib", "positive"]),
    (f"{HEADER}\n{GOOD}{',' * 15}stack.host.op_us=5\n",
     ["line 2", "column hardware_set", "not a hardware figure"]),
    (f"{HEADER}\n{GOOD}{',' * 15}scale_out.bandwidth_gb_per_s\n",
     ["line 2", "column hardware_set", "FIELD=VALUE"]),
    (f"{HEADER}\n{GOOD}{',' * 15}scale_out.no_such=3\n",
     ["my-runs.csv", "line 2 (mine)", "scale_out.no_such"]),
    (f"{HEADER}\n{GOOD}{',' * 16}lm_head\n",
     ["line 2", "column graph_scope", "unknown graph scope 'lm_head'", "attention, router"]),
    (f"{HEADER}\n{GOOD}{',' * 16}mlp\n",
     ["my-runs.csv", "line 2 (mine)", "does not implement graph_scope mlp"]),
])
def test_bad_runs_files_get_one_line_naming_file_line_and_column(cli, tmp_path, text, needles):
    result = cli("validate", "--data", _csv(tmp_path, text))
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


# Megatron-Core r0.8.0's weak-scaling table (NVIDIA/Megatron-LM README, images/model_table.png):
# teraFLOP/s per GPU as published, by model.
MEGATRON_TABLE_TFLOPS = {"1.7b": 408.8, "7.1b": 465.9, "16b": 489.1, "32b": 459.6, "70b": 419.7,
                         "119b": 420.5, "177b": 432.8, "314b": 474.4, "462b": 459.9}


def test_megatron_table_rows_convert_back_to_the_published_teraflops():
    """Each row's tokens/s times Megatron r0.8.0's own FLOPs per token (training.py,
    num_floating_point_operations: 12 L h^2 (2 + s/h + 4 + V / (2 L h)) for a GPT with MHA,
    a 4h GeLU FFN and untied logits) gives back the table's figure."""
    rows = {r.model.removeprefix("megatron-gpt-"): r for r in load_runs()
            if r.model.startswith("megatron-gpt-")}
    assert set(rows) == set(MEGATRON_TABLE_TFLOPS)
    for size, run in rows.items():
        spec = load_model(run.model).spec
        n, h, v, s = spec.num_layers, spec.hidden_size, spec.vocab_size, run.seq_len
        flops = 12 * n * h * h * (2 + s / h + 4 + v / (2 * n * h))
        assert run.measured * flops / 1e12 == pytest.approx(MEGATRON_TABLE_TFLOPS[size], rel=2e-3)


# NeMo 25.04's long-sequence table for Llama 3 8B in FP8 on DGX-B200
# (docs/source/performance/performance_long_sequence.md @14d427f575): TFLOPS/GPU by sequence.
NEMO_LONG_TFLOPS = {8192: 1671, 16384: 1717, 32768: 1624, 65536: 1600, 131072: 1588,
                    262144: 1590, 524288: 1619, 1048576: 1608}


def test_nemo_long_sequence_rows_convert_back_to_the_published_teraflops():
    """Each row's tokens/s times NeMo's llama3 FLOPs per token (flops_formulas.py @e1335c8378:
    L h^2 (12 + 12 kv/heads + 18 ffn/h + 12 s/h + 6 V / (L h))) gives back the table."""
    rows = {r.seq_len: r for r in load_runs() if r.id.startswith("nemo-llama3-8b-b200-")}
    assert set(rows) == set(NEMO_LONG_TFLOPS)
    for s, run in rows.items():
        spec = load_model(run.model).spec
        n, h, v = spec.num_layers, spec.hidden_size, spec.vocab_size
        att, ffn = spec.attention, spec.dense_layers
        assert ffn is not None
        flops = n * h * h * (12 + 12 * att.num_kv_heads / att.num_heads
                             + 18 * ffn.ffn_width / h + 12 * s / h + 6 * v / (n * h))
        assert run.measured * flops / 1e12 == pytest.approx(NEMO_LONG_TFLOPS[s], rel=2e-3)


def test_a_run_on_a_cluster_with_shared_nics_gets_its_scale_out():
    """BigScience's runs state Jean Zay's 4 Omni-Path links per 8-GPU node: 6.25 GB/s per A100
    instead of the profile's one 25 GB/s HDR NIC per GPU; the chip of the prepared run has it."""
    from moebench.commands.validation.fitting import prepare
    from moebench.units import to_base

    runs = {r.id: r for r in load_runs()}
    bloom = runs["bloom-prequel-181b-0225-tp8-pp2-mbs1-gbs2016"]
    assert dict(bloom.hardware_set) == {"scale_out.bandwidth_gb_per_s": "6.25"}
    chip = prepare(bloom, "test").chip
    assert chip.out_bw == pytest.approx(to_base("bandwidth_gb_per_s", 6.25))
    other = prepare(runs["flagperf-llama3-8b-a800x8-tp8"], "test").chip
    assert other.out_bw == pytest.approx(to_base("bandwidth_gb_per_s", 25.0))


def test_recipe_graph_scopes_are_read_from_the_shipped_file():
    """Megatron-Bridge v0.2.0's Qwen3-30B-A3B B200 recipe captures moe_router and
    moe_preprocess only; its DeepSeek-V3 GB200 recipe also attention (the release's scope)."""
    runs = {r.id: r for r in load_runs()}
    assert runs["mbridge-qwen3-30b-b200-8-mxfp8"].options.graph_scope == ("router",)
    assert runs["mbridge-dsv3-gb200-256-mxfp8"].options.graph_scope is None


def test_a_graph_scope_from_the_command_line(cli):
    """One MoE micro-batch per step on 8 B200s (Qwen3-30B-A3B, MBS 1): with attention left
    out of the captured scope its operations are dispatched by the host again, so the step
    can only grow; a scope without partial graphs is refused in one line."""
    import json

    args = ("estimate", "--model", "qwen3-30b-a3b", "--chip", "b200", "--num-chips", "8",
            "--stack", "megatron-core-nvidia@25.11", "--tp", "1", "--pp", "1", "--ep", "8",
            "--micro-batch", "1", "--recompute", "none", "--precision", "fp8",
            "--global-batch", "512", "--seq-len", "4096", "--graphs", "partial")
    wide = json.loads(cli(*args, "--graph-scope", "attention,router", "--format",
                          "json").output)["step_time_s"]
    narrow = json.loads(cli(*args, "--graph-scope", "router", "--format", "json").output)
    assert narrow["step_time_s"] > 1.1 * wide
    # The release's recipe for this model on B200 captures the router only (v0.2.0
    # QWEN3_30B_A3B_B200_*): given partial graphs alone, the run takes that scope.
    recipe = json.loads(cli(*args, "--format", "json").output)["step_time_s"]
    assert recipe == narrow["step_time_s"]
    # On H100 at FP8 the recipe runs no graphs (QWEN3_30B_A3B_H100_FP8_CS): a scope alone is
    # refused there.
    on_h100 = tuple("h100" if a == "b200" else a for a in args[:-2])
    refused = cli(*on_h100, "--graph-scope", "router")
    assert refused.exit_code == 2 and "give --graphs partial" in refused.output
    assert len([ln for ln in refused.output.splitlines() if ln.strip()]) == 1


def test_a_run_as_published_keeps_its_plan_and_leaves_the_settings():
    """Megatron-Bridge 26.06, DeepSeek-V3 on 256 GB300: the table gives TP1 PP2 VP8 EP32,
    MBS 1, the layout its recipe names; the dispatcher a source names stays, graphs, overlap
    and sync-free go back to the release (and its platform), expert TP to the search."""
    run = {r.id: r for r in load_runs()}["mbridge2606-dsv3-gb300-256-mxfp8"]
    pub = run.as_published()
    assert (pub.plan.tp, pub.plan.pp, pub.plan.vpp, pub.plan.ep, pub.plan.micro_batch) == (
        1, 2, 8, 32, 1)
    assert pub.plan.pipeline_layout == run.plan.pipeline_layout == "Et*4|(t*4|)*14tmL"
    assert pub.plan.etp is None and run.plan.etp == 1
    assert pub.options.dispatcher == "hybridep"
    assert (pub.options.graphs, pub.options.ep_overlap, pub.options.sync_free) == (
        None, None, None)
    assert (run.options.graphs, run.options.ep_overlap, run.options.sync_free) == (
        "full", True, True)
