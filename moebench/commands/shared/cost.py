"""Money, energy, carbon and goodput: from a predicted step time to days, chip-hours and cost.

Goodput follows the Young/Daly checkpoint model. A cluster of N chips, each failing on average
every MTBF hours, fails every M = MTBF / N. Checkpointing every tau costs delta each time; a
failure loses half an interval on average plus the restart time R. The optimal interval is
tau = sqrt(2 delta M) (Young 1974; Daly 2006), and

    wall time = ideal time x (1 + delta / tau) / (1 - (tau / 2 + R) / M).

Public failure data: Llama 3 saw 419 unexpected interruptions in 54 days on 16,384 H100s
(arXiv 2407.21783, sec. 3.3.4), a per-GPU MTBF of about 50,700 hours, as the H100 profile
records.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moebench.inputs.hardware import Num
from moebench.units import HOUR

DAY = 86400.0


@dataclass(frozen=True)
class Goodput:
    """Checkpoint interval and the share of wall time that is useful training."""

    interval_s: Num
    goodput: Num
    """Ideal time / wall time, in (0, 1]."""


def young_daly(num_chips: int, mtbf_chip_s: Num, checkpoint_s: Num, restart_s: Num) -> Goodput:
    """Young/Daly optimal checkpointing for a cluster of ``num_chips`` independent chips.

    M = MTBF_chip / N; tau = sqrt(2 delta M); goodput = (1 - (tau/2 + R)/M) / (1 + delta/tau),
    floored at a tiny positive value (a cluster that fails faster than it can restart makes
    almost no progress).
    """
    cluster_mtbf = np.asarray(mtbf_chip_s, dtype=float) / num_chips
    delta = np.asarray(checkpoint_s, dtype=float)
    tau = np.sqrt(2.0 * delta * cluster_mtbf)
    useful = (1.0 - (tau / 2.0 + restart_s) / cluster_mtbf) / (1.0 + delta / tau)
    return Goodput(interval_s=tau, goodput=np.clip(useful, 1e-6, 1.0))


def checkpoint_seconds(checkpoint_bytes_per_chip: Num, write_bytes_per_s_per_chip: Num) -> Num:
    """Time to write one checkpoint when every chip writes its own shard in parallel."""
    return checkpoint_bytes_per_chip / write_bytes_per_s_per_chip


def ownership_per_chip_hour(
    purchase: Num, amortisation_years: Num, utilisation: Num, wall_w: Num, pue: Num,
    electricity_per_kwh: Num,
) -> Num:
    """Owner's cost of one chip-hour: capital amortised over the used hours, plus power.

    capex / (years x 8766 h x utilisation) + wall W x PUE / 1000 x price per kWh.
    """
    hours = amortisation_years * 8766.0 * utilisation
    return purchase / hours + wall_w * pue / 1000.0 * electricity_per_kwh


def capital_recovery_factor(rate: Num, years: Num) -> Num:
    """The share of a capital outlay paid each year to repay it with interest over ``years``:
    r / (1 - (1 + r)^-years), 1 / years at r = 0 (the annuity formula)."""
    import numpy as np

    r = np.asarray(rate, dtype=float)
    safe = np.where(r > 0, r, 1.0)
    crf = np.where(r > 0, safe / (1.0 - (1.0 + safe) ** (-np.asarray(years, dtype=float))),
                   1.0 / np.asarray(years, dtype=float))
    return crf if np.ndim(crf) else float(crf)


def tco_per_chip_hour(
    capex: Num, rate: Num, years: Num, utilisation: Num, wall_w: Num, pue: Num,
    electricity_per_kwh: Num,
) -> Num:
    """Owner's cost of one used chip-hour with the capital charged at a cost of capital:
    capex x CRF(r, years) / (8766 h x utilisation) + wall W x PUE / 1000 x price per kWh, where
    capex is every part bought per chip (:func:`moebench.commands.shared.pricing.tco_parts`)."""
    hours = 8766.0 * utilisation
    return capex * capital_recovery_factor(rate, years) / hours \
        + wall_w * pue / 1000.0 * electricity_per_kwh


def energy_mwh(num_chips: int, wall_w: Num, pue: Num, wall_seconds: Num) -> Num:
    """Facility energy: N x (chip + host share) W x PUE x time, in MWh."""
    return num_chips * wall_w * pue * wall_seconds / HOUR / 1e6


def convert(amount: Num, from_currency: str, to_currency: str, cny_per_usd: Num) -> Num:
    """Convert between USD and CNY at ``cny_per_usd``."""
    if from_currency == to_currency:
        return amount
    if from_currency == "USD" and to_currency == "CNY":
        return amount * cny_per_usd
    if from_currency == "CNY" and to_currency == "USD":
        return amount / cny_per_usd
    raise ValueError(f"unsupported currencies {from_currency} -> {to_currency}")
