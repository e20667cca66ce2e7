"""Plots for ``compare`` and ``sweep`` (matplotlib, headless), written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from moebench.commands.report import atomic_target
from moebench.errors import InputError

FORMATS = (".png", ".svg")


def _figure_module() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise InputError("--plot", None, "needs matplotlib: pip install 'moebench[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    if path.suffix.lower() not in FORMATS:
        raise InputError("--plot", None, f"expected a .png or .svg file name, got {path.name}")
    with atomic_target(path, "--plot", suffix=path.suffix) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")


def plot_comparison(rows: list[dict[str, Any]], baseline: str, currency: str, title: str,
                    path: Path) -> None:
    """Cost and days per chip as bars, the baseline chip marked."""
    plt = _figure_module()
    ok = [r for r in rows if r.get("cost") is not None]
    if not ok:
        raise InputError("--plot", None, "no chip has a plan that fits; nothing to plot")
    labels = [r["chip"] if len({x["model"] for x in ok}) == 1 else f"{r['model']}\n{r['chip']}"
              for r in ok]
    colours = ["#d62728" if r["chip"] == baseline else "#1f77b4" for r in ok]
    fig, (ax_cost, ax_days) = plt.subplots(1, 2, figsize=(11, 4.5))
    ax_cost.bar(labels, [r["cost"] / 1e6 for r in ok], color=colours)
    base = next((r["cost"] for r in ok if r["chip"] == baseline), None)
    if base is not None:
        ax_cost.axhline(base / 1e6, color="#d62728", linestyle="--", linewidth=1,
                        label=f"baseline ({baseline})")
        ax_cost.legend()
    ax_cost.set_ylabel(f"training cost (million {currency})")
    ax_cost.set_title("Cost")
    ax_days.bar(labels, [r["days"] for r in ok], color=colours)
    ax_days.set_ylabel("wall-clock days (incl. goodput losses)")
    ax_days.set_title("Time to train")
    for ax in (ax_cost, ax_days):
        ax.tick_params(axis="x", rotation=30)
    import textwrap

    fig.suptitle("\n".join(textwrap.wrap(title, 110)), fontsize=10)
    _save(fig, path)
    plt.close(fig)


def plot_sweep(df: pd.DataFrame, x: str, metric: str, title: str, path: Path) -> None:
    """One line per chip (and model, and other varied value) of ``metric`` against ``x``."""
    plt = _figure_module()
    labels = {"cost_per_1e12_tokens": "cost per trillion tokens", "mfu": "MFU (vs BF16 peak)",
              "tokens_per_s_per_chip": "tokens/s per chip", "days": "days to train"}
    data = df[df[metric].notna()].copy() if metric in df else df.iloc[0:0]
    if data.empty:
        raise InputError("--plot", None, f"no point has a value for {metric}")
    data[x] = pd.to_numeric(data[x], errors="coerce")
    others = [c for c in df.attrs.get("varied", []) if c != x]
    fig, ax = plt.subplots(figsize=(8, 5))
    group_cols = ["model", "chip", *others]
    for key, group in data.groupby(group_cols, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        name = ", ".join(str(k) if c in ("model", "chip") else f"{c}={k}"
                         for k, c in zip(key, group_cols, strict=True)
                         if c != "model" or data["model"].nunique() > 1)
        g = group.sort_values(x)
        scale = 1e6 if metric == "cost_per_1e12_tokens" else 1.0
        ax.plot(g[x], g[metric] / scale, marker="o", label=name)
    unit = (f" (million {data['currency'].iloc[0]})" if metric == "cost_per_1e12_tokens"
            else "")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(labels.get(metric, metric) + unit)
    if x in ("num_chips", "seq_len", "global_batch"):
        from matplotlib.ticker import FixedLocator, ScalarFormatter

        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(sorted(data[x].unique())))
        ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    _save(fig, path)
    plt.close(fig)

