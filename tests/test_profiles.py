"""Shipped hardware profiles: complete, sourced, converted to base units."""

from pathlib import Path

import pytest
import yaml

from moebench.inputs.catalog import catalog_dir, catalog_names
from moebench.inputs.hardware import load_chip, load_spec

REQUIRED = ["h800", "h100", "h200", "h20", "a100", "a800", "b200", "gb200", "gb300",
            "ascend-910b", "ascend-910c", "mi300x", "mi325x", "mi355x", "t-head-ppu"]


def test_all_required_hardware_profiles_ship():
    assert set(REQUIRED) <= set(catalog_names("hardware"))


def _figures(node, path=""):
    if isinstance(node, dict):
        if "value" in node and "kind" in node:
            yield path, node
            return
        for k, v in node.items():
            yield from _figures(v, f"{path}.{k}" if path else k)


@pytest.mark.parametrize("name", REQUIRED)
def test_every_figure_has_a_source_and_kind(name):
    data = yaml.safe_load(Path(catalog_dir("hardware") / f"{name}.yaml").read_text())
    figures = list(_figures(data))
    assert len(figures) >= 17  # software figures live in stack profiles
    for path, fig in figures:
        assert fig["kind"] in ("datasheet", "measured", "estimate"), path
        assert len(fig["source"]) > 10, path
        if fig["kind"] == "estimate":
            assert fig["low"] <= fig["value"] <= fig["high"], path


def test_h800_in_base_units():
    c = load_chip("h800")
    assert c.bf16_flops == pytest.approx(989.4e12)
    assert c.fp8_flops == pytest.approx(1978.9e12)
    # nvidia-smi's total of an 80 GB part, 81559 MiB (NVIDIA/nccl issue #1264), not 80e9 bytes
    assert c.hbm_bytes == pytest.approx(81559 * 2**20, rel=1e-4)
    assert c.hbm_bw == pytest.approx(3.35e12)
    assert c.up_bw == pytest.approx(200e9)
    assert c.out_bw == pytest.approx(50e9)
    assert c.up_domain == 8
    assert c.up_latency == pytest.approx(3e-6)
    assert c.mtbf_s == pytest.approx(50700 * 3600)


def test_chips_without_fp8_say_so():
    for name in ("a100", "ascend-910b", "ascend-910c", "t-head-ppu"):
        assert not load_chip(name).supports_fp8
    assert load_chip("h20").supports_fp8


def test_ling_devices_are_recorded_as_inferred_matches():
    expected = {"h800": "D", "a100": "C", "h20": "E", "ascend-910b": "A", "t-head-ppu": "B"}
    for chip, device in expected.items():
        spec = load_spec(catalog_dir("hardware") / f"{chip}.yaml")
        assert spec.ling_device is not None and spec.ling_device.device == device
        assert "Inferred" in spec.ling_device.match
    costs = {"h800": 27.5, "a100": 10, "h20": 5.64, "ascend-910b": 7, "t-head-ppu": 4.5}
    for chip, rmb in costs.items():
        assert load_chip(chip).ling_cost_per_hour == rmb
    assert load_chip("mi300x").ling_device is None


def test_cli_profiles_check_passes_on_every_shipped_profile(cli):
    result = cli("profiles", "check")
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_profiles_list_and_show(cli):
    import json

    rows = json.loads(cli("profiles", "list", "--format", "json").output)["hardware"]
    assert {r["name"] for r in rows} >= set(REQUIRED)
    # the list shows memory in GiB, as nvidia-smi does: an H100's 81559 MiB, an A100's 81920
    gib = {r["name"]: r["hbm_gib"] for r in rows}
    assert (gib["h100"], gib["a100"]) == (round(81559 / 1024, 1), 80.0)
    shown = json.loads(cli("profiles", "show", "ascend-910b", "--format", "json").output)
    # torch_npu's 60.96 GiB total capacity of a "64 GB" 910B, in decimal GB
    assert shown["memory"]["hbm_capacity_gb"]["value"] == pytest.approx(60.96 * 2**30 / 1e9,
                                                                       abs=0.005)
    table = cli("profiles", "show", "t-head-ppu").output
    assert "estimate" in table and "CCTV" in table
