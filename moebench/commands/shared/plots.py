"""Plots for ``compare`` and ``sweep`` (matplotlib, headless), written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from moebench.commands.shared.report import atomic_target
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


def _bars(ax: Any, rows: list[dict[str, Any]], labels: list[str], key: str, scale: float,
          colours: list[str]) -> None:
    """Bars of ``key`` (rows without it are labelled, not dropped), with 5th-95th percentile
    error bars when the rows carry intervals."""
    values = [r[key] / scale if r.get(key) is not None else 0.0 for r in rows]
    ivs = [r.get("intervals", {}).get(key) for r in rows]
    err = None
    if any(iv is not None for iv in ivs):
        err = [[max(v - iv[0] / scale, 0.0) if iv else 0.0 for v, iv in zip(values, ivs,
                                                                           strict=True)],
               [max(iv[1] / scale - v, 0.0) if iv else 0.0 for v, iv in zip(values, ivs,
                                                                          strict=True)]]
    ax.bar(labels, values, color=colours, yerr=err, capsize=4 if err else 0)
    top = max(values + [1e-12])
    for x, r in enumerate(rows):
        if r.get(key) is None:
            why = "no price" if r.get("days") is not None else "no plan fits"
            ax.text(x, top * 0.02, why, rotation=90, ha="center", va="bottom", fontsize=8,
                    color="#555555")


def plot_comparison(rows: list[dict[str, Any]], baseline: str, currency: str, title: str,
                    path: Path) -> Any:
    """Cost and days per chip entry as bars, the baseline marked; a chip without a price or a
    plan keeps its place with the reason written in; intervals (``--uncertainty``) as error
    bars."""
    import textwrap

    plt = _figure_module()
    if not any(r.get("days") is not None for r in rows):
        raise InputError("--plot", None, "no chip has a plan that fits; nothing to plot")
    several = len({r["model"] for r in rows}) > 1
    labels = [f"{r['model']}\n{r['entry']}" if several else r["entry"] for r in rows]
    colours = ["#d62728" if r["entry"] == baseline else "#1f77b4" for r in rows]
    fig, (ax_cost, ax_days) = plt.subplots(1, 2, figsize=(11, 5), layout="constrained")
    _bars(ax_cost, rows, labels, "cost", 1e6, colours)
    base = next((r["cost"] for r in rows if r["entry"] == baseline and r.get("cost")), None)
    if base is not None:
        ax_cost.axhline(base / 1e6, color="#d62728", linestyle="--", linewidth=1,
                        label=f"baseline ({baseline})")
        ax_cost.legend(loc="upper right", fontsize=8)
    ax_cost.set_ylabel(f"training cost (million {currency})")
    ax_cost.set_title("Cost")
    _bars(ax_days, rows, labels, "days", 1.0, colours)
    ax_days.set_ylabel("wall-clock days (incl. goodput losses)")
    ax_days.set_title("Time to train")
    for ax in (ax_cost, ax_days):
        ax.tick_params(axis="x", rotation=30)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("\n".join(textwrap.wrap(title, 100)), fontsize=10)
    _save(fig, path)
    plt.close(fig)
    return fig


METRIC_LABELS = {"cost_per_1e12_tokens": "cost per trillion tokens",
                 "mfu": "MFU (vs the precision's peak)",
                 "tokens_per_s_per_chip": "tokens/s per chip", "days": "days to train"}
# More lines than this in one panel and a legend stops being readable: facet by chip.
MAX_SERIES_PER_PANEL = 8


def plot_sweep(df: pd.DataFrame, x: str, metric: str, title: str, path: Path) -> Any:
    """``metric`` against ``x``: one line per chip (and model and other varied value); with
    many series, small multiples, one panel per chip (and model), sharing the y axis."""
    import textwrap

    plt = _figure_module()
    data = df[df[metric].notna()].copy() if metric in df else df.iloc[0:0]
    if data.empty:
        raise InputError("--plot", None, f"no point has a value for {metric}")
    data[x] = pd.to_numeric(data[x], errors="coerce")
    others = [c for c in df.attrs.get("varied", []) if c != x]
    panel_cols = [c for c in ("model", "chip") if data[c].nunique() > 1]
    line_cols = ["model", "chip", *others]
    series = data.groupby(line_cols).ngroups
    if series <= MAX_SERIES_PER_PANEL or not panel_cols:
        panel_cols = []
    else:
        line_cols = others
    panels = (list(data.groupby(panel_cols, sort=True)) if panel_cols else [((), data)])
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + 1.5, 3.0 * nrows + 1.2),
                             sharey=True, squeeze=False, layout="constrained")
    scale = 1e6 if metric == "cost_per_1e12_tokens" else 1.0
    for ax, (pkey, pdata) in zip(axes.flat, panels, strict=False):
        groups = list(pdata.groupby(line_cols, sort=True)) if line_cols else [((), pdata)]
        for key, group in groups:
            key = key if isinstance(key, tuple) else (key,)
            name = ", ".join(str(k) if c in ("model", "chip") else f"{c}={k}"
                             for k, c in zip(key, line_cols, strict=True)
                             if c not in ("model", "chip") or data[c].nunique() > 1)
            g = group.sort_values(x)
            ax.plot(g[x], g[metric] / scale, marker="o", label=name or None)
        if panel_cols:
            pkey = pkey if isinstance(pkey, tuple) else (pkey,)
            ax.set_title(", ".join(str(k) for k in pkey), fontsize=9)
        if x in ("num_chips", "seq_len", "global_batch"):
            from matplotlib.ticker import FixedLocator, ScalarFormatter

            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_locator(FixedLocator(sorted(pdata[x].unique())))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.tick_params(axis="x", labelsize=7, rotation=45)
        ax.grid(True, alpha=0.3)
        ax.set_xlabel(x.replace("_", " "), fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    unit = (f" (million {data['currency'].iloc[0]})" if metric == "cost_per_1e12_tokens"
            else "")
    for row in axes:
        row[0].set_ylabel(METRIC_LABELS.get(metric, metric) + unit, fontsize=8)
    handles, names = axes.flat[0].get_legend_handles_labels()
    if names:
        if panel_cols:
            fig.legend(handles, names, loc="outside lower center", ncols=min(len(names), 6),
                       fontsize=8)
        else:
            axes.flat[0].legend(fontsize=8)
    fig.suptitle("\n".join(textwrap.wrap(title, 90)), fontsize=10)
    _save(fig, path)
    plt.close(fig)
    return fig
