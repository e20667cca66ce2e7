"""Reports for the inspection commands: profiles list/show/check, models list/show."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from moebench.commands.shared.report import Report
from moebench.engine.model_flops import model_flops_per_token
from moebench.errors import InputError
from moebench.inputs import catalog
from moebench.inputs.hardware import HardwareSpec, fp8_consistent, load_spec
from moebench.inputs.model import ModelArch, ModelSpec
from moebench.inputs.schema import Figure, ShareFigure, validation_problems
from moebench.inputs.yamlio import load_mapping
from moebench.units import GIB, to_base


def _val(fig: Any) -> float | None:
    return None if fig is None else fig.value


def hardware_list() -> Report:
    rows = []
    for name in catalog.catalog_names("hardware"):
        s = load_spec(catalog.resolve("hardware", name, "profile"))
        c, m, up, out, price = s.compute, s.memory, s.scale_up, s.scale_out, s.price
        rows.append({
            "name": s.name, "chip": s.display_name, "vendor": s.vendor,
            "bf16_tflops": c.bf16_dense_tflops.value, "fp8_tflops": _val(c.fp8_dense_tflops),
            # GiB, as nvidia-smi, torch and every memory figure of moebench's reports show it
            "hbm_gib": round(to_base("hbm_capacity_gb", m.hbm_capacity_gb.value) / GIB, 1),
            "hbm_tb_per_s": m.hbm_bandwidth_tb_per_s.value,
            "scale_up_gb_per_s": up.bandwidth_gb_per_s.value, "domain": int(up.domain_size.value),
            "scale_out_gb_per_s": out.bandwidth_gb_per_s.value, "tdp_w": s.power.chip_tdp_w.value,
            "rental_per_hour": price.rental_per_chip_hour.value,
            "currency": price.rental_per_chip_hour.currency,
            "ling_device": s.ling_device.device if s.ling_device else None,
        })
    df = pd.DataFrame(rows)
    return Report("Hardware profiles", df, {"hardware": rows},
                  ["TFLOPS are dense (no sparsity); link bandwidths per chip, one direction.",
                   "Ling devices are inferred matches, not stated by Ant."],
                  optional=("chip", "currency", "ling_device", "tdp_w", "vendor", "domain",
                            "rental_per_hour", "scale_out_gb_per_s", "fp8_tflops"))


def figure_row(path: str, fig: Figure) -> dict[str, Any]:
    """One table row for a sourced figure: its value, kind, interval and source."""
    return {"field": path, "value": fig.value, "currency": getattr(fig, "currency", None),
            "kind": fig.kind, "low": fig.low, "high": fig.high, "source": fig.source}


def _figures(node: BaseModel, prefix: str = "") -> list[dict[str, Any]]:
    rows = []
    for name in type(node).model_fields:
        value = getattr(node, name)
        path = f"{prefix}{name}"
        if isinstance(value, Figure | ShareFigure):
            rows.append(figure_row(path, value))
        elif isinstance(value, BaseModel):
            rows.extend(_figures(value, f"{path}."))
        elif value is None and prefix:
            rows.append({"field": path, "value": None, "currency": None,
                         "kind": "not supported", "low": None, "high": None, "source": ""})
    return rows


def _tco_line(spec: Any) -> str:
    """The ownership parts of this chip under compare's default scenario, as compare counts
    them (:func:`moebench.commands.shared.pricing.tco_parts`)."""
    from moebench.commands.shared.pricing import tco_parts
    from moebench.inputs.hardware import chip_from_spec, nominal
    from moebench.inputs.scenario import DEFAULT_SCENARIO, load_scenario

    sc = load_scenario(DEFAULT_SCENARIO)
    if sc.pricing.tco is None:
        return "ownership counts the purchase price alone"
    cur = sc.pricing.currency
    parts = tco_parts(chip_from_spec(spec), spec, sc, sc.pricing.cny_per_usd.value, nominal)
    return (f"ownership per chip under {DEFAULT_SCENARIO}, in {cur}: "
            + ", ".join(f"{p.name} {float(p.amount):,.0f}" for p in parts)
            + f"; total {float(sum(p.amount for p in parts)):,.0f}")


def hardware_show(name_or_path: str) -> Report:
    spec = load_spec(catalog.resolve("hardware", name_or_path, "NAME"))
    rows = _figures(spec)
    footer = [f"{spec.display_name} ({spec.vendor})"]
    if spec.ling_device:
        footer.append(f"Ling device {spec.ling_device.device}: {spec.ling_device.match}")
    footer.append(f"purchase price scope: {spec.price.purchase_scope}; "
                  + _tco_line(spec))
    for market, m in spec.markets.items():
        if m.rental_per_chip_hour is not None:
            rows.append(figure_row(f"markets.{market}.rental_per_chip_hour",
                                   m.rental_per_chip_hour))
        footer.append(f"market {market}: {'sold' if m.available else 'not sold'} "
                      f"({m.available_source})"
                      + ("" if m.rental_per_chip_hour else f"; no price: {m.no_price}"))
    return Report(f"Hardware profile {spec.name}", pd.DataFrame(rows),
                  spec.model_dump(mode="json"), footer)


def _kind_of(path: Path, data: dict[str, Any]) -> str:
    # A stack profile may sit beside its hardware profile (moebench probe writes
    # NAME.stack.yaml next to NAME.yaml): its own fields say what it is.
    if "kernels" in data and "collectives" in data:
        return "stacks"
    parts = set(path.parts)
    for kind in ("hardware", "models", "scenarios", "stacks"):
        if kind in parts:
            return kind
    if "compute" in data:
        return "hardware"
    if "model_type" in data or "num_layers" in data:
        return "models"
    return "scenarios"


def check_files(paths: list[Path]) -> tuple[list[str], list[str]]:
    """One line per problem in the given profile files (empty when all are valid), and one per
    warning: a figure outside its plausible range, an inherited Ling price."""
    from moebench.inputs.model import spec_from_hf_config
    from moebench.inputs.plausible import implausible_figures, inherited_ling_price
    from moebench.inputs.scenario import ScenarioSpec
    from moebench.inputs.stack import StackSpec

    problems: list[str] = []
    warnings: list[str] = []
    for path in paths:
        try:
            data = load_mapping(path)
            kind = _kind_of(path, data)
            if kind == "models" and "model_type" in data:
                spec_from_hf_config(data, str(path))
                continue
            classes: dict[str, type[BaseModel]] = {
                "hardware": HardwareSpec, "models": ModelSpec, "scenarios": ScenarioSpec,
                "stacks": StackSpec}
            cls = classes[kind]
            found = validation_problems(cls, data)
            problems += [f"{path}: {field}: {msg}" for field, msg in found]
            if not found and kind == "hardware":
                spec = HardwareSpec.model_validate(data)
                fp8_consistent(spec, str(path))
                warnings += implausible_figures(spec, str(path))
                warnings += inherited_ling_price(spec, path)
        except InputError as exc:
            problems.append(exc.one_line())
    return problems, warnings


def shipped_profile_files() -> list[Path]:
    return [p for kind in ("hardware", "models", "scenarios", "stacks")
            for p in sorted(catalog.catalog_dir(kind).glob("*.yaml"))]


def models_list(archs: list[ModelArch]) -> Report:
    rows = []
    for a in archs:
        s, moe = a.spec, a.spec.moe
        rows.append({
            "name": s.name, "model": s.display_name,
            "total_params_b": a.params.total / 1e9, "active_params_b": a.params.active / 1e9,
            "layers": s.num_layers, "hidden": s.hidden_size, "attention": s.attention.kind,
            "experts": moe.num_experts if moe else 0, "top_k": moe.top_k if moe else 0,
            "shared": moe.num_shared_experts if moe else 0, "mtp_depth": s.mtp_depth,
        })
    return Report("Model profiles", pd.DataFrame(rows), {"models": rows},
                  [COUNTING_NOTE],
                  labels={"total_params_b": "total B", "active_params_b": "active B"},
                  optional=("model", "mtp_depth", "shared", "hidden", "attention"))


COUNTING_NOTE = ("Parameter counts include the input embedding and the LM head (once if tied) "
                 "and exclude MTP modules (shown apart).")


def model_show(arch: ModelArch, seq_len: int) -> Report:
    p, s = arch.params, arch.spec
    fl = model_flops_per_token(arch, seq_len)
    components = {
        "embedding": p.embedding, "lm_head": p.lm_head, "attention": p.attention,
        **({"linear_attention": p.linear_attention} if s.linear_attention else {}),
        "norms": p.norms, "dense_ffn": p.dense_ffn, "router": p.router,
        "routed_experts": p.routed_experts, "shared_experts": p.shared_experts, "mtp": p.mtp,
    }
    active = dict(components, routed_experts=p.routed_experts_active, mtp=0)
    fwd = fl.forward()
    rows = [{"component": k, "params": v, "active_params": active[k],
             "forward_gflop_per_token": fwd.get(k if k != "attention" else "attention_proj",
                                                0.0) / 1e9}
            for k, v in components.items()]
    rows.append({"component": "attention_core (grows with s)", "params": 0, "active_params": 0,
                 "forward_gflop_per_token": fwd["attention_core"] / 1e9})
    pub = s.published
    published = pub.model_dump() if pub else None
    payload = {
        "name": s.name, "display_name": s.display_name, "source": s.source,
        "total_params": p.total, "active_params": p.active,
        "active_params_without_input_embedding": p.active - p.embedding,
        "mtp_params": p.mtp, "counting": COUNTING_NOTE,
        "params_by_component": components, "seq_len": seq_len,
        "forward_flops_per_token": fwd, "training_flops_per_token": fl.total,
        "training_flops_per_token_without_mtp": model_flops_per_token(arch, seq_len, False).total,
        "published": published, "architecture": s.model_dump(mode="json"),
    }
    footer = [
        f"total {p.total / 1e9:.2f}B, active {p.active / 1e9:.2f}B "
        f"({(p.active - p.embedding) / 1e9:.2f}B without input embedding), MTP {p.mtp / 1e9:.2f}B",
        f"training FLOPs per token at seq {seq_len}: {fl.total:.4g} (3 x forward, MTP included)",
        COUNTING_NOTE,
    ]
    window, windowed = s.sliding_window
    if window:
        footer.append(f"sliding window: {window} keys in {windowed} of "
                      f"{s.num_full_attention_layers} attention layers (attention_core above is "
                      f"the layers' average)")
    if pub:
        footer.append(f"published: {pub.total_params_b}B total, "
                      f"{pub.active_params_b}B active ({pub.source})")
    return Report(f"Model {s.name}", pd.DataFrame(rows), payload, footer)
