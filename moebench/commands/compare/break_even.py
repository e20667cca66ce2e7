"""Break-even prices: the price per chip-hour at which a chip costs what the baseline costs, and
whether a table's cheaper/dearer verdict survives a change of price basis and the intervals.

A chip's chip-hours do not depend on the price basis, only its price does; so the ratio of
hourly prices at which two chips tie is a price-free fact of the model (this chip's chip-hours
over the baseline's), and each basis only says on which side of it the market sits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moebench.commands.compare.records import CompareRow


def break_even(row: CompareRow, base: CompareRow | None) -> dict[str, Any]:
    """Break-even price and ratio of ``row`` against ``base``, and the cost ratio on every basis
    that prices both chips (the chip-hours do not depend on the basis, only the prices do)."""
    out: dict[str, Any] = {"break_even_per_chip_hour": None, "break_even_price_ratio": None,
                           "cost_ratio_by_basis": {}}
    if base is None or not row.chip_hours or not base.chip_hours:
        return out
    out["break_even_price_ratio"] = row.chip_hours / base.chip_hours
    if base.cost is not None:
        out["break_even_per_chip_hour"] = base.cost / row.chip_hours
    for basis in dict.fromkeys([*row.price_by_basis, *base.price_by_basis]):
        p, pb = row.price_by_basis.get(basis), base.price_by_basis.get(basis)
        out["cost_ratio_by_basis"][basis] = (
            None if p is None or not pb else row.chip_hours * p / (base.chip_hours * pb))
    return out


def verdict_line(rows: list[CompareRow], baseline: str) -> str | None:
    """Whether each chip's cheaper/dearer verdict against the baseline holds across the price
    bases and the table's intervals, and the price ratio at which it flips."""
    parts = []
    for r in rows:
        if r.entry == baseline or r.break_even_price_ratio is None:
            continue
        by = {b: v for b, v in r.cost_ratio_by_basis.items() if v is not None}
        iv = r.intervals.get("cost_ratio")
        words = {b: "cheaper" if v < 1 else "dearer" for b, v in by.items()}
        straddles = iv is not None and iv[0] < 1 < iv[1]
        if not by:
            verdict = "no basis prices both"
        elif len(set(words.values())) == 1 and not straddles:
            verdict = (f"{next(iter(words.values()))} on every basis that prices it ("
                       + ", ".join(f"{b} {v:.2f}" for b, v in by.items()) + ")")
        else:
            split = ", ".join(f"{words[b]} on {b} ({v:.2f})" for b, v in by.items())
            verdict = f"FLIPS: {split}" + (
                f"; its interval {iv[0]:.2f}-{iv[1]:.2f} spans 1" if straddles and iv else "")
        be_iv = r.intervals.get("break_even_price_ratio")
        be = f"{r.break_even_price_ratio:.2f}x" + (
            f" ({be_iv[0]:.2f}-{be_iv[1]:.2f})" if be_iv else "")
        priced = [f"{b} {pb / p:.2f}x" for b in by if (p := r.price_by_basis.get(b))
                  and (pb := _base_price(rows, r.model, baseline, b))]
        priced_text = f" (priced {', '.join(priced)})" if priced else ""
        if r.status.startswith("not sold"):
            verdict = f"{r.status} (other bases: {verdict})"
        parts.append(f"{r.entry} {verdict}; it wins while one {baseline} hour costs more than "
                     f"{be} one {r.chip} hour{priced_text}")
    if not parts:
        return None
    return f"verdict against {baseline}, across price bases: " + "; ".join(parts)


def _base_price(rows: list[CompareRow], model: str, baseline: str, basis: str) -> float | None:
    base = next((r for r in rows if r.model == model and r.entry == baseline), None)
    return None if base is None else base.price_by_basis.get(basis)
