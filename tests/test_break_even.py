"""Break-even prices, the verdict across price bases, and intervals that hold their point."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pytest

from moebench.commands.compare.break_even import break_even as _break_even
from moebench.commands.compare.break_even import verdict_line
from moebench.commands.compare.records import CompareRow
from moebench.commands.shared.uncertainty import around, interval, residual_draws


def _row(entry: str, chip_hours: float, prices: dict[str, float | None],
         basis: str = "ling", **kw) -> CompareRow:
    price = prices.get(basis)
    return CompareRow(
        model="m", chip=entry, entry=entry, stack="s", num_chips=8, precision="bf16",
        plan={"tp": 1}, step_time_s=1.0, tokens_per_s_per_chip=1.0, mfu=0.3, mfu_bf16=0.3,
        memory_gib_per_chip=10.0, fits_memory=True, days=1.0, chip_hours=chip_hours,
        goodput=1.0, price_basis=basis, price_per_chip_hour=price, price_source="x",
        cost=None if price is None else chip_hours * price, currency="CNY", cost_ratio=None,
        energy_mwh=1.0, co2_tonnes=1.0, status="ok", price_by_basis=prices, **kw)


def test_break_even_by_hand():
    """Baseline 100 chip-hours at 10/h costs 1000; the other chip needs 300 chip-hours, so it
    ties at 1000 / 300 = 3.33/h, i.e. when one baseline hour costs 3x one of its hours. At 2/h
    it costs 600 (ratio 0.6) on the ling basis; at 8/h against 16/h it costs 2400 / 1600 = 1.5 on
    the rental basis; ownership prices only the baseline, so it has no ratio there."""
    base = _row("a", 100.0, {"ling": 10.0, "rental": 16.0, "ownership": 5.0})
    other = _row("b", 300.0, {"ling": 2.0, "rental": 8.0, "ownership": None})
    out = _break_even(other, base)
    assert out["break_even_per_chip_hour"] == pytest.approx(1000.0 / 300.0)
    assert out["break_even_price_ratio"] == pytest.approx(3.0)
    assert out["cost_ratio_by_basis"] == {"ling": pytest.approx(0.6),
                                          "rental": pytest.approx(1.5), "ownership": None}


def test_verdict_line_says_where_the_verdict_flips():
    base = _row("a", 100.0, {"ling": 10.0, "rental": 16.0, "ownership": 5.0})
    flips = _row("b", 300.0, {"ling": 2.0, "rental": 8.0, "ownership": None},
                 **_break_even(_row("b", 300.0, {"ling": 2.0, "rental": 8.0}), base))
    holds = _row("c", 50.0, {"ling": 12.0, "rental": 20.0, "ownership": 6.0},
                 **_break_even(_row("c", 50.0, {"ling": 12.0, "rental": 20.0,
                                                "ownership": 6.0}), base))
    line = verdict_line([base, flips, holds], "a")
    assert line is not None
    b_part, c_part = line.split("; c ")
    assert "b FLIPS: cheaper on ling (0.60), dearer on rental (1.50)" in b_part
    # ling prices a baseline hour at 5x b's hour, rental at 2x: b wins above 3x.
    assert "costs more than 3.00x one b hour (priced ling 5.00x, rental 2.00x)" in b_part
    # c: 50 x 12 / 1000 = 0.60, 50 x 20 / 1600 = 0.625, 50 x 6 / 500 = 0.60
    assert "cheaper on every basis that prices it (ling 0.60, rental 0.62, ownership 0.60)" \
        in c_part


def test_interval_straddling_one_flips_the_verdict():
    base = _row("a", 100.0, {"ling": 10.0})
    row = _row("b", 300.0, {"ling": 2.0}, **_break_even(_row("b", 300.0, {"ling": 2.0}), base),
               intervals={"cost_ratio": (0.5, 1.2)})
    line = verdict_line([base, row], "a")
    assert line is not None and "FLIPS: cheaper on ling (0.60); its interval 0.50-1.20 spans 1" \
        in line


def test_interval_of_a_figure_pinned_at_a_bound_holds_its_point():
    """A fitted figure at the low bound of its range: every sample lies above the point, so
    the samples' own percentiles miss it; centred on the point they hold it."""
    rng = np.random.default_rng(0)
    point = 10.0
    samples = rng.triangular(point, point, 14.0, 4000)  # mode = low = the fitted value
    assert interval(samples)[0] > point
    lo, hi = around(point, samples)
    assert lo < point < hi
    # The spread is kept: the relative width matches the samples' own.
    width = (interval(samples)[1] - interval(samples)[0]) / float(np.median(samples))
    assert (hi - lo) / point == pytest.approx(width, rel=1e-9)


def test_residual_draws_follow_the_out_of_source_interval():
    """The draws' 10th and 90th percentiles are the stack's interval_80."""
    r = residual_draws(np.random.default_rng(1), 200_000, [-0.152, 0.228])
    lo, hi = np.percentile(r, [10, 90])
    assert lo == pytest.approx(-0.152, abs=0.005) and hi == pytest.approx(0.228, abs=0.005)


def test_default_table_break_even_and_intervals(cli):
    """The default scenario: every row's interval holds its point; the 910B's verdict flips
    with the price basis, and the line gives its break-even ratio with its interval."""
    out = json.loads(cli("compare", "--uncertainty", "200", "--format", "json").output)
    rows = {r["entry"]: r for r in out["rows"]}
    for r in rows.values():
        for key, (lo, hi) in r["intervals"].items():
            assert lo <= r[key] <= hi, (r["entry"], key, lo, r[key], hi)
    base, b = rows["h800"], rows["ascend-910b"]
    assert b["break_even_price_ratio"] == pytest.approx(b["chip_hours"] / base["chip_hours"])
    assert b["break_even_per_chip_hour"] * b["chip_hours"] == pytest.approx(base["cost"])
    assert b["cost_ratio_by_basis"]["ling"] == pytest.approx(b["cost_ratio"])
    assert b["cost_ratio_by_basis"]["ling"] < 1 < b["cost_ratio_by_basis"]["rental"]
    assert out["verdict"].startswith("verdict against h800, across price bases: ascend-910b "
                                     "FLIPS")
    table = cli("compare", "--uncertainty", "200", "--format", "markdown").output
    lo, hi = b["intervals"]["break_even_price_ratio"]
    assert (f"ascend-910b FLIPS: cheaper on ling ({b['cost_ratio']:.2f})" in table
            and f"{b['break_even_price_ratio']:.2f}x ({lo:.2f}-{hi:.2f}) one ascend-910b hour"
            in table)


def test_csv_carries_what_json_has(cli):
    text = cli("compare", "--chips", "h800,ascend-910b", "--format", "csv").output
    rows = list(csv.DictReader(io.StringIO(text)))
    for col in ("status", "price_basis", "entry", "price_source", "fits_memory",
                "break_even_per_chip_hour", "break_even_price_ratio", "cost_ratio_rental"):
        assert col in rows[0], col
    assert rows[1]["status"] == "ok" and rows[1]["price_basis"] == "ling"


def test_no_runs_footnote_reads_an_interval_only_when_printed(cli):
    plain = cli("compare", "--chips", "h800,t-head-ppu", "--format", "markdown").output
    assert "read its interval" not in plain and "--uncertainty 1000 prints its interval" in plain
    sampled = cli("compare", "--chips", "h800,t-head-ppu", "--uncertainty", "50",
                  "--format", "markdown").output
    assert "read its interval" in sampled


def test_break_even_interval_without_samples_by_hand():
    """Stacks with out-of-source intervals [-0.3, 0.5] (row) and [-0.15, 0.23] (baseline):
    log errors N(0.10, 0.3121) and N(0.04, 0.1483), so the ratio's log error is N(0.06,
    0.3455): a ratio of 2.0 spans 2 exp(0.06 -/+ 1.6449 x 0.3455) = 1.2030 to 3.7491."""
    from moebench.commands.compare.sampling import ratio_interval

    lo, hi = ratio_interval(2.0, [-0.3, 0.5], [-0.15, 0.23])
    assert lo == pytest.approx(1.2030, rel=1e-3) and hi == pytest.approx(3.7491, rel=1e-3)


def test_the_default_table_gives_the_break_even_ratio_an_interval(cli):
    md = cli("compare", "-f", "markdown").output
    verdict = next(line for line in md.splitlines() if line.startswith("- verdict against"))
    part = verdict.split("ascend-910b FLIPS")[1]
    assert re.search(r"costs more than \d\.\d\dx \(\d\.\d\d-\d\.\d\d\) one ascend-910b hour",
                     part)
