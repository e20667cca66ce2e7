"""Money for a comparison: one price basis per table, and a run's days, chip-hours, cost and
energy.

A table's cost ratios compare like with like, so every chip is priced on the same basis:

* ``ling``: the Ling report's "fair cost per hour" (arXiv 2503.05139, Table 1), which exists only
  for the chips matched to its devices A-E; any other chip has no price on this basis;
* ``rental``: the scenario's explicit price for a chip, else the hardware profile's rental price
  (a ``--set CHIP:price.rental_per_chip_hour=...`` override takes precedence over both);
* ``ownership``: a TCO (:func:`tco_parts`): the accelerator as its profile's price is scoped,
  plus what that scope leaves out (server share, scale-out network, facility), charged at the
  scenario's cost of capital over the used hours, plus power x PUE x electricity (without a
  ``tco`` section in the scenario, the purchase price alone, amortised);
* ``market``: one buyer's market (cn, us): the profile's rental price there, or none where the
  chip is not sold there or no price is public (:func:`market_price`).

A chip with no price on the basis keeps its time and energy figures, with no cost and no ratio,
and says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moebench.commands.shared.cost import (
    DAY,
    checkpoint_seconds,
    convert,
    energy_mwh,
    ownership_per_chip_hour,
    tco_per_chip_hour,
    young_daly,
)
from moebench.errors import InputError
from moebench.inputs.hardware import Chip, HardwareSpec
from moebench.inputs.scenario import ScenarioSpec
from moebench.units import GIGA, HOUR

BASES = ("ling", "rental", "ownership", "market")
BASIS_WORDS = {
    "ling": "the Ling report's fair cost per hour (devices A-E only)",
    "rental": "rental price per chip-hour (scenario, else hardware profile)",
    "ownership": "ownership: the accelerator and what its price's scope leaves out (server "
                 "share, scale-out network, facility), charged at the cost of capital over the "
                 "used hours, + power x PUE x electricity",
    "market": "one buyer's market: the rental price there and whether the chip is sold there "
              "(hardware profiles' markets section)",
}
# Which profile price fields each basis reads; overriding another one has no effect.
BASIS_FIELDS = {
    "ling": ("ling_device.fair_cost_per_hour",),
    "rental": ("price.rental_per_chip_hour",),
    "ownership": ("price.purchase_per_chip",),
    "market": ("markets.MARKET.rental_per_chip_hour",),
}
OVERRIDE_SOURCE = "override on the command line"


@dataclass(frozen=True)
class Price:
    """A chip's price per chip-hour on the table's basis, or why it has none."""

    per_chip_hour: Any
    source: str
    missing: str | None = None


def check_price_overrides(hardware_overrides: dict[str, str], basis: str, chip: str) -> None:
    """A ``--set`` of a price the basis does not read would change nothing: say so."""
    for key in hardware_overrides:
        if key.startswith(("price.", "ling_device.")) and key not in BASIS_FIELDS[basis]:
            used = BASIS_FIELDS[basis][0]
            readers = [b for b, keys in BASIS_FIELDS.items() if key in keys]
            fix = (f"add --price-basis {readers[0]} to price on it" if readers
                   else "choose the basis with --price-basis")
            raise InputError("--set", f"{chip}:{key}",
                             f"is not used on the {basis} price basis (it reads {used}); {fix}")


def chip_price(chip: Chip, spec: HardwareSpec, sc: ScenarioSpec, fx: Any,
               value: Any) -> Price:
    """The chip's price per chip-hour in the scenario's currency on the scenario's basis."""
    p, cur = sc.pricing, sc.pricing.currency
    if p.basis == "market":
        return market_price(chip.name, spec, p.market or "", cur, fx)
    if p.basis == "ling":
        if chip.ling_device is None or chip.ling_cost_per_hour is None:
            return Price(None, "", f"no Ling fair cost: the Ling report prices only devices "
                                   f"A-E, and {chip.name} is not matched to one")
        fig = spec.ling_device.fair_cost_per_hour if spec.ling_device else None
        return Price(convert(chip.ling_cost_per_hour, chip.ling_currency or "CNY", cur, fx),
                     f"Ling fair cost, device {chip.ling_device} (inferred match)"
                     + (f"; {fig.source}" if fig and fig.source.startswith(OVERRIDE_SOURCE)
                        else ""))
    if p.basis == "rental":
        rental = spec.price.rental_per_chip_hour
        if chip.name in p.prices and not rental.source.startswith(OVERRIDE_SOURCE):
            fig = p.prices[chip.name]
            return Price(convert(value(fig), fig.currency, cur, fx), f"scenario: {fig.source}")
        return Price(convert(chip.rental_per_hour, chip.rental_currency, cur, fx),
                     f"profile rental: {rental.source}")
    elec = convert(value(p.electricity_per_kwh), p.electricity_per_kwh.currency, cur, fx)
    if p.tco is None:
        capex = convert(chip.purchase, chip.purchase_currency, cur, fx)
        return Price(ownership_per_chip_hour(capex, value(p.amortisation_years),
                                             value(p.utilisation), chip.wall_w, value(p.pue),
                                             elec),
                     "ownership: purchase amortised + power x PUE x electricity")
    parts = tco_parts(chip, spec, sc, fx, value)
    capex = sum(part.amount for part in parts)
    return Price(tco_per_chip_hour(capex, value(p.tco.cost_of_capital), value(p.amortisation_years),
                                   value(p.utilisation), chip.wall_w, value(p.pue), elec),
                 "ownership TCO: " + ", ".join(part.name for part in parts if part.shown)
                 + " at the cost of capital, + power x PUE x electricity")


def prices_by_basis(chip: Chip, spec: HardwareSpec, sc: ScenarioSpec,
                    value: Any) -> dict[str, float | None]:
    """The chip's price per chip-hour on every basis, in the table's currency (None where the
    basis has no price for it): what the verdict-stability line compares."""
    out: dict[str, float | None] = {}
    fx = value(sc.pricing.cny_per_usd)
    for basis in BASES:
        if basis == "market" and sc.pricing.market is None:
            continue
        other = sc.model_copy(update={"pricing": sc.pricing.model_copy(update={"basis": basis})})
        p = chip_price(chip, spec, other, fx, value).per_chip_hour
        out[basis] = None if p is None else float(p)
    return out


@dataclass(frozen=True)
class TcoPart:
    """One part of what owning a chip costs, per chip, in the table's currency."""

    name: str
    amount: Any
    source: str
    shown: bool = True
    """False where the purchase price's scope already holds it (amount 0)."""


def tco_parts(chip: Chip, spec: HardwareSpec, sc: ScenarioSpec, fx: Any, value: Any
              ) -> list[TcoPart]:
    """Accelerator, server share, scale-out network and facility per chip: the purchase price
    as its profile scopes it, plus what that scope leaves out (the scenario's tco section),
    every chip counted to the same scope."""
    p, cur = sc.pricing, sc.pricing.currency
    t = p.tco
    assert t is not None
    scope = spec.price.purchase_scope
    accel = convert(chip.purchase, chip.purchase_currency, cur, fx)
    fig = spec.price.purchase_per_chip
    server = accel * value(t.server_share) if scope == "chip" else 0.0 * accel
    return [
        TcoPart(f"accelerator ({scope} scope)", accel, fig.source),
        TcoPart("server share", server, t.server_share.source if scope == "chip" else
                f"in the {scope}-scope purchase price", shown=scope == "chip"),
        TcoPart("scale-out network", convert(value(t.network_per_chip),
                                             t.network_per_chip.currency, cur, fx),
                t.network_per_chip.source),
        TcoPart("facility", convert(value(t.facility_per_kw), t.facility_per_kw.currency, cur,
                                    fx) * chip.wall_w / 1000.0, t.facility_per_kw.source),
    ]


def market_price(chip: str, spec: HardwareSpec, market: str, cur: str, fx: Any) -> Price:
    """The chip's rental price in one buyer's market, or why it has none there (not sold
    there, or no public price)."""
    m = spec.markets.get(market)  # type: ignore[call-overload]
    if m is None:
        return Price(None, "", f"the {chip} profile states nothing about the {market} market")
    if not m.available:
        return Price(None, "", f"not sold in {market}: {m.available_source}")
    if m.rental_per_chip_hour is None:
        return Price(None, "", f"no public {market} price: {m.no_price}")
    fig = m.rental_per_chip_hour
    return Price(convert(fig.value, fig.currency, cur, fx), f"{market} market: {fig.source}")


def unavailable(spec: HardwareSpec, market: str | None) -> str | None:
    """Why the chip cannot be bought in ``market`` (None: it can, or no market is set)."""
    if market is None:
        return None
    m = spec.markets.get(market)  # type: ignore[call-overload]
    if m is None:
        return f"the profile states nothing about the {market} market"
    return None if m.available else f"not sold in {market}"


def economics(chip: Chip, spec: HardwareSpec, sc: ScenarioSpec, num_chips: int, step_s: Any,
              ckpt_bytes: Any, value: Any) -> dict[str, Any]:
    """Days, chip-hours, goodput, price, cost and energy: scalars, or arrays of samples."""
    p, g = sc.pricing, sc.goodput
    fx = value(p.cny_per_usd)
    ideal_s = sc.tokens / (sc.seq_len * sc.global_batch / step_s)
    ckpt_s = checkpoint_seconds(ckpt_bytes, value(g.checkpoint_write_gb_per_s) * GIGA)
    gp = young_daly(num_chips, chip.mtbf_s, ckpt_s, value(g.restart_minutes) * 60.0)
    wall_s = ideal_s / gp.goodput
    chip_hours = num_chips * wall_s / HOUR
    price = chip_price(chip, spec, sc, fx, value)
    energy = energy_mwh(num_chips, chip.wall_w, value(p.pue), wall_s)
    return {
        "days": wall_s / DAY, "chip_hours": chip_hours, "goodput": gp.goodput, "price": price,
        "cost": None if price.per_chip_hour is None else chip_hours * price.per_chip_hour,
        "energy_mwh": energy, "co2_tonnes": energy * value(p.carbon_kg_per_kwh),
    }
