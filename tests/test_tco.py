"""Ownership as a TCO with named parts: every chip counted to the same scope, the capital
charged at a cost of capital."""

from __future__ import annotations

import pytest
import yaml

from moebench.commands.shared.cost import capital_recovery_factor, tco_per_chip_hour
from moebench.commands.shared.pricing import tco_parts
from moebench.inputs import catalog
from moebench.inputs.hardware import chip_from_spec, load_spec, nominal
from moebench.inputs.scenario import load_scenario


def test_capital_recovery_by_hand():
    """r = 10% over 4 years: 0.1 / (1 - 1.1^-4) = 0.315471; at r = 0 it is 1/4."""
    assert capital_recovery_factor(0.10, 4) == pytest.approx(0.3154708, rel=1e-6)
    assert capital_recovery_factor(0.0, 4) == pytest.approx(0.25)


def test_tco_per_chip_hour_by_hand():
    """100,000 of capex at 10% over 4 years, used 80% of 8,766 h a year: 31,547.08 / 7,012.8 =
    4.49850 per hour; 1,000 W x PUE 1.25 at 0.5 per kWh adds 0.625."""
    got = tco_per_chip_hour(100_000.0, 0.10, 4.0, 0.8, 1000.0, 1.25, 0.5)
    assert got == pytest.approx(31_547.08 / 7_012.8 + 0.625, rel=1e-5)


def _parts(chip: str):
    sc = load_scenario("ling-plus-1t")
    spec = load_spec(catalog.resolve("hardware", chip, "--chips"))
    fx = sc.pricing.cny_per_usd.value
    return sc, spec, fx, {p.name.split(" (")[0]: float(p.amount) for p in
                          tco_parts(chip_from_spec(spec), spec, sc, fx, nominal)}


def test_a_chip_only_price_gets_the_server_share_and_a_server_price_does_not():
    sc, spec, fx, parts = _parts("ascend-910b")  # Reuters: ~120,000 CNY per card
    t = sc.pricing.tco
    assert spec.price.purchase_scope == "chip"
    assert parts["accelerator"] == pytest.approx(120_000.0)
    assert parts["server share"] == pytest.approx(120_000.0 * t.server_share.value)
    assert parts["scale-out network"] == pytest.approx(t.network_per_chip.value * fx)
    wall_kw = chip_from_spec(spec).wall_w / 1000.0
    assert parts["facility"] == pytest.approx(t.facility_per_kw.value * fx * wall_kw)
    _, h800, _, server = _parts("h800")  # Reuters: 8-GPU server / 8, server share included
    assert h800.price.purchase_scope == "server" and server["server share"] == 0.0


def test_every_profile_states_its_purchase_scope(cli, tmp_path):
    data = yaml.safe_load(catalog.resolve("hardware", "h20", "--chips").read_text())
    del data["price"]["purchase_scope"]
    data["name"] = "h20x"
    path = tmp_path / "h20x.yaml"
    path.write_text(yaml.safe_dump(data))
    result = cli("compare", "--chips", f"h800,{path}")
    assert result.exit_code == 2 and "price.purchase_scope" in result.output


def test_the_tco_is_shown(cli):
    table = cli("compare", "--price-basis", "ownership", "--chips", "h800,ascend-910b",
                "-f", "markdown").output
    assert "TCO beyond the accelerator: server share 45% of chip-only prices" in table
    show = cli("profiles", "show", "ascend-910b", "-f", "markdown").output
    assert "purchase price scope: chip; ownership per chip under ling-plus-1t, in CNY: " \
        "accelerator (chip scope) 120,000, server share 54,000" in show
