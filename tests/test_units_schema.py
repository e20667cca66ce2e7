import math

import pytest
from pydantic import ValidationError

from moebench.inputs.schema import Figure, FractionFigure, ShareFigure
from moebench.units import GIB, to_base, unit_factor


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("bf16_dense_tflops", 989.4, 989.4e12),
        ("hbm_bandwidth_tb_per_s", 3.35, 3.35e12),
        ("bandwidth_gb_per_s", 50, 50e9),
        ("hbm_capacity_gb", 80, 80e9),
        ("reserve_gib", 2, 2 * 2**30),
        ("latency_us", 3, 3e-6),
        ("mtbf_hours", 2, 7200.0),
        ("restart_minutes", 20, 1200.0),
        ("chip_tdp_w", 700, 700.0),
        ("nic_gbit_per_s", 400, 50e9),
    ],
)
def test_suffixes_convert_to_base_units(field, value, expected):
    assert to_base(field, value) == pytest.approx(expected)


def test_field_without_unit_suffix_is_refused():
    with pytest.raises(KeyError):
        unit_factor("bandwidth")
    assert GIB == 1073741824.0


def test_estimate_needs_a_range():
    with pytest.raises(ValidationError, match="needs a range"):
        Figure(value=1.0, kind="estimate", source="a guess")
    fig = Figure(value=1.0, kind="estimate", low=0.5, high=2.0, source="a guess")
    assert (fig.low, fig.high) == (0.5, 2.0)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, 0.0, "12", True])
def test_figure_values_must_be_finite_positive_numbers(bad):
    with pytest.raises(ValidationError):
        Figure(value=bad, kind="datasheet", source="datasheet")


def test_range_must_contain_the_value():
    with pytest.raises(ValidationError, match="low <= value <= high"):
        Figure(value=3.0, kind="measured", low=1.0, high=2.0, source="bench")


def test_fractions_and_shares():
    with pytest.raises(ValidationError, match="at most 1"):
        FractionFigure(value=1.2, kind="measured", source="bench")
    assert ShareFigure(value=0.0, kind="estimate", low=0.0, high=0.2, source="a guess").value == 0.0
    with pytest.raises(ValidationError):
        ShareFigure(value=1.0, kind="measured", source="bench")


def test_unknown_keys_are_rejected():
    with pytest.raises(ValidationError, match="xtra"):
        Figure(value=1.0, kind="datasheet", source="datasheet", unit="GB")
