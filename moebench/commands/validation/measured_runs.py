"""Measured training runs (``profiles/validation/measured-runs.csv`` or a user's own file).

One row per published (or logged) run: its model, chip and count, plan, software settings and
one measured figure. Rows are validated once, here, into :class:`MeasuredRun` records; a
malformed file gets one line naming the file, the row and the column.

Columns (empty cells: plan fields are searched, settings take the stack's default):
``id, model, chip, num_chips, precision, tp, pp, vpp, ep, etp, cp, micro_batch, recompute,
schedule, ep_overlap, seq_len, global_batch, metric, measured, production, stack, dispatcher,
graphs, sync_free, tp_overlap, capacity_factor, expert_imbalance, source, notes``, and optionally
``sharding, shard_group, optimizer_states, cp_kind, recompute_modules`` (selective recompute's
modules, e.g. ``moe_act`` or ``"layernorm,moe_act"``; recompute then selective or empty),
``optimizer_offload``, ``offload_modules`` (activation offload: modules, or none; empty is
none, since a run that offloads activations names the flag), ``dp_overlap`` (false: the
script lacks --overlap-grad-reduce and --overlap-param-gather; empty: the stack's default),
``cross_entropy`` (unfused, fused or te: the loss implementation; empty: the stack's),
``graph_scope`` (what partial graphs captured, e.g. ``router``, as the run's recipe says;
empty: all the release can), ``sequence_parallel`` and ``grouped_gemm`` (Megatron's
--sequence-parallel and --moe-grouped-gemm, true or false; empty: the release's default) and
``pipeline_layout`` (:mod:`moebench.engine.layout`: even,
balanced, a Megatron layout string, layers per rank or first=N,last=M; empty: the release's
default), and
for validation by source and date: ``source_id`` (one slug per publication or table: its runs are
left out together; empty: the run's ``source`` text), ``published`` (YYYY-MM-DD, when the figure
was first published) and ``sweep`` (a slug shared by the runs of one published plan sweep: same
source, model, chip and cluster size, different plans), and for memory validation
``memory_gib`` (the published peak memory per device, GiB) with ``memory_kind`` (allocated,
reserved or device: :data:`MEMORY_KINDS`), ``routing`` (contiguous: a benchmark's fake gate
giving each token consecutive experts; empty: random), ``pipeline_flushes`` (pipeline schedule
runs per step; empty: one), and ``hardware_set``: figures of the cluster the
source states apart from the chip's profile, ``section.field=value`` pairs separated by ``;``
as ``--set`` takes them (e.g. ``scale_out.bandwidth_gb_per_s=6.25`` for a node whose NICs are
shared by its GPUs), with their source in ``notes``. ``stack`` names the run's framework
release, ``family@release``; a bare family is its newest release, empty the chip's default.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from moebench.commands.shared.options import graph_scope_choice
from moebench.commands.shared.setup import split_overrides
from moebench.commands.validation.csv_row import CsvRow
from moebench.commands.validation.measured_run import FASTER_IS_LARGER, MEMORY_KINDS, MeasuredRun
from moebench.engine.plan import PlanRequest
from moebench.errors import InputError
from moebench.inputs import catalog
from moebench.inputs.overrides import parse_overrides
from moebench.inputs.run import (
    CP_KINDS,
    OPTIMIZER_STATES,
    RECOMPUTE,
    ROUTINGS,
    SCHEDULES,
    SHARDING,
    parse_modules,
    parse_offload_modules,
)
from moebench.inputs.stack import CROSS_ENTROPY, DISPATCHERS, GRAPHS, StackOptions
from moebench.inputs.yamlio import read_text
from moebench.units import to_base

REQUIRED = ("id", "model", "chip", "num_chips", "precision", "seq_len", "global_batch",
            "metric", "measured", "source")
OPTIONAL = ("tp", "pp", "vpp", "ep", "etp", "cp", "micro_batch", "recompute", "schedule",
            "ep_overlap", "production", "stack", "dispatcher", "graphs", "sync_free", "tp_overlap",
            "capacity_factor", "expert_imbalance", "notes", "sharding", "shard_group",
            "optimizer_states", "cp_kind", "recompute_modules", "optimizer_offload",
            "pipeline_layout", "offload_modules", "dp_overlap", "cross_entropy", "source_id",
            "published", "sweep", "memory_gib", "memory_kind", "hardware_set", "graph_scope",
            "sequence_parallel", "grouped_gemm", "routing", "pipeline_flushes")
PLAN_INTS = ("tp", "pp", "vpp", "ep", "etp", "cp", "micro_batch")
FLAG_SETTINGS = ("sync_free", "tp_overlap", "ep_overlap", "dp_overlap", "sequence_parallel",
                 "grouped_gemm")


def _offload_modules(r: CsvRow) -> tuple[str, ...] | None:
    """The offload_modules column: modules, or none. Empty is none, not searched: activation
    offload is a flag a run's published settings name (--fine-grained-activation-offloading),
    and a run that does not name it did not offload."""
    text = r.text("offload_modules")
    if text is None:
        return ()
    try:
        return parse_offload_modules(text, "offload_modules")
    except InputError as exc:
        raise r._err("offload_modules", exc.message) from None


def _graph_scope(r: CsvRow) -> tuple[str, ...] | None:
    """The graph_scope column: what the run's partial graphs captured (None: all they can)."""
    try:
        return graph_scope_choice(r.text("graph_scope"), "graph_scope")
    except InputError as exc:
        raise r._err("graph_scope", exc.message) from None


def _layout_text(r: CsvRow) -> str | None:
    """The pipeline_layout column, its form checked (against the model when it runs)."""
    from moebench.engine.layout import layout_syntax_error

    text = r.text("pipeline_layout")
    problem = None if text is None else layout_syntax_error(text)
    if problem:
        raise r._err("pipeline_layout", problem)
    return text


def _hardware_set(r: CsvRow) -> tuple[tuple[str, str], ...]:
    """The hardware_set column: hardware figures only (a stack or run figure set per run would
    be a knob, not a fact about the cluster): ``--set``'s own routing decides which is which."""
    text = r.text("hardware_set")
    if text is None:
        return ()
    try:
        pairs = parse_overrides([p for p in text.split(";") if p.strip()])
        hardware = split_overrides(pairs).hardware
    except InputError as exc:
        raise r._err("hardware_set", exc.message) from None
    for key in pairs:
        if key not in hardware:
            raise r._err("hardware_set", f"{key} is not a hardware figure; give section.field "
                                         "of the chip profile, e.g. scale_out.bandwidth_gb_per_s")
    return tuple(pairs.items())


def _run(r: CsvRow) -> MeasuredRun:
    metric = r.choice("metric", tuple(FASTER_IS_LARGER), required=True) or ""
    precision = r.choice("precision", ("bf16", "fp8"), required=True) or ""
    recompute = r.choice("recompute", RECOMPUTE)
    schedule = r.choice("schedule", SCHEDULES)
    ints: dict[str, Any] = {k: r.integer(k) for k in PLAN_INTS}
    modules_text = r.text("recompute_modules")
    try:
        modules = None if modules_text is None else parse_modules(modules_text)
    except InputError as exc:
        raise r._err("recompute_modules", exc.message) from None
    if modules is not None and recompute not in (None, "selective"):
        raise r._err("recompute_modules", f"modules are selective recompute, not {recompute}")
    plan = PlanRequest(**ints, recompute=recompute, schedule=schedule,
                       recompute_modules=modules,
                       sharding=r.choice("sharding", SHARDING),
                       shard_group=r.integer("shard_group"),
                       cp_kind=r.choice("cp_kind", CP_KINDS),
                       optimizer_offload=r.fraction("optimizer_offload"),
                       pipeline_layout=_layout_text(r),
                       offload_modules=_offload_modules(r))
    imbalance = r.number("expert_imbalance") or 1.0
    if imbalance < 1.0:
        raise r._err("expert_imbalance", f"must be at least 1.0, got {imbalance}")
    states = r.choice("optimizer_states", OPTIMIZER_STATES)  # None: the release's default
    return MeasuredRun(
        optimizer_states=states, id=r.required("id"), model=r.required("model"),
        chip=r.required("chip"),
        num_chips=int(r.integer("num_chips", required=True) or 0), precision=precision,
        plan=plan, seq_len=int(r.integer("seq_len", required=True) or 0),
        global_batch=int(r.integer("global_batch", required=True) or 0),
        stack=r.text("stack"),
        options=StackOptions(dispatcher=r.choice("dispatcher", DISPATCHERS),
                             graphs=r.choice("graphs", GRAPHS), graph_scope=_graph_scope(r),
                             cross_entropy=r.choice("cross_entropy", CROSS_ENTROPY),
                             **{k: r.flag(k) for k in FLAG_SETTINGS}),
        capacity_factor=r.number("capacity_factor"), expert_imbalance=imbalance,
        routing=r.choice("routing", ROUTINGS) or "random",
        pipeline_flushes=int(r.integer("pipeline_flushes") or 1),
        metric=metric, measured=float(r.number("measured", required=True) or 0.0),
        production=bool(r.flag("production")), source=r.required("source"),
        source_id=r.text("source_id") or r.required("source"), published=r.date("published"),
        sweep=r.text("sweep"), row=r.line, hardware_set=_hardware_set(r), **_memory(r),
    )


def _memory(r: CsvRow) -> dict[str, Any]:
    """The published peak memory (GiB to bytes) and what it counts, given together."""
    gib, kind = r.number("memory_gib"), r.choice("memory_kind", MEMORY_KINDS)
    if (gib is None) != (kind is None):
        missing = "memory_kind" if kind is None else "memory_gib"
        raise r._err(missing, "give memory_gib and memory_kind together (memory_kind: "
                              f"{', '.join(MEMORY_KINDS)})")
    return {"memory_bytes": None if gib is None else to_base("memory_gib", gib),
            "memory_kind": kind}


def shipped_runs_path() -> Path:
    return catalog.catalog_dir("validation") / "measured-runs.csv"


def load_runs(path: Path | None = None) -> list[MeasuredRun]:
    """Every run of a measured-runs CSV, validated; an InputError names the first bad cell."""
    path = path or shipped_runs_path()
    where = str(path)
    text = read_text(path)
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if not header:
        raise InputError(where, None, "is empty; expected a CSV header line and runs")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(where, "header", f"missing column(s) {', '.join(missing)}")
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    if unknown:
        raise InputError(where, "header", f"unknown column(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(REQUIRED + OPTIONAL)}")
    runs, seen = [], set()
    for i, cells in enumerate(reader, start=2):
        if None in cells:
            raise InputError(where, f"line {i}", "has more cells than the header")
        run = _run(CsvRow(cells, where, i))
        if run.id in seen:
            raise InputError(where, f"line {i}, column id", f"duplicate id {run.id!r}")
        seen.add(run.id)
        runs.append(run)
    if not runs:
        raise InputError(where, None, "has a header but no runs")
    return runs

