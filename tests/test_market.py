"""One buyer's market per table: its prices with their sources, its currency, and the chips not
sold there marked (and left out of deadline sizing unless asked)."""

from __future__ import annotations

import json

import pytest
import yaml

from moebench.inputs import catalog
from moebench.inputs.hardware import load_spec


def _rows(cli, *args):
    result = cli("compare", *args, "-f", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    return out, {r["entry"]: r for r in out["rows"]}


def test_the_h100_us_price_is_the_gathered_list_price():
    """CoreWeave's HGX H100 8-GPU on-demand list, USD 49.24 per hour / 8 = 6.155 per GPU-hour."""
    spec = load_spec(catalog.resolve("hardware", "h100", "--chips"))
    assert spec.markets["us"].rental_per_chip_hour.value == pytest.approx(6.155)


def test_compare_on_the_us_market(cli):
    out, rows = _rows(cli, "--market", "us", "--chips", "h100,h800,ascend-910b")
    assert out["assumptions"]["market"] == "us" and out["assumptions"]["currency"] == "USD"
    h100 = rows["h100"]
    assert h100["price_per_chip_hour"] == pytest.approx(6.155)
    assert h100["cost"] == pytest.approx(h100["chip_hours"] * 6.155)
    assert h100["price_source"].startswith("us market:")
    for chip in ("h800", "ascend-910b"):
        assert rows[chip]["status"] == "not sold in us" and rows[chip]["cost"] is None
        assert rows[chip]["days"] is not None
    assert "Entity List" in rows["ascend-910b"]["price_source"]


def test_compare_on_the_cn_market(cli):
    """On the cn market the H20 is priced at the gathered index (7.5 CNY per GPU-hour), the
    H100 is not sold, and the Ascend 910B is sold but has no public price."""
    out, rows = _rows(cli, "--market", "cn", "--chips", "h20,h100,ascend-910b")
    assert out["assumptions"]["currency"] == "CNY"
    assert rows["h20"]["price_per_chip_hour"] == pytest.approx(7.5)
    assert rows["h100"]["status"] == "not sold in cn"
    assert rows["ascend-910b"]["status"].startswith("ok; no price: no public cn price")
    md = cli("compare", "--market", "cn", "--chips", "h20,h100,ascend-910b",
             "-f", "markdown").output
    assert "price basis market (cn: a buyer in mainland China)" in md
    assert "| not sold in cn |" in md


def test_deadline_search_skips_chips_not_sold_unless_asked(cli):
    args = ("--market", "us", "--chips", "h100,h800", "--deadline-days", "30")
    _, rows = _rows(cli, *args)
    assert rows["h800"]["status"].startswith("not sold in us (not sized for the deadline")
    assert rows["h800"]["plan"] is None and rows["h100"]["plan"] is not None
    _, sized = _rows(cli, *args, "--include-unavailable")
    assert sized["h800"]["plan"] is not None and sized["h800"]["status"] == "not sold in us"


def test_market_options_are_checked(cli):
    bad = cli("compare", "--market", "eu")
    assert bad.exit_code == 2 and "--market: expected one of cn, us" in bad.output
    both = cli("compare", "--market", "us", "--price-basis", "ling")
    assert both.exit_code == 2 and "drop --price-basis ling" in both.output


def test_a_market_needs_a_price_or_a_reason(cli, tmp_path):
    data = yaml.safe_load(catalog.resolve("hardware", "b200", "--chips").read_text())
    del data["markets"]["cn"]["no_price"]  # b200 has no public cn price: the reason goes
    path = tmp_path / "b200x.yaml"
    data["name"] = "b200x"
    path.write_text(yaml.safe_dump(data))
    result = cli("compare", "--chips", f"h100,{path}")
    assert result.exit_code == 2
    assert "give rental_per_chip_hour or no_price" in result.output


def test_every_profile_states_both_markets():
    for name in catalog.catalog_names("hardware"):
        spec = load_spec(catalog.resolve("hardware", name, "--chips"))
        assert set(spec.markets) == {"cn", "us"}, name


def test_profiles_show_lists_each_market(cli):
    md = cli("profiles", "show", "h20", "-f", "markdown").output
    assert "| markets.cn.rental_per_chip_hour | 7.5 | CNY | measured |" in md
    assert "- market us: not sold (China-market-only SKU" in md
