"""What every command shares: output options, one-line errors, rendering."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from moebench.commands.shared.report import OutputFormat, Report, emit
from moebench.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


def console() -> Console:
    """Standard output: a terminal's own width, else COLUMNS, else room for the widest table
    (so piped output is not cut to 80 columns)."""
    columns = os.environ.get("COLUMNS", "")
    width = None if sys.stdout.isatty() else int(columns) if columns.isdigit() else 200
    return Console(soft_wrap=False, width=width)

FormatOpt = Annotated[OutputFormat | None, typer.Option(
    "--format", "-f", help="Output: table, json, csv, markdown or parquet (default: the "
                           "--output file's extension, else table).", case_sensitive=False)]
OutputOpt = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Write to this file (whole or not at all) instead of stdout, as its "
                           "extension says: .csv, .json, .md, .parquet; else a text table.",
    dir_okay=False)]


def cli_errors(func: F) -> F:
    """Turn library errors into one line on stderr and exit code 2; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            typer.echo(f"error: {exc.one_line()}", err=True)
            raise typer.Exit(2) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence at the edge
            if os.environ.get("MOEBENCH_DEBUG"):
                raise
            typer.echo(f"error: internal error, please report: {type(exc).__name__}: {exc}",
                       err=True)
            raise typer.Exit(3) from None

    return wrapper  # type: ignore[return-value]


def show(report: Report, fmt: OutputFormat | None, output: Path | None = None) -> None:
    emit(report, fmt, output, console())


SeqLenOpt = Annotated[int, typer.Option("--seq-len", help="Tokens per sequence.")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", help="Catalog name or path (default: the --scenario's).")]
ChipOpt = Annotated[str, typer.Option(
    "--chip", "-c", help="Catalog name or hardware YAML; CHIP:STACK for the chip on a named "
                         "stack release.")]
ChipsOpt = Annotated[int | None, typer.Option(
    "--num-chips", "-n", help="Chips in the cluster (default: the --scenario's).")]
JobSeqLenOpt = Annotated[int | None, typer.Option(
    "--seq-len", help="Tokens per sequence (default: the --scenario's, else 4096).")]
ScenarioOpt = Annotated[str | None, typer.Option(
    "--scenario", help="Take model, cluster size, batch, precision, plan and stack options "
                       "from a scenario, as compare runs it; options given win.")]
TpOpt = Annotated[int | None, typer.Option(
    "--tp", help="Tensor parallel size (searched if omitted).")]
PpOpt = Annotated[int | None, typer.Option("--pp", help="Pipeline stages.")]
VppOpt = Annotated[int | None, typer.Option("--vpp", help="Virtual stages per pipeline rank.")]
EpOpt = Annotated[int | None, typer.Option("--ep", help="Expert parallel size.")]
EtpOpt = Annotated[int | None, typer.Option(
    "--etp", help="Tensor parallel size inside experts: a power of two dividing the "
             "ranks per stage (searched: 1 up to --tp).")]
CpOpt = Annotated[int | None, typer.Option("--cp", help="Context parallel size.")]
CpKindOpt = Annotated[str | None, typer.Option(
    "--cp-kind", help="Context parallelism: ring (K/V passed round, overlapped with attention) "
                      "or ulysses (all-to-all by heads); searched from 32K-token sequences.")]
MbOpt = Annotated[int | None, typer.Option("--micro-batch", help="Sequences per micro-batch.")]
RcOpt = Annotated[str | None, typer.Option("--recompute", help="none, selective or full.")]
RcModulesOpt = Annotated[str | None, typer.Option(
    "--recompute-modules", help="Selective recompute of these modules, comma-separated (as "
    "Megatron-Core's --recompute-modules): core_attn, moe_act, layernorm, mla_up_proj, mlp, moe, "
    "shared_experts; selective alone is layernorm,moe_act,mla_up_proj.")]
OffloadModulesOpt = Annotated[str | None, typer.Option(
    "--offload-modules", help="Activation offload (Megatron-LM --fine-grained-activation-"
    "offloading --offload-modules): modules whose saved inputs wait in host memory, comma-"
    "separated: attn_norm, qkv_linear, core_attn, attn_proj, mlp_norm, expert_fc1, moe_act; "
    "or none. Searched: none, or the stack's own modules (its overlap.activation_offload) "
    "where a plan needs them to fit.")]
SchedOpt = Annotated[str | None, typer.Option(
    "--schedule", help="1f1b (interleaved when --vpp > 1), dualpipe, zb1p (zero-bubble "
                       "ZB-H1: bubble (p-1)/3 micro-batches) or dualpipev (DualPipe cut in "
                       "half: two stages per rank, one copy of the weights, needs "
                       "micro-batches >= 2 x pp).")]
GbOpt = Annotated[int | None, typer.Option(
    "--global-batch", help="Sequences per optimizer step (default: scenario's, else 4096).")]
PrecOpt = Annotated[str | None, typer.Option(
    "--precision", help="bf16, fp8 or auto (default: scenario's, else bf16).")]
OverlapOpt = Annotated[bool | None, typer.Option(
    "--ep-overlap/--no-ep-overlap", help="Overlap MoE all-to-all with compute under 1F1B.")]
ImbOpt = Annotated[float | None, typer.Option(
    "--expert-imbalance",
    help="Busiest expert-parallel rank's load over the mean (at least 1.0).")]
OomOpt = Annotated[bool, typer.Option("--allow-oom", help="Show a plan even if it does not fit.")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a hardware, stack or run figure: scale_out.bandwidth_gb_per_s=100, "
                  "stack.host.op_us=10, run.expert_imbalance=1.2.")]


SearchOpt = Annotated[str | None, typer.Option(
    "--search", help="Settings to search instead of taking the stack release's defaults, "
                     "comma-separated: schedule, dispatcher, ep_overlap, tp_overlap, dp_overlap, "
                     "pp_overlap, graphs, cross_entropy, layout, dispatch_fp8, sync_free; "
                     "overlaps; all. Only what the release implements is tried.")]
SettingsOpt = Annotated[str | None, typer.Option(
    "--settings", help="Settings the run used, NAME=VALUE comma-separated (the rest take the "
                       "stack release's defaults): tp_overlap, dp_overlap, pp_overlap, "
                       "ep_overlap, sequence_parallel, grouped_gemm, sync_free, dispatch_fp8 "
                       "(on or off); cross_entropy (unfused, fused, te); dispatcher; graphs. E.g. "
                       "tp_overlap=off,sequence_parallel=on.")]
StackOpt = Annotated[str | None, typer.Option(
    "--stack", help="Software stack: catalog name or YAML (default: the chip's own).")]
EveryChipStackOpt = Annotated[str | None, typer.Option(
    "--stack", help="Run every chip that names no stack of its own (CHIP, not CHIP:STACK) on "
                    "this stack: catalog name or YAML, e.g. hardware-limit (default: each "
                    "chip's own).")]
DispatcherOpt = Annotated[str | None, typer.Option(
    "--dispatcher", help="MoE token dispatcher: alltoall, allgather, deepep or hybridep "
                         "(default: the stack's).")]
GraphsOpt = Annotated[str | None, typer.Option(
    "--graphs", help="Graph capture: none, partial or full (default: the stack's).")]
GraphScopeOpt = Annotated[str | None, typer.Option(
    "--graph-scope", help="What partial graphs capture, comma-separated: attention, router, "
                          "dispatch, shared, mlp (default: every scope the stack release "
                          "captures; a run's recipe may capture fewer, e.g. router).")]
ZeroOpt = Annotated[int | None, typer.Option(
    "--zero", help="Shard training state over data parallelism: 0 none (DDP), 1 optimizer "
                   "states (Megatron's distributed optimizer), 2 + gradients, 3 + parameters "
                   "(searched if omitted).")]
FsdpOpt = Annotated[bool, typer.Option(
    "--fsdp", help="Fully shard parameters, gradients and optimizer states (FSDP2, = --zero 3; "
                   "hybrid with --shard-group).")]
ShardGroupOpt = Annotated[int | None, typer.Option(
    "--shard-group", help="Hybrid sharding (HSDP): shard within groups of N data-parallel "
                          "ranks, replicate across them.")]
OptOffloadOpt = Annotated[float | None, typer.Option(
    "--optimizer-offload", help="Fraction of the optimizer states (FP32 master and Adam moments) "
                                "kept in host memory and stepped on the CPU, 0 to 1 (Megatron-"
                                "Core --optimizer-cpu-offload --optimizer-offload-fraction; "
                                "searched: 0 and 1).")]
LayoutOpt = Annotated[str | None, typer.Option(
    "--pipeline-layout", help="Layers per pipeline rank: balanced (searched: the LM head, loss "
                              "and MTP take the place of layers), even (Megatron's default "
                              "split), a Megatron layout string such as 'Et*3|(tt|)*29m|L', "
                              "layers per rank '4,8,8,6', or first=N,last=M.")]
OptStatesOpt = Annotated[str | None, typer.Option(
    "--optimizer-states",
    help="Adam moment precision: fp32 (default), bf16 (BF16 moments, FP32 master) or pure-bf16 "
         "(BF16 weights stepped in place: no FP32 master, BF16 gradients).")]


CapacityOpt = Annotated[float | None, typer.Option(
    "--capacity-factor", help="Drop-and-pad routing at this capacity (default: dropless).")]


FabricOpt = Annotated[str | None, typer.Option(
    "--fabric", help="Mixes: the network between chip types, a fabric profile name or YAML "
                     "(default: roce-400g-wan-100g).")]
PlacementOpt = Annotated[str | None, typer.Option(
    "--placement", help="Mixes: same-site (cross-type traffic on the shared fabric) or "
                        "separate-sites (on the WAN).")]
SyncEveryOpt = Annotated[int | None, typer.Option(
    "--sync-every", help="Mixes, local SGD: steps between outer synchronizations (default 100).")]
StrategyOpt = Annotated[str | None, typer.Option(
    "--strategy", help="Mixes: auto (the best synchronous strategy), hetero-dp, "
                       "hetero-pipeline or local-sgd.")]
ChooseOpt = Annotated[str | None, typer.Option(
    "--choose", help="Mixes: pick the fastest or the cheapest strategy (default fastest).")]


