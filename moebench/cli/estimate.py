"""``moebench estimate`` and ``moebench explain``: one model, chip and cluster."""

from __future__ import annotations

from moebench.cli.app import app
from moebench.cli.common import (
    CapacityOpt,
    ChipOpt,
    ChipsOpt,
    CpKindOpt,
    CpOpt,
    DispatcherOpt,
    EpOpt,
    EtpOpt,
    FormatOpt,
    FsdpOpt,
    GbOpt,
    GraphsOpt,
    ImbOpt,
    JobSeqLenOpt,
    MbOpt,
    ModelOpt,
    OomOpt,
    OptStatesOpt,
    OutputOpt,
    OverlapOpt,
    PpOpt,
    PrecOpt,
    RcOpt,
    ScenarioOpt,
    SchedOpt,
    SetOpt,
    ShardGroupOpt,
    StackOpt,
    TpOpt,
    VppOpt,
    ZeroOpt,
    _inputs,
    cli_errors,
    console,
    sharding_choice,
    show,
)
from moebench.commands.report import OutputFormat


@app.command()
@cli_errors
def estimate(
    chip: ChipOpt, model: ModelOpt = None, num_chips: ChipsOpt = None,
    scenario: ScenarioOpt = None,
    tp: TpOpt = None, pp: PpOpt = None, vpp: VppOpt = None, ep: EpOpt = None,
    etp: EtpOpt = None, cp: CpOpt = None, cp_kind: CpKindOpt = None,
    micro_batch: MbOpt = None, recompute: RcOpt = None, schedule: SchedOpt = None,
    seq_len: JobSeqLenOpt = None, global_batch: GbOpt = None, precision: PrecOpt = None,
    ep_overlap: OverlapOpt = None, expert_imbalance: ImbOpt = None, allow_oom: OomOpt = False,
    stack: StackOpt = None, dispatcher: DispatcherOpt = None, graphs: GraphsOpt = None,
    capacity_factor: CapacityOpt = None, zero: ZeroOpt = None, fsdp: FsdpOpt = False,
    shard_group: ShardGroupOpt = None, optimizer_states: OptStatesOpt = None,
    set_: SetOpt = None, fmt: FormatOpt = None, output: OutputOpt = None,
) -> None:
    """Predict step time, throughput, MFU and memory for one model, chip and cluster.

    Plan flags given are honoured exactly; the rest are searched.

    Example: moebench estimate --model deepseek-v3 --chip h800 --num-chips 2048
    --pp 16 --ep 64 --tp 1 --precision fp8 --global-batch 15360 --schedule dualpipe;
    moebench estimate --scenario ling-plus-1t --chip ascend-910b (a compare row, alone)
    """
    from moebench.commands.estimate import estimate as run_estimate
    from moebench.commands.estimate_report import estimate_report

    job, num_chips = _inputs(
        scenario, model, chip, num_chips, set_, stack, seq_len=seq_len,
        global_batch=global_batch, precision=precision, ep_overlap=ep_overlap,
        expert_imbalance=expert_imbalance, dispatcher=dispatcher, graphs=graphs,
        capacity_factor=capacity_factor, tp=tp, pp=pp, vpp=vpp, ep=ep, etp=etp, cp=cp,
        micro_batch=micro_batch, recompute=recompute, schedule=schedule,
        sharding=sharding_choice(zero, fsdp, shard_group), shard_group=shard_group,
        optimizer_states=optimizer_states, cp_kind=cp_kind)
    est, _ = run_estimate(job.arch, job.chip, job.stack, job.run, num_chips, job.request,
                          allow_oom=allow_oom)
    show(estimate_report(est, job.overrides.shown), fmt, output)


@app.command()
@cli_errors
def explain(
    chip: ChipOpt, model: ModelOpt = None, num_chips: ChipsOpt = None,
    scenario: ScenarioOpt = None,
    tp: TpOpt = None, pp: PpOpt = None, vpp: VppOpt = None, ep: EpOpt = None,
    etp: EtpOpt = None, cp: CpOpt = None, cp_kind: CpKindOpt = None,
    micro_batch: MbOpt = None, recompute: RcOpt = None, schedule: SchedOpt = None,
    seq_len: JobSeqLenOpt = None, global_batch: GbOpt = None, precision: PrecOpt = None,
    ep_overlap: OverlapOpt = None, expert_imbalance: ImbOpt = None, allow_oom: OomOpt = False,
    stack: StackOpt = None, dispatcher: DispatcherOpt = None, graphs: GraphsOpt = None,
    capacity_factor: CapacityOpt = None, zero: ZeroOpt = None, fsdp: FsdpOpt = False,
    shard_group: ShardGroupOpt = None, optimizer_states: OptStatesOpt = None,
    set_: SetOpt = None, fmt: FormatOpt = None, output: OutputOpt = None,
) -> None:
    """Why the chosen plan wins and where its time and memory go, with sensitivities.

    Shows the step time split into compute, exposed communication by kind and link level,
    bubble and overhead; memory against capacity; the runners-up and why they lost; and how
    much a 10% better figure (FLOP/s, HBM, links, capacity) would speed the step up.

    Example: moebench explain --model ling-plus --chip h800 --num-chips 1024
    --set scale_out.bandwidth_gb_per_s=100
    """
    from moebench.commands.estimate import estimate as run_estimate
    from moebench.commands.explain import explain as build
    from moebench.commands.explain_report import explanation_report, rich_view

    job, num_chips = _inputs(
        scenario, model, chip, num_chips, set_, stack, seq_len=seq_len,
        global_batch=global_batch, precision=precision, ep_overlap=ep_overlap,
        expert_imbalance=expert_imbalance, dispatcher=dispatcher, graphs=graphs,
        capacity_factor=capacity_factor, tp=tp, pp=pp, vpp=vpp, ep=ep, etp=etp, cp=cp,
        micro_batch=micro_batch, recompute=recompute, schedule=schedule,
        sharding=sharding_choice(zero, fsdp, shard_group), shard_group=shard_group,
        optimizer_states=optimizer_states, cp_kind=cp_kind)
    _, result = run_estimate(job.arch, job.chip, job.stack, job.run, num_chips, job.request,
                             allow_oom=allow_oom)
    ex = build(result, job)
    if fmt in (None, OutputFormat.table) and output is None:
        console().print(rich_view(ex))
    else:
        show(explanation_report(ex), fmt, output)

