"""The release that implements every feature moebench models: the plan space itself, for code
that studies the space rather than a stack (every stack's search passes its own release)."""

from __future__ import annotations

import datetime

from moebench.inputs.release import Capabilities, Release, cap_values


def _everything() -> Release:
    """A release implementing every feature moebench models: the plan space itself, for code
    that studies the space rather than a stack (every stack's search passes its release)."""
    caps = Capabilities(
        schedules=("1f1b", "dualpipe", "zb1p", "dualpipev"), virtual_pipeline=True,
        dispatchers=("alltoall", "allgather", "deepep", "hybridep"),
        sharding=("zero-0", "zero-1", "zero-2", "zero-3", "hsdp"), optimizer_offload=True,
        activation_offload=("attn_norm", "qkv_linear", "core_attn", "attn_proj", "mlp_norm",
                            "expert_fc1", "moe_act"),
        graphs=("none", "partial", "full"), partial_graph_scope=("attention", "router", "shared"),
        ep_overlap=True, tp_overlap=True, dp_overlap=True, pp_overlap=True,
        cp_kinds=("ring", "ulysses"), expert_tp=True, cross_entropy=("unfused", "fused", "te"),
        sync_free=True, dispatch_fp8=True, moe=True, sequence_parallel=True,
        grouped_gemm=True, recompute=("none", "selective", "full"), moe_tp_cp=True)
    defaults = {"schedule": "1f1b", "dispatcher": "alltoall", "ep_overlap": False,
                "tp_overlap": True, "dp_overlap": True, "pp_overlap": True, "graphs": "none",
                "cross_entropy": "fused", "pipeline_layout": "balanced", "dispatch_fp8": False,
                "sync_free": False, "offload_modules": ("core_attn", "attn_proj", "expert_fc1"),
                "optimizer_states": "fp32", "probs_in_activation": True, "swiglu_fp8_store": False,
                "main_grads": "fp32", "sequence_parallel": True, "flash_attention": True,
                "keeps_stage_outputs": False, "grouped_gemm": True, "fp8_weight_cache": True,
                "mla_attention_pad": "none", "fused_attention_head_dim": {}}
    why = "moebench: the plan space with every feature any framework implements"
    return Release(family="any", name="everything", date=datetime.date(2026, 12, 1),
                   framework="every framework together", source=why, caps=caps,
                   defaults=defaults,
                   sources={**{f"implements.{k}": why for k in cap_values(caps)},
                            **{f"defaults.{k}": why for k in defaults}}, refit={})


EVERYTHING = _everything()
