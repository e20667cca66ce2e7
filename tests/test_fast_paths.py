"""Shortcuts taken for speed give exactly what the plain path gives."""

from __future__ import annotations

import os

import numpy as np
import pytest

from moebench.engine.memory_ranks import memory_per_chip
from moebench.engine.plan import PlanRequest
from moebench.engine.plan_space import candidate_plans
from moebench.engine.state import rank_params
from moebench.engine.step import build_context, memory_of, recompute_block
from moebench.inputs.hardware import load_chip
from moebench.inputs.model import load_model
from moebench.inputs.run import RECOMPUTE_SEARCHED, RunConfig
from moebench.inputs.stack import load_stack
from moebench.inputs.yamlio import load_mapping


@pytest.mark.parametrize(("model", "chip", "chips", "seq"), [
    ("deepseek-v3", "h800", 256, 4096),
    ("mixtral-8x7b", "ascend-910b", 64, 32768),
    ("llama-3-70b", "mi300x", 64, 8192),
])
def test_memory_per_recompute_block_equals_the_plain_memory_model(model, chip, chips, seq):
    """memory_of computes each plan's training state once and its activations per recompute
    option; the plain model over every row gives the same bytes, field by field."""
    arch, c = load_model(model), load_chip(chip)
    stack = load_stack(None, c.vendor, c.name, c.default_stack)
    run = RunConfig(seq_len=seq, global_batch=512)
    plans, _ = candidate_plans(arch, c, run, chips, PlanRequest())
    assert recompute_block(plans) == len(RECOMPUTE_SEARCHED)
    fast = memory_of(arch, c, stack, run, plans)
    ctx = build_context(arch, c, stack, run, plans)
    plain = memory_per_chip(ctx, rank_params(ctx))
    for field in fast.__dataclass_fields__:
        np.testing.assert_allclose(getattr(fast, field), getattr(plain, field), rtol=1e-12)


def test_recompute_block_refuses_rows_that_are_not_whole_groups():
    arch, c = load_model("mixtral-8x7b"), load_chip("h100")
    run = RunConfig(seq_len=4096, global_batch=64)
    plans, _ = candidate_plans(arch, c, run, 8, PlanRequest())
    assert recompute_block(plans.take(np.arange(1, len(plans)))) == 1  # a group cut short
    assert recompute_block(plans.take(np.arange(0, len(plans), 4))) == 1  # one option each
    fixed, _ = candidate_plans(arch, c, run, 8, PlanRequest(recompute="full"))
    assert recompute_block(fixed) == 1


def test_a_profile_is_parsed_once_and_each_caller_gets_its_own_copy(tmp_path):
    """The cache keys on the file's bytes: a rewrite of the same size within the file
    system's time granularity is still read again."""
    path = tmp_path / "p.yaml"
    path.write_text("a: {value: 1}\n")
    first = load_mapping(path)
    first["a"]["value"] = 99  # a caller changing its copy changes nothing for the next
    assert load_mapping(path) == {"a": {"value": 1}}
    st = path.stat()
    path.write_text("a: {value: 2}\n")  # rewritten, same size, same modification time
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert load_mapping(path) == {"a": {"value": 2}}


def test_validated_profiles_are_built_once_per_content_and_overrides(tmp_path):
    from moebench.inputs import catalog
    from moebench.inputs.hardware import load_spec

    path = catalog.resolve("hardware", "h100", "--chip")
    assert load_spec(path) is load_spec(path)
    faster = load_spec(path, {"memory.hbm_bandwidth_tb_per_s": "4"})
    assert faster is not load_spec(path) and faster.memory.hbm_bandwidth_tb_per_s.value == 4.0
    assert load_spec(path).memory.hbm_bandwidth_tb_per_s.value == 3.35
    copy = tmp_path / "h100.yaml"
    copy.write_text(path.read_text())
    first = load_spec(copy)
    copy.write_text(path.read_text().replace("name: h100", "name: h100-copy", 1))
    assert load_spec(copy) is not first and load_spec(copy).name == "h100-copy"


def test_the_allocator_setting_applies_on_glibc_only():
    import platform

    from moebench.cli.alloc import keep_freed_memory

    on_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() == on_glibc
