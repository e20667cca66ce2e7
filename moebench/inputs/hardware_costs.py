"""What a chip costs and how it runs, as a hardware profile writes it: its power, prices
(rental, purchase and what a purchase buys), the markets it is sold in, its reliability, and the
Ling report device it stands for (the sections of :class:`moebench.inputs.hardware.HardwareSpec`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from moebench.inputs.schema import Figure, MoneyFigure, Record


class PowerSpec(Record):
    chip_tdp_w: Figure
    host_share_w: Figure


class PriceSpec(Record):
    rental_per_chip_hour: MoneyFigure
    purchase_per_chip: MoneyFigure
    purchase_scope: Literal["chip", "server", "rack"] = Field(
        description="what purchase_per_chip buys: the accelerator alone (chip), with its share "
                    "of the server (server), or with its server and scale-up rack (rack); "
                    "ownership adds the parts it leaves out (scenario pricing.tco)")


class MarketSpec(Record):
    """One buyer's market for a chip: whether it can be bought or rented new there (export
    rules, sales channels), and its rental price there, each with its source."""

    available: bool
    available_source: str = Field(min_length=3)
    rental_per_chip_hour: MoneyFigure | None = None
    no_price: str | None = Field(default=None, description="why there is no price, if none")

    @model_validator(mode="after")
    def _price_or_reason(self) -> MarketSpec:
        if (self.rental_per_chip_hour is None) == (self.no_price is None):
            raise ValueError("give rental_per_chip_hour or no_price (why there is none)")
        return self


MARKETS = {"cn": "a buyer in mainland China", "us": "a buyer in the United States"}


MARKET_CURRENCY = {"cn": "CNY", "us": "USD"}


class ReliabilitySpec(Record):
    mtbf_hours: Figure


class LingDevice(Record):
    device: Literal["A", "B", "C", "D", "E"]
    fair_cost_per_hour: MoneyFigure
    match: str = Field(min_length=10, description="why this profile is taken to be that device")
